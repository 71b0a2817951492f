"""What the clone channel can reach beyond the clone: production, the server, the outside.

The seed's channel table has two lines: the production channel cannot read the clone
(`prod.clone_unreachable`, gate0_fingerprint.py), and the clone channel reaches the clone only. This
file observes the second line, inside the clone part's read-only transaction, over the clone channel:

- `production_reach(cur, ...)`: every catalog path by which the clone login could reach production or
  the server beneath it (CONNECT on a production/allowlisted database by any path, database
  ownership, role attributes, memberships in roles that reach beyond the clone);
- `outbound_links(cur, ...)`: everything in the clone that can open a connection outward (foreign
  servers and user mappings, dblink-like functions, subscriptions, logical slots and walsenders,
  pg_cron jobs);
- `attempt(params, ...)`: the proof by attempt, outside any transaction: a connection to a database
  with the given credentials, and whether the server *refused it by authorization* (the only refusal
  that proves anything: a closed port or a timeout proves nothing and is reported as such).

Each finding is `{name, text}`: `name` is what a profile may allow (a server, subscription or slot
name, an extension), `text` one line naming the object and the role it is held through.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.gate0.core.plugins.module_utils import gate0_pg, gate0_readonly

# Role attributes that reach beyond one database: attribute -> why.
REACH_ATTRIBUTES: dict[str, str] = {
    "superuser": "superuser: every database and the server's shell (COPY ... PROGRAM)",
    "createrole": "CREATEROLE: can grant itself roles that reach production",
    "replication": "REPLICATION: streams every database of the server",
}
# Predefined roles whose members reach beyond the clone: name -> (first server_version_num, why).
REACH_ROLES: dict[str, tuple[int, str]] = {
    "pg_execute_server_program": (110000, "runs programs on the database server"),
    "pg_write_server_files": (110000, "writes files on the database server"),
    "pg_read_server_files": (110000, "reads files on the database server"),
    "pg_signal_backend": (90600, "cancels or terminates production sessions"),
    "pg_create_subscription": (160000, "creates subscriptions that connect outward"),
}
# Extensions whose functions send requests outward by themselves (HTTP, cloud services); any of
# their functions the clone login can execute is an outbound link (dblink: gate0_readonly's list).
OUTBOUND_EXTENSIONS: tuple[str, ...] = ("http", "pg_net", "aws_s3", "aws_lambda", "pg_curl")
# Procedural languages in which a function can open sockets (untrusted: lanpltrusted false), other
# than C and internal (C functions are judged by their extension above).
NATIVE_LANGUAGES: tuple[str, ...] = ("c", "internal")
# libpq/server messages of a connection refused by authorization (the server answered and said no).
# Anything else (connection refused, timeout, unknown host, a missing socket) is not a refusal.
AUTH_REFUSALS: tuple[tuple[str, str], ...] = (
    ("permission denied for database", "no CONNECT privilege"),
    ("no pg_hba.conf entry", "no pg_hba.conf entry"),
    ("pg_hba.conf rejects connection", "pg_hba.conf rejects it"),
    ("password authentication failed", "password refused"),
    ("authentication failed for user", "authentication refused"),
    ("is not permitted to log in", "role may not log in"),
    (r'role "[^"]*" does not exist', "no such role on that server"),
    (r'database "[^"]*" does not exist', "no such database on that server"),
)


def closure(cur: Any) -> list[dict[str, Any]]:
    """The clone login and every role it belongs to (gate0_readonly's rule: any INHERIT/SET option)."""
    return gate0_readonly.role_closure(cur)


def _databases(cur: Any, names: list[str]) -> list[dict[str, Any]]:
    cur.execute(
        "SELECT d.oid::bigint, d.datname::text, pg_get_userbyid(d.datdba)::text, d.datdba::bigint, "
        "d.datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(d.datacl) AS a "
        "WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') "
        "FROM pg_database AS d WHERE d.datname = ANY(%s::text[]) ORDER BY 2", (names,))
    keys = ("oid", "name", "owner", "owner_oid", "public_connect")
    return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


def production_reach(cur: Any, databases: list[str], production_role: str, version: int) -> dict[str, Any]:
    """Every catalog path from the clone login to production (`databases`: production + allowlist)."""
    roles = closure(cur)
    if roles and roles[0]["superuser"]:
        roles = roles[:1]  # a superuser belongs to every role: its own attribute is the finding
    oids = [r["oid"] for r in roles]
    found = _databases(cur, sorted(set(databases)))
    findings: list[dict[str, str]] = []

    def add(name: str, text: str) -> None:
        findings.append({"name": name, "text": text})

    for attr, why in REACH_ATTRIBUTES.items():
        for r in roles:
            if r[attr]:
                add(attr, f"{why} (held by {r['name']}{'' if r['self'] else ', a role it belongs to'})")
    for db in found:
        cur.execute(
            "SELECT r.rolname::text FROM pg_roles AS r WHERE r.oid = ANY(%s::oid[]) "
            "AND has_database_privilege(r.oid, %s::oid, 'CONNECT') ORDER BY r.rolname = current_user DESC, 1",
            (oids, db["oid"]))
        holders = [row[0] for row in cur.fetchall()]
        if holders:
            via = "PUBLIC" if db["public_connect"] else "/".join(holders)
            add(db["name"], f"CONNECT on database {db['name']} (as {via})")
        if db["owner_oid"] in oids:
            add(db["name"], f"owns database {db['name']} (as {db['owner']})")
    reach_roles = {n: why for n, (v, why) in REACH_ROLES.items() if version >= v}
    owners = {db["owner"]: f"owner of production database {db['name']}" for db in found}
    for r in roles:
        if r["self"]:
            continue
        why = reach_roles.get(r["name"]) or owners.get(r["name"])
        if r["name"] == production_role:
            why = "the production read-only role"
        if why:
            add(r["name"], f"member of {r['name']} ({why})")
    missing = sorted(set(databases) - {db["name"] for db in found})
    return {"login": roles[0]["name"] if roles else None, "roles": [r["name"] for r in roles],
            "databases_here": [db["name"] for db in found], "databases_elsewhere": missing,
            "findings": findings}


def _rows(cur: Any, query: str, params: Any = None) -> list[tuple]:
    cur.execute(query, params)
    return cur.fetchall()


def _visible(cur: Any, what: str, query: str, params: Any = None) -> list[tuple] | str:
    """Rows of a catalog query, or the one-line reason it is not visible (never read as 'none')."""
    cur.execute("SAVEPOINT gate0_reach")
    try:
        rows = _rows(cur, query, params)
    except gate0_pg.psycopg2.Error as exc:
        cur.execute("ROLLBACK TO SAVEPOINT gate0_reach")
        return f"{what} not visible: {gate0_pg.one_line(exc)}"
    cur.execute("RELEASE SAVEPOINT gate0_reach")
    return rows


def outbound_links(cur: Any) -> dict[str, Any]:
    """Everything in the clone (or usable by the clone login) that can open a connection outward."""
    roles = closure(cur)
    p = {"roles": [r["oid"] for r in roles]}
    findings: list[dict[str, str]] = []
    not_visible: list[dict[str, str]] = []

    def add(name: str, text: str) -> None:
        findings.append({"name": name, "text": text})

    for srv, fdw, who in _rows(cur, (
            "SELECT s.srvname::text, w.fdwname::text, "
            "CASE WHEN m.umuser = 0 THEN 'PUBLIC' ELSE m.usename::text END "
            "FROM pg_foreign_server AS s JOIN pg_foreign_data_wrapper AS w ON w.oid = s.srvfdw "
            "JOIN pg_user_mappings AS m ON m.srvid = s.oid ORDER BY 1, 3")):
        add(srv, f"foreign server {srv} ({fdw}) with a user mapping for {who}")
    for srv, fdw, who in _rows(cur, (
            "SELECT s.srvname::text, w.fdwname::text, string_agg(r.rolname::text, '/' ORDER BY r.rolname) "
            "FROM pg_foreign_server AS s JOIN pg_foreign_data_wrapper AS w ON w.oid = s.srvfdw "
            "CROSS JOIN pg_roles AS r WHERE r.oid = ANY(%(roles)s::oid[]) "
            "AND has_server_privilege(r.oid, s.oid, 'USAGE') "
            "AND NOT EXISTS (SELECT 1 FROM pg_user_mappings AS m WHERE m.srvid = s.oid) "
            "GROUP BY 1, 2 ORDER BY 1"),
            p):
        add(srv, f"foreign server {srv} ({fdw}): USAGE as {who} (may create its own user mapping)")
    for fdw, who in _rows(cur, (
            "SELECT w.fdwname::text, string_agg(r.rolname::text, '/' ORDER BY r.rolname) "
            "FROM pg_foreign_data_wrapper AS w CROSS JOIN pg_roles AS r WHERE r.oid = ANY(%(roles)s::oid[]) "
            "AND has_foreign_data_wrapper_privilege(r.oid, w.oid, 'USAGE') GROUP BY 1 ORDER BY 1"), p):
        add(fdw, f"foreign-data wrapper {fdw}: USAGE as {who} (may create foreign servers)")
    by_extension: dict[str, list[str]] = {}
    for text, _who in gate0_readonly.session_extension_items(cur, p):
        ext, _, what = text.partition(": EXECUTE on ")
        by_extension.setdefault(ext, []).append(what)
    for ext, functions in by_extension.items():
        shown = ", ".join(functions[:3]) + (f" and {len(functions) - 3} more" if len(functions) > 3 else "")
        add(ext, f"{ext}: EXECUTE on {len(functions)} function(s) that open connections: {shown}")
    for ext, n, shown in _rows(cur, (
            "SELECT e.extname::text, count(DISTINCT f.oid), "
            "string_agg(DISTINCT f.oid::regprocedure::text, ', ') "
            "FROM pg_extension AS e JOIN pg_depend AS d ON d.refobjid = e.oid "
            "AND d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_proc'::regclass "
            "AND d.deptype = 'e' "
            "JOIN pg_proc AS f ON f.oid = d.objid CROSS JOIN pg_roles AS r "
            "WHERE e.extname = ANY(%(exts)s::text[]) AND r.oid = ANY(%(roles)s::oid[]) "
            "AND has_function_privilege(r.oid, f.oid, 'EXECUTE') GROUP BY 1 ORDER BY 1"),
            {**p, "exts": list(OUTBOUND_EXTENSIONS)}):
        add(ext, f"{ext}: EXECUTE on {n} function(s) that send requests outward: {shown[:200]}")
    for lang, n, shown in _rows(cur, (
            "SELECT l.lanname::text, count(DISTINCT f.oid), "
            "string_agg(DISTINCT f.oid::regprocedure::text, ', ') "
            "FROM pg_proc AS f JOIN pg_language AS l ON l.oid = f.prolang CROSS JOIN pg_roles AS r "
            "WHERE NOT l.lanpltrusted AND l.lanname <> ALL(%(native)s::text[]) "
            "AND r.oid = ANY(%(roles)s::oid[]) "
            "AND has_function_privilege(r.oid, f.oid, 'EXECUTE') GROUP BY 1 ORDER BY 1"),
            {**p, "native": list(NATIVE_LANGUAGES)}):
        add(lang, f"{lang}: EXECUTE on {n} function(s) in an untrusted language (may open sockets): "
                  f"{shown[:200]}")
    subs = _visible(cur, "subscriptions", (
        "SELECT s.subname::text, s.subenabled FROM pg_subscription AS s "
        "JOIN pg_database AS d ON d.oid = s.subdbid WHERE d.datname = current_database() ORDER BY 1"))
    if isinstance(subs, str):
        not_visible.append({"name": "subscriptions", "text": subs})
    else:
        for name, enabled in subs:
            add(name, f"subscription {name} ({'enabled' if enabled else 'disabled'})")
    for slot, plugin, active in _rows(cur, (
            "SELECT slot_name::text, plugin::text, active FROM pg_replication_slots "
            "WHERE database = current_database() ORDER BY 1")):
        add(slot, f"logical replication slot {slot} ({plugin}{', active' if active else ''})")
    for pid, app in _rows(cur, (
            "SELECT pid, application_name FROM pg_stat_activity "
            "WHERE backend_type = 'walsender' AND datname = current_database() ORDER BY 1")):
        add(app or "walsender", f"walsender pid {pid} ({app or 'no application_name'}) streams the clone")
    cron = observe_cron(cur)
    if cron.get("not_visible"):
        not_visible.append({"name": "pg_cron", "text": cron["not_visible"]})
    for job in cron.get("jobs") or []:
        add("pg_cron", f"pg_cron job {job} runs against the clone")
    return {"findings": findings, "not_visible": not_visible, "cron": cron.get("state")}


def observe_cron(cur: Any) -> dict[str, Any]:
    """pg_cron: is it running (its launcher is a visible background worker), and its jobs on the clone."""
    launchers = [r[0] for r in _rows(cur, (
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher' ORDER BY 1"))]
    cur.execute("SELECT to_regclass('cron.job') IS NOT NULL")
    table_here = bool(cur.fetchone()[0])
    if not table_here:
        if launchers:
            return {"state": "running elsewhere",
                    "not_visible": f"pg_cron runs (launcher pid {launchers[0]}) but its job table is not in "
                                   "this database: jobs scheduled against the clone are not visible"}
        return {"state": "not running (no pg_cron launcher, no cron.job here)", "jobs": []}
    jobs = _visible(cur, "pg_cron jobs", (
        "SELECT jobid::text || ' (' || COALESCE(jobname, '-') || ')' FROM cron.job "
        "WHERE database = current_database() ORDER BY jobid"))
    if isinstance(jobs, str):
        return {"state": "installed here", "not_visible": jobs}
    return {"state": f"installed here{', running' if launchers else ''}", "jobs": [j[0] for j in jobs]}


def refusal(message: str) -> str | None:
    """Why a failed connection was refused by authorization, or None when it was not (network, timeout)."""
    for pattern, why in AUTH_REFUSALS:
        if re.search(pattern, message):
            return why
    return None


def attempt(params: dict[str, Any], database: str, where: str) -> dict[str, Any]:
    """Connect to `database` with `params`' credentials; never runs a query. `refused` is True only on
    an authorization refusal, False when accepted, None when nothing was proven (network, timeout)."""
    probe = {**params, "login_db": database}
    server = where
    try:
        conn = gate0_pg.connect(probe)
    except gate0_pg.GateError as exc:
        text = re.sub(r"^connecting to \S+( \(container '[^']*'\))?: (connection to server .*? failed: )?",
                      "", str(exc))
        why = refusal(text)
        return {"database": database, "server": server, "refused": True if why else None,
                "reason": f"{why}: {text}" if why else f"not refused by authorization: {text}"}
    try:
        conn.close()
    except Exception:  # noqa: S110 - closing a connection we must not use; nothing else to do
        pass
    return {"database": database, "server": server, "refused": False,
            "reason": "the connection was accepted (closed at once, no query sent)"}
