"""Filters that turn the gates' check records into one verdict (used by tasks/verdict.yml)."""

from __future__ import annotations

from typing import Any

STATUSES = ("pass", "fail", "skipped")


def gate0_complete_checks(records: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    """Order records by the stable ids; a check that produced no record is 'fail' (not run).

    A check may be skipped only where its vars say so, and then its gate reports it as 'skipped'
    itself. A check with no record at all was excluded (tags) or its gate broke: that never passes.
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
        if cid in by_id:
            out.append(by_id.pop(cid))
        else:
            out.append({
                "id": cid,
                "gate": cid.split(".", 1)[0],
                "status": "fail",
                "observed": None,
                "expected": None,
                "message": "not run in this invocation (excluded by tags, or its gate did not report it)",
            })
    if by_id:
        raise ValueError(f"unknown check ids: {', '.join(sorted(by_id))}")
    return out


def gate0_failed_checks(records: list[dict[str, Any]]) -> list[str]:
    """One line per failed check: '<id>: <message>'."""
    return [f"{r['id']}: {r.get('message') or 'failed'}" for r in records if r.get("status") == "fail"]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "gate0_complete_checks": gate0_complete_checks,
            "gate0_failed_checks": gate0_failed_checks,
        }
