#!/usr/bin/env bash
# gate0: the README's two commands on a fresh Debian 12, as a new user runs them (root, ~15-25 min).
#
#   tests/fresh_debian.sh [BRANCH]      (`make test-fresh`; BRANCH: default the current branch)
#
# 1. A fresh Debian 12 (bookworm) root: `debootstrap --variant=minbase` with only the base tools
#    (python3 — Debian's 3.11.2 — python3-venv, python3-pip, make, git, ca-certificates, iproute2,
#    build-essential) from this machine's Debian mirror (/etc/apt/sources.list.d/debian.sources).
#    Copied in: that sources file, /etc/pip.conf, /etc/xdg/pip/ (it names a constraints file), the
#    extra CA certificates of /usr/local/share/ca-certificates (update-ca-certificates inside).
# 2. The root bind-mounted onto itself (network namespaces and podman need `/` to be a mount point),
#    then proc, sys, dev, dev/pts (rbind, as slaves), a tmpfs on dev/shm and on run; pip's find-links
#    directories of this machine bound read-only.
# 3. Inside, with `env -i` (a clean environment): `git clone` of the committed BRANCH (a bundle of its
#    HEAD, not the work tree) into /root/gate0, then `make demo` and `make test` there. Prints both
#    exit codes and times, and a last line `fresh: demo exit N in Ns, test exit N in Ns`; exits 0
#    only when both are 0.
# 4. Cleans up, bounded, whatever happened: the topology inside (`topo/topo.sh down`: its namespace,
#    links and routes live in this machine's network namespace), every process whose root is the
#    fresh root (by pid), every mount under it (checked before anything is deleted), the root itself.
#
# The one difference from a real machine: a chroot has no init system, so service starts by package
# scripts are refused (policy-rc.d exit 101, as in Debian's container images): the `postgresql`
# package creates its `main` cluster (port 5432) but nothing starts it, nor docker.io's daemon. gate0
# never uses that cluster (its lab is its own, on GATE0_LAB_PORT).
# A second one: podman runs inside a chroot, so a `docker exec` into a container escapes it (entering
# the container's mount namespace resets the process's root to the namespace's own - this machine's
# real root - because runc's pivot_root replaced only the chroot's root mount). The topology journey,
# whose client tools run by `docker exec`, detects that and skips with this reason; on a real machine
# (and in CI) it runs.
#
# Environment: GATE0_LAB_PORT (passed inside; default 55432: the lab's port, the topology's id),
# FRESH_DIR (default /var/tmp/gate0-fresh: logs, the downloaded packages' cache, the root),
# FRESH_KEEP=1 keeps the root (still unmounted), FRESH_NO_DEB_CACHE=1 downloads the packages again.
# Logs after the run: $FRESH_DIR/logs/ (debootstrap, the matrix' per-major pytest logs, demo.log).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BRANCH=${1:-$(git -C "$REPO" rev-parse --abbrev-ref HEAD)}
WORK=${FRESH_DIR:-/var/tmp/gate0-fresh}
ROOT=$WORK/root-$$
LOGS=$WORK/logs
BUNDLE=$WORK/gate0-$$.bundle
PORT=${GATE0_LAB_PORT:-55432}
SUITE=bookworm
INCLUDE=python3,python3-venv,python3-pip,make,git,ca-certificates,iproute2,build-essential
SOURCES=/etc/apt/sources.list.d/debian.sources
DEMO_TIMEOUT=${FRESH_DEMO_TIMEOUT:-1200}
TEST_TIMEOUT=${FRESH_TEST_TIMEOUT:-5400}

log() { echo "fresh: $*"; }
die() { echo "fresh: $*" >&2; exit 1; }
now() { date +%s; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts)"
git -C "$REPO" rev-parse --verify -q "refs/heads/$BRANCH" >/dev/null || die "no branch '$BRANCH'"

# --- this machine's facts ------------------------------------------------------------------------

# The first non-security URIs: of the deb822 sources file.
mirror() {
    local uri
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$SOURCES" 2>/dev/null | grep -v -- '-security' | head -n 1)
    echo "${uri:-http://deb.debian.org/debian}"
}

# pip's find-links directories on this machine (its config and environment).
find_links() {
    { python3 -m pip config list 2>/dev/null | sed -n "s/^.*find-links='\(.*\)'$/\1/p"; echo "${PIP_FIND_LINKS:-}"; } |
        tr ' ' '\n' | sed 's|^file://||' | grep '^/' | sort -u | while read -r d; do [ -d "$d" ] && echo "$d"; done
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null && return 0
    log "installing debootstrap (apt-get)"
    apt-get -o DPkg::Lock::Timeout=300 update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq debootstrap >/dev/null ||
        die "could not install debootstrap"
}

# --- the root ------------------------------------------------------------------------------------

bootstrap() {
    local m debs
    m=$(mirror)
    debs=$WORK/debs-$SUITE-$(printf '%s %s' "$INCLUDE" "$m" | md5sum | cut -c1-12).tgz
    if [ -z "${FRESH_NO_DEB_CACHE:-}" ] && [ ! -s "$debs" ]; then
        # The packages only (the same selection), kept for the next run: saves the download.
        timeout 1800 debootstrap --variant=minbase --include="$INCLUDE" --make-tarball="$debs.tmp" \
            "$SUITE" "$WORK/tarball-build-$$" "$m" >"$LOGS/debootstrap.log" 2>&1 && mv "$debs.tmp" "$debs"
        rm -rf "$WORK/tarball-build-$$" "$debs.tmp"
    fi
    local from=()
    [ -z "${FRESH_NO_DEB_CACHE:-}" ] && [ -s "$debs" ] && from=(--unpack-tarball="$debs")
    log "debootstrap --variant=minbase --include=$INCLUDE $SUITE $ROOT $m ${from[*]}"
    timeout 1800 debootstrap --variant=minbase --include="$INCLUDE" "${from[@]}" "$SUITE" "$ROOT" "$m" \
        >>"$LOGS/debootstrap.log" 2>&1 || { tail -n 5 "$LOGS/debootstrap.log" >&2; die "debootstrap failed (see $LOGS/debootstrap.log)"; }
}

configure_root() {
    rm -f "$ROOT/etc/apt/sources.list"
    install -D -m 0644 "$SOURCES" "$ROOT$SOURCES"
    [ -f /etc/pip.conf ] && install -D -m 0644 /etc/pip.conf "$ROOT/etc/pip.conf"
    [ -d /etc/xdg/pip ] && mkdir -p "$ROOT/etc/xdg" && cp -a /etc/xdg/pip "$ROOT/etc/xdg/"
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    [ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
    # No init system in a chroot: package scripts may not start services (see the header).
    printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d" && chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
    chroot "$ROOT" /usr/sbin/update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the root"
}

MOUNTED=false
mount_root() {
    MOUNTED=true
    mount --bind "$ROOT" "$ROOT" && mount --make-private "$ROOT" || return 1
    local d
    for d in proc sys dev; do
        mount --rbind "/$d" "$ROOT/$d" && mount --make-rslave "$ROOT/$d" || return 1
    done
    mountpoint -q "$ROOT/dev/pts" || { mount --rbind /dev/pts "$ROOT/dev/pts" && mount --make-rslave "$ROOT/dev/pts"; } || return 1
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/dev/shm" || return 1
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$ROOT/run" || return 1
    for d in $(find_links); do
        mkdir -p "$ROOT$d" && mount --bind "$d" "$ROOT$d" && mount -o remount,bind,ro "$ROOT$d" || return 1
    done
}

# --- inside --------------------------------------------------------------------------------------

inside() { # command... -> run in the root with a clean environment, as root in /root
    env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GATE0_LAB_PORT="$PORT" \
        chroot "$ROOT" /bin/bash -c 'cd /root && exec "$@"' inside "$@"
}

# --- cleanup (bounded) ---------------------------------------------------------------------------

procs_in_root() {
    local p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        [ "$r" = "$ROOT" ] || [[ $r == "$ROOT"/* ]] && echo "${p#/proc/}"
    done
}

stop_procs() { # TERM, then KILL, whatever runs in the root (new ones too); bounded: 5 rounds
    local pids round i
    for round in 1 2 3 4 5; do
        mapfile -t pids < <(procs_in_root)
        [ ${#pids[@]} -eq 0 ] && return 0
        log "stopping ${#pids[@]} processes left in the root (pids ${pids[*]})"
        kill -TERM "${pids[@]}" 2>/dev/null
        for i in $(seq 10); do
            sleep 0.5
            mapfile -t pids < <(procs_in_root)
            [ ${#pids[@]} -eq 0 ] && return 0
        done
        kill -KILL "${pids[@]}" 2>/dev/null
        sleep 0.5
    done
    mapfile -t pids < <(procs_in_root)
    [ ${#pids[@]} -eq 0 ] || echo "fresh: processes still in the root: ${pids[*]}" >&2
}

mounts_under_root() { findmnt -rn -o TARGET | awk -v r="$ROOT" '$0 == r || index($0, r "/") == 1' | sort -r; }

unmount_all() {
    local i m left
    for i in 1 2 3 4 5; do
        left=$(mounts_under_root)
        [ -z "$left" ] && return 0
        while read -r m; do umount "$m" 2>/dev/null; done <<<"$left"
        sleep 0.5
    done
    # Still busy: detach lazily (nothing below is deleted while any mount remains listed).
    mounts_under_root | while read -r m; do umount -l "$m" 2>/dev/null; done
    [ -z "$(mounts_under_root)" ]
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    rm -f "$BUNDLE"
    if [ -d "$ROOT/root/gate0" ] && $MOUNTED; then
        # The topology's namespace, links and routes live in this machine's network namespace.
        timeout 180 env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin GATE0_LAB_PORT="$PORT" \
            chroot "$ROOT" /bin/bash -c 'cd /root/gate0 && topo/topo.sh down' >/dev/null 2>&1
        mkdir -p "$LOGS/matrix"
        cp -a "$ROOT"/root/gate0/.cache/matrix/. "$LOGS/matrix/" 2>/dev/null
        cp -aL "$ROOT"/root/gate0/.lab/demo.log "$LOGS/demo.log" 2>/dev/null
    fi
    stop_procs
    if ! unmount_all; then
        echo "fresh: still mounted under $ROOT (left in place):" >&2; mounts_under_root >&2
        exit 1
    fi
    if [ -z "${FRESH_KEEP:-}" ]; then
        rm -rf --one-file-system "$ROOT"
    else
        log "kept the root: $ROOT"
    fi
    exit "$rc"
}

# --- main ----------------------------------------------------------------------------------------

# All in one function, called on the last line: bash has read the whole script before it runs,
# so editing the file during a run cannot change what the run does.
main() {
    mkdir -p "$WORK" "$LOGS"
    rm -f "$LOGS"/*.log
    rm -rf "$LOGS/matrix"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    t_start=$(now)
    # The branch as committed now (later commits to it do not change this run).
    git -C "$REPO" bundle create "$BUNDLE" "refs/heads/$BRANCH" >/dev/null 2>&1 || die "git bundle of $BRANCH failed"
    COMMIT=$(git -C "$REPO" bundle list-heads "$BUNDLE" "refs/heads/$BRANCH" | cut -d' ' -f1)
    log "branch $BRANCH at ${COMMIT:0:12}, root $ROOT, lab port $PORT"
    ensure_debootstrap
    t0=$(now)
    bootstrap
    configure_root
    log "root ready in $(( $(now) - t0 ))s: $(chroot "$ROOT" python3 --version 2>&1), $(du -sh "$ROOT" | cut -f1)"
    mount_root || die "mounting the root failed"

    mv "$BUNDLE" "$ROOT/tmp/gate0.bundle"
    inside git clone -q -b "$BRANCH" /tmp/gate0.bundle /root/gate0 || die "git clone inside the root failed"
    [ "$(inside git -C /root/gate0 rev-parse HEAD)" = "$COMMIT" ] || die "the clone is not at $COMMIT"

    log "make demo (as root, in /root/gate0)"
    t0=$(now)
    # In the background and waited for: a signal to this script runs the cleanup at once (which stops
    # whatever still runs in the root), not when the command ends.
    inside timeout -k 30 "$DEMO_TIMEOUT" bash -c 'cd /root/gate0 && make demo' &
    wait $!
    demo_rc=$? demo_s=$(( $(now) - t0 ))
    log "make demo: exit $demo_rc in ${demo_s}s"

    log "make test (as root, in /root/gate0)"
    t0=$(now)
    inside timeout -k 30 "$TEST_TIMEOUT" bash -c 'cd /root/gate0 && make test' &
    wait $!
    test_rc=$? test_s=$(( $(now) - t0 ))
    log "make test: exit $test_rc in ${test_s}s"

    log "branch $BRANCH at ${COMMIT:0:12} on $(date -u +%F), $(( $(now) - t_start ))s in all"
    log "demo exit $demo_rc in ${demo_s}s, test exit $test_rc in ${test_s}s"
    [ "$demo_rc" = 0 ] && [ "$test_rc" = 0 ]
}

main "$@"; exit $?
