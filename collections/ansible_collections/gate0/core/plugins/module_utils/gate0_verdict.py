"""Validate gate0's inputs and turn the gates' check records into one verdict.

Used by the gate0_start action (gate0_config_problems, the unfinished fact), the gate0_verdict action
(completion, failures)
and the consumers (gate0_require_problems, gate0_play_stats). They run on the controller and only
compute: no connection, no file written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ansible_collections.gate0.core.plugins.module_utils.gate0_checks import STATUSES, one_line, record
from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import (
    allowlist_problems,
    clone_name_problems,
)

# Ranges the argument spec cannot express: variable -> (lowest, highest) inclusive; None = unbounded.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "gate0_production_login_port": (1, 65535),
    "gate0_clone_login_port": (1, 65535),
    "gate0_statement_timeout": (1, 3_600_000),
    "gate0_lock_timeout": (1, 3_600_000),
    "gate0_connect_timeout": (1, 3600),
    "gate0_observe_timeout": (1, 86400),
    "gate0_disk_min_free_bytes": (0, None),
    "gate0_disk_min_free_percent": (0, 100),
    "gate0_disk_clone_size_factor": (0, None),
    "gate0_max_age": (1, None),
    "gate0_production_hash_chunk_rows": (1, None),
    "gate0_clone_quiet_window": (0, 600),
}


# Every role variable gate0_config_problems judges: what the gate0_start action reads (after the role's
# argument spec) before any connection.
CONFIG_VARS = (*RANGES, "gate0_production_database", "gate0_production_allowed_databases",
               "gate0_production_baseline", "gate0_clone_database", "gate0_clone_name_prefix",
               "gate0_clone_name_prefix_min_length", "gate0_clone_name_suffix_regex", "gate0_report_dir",
               "gate0_gates")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _range_problems(cfg: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, (low, high) in RANGES.items():
        if name not in cfg:
            continue
        value = cfg[name]
        num = _number(value)
        if num is None or (low is not None and num < low) or (high is not None and num > high):
            bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            out.append(f"{name} must be a number in {bounds}, got {value!r}")
    return out


def _baseline_problems(cfg: dict[str, Any]) -> list[str]:
    """gate0_production_baseline: target name -> a whole number >= 0 (not a string, not true/false)."""
    if "gate0_production_baseline" not in cfg:
        return []
    baseline = cfg["gate0_production_baseline"]
    if not isinstance(baseline, Mapping):
        return [f"gate0_production_baseline must be a dict of target name to count, got {baseline!r}"]
    bad = {str(k): v for k, v in baseline.items()
           if isinstance(v, bool) or not isinstance(v, int) or v < 0}
    if bad:
        return [f"gate0_production_baseline values must be whole numbers >= 0, got {bad!r}"]
    return []


def _allowlist_problems(cfg: dict[str, Any]) -> list[str]:
    """The production allowlist: a list naming the production database and never the clone.

    The rule itself is gate0_pg.allowlist_problems; this adds only the type check.
    """
    prod = str(cfg.get("gate0_production_database") or "")
    clone = str(cfg.get("gate0_clone_database") or "")
    allowed = cfg.get("gate0_production_allowed_databases")
    if not isinstance(allowed, list) or not all(isinstance(a, str) and a for a in allowed):
        return [f"gate0_production_allowed_databases must be a list of database names, got {allowed!r}"]
    return allowlist_problems([str(a) for a in allowed], prod, clone,
                              ("gate0_production_allowed_databases", "gate0_production_database"))


def _clone_name_problems(cfg: dict[str, Any]) -> list[str]:
    """The clone name rule (gate0_pg.clone_name_problems) on the configured names: one line."""
    if "gate0_clone_database" not in cfg:
        return []
    clone, prefix = str(cfg["gate0_clone_database"] or ""), str(cfg.get("gate0_clone_name_prefix") or "")
    allowed = cfg.get("gate0_production_allowed_databases")
    production = [str(cfg.get("gate0_production_database") or ""),
                  *([str(a) for a in allowed] if isinstance(allowed, list) else [])]
    problems = clone_name_problems(clone, prefix, production,
                                   int(_number(cfg.get("gate0_clone_name_prefix_min_length")) or 1),
                                   str(cfg.get("gate0_clone_name_suffix_regex") or ""))
    if not problems:
        return []
    return [f"gate0_clone_database={clone} and gate0_clone_name_prefix={prefix} break the clone name rule: "
            + ", ".join(problems)]


def writable_dir_problem(path: str) -> str | None:
    """Why `path` cannot hold reports (None when it can): it or its nearest existing parent."""
    if not path:
        return "is empty"
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"cannot be created: {probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"is not writable: {probe}"
    return None


def gate0_config_problems(cfg: dict[str, Any]) -> list[str]:
    """Every misconfiguration the argument spec cannot catch, one line each, naming var and value."""
    out = (_range_problems(cfg) + _baseline_problems(cfg) + _allowlist_problems(cfg)
           + _clone_name_problems(cfg))
    window, bound = _number(cfg.get("gate0_clone_quiet_window")), _number(cfg.get("gate0_observe_timeout"))
    if window is not None and bound is not None and window >= bound:
        out.append(f"gate0_clone_quiet_window must be below gate0_observe_timeout ({bound:g} s): the clone "
                   f"check would be stopped before its final re-check, got {window:g}")
    gates = cfg.get("gate0_gates", ["prod", "clone", "disk"])
    if not isinstance(gates, list) or not gates or not set(gates) <= {"prod", "clone", "disk"}:
        out.append(f"gate0_gates must be a non-empty list of prod, clone, disk, got {gates!r}")
    if "gate0_report_dir" in cfg:
        why = writable_dir_problem(str(cfg["gate0_report_dir"] or ""))
        if why:
            out.append(f"gate0_report_dir {why}, got {cfg['gate0_report_dir']!r}")
    return out


def gate0_selected_gates(gates: list[str], run_tags: list[str] | None = None,
                         skip_tags: list[str] | None = None) -> list[str]:
    """The gates this run observes: `gates` (gate0_gates) narrowed by --tags/--skip-tags.

    As Ansible selects a task tagged with the gate's name: asked for by `all` (no --tags), `tagged`
    or the name itself, and not skipped by the name or `tagged`. Order kept (prod, clone, disk).
    """
    run = set(run_tags or ["all"])
    skip = set(skip_tags or [])
    return [g for g in gates if run & {"all", "tagged", g} and not skip & {"tagged", g}]


def gate0_observed_part(observed: Any, part: str) -> dict[str, Any]:
    """One part of a registered gate0_observe result, as its own module would have returned it.

    A part the module did not return (its options were refused, the task did not run) is a failure
    carrying the module's message, so each check it feeds FAILs naming the cause.
    """
    observed = observed if isinstance(observed, Mapping) else {}
    got = observed.get(part)
    if isinstance(got, Mapping):
        return dict(got)
    return {"failed": True, "msg": observed.get("msg") or f"gate0_observe returned no {part} result"}


def gate0_complete_checks(records: list[dict[str, Any]], ids: list[str],
                          gates: list[str] | None = None,
                          run_gates: list[str] | None = None) -> list[dict[str, Any]]:
    """Order records by the stable ids; a check that produced no record is 'fail' (not run).

    A check may be skipped only where its vars say so: its gate reports it as 'skipped' itself, or
    its whole gate was left out by `gate0_gates` (`gates`), which makes its checks 'skipped' here.
    A check with no record otherwise was excluded by tags (its gate not in `run_gates`) or its gate
    broke: that never passes.
    """
    by_id: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for rec in records:
        rid = rec.get("id")
        if rid in by_id:
            raise ValueError(f"check {rid} reported twice")
        if rec.get("status") not in STATUSES:
            raise ValueError(f"check {rid} has status {rec.get('status')!r}")
        by_id[rid] = rec
    for cid in ids:
        gate = cid.split(".", 1)[0]
        if cid in by_id:
            out.append(by_id.pop(cid))
        elif gates is not None and gate not in gates:
            out.append(record(cid, None, None, None, f"gate {gate} not selected (gate0_gates={list(gates)})"))
        else:
            if run_gates is None:
                why = "excluded by tags, or its gate did not report it"
            elif gate not in run_gates:
                why = (f"gate {gate} excluded by --tags/--skip-tags (this run observed: "
                       f"{', '.join(run_gates) or 'no gate'})")
            else:
                why = f"gate {gate} ran but did not report it"
            out.append(record(cid, False, None, None, f"not run in this invocation: {why}"))
    if by_id:
        raise ValueError(f"unknown check ids: {', '.join(sorted(by_id))}")
    return out


def gate0_failed_checks(records: list[dict[str, Any]]) -> list[str]:
    """One line per failed check: '<id>: <message>'."""
    return [f"{r['id']}: {one_line(r.get('message') or '') or 'failed'}"
            for r in records if r.get("status") == "fail"]


def gate0_fail_message(records: list[dict[str, Any]], host: str, report: str = "") -> str:
    """The FAIL message: a header line, every failed check on its own line, then this run's report."""
    failed = gate0_failed_checks(records)
    head = f"gate0 FAIL on {host}: {len(failed)} of {len(records)} checks failed"
    return "\n".join([head, *failed, *([f"report {report}"] if report else [])])


def gate0_unfinished_fact(run_id: str, started_at: str, host: str, production_database: str,
                          clone_database: str) -> dict[str, Any]:
    """The gate0 fact from a run's start until its verdict: not passed, not finished (`unfinished`)."""
    return {"passed": False, "finished": False, "run_id": run_id, "checked_at": started_at, "host": host,
            "gates": [], "production": {"database": production_database, "digest": None, "counts": {}},
            "clone": {"database": clone_database, "identity": None}, "checks": []}


def unfinished(gate0: Any) -> str | None:
    """Why a gate0 record is no verdict: the run that wrote it did not finish (gate0_start's mark)."""
    if isinstance(gate0, dict) and gate0.get("finished") is False:
        return (f"gate0 run {gate0.get('run_id')} started at {gate0.get('checked_at')} did not finish "
                "(failed or interrupted before its reports and receipt): no verdict; run playbooks/gate0.yml")
    return None


def gate0_play_stats(by_host: dict[str, Any], play_hosts_all: list[str]) -> dict[str, Any]:
    """What set_stats publishes for the whole play (never per host).

    `gate0_hosts`: every play host -> its gate0 fact (a host without one, e.g. unreachable, maps
    to a failed stub). `gate0`: with one host, that host's fact (the AWX single-host case); with
    several, a play summary that passes only if every host passed and that carries no clone (so a
    consumer must pick its own host's entry from `gate0_hosts`).
    """
    hosts: dict[str, Any] = {}
    for name in play_hosts_all:
        fact = by_host.get(name)
        if isinstance(fact, dict) and "passed" in fact:
            hosts[name] = fact
        else:
            hosts[name] = {"passed": False, "host": name, "run_id": None, "checked_at": None,
                           "checks": [], "message": "this host did not finish gate0"}
    if len(hosts) == 1:
        summary = next(iter(hosts.values()))
    else:
        stamps = sorted(str(h.get("checked_at") or "") for h in hosts.values())
        summary = {
            "passed": bool(hosts) and all(h.get("passed") is True for h in hosts.values()),
            "run_id": None,
            "checked_at": stamps[-1] if stamps else None,
            "host": None,
            "hosts": sorted(hosts),
            "failed_hosts": sorted(n for n, h in hosts.items() if h.get("passed") is not True),
        }
    return {"gate0": summary, "gate0_hosts": hosts}


ALL_GATES = ("prod", "clone", "disk")


def gate0_require_problems(gate0: Any, clone_database: str) -> list[str]:
    """Why a consumer must refuse this gate0 record, before connecting (age and identity: clone_sql)."""
    if not isinstance(gate0, dict):
        return [f"no gate0 record for this host (got {type(gate0).__name__}); run playbooks/gate0.yml first"]
    if unfinished(gate0):
        return [str(unfinished(gate0))]
    out: list[str] = []
    if gate0.get("passed") is not True:
        failed = [c.get("id") for c in gate0.get("checks") or [] if c.get("status") == "fail"]
        out.append(f"gate0 did not pass (run {gate0.get('run_id')}, "
                   f"failed: {', '.join(map(str, failed)) or '?'})")
    missing = [g for g in ALL_GATES if g not in (gate0.get("gates") or ALL_GATES)]
    if missing:
        out.append(f"gate0 ran without gate(s) {', '.join(missing)} (gate0_gates={gate0.get('gates')!r})")
    if not (gate0.get("production") or {}).get("digest"):
        out.append("gate0 record has no production digest (no complete entry fingerprint)")
    clone = (gate0.get("clone") or {}).get("database")
    if clone != clone_database:
        out.append(f"gate0 was for clone {clone!r}, not gate0_clone_database {clone_database!r}")
    return out
