"""bench/run.py's timing recorder: every task's wall time and a module's own duration_ms, as JSON.

Enabled only by bench/run.py (ANSIBLE_CALLBACKS_ENABLED=gate0_timing, GATE0_BENCH_TIMING=<file>).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

PARTS = ("fingerprint", "clone", "disk")

DOCUMENTATION = """
name: gate0_timing
type: aggregate
short_description: Records task wall times and modules' duration_ms for bench/run.py
description: Writes one JSON list of {task, action, host, seconds, duration_ms, parts} to $GATE0_BENCH_TIMING.
requirements: [enable in ansible.cfg or ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gate0_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._start: dict[str, float] = {}
        self._rows: list[dict[str, Any]] = []

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._start[f"{host.get_name()}|{task._uuid}"] = time.monotonic()

    def _record(self, result: Any) -> None:
        key = f"{result._host.get_name()}|{result._task._uuid}"
        start = self._start.pop(key, None)
        res = result._result if isinstance(result._result, dict) else {}
        observed = res.get("observed_ms") if isinstance(res.get("observed_ms"), dict) else {}
        self._rows.append({
            "task": result._task.get_name(),
            "action": result._task.action,
            "host": result._host.get_name(),
            "seconds": None if start is None else round(time.monotonic() - start, 4),
            "duration_ms": observed.get("gate0_observe", res.get("duration_ms")),
            # gate0_observe (run by the role's gate0_verdict, which reports `observed_ms`, or as its own
            # task): each part's own duration_ms (pg_fingerprint, clone_isolation, disk_headroom).
            "parts": {k: v for k, v in observed.items() if k in PARTS} or {
                k: v.get("duration_ms") for k, v in res.items() if k in PARTS and isinstance(v, dict)},
        })

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        path = os.environ.get("GATE0_BENCH_TIMING")
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(self._rows, fh)
