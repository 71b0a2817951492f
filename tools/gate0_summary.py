#!/usr/bin/env python3
"""Print gate0's verdict, every check's line and the report paths from the JSON reports of a run.

    tools/gate0_summary.py REPORT_DIR [--since EPOCH_SECONDS]

Reads the newest gate0-<host>-<stamp>-<run id>.json per host written at or after --since. Exit status: 0 when
every host passed, 1 when any failed, 2 when no report was found.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def newest_reports(report_dir: Path, since: float) -> dict[str, Path]:
    """host -> its newest JSON report written at or after `since`."""
    found: dict[str, Path] = {}
    for path in sorted(report_dir.glob("gate0-*.json"), key=lambda p: p.stat().st_mtime):
        if path.stat().st_mtime + 1 < since:
            continue
        try:
            host = json.loads(path.read_text())["host"]
        except (OSError, ValueError, KeyError):
            continue
        found[host] = path
    return found


def summary(report: dict[str, Any], path: Path) -> list[str]:
    """The lines printed for one host's report."""
    checks = report.get("checks", [])
    failed = [c for c in checks if c.get("status") == "fail"]
    lines = [f"gate0 {report.get('verdict')} on {report.get('host')} (run {report.get('run_id')}, "
             f"{report.get('started_at')} -> {report.get('finished_at')})"]
    width = max((len(c["id"]) for c in checks), default=10)
    for c in checks:
        message = " ".join(str(c.get("message") or "").split())
        lines.append(f"  {c.get('status', '?').upper():<8} {c['id']:<{width}}  {message}")
    lines.append(f"  report: {path}")
    lines.append(f"          {path.with_suffix('.md')}")
    if failed:
        lines.append(f"gate0 FAIL on {report.get('host')}: {len(failed)} of {len(checks)} checks failed")
        lines.extend(f"  {c['id']}: {' '.join(str(c.get('message') or 'failed').split())}" for c in failed)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--since", type=float, default=0.0)
    args = parser.parse_args(argv)
    found = newest_reports(args.report_dir, args.since)
    if not found:
        print(f"gate0: no report in {args.report_dir} from this run", file=sys.stderr)
        return 2
    passed = True
    for host in sorted(found):
        report = json.loads(found[host].read_text())
        passed = passed and report.get("verdict") == "PASS"
        print("\n".join(summary(report, found[host])))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
