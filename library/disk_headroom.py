#!/usr/bin/python
"""Ansible module disk_headroom: filesystem space on the host and database sizes from the server."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: disk_headroom
short_description: Observe free disk space for a path and PostgreSQL database sizes
description:
  - Reads total, used and free bytes of the filesystem holding O(path) on the host that runs the
    module (C(os.statvfs); free is what an unprivileged writer may use, like C(df)'s Avail).
  - Reads C(pg_database_size()) of each of O(databases) over one connection (the clone channel), in a
    read-only transaction with statement and lock timeouts. PostgreSQL answers for a database the login
    may not connect to only when it holds C(pg_read_all_stats); a size it refuses is returned as null
    with the reason in RV(size_errors).
  - Judges nothing; the gate0 role's rules (free bytes, free percent, multiple of the clone's size)
    decide. A missing path is reported in RV(path_error), not raised.
version_added: "0.1.0"
author: gate0 maintainers
extends_documentation_fragment: [gate0_pg, gate0_pg.clone_name]
attributes:
  check_mode:
    support: full
    details: Only reads; check mode runs the same observations.
  diff_mode:
    support: none
options:
  path:
    description: A path on the filesystem to measure (on a real host, the postgres data volume).
    type: str
    required: true
  databases:
    description: Names of the databases whose size to read (for example the clone and production).
    type: list
    elements: str
    default: []
  clone_name_prefix:
    description:
      - When set, O(login_db) is the clone and the module refuses to connect unless it starts with
        exactly this prefix and is none of O(production_databases) (the clone channel's name rule).
    type: str
"""

EXAMPLES = r"""
- name: Measure the room on disk and the databases' sizes
  disk_headroom:
    login_host: 127.0.0.1
    login_user: workflow_admin
    login_password: "{{ gate0_clone_login_password }}"
    login_db: directus_gov_test_20260602
    path: /var/lib/postgresql
    databases: [directus_gov_test_20260602, directus]
  register: disk_facts
"""

RETURN = r"""
path:
  description: The path measured.
  type: str
  returned: always
  sample: /var/lib/postgresql
path_error:
  description: Why the filesystem could not be measured (null when it was).
  type: str
  returned: always
  sample: null
filesystem:
  description: The filesystem's space in bytes (null when O(path) could not be measured).
  type: dict
  returned: always
  sample: {total_bytes: 103079215104, used_bytes: 80530636800, free_bytes: 23622320128, free_percent: 22.9}
  contains:
    total_bytes: {description: Size of the filesystem, type: int}
    used_bytes: {description: Bytes in use, type: int}
    free_bytes: {description: Bytes available to unprivileged writers, type: int}
    free_percent: {description: free_bytes as a percent of used plus free (as df counts), type: float}
sizes:
  description: Database name to its size in bytes (null when not readable).
  type: dict
  returned: always
  sample: {directus_gov_test_20260602: 1258291200, directus: 1358954496}
size_errors:
  description: Database name (or C(connection)) to the reason its size could not be read.
  type: dict
  returned: always
  sample: {directus: "reading the size of directus: permission denied for database directus"}
sessions_opened:
  description:
    - The login database to the number of sessions this module opened on it (0 or 1). The gate counts
      it as its own when it proves, from C(pg_stat_database.sessions), that nobody else connected to the
      clone after the gate.
  type: dict
  returned: success
  sample: {directus_gov_test_20261126: 1}
timings:
  description: Milliseconds spent on the filesystem and on the server.
  type: dict
  returned: always
  sample: {filesystem_ms: 0, database_ms: 6}
  contains:
    filesystem_ms: {description: statvfs, type: int}
    database_ms: {description: Connecting and reading sizes, type: int}
duration_ms:
  description: Milliseconds the whole observation took (filesystem and server).
  type: int
  returned: always
  sample: 7
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gate0.core.plugins.module_utils import gate0_disk as disk


def main() -> None:
    module = AnsibleModule(argument_spec=disk.argument_spec(), supports_check_mode=True)
    result = disk.observe(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
