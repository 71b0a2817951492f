"""clone_isolation's work (library/clone_isolation.py, and gate0_observe's clone part).

Observes a clone's isolation facts over the clone channel: one connection, one read-only transaction
with a savepoint per section, then the guarded outbox probe in its own transaction, always rolled back.
`observe(params)` never raises: a failure is a result with `failed` and a one-line `msg`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.gate0.core.plugins.module_utils import (
    gate0_container,
    gate0_interval,
    gate0_pg,
    gate0_reach,
)

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:  # pragma: no cover
    psycopg2 = None
    sql = None

def rel(name: str) -> Any:
    """A relation name from the profile as a quoted identifier."""
    return gate0_pg.ident(*gate0_pg.split_relation(name))


def regclass(relation: str) -> Any:
    """The relation's oid expression, quoted server-side: to_regclass(quote_ident(...) ...)."""
    parts = [sql.SQL("quote_ident({})").format(sql.Literal(p)) for p in gate0_pg.split_relation(relation)]
    return sql.SQL("to_regclass({})").format(sql.SQL(" || '.' || ").join(parts))


def column(name: str, alias: str | None = None) -> Any:
    """A column of the profile, quoted; qualified by a table alias when given."""
    return sql.Identifier(alias, gate0_pg.check_identifier(name)) if alias else gate0_pg.ident(name)


def where_equal(conds: dict[str, Any], alias: str | None = None) -> Any:
    """`col = value AND ...` from a dict (TRUE when empty); a list value is `col IN (...)` (an empty
    list: FALSE). Identifiers and values quoted."""
    if not conds:
        return sql.SQL("TRUE")
    parts = []
    for c, v in conds.items():
        if isinstance(v, list | tuple):
            rhs = sql.SQL("IN ({})").format(sql.SQL(", ").join(sql.Literal(x) for x in v)) if v else None
            parts.append(sql.SQL("{} {}").format(column(str(c), alias), rhs) if rhs else sql.SQL("FALSE"))
        else:
            parts.append(sql.SQL("{} = {}").format(column(str(c), alias), sql.Literal(v)))
    return sql.SQL(" AND ").join(parts)


def need_relation(cur: Any, relation: Any, key: str) -> str:
    """The profile's relation when it exists in the clone; else one line naming it and its profile key."""
    if not relation or not isinstance(relation, str):
        raise gate0_pg.GateError(f"the profile's {key} names no relation (got {relation!r})")
    cur.execute(sql.SQL("SELECT {} IS NOT NULL").format(regclass(relation)))
    if not cur.fetchone()[0]:
        raise gate0_pg.GateError(f"relation {relation!r} (the profile's {key}) does not exist in the clone")
    return relation


def count(cur: Any, relation: str, conds: dict[str, Any] | None = None) -> int:
    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(rel(relation), where_equal(conds or {})))
    return int(cur.fetchone()[0])


def rows_as_dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def run_section(cur: Any, name: str, doing: str, errors: dict[str, str], fn: Callable[[], Any]) -> Any:
    """Run one observation under a savepoint; on a database error record it and go on.

    When the savepoint cannot be rolled back, the connection itself is gone (server stopped, backend
    terminated): no later section could run, so the section's own error ends the observation.
    """
    cur.execute("SAVEPOINT gate0_section")
    try:
        value = fn()
    except (psycopg2.Error, gate0_pg.GateError, AttributeError, KeyError, TypeError, ValueError) as exc:
        reason = f"{doing}: {gate0_pg.one_line(exc) if isinstance(exc, psycopg2.Error) else exc}"
        try:
            cur.execute("ROLLBACK TO SAVEPOINT gate0_section")
        except psycopg2.Error:
            raise gate0_pg.GateError(f"observing the clone: {reason}") from None
        errors[name] = reason
        return None
    cur.execute("RELEASE SAVEPOINT gate0_section")
    return value


def observe_sessions(cur: Any, profile: dict[str, Any]) -> dict[str, Any]:
    ignore = set((profile.get("sessions") or {}).get("ignore_backend_types") or [])
    cur.execute(
        "SELECT current_user::text, "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
        "OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')")
    login, can_see = cur.fetchone()
    cur.execute(
        "SELECT pid, usename::text AS user, application_name AS application, "
        "host(client_addr) AS client_addr, client_port, state, "
        "to_char(COALESCE(state_change, backend_start), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS since, "
        "backend_type, query IS DISTINCT FROM '<insufficient privilege>' AS visible "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid")
    rows = rows_as_dicts(cur)
    cur.execute(
        "SELECT gid, owner::text, to_char(prepared, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS prepared "
        "FROM pg_prepared_xacts WHERE database = current_database() ORDER BY gid")
    prepared = rows_as_dicts(cur)
    cur.execute(
        "SELECT slot_name::text, plugin::text, slot_type, active, active_pid FROM pg_replication_slots "
        "WHERE database = current_database() ORDER BY slot_name")
    slots = rows_as_dicts(cur)
    return {
        "login": login,
        "can_see_all": bool(can_see),
        "foreign": [r for r in rows if r["backend_type"] not in ignore],
        "ignored": [r for r in rows if r["backend_type"] in ignore],
        "prepared": prepared,
        "slots": slots,
    }


def observe_app_server(cur: Any, app_role: str) -> dict[str, Any]:
    cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (app_role,))
    row = cur.fetchone()
    exists = row is not None
    connect_priv = None
    if exists:
        cur.execute("SELECT has_database_privilege(%s, current_database(), 'CONNECT')", (app_role,))
        connect_priv = bool(cur.fetchone()[0])
    return {"role": app_role, "role_exists": exists, "connect_on_clone": connect_priv,
            "superuser": bool(row[0]) if exists else None}


def parse_env(text: str, variable: str) -> str | None:
    """The value of `variable` in env-file text (KEY=VALUE lines, optional export and quotes)."""
    value = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        key, sep, val = line.partition("=")
        if sep and key.strip() == variable:
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
                val = val[1:-1]
            value = val
    return value


def read_binding(p: dict[str, Any]) -> dict[str, Any]:
    """The application's own database binding, from an env file or a container's environment."""
    source, variable = p["app_binding_source"], p["app_binding_variable"]
    out: dict[str, Any] = {"source": source, "where": None, "variable": variable, "value": None,
                           "error": None}
    if source == "env_file":
        out["where"] = p["app_binding_path"]
        try:
            with open(p["app_binding_path"] or "", encoding="utf-8") as fh:
                out["value"] = parse_env(fh.read(), variable)
        except OSError as exc:
            out["error"] = f"reading the app's env file {p['app_binding_path']!r}: {exc.strerror or exc}"
    elif source == "docker":
        name = p["app_binding_container"] or ""
        out["where"] = name
        try:
            info = gate0_container.inspect_container(name, p["container_cli"])
        except gate0_pg.GateError as exc:
            out["error"] = str(exc)
        else:
            out["state"] = gate0_container.container_state(info)
            out["value"] = gate0_container.container_env(info).get(variable)
            if out["value"] is None:
                out["error"] = f"{variable} is not set in the environment of container {name!r}"
        # Every live container on the host, with the databases its environment binds (the judge
        # fails any bound to the clone); a list that cannot be read is an error, not "none".
        try:
            out["containers"] = gate0_container.host_bindings(
                (*gate0_container.BINDING_VARIABLES, variable), p["container_cli"])
        except gate0_pg.GateError as exc:
            out["containers_error"] = str(exc)
    if out["error"] is None and source != "none" and out["value"] is None:
        out["error"] = f"{variable} is not set in {out['where']!r}"
    return out


def need_columns(cur: Any, relation: str, columns: list[str], key: str) -> None:
    """Fail with one line naming the profile key when a column it names is not in the relation."""
    cur.execute(sql.SQL("SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = {} "
                        "AND attnum > 0 AND NOT attisdropped").format(regclass(relation)))
    have = set(cur.fetchone()[0] or [])
    missing = [c for c in dict.fromkeys(columns) if c not in have]
    if missing:
        raise gate0_pg.GateError(
            f"column {missing[0]!r} (the profile's {key}) does not exist in {relation!r}")


def _text_columns(names: list[str], alias: str) -> Any:
    """`alias.col::text AS "col", ...`: only the named columns, never a whole row (options may hold
    credentials)."""
    return sql.SQL(", ").join(sql.SQL("{}::text AS {}").format(column(n, alias), gate0_pg.ident(n))
                              for n in names)


def _listed_columns(spec: dict[str, Any], label_key: str) -> list[str]:
    label = spec.get(label_key)
    return ([str(label)] if label else []) + [str(d) for d in spec.get("details") or []]


def observe_registry(cur: Any, dispatch: dict[str, Any]) -> dict[str, Any]:
    """The registry's rows in scope, and each active one by its key and detail columns."""
    registry = need_relation(cur, dispatch.get("registry"), "dispatch.registry")
    scope = dispatch.get("registry_scope") or {}
    active = dispatch.get("registry_active") or {}
    if not active:
        raise gate0_pg.GateError("the profile's dispatch.registry_active is empty")
    shown = _listed_columns(
        {"key": dispatch.get("registry_key"), "details": dispatch.get("registry_details")}, "key")
    for key, cols in (("registry_scope", list(scope)), ("registry_active", list(active)),
                      ("registry_key/registry_details", shown)):
        need_columns(cur, registry, cols, f"dispatch.{key}")
    # A row counts as active unless the condition is definitely false (NULL is active: fail closed).
    cur.execute(sql.SQL("SELECT count(*), count(*) FILTER (WHERE ({a}) IS NOT FALSE) FROM {r} AS t WHERE {s}")
                .format(a=where_equal(active, "t"), r=rel(registry), s=where_equal(scope, "t")))
    rows, n_active = (int(n) for n in cur.fetchone())
    cur.execute(sql.SQL("SELECT {c} FROM {r} AS t WHERE ({s}) AND ({a}) IS NOT FALSE ORDER BY 1 LIMIT 20")
                .format(c=_text_columns(shown, "t") if shown else sql.SQL("to_jsonb(t)"), r=rel(registry),
                        s=where_equal(scope, "t"), a=where_equal(active, "t")))
    active_rows = rows_as_dicts(cur) if shown else [r[0] for r in cur.fetchall()]
    return {"relation": registry, "scope": scope, "rows": rows, "active": active_rows,
            "active_count": n_active}


def observe_outbound(cur: Any, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One outbound mechanism: its rows, how many are active, and the active ones by name.

    With `parent` (e.g. an operation of a flow) a row is active only when its parent row is active
    too; a row whose parent is missing counts as active (fail closed).
    """
    key = f"dispatch.outbound.{name}"
    relation = need_relation(cur, spec.get("relation"), f"{key}.relation")
    cond = spec.get("active") or {}
    if not cond:
        raise gate0_pg.GateError(f"the profile's {key}.active is empty")
    shown = _listed_columns(spec, "label")
    need_columns(cur, relation, list(cond), f"{key}.active")
    need_columns(cur, relation, shown, f"{key}.label/details")
    is_active = sql.SQL("({}) IS NOT FALSE").format(where_equal(cond, "t"))
    parent_label = sql.SQL("NULL::text")
    parent = spec.get("parent") or None
    if parent:
        prel = need_relation(cur, parent.get("relation"), f"{key}.parent.relation")
        pcond = parent.get("active") or {}
        if not pcond or not parent.get("column") or not parent.get("key"):
            raise gate0_pg.GateError(f"the profile's {key}.parent needs relation, column, key and active")
        need_columns(cur, relation, [str(parent["column"])], f"{key}.parent.column")
        need_columns(cur, prel, [str(parent["key"]), *pcond, *_listed_columns(parent, "label")],
                     f"{key}.parent")
        link = sql.SQL("FROM {p} AS p WHERE {pk} = {fk}").format(
            p=rel(prel), pk=column(str(parent["key"]), "p"), fk=column(str(parent["column"]), "t"))
        # Active unless every parent row is definitely inactive (none at all: active).
        is_active = sql.SQL(
            "{a} AND (NOT EXISTS (SELECT 1 {l}) OR EXISTS (SELECT 1 {l} AND ({pc}) IS NOT FALSE))"
        ).format(a=is_active, l=link, pc=where_equal(pcond, "p"))
        if parent.get("label"):
            parent_label = sql.SQL("(SELECT string_agg({pl}::text, ', ') {l})").format(
                pl=column(str(parent["label"]), "p"), l=link)
    cur.execute(sql.SQL("SELECT count(*), count(*) FILTER (WHERE {a}) FROM {r} AS t")
                .format(a=is_active, r=rel(relation)))
    total, n_active = cur.fetchone()
    named: list[dict[str, Any]] = []
    if n_active and shown:
        cur.execute(sql.SQL("SELECT {c}, {pl} AS gate0_parent FROM {r} AS t WHERE {a} ORDER BY 1 LIMIT 20")
                    .format(c=_text_columns(shown, "t"), pl=parent_label, r=rel(relation), a=is_active))
        named = rows_as_dicts(cur)
    return {"relation": relation, "rows": int(total), "active": int(n_active), "named": named}


def observe_dispatch(cur: Any, dispatch: dict[str, Any]) -> dict[str, Any]:
    registry = observe_registry(cur, dispatch)
    outbound = {name: observe_outbound(cur, name, spec or {})
                for name, spec in sorted((dispatch.get("outbound") or {}).items())}
    return {"registry": registry, "outbound": outbound}


def observe_trigger(cur: Any, outbox: dict[str, Any]) -> dict[str, Any]:
    cur.execute(sql.SQL(
        "SELECT t.tgenabled::text, (t.tgtype & 2) <> 0 AND (t.tgtype & 64) = 0, (t.tgtype & 4) <> 0, "
        "(t.tgtype & 1) <> 0, p.proname::text, n.nspname::text, t.tgqual IS NOT NULL "
        "FROM pg_trigger AS t JOIN pg_proc AS p ON p.oid = t.tgfoid "
        "JOIN pg_namespace AS n ON n.oid = p.pronamespace "
        "WHERE t.tgrelid = {rel} AND t.tgname = {name} AND NOT t.tgisinternal").format(
            rel=regclass(outbox["relation"]), name=sql.Literal(outbox["trigger"])))
    row = cur.fetchone()
    if row is None:
        return {"name": outbox["trigger"], "exists": False}
    enabled, before, insert, each_row, fn, fn_schema, has_when = row
    return {"name": outbox["trigger"], "exists": True, "enabled": enabled, "before": before, "insert": insert,
            "row": each_row, "function": fn, "function_schema": fn_schema, "has_when": has_when,
            "wanted_function": outbox["function"]}


def pick_probe_type(cur: Any, dispatch: dict[str, Any], outbox: dict[str, Any]) -> str:
    """The configured probe event type, or the first inactive type of the registry in scope."""
    if outbox.get("probe_event_type"):
        return str(outbox["probe_event_type"])
    key = dispatch.get("registry_key") or outbox["type_column"]
    cur.execute(sql.SQL("SELECT {k}::text FROM {r} WHERE ({s}) AND ({a}) IS FALSE ORDER BY 1 LIMIT 1").format(
        k=gate0_pg.ident(key), r=rel(dispatch["registry"]),
        s=where_equal(dispatch.get("registry_scope") or {}),
        a=where_equal(dispatch.get("registry_active") or {"active": True})))
    row = cur.fetchone()
    if row is None:
        raise gate0_pg.GateError("no inactive event type in the registry's scope to probe with")
    return row[0]


def sequence_columns(cur: Any, relation: str) -> list[tuple[str, bool]]:
    """Columns filled from a sequence (serial default or identity): (name, is_identity)."""
    cur.execute(sql.SQL(
        "SELECT a.attname::text, a.attidentity <> '' FROM pg_attribute AS a "
        "LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = {rel} AND a.attnum > 0 AND NOT a.attisdropped "
        "AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%') "
        "ORDER BY a.attnum").format(rel=regclass(relation)))
    return [(r[0], bool(r[1])) for r in cur.fetchall()]


def run_probe(conn: Any, params: dict[str, Any], outbox: dict[str, Any], event_type: str,
              seq_cols: list[tuple[str, bool]]) -> dict[str, Any]:
    """The guarded, always rolled back probe insert; reports how the insert ended."""
    out: dict[str, Any] = {"ran": True, "event_type": event_type, "rejected": False, "from_function": False,
                           "sqlstate": None, "message": None, "xid_assigned": None, "rolled_back": False,
                           "reason": None}
    try:
        gate0_pg.begin(conn, params, read_only=False, isolation="READ COMMITTED")
        cur = conn.cursor()
        gate0_pg.clone_guard(cur, params["login_db"], params["clone_name_prefix"])
        # Columns fed by a sequence get an explicit value: nextval() is not transactional and would
        # survive the rollback as residue.
        cols = [outbox["type_column"]] + [c for c, _ in seq_cols]
        vals = [sql.Literal(event_type)] + [sql.Literal(0) for _ in seq_cols]
        overriding = sql.SQL(" OVERRIDING SYSTEM VALUE" if any(i for _, i in seq_cols) else "")
        stmt = sql.SQL("INSERT INTO {r} ({c}){o} VALUES ({v})").format(
            r=rel(outbox["relation"]), c=sql.SQL(", ").join(gate0_pg.ident(c) for c in cols), o=overriding,
            v=sql.SQL(", ").join(vals))
        cur.execute("SAVEPOINT gate0_probe")
        try:
            cur.execute(stmt)
        except psycopg2.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT gate0_probe")
            context = (exc.diag.context or "") if exc.diag else ""
            fn = gate0_pg.split_relation(outbox["function"])[-1]
            out.update(rejected=True, sqlstate=exc.pgcode, message=gate0_pg.one_line(exc),
                       from_function=f"function {fn}(" in context)
        out["xid_assigned"] = gate0_pg.xid_assigned(cur)
        cur.close()
    except gate0_pg.GateError as exc:
        out["reason"] = str(exc)
    except psycopg2.Error as exc:
        out["reason"] = f"probing the outbox: {gate0_pg.one_line(exc)}"
    finally:
        try:
            gate0_pg.rollback(conn)
            out["rolled_back"] = True
        except gate0_pg.GateError as exc:
            out["reason"] = out["reason"] or f"{exc} (the probe)"
    return out


# A pause point for tests only (tests/test_chaos.py): when the module's environment names a file in
# GATE0_TEST_PAUSE_FILE, the clone part, right after its first read (sessions), creates
# "<file>.reached" and waits while the file exists (at most PAUSE_MAX_S seconds), so a test can act at
# a known instant of the check. Unset (always, outside tests), it does nothing. It can only delay.
PAUSE_ENV = "GATE0_TEST_PAUSE_FILE"
PAUSE_MAX_S = 30.0


def pause_point() -> None:
    """Wait at the test pause point when GATE0_TEST_PAUSE_FILE is set (bounded); else return at once."""
    path = os.environ.get(PAUSE_ENV)
    if not path:
        return
    with open(f"{path}.reached", "w", encoding="utf-8"):
        pass
    deadline = time.monotonic() + PAUSE_MAX_S
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)


SECTIONS = ("sessions", "app", "dispatch", "outbox", "lease", "seed", "coverage", "candidates", "reach",
            "outbound")
# Profile sections a profile may leave out (absent or null) where the schema has no counterpart (a stock
# Directus has no outbox, lease, seed, coverage or candidate tables): not observed, and their checks
# are reported 'skipped' with that reason by the judges, never 'pass'.
OPTIONAL_SECTIONS = ("outbox", "lease", "seed", "coverage", "candidates")


def left_out(profile: dict[str, Any]) -> list[str]:
    """The optional sections this profile leaves out."""
    return [n for n in OPTIONAL_SECTIONS if profile.get(n) is None]


def observe_clone(p: dict[str, Any], conn: Any, timings: dict[str, int]) -> dict[str, Any]:
    """Every read-only observation in one transaction, then the probe in its own."""
    profile = p["profile"]
    errors: dict[str, str] = {}
    wanted = set(p["sections"] or SECTIONS)
    skipped = left_out(profile)

    def section(cur: Any, name: str, doing: str, errs: dict[str, str], fn: Callable[[], Any]) -> Any:
        """One section, when asked for (a section left out is an error: never read as observed).

        A section the profile leaves out is not observed (None); its judge reports it 'skipped'."""
        if ("outbox" if name == "probe" else name) in skipped:
            return None
        if ("outbox" if name == "probe" else name) not in wanted:
            errs[name] = f"{doing}: not observed (sections limited to {', '.join(sorted(wanted))})"
            return None
        return run_section(cur, name, doing, errs, fn)

    facts: dict[str, Any] = {"errors": errors, "left_out": skipped}
    start = time.monotonic()
    gate0_interval.settle_own_session(conn)
    gate0_pg.begin(conn, p, read_only=True)
    cur = conn.cursor()
    try:
        facts["identity"] = gate0_pg.server_identity(cur)
    except psycopg2.Error as exc:
        raise gate0_pg.GateError(f"reading the server identity: {gate0_pg.one_line(exc)}") from None
    same_db = facts["identity"]["database"] == p["login_db"]
    # The session counter first: a session established after it is counted by the final re-check.
    facts["sessions"] = section(cur, "sessions", "reading sessions", errors,
                                lambda: {"established": gate0_interval.sessions_established(cur),
                                         **observe_sessions(cur, profile)})
    pause_point()
    app: dict[str, Any] = {"role": p["app_role"], "role_exists": None, "connect_on_clone": None}
    if p["app_role"]:
        app = section(cur, "app", "reading the app role's privileges", errors,
                      lambda: observe_app_server(cur, p["app_role"])) or app
    app["binding"] = read_binding(p) if "app" in wanted else None
    facts["app"] = app
    dispatch = profile.get("dispatch") or {}
    outbox = profile.get("outbox") or {}
    facts["dispatch"] = section(cur, "dispatch", "reading the dispatch registry and outbound tables", errors,
                                lambda: observe_dispatch(cur, dispatch))
    trig = section(cur, "outbox", "reading the outbox trigger", errors, lambda: observe_trigger(cur, outbox))
    probe_type = None
    seq_cols: list[tuple[str, bool]] = []
    if trig is not None and p["outbox_probe"] and "outbox" in wanted:
        probe_type = section(cur, "probe", "choosing the probe's event type", errors,
                             lambda: pick_probe_type(cur, dispatch, outbox))
        seq_cols = section(cur, "probe", "reading the outbox's sequence columns", errors,
                           lambda: sequence_columns(cur, outbox["relation"])) or []
    facts["lease"] = section(cur, "lease", "reading worker leases", errors, lambda: {
        "relation": profile["lease"]["relation"], "rows": count(cur, profile["lease"]["relation"])})
    seed = profile.get("seed") or {}
    facts["seed"] = section(cur, "seed", "reading seed rows", errors, lambda: {
        "relation": seed["relation"], "marker": seed["marker"],
        "marked": count(cur, seed["relation"], {seed["marker_column"]: seed["marker"]}),
        "total": count(cur, seed["relation"])})
    facts["coverage"] = section(cur, "coverage", "reading coverage", errors,
                                lambda: observe_coverage(cur, profile["coverage"]))
    facts["candidates"] = section(cur, "candidates", "reading candidate state", errors,
                                  lambda: observe_candidates(cur, profile["candidates"]))
    version = int(facts["identity"].get("version_num") or 0)
    facts["reach"] = section(cur, "reach", "reading what the clone login reaches", errors,
                             lambda: gate0_reach.production_reach(cur, p["production_databases"],
                                                                  p["production_role"] or "", version))
    facts["outbound"] = section(cur, "outbound", "reading the clone's outbound links", errors,
                                lambda: gate0_reach.outbound_links(cur))
    cur.close()
    gate0_pg.rollback(conn)
    timings["observe_ms"] = gate0_pg.elapsed_ms(start)
    if facts["reach"] is not None:
        start = time.monotonic()
        facts["reach"]["attempts"] = production_attempts(p)
        timings["attempts_ms"] = gate0_pg.elapsed_ms(start)
    probe: dict[str, Any] = {"ran": False, "reason": None}
    if "outbox" in skipped:
        probe["reason"] = "the profile has no outbox"
    elif not p["outbox_probe"]:
        probe["reason"] = "the probe is disabled (outbox_probe: false)"
    elif "outbox" not in wanted:
        probe["reason"] = "the outbox section was not asked for"
    elif not same_db:
        probe["reason"] = f"connected to {facts['identity']['database']!r}, not the clone {p['login_db']!r}"
    elif trig is None or probe_type is None or "probe" in errors:
        # Without the sequence columns the insert could step a sequence (residue): do not probe.
        probe["reason"] = errors.get("outbox") or errors.get("probe") or "no event type to probe with"
    else:
        start = time.monotonic()
        probe = run_probe(conn, p, outbox, probe_type, seq_cols)
        timings["probe_ms"] = gate0_pg.elapsed_ms(start)
    facts["outbox"] = {"relation": outbox.get("relation"), "trigger": trig, "probe": probe}
    window = min(max(float(p.get("quiet_window") or 0), 0.0), MAX_QUIET_WINDOW_S)
    if window:
        time.sleep(window)  # the connection is held: gate0's own session, counted once
    start = time.monotonic()
    facts["final"] = observe_final(p, conn, wanted)
    timings["final_ms"] = gate0_pg.elapsed_ms(start)
    return facts


# --- the final re-check: the clone is still quiet after every read and the probe ----------------------

def observe_final(p: dict[str, Any], conn: Any, wanted: set[str]) -> dict[str, Any]:
    """After every read and the probe, in a new read-only transaction (a new snapshot): the sessions,
    the registry and the leases again, then the session counter last (gate0_clone_checks.py compares it
    with the first one: no session but ours may have been established on the clone in between)."""
    profile = p["profile"]
    wanted = wanted - set(left_out(profile))  # a section the profile leaves out is skipped, not re-read
    errors: dict[str, str] = {}
    final: dict[str, Any] = {"errors": errors}
    try:
        gate0_pg.begin(conn, p, read_only=True)
    except gate0_pg.GateError as exc:
        why = f"re-reading the clone at the end: {exc}"
        errors.update({n: why for n in ("sessions", "dispatch", "lease")})
        return final
    cur = conn.cursor()
    if "sessions" in wanted:
        final["sessions"] = run_section(cur, "sessions", "re-reading sessions at the end", errors,
                                        lambda: observe_sessions(cur, profile))
    if "dispatch" in wanted:
        final["dispatch"] = run_section(cur, "dispatch", "re-reading the event type registry at the end",
                                        errors, lambda: observe_dispatch(cur, profile.get("dispatch") or {}))
    if "lease" in wanted:
        final["lease"] = run_section(cur, "lease", "re-reading worker leases at the end", errors, lambda: {
            "relation": profile["lease"]["relation"], "rows": count(cur, profile["lease"]["relation"])})
    if "sessions" in wanted and final.get("sessions") is not None:
        final["sessions"]["established"] = run_section(
            cur, "sessions", "re-reading the session counter at the end", errors,
            lambda: gate0_interval.sessions_established(cur))
    cur.close()
    gate0_pg.rollback(conn)
    return final
def production_attempts(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The clone channel's credentials tried on every production/allowlisted database: on the clone's
    server, and on production's own endpoint when it differs. Each must be refused by authorization."""
    if not p["production_databases"]:
        return []
    host = p["login_container"] or p["login_host"] or p["login_unix_socket"] or "localhost"
    here = f"the clone's server ({host}:{p['login_port']})"
    out = [gate0_reach.attempt(p, db, here) for db in dict.fromkeys(p["production_databases"])]
    prod = {"login_host": p.get("production_login_host") or "",
            "login_container": p.get("production_login_container") or "",
            "login_port": p.get("production_login_port") or p["login_port"]}
    if (prod["login_host"] or prod["login_container"]) and any(
            prod[k] != p[k] for k in ("login_host", "login_container", "login_port")):
        host = prod["login_container"] or prod["login_host"]
        where = f"production's endpoint ({host}:{prod['login_port']})"
        endpoint = {**p, **prod, "login_unix_socket": ""}
        out.append(gate0_reach.attempt(endpoint, p["production_databases"][0], where))
    return out


def observe_coverage(cur: Any, cov: dict[str, Any]) -> dict[str, Any]:
    cell_counts = {r: count(cur, r) for r in cov.get("cell_relations") or []}
    cells = 1 if cell_counts else 0
    for n in cell_counts.values():
        cells *= n
    return {"gap_relation": cov["gap_relation"], "gap_rows": count(cur, cov["gap_relation"]),
            "cells": cells, "cell_counts": cell_counts}


def observe_candidates(cur: Any, cand: dict[str, Any]) -> dict[str, Any]:
    counts = {name: count(cur, relation) for name, relation in sorted((cand.get("counts") or {}).items())}
    cursor_rows: list[dict[str, Any]] = []
    cursor = cand.get("cursor") or {}
    if cursor.get("relation"):
        fields = list(cursor.get("fields") or {})
        cur.execute(sql.SQL("SELECT {f} FROM {r} ORDER BY 1 LIMIT 10").format(
            f=sql.SQL(", ").join(sql.SQL("{}::text").format(gate0_pg.ident(f)) for f in fields),
            r=rel(cursor["relation"])))
        cursor_rows = [dict(zip(fields, row, strict=True)) for row in cur.fetchall()]
    return {"counts": counts, "cursor": cursor_rows}


MAX_QUIET_WINDOW_S = 600.0  # the role's argument spec allows 0-600; a module caller is capped here


def argument_spec() -> dict[str, Any]:
    """clone_isolation's options (its DOCUMENTATION describes them)."""
    spec = gate0_pg.pg_argument_spec()
    spec.update(gate0_pg.clone_name_argument_spec())
    spec.update(
        clone_name_prefix={"type": "str", "required": True},
        profile={"type": "dict", "required": True},
        outbox_probe={"type": "bool", "default": True},
        quiet_window={"type": "float", "default": 0},
        app_role={"type": "str", "default": ""},
        app_binding_source={"type": "str", "choices": ["env_file", "docker", "none"], "default": "none"},
        app_binding_path={"type": "path"},
        app_binding_container={"type": "str"},
        app_binding_variable={"type": "str", "default": "DB_DATABASE"},
        sections={"type": "list", "elements": "str", "choices": list(SECTIONS), "default": []},
        # Production's endpoint and read-only role, for clone.production_unreachable.
        production_login_host={"type": "str", "default": ""},
        production_login_port={"type": "int"},
        production_login_container={"type": "str", "default": ""},
        production_role={"type": "str", "default": ""},
    )
    return spec


def observe(p: dict[str, Any]) -> dict[str, Any]:
    """The clone's facts as a module result; on failure `failed`, a one-line `msg` and `refused`."""
    if not gate0_pg.HAS_PSYCOPG2:
        return {"changed": False, "failed": True, "msg": gate0_pg.PSYCOPG2_HINT, "duration_ms": 0}
    start = time.monotonic()
    timings: dict[str, int] = {"connect_ms": 0, "observe_ms": 0, "probe_ms": 0, "total_ms": 0}
    refused = gate0_pg.clone_name_refusal(p["login_db"], p["clone_name_prefix"], p["production_databases"],
                                          p["clone_name_prefix_min_length"], p["clone_name_suffix_regex"])
    if refused:
        return {"changed": False, "failed": True, "refused": True,
                "msg": f"refusing the clone channel before connecting: {refused}",
                "duration_ms": gate0_pg.elapsed_ms(start)}
    conn = None
    failure: str | None = None
    facts: dict[str, Any] = {}
    try:
        gate0_pg.check_timeouts(p)
        conn = gate0_pg.connect(p)
        timings["connect_ms"] = gate0_pg.elapsed_ms(start)
        facts = observe_clone(p, conn, timings)
    except gate0_pg.GateError as exc:
        failure = str(exc)
    except psycopg2.Error as exc:
        failure = f"observing the clone: {gate0_pg.one_line(exc)}"
    except Exception as exc:  # one line, never a traceback; the transactions were rolled back
        failure = f"observing the clone: unexpected {type(exc).__name__}: {gate0_pg.one_line(exc)}"
    finally:
        if conn is not None:
            gate0_pg.rollback_quietly(conn)
    timings["total_ms"] = gate0_pg.elapsed_ms(start)
    if failure is not None:
        return {"changed": False, "failed": True, "refused": False, "msg": failure,
                "duration_ms": timings["total_ms"]}
    return {"changed": False, "timings": timings, "duration_ms": timings["total_ms"], **facts}
