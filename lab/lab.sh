#!/usr/bin/env bash
# gate0 local lab: a throwaway PostgreSQL cluster that reproduces the seed's production and clone.
#
#   lab/lab.sh up       start (initdb and provision on first use); idempotent, survives a stale pid
#   lab/lab.sh down     stop; leaves no server process
#   lab/lab.sh reset    recreate production and the clone from their templates (seed state)
#   lab/lab.sh dsn      print the superuser's libpq DSN (keyword=value, one line)
#   lab/lab.sh status   exit 0 when the cluster answers
#   lab/lab.sh clones N N more clones of the one production (inventories/lab_many), 0 drops them
#
# Environment: GATE0_LAB_PORT (default 55432), GATE0_PG_BIN (server binaries; default the newest
# /usr/lib/postgresql/*/bin), GATE0_LAB_DIR (default <repo>/.lab). GATE0_PG=MAJOR (the Makefile's
# PG=MAJOR) runs that major's own lab instead: lab/pg.sh gives its binaries (installed on `up` when
# missing), its directory and its port (GATE0_LAB_PORT + the major's offset).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${GATE0_PG:-}" ]; then
    [ "${1:-}" = up ] && { GATE0_PG_BIN=$("$REPO/lab/pg.sh" bin "$GATE0_PG") || exit 1; export GATE0_PG_BIN; }
    pg_env=$("$REPO/lab/pg.sh" env "$GATE0_PG") || exit 1
    eval "$pg_env"
    export GATE0_PG_BIN GATE0_LAB_DIR GATE0_LAB_PORT
    unset GATE0_PG
fi
LAB=${GATE0_LAB_DIR:-$REPO/.lab}
PORT=${GATE0_LAB_PORT:-55432}
SQL=$REPO/lab/sql
PROD_DB=directus
CLONE_DB=directus_gov_test_20260602
PROD_TPL=gate0_lab_tpl_prod
CLONE_TPL=gate0_lab_tpl_clone
# Extra clones of the one production, <prefix>1 .. <prefix>8: inventories/lab_many's hosts.
MANY_PREFIX=directus_gov_test_2026080
MANY_MAX=8

die() { echo "lab: $*" >&2; exit 1; }

find_bin() {
    if [ -n "${GATE0_PG_BIN:-}" ]; then echo "$GATE0_PG_BIN"; return; fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$d" ] && [ -x "$d/postgres" ] && { echo "$d"; return; }
    d=$(dirname "$(command -v postgres 2>/dev/null || echo /nonexistent/x)")
    [ -x "$d/postgres" ] && { echo "$d"; return; }
    echo ""
}
PG_BIN=$(find_bin)

# PostgreSQL refuses to run as root: as root, run the server as the unprivileged `postgres` user.
if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 || die "as root the lab runs as OS user 'postgres', which does not exist (apt-get install postgresql)"
    AS=(runuser -u postgres --)
    OWNER=postgres
else
    AS=()
    OWNER=$(id -un)
fi

need_bin() {
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/postgres" ] || die "no PostgreSQL server binaries found; install them (Debian: apt-get install postgresql) or set GATE0_PG_BIN"
}

# The server user must traverse every parent of the lab; when it cannot (a checkout under /root),
# the lab lives in /var/tmp and .lab is a symlink to it.
prepare_dir() {
    if [ ! -e "$LAB" ]; then
        mkdir -p "$(dirname "$LAB")"
        if [ ${#AS[@]} -gt 0 ] && ! "${AS[@]}" test -x "$(dirname "$LAB")"; then
            local real
            real=/var/tmp/gate0-lab-$(printf '%s' "$LAB" | md5sum | cut -c1-12)
            mkdir -p "$real"
            ln -sfn "$real" "$LAB"
        else
            mkdir -p "$LAB"
        fi
    fi
    chown "$OWNER" "$LAB" && chmod 0755 "$LAB"
    mkdir -p "$LAB/secrets" && chmod 0700 "$LAB/secrets"
}

real_lab() { cd "$LAB" && pwd -P; }

# What the server user opens goes by the physical path: it may not traverse the checkout to $LAB.
pgctl() { "${AS[@]}" "$PG_BIN/pg_ctl" -D "$(real_lab)/data" "$@"; }

running() { [ -f "$LAB/data/PG_VERSION" ] && pgctl status >/dev/null 2>&1; }

psql_su() { PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$LAB" -p "$PORT" -U postgres "$@"; }

init_cluster() {
    "${AS[@]}" "$PG_BIN/initdb" -D "$(real_lab)/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >/dev/null
    cat > "$LAB/data/pg_hba.conf" <<HBA
# gate0 lab: the superuser over the socket only; every other login with a password.
local   all   postgres                  trust
local   all   all                       scram-sha-256
host    all   all       127.0.0.1/32    scram-sha-256
HBA
    cat >> "$LAB/data/postgresql.conf" <<CONF
# gate0 lab (throwaway: durability off for speed)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$(real_lab)'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 128MB
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
CONF
    chown "$OWNER" "$LAB/data/pg_hba.conf" "$LAB/data/postgresql.conf"
}

start() {
    if running; then return 0; fi
    # A crash leaves postmaster.pid behind; pg_ctl status said no server runs on it.
    rm -f "$LAB/data/postmaster.pid"
    # The port is fixed in postgresql.conf's include so that `pg_ctl status/stop` need no options;
    # prepared transactions and logical slots are allowed, so that tests can make both on the lab.
    "${AS[@]}" sh -c "printf 'port = %s\nmax_prepared_transactions = 4\nwal_level = logical\n' '$PORT' > '$(real_lab)/data/gate0_port.conf'"
    grep -q "include_if_exists = 'gate0_port.conf'" "$LAB/data/postgresql.conf" ||
        echo "include_if_exists = 'gate0_port.conf'" | "${AS[@]}" tee -a "$(real_lab)/data/postgresql.conf" >/dev/null
    if ! pgctl -l "$(real_lab)/postgres.log" -w -t 30 start >/dev/null; then
        tail -n 5 "$LAB/postgres.log" >&2 || true
        die "the lab server did not start on port $PORT (see $LAB/postgres.log)"
    fi
}

secret() { # name -> password (generated once)
    local f="$LAB/secrets/$1.pw"
    [ -s "$f" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=\n' > "$f")
    cat "$f"
}

sql_hash() { cat "$SQL"/*.sql | md5sum | cut -c1-32; }

provision() {
    # The HMAC key of gate0's receipts (gate0_receipt_secret): generated like the passwords, read by
    # the lab inventory, never sent to the database.
    secret gate0_receipt >/dev/null
    psql_su -d postgres -v ro_pw="$(secret context_pack_readonly)" -v admin_pw="$(secret workflow_admin)" \
        -v app_pw="$(secret directus)" -f "$SQL/roles.sql"
    local want have
    want=$(sql_hash)
    have=$(cat "$LAB/provisioned" 2>/dev/null || true)
    if [ "$want" != "$have" ] || ! psql_su -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$CLONE_TPL'" | grep -q 1; then
        for t in "$PROD_TPL" "$CLONE_TPL"; do
            psql_su -d postgres -c "ALTER DATABASE \"$t\" IS_TEMPLATE false" 2>/dev/null || true
            psql_su -d postgres -c "DROP DATABASE IF EXISTS \"$t\" WITH (FORCE)"
        done
        psql_su -d postgres -c "CREATE DATABASE \"$PROD_TPL\" OWNER directus"
        # Schema public as PostgreSQL 15+ creates it (owned by the database owner, no CREATE for
        # PUBLIC); on 14 it belongs to the bootstrap superuser and PUBLIC may create in it.
        { echo "ALTER SCHEMA public OWNER TO pg_database_owner; REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
          echo "SET ROLE directus;"; cat "$SQL/schema.sql" "$SQL/data_common.sql";
          echo "RESET ROLE;"; cat "$SQL/grants_prod.sql"; echo "ANALYZE;"; } |
            psql_su -d "$PROD_TPL" -1 -f -
        psql_su -d postgres -c "CREATE DATABASE \"$CLONE_TPL\" TEMPLATE \"$PROD_TPL\" OWNER workflow_admin $(strategy)"
        { echo "REASSIGN OWNED BY directus TO workflow_admin;"; echo "SET ROLE workflow_admin;";
          cat "$SQL/data_clone.sql"; echo "RESET ROLE; ANALYZE;"; } |
            psql_su -d "$CLONE_TPL" -1 -f -
        for t in "$PROD_TPL" "$CLONE_TPL"; do
            psql_su -d postgres -c "ALTER DATABASE \"$t\" IS_TEMPLATE true ALLOW_CONNECTIONS false"
        done
        echo "$want" > "$LAB/provisioned"
        reset_dbs
    elif ! psql_su -d postgres -tAc "SELECT count(*) FROM pg_database WHERE datname IN ('$PROD_DB', '$CLONE_DB')" | grep -q 2; then
        reset_dbs
    fi
    write_env
}

# CREATE DATABASE's copy clause: STRATEGY exists from PostgreSQL 15 (14 always copies files).
strategy() {
    [ "$(psql_su -d postgres -tAc "SHOW server_version_num")" -ge 150000 ] && echo "STRATEGY file_copy" || true
}

reset_dbs() {
    psql_su -d postgres -v prod="$PROD_DB" -v clone="$CLONE_DB" -v prod_tpl="$PROD_TPL" \
        -v clone_tpl="$CLONE_TPL" -v strategy="$(strategy)" -f "$SQL/databases.sql"
}

# `clones N`: the first N extra clones made afresh from the clone template, with the clone's ACLs;
# every other one of the series dropped (N = 0 drops them all).
many_clones() {
    local n=$1 i db
    [[ "$n" =~ ^[0-9]$ ]] && [ "$n" -le "$MANY_MAX" ] || die "clones: a count from 0 to $MANY_MAX, got '$n'"
    for db in $(psql_su -d postgres -tAc "SELECT datname FROM pg_database WHERE datname ~ '^${MANY_PREFIX}[1-${MANY_MAX}]\$'"); do
        psql_su -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    done
    for i in $(seq 1 "$n"); do
        db=$MANY_PREFIX$i
        psql_su -d postgres \
            -c "CREATE DATABASE \"$db\" TEMPLATE \"$CLONE_TPL\" OWNER workflow_admin $(strategy)" \
            -c "REVOKE ALL ON DATABASE \"$db\" FROM PUBLIC" \
            -c "GRANT CONNECT, TEMPORARY ON DATABASE \"$db\" TO workflow_admin"
    done
}

# The app's own database binding (Directus' DB_DATABASE), as an env file.
write_env() {
    (umask 077; cat > "$LAB/directus.env" <<ENV
DB_CLIENT=pg
DB_HOST=127.0.0.1
DB_PORT=$PORT
DB_DATABASE=$PROD_DB
DB_USER=directus
DB_PASSWORD=$(secret directus)
ENV
)
}

cmd=${1:-}
case "$cmd" in
    up)
        need_bin
        prepare_dir
        [ -f "$LAB/data/PG_VERSION" ] || init_cluster
        start
        provision
        ;;
    reset)
        running || die "the lab is not running (make lab-up)"
        psql_su -d postgres -v ro_pw="$(secret context_pack_readonly)" -v admin_pw="$(secret workflow_admin)" \
            -v app_pw="$(secret directus)" -f "$SQL/roles.sql"
        reset_dbs
        write_env
        ;;
    down)
        if [ -n "$PG_BIN" ] && running; then
            pid=$(head -n 1 "$LAB/data/postmaster.pid")
            pgctl -w -t 20 -m fast stop >/dev/null || pgctl -w -t 10 -m immediate stop >/dev/null
            # pg_ctl returns once the pid file is gone; wait (bounded) for the process itself.
            for _ in $(seq 50); do
                [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || break
                sleep 0.1
            done
        fi
        ;;
    status)
        [ -n "$PG_BIN" ] && running
        ;;
    clones)
        running || die "the lab is not running (make lab-up)"
        many_clones "${2:-}"
        ;;
    dsn)
        echo "host=$LAB port=$PORT user=postgres dbname=postgres"
        ;;
    *)
        echo "usage: lab/lab.sh up|down|reset|status|dsn|clones N" >&2
        exit 2
        ;;
esac
