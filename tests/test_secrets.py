"""No password anywhere: stdout/stderr at -vvv, reports, cached facts, ansible-runner artifacts.

The three lab passwords (production read-only login, clone admin, and the app's, which sits in the
app's env file that clone.app_binding reads) are searched for verbatim, on a PASS and on FAILs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, Lab, lab_env
from faultlib import closed_port, files_containing, secrets_of
from gaterun import require_gate, run_gate

WRONG = "Wr0ng-gate0-secret-never-shown"


def _isolated_cache(tmp_path: Path) -> dict[str, str]:
    cache = tmp_path / "facts"
    return {"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache)}


@pytest.mark.parametrize("case", ["pass", "wrong_clone_password", "closed_port"])
def test_no_password_in_output_reports_or_facts(lab: Lab, tmp_path: Path, case: str) -> None:
    require_gate()
    lab.reset()
    extra: dict = {}
    if case == "wrong_clone_password":
        extra = {"gate0_clone_login_password": WRONG}
    elif case == "closed_port":
        extra = {"gate0_production_login_port": closed_port()}
    env = _isolated_cache(tmp_path)
    run = run_gate(tmp_path / "reports", extra, "-vvv", env_extra=env, fast=False)
    assert (run.rc == 0) == (case == "pass"), run.output[-3000:]
    assert "Traceback" not in run.output
    needles = secrets_of(lab) + ([WRONG] if case == "wrong_clone_password" else [])
    # The wrong password is ours, given on the command line: -vvv echoes the command? It must not.
    for secret in needles:
        assert secret not in run.output, f"a password appears in the -vvv output ({case})"
    assert list((tmp_path / "reports").glob("gate0-*.json")), "no report written"
    assert files_containing(tmp_path / "reports", needles) == []
    cache = Path(env["ANSIBLE_CACHE_PLUGIN_CONNECTION"])
    assert any(cache.rglob("*")), "no fact cache written"
    assert files_containing(cache, needles) == []


def test_no_password_in_ansible_runner_artifacts(lab: Lab, tmp_path: Path) -> None:
    """The engine AWX uses: every artifact (job events, stdout, fact cache) of a PASS and a FAIL."""
    require_gate()
    import ansible_runner

    lab.reset()
    env = lab_env()
    for name, extra in (("pass", {}), ("fail", {"gate0_clone_login_port": closed_port()})):
        private = tmp_path / name
        private.mkdir()
        runner = ansible_runner.run(
            private_data_dir=str(private), project_dir=str(REPO), playbook=str(REPO / "playbooks/gate0.yml"),
            inventory=str(REPO / "inventories/lab"), verbosity=3, quiet=True, timeout=300,
            extravars={"gate0_report_dir": str(private / "reports"), **extra},
            envvars={"GATE0_LAB_PORT": env["GATE0_LAB_PORT"], "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                     "PATH": env["PATH"],
                     "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(private / "facts")})
        assert (runner.rc == 0) == (name == "pass"), runner.stdout.read()[-3000:]
        events = list(runner.events)
        assert events, "no job events"
        blob = json.dumps(events)
        assert "Traceback" not in blob
        for secret in secrets_of(lab):
            assert secret not in blob
        assert files_containing(private, secrets_of(lab)) == []
