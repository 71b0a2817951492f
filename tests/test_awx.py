"""AWX: gate0 through ansible-runner (AWX's engine), the AWX object files, the execution environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import ansible_runner
import pytest
import yaml
from conftest import CLONE_DB, REPO, Lab, lab_env

AWX = REPO / "awx"
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def _events(private: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((private / "artifacts").rglob("job_events/*.json"))]


def test_gate0_through_ansible_runner_publishes_gate0_without_passwords(
        lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = lab_env()
    monkeypatch.setenv("PATH", env["PATH"])
    private = tmp_path / "runner"
    private.mkdir()
    r = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook="playbooks/gate0.yml",
        inventory=str(REPO / "inventories" / "lab"), quiet=True, timeout=300,
        envvars={"ANSIBLE_CONFIG": env["ANSIBLE_CONFIG"], "GATE0_LAB_PORT": env["GATE0_LAB_PORT"]},
        extravars={"gate0_report_dir": str(tmp_path / "reports")},
    )
    assert r.status == "successful", r.stdout.read()[-3000:]
    assert r.rc == 0
    (stats,) = [e for e in _events(private) if e.get("event") == "playbook_on_stats"]
    data = stats["event_data"]["artifact_data"]
    assert data["gate0"]["passed"] is True
    assert data["gate0"]["host"] == "lab"
    assert data["gate0"]["clone"]["database"] == CLONE_DB
    assert data["gate0"]["clone"]["identity"]["database_oid"] > 0
    ids = {c["id"] for c in data["gate0"]["checks"]}
    assert ids >= {"prod.allowlist", "clone.foreign_sessions", "disk.headroom"}
    assert data["gate0_hosts"]["lab"]["run_id"] == data["gate0"]["run_id"]
    secrets = [lab.password(role) for role in ("context_pack_readonly", "workflow_admin", "directus")]
    files = [p for p in private.rglob("*") if p.is_file()] + list((tmp_path / "reports").iterdir())
    assert len(files) > 10
    for path in files:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, path


def test_survey_spec_is_awx_format_and_names_role_variables() -> None:
    survey = json.loads((AWX / "survey_gate0.json").read_text())
    assert set(survey) == {"name", "description", "spec"}
    defaults = yaml.safe_load((REPO / "roles/gate0/defaults/main.yml").read_text())
    for q in survey["spec"]:
        assert q["type"] in SURVEY_TYPES
        assert q["variable"] in defaults, q["variable"]
        assert {"question_name", "required", "variable", "type", "default"} <= set(q)
        assert "password" not in q["variable"]
    jt = json.loads((AWX / "job_template_gate0.json").read_text())["job_templates"][0]
    assert jt["playbook"] == "playbooks/gate0.yml" and (REPO / jt["playbook"]).is_file()
    assert jt["related"]["survey_spec"] == survey and jt["survey_enabled"] is True


def test_workflow_refresh_node_follows_the_gate_node_on_success() -> None:
    doc = json.loads((AWX / "workflow_clone_refresh.json").read_text())
    for jt in doc["job_templates"]:
        assert (REPO / jt["playbook"]).is_file()
    (wf,) = doc["workflow_job_templates"]
    nodes = {n["identifier"]: n for n in wf["related"]["workflow_nodes"]}
    assert [s["identifier"] for s in nodes["gate"]["related"]["success_nodes"]] == ["refresh"]
    assert [s["identifier"] for s in nodes["refresh"]["related"]["success_nodes"]] == ["apply"]
    assert nodes["gate"]["unified_job_template"]["name"] == "gate0 - Hard Gate 0"
    refresh = (REPO / "playbooks/clone_refresh.yml").read_text()
    assert "gate0_hosts[inventory_hostname]" in refresh  # reads the gate node's artifacts
    ctype = json.loads((AWX / "credential_type_gate0.json").read_text())
    assert set(ctype["injectors"]["extra_vars"]) >= {"gate0_production_login_password",
                                                     "gate0_clone_login_password"}


def test_execution_environment_build_context_offline(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=lab_env()["PATH"])
    # The file's name is given: by default it depends on whether podman is on PATH (Containerfile)
    # or not (Dockerfile), and the test must not depend on what happens to be installed.
    r = subprocess.run(["ansible-builder", "create", "-f", str(REPO / "execution-environment.yml"),
                        "-c", str(tmp_path / "ctx"), "--output-filename", "Containerfile"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    build = tmp_path / "ctx" / "_build"
    assert "psycopg2-binary==2.9.13" in (build / "requirements.txt").read_text()
    assert "postgresql" in (build / "bindep.txt").read_text()
    containerfile = (tmp_path / "ctx" / "Containerfile").read_text()
    assert "ansible-core==2.19.14" in containerfile
    assert "python3.11" in containerfile
