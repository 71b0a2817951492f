"""The check record: the one shape every judge returns (README "Report": checks).

`{id, gate, status: pass|fail|skipped, observed, expected, message}`, the message on one line.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]
STATUSES = ("pass", "fail", "skipped")


def one_line(text: Any) -> str:
    """`text` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def record(cid: str, ok: bool | None, observed: Any, expected: Any, message: Any) -> Record:
    """A check record for `cid` (its gate is the id's prefix): pass when ok, fail when not, skipped
    when ok is None (a check the vars leave out: never reported as pass)."""
    return {
        "id": cid,
        "gate": cid.split(".", 1)[0],
        "status": "skipped" if ok is None else ("pass" if ok else "fail"),
        "observed": observed,
        "expected": expected,
        "message": one_line(message),
    }
