#!/usr/bin/python
"""Ansible module clone_sql: run SQL on the clone only, after a server-side guard, rolled back by default."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: clone_sql
short_description: Run SQL on a gate0-checked clone only, guarded on the server, rolled back unless told
description:
  - The clone-side SQL runner for mutation roles. It only ever talks to the clone. Before connecting
    it refuses a O(login_db) that does not start with O(clone_name_prefix) or that is one of
    O(production_databases); after connecting, in the same transaction as the statements, a
    server-side guard aborts unless C(current_database()) is exactly O(login_db) and starts with the
    prefix.
  - O(mode=rollback) (the default) runs the statements in one C(BEGIN ... ROLLBACK), residue-free as
    the operator's clone checks ran. O(mode=commit) commits, and only with a passed gate0 for this
    very clone (O(gate0)) that passed, is younger than O(max_age), names the same database and has the same
    server identity (database oid, server address and port, system identifier when readable); a
    clone dropped and recreated since the gate has a new oid and is refused.
  - When O(gate0) is given in O(mode=rollback) it is verified the same way (the role gate0_require
    uses this, with no statements, to prove the gate still holds).
  - Every statement runs under the shared statement and lock timeouts. Statements are SQL text with
    optional positional parameters passed to the driver (never formatted into the text).
version_added: "1.0.0"
author: gate0 developers
extends_documentation_fragment: [gate0_pg, gate0_pg.clone_name]
attributes:
  check_mode:
    support: partial
    details:
      - In check mode O(mode=commit) connects, guards and verifies gate0 but runs no statement and
        commits nothing; O(mode=rollback) runs as usual (it never leaves anything behind).
  diff_mode:
    support: none
options:
  clone_name_prefix:
    description: The clone naming rule (a literal prefix); O(login_db) must start with it.
    type: str
    required: true
  statements:
    description:
      - SQL statements run in order in one transaction. A string, or a dict with C(query) and
        C(args) (a list of positional C(%s) parameters).
    type: list
    elements: raw
    default: []
  mode:
    description: C(rollback) always rolls back; C(commit) commits (requires O(gate0)).
    type: str
    choices: [rollback, commit]
    default: rollback
  gate0:
    description: The C(gate0) fact of a passed gate for this clone (required with O(mode=commit)).
    type: dict
  max_age:
    description: Seconds a gate0 PASS stays acceptable.
    type: int
    default: 3600
  max_rows:
    description: Rows returned per statement at most (the statement itself is not limited).
    type: int
    default: 1000
  quiet_since:
    description:
      - The clone's session counter as gate0 last read it (C(pg_stat_database.sessions), C(stats_reset),
        C(own_after), C(database), C(database_oid), C(at), C(by)). Right after connecting, before any
        statement, the module reads the counter again and refuses unless exactly one more session was
        established since (its own, plus C(own_after) sessions gate0 opened after that reading) and the
        statistics were not reset. Proves that no app connected to the clone in between, even one that
        came and went. Omitted, the counter is only read and returned.
    type: dict
"""

EXAMPLES = r"""
- name: Probe an insert on the clone, residue-free
  clone_sql:
    login_host: 127.0.0.1
    login_user: workflow_admin
    login_password: "{{ gate0_clone_login_password }}"
    login_db: directus_gov_test_20260602
    clone_name_prefix: directus_gov_test_
    production_databases: [directus]
    statements:
      - query: INSERT INTO governance_scan_cursor (cursor_name, watermark, events_seen) VALUES (%s, %s, 0)
        args: [probe, wm-0]

- name: Seed ownership on the clone (commits; only with a passed gate0 for this clone)
  clone_sql:
    login_unix_socket: /var/run/postgresql
    login_user: workflow_admin
    login_db: "{{ gate0_clone_database }}"
    clone_name_prefix: directus_gov_test_
    mode: commit
    gate0: "{{ gate0 }}"
    statements:
      - UPDATE event_type_registry SET active = false
"""

RETURN = r"""
database:
  description: The database the statements ran in (C(current_database())).
  type: str
  returned: success
  sample: directus_gov_test_20260602
identity:
  description: Who answered (module_utils gate0_pg server_identity).
  type: dict
  returned: success
  sample: {database: directus_gov_test_20260602, database_oid: 16420, address: 127.0.0.1, port: 5432}
  contains:
    database:
      description: C(current_database()).
      type: str
      sample: directus_gov_test_20260602
    database_oid:
      description: The database's oid (a recreated database gets a new one).
      type: int
      sample: 16420
    address:
      description: C(inet_server_addr()), null over a socket.
      type: str
      sample: 127.0.0.1
    port:
      description: C(inet_server_port()).
      type: int
      sample: 5432
    version:
      description: C(server_version).
      type: str
      sample: "15.10"
    version_num:
      description: C(server_version_num).
      type: int
      sample: 150010
    system_identifier:
      description: The cluster's system identifier when the role may read it, else null.
      type: str
      sample: null
sessions:
  description:
    - The clone's C(pg_stat_database.sessions) and C(stats_reset) read right after connecting, this
      module's own session included (the next gate0 connection compares with it).
  type: dict
  returned: success
  sample: {sessions: 42, stats_reset: null}
mode:
  description: The mode the transaction ended with.
  type: str
  returned: success
  sample: rollback
committed:
  description: Whether the transaction was committed.
  type: bool
  returned: success
  sample: false
wrote:
  description: Whether the statements wrote anything (a transaction id was assigned).
  type: bool
  returned: success
  sample: true
gate0_verified:
  description: Whether a gate0 fact was given and verified against this clone.
  type: bool
  returned: success
  sample: true
results:
  description: One entry per statement, in order.
  type: list
  elements: dict
  returned: success
  sample: [{statement: 0, status: INSERT 0 1, rowcount: 1, columns: [], rows: []}]
  contains:
    statement:
      description: Index of the statement in O(statements).
      type: int
      sample: 0
    status:
      description: The server's command tag.
      type: str
      sample: INSERT 0 1
    rowcount:
      description: Rows affected or returned.
      type: int
      sample: 1
    columns:
      description: Column names of a statement that returns rows.
      type: list
      elements: str
      sample: [count]
    rows:
      description: Up to O(max_rows) rows, values as JSON-compatible types (others as text).
      type: list
      elements: list
      sample: [[30]]
elapsed_ms:
  description: Milliseconds from connecting to the end of the transaction.
  type: int
  returned: success
  sample: 12
"""

import datetime
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gate0.core.plugins.module_utils import gate0_interval, gate0_pg

GateError = gate0_pg.GateError

# Identity keys compared between the gate0 fact and the server now (when both sides know them).
IDENTITY_KEYS = ("database", "database_oid", "address", "port", "system_identifier")
# A gate0 stamped this far in the future (clock skew) is still accepted; more is refused.
CLOCK_SKEW_S = 60


def check_target(p: dict[str, Any]) -> None:
    """Client-side refusal before any connection: only a database named by the clone rule (the one
    rule, gate0_pg.clone_name_refusal, with its minimum prefix length and suffix pattern)."""
    refused = gate0_pg.clone_name_refusal(p["login_db"], p["clone_name_prefix"],
                                          p["production_databases"] or [], p["clone_name_prefix_min_length"],
                                          p["clone_name_suffix_regex"])
    if refused:
        raise GateError(f"checking the target: {refused}")


def gate0_age_problem(gate0: dict[str, Any], max_age: int, now: datetime.datetime) -> str | None:
    """Why a gate0 fact is not a fresh PASS (None when it is)."""
    if gate0.get("passed") is not True:
        return f"gate0 did not pass (passed={gate0.get('passed')!r}, run {gate0.get('run_id')})"
    stamp = str(gate0.get("checked_at") or "")
    try:
        checked = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return f"gate0 has no valid checked_at (got {stamp!r})"
    age = (now - checked).total_seconds()
    if age > max_age:
        return f"gate0 is {int(age)} s old, older than max_age {max_age} s (checked_at {stamp})"
    if age < -CLOCK_SKEW_S:
        return f"gate0 checked_at {stamp} is in the future"
    return None


def identity_problems(gate0: dict[str, Any], login_db: str, observed: dict[str, Any]) -> list[str]:
    """Differences between the clone gate0 checked and the database answering now."""
    clone = gate0.get("clone") or {}
    out: list[str] = []
    if clone.get("database") != login_db:
        out.append(f"gate0 was for clone {clone.get('database')!r}, not {login_db!r}")
    expected = clone.get("identity")
    if not isinstance(expected, dict) or expected.get("database_oid") is None:
        out.append("gate0 carries no server identity of the clone")
        return out
    for key in IDENTITY_KEYS:
        want, got = expected.get(key), observed.get(key)
        if want is not None and got is not None and str(want) != str(got):
            out.append(f"{key} is {got!r} now, {want!r} at the gate")
    return out


def jsonable(value: Any) -> Any:
    """A row value as Ansible can return it: basic types kept, everything else as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def run_statements(cur: Any, statements: list[Any], max_rows: int) -> list[dict[str, Any]]:
    """Execute each statement; raise GateError naming the statement that failed."""
    results = []
    for index, stmt in enumerate(statements):
        if isinstance(stmt, dict):
            query, args = str(stmt.get("query") or ""), stmt.get("args")
        else:
            query, args = str(stmt), None
        if not query.strip():
            raise GateError(f"running statement {index}: it is empty")
        try:
            cur.execute(query, args)
            rows = cur.fetchmany(max_rows) if cur.description else []
        except Exception as exc:
            raise GateError(f"running statement {index}: {gate0_pg.one_line(exc)}") from None
        results.append({
            "statement": index,
            "status": cur.statusmessage,
            "rowcount": cur.rowcount,
            "columns": [d[0] for d in cur.description] if cur.description else [],
            "rows": [jsonable(list(r)) for r in rows],
        })
    return results


def read_sessions(conn: Any) -> dict[str, Any]:
    """The clone's session counter with this session in it (before any transaction)."""
    try:
        gate0_interval.settle_own_session(conn)
        with conn.cursor() as cur:
            return gate0_interval.sessions_established(cur)
    except Exception as exc:
        raise GateError(f"reading the clone's session counter: {gate0_pg.one_line(exc)}") from None


def quiet_problem(quiet_since: dict[str, Any], identity: dict[str, Any],
                  sessions: dict[str, Any]) -> str | None:
    """Why the counter does not prove that nobody but gate0 connected since `quiet_since` (the one
    rule: gate0_interval.interval_problem), on this very clone."""
    if not gate0_interval.same_clone(quiet_since, identity):
        return (f"its session counter was kept for {quiet_since.get('database')!r} (oid "
                f"{quiet_since.get('database_oid')}), this is {identity['database']!r} (oid "
                f"{identity['database_oid']})")
    return gate0_interval.interval_problem(quiet_since, sessions)


def run(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Connect, guard, verify gate0, run, end the transaction. Raises GateError."""
    gate0_pg.check_timeouts(p)
    check_target(p)
    if p["mode"] == "commit" and not p.get("gate0"):
        raise GateError("mode commit requires gate0 (the gate0 fact of a passed gate for this clone)")
    if p.get("gate0"):
        why = gate0_age_problem(p["gate0"], p["max_age"], datetime.datetime.now(datetime.UTC))
        if why:
            raise GateError(f"verifying gate0: {why}")
    start = time.monotonic()
    conn = gate0_pg.connect(p)
    try:
        sessions = read_sessions(conn)
        gate0_pg.begin(conn, p, read_only=False, isolation="READ COMMITTED")
        with conn.cursor() as cur:
            gate0_pg.clone_guard(cur, p["login_db"], p["clone_name_prefix"])
            try:
                identity = gate0_pg.server_identity(cur)
            except Exception as exc:
                raise GateError(f"reading the server identity: {gate0_pg.one_line(exc)}") from None
            if p.get("gate0"):
                problems = identity_problems(p["gate0"], p["login_db"], identity)
                if problems:
                    raise GateError("verifying gate0 against the clone: " + "; ".join(problems))
            kept = p.get("quiet_since")
            quiet = None if kept is None else quiet_problem(kept, identity, sessions)
            if quiet:
                raise GateError(f"proving the clone stayed quiet: {quiet}")
            skip = check_mode and p["mode"] == "commit"
            results = [] if skip else run_statements(cur, p["statements"] or [], p["max_rows"])
            wrote = gate0_pg.xid_assigned(cur) is not None
        commit = p["mode"] == "commit" and not check_mode
        try:
            # begin() opened the transaction with an explicit BEGIN (autocommit on): end it the same way.
            with conn.cursor() as cur:
                cur.execute("COMMIT" if commit else "ROLLBACK")
        except Exception as exc:
            raise GateError(f"ending the transaction: {gate0_pg.one_line(exc)}") from None
    finally:
        gate0_pg.rollback_quietly(conn)
    return {
        "database": identity["database"],
        "identity": identity,
        "sessions": sessions,
        "mode": "commit" if commit else "rollback",
        "committed": commit,
        "wrote": wrote,
        "gate0_verified": bool(p.get("gate0")),
        "results": results,
        "elapsed_ms": gate0_pg.elapsed_ms(start),
        "changed": commit and wrote,
    }


def argument_spec() -> dict[str, Any]:
    spec = gate0_pg.pg_argument_spec()
    spec.update(gate0_pg.clone_name_argument_spec())
    spec.update(
        clone_name_prefix={"type": "str", "required": True},
        statements={"type": "list", "elements": "raw", "default": []},
        mode={"type": "str", "choices": ["rollback", "commit"], "default": "rollback"},
        gate0={"type": "dict"},
        max_age={"type": "int", "default": 3600},
        max_rows={"type": "int", "default": 1000},
        quiet_since={"type": "dict"},
    )
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if not gate0_pg.HAS_PSYCOPG2:
        module.fail_json(msg=gate0_pg.PSYCOPG2_HINT, exception=gate0_pg.PSYCOPG2_IMPORT_ERROR)
    try:
        result = run(module.params, module.check_mode)
    except GateError as exc:
        module.fail_json(msg=f"clone_sql on {module.params['login_db']}: {exc}", changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
