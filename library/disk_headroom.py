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
timings:
  description: Milliseconds spent on the filesystem and on the server.
  type: dict
  returned: always
  sample: {filesystem_ms: 0, database_ms: 6}
  contains:
    filesystem_ms: {description: statvfs, type: int}
    database_ms: {description: Connecting and reading sizes, type: int}
"""

import os
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

try:
    from ansible.module_utils import gate0_pg
except ImportError:  # pragma: no cover - under pytest, without Ansible's module loader
    from module_utils import gate0_pg  # type: ignore[no-redef]

try:
    import psycopg2
except ImportError:  # pragma: no cover
    psycopg2 = None


def filesystem(path: str) -> dict[str, Any]:
    """Total, used and free bytes of the filesystem holding `path` (raises OSError)."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    # As df: the percent of the space a user can reach (root's reserved blocks excluded).
    reachable = used + free
    return {"total_bytes": total, "used_bytes": used, "free_bytes": free,
            "free_percent": round(100.0 * free / reachable, 2) if reachable else 0.0}


def database_sizes(params: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """pg_database_size of each name over one read-only connection; a refusal becomes an error entry."""
    sizes: dict[str, Any] = {n: None for n in names}
    errors: dict[str, str] = {}
    if not names:
        return sizes, errors
    conn = None
    if params.get("clone_name_prefix") is not None:
        refused = gate0_pg.clone_name_refusal(params["login_db"], params["clone_name_prefix"],
                                              params["production_databases"],
                                              params["clone_name_prefix_min_length"],
                                              params["clone_name_suffix_regex"])
        if refused:
            errors["connection"] = f"refusing the clone channel before connecting: {refused}"
            return sizes, errors
    try:
        gate0_pg.check_timeouts(params)
        conn = gate0_pg.connect(params)
        gate0_pg.begin(conn, params, read_only=True, isolation="READ COMMITTED")
        cur = conn.cursor()
        for name in names:
            cur.execute("SAVEPOINT gate0_size")
            try:
                cur.execute("SELECT pg_database_size(%s)", (name,))
                sizes[name] = int(cur.fetchone()[0])
                cur.execute("RELEASE SAVEPOINT gate0_size")
            except psycopg2.Error as exc:
                cur.execute("ROLLBACK TO SAVEPOINT gate0_size")
                errors[name] = f"reading the size of {name}: {gate0_pg.one_line(exc)}"
        cur.close()
    except gate0_pg.GateError as exc:
        errors["connection"] = str(exc)
    except psycopg2.Error as exc:
        errors["connection"] = f"reading database sizes: {gate0_pg.one_line(exc)}"
    finally:
        if conn is not None:
            gate0_pg.rollback_quietly(conn)
    return sizes, errors


def main() -> None:
    argument_spec = gate0_pg.pg_argument_spec()
    argument_spec.update(gate0_pg.clone_name_argument_spec())
    argument_spec.update(
        path={"type": "str", "required": True},
        databases={"type": "list", "elements": "str", "default": []},
        clone_name_prefix={"type": "str"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not gate0_pg.HAS_PSYCOPG2:
        module.fail_json(msg=gate0_pg.PSYCOPG2_HINT)
    p = module.params
    start = time.monotonic()
    fs, path_error = None, None
    try:
        fs = filesystem(p["path"])
    except OSError as exc:
        path_error = f"measuring {p['path']}: {exc.strerror or exc}"
    fs_ms = gate0_pg.elapsed_ms(start)
    start = time.monotonic()
    sizes, size_errors = database_sizes(p, p["databases"])
    module.exit_json(changed=False, path=p["path"], path_error=path_error, filesystem=fs, sizes=sizes,
                     size_errors=size_errors,
                     timings={"filesystem_ms": fs_ms, "database_ms": gate0_pg.elapsed_ms(start)})


if __name__ == "__main__":
    main()
