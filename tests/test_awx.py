"""AWX: gate0 through ansible-runner (AWX's engine), the AWX object files, the execution environment.

The object files are checked without a running AWX, and say so: awxkit's own `import_assets` (what
`awx import` runs) against tests/awxfake.py, which answers only lookups and records POSTs; the
credential type rendered as AWX renders it; the workflow's variables against AWX's precedence.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ansible_runner
import awxfake
import pytest
import yaml
from awxkit.api.pages.api import EXPORTABLE_RESOURCES, ApiV2
from awxkit.api.pages.page import PageCache, get_registered_page
from conftest import CLONE_DB, PROD_DB, REPO, Lab, lab_env, load_plugin

AWX = REPO / "awx"
gr = load_plugin("roles/gate0/action_plugins/gate0_receipt.py")
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
    secrets = [lab.password(name)
               for name in ("context_pack_readonly", "workflow_admin", "directus", "gate0_receipt")]
    files = [p for p in private.rglob("*") if p.is_file()] + list((tmp_path / "reports").iterdir())
    assert len(files) > 10
    for path in files:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, path


# --- the AWX objects, as `awx export` writes them and `awx import` reads them ------------------------

AWX_FILES = sorted(AWX.glob("*.json"))
IMPORT_ORDER = ["credential_type_gate0.json", "job_template_gate0.json", "workflow_clone_refresh.json"]
ORG = {"name": "gate0", "type": "organization"}


def _doc(name: str) -> dict[str, Any]:
    return json.loads((AWX / name).read_text())


def _templates() -> list[dict[str, Any]]:
    return [jt for name in IMPORT_ORDER for jt in _doc(name).get("job_templates", [])]


def _workflow_nodes() -> dict[str, dict[str, Any]]:
    (wf,) = _doc("workflow_clone_refresh.json")["workflow_job_templates"]
    return {n["identifier"]: n for n in wf["related"]["workflow_nodes"]}


def _assets(value: Any) -> list[dict[str, Any]]:
    """Every object of an export file that awxkit imports (top-level ones and create sets in `related`)."""
    out: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if "natural_key" in value:
            out.append(value)
        for child in value.values():
            out += _assets(child)
    elif isinstance(value, list):
        for child in value:
            out += _assets(child)
    return out


def test_every_file_is_in_awx_export_form() -> None:
    """Resource-type keys at the top, a natural key on every object, no field AWX would silently drop."""
    assert [p.name for p in AWX_FILES] == sorted(IMPORT_ORDER)
    for path in AWX_FILES:
        doc = json.loads(path.read_text())
        assert doc and set(doc) <= set(EXPORTABLE_RESOURCES), (path.name, set(doc))
        for resource, assets in doc.items():
            assert isinstance(assets, list) and assets, (path.name, resource)
            for asset in assets:
                assert asset["natural_key"]["type"] in awxfake.POST_FIELDS, asset["natural_key"]
        for asset in _assets(doc):
            fields = awxfake.POST_FIELDS[asset["natural_key"]["type"]]
            dropped = set(asset) - {"related", "natural_key"} - set(fields)
            assert not dropped, (path.name, dropped)
            for key, kind in fields.items():  # a foreign key is a natural key (or null), never an id
                value = asset.get(key)
                assert kind != "id" or value is None or isinstance(value, dict), (path.name, key)


def _prerequisites(fake: awxfake.FakeAwx) -> None:
    """What awx/README.md has an admin create before `awx import`."""
    org = fake.add("organization", name="gate0")["id"]
    fake.add("project", name="gate0", organization=org)
    fake.add("inventory", name="gate0 databases", organization=org)
    fake.add("execution_environment", name="gate0-ee")
    fake.add("credential_type", name="Machine", kind="ssh", managed=True)


def _credentials(fake: awxfake.FakeAwx, *, machine: bool) -> None:
    """After importing the credential type: the two credentials awx/README.md has the admin create."""
    org = next(o["id"] for o in fake.of_type("organization"))
    types = {t["name"]: t["id"] for t in fake.of_type("credential_type")}
    fake.add("credential", name="gate0 channels", organization=org,
             credential_type=types["gate0 PostgreSQL channels"])
    if machine:
        fake.add("credential", name="gate0 database host", organization=org, credential_type=types["Machine"])


def _import(fake: awxfake.FakeAwx, name: str) -> bool:
    """`awx import < awx/NAME`: awxkit's own ApiV2.import_assets; True when it logged no error."""
    api = ApiV2(fake, endpoint="/api/v2/").get()
    api.import_assets(_doc(name))
    return not getattr(api, "_has_error", False)


def _import_all(fake: awxfake.FakeAwx, *, machine: bool = True) -> list[bool]:
    """awx/README.md's order: the credential type, the admin's credentials, the templates, the workflow."""
    ok = [_import(fake, IMPORT_ORDER[0])]
    _credentials(fake, machine=machine)
    return ok + [_import(fake, name) for name in IMPORT_ORDER[1:]]


def _natural_key(fake: awxfake.FakeAwx, obj: dict[str, Any]) -> dict[str, Any]:
    """The object's natural key as awxkit computes it (its page class, a cache over the stand-in)."""
    cls = get_registered_page(obj["url"])
    return cls(fake, endpoint=obj["url"], json=obj).get_natural_key(PageCache(fake))


def test_awx_import_creates_every_object_and_resolves_every_reference() -> None:
    fake = awxfake.FakeAwx()
    _prerequisites(fake)
    assert _import_all(fake) == [True, True, True]
    assert fake.unexpected == []
    kinds = ("credential_type", "job_template", "workflow_job_template", "workflow_job_template_node")
    created = {t: [o.get("name") or o.get("identifier") for o in fake.of_type(t)] for t in kinds}
    assert sorted(created["job_template"]) == sorted(jt["name"] for jt in _templates())
    assert created["workflow_job_template"] == ["gate0 - gate, refresh, apply"]
    assert sorted(created["workflow_job_template_node"]) == ["apply", "gate", "refresh"]
    assert "gate0 PostgreSQL channels" in created["credential_type"]
    # Every natural key in the files names the object the import linked (none left null).
    by_key = {json.dumps(_natural_key(fake, o), sort_keys=True): o["id"] for o in fake.objects.values()}
    for name in IMPORT_ORDER:
        for asset in _assets(_doc(name)):
            fields = awxfake.POST_FIELDS[asset["natural_key"]["type"]]
            obj = by_key[json.dumps(asset["natural_key"], sort_keys=True)]
            for key, kind in fields.items():
                if kind == "id" and isinstance(asset.get(key), dict):
                    assert fake.by_id(obj)[key] == by_key[json.dumps(asset[key], sort_keys=True)], (name, key)
            for relation, members in asset.get("related", {}).items():
                if relation in ("credentials", "success_nodes", "failure_nodes", "always_nodes"):
                    url = f"{fake.by_id(obj)['url']}{relation}/"
                    want = sorted(by_key[json.dumps(m, sort_keys=True)] for m in members)
                    assert sorted(fake.members[url]) == want, (name, relation)
    (gate,) = [o for o in fake.of_type("job_template") if o["name"] == "gate0 - Hard Gate 0"]
    assert fake.surveys[f"{gate['url']}survey_spec/"] == _templates()[0]["related"]["survey_spec"]


def test_awx_import_reports_a_missing_prerequisite() -> None:
    """The harness can fail: without the machine credential, awxkit logs an unresolved reference."""
    fake = awxfake.FakeAwx()
    _prerequisites(fake)
    assert _import_all(fake, machine=False)[1:] == [False, False]


def test_every_template_has_a_machine_credential_and_reads_only_its_survey_or_node() -> None:
    for jt in _templates():
        assert (REPO / jt["playbook"]).is_file()
        types = {c["credential_type"]["kind"] for c in jt["related"]["credentials"]}
        assert types == {"ssh", "cloud"}, jt["name"]  # the database host over SSH, and gate0's channels
        assert "/runner/" not in jt["extra_vars"]  # AWX deletes the job's private data directory
    gate = _templates()[0]
    assert gate["survey_enabled"] and not gate["ask_variables_on_launch"]  # launch input: the survey only
    survey_vars = {q["variable"] for q in gate["related"]["survey_spec"]["spec"]}
    defaults = yaml.safe_load((REPO / "roles/gate0/defaults/main.yml").read_text())
    for q in gate["related"]["survey_spec"]["spec"]:
        assert q["type"] in SURVEY_TYPES and q["variable"] in defaults and "password" not in q["variable"]
    nodes = _workflow_nodes()
    assert nodes["gate"]["extra_data"].keys() <= survey_vars  # AWX accepts a node's variables it prompts for
    for name in ("refresh", "apply"):
        (jt,) = [t for t in _templates() if t["name"] == nodes[name]["unified_job_template"]["name"]]
        assert jt["ask_variables_on_launch"] and not jt["survey_enabled"], name


def test_workflow_nodes_target_their_own_clone_and_no_launch_input_reaches_them() -> None:
    (wf,) = _doc("workflow_clone_refresh.json")["workflow_job_templates"]
    nodes = _workflow_nodes()
    # Workflow variables outrank every node's (awx/main/models/workflow.py, get_job_kwargs): none here.
    assert not wf["ask_variables_on_launch"] and not wf["survey_enabled"]
    assert not yaml.safe_load(wf["extra_vars"] or "{}")
    gated = nodes["gate"]["extra_data"]["gate0_clone_database"]
    new = nodes["refresh"]["extra_data"]["gate0_clone_database"]
    assert gated != new and nodes["apply"]["extra_data"]["gate0_clone_database"] == new
    assert [s["identifier"] for s in nodes["gate"]["related"]["success_nodes"]] == ["refresh"]
    assert [s["identifier"] for s in nodes["refresh"]["related"]["success_nodes"]] == ["apply"]
    for node in nodes.values():
        assert node["natural_key"]["workflow_job_template"] == wf["natural_key"]
        assert gr.protected_overrides(node["extra_data"]) == []
    for jt in _templates():
        assert gr.protected_overrides(yaml.safe_load(jt["extra_vars"]) or {}) == []


def _role_variables() -> set[str]:
    names: set[str] = set()
    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names |= set(entry.get("options") or {})
    return names


def test_the_credential_type_injects_as_awx_renders_it() -> None:
    """AWX's CredentialType.inject_credential: a sandboxed Jinja render of each injector over the inputs
    given (an input left empty is absent from the namespace); env names starting ANSIBLE_ are refused."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    (ctype,) = _doc("credential_type_gate0.json")["credential_types"]
    ids = {f["id"] for f in ctype["inputs"]["fields"]}
    assert set(ctype["inputs"]["required"]) == {"production_password", "clone_password", "receipt_secret"}
    inputs = {"production_password": "p-pw", "clone_password": "c-pw", "receipt_secret": "k" * 32}
    env = ImmutableSandboxedEnvironment()
    extra_vars = {k: env.from_string(v).render(**inputs) for k, v in ctype["injectors"]["extra_vars"].items()}
    injected_env = {k: env.from_string(v).render(**inputs) for k, v in ctype["injectors"]["env"].items()}
    assert extra_vars == {"gate0_production_login_password": "p-pw", "gate0_clone_login_password": "c-pw",
                          "gate0_refresh_dba_login_password": ""}
    assert injected_env == {gr.SECRET_ENV: "k" * 32}
    assert set(extra_vars) <= _role_variables() and gr.protected_overrides(extra_vars) == []
    assert not any(name.startswith("ANSIBLE_") for name in injected_env)
    for template in [*ctype["injectors"]["extra_vars"].values(), *ctype["injectors"]["env"].values()]:
        assert env.parse(template) and set(re.findall(r"{{\s*(\w+)", template)) <= ids


def test_execution_environment_build_context_offline(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=lab_env()["PATH"])
    # The file named: its default follows the container runtime ansible-builder finds (docker: Dockerfile).
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


# --- the workflow on the lab, handed on as AWX hands it on -------------------------------------------

def _survey_defaults(template: dict[str, Any]) -> dict[str, Any]:
    """The answers AWX fills in for unanswered questions (a multiselect default becomes a list)."""
    spec = (template["related"].get("survey_spec") or {}).get("spec", [])
    return {q["variable"]: q["default"].split("\n") if q["type"] == "multiselect" else q["default"]
            for q in spec if template["survey_enabled"]}


def _node_extra_vars(template: dict[str, Any], node: dict[str, Any], artifacts: dict[str, Any],
                     workflow_vars: dict[str, Any], report_dir: Path) -> dict[str, Any]:
    """A node's job's extra vars with AWX's precedence (awx/main/models/workflow.py, get_job_kwargs):
    workflow variables over the ancestors' artifacts over the node's own variables (accepted only when
    the template prompts for them: ask_variables_on_launch, or its survey's variables) over the survey's
    defaults over the template's variables. gate0_report_dir stands for the path exposed to jobs."""
    survey = _survey_defaults(template)
    node_vars = {k: v for k, v in node["extra_data"].items()
                 if template["ask_variables_on_launch"] or k in survey}
    own = {**(yaml.safe_load(template["extra_vars"]) or {}), "gate0_report_dir": str(report_dir)}
    return {**own, **survey, **node_vars, **artifacts, **workflow_vars}


def _credential(lab: Lab) -> tuple[dict[str, Any], dict[str, str]]:
    """The `gate0 channels` credential with the lab's secrets, rendered as AWX injects it."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    (ctype,) = _doc("credential_type_gate0.json")["credential_types"]
    inputs = {"production_password": lab.password("context_pack_readonly"),
              "clone_password": lab.password("workflow_admin"),
              "receipt_secret": lab.password("gate0_receipt")}
    env = ImmutableSandboxedEnvironment()
    return ({k: env.from_string(v).render(**inputs) for k, v in ctype["injectors"]["extra_vars"].items()},
            {k: env.from_string(v).render(**inputs) for k, v in ctype["injectors"]["env"].items()})


def _run_node(private: Path, template: dict[str, Any], extravars: dict[str, Any], envvars: dict[str, str]
              ) -> tuple[Any, str, dict[str, Any]]:
    """One node's job through ansible-runner: its result, its output, its artifacts (set_stats)."""
    private.mkdir()
    r = ansible_runner.run(private_data_dir=str(private), project_dir=str(REPO),
                           playbook=template["playbook"], inventory=str(REPO / "inventories" / "lab"),
                           quiet=True, timeout=600,
                           envvars=envvars, extravars=extravars)
    stats = [e for e in _events(private) if e.get("event") == "playbook_on_stats"]
    return r, r.stdout.read(), stats[0]["event_data"].get("artifact_data") or {} if stats else {}


@pytest.fixture
def workflow_lab(fresh_lab: Lab) -> Iterator[tuple[Lab, str]]:
    """The lab, and the workflow's new clone (from the refresh node's variables), absent before and after."""
    new = _workflow_nodes()["refresh"]["extra_data"]["gate0_clone_database"]
    fresh_lab.drop_database(new)
    yield fresh_lab, new
    fresh_lab.drop_database(new)


def test_the_workflow_hands_each_node_its_facts_on_the_lab(
        workflow_lab: tuple[Lab, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gate -> refresh -> apply as AWX runs them: the refresh's exit compares the refresh's own entry
    fingerprint (production changed between the nodes, so the gate node's would not match), and the
    apply verifies the refresh's receipt and targets the new clone."""
    lab, new = workflow_lab
    env = lab_env()
    monkeypatch.setenv("PATH", env["PATH"])
    cred_vars, cred_env = _credential(lab)
    envvars = {"ANSIBLE_CONFIG": env["ANSIBLE_CONFIG"], "GATE0_LAB_PORT": env["GATE0_LAB_PORT"],
               "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"), **cred_env}
    templates = {t["name"]: t for t in _templates()}
    (wf,) = _doc("workflow_clone_refresh.json")["workflow_job_templates"]
    workflow_vars = yaml.safe_load(wf["extra_vars"] or "{}") or {}
    # This run's node variables, as an admin sets them: production loses a row between the gate and
    # the refresh, and the refresh node's baseline says so.
    defaults = yaml.safe_load((REPO / "roles/gate0/defaults/main.yml").read_text())
    baseline = {**defaults["gate0_production_baseline"]}
    baseline["dot_tools"] -= 1
    this_run = {"refresh": {"gate0_production_baseline": baseline}}
    artifacts: dict[str, Any] = {}
    outputs: dict[str, str] = {}
    for name in ("gate", "refresh", "apply"):
        node = _workflow_nodes()[name]
        node = {**node, "extra_data": {**node["extra_data"], **this_run.get(name, {})}}
        template = templates[node["unified_job_template"]["name"]]
        extravars = {**_node_extra_vars(template, node, artifacts, workflow_vars, tmp_path / "reports"),
                     **cred_vars}
        r, outputs[name], own = _run_node(tmp_path / name, template, extravars, envvars)
        assert r.status == "successful", (name, outputs[name][-4000:])
        artifacts = {**artifacts, **own}  # the next node's ancestors' artifacts, the newest last
        if name == "gate":
            gated = own["gate0_hosts"]["lab"]
            assert gated["clone"]["database"] == CLONE_DB and gated["receipt"]["tag"]
            lab.execute(PROD_DB, "DELETE FROM dot_tools WHERE tool_id = (SELECT min(tool_id) FROM dot_tools)")
    refreshed = artifacts["gate0_hosts"]["lab"]
    assert refreshed["clone"]["database"] == new and refreshed["passed"] is True
    own_digest, gate_digest = refreshed["production"]["digest"], gated["production"]["digest"]
    assert own_digest != gate_digest
    assert f"gate0 exit PASS: production unchanged: digest {own_digest[:12]} equal" in " ".join(
        outputs["refresh"].split())
    apply_out = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", outputs["apply"]).split())
    role_vars = yaml.safe_load((REPO / "roles/gate0/vars/main.yml").read_text())
    rechecked = len(role_vars["__gate0_recheck_checks"])
    assert f"gate0 required: {rechecked} clone checks pass now (receipt verified)" in apply_out
    assert f"gate0 apply on {new} (oid " in apply_out and "0 statement(s), rolled back" in apply_out
