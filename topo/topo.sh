#!/usr/bin/env bash
# gate0 test topology: controller -> SSH -> database host -> containers, all on this machine.
#
#   topo/topo.sh up       build what is missing and start; idempotent (reuses a running topology)
#   topo/topo.sh down     stop and remove everything `up` created (processes by pid, containers,
#                         namespace, links, routes); keeps the SSH keys and the image cache
#   topo/topo.sh status   exit 0 when the database host answers SSH and postgres is running
#   topo/topo.sh env      print the topology's facts as KEY=value lines (tests read them)
#   topo/topo.sh directus [DB]  recreate the app container with DB_DATABASE=DB (- : without it)
#
# The database host is a network namespace with its own sshd, podman (runc, CNI bridge without
# masquerade or default route) and the real `docker` CLI on podman's API socket (DOCKER_HOST, set by
# sshd for every session). Containers: `postgres` (Debian's PostgreSQL, loaded with the lab's schema,
# data and roles by lab/lab.sh inside the container) and `directus` (DB_DATABASE=directus).
#
# Network safety: the first step of `up` adds `unreachable` routes in the root namespace for both
# subnets; only the /30 of the veth pair is reachable (SSH). The container subnet is never routed
# from the root namespace, so a connection from the controller to a container fails at once.
#
# Environment: GATE0_LAB_PORT (default 55432) picks the topology's id (port % 256) unless
# GATE0_TOPO_ID is set: namespace gate0-topo-<id>, subnets 10.231.<id>.0/24 (link) and
# 10.232.<id>.0/24 (containers). GATE0_TOPO_CACHE (default /var/cache/gate0-topo): the image cache.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ID=${GATE0_TOPO_ID:-$(( ${GATE0_LAB_PORT:-55432} % 256 ))}
NS=gate0-topo-$ID
NSPATH=/run/netns/$NS
LINK_NET=10.231.$ID.0/24
CT_NET=10.232.$ID.0/24
ROOT_IP=10.231.$ID.1
HOST_IP=10.231.$ID.2
CT_GW=10.232.$ID.1
VETH_ROOT=g0t${ID}r
VETH_HOST=g0t${ID}h
STATE=$REPO/.topo
RUN=/run/gate0-topo-$ID
CACHE=${GATE0_TOPO_CACHE:-/var/cache/gate0-topo}
STORE=$CACHE/storage-$ID
SOCK=$RUN/podman.sock
PG_MAJOR=15
IMAGE_RECIPE=1  # bump when the image's build steps change
# What the database host needs, installed here, in the root namespace (the host's namespace has no
# route out): python3-apt is what ansible.builtin.apt (the role's package task) imports; without it
# the module would try to install it from inside the namespace.
PACKAGES=(podman runc containernetworking-plugins debootstrap openssh-server openssh-client
          python3-psycopg2 python3-apt)

log() { echo "topo: $*" >&2; }
die() { echo "topo: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# --- prerequisites -------------------------------------------------------------------------------

need_root() { [ "$(id -u)" = 0 ] || die "the topology needs root (network namespaces, podman)"; }

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
    command -v docker >/dev/null || echo docker.io
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} (apt-get)"
    # Another topology (another worktree's tests) may be installing at the same time: wait for it.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian mirror this machine's apt uses (deb822 URIs: or one-line sources), for debootstrap.
debian_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE '(https?|file)://[^ ]+/debian/?( |$)' | grep -v -- '-security' | head -n 1 | tr -d ' ' || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

suite() { . /etc/os-release && echo "${VERSION_CODENAME:-bookworm}"; }

# --- network -------------------------------------------------------------------------------------

# Refuse subnets that something else on this machine already uses (an address or a real route).
check_subnets() {
    local net prefix
    for net in "$LINK_NET" "$CT_NET"; do
        prefix=${net%.0/24}.
        if ip -4 -o addr show | grep -v " $VETH_ROOT " | grep -q "inet ${prefix//./\\.}"; then
            die "subnet $net is already used by an address on this machine (set GATE0_TOPO_ID)"
        fi
        if ip -4 route show | grep -v "^unreachable $net" | grep -v " dev $VETH_ROOT " |
            grep -q "^${prefix//./\\.}"; then
            die "subnet $net is already routed on this machine (set GATE0_TOPO_ID)"
        fi
    done
}

safety_routes() {
    ip route replace unreachable "$LINK_NET"
    ip route replace unreachable "$CT_NET"
}

in_ns() { nsenter --net="$NSPATH" "$@"; }

setup_namespace() {
    [ -e "$NSPATH" ] || ip netns add "$NS"
    in_ns ip link set lo up
    if ! ip link show "$VETH_ROOT" >/dev/null 2>&1; then
        ip link add "$VETH_ROOT" type veth peer name "$VETH_HOST"
        ip link set "$VETH_HOST" netns "$NS"
        ip addr add "$ROOT_IP/30" dev "$VETH_ROOT"
        ip link set "$VETH_ROOT" up
        in_ns ip addr add "$HOST_IP/30" dev "$VETH_HOST"
        in_ns ip link set "$VETH_HOST" up
    fi
}

# --- the database host's sshd --------------------------------------------------------------------

setup_ssh() {
    mkdir -p "$STATE/ssh" "$STATE/cp" && chmod 0700 "$STATE" "$STATE/ssh" "$STATE/cp"
    [ -s "$STATE/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C gate0-topo-controller -f "$STATE/ssh/id_ed25519"
    [ -s "$STATE/ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C gate0-topo-host -f "$STATE/ssh/host_ed25519"
    cp "$STATE/ssh/id_ed25519.pub" "$STATE/ssh/authorized_keys"
    echo "$HOST_IP $(cut -d' ' -f1,2 "$STATE/ssh/host_ed25519.pub")" > "$STATE/ssh/known_hosts"
    cat > "$STATE/sshd_config" <<CONF
# gate0 topology: the database host's sshd (key auth only, inside namespace $NS).
ListenAddress $HOST_IP
Port 22
HostKey $STATE/ssh/host_ed25519
PidFile $RUN/sshd.pid
AuthorizedKeysFile $STATE/ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
MaxStartups 50:30:100
LogLevel ERROR
# What a real host's docker CLI finds by default: here podman's API socket.
SetEnv DOCKER_HOST=unix://$SOCK
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
}

ssh_host() {
    ssh -o BatchMode=yes -o ConnectTimeout=3 -o IdentitiesOnly=yes -i "$STATE/ssh/id_ed25519" \
        -o UserKnownHostsFile="$STATE/ssh/known_hosts" -o StrictHostKeyChecking=yes \
        -o ControlPath=none "root@$HOST_IP" "$@"
}

alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

start_sshd() {
    mkdir -p /run/sshd
    if ! alive "$(cat "$RUN/sshd.pid" 2>/dev/null || true)"; then
        in_ns /usr/sbin/sshd -f "$STATE/sshd_config"
    fi
    local i
    for i in $(seq 50); do
        ssh_host true 2>/dev/null && return 0
        sleep 0.2
    done
    die "the database host's sshd does not answer on $HOST_IP:22"
}

# --- podman on the database host -----------------------------------------------------------------

podman_config() {
    mkdir -p "$STATE/cni" "$RUN" "$STORE"
    cat > "$STATE/containers.conf" <<CONF
# gate0 topology: podman on the database host (namespace $NS).
[containers]
# This machine's hard limits are lower than podman's defaults; runc refuses to raise them.
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUN/libpod"
# An exec session's conmon waits this long for the API client before it cleans up (default 300 s,
# Docker's 5 minutes); it ignores SIGTERM meanwhile, so every \`docker exec\` held topo-down 5 s.
# The docker CLI reads the exit code at once, when the exec's output ends.
exit_command_delay = 2

[network]
network_backend = "cni"
network_config_dir = "$STATE/cni"
default_network = "gate0"
CONF
    cat > "$STATE/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$STORE"
runroot = "$RUN/storage"
CONF
    # The containers' network: a bridge on the database host, no masquerade, no default route.
    cat > "$STATE/cni/gate0.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "gate0",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "gate0br",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$CT_NET", "gateway": "$CT_GW"}]],
        "routes": [],
        "dataDir": "$RUN/cni-ipam"
      }
    }
  ]
}
JSON
}

pm() {
    CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf" \
        in_ns podman "$@"
}

dk() { DOCKER_HOST="unix://$SOCK" docker "$@"; }

start_podman_service() {
    if ! alive "$(cat "$RUN/podman.pid" 2>/dev/null || true)"; then
        rm -f "$SOCK"
        CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf" \
            setsid nsenter --net="$NSPATH" podman system service --time=0 "unix://$SOCK" \
            >"$RUN/podman.log" 2>&1 </dev/null &
        echo $! > "$RUN/podman.pid"
    fi
    local i
    for i in $(seq 100); do
        dk version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 5 "$RUN/podman.log" >&2 || true
    die "podman's API socket $SOCK does not answer (see $RUN/podman.log)"
}

# --- the image: a minimal Debian rootfs with PostgreSQL, built offline once and cached -----------

image_tag() {
    printf '%s\n' "$IMAGE_RECIPE" "$(suite)" "$(debian_mirror)" "postgresql-$PG_MAJOR" | md5sum | cut -c1-12
}

IMAGE=localhost/gate0-topo/postgres:$PG_MAJOR-$(image_tag)

build_rootfs_tar() { # -> $CACHE/<tag>.tar
    local tag tar build t0
    tag=$(image_tag)
    tar=$CACHE/postgres-$PG_MAJOR-$tag.tar
    [ -s "$tar" ] && { echo "$tar"; return 0; }
    build=$CACHE/build-$tag
    t0=$(now_ms)
    log "building the postgres image from Debian packages ($(debian_mirror) $(suite)); once per machine"
    rm -rf "$build" && mkdir -p "$CACHE"
    debootstrap --variant=minbase --include="postgresql-$PG_MAJOR" "$(suite)" "$build" "$(debian_mirror)" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -n 5 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (see $CACHE/debootstrap.log)"; }
    # Slim: package caches, docs, the cluster the package created (the entrypoint makes its own).
    rm -rf "$build"/var/cache/apt/archives/*.deb "$build"/var/lib/apt/lists/* "$build"/usr/share/doc/* \
        "$build"/usr/share/man/* "$build"/usr/share/locale/* "$build/var/lib/postgresql/$PG_MAJOR/main" \
        "$build/etc/postgresql/$PG_MAJOR/main"
    tar -C "$build" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$build"
    log "image rootfs built in $(( ($(now_ms) - t0) / 1000 )) s: $tar"
    echo "$tar"
}

ensure_image() {
    pm image exists "$IMAGE" && return 0
    local tar
    mkdir -p "$CACHE"
    # One build per machine even when several topologies start together (bounded wait).
    exec 9>"$CACHE/build.lock"
    flock -w 900 9 || die "another topology has been building the image for 15 minutes ($CACHE/build.lock)"
    tar=$(build_rootfs_tar)
    exec 9>&-
    pm import --quiet "$tar" "$IMAGE" >/dev/null
}

# --- containers ----------------------------------------------------------------------------------

secret() { # name -> password, generated once under .topo/secrets (mounted into the container)
    local f="$STATE/secrets/$1.pw"
    mkdir -p "$STATE/secrets" && chmod 0700 "$STATE/secrets"
    [ -s "$f" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=\n' > "$f")
    cat "$f"
}

# The gate0 receipt's HMAC key (inventories/topo): the controller's own, never mounted into a container.
receipt_key() {
    local f="$STATE/controller/gate0_receipt.pw"
    mkdir -p "$STATE/controller" && chmod 0700 "$STATE/controller"
    [ -s "$f" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$f")
}

container_running() { [ "$(dk inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }

container_ip() { dk inspect -f '{{(index .NetworkSettings.Networks "gate0").IPAddress}}' "$1"; }

start_postgres() {
    secret context_pack_readonly >/dev/null; secret workflow_admin >/dev/null; secret directus >/dev/null
    if ! container_running postgres; then
        dk rm -f postgres >/dev/null 2>&1 || true
        dk run -d --name postgres --hostname postgres --network gate0 --stop-signal SIGINT \
            -v "$REPO/lab:/opt/gate0/lab:ro" -v "$REPO/topo/pg-entry.sh:/opt/gate0/pg-entry.sh:ro" \
            -v "$STATE/secrets:/var/lib/gate0/secrets:ro" \
            -e GATE0_TOPO_HBA="$LINK_NET $CT_NET" \
            "$IMAGE" /bin/bash /opt/gate0/pg-entry.sh >/dev/null
    fi
    wait_postgres
}

wait_postgres() {
    local i ip
    for i in $(seq 150); do
        container_running postgres || break
        ip=$(container_ip postgres 2>/dev/null || true)
        # The container's own client, on its network address (where the gate's modules connect).
        if [ -n "$ip" ] && dk exec postgres "/usr/lib/postgresql/$PG_MAJOR/bin/pg_isready" -q -h "$ip" -p 5432 -t 1; then
            return 0
        fi
        sleep 0.2
    done
    dk logs --tail 10 postgres >&2 || true
    die "the postgres container is not accepting connections on its network address"
}

# The app: any long-running process with Directus' binding in its environment.
start_directus() { # [DB_DATABASE, or - for none]
    local db=${1:-directus} binding=()
    [ "$db" = - ] || binding=(-e DB_DATABASE="$db")
    if [ $# -gt 0 ] || ! container_running directus; then
        dk rm -f directus >/dev/null 2>&1 || true
        dk run -d --name directus --hostname directus --network gate0 \
            -e DB_CLIENT=pg -e DB_HOST=postgres -e DB_PORT=5432 "${binding[@]}" -e DB_USER=directus \
            -e DB_PASSWORD="$(secret directus)" \
            "$IMAGE" /bin/bash -c 'trap "exit 0" TERM INT; while :; do sleep 60 & wait $!; done' >/dev/null
    fi
}

write_env() {
    cat > "$STATE/env" <<ENV
GATE0_TOPO_ID=$ID
GATE0_TOPO_NS=$NS
GATE0_TOPO_HOST=$HOST_IP
GATE0_TOPO_ROOT_IP=$ROOT_IP
GATE0_TOPO_LINK_NET=$LINK_NET
GATE0_TOPO_CT_NET=$CT_NET
GATE0_TOPO_POSTGRES_IP=$(container_ip postgres)
GATE0_TOPO_DOCKER_HOST=unix://$SOCK
GATE0_TOPO_IMAGE=$IMAGE
GATE0_TOPO_STATE=$STATE
ENV
    echo "$HOST_IP" > "$STATE/host_address"
}

# --- down ----------------------------------------------------------------------------------------

stop_pid() { # pidfile-or-pid: TERM, wait (bounded), KILL
    local pid=$1 i
    [ -f "$pid" ] && pid=$(cat "$pid" 2>/dev/null || true)
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 20); do alive "$pid" || return 0; sleep 0.1; done
}

down() {
    local s pid
    # Ansible's SSH masters for the database host (ControlPath under .topo/cp).
    for s in "$STATE"/cp/*; do
        [ -S "$s" ] && ssh -o ControlPath="$s" -O exit dummy >/dev/null 2>&1 || true
        rm -f "$s"
    done
    if [ -S "$SOCK" ] && alive "$(cat "$RUN/podman.pid" 2>/dev/null || true)"; then
        # Bounded: under load podman may wait on exec sessions; the steps below stop it anyway.
        DOCKER_HOST="unix://$SOCK" timeout 60 docker rm -f directus postgres >/dev/null 2>&1 || true
    fi
    if [ -e "$NSPATH" ] && [ -f "$STATE/containers.conf" ]; then
        CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf" \
            timeout 60 nsenter --net="$NSPATH" podman rm -a -f -t 2 >/dev/null 2>&1 || true
    fi
    stop_pid "$RUN/podman.pid"
    stop_pid "$RUN/sshd.pid"
    # Whatever still runs in the namespace was started by this topology (sessions, conmon): TERM all
    # at once, one bounded wait (2 s), then KILL what is left.
    if [ -e "$NSPATH" ]; then
        local pids=() i
        mapfile -t pids < <(ip netns pids "$NS" 2>/dev/null)
        if [ ${#pids[@]} -gt 0 ]; then
            kill -TERM "${pids[@]}" 2>/dev/null || true
            for i in $(seq 20); do
                for pid in "${pids[@]}"; do alive "$pid" && break; pid=; done
                [ -z "${pid:-}" ] && break
                sleep 0.1
            done
            for pid in "${pids[@]}"; do alive "$pid" && { kill -KILL "$pid" 2>/dev/null || true; }; done; true
            for pid in "${pids[@]}"; do for i in $(seq 20); do alive "$pid" || break; sleep 0.1; done; done
        fi
    fi
    # podman's storage driver mounts (container layers, shm, its private bind of overlay/).
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$STORE/" | sort -r || true); do
        umount "$m" 2>/dev/null || true
    done
    ip link del "$VETH_ROOT" 2>/dev/null || true
    [ -e "$NSPATH" ] && ip netns del "$NS"
    ip route del unreachable "$LINK_NET" 2>/dev/null || true
    ip route del unreachable "$CT_NET" 2>/dev/null || true
    rm -rf "$RUN" "$STATE/env" "$STATE/host_address"
}

status() {
    [ -e "$NSPATH" ] && [ -S "$SOCK" ] && ssh_host true 2>/dev/null && container_running postgres
}

up() {
    need_root
    local t0
    t0=$(now_ms)
    check_subnets
    safety_routes  # first: nothing below may leak out of the machine
    install_packages
    setup_namespace
    setup_ssh
    mkdir -p "$RUN"
    start_sshd
    podman_config
    start_podman_service
    ensure_image
    start_postgres
    start_directus
    receipt_key
    write_env
    log "up in $(( $(now_ms) - t0 )) ms: ssh root@$HOST_IP (namespace $NS), postgres at $(container_ip postgres):5432"
}

cmd=${1:-}
case "$cmd" in
    up) up ;;
    down) need_root; down; log "down" ;;
    status) status ;;
    env) cat "$STATE/env" 2>/dev/null || die "the topology is not up (make topo-up)" ;;
    directus) status || die "the topology is not up (make topo-up)"; start_directus "${2:-directus}" ;;  # recreate the app container with DB_DATABASE=$2
    *) echo "usage: topo/topo.sh up|down|status|env|directus [DB_DATABASE|-]" >&2; exit 2 ;;
esac
