"""The read-only proof of a PostgreSQL role: every way it could write, each checked on the server.

`READ ONLY` is a session setting any client can switch off, so the boundary is the role's own
privileges. `read_only_proof(cur)` runs in the caller's (read-only) transaction and returns findings
`{check, ok, detail, versions}`; a finding that is not ok names the objects and the role.

The role is checked together with every role it is a member of, directly or inherited, with or
without INHERIT (a member can `SET ROLE` and write as that role). Version differences are data:
tables below keyed by `server_version_num`, so supporting another major version is an edit here.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class PredefinedRole(NamedTuple):
    """A predefined role gate0 classifies, and what holding it means on each channel."""

    since: int      # the first server_version_num that has it
    does: str       # what a member can do
    writes: bool    # a write path of the production role (prod.role_cannot_write)
    reaches: bool   # reaches beyond the clone for the clone login (clone.production_unreachable)


# Every predefined role gate0 knows, in one table. A predefined role (pg_*) not in it counts as a
# writer: a new major's role is not trusted until it is classified here (tests/test_versions.py
# checks the table against each supported server).
PREDEFINED_ROLES: dict[str, PredefinedRole] = {
    "pg_write_all_data": PredefinedRole(140000, "INSERT/UPDATE/DELETE on every table", True, False),
    "pg_database_owner": PredefinedRole(140000, "owner of the current database", True, False),
    "pg_write_server_files": PredefinedRole(110000, "writes files on the database server", True, True),
    "pg_execute_server_program": PredefinedRole(110000, "runs programs on the database server", True, True),
    "pg_signal_backend": PredefinedRole(90600, "cancels or terminates other sessions, production's too",
                                        True, True),
    "pg_create_subscription": PredefinedRole(
        160000, "creates subscriptions that connect outward and write replicated rows", True, True),
    "pg_maintain": PredefinedRole(
        170000, "VACUUM/CLUSTER/REFRESH MATERIALIZED VIEW/REINDEX/LOCK on every relation", True, False),
    "pg_signal_autovacuum_worker": PredefinedRole(180000, "terminates autovacuum workers", True, False),
    "pg_read_server_files": PredefinedRole(110000, "reads files on the database server", False, True),
    "pg_read_all_data": PredefinedRole(140000, "SELECT on every table", False, False),
    "pg_read_all_settings": PredefinedRole(100000, "reads every setting", False, False),
    "pg_read_all_stats": PredefinedRole(100000, "reads every statistics view", False, False),
    "pg_stat_scan_tables": PredefinedRole(100000, "runs monitoring functions that lock briefly",
                                          False, False),
    "pg_monitor": PredefinedRole(100000, "monitoring (the read-only roles above)", False, False),
    "pg_checkpoint": PredefinedRole(150000, "runs CHECKPOINT", False, False),
    "pg_use_reserved_connections": PredefinedRole(160000, "uses reserved connection slots", False, False),
}
# The table's two views, by channel: name -> (since, what a member can do) / since.
PREDEFINED_WRITE_ROLES: dict[str, tuple[int, str]] = {
    n: (r.since, r.does) for n, r in PREDEFINED_ROLES.items() if r.writes}
PREDEFINED_READ_ROLES: dict[str, int] = {n: r.since for n, r in PREDEFINED_ROLES.items() if not r.writes}
# Role attributes that are write paths by themselves: attribute -> pg_roles column.
ROLE_ATTRIBUTES: dict[str, str] = {
    "superuser": "rolsuper",
    "bypassrls": "rolbypassrls",
    "createrole": "rolcreaterole",
    "createdb": "rolcreatedb",
    "replication": "rolreplication",
}
# Table privileges that write (or lock/rewrite): privilege -> first server_version_num.
TABLE_WRITE_PRIVILEGES: dict[str, int] = {
    "INSERT": 0,
    "UPDATE": 0,
    "DELETE": 0,
    "TRUNCATE": 0,
    "TRIGGER": 0,
    "REFERENCES": 0,
    "MAINTAIN": 170000,
}
# Relations PUBLIC may "write" without changing anything shared: UPDATE on pg_settings is SET.
SESSION_LOCAL_RELATIONS: tuple[str, ...] = ("pg_catalog.pg_settings",)
COLUMN_WRITE_PRIVILEGES: tuple[str, ...] = ("INSERT", "UPDATE", "REFERENCES")
SEQUENCE_WRITE_PRIVILEGES: tuple[str, ...] = ("USAGE", "UPDATE")
# From this version large-object writes are refused inside READ ONLY transactions (before it,
# lo_create/lowrite/lo_unlink work in them: privileges are then the only boundary).
LO_READ_ONLY_ENFORCED_FROM = 160000
# From this version privileges on configuration parameters exist (GRANT SET / ALTER SYSTEM ON
# PARAMETER, pg_parameter_acl). ALTER SYSTEM on any parameter rewrites the server's configuration;
# SET on a parameter of one of these contexts lifts a superuser-only setting for the role's sessions
# (lo_compat_privileges opens every large object, session_replication_role skips triggers and keys).
PARAMETER_ACL_FROM = 150000
# (SET on a user parameter needs no grant; sighup/postmaster ones cannot be SET in a session.)
PARAMETER_SET_CONTEXTS: tuple[str, ...] = ("superuser", "superuser-backend")
# Extensions that open their own sessions (possibly as another role, possibly to another server).
SESSION_EXTENSION_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "dblink": ("dblink_connect", "dblink_connect_u", "dblink_exec", "dblink"),
    "pg_background": ("pg_background_launch",),
}
DETAIL_LIMIT = 8
# How many SECURITY DEFINER hops are followed (a definer's owner running another definer ...).
DEFINER_DEPTH = 3

# A finding's item: (text naming the object and the role, the role(s) it holds through, '/'-joined).
Item = tuple[str, str]

_ROLES_CTE = "WITH roles AS (SELECT oid, rolname FROM pg_roles WHERE oid = ANY(%(roles)s::oid[]))"


def _versions(min_num: int = 0) -> str:
    return "all" if min_num <= 0 else f">= {min_num // 10000}"


def _finding(
    check: str, items: list[Item] | list[str], ok_detail: str, versions: str = "all", what: str = ""
) -> dict[str, Any]:
    """A finding: ok when `items` is empty; otherwise the detail names the first few items."""
    items = [i[0] if isinstance(i, tuple) else i for i in items]
    if not items:
        return {"check": check, "ok": True, "detail": ok_detail, "versions": versions}
    shown = ", ".join(items[:DETAIL_LIMIT])
    more = f" and {len(items) - DETAIL_LIMIT} more" if len(items) > DETAIL_LIMIT else ""
    return {"check": check, "ok": False, "detail": f"{what}{shown}{more}", "versions": versions}


def _rows(cur: Any, query: str, params: dict[str, Any]) -> list[tuple]:
    """Run `query` with the CTE `roles` (the role and every role it belongs to) in front of it."""
    cur.execute(_ROLES_CTE + query, params)
    return cur.fetchall()


def role_closure(cur: Any, role_oid: int | None = None) -> list[dict[str, Any]]:
    """A role (default current_user) and every role it is a member of (direct or inherited, any
    INHERIT/SET option), the role itself first."""
    cols = ", ".join(f"r.{c}" for c in ROLE_ATTRIBUTES.values())
    who = "current_user" if role_oid is None else "%(role)s::oid"
    me = "r.rolname = current_user" if role_oid is None else "r.oid = %(role)s::oid"
    cur.execute(
        f"SELECT r.oid::bigint, r.rolname, {me}, {cols} FROM pg_roles AS r "
        f"WHERE {me} OR pg_has_role({who}, r.oid, 'MEMBER') "
        f"ORDER BY {me} DESC, r.rolname",
        {"role": role_oid},
    )
    out = []
    for row in cur.fetchall():
        attrs = dict(zip(ROLE_ATTRIBUTES, row[3:], strict=True))
        out.append({"oid": row[0], "name": row[1], "self": row[2], **attrs})
    return out


def _attribute_findings(closure: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for attr in ROLE_ATTRIBUTES:
        holders = [r["name"] if r["self"] else f"{r['name']} (member of)" for r in closure if r[attr]]
        out.append(
            _finding(
                attr,
                holders,
                f"no {attr.upper()} attribute on the role or its roles",
                what=f"{attr.upper()} held by ",
            )
        )
    return out


def _table_privileges(cur: Any, p: dict[str, Any], version: int) -> list[Item]:
    privs = [k for k, v in TABLE_WRITE_PRIVILEGES.items() if version >= v]
    rows = _rows(
        cur,
        """
        SELECT c.oid::regclass::text, string_agg(DISTINCT pr.priv, '/'), string_agg(DISTINCT r.rolname, '/')
        FROM pg_class AS c CROSS JOIN unnest(%(privs)s::text[]) AS pr(priv) CROSS JOIN roles AS r
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND has_table_privilege(r.oid, c.oid, pr.priv)
          AND NOT EXISTS (SELECT 1 FROM unnest(%(local)s::text[]) AS l(n) WHERE to_regclass(l.n) = c.oid)
        GROUP BY 1 ORDER BY 1 LIMIT 200""",
        {**p, "privs": privs, "local": list(SESSION_LOCAL_RELATIONS)},
    )
    return [(f"{rel} ({priv} as {who})", who) for rel, priv, who in rows]


def _column_privileges(cur: Any, p: dict[str, Any]) -> list[Item]:
    rows = _rows(
        cur,
        """
        SELECT c.oid::regclass::text || '.' || quote_ident(a.attname), pr.priv, r.rolname
        FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
        CROSS JOIN unnest(%(privs)s::text[]) AS pr(priv) CROSS JOIN roles AS r
        WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
          AND has_column_privilege(r.oid, c.oid, a.attnum, pr.priv)
        ORDER BY 1, 2 LIMIT 200""",
        {**p, "privs": list(COLUMN_WRITE_PRIVILEGES)},
    )
    return [(f"{col} ({priv} as {who})", who) for col, priv, who in rows]


def _ownership(cur: Any, p: dict[str, Any], functions: bool = True) -> list[Item]:
    # Names are made only for what the roles own (a catalog-wide regprocedure::text costs ~70 ms).
    rows = _rows(
        cur,
        """
        SELECT o.kind, CASE o.kind WHEN 'database' THEN quote_ident(current_database())
            WHEN 'schema' THEN o.oid::regnamespace::text WHEN 'relation' THEN o.oid::regclass::text
            WHEN 'function' THEN o.oid::regprocedure::text ELSE o.oid::text END AS name, r.rolname FROM (
            SELECT 'database' AS kind, oid, datdba AS owner FROM pg_database
            WHERE datname = current_database()
            UNION ALL SELECT 'schema', oid, nspowner FROM pg_namespace
            UNION ALL SELECT 'relation', oid, relowner FROM pg_class
            UNION ALL SELECT 'function', oid, proowner FROM pg_proc
            UNION ALL SELECT 'large object', oid, lomowner FROM pg_largeobject_metadata
        ) AS o JOIN roles AS r ON r.oid = o.owner
        WHERE %(functions)s OR o.kind <> 'function'
        ORDER BY 1, 2 LIMIT 200""",
        {**p, "functions": functions},
    )
    return [(f"{kind} {name} (owned by {who})", who) for kind, name, who in rows]


def _create_privileges(cur: Any, p: dict[str, Any]) -> tuple[list[Item], list[str]]:
    rows = _rows(
        cur,
        """
        SELECT 'database ' || quote_ident(current_database()), r.rolname, 'CREATE' FROM roles AS r
        WHERE has_database_privilege(r.oid, current_database(), 'CREATE')
        UNION ALL
        SELECT 'schema ' || quote_ident(n.nspname), r.rolname, 'CREATE'
        FROM pg_namespace AS n CROSS JOIN roles AS r WHERE has_schema_privilege(r.oid, n.oid, 'CREATE')
        UNION ALL
        SELECT 'database ' || quote_ident(current_database()), r.rolname, 'TEMPORARY' FROM roles AS r
        WHERE has_database_privilege(r.oid, current_database(), 'TEMPORARY')
        ORDER BY 1, 2 LIMIT 200""",
        p,
    )
    create = [(f"{obj} (as {who})", who) for obj, who, priv in rows if priv == "CREATE"]
    temp = sorted({who for _obj, who, priv in rows if priv == "TEMPORARY"})
    return create, temp


def _sequence_privileges(cur: Any, p: dict[str, Any]) -> list[Item]:
    rows = _rows(
        cur,
        """
        SELECT c.oid::regclass::text, string_agg(DISTINCT pr.priv, '/'), string_agg(DISTINCT r.rolname, '/')
        FROM pg_class AS c CROSS JOIN unnest(%(privs)s::text[]) AS pr(priv) CROSS JOIN roles AS r
        WHERE c.relkind = 'S' AND has_sequence_privilege(r.oid, c.oid, pr.priv)
        GROUP BY 1 ORDER BY 1 LIMIT 200""",
        {**p, "privs": list(SEQUENCE_WRITE_PRIVILEGES)},
    )
    return [(f"{seq} ({priv} as {who})", who) for seq, priv, who in rows]


def _security_definer(cur: Any, p: dict[str, Any], version: int, depth: int = DEFINER_DEPTH,
                      cache: dict[int, str | None] | None = None) -> list[Item]:
    """EXECUTE on SECURITY DEFINER functions whose owner can write: the owner is judged by the same
    write paths as the login role (`owner_write_path`), so a definer owned by a read-only role is fine."""
    cache = {} if cache is None else cache
    rows = _rows(
        cur,
        """
        SELECT f.oid::regprocedure::text, f.proowner::bigint, pg_get_userbyid(f.proowner),
               string_agg(DISTINCT r.rolname, '/')
        FROM pg_proc AS f CROSS JOIN roles AS r
        WHERE f.prosecdef AND has_function_privilege(r.oid, f.oid, 'EXECUTE')
          AND f.proowner <> ALL(%(roles)s::oid[])
        GROUP BY 1, 2, 3 ORDER BY 1 LIMIT 200""",
        p,
    )
    out: list[Item] = []
    for fn, owner_oid, owner, who in rows:
        if owner_oid not in cache:
            cache[owner_oid] = owner_write_path(cur, owner_oid, version, depth, cache)
        if cache[owner_oid]:
            out.append((f"{fn} (owner {owner} can write: {cache[owner_oid]}; EXECUTE as {who})", who))
    return out


def owner_write_path(cur: Any, owner_oid: int, version: int, depth: int,
                     cache: dict[int, str | None]) -> str | None:
    """The first way a SECURITY DEFINER function's owner could write, or None when it cannot.

    The same write paths as the login role's, except owning functions (a definer's owner owns at
    least that function; replacing its own code is not a write to production's data). Definer chains
    are followed `depth` levels; a deeper chain counts as a write (fail closed).
    """
    roles = role_closure(cur, owner_oid)
    for r in roles:
        for attr in ROLE_ATTRIBUTES:
            if r[attr]:
                return f"{attr.upper()} (held by {r['name']})"
    p = {"roles": [r["oid"] for r in roles]}
    items = (
        _table_privileges(cur, p, version)
        + _column_privileges(cur, p)
        + _ownership(cur, p, functions=False)
        + _create_privileges(cur, p)[0]
        + _sequence_privileges(cur, p)
        + _large_objects(cur, p, version)[1]
        + session_extension_items(cur, p)
        + _user_mappings(cur, p)
        + _parameter_privileges(cur, p, version)
    )
    if depth > 0:
        cache.setdefault(owner_oid, None)  # a cycle of definers adds nothing new
        items += _security_definer(cur, p, version, depth - 1, cache)
    elif _rows(cur, " SELECT 1 FROM pg_proc AS f CROSS JOIN roles AS r WHERE f.prosecdef "
               "AND f.proowner <> ALL(%(roles)s::oid[]) AND has_function_privilege(r.oid, f.oid, 'EXECUTE') "
               "LIMIT 1", p):
        return f"SECURITY DEFINER chain deeper than {DEFINER_DEPTH} (not followed)"
    writers = _writer_roles(roles, items, version)
    if items:
        return items[0][0]
    return writers[0] if writers else None


def _large_objects(cur: Any, p: dict[str, Any], version: int) -> tuple[dict[str, Any], list[Item]]:
    cur.execute("SELECT current_setting('lo_compat_privileges')")
    compat = cur.fetchone()[0] == "on"
    rows = _rows(
        cur,
        """
        SELECT l.oid::text, COALESCE(r.rolname, 'PUBLIC')
        FROM pg_largeobject_metadata AS l CROSS JOIN LATERAL aclexplode(l.lomacl) AS a
        LEFT JOIN roles AS r ON r.oid = a.grantee
        WHERE a.privilege_type = 'UPDATE' AND (a.grantee = 0 OR r.oid IS NOT NULL)
        ORDER BY 1 LIMIT 200""",
        p,
    )
    items: list[Item] = [(f"large object {lo} (UPDATE as {who})", who) for lo, who in rows]
    if compat:
        items.insert(0, ("lo_compat_privileges = on (every role may write every large object)", "PUBLIC"))
    ro_note = (
        "READ ONLY transactions refuse large-object writes"
        if version >= LO_READ_ONLY_ENFORCED_FROM
        else "READ ONLY transactions do NOT refuse large-object writes before 16: privileges are "
        "the only boundary"
    )
    ok_detail = (
        f"no UPDATE on any large object, lo_compat_privileges off; {ro_note}; creating new "
        "large objects needs no privilege on any version (adds objects, changes no existing data)"
    )
    finding = _finding("large_objects", items, ok_detail, what=f"{ro_note}; writable: ")
    finding["versions"] = f"all (read-only enforcement {_versions(LO_READ_ONLY_ENFORCED_FROM)})"
    return finding, items


def session_extension_items(cur: Any, p: dict[str, Any]) -> list[Item]:
    """EXECUTE on functions of extensions that open their own sessions (`p['roles']`: role oids)."""
    items = []
    for ext, functions in SESSION_EXTENSION_FUNCTIONS.items():
        rows = _rows(
            cur,
            """
            SELECT f.oid::regprocedure::text, string_agg(DISTINCT r.rolname, '/')
            FROM pg_extension AS e JOIN pg_depend AS d
              ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
                 AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
            JOIN pg_proc AS f ON f.oid = d.objid CROSS JOIN roles AS r
            WHERE e.extname = %(ext)s AND f.proname = ANY(%(fns)s::text[])
              AND has_function_privilege(r.oid, f.oid, 'EXECUTE')
            GROUP BY 1 ORDER BY 1""",
            {**p, "ext": ext, "fns": list(functions)},
        )
        items += [(f"{ext}: EXECUTE on {fn} (as {who})", who) for fn, who in rows]
    return items


def _user_mappings(cur: Any, p: dict[str, Any]) -> list[Item]:
    """Foreign-server user mappings for the role, its roles or PUBLIC (pg_user_mappings: readable by all)."""
    rows = _rows(
        cur,
        """
        SELECT m.srvname, w.fdwname, COALESCE(r.rolname, 'PUBLIC')
        FROM pg_user_mappings AS m JOIN pg_foreign_server AS s ON s.oid = m.srvid
        JOIN pg_foreign_data_wrapper AS w ON w.oid = s.srvfdw
        LEFT JOIN roles AS r ON r.oid = m.umuser
        WHERE m.umuser = 0 OR r.oid IS NOT NULL
        ORDER BY 1, 3""",
        p,
    )
    return [(f"server {srv} ({fdw}) mapped for {who}", who) for srv, fdw, who in rows]


def _parameter_privileges(cur: Any, p: dict[str, Any], version: int) -> list[Item]:
    """ALTER SYSTEM on any parameter, SET on a superuser one (15+; none can exist before)."""
    if version < PARAMETER_ACL_FROM:
        return []
    # A parameter pg_settings does not show (a placeholder, hidden) counts as a superuser one.
    rows = _rows(
        cur,
        """
        SELECT a.parname, pr.priv, string_agg(DISTINCT r.rolname, '/')
        FROM pg_parameter_acl AS a CROSS JOIN unnest(ARRAY['ALTER SYSTEM', 'SET']) AS pr(priv)
        CROSS JOIN roles AS r LEFT JOIN pg_settings AS s ON s.name = a.parname
        WHERE has_parameter_privilege(r.oid, a.parname, pr.priv)
          AND (pr.priv = 'ALTER SYSTEM' OR s.context IS NULL OR s.context = ANY(%(contexts)s::text[]))
        GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 200""",
        {**p, "contexts": list(PARAMETER_SET_CONTEXTS)},
    )
    return [(f"{priv} on parameter {name} (as {who})", who) for name, priv, who in rows]


def _writer_roles(closure: list[dict[str, Any]], items: list[Item], version: int) -> list[str]:
    """Roles the login role belongs to that can write: predefined write roles, write attributes,
    or any role some other finding names (their privileges are one SET ROLE away)."""
    named: set[str] = set()
    for _text, who in items:
        named.update(who.split("/"))
    out = []
    for r in closure:
        if r["self"]:
            continue
        pre = PREDEFINED_WRITE_ROLES.get(r["name"])
        if pre and version >= pre[0]:
            out.append(f"{r['name']} ({pre[1]})")
        elif r["name"].startswith("pg_") and not pre and r["name"] not in PREDEFINED_READ_ROLES:
            out.append(f"{r['name']} (a predefined role gate0 has not classified: taken as a writer)")
        elif any(r[a] for a in ROLE_ATTRIBUTES) or r["name"] in named:
            out.append(f"{r['name']} (can write: see the other findings)")
    return out


def read_only_proof(cur: Any, version: int) -> dict[str, Any]:
    """Every way the login role could write, checked on the server. Raises psycopg2 errors."""
    closure = role_closure(cur)
    p = {"roles": [r["oid"] for r in closure]}
    table = _table_privileges(cur, p, version)
    column = _column_privileges(cur, p)
    owned = _ownership(cur, p)
    create, temp = _create_privileges(cur, p)
    seqs = _sequence_privileges(cur, p)
    secdef = _security_definer(cur, p, version)
    lobj, lo_items = _large_objects(cur, p, version)
    sessions = session_extension_items(cur, p)
    mappings = _user_mappings(cur, p)
    params = _parameter_privileges(cur, p, version)
    writers = _writer_roles(
        closure,
        table + column + owned + create + seqs + secdef + lo_items + sessions + mappings + params,
        version,
    )
    member_of = ", ".join(r["name"] for r in closure if not r["self"]) or "none"
    maintain = "/MAINTAIN" if version >= TABLE_WRITE_PRIVILEGES["MAINTAIN"] else ""
    temp_note = f" (TEMPORARY held by {', '.join(temp)}: session-local objects only)" if temp else ""
    findings = [
        *_attribute_findings(closure),
        _finding(
            "membership",
            writers,
            f"member of: {member_of} (none can write)",
            versions="all (predefined write roles per version)",
            what="member of roles that can write: ",
        ),
        _finding(
            "table_privileges",
            table,
            f"no INSERT/UPDATE/DELETE/TRUNCATE/TRIGGER/REFERENCES{maintain} on any relation",
            versions="all (MAINTAIN >= 17)",
            what="write privileges on ",
        ),
        _finding(
            "column_privileges",
            column,
            "no column-level INSERT/UPDATE/REFERENCES",
            what="column write privileges on ",
        ),
        _finding(
            "ownership", owned, "owns no database, schema, relation, function or large object", what="owns "
        ),
        _finding(
            "create_privileges",
            create,
            f"no CREATE on the database or any schema{temp_note}",
            what="CREATE on ",
        ),
        _finding("sequences", seqs, "no USAGE/UPDATE on any sequence", what="sequence privileges: "),
        _finding(
            "security_definer",
            secdef,
            "no EXECUTE on SECURITY DEFINER functions of writers",
            what="can run as a writer: ",
        ),
        lobj,
        _finding(
            "session_extensions",
            sessions,
            "no dblink-like extension the role can execute",
            what="opens other sessions: ",
        ),
        _finding(
            "user_mappings",
            mappings,
            "no foreign-server user mapping for the role or PUBLIC",
            what="reaches other servers: ",
        ),
        _finding(
            "parameter_privileges",
            params,
            "no ALTER SYSTEM and no SET on a superuser parameter granted"
            if version >= PARAMETER_ACL_FROM
            else f"parameter privileges do not exist before {PARAMETER_ACL_FROM // 10000}",
            versions=_versions(PARAMETER_ACL_FROM),
            what="may change server parameters: ",
        ),
    ]
    return {
        "ok": all(f["ok"] for f in findings),
        "role": closure[0]["name"] if closure else None,
        "roles_checked": [r["name"] for r in closure],
        "server_version_num": version,
        "findings": findings,
    }
