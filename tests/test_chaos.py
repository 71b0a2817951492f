"""Sound over time and under failure: races inside a run, writers the statistics have not seen,
runs that do not finish, hostile values. Each case is bounded, loopback only, a few seconds.

Every case here was seen failing before its fix (issue 16): a worker arriving during the clone
check, a write whose statistics are not flushed, a PASS left by a run that did not finish, ...
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CLONE_DB, Lab, run_playbook

# --- the clone part's pause point (module_utils/gate0_clone.py, GATE0_TEST_PAUSE_FILE) ----------------

PAUSE_WAIT_S = 90.0


def clone_gate(report_dir: Path, env: dict[str, str] | None = None, *extra: str) -> dict[str, Any]:
    """The clone gate alone (`--tags clone`) through the real playbook; its records by id."""
    proc = run_playbook("playbooks/gate0.yml", "--tags", "clone", "-e", f"gate0_report_dir={report_dir}",
                        *extra, env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(report_dir / ".facts"),
                                           **(env or {})}, timeout=150)
    files = sorted(report_dir.glob("gate0-*.json"))
    assert files, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(files[-1].read_text())
    assert "Traceback" not in proc.stdout + proc.stderr
    return {"rc": proc.returncode, "checks": {c["id"]: c for c in report["checks"]}, "report": report,
            "output": proc.stdout + proc.stderr}


@contextlib.contextmanager
def paused_clone_gate(tmp_path: Path, *extra: str) -> Iterator[dict[str, Any]]:
    """Run the clone gate in a thread, held at its pause point (after its first read, sessions) until
    the body is done; yields the dict the run's result is put in (after the block)."""
    pause = tmp_path / "pause"
    pause.write_text("held by the test\n")
    out: dict[str, Any] = {}

    def run() -> None:
        out.update(clone_gate(tmp_path / "reports", {"GATE0_TEST_PAUSE_FILE": str(pause)}, *extra))

    thread = threading.Thread(target=run, name="gate0-paused", daemon=True)
    thread.start()
    deadline = time.monotonic() + PAUSE_WAIT_S
    reached = Path(f"{pause}.reached")
    while not reached.exists() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert reached.exists(), "the clone part never reached its pause point"
        yield out
    finally:
        pause.unlink(missing_ok=True)
        thread.join(timeout=150)
    assert out, "the paused gate0 run did not finish"


def worker(lab: Lab, *statements: str) -> Any:
    """A worker's session on the clone (the clone admin over TCP), after running `statements`."""
    conn = lab.connect(CLONE_DB, user="workflow_admin", application_name="chaos-worker")
    with conn.cursor() as cur:
        for stmt in statements:
            cur.execute(stmt)
    return conn


LEASE = ("INSERT INTO dot_iu_runtime_lease (worker_id, iu_code, expires_at) "
         "VALUES ('chaos', 'IU-1', now() + interval '1 hour')")
ACTIVATE = ("UPDATE event_type_registry SET active = true "
            "WHERE event_type = (SELECT max(event_type) FROM event_type_registry)")

# (what the worker does while the clone part is paused, stays connected, the checks that must fail)
ARRIVALS = [
    pytest.param([LEASE], True, {"clone.worker_lease", "clone.foreign_sessions"}, id="lease-and-stays"),
    pytest.param([ACTIVATE], False, {"clone.dispatch_disabled", "clone.foreign_sessions"},
                 id="dispatch-and-goes"),
    pytest.param(["SELECT 1"], False, {"clone.foreign_sessions"}, id="comes-and-goes"),
]


@pytest.mark.parametrize(("statements", "stays", "failing"), ARRIVALS)
def test_a_worker_arriving_during_the_clone_check_fails_it(fresh_lab: Lab, tmp_path: Path,
                                                           statements: list[str], stays: bool,
                                                           failing: set[str]) -> None:
    """Issue 16.1: a session that connects to the clone after the clone part's first read (and
    writes a lease, activates dispatch, or only comes and goes) fails the gate."""
    conns = []
    with paused_clone_gate(tmp_path) as result:
        conns.append(worker(fresh_lab, *statements))
        if not stays:
            conns.pop().close()
    try:
        bad = {cid: c["message"] for cid, c in result["checks"].items()
               if cid.startswith("clone.") and c["status"] != "pass"}
        assert set(bad) == failing, json.dumps(bad, indent=1)
        assert result["rc"] != 0
        for cid in failing:
            assert "\n" not in bad[cid]
        if stays:
            assert "chaos-worker" in bad["clone.foreign_sessions"], bad
        else:
            assert "established" in bad["clone.foreign_sessions"], bad
    finally:
        for conn in conns:
            conn.close()


def test_the_clone_check_passes_when_nobody_arrives(lab: Lab, tmp_path: Path) -> None:
    """The same held run, nobody arriving: every clone check passes (the re-check is not a false alarm)."""
    with paused_clone_gate(tmp_path) as result:
        time.sleep(0.5)
    bad = {cid: c["message"] for cid, c in result["checks"].items()
           if cid.startswith("clone.") and c["status"] != "pass"}
    assert bad == {}, bad
