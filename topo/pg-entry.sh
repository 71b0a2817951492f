#!/bin/bash
# gate0 topology: the `postgres` container's entrypoint (runs inside the container, as its root).
# Provisions the lab's schema, data and roles with lab/lab.sh itself (mounted at /opt/gate0/lab),
# then opens the server on the container's network address and runs it in the foreground.
#
# Mounts: /opt/gate0/lab (the repo's lab/, read-only), /var/lib/gate0/secrets (role passwords).
# Environment: GATE0_TOPO_HBA: subnets allowed to log in with a password (space-separated).
set -euo pipefail

export GATE0_LAB_DIR=/var/lib/gate0/lab
export GATE0_LAB_PORT=5432
LAB=$GATE0_LAB_DIR

# The passwords the controller holds (lab.sh keeps its own copies in $LAB/secrets).
mkdir -p "$LAB/secrets"
cp /var/lib/gate0/secrets/*.pw "$LAB/secrets/"
chmod 0600 "$LAB/secrets"/*.pw

# Also the packaged server's default socket directory, where the client tools run inside the
# container find it (`docker exec -i postgres psql ...`, the clone refresh): as on a real host.
install -d -o postgres -g postgres -m 2775 /var/run/postgresql

/opt/gate0/lab/lab.sh up

PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$LAB" -p 5432 -U postgres -d postgres)
"${PSQL[@]}" -c "ALTER SYSTEM SET listen_addresses = '*'"
"${PSQL[@]}" -c "ALTER SYSTEM SET unix_socket_directories = '/var/run/postgresql', '$LAB'"
for net in ${GATE0_TOPO_HBA:-}; do
    line="host    all   all       $net    scram-sha-256"
    grep -qxF "$line" "$LAB/data/pg_hba.conf" || echo "$line" >> "$LAB/data/pg_hba.conf"
done
/opt/gate0/lab/lab.sh down

echo "gate0 topology: postgres listening on its container address"
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/postgres" -D "$LAB/data"
