"""Judging of the production gate (checks prod.*): pg_fingerprint's result + vars -> check records.

The module observes; these filters judge. A failed module run (cannot connect, timeout, missing
table) still yields all seven records: each check whose evidence is missing FAILS with the module's
one-line reason, each check whose evidence was gathered before the failure is judged on it.
Also the exit comparison (`gate0_prod_exit`): entry summary vs. exit fingerprint.
"""

from __future__ import annotations

from typing import Any

GATE = "prod"
COUNTER_KEYS = ("n_tup_ins", "n_tup_upd", "n_tup_del")
# Which database answered: entry and exit must be the same one (not a same-named copy elsewhere).
SERVER_KEYS = ("database_oid", "system_identifier")
DETAIL_LIMIT = 6


def _record(cid: str, ok: bool | None, observed: Any, expected: Any, message: str) -> dict[str, Any]:
    status = "skipped" if ok is None else ("pass" if ok else "fail")
    return {
        "id": cid,
        "gate": GATE,
        "status": status,
        "observed": observed,
        "expected": expected,
        "message": " ".join(str(message).split()),
    }


def _reason(result: dict[str, Any]) -> str:
    """The module's one-line failure reason (or why there is no result at all)."""
    msg = result.get("msg") or "pg_fingerprint returned no result"
    return " ".join(str(msg).split())


def _failed(result: dict[str, Any]) -> bool:
    return bool(result.get("failed_stage")) or not result.get("digest")


def _join(items: list[str]) -> str:
    more = f" (and {len(items) - DETAIL_LIMIT} more)" if len(items) > DETAIL_LIMIT else ""
    return "; ".join(items[:DETAIL_LIMIT]) + more


def check_allowlist(
    result: dict[str, Any], allowed: list[str], login_db: str, clone_db: str
) -> dict[str, Any]:
    cid = "prod.allowlist"
    expected = {"login_db_in_allowlist": True, "clone_in_allowlist": False, "current_database": login_db}
    observed = {
        "allowed_databases": list(allowed or []),
        "login_db": login_db,
        "current_database": (result.get("allowlist") or {}).get("current_database"),
    }
    problems = []
    if not allowed:
        problems.append("gate0_production_allowed_databases is empty")
    elif login_db not in allowed:
        problems.append(f"login_db {login_db!r} is not in the allowlist {list(allowed)}")
    if clone_db and clone_db in (allowed or []):
        problems.append(f"the allowlist {list(allowed)} names the clone {clone_db!r}")
    if problems:
        return _record(cid, False, observed, expected, "allowlist: " + "; ".join(problems))
    if observed["current_database"] is None:
        return _record(cid, False, observed, expected, f"not verified after connecting: {_reason(result)}")
    if observed["current_database"] != login_db:
        return _record(
            cid, False, observed, expected, f"connected to {observed['current_database']!r}, not {login_db!r}"
        )
    return _record(
        cid,
        True,
        observed,
        expected,
        f"{login_db} in {list(allowed)}, clone not in it; current_database()={login_db} after connecting",
    )


def check_session(result: dict[str, Any]) -> dict[str, Any]:
    cid = "prod.read_only_session"
    session = result.get("session") or {}
    settings = session.get("settings") or {}
    observed = {
        "settings": settings,
        "xid_assigned": session.get("xid_assigned"),
        "rolled_back": session.get("rolled_back"),
    }
    expected = {
        "transaction_read_only": "on",
        "transaction_isolation": "repeatable read",
        "xid_assigned": None,
        "rolled_back": True,
    }
    if not settings:
        return _record(cid, False, observed, expected, f"no read-only session: {_reason(result)}")
    if (
        settings.get("transaction_read_only") != "on"
        or settings.get("transaction_isolation") != "repeatable read"
    ):
        return _record(cid, False, observed, expected, "the session was not REPEATABLE READ READ ONLY")
    if session.get("wrote_nothing") is not True:
        why = session.get("proof_error") or f"xid {session.get('xid_assigned')!r} assigned"
        return _record(cid, False, observed, expected, f"cannot prove the transaction wrote nothing: {why}")
    if session.get("rolled_back") is not True:
        return _record(cid, False, observed, expected, "the transaction was not rolled back cleanly")
    return _record(
        cid,
        True,
        observed,
        expected,
        f"REPEATABLE READ READ ONLY, statement_timeout={settings.get('statement_timeout')}, "
        f"lock_timeout={settings.get('lock_timeout')}, row_security=off, settings read back; "
        "no xid assigned; rolled back",
    )


def check_role(result: dict[str, Any]) -> dict[str, Any]:
    cid = "prod.role_cannot_write"
    proof = result.get("read_only_proof")
    expected = "every finding ok"
    if not proof:
        return _record(cid, False, None, expected, f"read-only proof not taken: {_reason(result)}")
    bad = [f for f in proof.get("findings", []) if not f.get("ok")]
    observed = {
        "role": proof.get("role"),
        "roles_checked": proof.get("roles_checked"),
        "failed": [f"{f['check']}: {f['detail']}" for f in bad],
    }
    if bad:
        return _record(
            cid,
            False,
            observed,
            expected,
            f"role {proof.get('role')} can write: " + _join([f"{f['check']}: {f['detail']}" for f in bad]),
        )
    return _record(
        cid,
        True,
        observed,
        expected,
        f"role {proof.get('role')}: {len(proof.get('findings', []))} write paths checked, none open "
        f"(roles checked: {', '.join(proof.get('roles_checked') or [])})",
    )


def check_clone(result: dict[str, Any], clone_db: str) -> dict[str, Any]:
    cid = "prod.clone_unreachable"
    evidence = result.get("clone_unreachable") or {}
    attempt = evidence.get("attempt") or {}
    expected = {"has_connect": False, "attempt_refused": True, "refused_by": "authorization"}
    observed = {
        "database": clone_db,
        "has_connect": evidence.get("has_connect"),
        "exists_here": evidence.get("exists_here"),
        "attempt": attempt or None,
    }
    if not evidence:
        return _record(cid, False, observed, expected, f"not proven: {_reason(result)}")
    problems = []
    if evidence.get("has_connect") is not False:
        problems.append(f"the production role has CONNECT on the clone {clone_db}")
    if attempt.get("refused") is False:
        problems.append(
            f"a connection to {clone_db} with the production credentials was ACCEPTED "
            f"({attempt.get('server')}; closed at once)"
        )
    if problems:
        return _record(cid, False, observed, expected, "; ".join(problems))
    if not attempt:
        return _record(cid, False, observed, expected, f"connection attempt not made: {_reason(result)}")
    if attempt.get("authorization") is not True:
        return _record(cid, False, observed, expected,
                       f"cannot prove: the connection attempt to {clone_db} ({attempt.get('server')}) failed "
                       f"for another reason than an authorization refusal: {attempt.get('reason')}")
    where = "" if evidence.get("exists_here") else f" (no database {clone_db} on the production server)"
    return _record(
        cid,
        True,
        observed,
        expected,
        f"no CONNECT on {clone_db}{where}; connection attempt refused by the server "
        f"({attempt.get('refused_by')}): {attempt.get('reason')}",
    )


def check_fingerprint(result: dict[str, Any], targets: dict[str, Any] | None) -> dict[str, Any]:
    """Every target counted (and hashed where asked) in the one snapshot, and a digest: else FAIL,
    whatever the baseline says (an empty baseline never turns a missing fingerprint into a pass)."""
    cid = "prod.fingerprint"
    counts, hashes = result.get("counts") or {}, result.get("hashes") or {}
    wanted = dict(targets) if targets is not None else {n: {"hash": n in hashes} for n in counts}
    expected = {"targets": sorted(wanted), "hashed": sorted(n for n, t in wanted.items()
                                                            if isinstance(t, dict) and t.get("hash")),
                "digest": "present"}
    observed = {"counted": sorted(counts), "hashed": sorted(hashes), "digest": result.get("digest")}
    if result.get("failed_stage") or result.get("failed"):
        return _record(cid, False, observed, expected, f"no complete fingerprint: {_reason(result)}")
    if not wanted:
        return _record(cid, False, observed, expected,
                       "no production targets configured (gate0_production_targets)")
    problems = [f"target {n}: not counted" for n in wanted if n not in counts]
    problems += [f"target {n}: not hashed" for n in expected["hashed"] if n not in hashes]
    if not result.get("digest"):
        problems.append("no digest")
    if problems:
        return _record(cid, False, observed, expected, "incomplete fingerprint: " + _join(problems))
    return _record(cid, True, observed, expected,
                   f"{len(counts)} targets counted, {len(hashes)} hashed in one snapshot; "
                   f"digest {str(result['digest'])[:12]}")


def check_baseline(result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    cid = "prod.baseline"
    if not baseline:
        return _record(cid, None, None, None, "skipped: gate0_production_baseline is empty")
    counts = result.get("counts")
    if not counts:
        return _record(cid, False, None, dict(baseline), f"counts not taken: {_reason(result)}")
    diff = []
    for name, want in sorted(baseline.items()):
        got = counts.get(name)
        if got is None:
            diff.append(f"{name}: expected {want}, no such target")
        elif int(want) != int(got):
            diff.append(f"{name}: expected {want}, observed {got}")
    observed = {k: counts.get(k) for k in baseline}
    if diff:
        return _record(cid, False, observed, dict(baseline), "baseline mismatch: " + _join(diff))
    return _record(cid, True, observed, dict(baseline), f"all {len(baseline)} counts equal the baseline")


def check_idle(result: dict[str, Any]) -> dict[str, Any]:
    """Which sessions count is the module's one rule (gate0_fingerprint.IDLE_IN_TRANSACTION_TOLERATED)."""
    cid = "prod.idle_in_transaction"
    idle = result.get("idle_in_transaction")
    expected = {"sessions": 0, "unknown": 0}
    if idle is None:
        return _record(cid, False, None, expected, f"sessions not inspected: {_reason(result)}")
    sessions = idle.get("sessions") or []
    tolerated = idle.get("tolerated") or []
    prepared = idle.get("prepared") or []
    observed = {"sessions": sessions, "unknown": idle.get("unknown", 0), "tolerated": tolerated,
                "prepared": prepared}
    if prepared:
        listed = [f"{p.get('gid')!r} by {p.get('owner')} since {p.get('prepared')}" for p in prepared]
        return _record(cid, False, observed, expected,
                       f"{len(prepared)} prepared transaction(s) on production hold writes: " + _join(listed))
    if sessions:
        listed = [
            f"pid {s['pid']} ({s.get('user')}, {s.get('application_name') or '-'}, idle {s.get('idle_s')} s)"
            for s in sessions
        ]
        return _record(
            cid,
            False,
            observed,
            expected,
            f"{len(sessions)} idle-in-transaction session(s) on production: " + _join(listed),
        )
    if idle.get("unknown"):
        return _record(
            cid,
            False,
            observed,
            expected,
            f"cannot see the state of {idle['unknown']} session(s): the role needs pg_read_all_stats",
        )
    also = ""
    if tolerated:
        role = (result.get("read_only_proof") or {}).get("role")
        also = (
            f"; {len(tolerated)} tolerated: the role {role}, proven unable to write in this run, "
            "with no transaction id (" + _join([f"pid {s['pid']}" for s in tolerated]) + ")"
        )
    return _record(
        cid, True, observed, expected, f"no idle-in-transaction session that could hold or make writes{also}"
    )


def writes_seen(result: dict[str, Any]) -> list[str] | None:
    """Each write to a non-volatile target seen during the fingerprint, one entry per table and way
    (a write lock of another backend at the start or the end, the write counters moving from start to
    end: gate0.core's gate0_fingerprint.py's writers_seen); None when not observed at both ends."""
    writers = result.get("writers") or {}
    start, end = writers.get("start"), writers.get("end")
    seen = []
    for when, obs in (("start", start), ("end", end)):
        for lock in (obs or {}).get("locks") or []:
            seen.append(f"{lock.get('table')}: pid {lock.get('pid')} ({lock.get('user')}, "
                        f"{lock.get('application_name') or '-'}, {lock.get('state')}) "
                        f"{'holds' if lock.get('granted') else 'waits for'} {lock.get('mode')} at the {when}")
    if not isinstance(start, dict) or not isinstance(end, dict):
        return seen or None  # a lock seen at the start is named even when the end was not reached
    before, after = start.get("counters") or {}, end.get("counters") or {}
    for table in sorted(set(before) | set(after)):
        b, a = before.get(table) or {}, after.get(table) or {}
        moved = [f"{k} {b.get(k)} -> {a.get(k)}" for k in COUNTER_KEYS if (a.get(k) or 0) != (b.get(k) or 0)]
        if b.get("relfilenode") != a.get("relfilenode"):
            moved.append(f"relfilenode {b.get('relfilenode')} -> {a.get('relfilenode')}")
        if moved:
            seen.append(f"{table}: {', '.join(moved)} while it was fingerprinted (a write, or the "
                        "statistics of an earlier one arriving)")
    return seen


def check_quiet(result: dict[str, Any]) -> dict[str, Any]:
    cid = "prod.targets_quiet"
    expected = {"write_locks": 0, "counters_moved": 0}
    seen = writes_seen(result)
    if seen is None:
        return _record(cid, False, None, expected, f"writers not observed: {_reason(result)}")
    observed = {"tables": (result.get("writers") or {}).get("tables"), "writes": seen}
    if seen:
        return _record(cid, False, observed, expected,
                       f"{len(seen)} write(s) to non-volatile targets during the fingerprint (its counts "
                       f"and hashes may be stale): " + _join(seen))
    return _record(cid, True, observed, expected,
                   f"no write lock of another backend on the {len(observed['tables'] or [])} target tables "
                   "at the start or the end of the fingerprint, no write counter moved in between")


def gate0_prod_checks(
    result: dict[str, Any], allowed: list[str], login_db: str, clone_db: str, baseline: dict[str, Any],
    targets: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The prod.* records from one pg_fingerprint result (failed or not) and the vars."""
    result = result or {}
    return [
        check_allowlist(result, allowed, login_db, clone_db),
        check_session(result),
        check_role(result),
        check_clone(result, clone_db),
        check_fingerprint(result, targets),
        check_baseline(result, baseline or {}),
        check_idle(result),
        check_quiet(result),
    ]


def gate0_prod_summary(result: dict[str, Any], database: str) -> dict[str, Any]:
    """The gate0 fact's `production`: {database, digest, counts} plus what the exit comparison needs."""
    result = result or {}
    return {
        "database": result.get("database") or database,
        "digest": None if _failed(result) else result.get("digest"),
        "counts": result.get("counts") or {},
        "hashes": result.get("hashes") or {},
        "counters": result.get("counters") or {},
        "target_tables": result.get("target_tables") or {},
        "volatile": result.get("volatile") or [],
        "stats_reset": result.get("stats_reset"),
        "taken_at": result.get("taken_at"),
        "server": {k: (result.get("identity") or {}).get(k) for k in SERVER_KEYS},
    }


def gate0_prod_report(result: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The JSON report's `production` section."""
    result = result or {}
    return {
        "database": result.get("database"),
        "identity": result.get("identity") or {},
        "digest": None if _failed(result) else result.get("digest"),
        "counts": result.get("counts") or {},
        "hashes": result.get("hashes") or {},
        "counters": result.get("counters") or {},
        "read_only_proof": result.get("read_only_proof") or {},
        "session": result.get("session") or {},
        "clone_unreachable": result.get("clone_unreachable") or {},
        "idle_in_transaction": result.get("idle_in_transaction") or {},
        "writers": result.get("writers") or {},
        "baseline": {"expected": dict(baseline or {}), **(result.get("baseline") or {})},
        "taken_at": result.get("taken_at"),
        "duration_ms": result.get("duration_ms"),
        "timings": result.get("timings") or {},
        "error": _reason(result) if _failed(result) else None,
    }


def _counter_problems(
    name: str, tables: list[str], entry: dict[str, Any], exit_: dict[str, Any]
) -> tuple[list[str], list[str]]:
    changed, unprovable = [], []
    for table in tables:
        before, after = entry.get(table), exit_.get(table)
        if before is None or after is None:
            unprovable.append(
                f"{name} ({table}): no write counters at {'entry' if before is None else 'exit'}"
            )
            continue
        if before.get("relfilenode") != after.get("relfilenode"):
            changed.append(
                f"{name} ({table}): rewritten or truncated (relfilenode "
                f"{before.get('relfilenode')} -> {after.get('relfilenode')})"
            )
        for key in COUNTER_KEYS:
            b, a = int(before.get(key) or 0), int(after.get(key) or 0)
            if a > b:
                changed.append(f"{name} ({table}): {key} {b} -> {a}")
            elif a < b:
                unprovable.append(f"{name} ({table}): {key} went down {b} -> {a} (statistics reset)")
    return changed, unprovable


def gate0_prod_exit(entry: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Compare the entry summary with the exit fingerprint: unchanged | changed | cannot_prove.
    An entry record of the wrong shape (a string count, a list for a dict) is "cannot prove"."""
    try:
        return _prod_exit(entry if isinstance(entry, dict) else {}, result)
    except (AttributeError, TypeError, ValueError) as exc:
        return {"status": "cannot_prove", "unchanged": False, "entry_digest": None, "exit_digest": None,
                "changed": [], "cannot_prove": [f"{type(exc).__name__}: {exc}"],
                "message": "production unchanged: cannot prove: the entry record (gate0 fact) is malformed: "
                           + " ".join(f"{type(exc).__name__}: {exc}".split())}


def _prod_exit(entry: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    entry, result = entry or {}, result or {}
    exit_summary = gate0_prod_summary(result, entry.get("database") or "")
    out = {
        "status": "cannot_prove",
        "unchanged": False,
        "entry_digest": entry.get("digest"),
        "exit_digest": exit_summary["digest"],
        "changed": [],
        "cannot_prove": [],
        "message": "",
    }
    if _failed(result):
        out["message"] = f"production unchanged: cannot prove: exit fingerprint failed: {_reason(result)}"
        return out
    if not entry.get("digest"):
        out["message"] = (
            "production unchanged: cannot prove: the entry fingerprint (gate0 fact) has no digest"
        )
        return out
    if entry.get("database") != exit_summary["database"]:
        out["message"] = (
            f"production unchanged: cannot prove: entry fingerprint of {entry.get('database')}, "
            f"exit of {exit_summary['database']}"
        )
        return out
    before, after = entry.get("server") or {}, exit_summary["server"]
    moved = [
        f"{k} {before[k]} -> {after[k]}"
        for k in SERVER_KEYS
        if before.get(k) is not None and after.get(k) is not None and before[k] != after[k]
    ]
    if moved:
        out["message"] = (
            "production unchanged: cannot prove: the exit fingerprint is of another database "
            f"named {entry.get('database')} ({', '.join(moved)})"
        )
        return out
    changed, unprovable = [], []
    volatile = set(entry.get("volatile") or []) | set(exit_summary["volatile"])
    names = sorted((set(entry.get("counts") or {}) | set(exit_summary["counts"])) - volatile)
    for name in names:
        b, a = (entry.get("counts") or {}).get(name), exit_summary["counts"].get(name)
        if b is None or a is None:
            unprovable.append(f"{name}: not in the {'entry' if b is None else 'exit'} fingerprint")
        elif b != a:
            changed.append(f"{name}: count {b} -> {a}")
        elif (entry.get("hashes") or {}).get(name) != exit_summary["hashes"].get(name):
            changed.append(
                f"{name}: content changed (rows or their row versions, ctid/xmin: hash "
                f"{(entry.get('hashes') or {}).get(name)} -> {exit_summary['hashes'].get(name)})"
            )
        tables = exit_summary["target_tables"].get(name) or (entry.get("target_tables") or {}).get(name) or []
        c, u = _counter_problems(name, tables, entry.get("counters") or {}, exit_summary["counters"])
        changed += c
        unprovable += u
    writes = writes_seen(result)
    unprovable += ["exit fingerprint: writers not observed"] if writes is None else [
        f"written during the exit fingerprint: {w}" for w in writes]
    if entry.get("stats_reset") != exit_summary["stats_reset"]:
        unprovable.append(
            f"statistics were reset ({entry.get('stats_reset')} -> {exit_summary['stats_reset']})"
        )
    if entry["digest"] != exit_summary["digest"] and not changed:
        changed.append(f"digest {entry['digest'][:12]} -> {exit_summary['digest'][:12]}")
    out.update(changed=changed, cannot_prove=unprovable)
    if changed:
        out.update(status="changed", message="production CHANGED between entry and exit: " + _join(changed))
    elif unprovable:
        out["message"] = "production unchanged: cannot prove: " + _join(unprovable)
    else:
        out.update(
            status="unchanged",
            unchanged=True,
            message=f"production unchanged: digest {entry['digest'][:12]} equal, no write counter moved "
            f"({len(names)} targets)",
        )
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "gate0_prod_checks": gate0_prod_checks,
            "gate0_prod_summary": gate0_prod_summary,
            "gate0_prod_report": gate0_prod_report,
            "gate0_prod_exit": gate0_prod_exit,
        }
