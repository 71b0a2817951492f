"""gate0_observe's two ways to run, one verdict: as a module (any connection), and, when the database
host is the controller itself, in a process forked from Ansible's worker
(roles/gate0/action_plugins/gate0_observe.py: the same code, options and argument spec).

`-vvv` names the module file whenever Ansible builds the module's payload: that line tells the two apart.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROD_DB, REPO, Lab, lab_env, load_plugin
from gaterun import GateRun, run_gate

observe_action = load_plugin("roles/gate0/action_plugins/gate0_observe.py")
MODULE_LINE = "library/gate0_observe.py"


def statuses(run: GateRun) -> dict[str, str]:
    assert run.report, run.output[-3000:]
    return {r["id"]: r["status"] for r in run.report["checks"]}


def built_module(run: GateRun) -> bool:
    return any("Using module file" in line and MODULE_LINE in line for line in run.output.splitlines())


def test_both_ways_pass_alike(lab: Lab, tmp_path: Path) -> None:
    forked = run_gate(tmp_path / "forked", {}, "-vvv")
    module = run_gate(tmp_path / "module", {"gate0_observe_in_process": False}, "-vvv")
    assert forked.rc == 0 and module.rc == 0, (forked.failures, module.failures)
    assert not built_module(forked), "the lab's local connection should not build the module's payload"
    assert built_module(module)
    assert statuses(forked) == statuses(module)
    assert set(statuses(forked).values()) == {"pass"}


def test_both_ways_fail_alike(lab: Lab, tmp_path: Path) -> None:
    """A wrong clone password: every clone check FAILs with the same one-line cause either way, and the
    password is nowhere in the output."""
    wrong = {"gate0_clone_login_password": "not-the-password-4f1c"}
    forked = run_gate(tmp_path / "forked", wrong, "-vvv")
    module = run_gate(tmp_path / "module", {**wrong, "gate0_observe_in_process": False}, "-vvv")
    assert forked.rc != 0 and module.rc != 0
    assert not built_module(forked) and built_module(module)
    assert statuses(forked) == statuses(module)
    clone_fails = {k: v for k, v in forked.failures.items() if k.startswith("clone.")}
    assert clone_fails and clone_fails == {k: v for k, v in module.failures.items() if k.startswith("clone.")}
    assert all("password authentication failed" in v for v in clone_fails.values()), clone_fails
    for run in (forked, module):
        assert "not-the-password-4f1c" not in run.output


def test_same_python_is_one_binary_from_one_directory(tmp_path: Path) -> None:
    same = observe_action.same_python
    assert same(sys.executable, sys.executable)
    # The same binary named from another directory (a venv's python is the system's binary) is another
    # Python with other packages: the module runs there.
    elsewhere = tmp_path / "python3"
    os.symlink(os.path.realpath(sys.executable), elsewhere)
    assert not same(str(elsewhere), sys.executable)
    assert not same("/nonexistent/python3", sys.executable)
    # Another name of the same binary in the same directory (a venv's python3 beside its python) is it.
    for name in ("python", "python3"):
        other = Path(sys.executable).parent / name
        if other.exists() and os.path.realpath(other) == os.path.realpath(sys.executable):
            assert same(str(other), sys.executable)


def test_a_process_that_cannot_start_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """fork refused (the process limit): a failed result naming the cause, never a traceback."""
    def refuse() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(observe_action.os, "fork", refuse)
    got = observe_action.observe_in_child({})
    assert got == {"failed": True, "msg": "gate0_observe: could not start the observing process: "
                                          "[Errno 11] Resource temporarily unavailable"}


def _processes_with(marker: str) -> list[int]:
    """Processes whose command line holds `marker` (a run's own report directory): the run itself and,
    forked from its worker, the observing child."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_leaves_no_observing_child(lab: Lab, tmp_path: Path, sig: int) -> None:
    """ansible-playbook stopped (a job runner's SIGTERM, a Ctrl-C) while the forked child's statement waits
    on a lock inside libpq: the child ends with the run, as a module's process does, not when the lock is
    released (Ansible's worker handler, inherited by the fork, could not run until libpq returned)."""
    marker = str(tmp_path / "reports")
    holder = lab.connect(PROD_DB)
    holder.autocommit = False
    proc = None
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE")
        evars = {"gate0_report_dir": marker, "gate0_statement_timeout": 60000, "gate0_lock_timeout": 60000}
        env = {**lab_env(), "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / ".facts")}
        proc = subprocess.Popen(["ansible-playbook", "playbooks/gate0.yml", "-e", json.dumps(evars)],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gate0' "
                   "AND wait_event_type = 'Lock'")
        deadline = time.monotonic() + 60
        while not lab.scalar("postgres", waiting) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lab.scalar("postgres", waiting), "the gate never waited on the lock"
        children = [p for p in _processes_with(marker) if p != proc.pid]
        assert children, "no process forked from the run's worker"
        proc.send_signal(sig)
        out = proc.communicate(timeout=60)[0]
        assert proc.returncode != 0, out[-3000:]
        deadline = time.monotonic() + 5
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _processes_with(marker)
        assert left == [], f"still running 5 s after the run ended, the lock still held: {left}"
    finally:
        for pid in _processes_with(marker):  # only this test's own run and its children
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        holder.rollback()
        holder.close()


def test_the_child_returns_what_the_module_would_and_fails_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forked child encodes its result with the module's own JSON encoder: a value the module could
    not return (a Decimal) fails the observation, as it fails the module, never passes as its text."""
    parts = observe_action.gate0_observe
    monkeypatch.setattr(parts, "observe_all", lambda params: {"fingerprint": {"n": decimal.Decimal("1.5")}})
    got = observe_action.observe_in_child({})
    assert got.get("failed") is True and "Decimal" in got.get("msg", ""), got
    assert "fingerprint" not in got
    odd = {"at": datetime.date(2026, 6, 2), "raw": b"ab", "ids": {3}, "pair": (1, 2)}
    monkeypatch.setattr(parts, "observe_all", lambda params: {"fingerprint": dict(odd)})
    got = observe_action.observe_in_child({})
    assert got["fingerprint"] == {"at": "2026-06-02", "raw": "ab", "ids": [3], "pair": [1, 2]}, got


def test_refused_options_never_show_a_no_log_value() -> None:
    """Options the module's spec refuses: the one-line reason masks every no_log value, as AnsibleModule's
    fail_json does (a password that is also the value of a refused choice)."""
    secret = "verify-everything-7f3a"
    options = {"login_user": "u", "login_db": "d", "login_password": secret, "ssl_mode": secret, "path": "/"}
    params, no_log, why = observe_action.validated_options({"disk": options})
    assert params is None and why is not None and "ssl_mode" in why, why
    assert secret not in why and secret in no_log
    params, _, why = observe_action.validated_options({"disk": {**options, "ssl_mode": "prefer"}})
    assert why is None and params is not None and params["disk"]["login_password"] == secret
    assert params["fingerprint"] is None and params["clone"] is None
    assert observe_action.masked({"changed": False, "failed": None, "n": {"p": secret}}, {secret}) == {
        "changed": False, "failed": None, "n": {"p": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}}
