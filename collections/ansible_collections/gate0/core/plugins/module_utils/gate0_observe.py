"""gate0_observe's work: pg_fingerprint, clone_isolation and disk_headroom in one call.

Run by the module library/gate0_observe.py and, over a local connection, by the gate0 role's
gate0_observe action in a process forked from Ansible's worker (no module payload to build and start).
`observe_all(params)` never raises: each part reports its own failures.
"""

from __future__ import annotations

import threading
from typing import Any

from ansible_collections.gate0.core.plugins.module_utils import gate0_clone, gate0_disk, gate0_fingerprint

PARTS = (("fingerprint", gate0_fingerprint), ("clone", gate0_clone), ("disk", gate0_disk))


def argument_spec() -> dict[str, Any]:
    """gate0_observe's options: each part's own module options, as a dict (omitted: not run)."""
    return {name: {"type": "dict", "options": part.argument_spec()} for name, part in PARTS}


def run_part(name: str, part: Any, options: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """One part's result; each part reports its own failures, this catches only the unexpected."""
    try:
        return part.observe(options, **kwargs)
    except Exception as exc:  # a last resort: one line, never a traceback
        why = " ".join(str(exc).split())
        return {"changed": False, "failed": True, "failed_stage": "unknown",
                "msg": f"{name}: unexpected {type(exc).__name__}: {why}"}


def observe_all(params: dict[str, Any]) -> dict[str, Any]:
    """The parts asked for: the clone, then the disk, in a thread, while production is fingerprinted;
    the fingerprint's clone probe waits until the clone part has ended (the module's DOCUMENTATION
    says why neither part counts the other's sessions)."""
    results: dict[str, Any] = {}
    clone_ended = threading.Event()

    def clone_then_disk() -> None:
        try:
            if params.get("clone") is not None:
                results["clone"] = run_part("clone", gate0_clone, params["clone"])
        finally:
            clone_ended.set()
        if params.get("disk") is not None:
            results["disk"] = run_part("disk", gate0_disk, params["disk"])

    side = threading.Thread(target=clone_then_disk, name="gate0-clone-disk", daemon=True)
    side.start()
    if params.get("fingerprint") is not None:
        results["fingerprint"] = run_part("fingerprint", gate0_fingerprint, params["fingerprint"],
                                          before_probe=clone_ended.wait)
    side.join()
    return results
