#!/usr/bin/env bash
# Install a pinned, real Directus from the npm registry into a cache (never committed), once.
#
#   tests/directus/setup.sh          install when missing; prints the Directus directory
#
# Environment: GATE0_DIRECTUS_VERSION (default 11.3.5: the newest that runs on Node 20; 11.4+ need
# Node 22), GATE0_DIRECTUS_CACHE (default <repo>/.cache/directus). About 470 MB of node_modules.
# Needs node >= 18, npm and a C++ toolchain (isolated-vm, the `exec` operation's sandbox, compiles from
# source: its prebuilt binaries are not on the registry); as root on Debian, what is missing is
# installed from Debian's packages (nodejs npm g++ make python3).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VERSION=${GATE0_DIRECTUS_VERSION:-11.3.5}
CACHE=${GATE0_DIRECTUS_CACHE:-$REPO/.cache/directus}
DIR=$CACHE/$VERSION

die() { echo "directus setup: $*" >&2; exit 1; }

installed() {
    [ -f "$DIR/.installed" ] && [ -x "$DIR/node_modules/.bin/directus" ] &&
        grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/directus/package.json" 2>/dev/null
}

need_node() {
    local missing=()
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    command -v g++ >/dev/null || missing+=(g++)
    command -v make >/dev/null || missing+=(make)
    command -v python3 >/dev/null || missing+=(python3)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "directus setup: installing ${missing[*]} (apt-get install)" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        else
            die "missing ${missing[*]} (Debian: apt-get install ${missing[*]})"
        fi
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 18 ] || die "node $(node --version) is too old: Directus $VERSION needs node >= 18"
    # Debian's node is a shared libnode linked against the system's libraries: a native module
    # (isolated-vm) links against them too, so their -dev packages must be there (a fresh Debian 12
    # failed with "cannot find -lz -lbrotlidec -lcares -lnghttp2 -licui18n").
    if [ "$(node -p 'process.config.variables.node_shared')" = true ] && command -v dpkg >/dev/null; then
        local dev=() pkg
        for pkg in zlib1g-dev libbrotli-dev libc-ares-dev libnghttp2-dev libicu-dev libssl-dev libuv1-dev; do
            dpkg -s "$pkg" >/dev/null 2>&1 || dev+=("$pkg")
        done
        if [ ${#dev[@]} -gt 0 ]; then
            [ "$(id -u)" = 0 ] || die "missing ${dev[*]} to build against Debian's node (apt-get install ${dev[*]})"
            echo "directus setup: installing ${dev[*]} (apt-get install)" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${dev[@]}" >/dev/null
        fi
    fi
}

if installed; then echo "$DIR"; exit 0; fi
need_node
# node-gyp builds against the installed Node's headers (Debian: /usr/include/node, from libnode-dev,
# which npm pulls in), never a download from nodejs.org (only the package registries are reachable).
if [ -f /usr/include/node/node_version.h ]; then export npm_config_nodedir=/usr; fi
mkdir -p "$DIR"
cd "$DIR"
cat > package.json <<JSON
{"name": "gate0-directus", "private": true, "version": "0.0.0",
 "dependencies": {"directus": "$VERSION"}}
JSON
start=$(date +%s)
echo "directus setup: npm install directus@$VERSION into $DIR (about 470 MB, once)" >&2
# Two bounded steps: the download (a registry that stops answering ends it instead of hanging it),
# then the packages' install scripts (isolated-vm compiles for minutes on a small machine; npm
# install would roll everything back if one timeout covered both).
if ! timeout 1200 npm install --no-audit --no-fund --loglevel=error --ignore-scripts \
        >"$DIR/npm-install.log" 2>&1; then
    tail -n 20 "$DIR/npm-install.log" >&2
    die "npm install directus@$VERSION failed (log: $DIR/npm-install.log)"
fi
fetched=$(date +%s)
# Only the native modules Directus loads with PostgreSQL: argon2 (password hashes; prebuilt), sharp
# (images; prebuilt from the registry), isolated-vm (the extensions' sandbox, loaded at start: compiles).
# sqlite3 is never loaded with DB_CLIENT=pg: not built (it would compile for minutes more).
if ! timeout 3600 npm rebuild argon2 isolated-vm sharp --loglevel=error >"$DIR/npm-rebuild.log" 2>&1; then
    tail -n 20 "$DIR/npm-rebuild.log" >&2
    die "building Directus' native modules failed (log: $DIR/npm-rebuild.log)"
fi
touch "$DIR/.installed"
echo "directus setup: installed in $(( $(date +%s) - start )) s (download $(( fetched - start )) s," \
     "native builds $(( $(date +%s) - fetched )) s; $(du -sh "$DIR" | cut -f1))" >&2
echo "$DIR"
