"""gate0_observe's two ways to run, one verdict: as a module (any connection), and, when the database
host is the controller itself, in a process forked from Ansible's worker
(roles/gate0/action_plugins/gate0_observe.py: the same code, options and argument spec).

`-vvv` names the module file whenever Ansible builds the module's payload: that line tells the two apart.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from conftest import Lab, load_plugin
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
    alias = tmp_path / "bin" / "python-alias"
    alias.parent.mkdir()
    os.symlink(os.path.realpath(sys.executable), alias)
    # The same binary named from another directory (a venv's python is the system's binary) is another
    # Python with other packages: the module runs there.
    assert not same(str(alias), sys.executable) or alias.parent == Path(sys.executable).parent
    assert not same("/nonexistent/python3", sys.executable)
