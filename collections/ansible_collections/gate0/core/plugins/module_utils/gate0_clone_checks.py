"""Judge the clone gate: turn clone_isolation's facts and the role's vars into clone.* check records.

Pure functions (no I/O): the gate0_verdict action (and tasks/clone.yml, the consumers' re-check)
pass the module's result and a settings dict built from the role's vars; the records follow the
contract `{id, gate, status, observed, expected, message}` with a one-line message naming the cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.gate0.core.plugins.module_utils.gate0_checks import Record, record
from ansible_collections.gate0.core.plugins.module_utils.gate0_interval import (
    anchor,
    interval_problem,
    same_clone,
    was_reset,
)
from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import clone_name_problems

ENABLED = ("O", "A")  # pg_trigger.tgenabled: fires in origin sessions (O) or always (A)
MAX_LISTED = 5


def left_out(s: dict[str, Any], section: str) -> bool:
    """The profile leaves this optional section out (absent or null): its check is skipped.

    The same rule decides what clone_isolation observes (gate0.core's gate0_clone.py, left_out)."""
    return (s.get("profile") or {}).get(section) is None


def production_names(settings: dict[str, Any]) -> list[str]:
    names = [settings.get("production_database") or "", *list(settings.get("allowed_databases") or [])]
    return sorted({n for n in names if n})


def _ok(result: dict[str, Any]) -> bool:
    return bool(result) and not result.get("failed") and "identity" in result


def _why_not_observed(result: dict[str, Any]) -> str:
    if not result:
        return "not observed: the clone_isolation module did not run"
    return f"not observed: {result.get('msg') or 'the clone_isolation module failed'}"


def check_name_pattern(result: dict[str, Any], s: dict[str, Any]) -> Record:
    cid, db, prefix = "clone.name_pattern", s["database"], s["prefix"]
    expected = {"database": db, "prefix": prefix, "suffix_regex": s.get("suffix_regex") or None}
    problems = clone_name_problems(db, prefix, production_names(s), s.get("prefix_min_length", 1),
                                   s.get("suffix_regex") or "")
    if problems:
        return record(cid, False, {"configured": db}, expected, "; ".join(problems))
    if not _ok(result):
        return record(cid, False, None, expected, _why_not_observed(result))
    current = result["identity"]["database"]
    if current != db:
        return record(cid, False, {"current_database": current}, expected,
                      f"current_database() is {current!r}, not the configured clone {db!r}")
    return record(cid, True, {"current_database": current}, expected,
                  f"current_database() = {current!r}, starts with exactly {prefix!r}")


def same_database(clone: dict[str, Any], prod: dict[str, Any]) -> bool | None:
    """True when both identities name one database on one server; None when it cannot be told."""
    same_server = None
    if clone.get("system_identifier") and prod.get("system_identifier"):
        same_server = clone["system_identifier"] == prod["system_identifier"]
    elif clone.get("address") and prod.get("address"):
        same_server = (clone["address"], clone.get("port")) == (prod["address"], prod.get("port"))
    if same_server is False:
        return False
    if same_server is None:
        return None
    if clone.get("database_oid") is not None and prod.get("database_oid") is not None:
        return clone["database_oid"] == prod["database_oid"] or clone.get("database") == prod.get("database")
    return clone.get("database") == prod.get("database")


def check_not_production(result: dict[str, Any], s: dict[str, Any]) -> Record:
    cid, db = "clone.not_production", s["database"]
    names = production_names(s)
    expected = {"not_in": names, "identity_differs_from_production": True}
    if db in names:
        return record(cid, False, {"configured": db}, expected,
                      f"the clone {db!r} is a production/allowlisted database name")
    if not _ok(result):
        return record(cid, False, None, expected, _why_not_observed(result))
    ident = result["identity"]
    if ident["database"] in names:
        return record(cid, False, ident, expected, f"connected to production database {ident['database']!r}")
    prod = s.get("production_identity")
    if not prod:
        return record(cid, True, ident, expected,
                      f"{ident['database']!r} is no production name; production identity not available "
                      "(production gate not run): names compared, identities not")
    same = same_database(ident, prod)
    if same:
        return record(cid, False, ident, expected,
                      f"the clone channel reaches the production database {prod.get('database')!r} "
                      f"(oid {prod.get('database_oid')}) on the same server")
    how = "different server" if same is False or ident.get("database_oid") is None else "different database"
    if same is None:
        how = "server identity not comparable (no system identifier or address); names differ"
    elif same is False and ident.get("system_identifier") == prod.get("system_identifier"):
        how = "same server, different database"
    return record(cid, True, ident, expected,
                  f"{ident['database']!r} (oid {ident.get('database_oid')}) is not production "
                  f"{prod.get('database')!r} (oid {prod.get('database_oid')}): {how}")


def _sections(result: dict[str, Any], *names: str) -> str | None:
    """The reason a check cannot be judged: module failure or an error in one of its sections."""
    if not _ok(result):
        return _why_not_observed(result)
    errors = result.get("errors") or {}
    for n in names:
        if errors.get(n):
            return errors[n]
        if result.get(n) is None:
            return f"not observed: the clone part returned no {n!r} section"
    return None


def _listed(items: list[str]) -> str:
    more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
    return "; ".join(items[:MAX_LISTED]) + more


def check_production_unreachable(result: dict[str, Any], s: dict[str, Any]) -> Record:
    """The clone channel reaches the clone only: no catalog path to production or the server beneath
    it, and a connection to each production/allowlisted database with its credentials is refused."""
    cid = "clone.production_unreachable"
    names = production_names(s)
    expected = {"paths": [], "attempts": "each refused by authorization", "databases": names}
    why = _sections(result, "reach")
    if why:
        return record(cid, False, None, expected, why)
    reach = result["reach"]
    attempts = reach.get("attempts") or []
    observed = {"login": reach.get("login"), "roles": reach.get("roles"), "findings": reach.get("findings"),
                "databases_here": reach.get("databases_here"), "attempts": attempts}
    problems = []
    for a in attempts:
        if a.get("refused") is False:
            problems.append(f"a connection to {a.get('database')} on {a.get('server')} with the clone "
                            "channel's credentials was ACCEPTED (closed at once)")
        elif a.get("refused") is not True:
            problems.append(f"cannot prove {a.get('database')} on {a.get('server')} refuses the clone "
                            f"channel: {a.get('reason')}")
    if not attempts:
        problems.append("no connection attempt made (no production database named)")
    problems += [f["text"] for f in reach.get("findings") or []]
    if problems:
        return record(cid, False, observed, expected,
                      f"the clone channel ({reach.get('login')}) can reach beyond the clone: "
                      f"{_listed(problems)}")
    refused = ", ".join(f"{a['database']} ({str(a.get('reason')).split(':')[0]})" for a in attempts)
    return record(cid, True, observed, expected,
                  f"{reach.get('login')} (roles: {', '.join(reach.get('roles') or [])}) has no CONNECT, "
                  f"ownership, reaching attribute or membership toward {', '.join(names)}; "
                  f"attempts refused: {refused}")


def check_outbound_links(result: dict[str, Any], s: dict[str, Any]) -> Record:
    """Nothing in the clone can open a connection outward, except what the profile allows by name."""
    cid = "clone.outbound_links"
    allow = [str(a) for a in (((s.get("profile") or {}).get("outbound_links") or {}).get("allow") or [])]
    expected = {"links": [], "allowed_by_name": allow}
    why = _sections(result, "outbound")
    if why:
        return record(cid, False, None, expected, why)
    out = result["outbound"]
    findings = (out.get("findings") or []) + (out.get("not_visible") or [])
    bad = [f for f in findings if f.get("name") not in allow]
    allowed = [f for f in findings if f.get("name") in allow]
    observed = {"findings": out.get("findings"), "not_visible": out.get("not_visible"),
                "cron": out.get("cron"), "allowed": [f["text"] for f in allowed]}
    if bad:
        return record(cid, False, observed, expected,
                      f"{len(bad)} outbound link(s) from the clone: {_listed([f['text'] for f in bad])}")
    note = f"; allowed by name: {_listed([f['text'] for f in allowed])}" if allowed else ""
    return record(cid, True, observed, expected,
                  "no foreign server, user mapping, dblink function, subscription, logical slot or "
                  f"walsender; pg_cron: {out.get('cron')}{note}")


def _session_line(r: dict[str, Any]) -> str:
    if not r.get("visible", True):
        return f"pid {r.get('pid')} ({r.get('backend_type')}, details hidden)"
    return (f"pid {r.get('pid')} user={r.get('user')} app={r.get('application') or '-'} "
            f"client={r.get('client_addr') or 'local'} state={r.get('state')} since={r.get('since')}")


def check_foreign_sessions(result: dict[str, Any], s: dict[str, Any]) -> Record:
    cid = "clone.foreign_sessions"
    expected = {"foreign": 0, "prepared": 0, "slots": 0, "can_see_all": True}
    why = _sections(result, "sessions")
    if why:
        return record(cid, False, None, expected, why)
    ses = result["sessions"]
    observed = {k: ses.get(k) for k in ("login", "can_see_all", "foreign", "prepared", "slots", "ignored")}
    if not ses.get("can_see_all"):
        return record(cid, False, observed, expected,
                      f"cannot see other sessions' details: login {ses.get('login')!r} is neither superuser "
                      "nor a member of pg_read_all_stats (never read as 'none')")
    hidden = [r for r in ses.get("foreign") or [] if not r.get("visible", True)]
    if hidden:
        return record(cid, False, observed, expected,
                      f"cannot see the details of {len(hidden)} session(s) on the clone")
    offenders = [_session_line(r) for r in ses.get("foreign") or []]
    offenders += [f"prepared transaction {p.get('gid')!r} by {p.get('owner')}"
                  for p in ses.get("prepared") or []]
    offenders += [f"replication slot {x.get('slot_name')!r} ({x.get('plugin')})"
                  for x in ses.get("slots") or []]
    if offenders:
        more = f" (+{len(offenders) - MAX_LISTED} more)" if len(offenders) > MAX_LISTED else ""
        return record(cid, False, observed, expected,
                      f"{len(offenders)} foreign on the clone: {'; '.join(offenders[:MAX_LISTED])}{more}")
    return record(cid, True, observed, expected, "no backend on the clone but our own")


def check_app_binding(result: dict[str, Any], s: dict[str, Any]) -> Record:
    cid, db = "clone.app_binding", s["database"]
    expected = {"binding_is_not": db, "app_connect_on_clone": False}
    if not s.get("app_role"):
        return record(cid, False, None, expected, "no app role configured (gate0_clone_app_role)")
    why = _sections(result, "app")
    if why:
        return record(cid, False, None, expected, why)
    app = result["app"]
    bind = app.get("binding") or {}
    observed = {"role": app.get("role"), "role_exists": app.get("role_exists"),
                "superuser": app.get("superuser"), "connect_on_clone": app.get("connect_on_clone"),
                "binding": bind}
    if not app.get("role_exists"):
        return record(cid, False, observed, expected,
                      f"app role {app.get('role')!r} does not exist on the server")
    if app.get("superuser"):
        return record(cid, False, observed, expected,
                      f"app role {app.get('role')!r} is a superuser: it can connect to {db!r} whatever is "
                      "revoked (give the app a role without SUPERUSER)")
    if app.get("connect_on_clone") is not False:
        return record(cid, False, observed, expected, f"app role {app.get('role')!r} has CONNECT on {db!r}")
    state = f" (container {bind['state']})" if bind.get("state") not in (None, "running") else ""
    if bind.get("error"):
        return record(cid, False, observed, expected, bind["error"])
    if bind.get("source") in (None, "none"):
        return record(cid, True, observed, expected,
                      f"app role {app.get('role')!r} has no CONNECT on the clone; binding source not "
                      "configured (gate0_clone_app_binding_source: none)")
    if bind.get("value") == db:
        return record(cid, False, observed, expected,
                      f"the app is bound to the clone: {bind.get('variable')}={bind.get('value')} "
                      f"in {bind.get('where')}{state}")
    others = bound_containers(bind, db)
    if others:
        return record(cid, False, observed, expected, f"bound to the clone {db!r}: {'; '.join(others)}")
    if bind.get("source") == "docker" and bind.get("containers_error"):
        return record(cid, False, observed, expected, str(bind["containers_error"]))
    scanned = ("" if bind.get("source") != "docker"
               else f"; none of the host's {len(bind.get('containers') or [])} live containers binds it")
    # A stopped app container passes: it runs nothing now, and its configuration (what a restart
    # would use) binds production; its state is named so nobody reads it as a running app.
    how = f", its configuration as the container is {bind['state']}" if state else ""
    return record(cid, True, observed, expected,
                  f"app binds {bind.get('variable')}={bind.get('value')} in {bind.get('where')}{how}; "
                  f"role {app.get('role')!r} has no CONNECT on the clone{scanned}")


# Container states whose process runs now or will again on its own (docker ps lists them).
LIVE_STATES = ("running", "restarting", "paused")


def bound_containers(bind: dict[str, Any], db: str) -> list[str]:
    """Every live container on the host whose environment binds `db` (DB_DATABASE, PGDATABASE, a
    DATABASE_URL naming it, the app's binding variable), one phrase each naming the container."""
    out = []
    for c in bind.get("containers") or []:
        if not isinstance(c, dict) or c.get("state") not in LIVE_STATES:
            continue
        hits = [f"{var}={value}" for var, value in (c.get("bindings") or {}).items() if value == db]
        if hits:
            state = "" if c.get("state") == "running" else f", {c.get('state')}"
            out.append(f"container {c.get('name')!r} ({', '.join(hits)}{state})")
    return out


def _row_line(row: Any, label: str | None, details: list[str], parent: str | None = None) -> str:
    """One active row by name: `'Notify owners' (trigger=event)`; a whole row when unnamed."""
    if not isinstance(row, dict):
        return str(row)
    head = repr(row.get(label)) if label else str({k: v for k, v in row.items() if k != "gate0_parent"})
    bits = [f"{d}={row.get(d)}" for d in details]
    if parent and row.get("gate0_parent") is not None:
        bits.append(f"in {parent} {row['gate0_parent']!r}")
    return head + (f" ({', '.join(bits)})" if bits else "")


def _active_line(relation: str, count: int, lines: list[str], unnamed: str = "") -> str:
    shown = lines[:MAX_LISTED]
    more = f" (+{count - len(shown)} more)" if count > len(shown) else ""
    return f"{count} active in {relation}" + (f": {', '.join(shown)}{more}" if shown else unnamed)


def check_dispatch(result: dict[str, Any], s: dict[str, Any]) -> Record:
    """Nothing in the clone would dispatch: no active row in the registry (in scope) or in any
    outbound mechanism of the profile; each active one is named (profile: key/label, details)."""
    cid = "clone.dispatch_disabled"
    prof = (s.get("profile") or {}).get("dispatch") or {}
    empty_ok = bool(prof.get("registry_empty_ok"))
    expected = {"registry_active": 0, "outbound_active": 0, "registry_rows": "any" if empty_ok else "> 0"}
    why = _sections(result, "dispatch")
    if why:
        return record(cid, False, None, expected, why)
    disp = result["dispatch"]
    reg = disp["registry"]
    outbound = disp.get("outbound") or {}
    observed = {"registry_rows": reg["rows"], "registry_active": reg["active"],
                "outbound": {k: v.get("active") for k, v in outbound.items()},
                "outbound_named": {k: v.get("named") for k, v in outbound.items() if v.get("named")}}
    if reg["rows"] == 0 and not empty_ok:
        return record(cid, False, observed, expected,
                      f"no rows of {reg['relation']} in scope {reg.get('scope')} (check the profile's scope; "
                      "dispatch.registry_empty_ok: true accepts an empty registry)")
    problems = []
    if reg["active"]:
        details = [str(d) for d in prof.get("registry_details") or []]
        lines = [_row_line(r, prof.get("registry_key"), details) for r in reg["active"]]
        problems.append(_active_line(reg["relation"], int(reg.get("active_count") or len(lines)), lines))
    for name, v in outbound.items():
        if not v.get("active"):
            continue
        spec = (prof.get("outbound") or {}).get(name) or {}
        parent = (spec.get("parent") or {}).get("relation")
        lines = [_row_line(r, spec.get("label"), [str(d) for d in spec.get("details") or []], parent)
                 for r in v.get("named") or []]
        problems.append(_active_line(v.get("relation") or name, int(v["active"]), lines,
                                     f" (unnamed: the profile's dispatch.outbound.{name}.label is not set)"))
    if problems:
        return record(cid, False, observed, expected, "; ".join(problems))
    mech = ", ".join(f"{n} {v['rows']} rows" for n, v in outbound.items())
    head = (f"{reg['relation']} has no rows in scope (the profile accepts an empty registry)"
            if reg["rows"] == 0 else f"{reg['rows']} rows of {reg['relation']} in scope all inactive")
    return record(cid, True, observed, expected, head + (f"; none active in {mech}" if mech else ""))


def check_outbox_guard(result: dict[str, Any], s: dict[str, Any]) -> Record:
    cid = "clone.outbox_guard"
    outbox = (s.get("profile") or {}).get("outbox") or {}
    want_fn = str(outbox.get("function", ""))
    expected = {"trigger": outbox.get("trigger"), "enabled": list(ENABLED),
                "timing": "BEFORE INSERT FOR EACH ROW",
                "function": want_fn, "probe_rejected": bool(s.get("outbox_probe", True))}
    if left_out(s, "outbox"):
        return record(cid, None, None, None, "the profile has no outbox")
    why = _sections(result, "outbox")
    if why:
        return record(cid, False, None, expected, why)
    box = result["outbox"]
    trig = box.get("trigger") or {}
    probe = box.get("probe") or {}
    observed = {"trigger": trig, "probe": probe}
    name = f"trigger {trig.get('name')!r} on {box.get('relation')}"
    if not trig.get("exists"):
        return record(cid, False, observed, expected, f"{name} does not exist")
    problems = []
    if trig.get("enabled") not in ENABLED:
        problems.append(f"{name} is disabled (tgenabled={trig.get('enabled')!r})")
    if not (trig.get("before") and trig.get("insert") and trig.get("row")):
        problems.append(f"{name} is not BEFORE INSERT FOR EACH ROW")
    if trig.get("has_when"):
        problems.append(f"{name} has a WHEN condition (may not fire)")
    fn_parts = want_fn.split(".")
    got_fn = [trig.get("function_schema"), trig.get("function")][-len(fn_parts):]
    if got_fn != fn_parts:
        problems.append(f"{name} calls {trig.get('function_schema')}.{trig.get('function')}, not {want_fn}")
    if s.get("outbox_probe", True):
        problems += _probe_problems(probe, want_fn)
    if problems:
        return record(cid, False, observed, expected, "; ".join(problems))
    if not s.get("outbox_probe", True):
        return record(cid, True, observed, expected,
                      f"{name} enabled, calls {want_fn}; probe disabled (gate0_clone_outbox_probe: false)")
    return record(cid, True, observed, expected,
                  f"{name} enabled, calls {want_fn}; probe insert of {probe.get('event_type')!r} rejected "
                  f"({probe.get('sqlstate')}) and rolled back, nothing written")


def _probe_problems(probe: dict[str, Any], want_fn: str) -> list[str]:
    if not probe.get("ran"):
        return [f"probe not run: {probe.get('reason') or 'unknown reason'}"]
    if probe.get("reason"):
        return [f"probe failed: {probe['reason']}"]
    out = []
    if not probe.get("rejected"):
        out.append(f"probe insert of inactive type {probe.get('event_type')!r} was NOT rejected")
    elif not probe.get("from_function"):
        out.append(f"probe insert was rejected, but not by {want_fn}: {probe.get('message')}")
    if probe.get("xid_assigned"):
        out.append(f"the probe was assigned transaction id {probe['xid_assigned']} (it wrote something)")
    if not probe.get("rolled_back"):
        out.append("the probe transaction was not confirmed rolled back")
    return out


def _count_check(cid: str, result: dict[str, Any], section: str,
                 judge: Callable[[dict[str, Any]], tuple[bool, Any, Any, str]], s: dict[str, Any]) -> Record:
    if left_out(s, section):
        return record(cid, None, None, None, f"the profile has no {section}")
    why = _sections(result, section)
    if why:
        return record(cid, False, None, None, why)
    ok, observed, expected, message = judge(result[section])
    return record(cid, ok, observed, expected, message)


def check_worker_lease(result: dict[str, Any], s: dict[str, Any]) -> Record:
    want = int(((s.get("profile") or {}).get("lease") or {}).get("expected", 0))

    def judge(lease: dict[str, Any]) -> tuple[bool, Any, Any, str]:
        ok = lease["rows"] == want
        return ok, lease["rows"], want, (f"{lease['relation']} = {lease['rows']} rows"
                                         + ("" if ok else f", expected {want} (a worker holds a lease)"))
    return _count_check("clone.worker_lease", result, "lease", judge, s)


def check_seed(result: dict[str, Any], s: dict[str, Any]) -> Record:
    want = int(((s.get("profile") or {}).get("seed") or {}).get("expected", 0))

    def judge(seed: dict[str, Any]) -> tuple[bool, Any, Any, str]:
        marked, total = seed["marked"], seed["total"]
        observed = {"marked": marked, "total": total}
        head = f"{seed['relation']}: {marked} rows by {seed['marker']!r}, {total} in all"
        if marked != want:
            return False, observed, {"marked": want, "total": want}, f"{head}; expected {want} by the marker"
        if total != want:
            return False, observed, {"marked": want, "total": want}, \
                f"{head}; {total - marked} rows without the marker (expected no more, no fewer than {want})"
        return True, observed, {"marked": want, "total": want}, head
    return _count_check("clone.seed_present", result, "seed", judge, s)


def check_coverage(result: dict[str, Any], s: dict[str, Any]) -> Record:
    cov_p = (s.get("profile") or {}).get("coverage") or {}
    want_gap, want_cells = int(cov_p.get("expected_gap", 0)), int(cov_p.get("expected_cells", 0))

    def judge(cov: dict[str, Any]) -> tuple[bool, Any, Any, str]:
        observed = {"gap_rows": cov["gap_rows"], "cells": cov["cells"], "cell_counts": cov.get("cell_counts")}
        expected = {"gap_rows": want_gap, "cells": want_cells}
        line = f"{cov['gap_relation']} = {cov['gap_rows']} of {cov['cells']} cells"
        ok = cov["gap_rows"] == want_gap and cov["cells"] == want_cells
        return ok, observed, expected, line + ("" if ok else f", expected {want_gap} of {want_cells}")
    return _count_check("clone.coverage", result, "coverage", judge, s)


def check_candidates(result: dict[str, Any], s: dict[str, Any]) -> Record:
    cand_p = (s.get("profile") or {}).get("candidates") or {}
    want = {k: int(v) for k, v in (cand_p.get("expected") or {}).items()}
    want_cursor = {k: str(v) for k, v in ((cand_p.get("cursor") or {}).get("fields") or {}).items()}

    def judge(cand: dict[str, Any]) -> tuple[bool, Any, Any, str]:
        counts = cand.get("counts") or {}
        observed = {"counts": counts, "cursor": cand.get("cursor")}
        expected = {"counts": want, "cursor": [want_cursor] if want_cursor else []}
        off = [f"{k}={counts.get(k)} (expected {v})" for k, v in want.items() if counts.get(k) != v]
        off += [f"{k} not in the expectations" for k in counts if k not in want]
        rows = cand.get("cursor") or []
        if want_cursor and [{k: r.get(k) for k in want_cursor} for r in rows] != [want_cursor]:
            off.append(f"cursor {rows} (expected one row {want_cursor})")
        line = ", ".join(f"{k}={v}" for k, v in counts.items())
        if want_cursor and rows:
            line += " (" + ", ".join(f"{k} {rows[0].get(k)}" for k in want_cursor) + ")"
        return (not off), observed, expected, (line if not off else "off bound: " + "; ".join(off))
    return _count_check("clone.candidate_state", result, "candidates", judge, s)


def check_rollback_plan(_result: dict[str, Any], s: dict[str, Any]) -> Record:
    plan = s.get("rollback_plan") or {}
    path = plan.get("path")
    observed = {"path": path, "exists": bool(plan.get("exists")), "chars": int(plan.get("chars") or 0)}
    expected = {"exists": True, "non_empty": True}
    if not path:
        return record("clone.rollback_plan", False, observed, expected,
                      "no plan file named (gate0_clone_rollback_plan)")
    if not plan.get("exists"):
        return record("clone.rollback_plan", False, observed, expected, f"plan file {path} does not exist")
    if not str(plan.get("text") or "").strip():
        return record("clone.rollback_plan", False, observed, expected, f"plan file {path} is empty")
    return record("clone.rollback_plan", True, observed, expected,
                  f"plan file {path} ({observed['chars']} chars)")


CHECKS = (check_name_pattern, check_not_production, check_production_unreachable, check_foreign_sessions,
          check_app_binding, check_dispatch, check_outbound_links, check_outbox_guard, check_worker_lease,
          check_seed, check_coverage, check_candidates, check_rollback_plan)


# --- the final re-check: the evidence covers the whole clone check, not its first millisecond -------
# (clone_isolation re-reads sessions, the registry and the leases after every read and the probe, and
# the session counter: gate0_clone.observe_final). Each is judged by the same check function as the
# first reading; a check passes only when both readings pass and no session was established between.

FINAL_CHECKS = {"clone.foreign_sessions": (check_foreign_sessions, "sessions"),
                "clone.dispatch_disabled": (check_dispatch, "dispatch"),
                "clone.worker_lease": (check_worker_lease, "lease")}


def _established_problem(first: dict[str, Any], final: dict[str, Any]) -> str | None:
    """Why pg_stat_database.sessions does not prove that no other session came (and maybe went)
    during the check: gate0's own clone connection is counted before the first reading
    (gate0_interval.settle_own_session) and the probe and the re-check reuse it."""
    start = {**(first.get("established") or {}), "own_after": 0, "by": "the first reading",
             "at": "the start of the check"}
    return interval_problem(start, final.get("established"), own=0)


def interval_note(result: dict[str, Any], s: dict[str, Any]) -> tuple[str | None, str]:
    """(problem, note): the clone's session counter now against the last gate0 reading of this clone
    (`s['quiet_since']`: the last gate, refresh or consumer step, kept in the gate0_sessions fact).

    The entry gate without such a reading says "no history: instant only"; where the interval is the
    proof (s['quiet_required']: the consumers' re-check, the exit) a missing reading is a failure."""
    kept = s.get("quiet_since")
    first = (result.get("sessions") or {}).get("established")
    if isinstance(kept, dict) and same_clone(kept, result.get("identity")):
        if not s.get("quiet_required") and was_reset(kept, first):
            # Statistics reset (pg_stat_reset, a crash) since the last gate0 step: no evidence either
            # way about the time in between; the entry gate stands on its own look (require does not).
            since = f"since {kept.get('by')} at {kept.get('at')}"
            return None, f"no history: statistics reset {since}; instant only"
        problem = interval_problem(kept, first, int(s.get("quiet_own") or 1))
        if problem:
            return problem, ""
        return None, (f"quiet since {kept.get('by')} at {kept.get('at')} (pg_stat_database.sessions "
                      f"{kept.get('sessions')} -> {first.get('sessions')}, all gate0's own)")
    if s.get("quiet_required"):
        why = ("no earlier session counter of this clone was kept" if not isinstance(kept, dict) else
               f"the kept session counter was read on {kept.get('database')!r} oid "
               f"{kept.get('database_oid')}, not this clone")
        return f"cannot prove the clone stayed quiet since the gate: {why}", ""
    return None, "no history: instant only"


def final_recheck(rec: Record, result: dict[str, Any], s: dict[str, Any]) -> Record:
    """`rec` (a passed first reading) judged again on the re-check at the end; failed when it changed."""
    check, part = FINAL_CHECKS[rec["id"]]
    final = result.get("final")
    if not isinstance(final, dict):
        return {**rec, "status": "fail",
                "message": "cannot prove the clone stayed quiet: no re-check at the end"}
    again = check({**result, **{part: final.get(part)}, "errors": final.get("errors") or {}}, s)
    problem = None if again["status"] == "pass" else f"at the end of the check: {again['message']}"
    note = ""
    if problem is None and part == "sessions":
        problem = _established_problem(result.get("sessions") or {}, final.get("sessions") or {})
        if problem is None:
            problem, note = interval_note(result, s)
    if problem is None:
        note = f"; {note}" if note else ""
        return {**rec, "message": f"{rec['message']}; still so at the end (re-read after the probe){note}"}
    return {**rec, "status": "fail", "message": problem,
            "observed": {"first": rec["observed"], "final": again["observed"]}}


def gate0_clone_checks(result: dict[str, Any] | None, settings: dict[str, Any]) -> list[Record]:
    """Every clone.* record from the module's result (possibly failed) and the role's settings."""
    records = [check(result or {}, settings) for check in CHECKS]
    return [final_recheck(r, result or {}, settings) if r["id"] in FINAL_CHECKS and r["status"] == "pass"
            else r for r in records]


def gate0_clone_report(result: dict[str, Any] | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The clone part of the report: what was observed (no secrets; the module returns none)."""
    r = result or {}
    keys = ("identity", "sessions", "app", "dispatch", "outbox", "lease", "seed", "coverage", "candidates",
            "reach", "outbound", "final", "errors", "left_out", "timings")
    out = {k: r.get(k) for k in keys}
    out["database"] = settings.get("database")
    out["error"] = r.get("msg") if r.get("failed") else None
    return out


def gate0_clone_sessions_anchor(result: dict[str, Any] | None, own_after: int, at: str, by: str,
                                reading: str = "final") -> dict[str, Any] | None:
    """The clone's session counter to keep after this observation (None when it was not read):
    `reading` final (the re-check at the end) or first; `own_after` sessions gate0 opened after it."""
    r = result or {}
    part = (r.get("final") or {}) if reading == "final" else r
    return anchor(r.get("identity"), (part.get("sessions") or {}).get("established"), own_after, at, by)


def gate0_sessions_anchor(reading: dict[str, Any] | None, identity: dict[str, Any] | None, own_after: int,
                          at: str, by: str) -> dict[str, Any] | None:
    """A clone_sql result's `sessions` reading as the counter to keep (None when it was not read)."""
    return anchor(identity, reading, own_after, at, by)


def gate0_sessions_latest(candidates: list[Any],
                          identity: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The newest of the kept session counters (the gate0_sessions entry, the receipt's) read on this
    very clone (`identity`: same name and oid, when given): by time, then count; None when there is
    none. Each candidate was verified by gate0_receipt first. A reading kept by a gate that failed is
    left out: the interval of an earlier PASS does not restart at a FAIL that saw something."""
    kept = [c for c in candidates or [] if isinstance(c, dict) and c.get("sessions") is not None
            and c.get("passed") is not False and (identity is None or same_clone(c, identity))]
    if not kept:
        return None
    return max(kept, key=lambda c: (str(c.get("at") or ""), int(c["sessions"])))

