"""Judge disk headroom: disk_headroom's facts and the role's rules -> the disk.headroom record.

Pure functions (no I/O). The rules: free bytes >= a minimum, free percent >= a minimum, free bytes >=
a factor x the clone's size (room for one more refresh). A missing path or an unreadable size fails.
"""

from __future__ import annotations

import math
from typing import Any

from ansible_collections.gate0.core.plugins.module_utils.gate0_checks import record

DF_UNITS = ("", "K", "M", "G", "T", "P", "E")
PG_UNITS = ("bytes", "kB", "MB", "GB", "TB", "PB")


def human_df(n: int | None) -> str:
    """Bytes the way `df -h` prints them: 1024-based, rounded up, one decimal below 10 (22G, 9.5G)."""
    if n is None:
        return "?"
    value, unit = float(n), 0
    while value >= 1024 and unit < len(DF_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return str(int(n))
    if value < 10:
        return f"{math.ceil(value * 10) / 10:.1f}{DF_UNITS[unit]}"
    return f"{math.ceil(value)}{DF_UNITS[unit]}"


def human_pg(n: int | None) -> str:
    """Bytes the way pg_size_pretty prints them: a unit is used until the number reaches 10240."""
    if n is None:
        return "unreadable"
    value = float(n)
    for unit in PG_UNITS:
        if abs(value) < 10240 or unit == PG_UNITS[-1]:
            return f"{round(value)} {unit}"
        value /= 1024
    return f"{round(value)} {PG_UNITS[-1]}"  # pragma: no cover - loop always returns


def gate0_disk_report(result: dict[str, Any] | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The disk facts, each rule's outcome and the human line (the report's `disk` section)."""
    r = result or {}
    fs = r.get("filesystem") or {}
    clone_db, prod_db = settings.get("clone_database"), settings.get("production_database")
    sizes = r.get("sizes") or {}
    size_errors = r.get("size_errors") or {}
    clone_size, prod_size = sizes.get(clone_db), sizes.get(prod_db)
    problems: list[str] = []
    if r.get("failed") or not r:
        problems.append(f"not observed: {r.get('msg') or 'the disk_headroom module did not run'}")
    if r.get("path_error"):
        problems.append(str(r["path_error"]))
    for name in (clone_db, prod_db):
        if sizes.get(name) is None and (r and not r.get("failed")):
            problems.append(size_errors.get(name) or size_errors.get("connection")
                            or f"the size of {name} was not read")
    free = fs.get("free_bytes")
    rules: list[dict[str, Any]] = []
    if free is not None:
        min_bytes = int(settings.get("min_free_bytes") or 0)
        min_pct = float(settings.get("min_free_percent") or 0)
        factor = float(settings.get("clone_size_factor") or 0)
        rules.append({"rule": "min_free_bytes", "var": "gate0_disk_min_free_bytes", "ok": free >= min_bytes,
                      "observed": free, "limit": min_bytes,
                      "text": f"free {human_df(free)} < minimum {human_df(min_bytes)}"})
        rules.append({"rule": "min_free_percent", "var": "gate0_disk_min_free_percent",
                      "ok": fs.get("free_percent", 0) >= min_pct, "observed": fs.get("free_percent"),
                      "limit": min_pct, "text": f"free {fs.get('free_percent')}% < minimum {min_pct:g}%"})
        if clone_size is not None:
            need = math.ceil(factor * clone_size)
            rules.append({"rule": "clone_size_factor", "var": "gate0_disk_clone_size_factor",
                          "ok": free >= need, "observed": free, "limit": need,
                          "text": f"free {human_df(free)} < {factor:g} x clone {human_pg(clone_size)}"})
    problems += [f"{x['text']} ({x['var']})" for x in rules if not x["ok"]]
    problems = list(dict.fromkeys(problems))  # one line per cause, in order
    where = r.get("path") or settings.get("path")
    space = f"{where}: filesystem not measured"
    if free is not None:
        space = (f"{human_df(free)} free of {human_df(fs.get('total_bytes'))} on {where}"
                 f" ({fs.get('free_percent')}% free)")
    line = f"{space}; clone {human_pg(clone_size)}; production {human_pg(prod_size)}"
    return {
        "path": r.get("path") or settings.get("path"),
        "total_bytes": fs.get("total_bytes"),
        "used_bytes": fs.get("used_bytes"),
        "free_bytes": free,
        "free_percent": fs.get("free_percent"),
        "sizes": {clone_db: clone_size, prod_db: prod_size},
        "size_errors": size_errors,
        "rules": rules,
        "problems": problems,
        "human": line,
        "timings": r.get("timings"),
    }


def gate0_disk_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The disk.headroom record from gate0_disk_report's output."""
    problems = report.get("problems") or []
    observed = {k: report.get(k) for k in ("path", "total_bytes", "free_bytes", "free_percent", "sizes")}
    expected = {x["rule"]: x["limit"] for x in report.get("rules") or []}
    message = report["human"] if not problems else "; ".join(problems) + f" — {report['human']}"
    return [record("disk.headroom", not problems, observed, expected, message)]
