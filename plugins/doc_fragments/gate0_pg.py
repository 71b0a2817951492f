"""Documentation of the connection and session options shared by gate0's modules."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or address of the PostgreSQL server.
      - Empty means the libpq default (the local socket).
    type: str
    default: ''
  login_port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
  login_user:
    description: Role to log in as.
    type: str
    required: true
  login_password:
    description:
      - Password of O(login_user). Never logged, never returned.
    type: str
  login_db:
    description: Database to connect to.
    type: str
    required: true
  login_unix_socket:
    description: Directory of the server's Unix socket; used instead of O(login_host) when set.
    type: str
    default: ''
  ssl_mode:
    description: libpq C(sslmode) of the connection.
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: File of CA certificates to verify the server with (libpq C(sslrootcert)).
    type: str
  connect_timeout:
    description: Seconds to wait for the connection; a positive number.
    type: int
    default: 5
  statement_timeout:
    description:
      - Milliseconds any one statement may run (C(SET LOCAL statement_timeout)); a positive number.
    type: int
    default: 5000
  lock_timeout:
    description:
      - Milliseconds any one statement may wait for a lock (C(SET LOCAL lock_timeout)); a positive number.
    type: int
    default: 1000
  login_container:
    description:
      - Name of the container running PostgreSQL on the host that runs the module.
      - When set, the server's address is the container's IP address on its network, read with
        C(docker inspect) on that host (O(login_host) is then ignored); a missing or stopped container
        fails naming it.
      - Empty means O(login_host) (or O(login_unix_socket)).
    type: str
    default: ''
  login_container_network:
    description:
      - The container network whose address to use when the container is on several networks.
      - Empty means the container's only network with an address.
    type: str
    default: ''
  container_cli:
    description:
      - Container CLI on the host that runs the module, answering C(inspect) as Docker does
        (C(docker), or C(podman)).
    type: str
    default: docker
requirements:
  - psycopg2 (python3-psycopg2 or psycopg2-binary) on the host that runs the module
notes:
  - Every query runs inside one transaction that is rolled back; C(application_name) is C(gate0), the
    time zone UTC and text formats pinned, and the settings are read back from the server.
"""

    # The clone naming rule, shared by the modules that talk to the clone (clone_isolation,
    # disk_headroom): extends_documentation_fragment: [gate0_pg, gate0_pg.clone_name].
    CLONE_NAME = r"""
options:
  clone_name_prefix_min_length:
    description: The prefix must be at least this long (a shorter one is refused before connecting).
    type: int
    default: 1
  clone_name_suffix_regex:
    description: What follows the prefix must fully match this regex (empty for anything non-empty).
    type: str
    default: ''
  production_databases:
    description:
      - Every production database name (the production database and the production allowlist).
      - The module refuses to connect when O(login_db) is one of them or when the prefix would match one.
    type: list
    elements: str
    default: []
"""
