"""disk_headroom's work (library/disk_headroom.py, and gate0_observe's disk part).

Filesystem total/used/free for a path on the host, and database sizes from the server over one
read-only connection. `observe(params)` never raises: what could not be read is reported as an error.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ansible_collections.gate0.core.plugins.module_utils import gate0_pg

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


def database_sizes(params: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], dict[str, str], int]:
    """pg_database_size of each name over one read-only connection; a refusal becomes an error entry.

    The third value counts the sessions this opened on params' login_db (0 or 1): gate0 knows its own
    sessions on the clone (gate0_interval: the clone's session counter after the gate)."""
    sizes: dict[str, Any] = {n: None for n in names}
    errors: dict[str, str] = {}
    opened = 0
    if not names:
        return sizes, errors, opened
    conn = None
    if params.get("clone_name_prefix") is not None:
        refused = gate0_pg.clone_name_refusal(params["login_db"], params["clone_name_prefix"],
                                              params["production_databases"],
                                              params["clone_name_prefix_min_length"],
                                              params["clone_name_suffix_regex"])
        if refused:
            errors["connection"] = f"refusing the clone channel before connecting: {refused}"
            return sizes, errors, opened
    try:
        gate0_pg.check_timeouts(params)
        conn = gate0_pg.connect(params)
        opened = 1
        gate0_pg.begin(conn, params, read_only=True, isolation="READ COMMITTED")
        cur = conn.cursor()
        for name in names:
            cur.execute("SAVEPOINT gate0_size")
            try:
                cur.execute("SELECT pg_database_size(%s)", (name,))
                sizes[name] = int(cur.fetchone()[0])
                cur.execute("RELEASE SAVEPOINT gate0_size")
            except psycopg2.Error as exc:
                reason = f"reading the size of {name}: {gate0_pg.one_line(exc)}"
                try:
                    cur.execute("ROLLBACK TO SAVEPOINT gate0_size")
                except psycopg2.Error:  # the connection is gone: say why, not "cursor already closed"
                    raise gate0_pg.GateError(reason) from None
                errors[name] = reason
        cur.close()
    except gate0_pg.GateError as exc:
        errors["connection"] = str(exc)
    except psycopg2.Error as exc:
        errors["connection"] = f"reading database sizes: {gate0_pg.one_line(exc)}"
    finally:
        if conn is not None:
            gate0_pg.rollback_quietly(conn)
    return sizes, errors, opened


def argument_spec() -> dict[str, Any]:
    """disk_headroom's options (its DOCUMENTATION describes them)."""
    spec = gate0_pg.pg_argument_spec()
    spec.update(gate0_pg.clone_name_argument_spec())
    spec.update(
        path={"type": "str", "required": True},
        databases={"type": "list", "elements": "str", "default": []},
        clone_name_prefix={"type": "str"},
    )
    return spec


def observe(p: dict[str, Any]) -> dict[str, Any]:
    """The filesystem and the sizes as a module result; what could not be read is in the *_error keys."""
    if not gate0_pg.HAS_PSYCOPG2:
        return {"changed": False, "failed": True, "msg": gate0_pg.PSYCOPG2_HINT, "duration_ms": 0}
    begin = time.monotonic()
    fs, path_error = None, None
    try:
        fs = filesystem(p["path"])
    except OSError as exc:
        path_error = f"measuring {p['path']}: {exc.strerror or exc}"
    fs_ms = gate0_pg.elapsed_ms(begin)
    start = time.monotonic()
    sizes, size_errors, opened = database_sizes(p, p["databases"])
    return {"changed": False, "path": p["path"], "path_error": path_error, "filesystem": fs, "sizes": sizes,
            "size_errors": size_errors, "sessions_opened": {p["login_db"]: opened},
            "timings": {"filesystem_ms": fs_ms, "database_ms": gate0_pg.elapsed_ms(start)},
            "duration_ms": gate0_pg.elapsed_ms(begin)}
