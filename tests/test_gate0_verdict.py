"""gate0's frame: variable validation before any connection, the verdict, the reports, no password.

Unit tests of the pure filters (gate0.core's gate0_verdict.py) beside real
ansible-playbook runs against the lab. Reading the JSON report is how tests see check statuses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.gate0.core.plugins.module_utils import gate0_report as ga
from ansible_collections.gate0.core.plugins.module_utils import gate0_verdict as gv
from conftest import Lab, run_playbook

GOOD = {
    "gate0_production_login_port": 5432,
    "gate0_clone_login_port": 5432,
    "gate0_statement_timeout": 5000,
    "gate0_lock_timeout": 1000,
    "gate0_connect_timeout": 5,
    "gate0_disk_min_free_bytes": 0,
    "gate0_disk_min_free_percent": 10,
    "gate0_disk_clone_size_factor": 2,
    "gate0_max_age": 3600,
    "gate0_production_database": "directus",
    "gate0_production_allowed_databases": ["directus", "incomex_metadata", "workflow"],
    "gate0_clone_database": "directus_gov_test_20260602",
    "gate0_clone_name_prefix": "directus_gov_test_",
    "gate0_gates": ["prod", "clone", "disk"],
}

def problems(**over: object) -> list[str]:
    return gv.gate0_config_problems({**GOOD, **over})

def test_config_good_has_no_problem(tmp_path: Path) -> None:
    assert problems(gate0_report_dir=str(tmp_path / "new" / "reports")) == []

@pytest.mark.parametrize(("over", "needle"), [
    ({"gate0_statement_timeout": 0}, "gate0_statement_timeout must be a number in 1..3600000, got 0"),
    ({"gate0_lock_timeout": -5}, "gate0_lock_timeout must be a number in 1..3600000, got -5"),
    ({"gate0_clone_login_port": 70000}, "gate0_clone_login_port must be a number in 1..65535, got 70000"),
    ({"gate0_disk_min_free_percent": 101}, "gate0_disk_min_free_percent must be a number in 0..100"),
    ({"gate0_max_age": "soon"}, "gate0_max_age must be a number in 1..inf, got 'soon'"),
    ({"gate0_production_allowed_databases": ["directus", "directus_gov_test_20260602"]},
     "the clone 'directus_gov_test_20260602' is in gate0_production_allowed_databases"),
    ({"gate0_production_allowed_databases": []}, "gate0_production_allowed_databases is empty"),
    ({"gate0_production_allowed_databases": ["workflow"]},
     "gate0_production_database 'directus' is not in gate0_production_allowed_databases ['workflow']"),
    ({"gate0_gates": []}, "gate0_gates must be a non-empty list"),
    ({"gate0_report_dir": "/etc/hostname/reports"}, "gate0_report_dir cannot be created: /etc/hostname"),
])
def test_config_problem_names_variable_and_value(over: dict, needle: str) -> None:
    found = problems(**over)
    assert found, over
    assert any(needle in p for p in found), found
    assert all("\n" not in p for p in found)

def test_complete_checks_fills_missing_as_fail_and_unselected_as_skipped() -> None:
    ids = ["prod.a", "clone.b", "disk.c"]
    recs = [{"id": "prod.a", "gate": "prod", "status": "pass", "observed": 1, "expected": 1, "message": "ok"}]
    out = gv.gate0_complete_checks(recs, ids, ["prod", "clone"])
    assert [r["status"] for r in out] == ["pass", "fail", "skipped"]
    assert "not run" in out[1]["message"]
    # With the gates this run observed, the message says which way a check was left out.
    out = gv.gate0_complete_checks(recs, ids, ["prod", "clone", "disk"], ["prod", "disk"])
    assert [r["status"] for r in out] == ["pass", "fail", "fail"]
    assert "gate clone excluded by --tags/--skip-tags (this run observed: prod, disk)" in out[1]["message"]
    assert "gate disk ran but did not report it" in out[2]["message"]
    with pytest.raises(ValueError, match="reported twice"):
        gv.gate0_complete_checks(recs + recs, ids)
    with pytest.raises(ValueError, match=r"unknown check ids: x\.y"):
        gv.gate0_complete_checks([{**recs[0], "id": "x.y"}], ids)

def test_observed_part_is_the_part_or_a_failure_naming_why() -> None:
    part = {"digest": "d", "identity": {}}
    assert gv.gate0_observed_part({"fingerprint": part, "clone": {}}, "fingerprint") == part
    # The module refused its options: every part fails with its message (never an empty success).
    refused = {"failed": False, "msg": "Unsupported parameters for (gate0_observe) module: x"}
    assert gv.gate0_observed_part(refused, "clone") == {"failed": True, "msg": refused["msg"]}
    # The task did not run (skipped, or no result at all).
    assert gv.gate0_observed_part({"skipped": True}, "disk")["failed"] is True
    missing = gv.gate0_observed_part(None, "disk")
    assert missing == {"failed": True, "msg": "gate0_observe returned no disk result"}

def test_fail_message_one_line_per_failed_check() -> None:
    recs = [
        {"id": "prod.a", "status": "fail", "message": "two\nlines"},
        {"id": "clone.b", "status": "pass", "message": "fine"},
        {"id": "disk.c", "status": "fail", "message": ""},
    ]
    msg = gv.gate0_fail_message(recs, "db1")
    assert msg.splitlines() == [
        "gate0 FAIL on db1: 2 of 3 checks failed", "prod.a: two lines", "disk.c: failed"]

def test_play_stats_single_and_several_hosts() -> None:
    a = {"passed": True, "host": "a", "checked_at": "2026-06-02T10:00:00Z", "clone": {"database": "x_1"}}
    b = {"passed": False, "host": "b", "checked_at": "2026-06-02T10:00:01Z"}
    one = gv.gate0_play_stats({"a": a}, ["a"])
    assert one["gate0"] is a and one["gate0_hosts"] == {"a": a}
    two = gv.gate0_play_stats({"a": a, "b": b, "c": None}, ["a", "b", "c"])
    assert two["gate0"]["passed"] is False
    assert two["gate0"]["failed_hosts"] == ["b", "c"]
    assert "clone" not in two["gate0"]
    assert two["gate0_hosts"]["c"]["passed"] is False
    assert gv.gate0_play_stats({"a": a, "b": a}, ["a", "b"])["gate0"]["passed"] is True

def test_require_problems() -> None:
    good = {"passed": True, "gates": ["prod", "clone", "disk"], "clone": {"database": "c_1"},
            "production": {"digest": "d" * 64}}
    assert gv.gate0_require_problems(good, "c_1") == []
    assert "no gate0 record" in gv.gate0_require_problems(None, "c_1")[0]
    assert "did not pass" in gv.gate0_require_problems({**good, "passed": False}, "c_1")[0]
    assert "without gate(s) clone" in gv.gate0_require_problems({**good, "gates": ["prod", "disk"]}, "c_1")[0]
    assert "was for clone 'c_1', not" in gv.gate0_require_problems(good, "c_2")[0]

def test_redact_masks_every_secret_longest_first() -> None:
    assert ga.redact("a pw123 b pw1234", ["pw123", "pw1234"]) == "a ******** b ********"

def test_report_never_replaces_another(tmp_path: Path) -> None:
    """The same host gated twice in one second (two jobs, two clones): both reports are kept."""
    first = ga.write_new(str(tmp_path), "gate0-db1-20260602T120000Z", {"json": "1", "md": "one"}, 0o640)
    (tmp_path / "gate0-db1-20260602T120000Z-2.md").write_text("not ours")  # a name half taken
    second = ga.write_new(str(tmp_path), "gate0-db1-20260602T120000Z", {"json": "2", "md": "two"}, 0o640)
    assert first["json"].endswith("gate0-db1-20260602T120000Z.json")
    assert second == {"json": str(tmp_path / "gate0-db1-20260602T120000Z-3.json"),
                      "md": str(tmp_path / "gate0-db1-20260602T120000Z-3.md")}
    assert [Path(first[e]).read_text() for e in ("json", "md")] == ["1", "one"]
    assert [Path(second[e]).read_text() for e in ("json", "md")] == ["2", "two"]
    assert (tmp_path / "gate0-db1-20260602T120000Z-2.md").read_text() == "not ours"
    assert not (tmp_path / "gate0-db1-20260602T120000Z-2.json").exists()
    assert not list(tmp_path.glob(".gate0-*")) and oct(Path(second["md"]).stat().st_mode)[-3:] == "640"

def _reports(report_dir: Path) -> list[Path]:
    return sorted(report_dir.glob("gate0-*.json"))

@pytest.mark.parametrize(("extra", "needles"), [
    (["-e", "gate0_clone_database=directus"],
     ["the clone 'directus' is in gate0_production_allowed_databases ['directus']",
      "gate0_clone_database=directus and gate0_clone_name_prefix=directus_gov_test_ break the clone "
      "name rule: 'directus' does not start with exactly 'directus_gov_test_'"]),
    (["-e", "gate0_clone_name_prefix=dir"],
     ["gate0_clone_name_prefix=dir break the clone name rule: prefix 'dir' is shorter than 8 characters, "
      "prefix 'dir' also matches production/allowlisted 'directus'"]),
    (["-e", "gate0_statement_timeout=0", "-e", '{"gate0_production_allowed_databases": []}'],
     ["gate0_statement_timeout must be a number in 1..3600000, got '0'",
      "gate0_production_allowed_databases is empty"]),
])
def test_misconfiguration_fails_before_any_connection(lab: Lab, tmp_path: Path, extra: list[str],
                                                      needles: list[str]) -> None:
    with lab.logins() as logins:
        r = run_playbook("playbooks/gate0.yml", *extra, "-e", f"gate0_report_dir={tmp_path}")
    assert r.returncode != 0
    (line,) = [ln.strip() for ln in r.stdout.splitlines() if ln.strip().startswith("gate0 vars:")]
    for needle in needles:
        assert needle in line
    assert logins == []  # nothing connected
    assert _reports(tmp_path) == []


def test_the_login_record_sees_a_gate_run(lab: Lab, tmp_path: Path) -> None:
    """The other tests' "nothing connected" is the server's log of logins: it does see a gate's."""
    with lab.logins() as logins:
        r = run_playbook("playbooks/gate0.yml", "-e", f"gate0_report_dir={tmp_path}")
    assert r.returncode == 0, r.stdout[-2000:]
    assert {"context_pack_readonly", "workflow_admin", "tcp:127.0.0.1"} <= set(logins), logins

def test_unwritable_report_dir_fails_before_any_connection(lab: Lab) -> None:
    with lab.logins() as logins:
        r = run_playbook("playbooks/gate0.yml", "-e", "gate0_report_dir=/etc/hostname/reports")
    assert r.returncode != 0
    assert ("gate0_report_dir cannot be created: /etc/hostname is not a directory, "
            "got '/etc/hostname/reports'") in r.stdout
    assert logins == []

def test_tags_leave_other_gates_not_run_and_reports_never_hold_a_password(lab: Lab, tmp_path: Path) -> None:
    """A password that reaches report data (here: as a login name) is masked in both files."""
    secret = lab.password("context_pack_readonly")
    r = run_playbook("playbooks/gate0.yml", "--tags", "disk", "-e", f"gate0_report_dir={tmp_path}",
                     "-e", f"gate0_clone_login_user={secret}")
    assert r.returncode != 0
    (report,) = _reports(tmp_path)
    data = json.loads(report.read_text())
    assert data["verdict"] == "FAIL"
    by_id = {c["id"]: c for c in data["checks"]}
    assert by_id["prod.allowlist"]["status"] == "fail"
    assert "not run" in by_id["clone.name_pattern"]["message"]
    md = report.with_suffix(".md").read_text()
    assert md.startswith(f"# Hard Gate 0 — {data['host']}")
    assert "**Verdict: FAIL**" in md.splitlines()[2]
    assert "********@127.0.0.1" in md
    for path in tmp_path.iterdir():
        text = path.read_text()
        for role in ("context_pack_readonly", "workflow_admin", "directus"):
            assert lab.password(role) not in text, (path, role)
    # The last thing on screen before the recap: the failed checks, one line each.
    tail = r.stdout[r.stdout.rindex("fatal: [lab]"):]
    assert re.search(r"gate0 FAIL on lab: \d+ of 22 checks failed", tail)
    assert "\n        prod.allowlist: not run" in tail

@pytest.mark.parametrize(("run_tags", "skip_tags", "gates"), [
    (["all"], [], ["prod", "clone", "disk"]),
    (["clone", "disk"], [], ["clone", "disk"]),
    (["all"], ["disk"], ["prod", "clone"]),
    (["tagged"], [], ["prod", "clone", "disk"]),
    (["all"], ["tagged"], []),
    (["always"], [], []),
    (["prod", "disk"], ["disk"], ["prod"]),
])
def test_selected_gates_follow_tags_as_ansible_selects_tasks(run_tags: list[str], skip_tags: list[str],
                                                              gates: list[str]) -> None:
    assert gv.gate0_selected_gates(["prod", "clone", "disk"], run_tags, skip_tags) == gates
    # gate0_gates still rules: a gate left out there is never selected by a tag.
    assert "prod" not in gv.gate0_selected_gates(["clone", "disk"], run_tags, skip_tags)

def test_skip_tags_leaves_out_one_gate_within_the_one_module_call(lab: Lab, tmp_path: Path) -> None:
    r = run_playbook("playbooks/gate0.yml", "--skip-tags", "disk", "-e", f"gate0_report_dir={tmp_path}")
    assert r.returncode != 0
    (report,) = _reports(tmp_path)
    by_id = {c["id"]: c for c in json.loads(report.read_text())["checks"]}
    assert by_id["disk.headroom"]["status"] == "fail"
    assert "gate disk excluded by --tags/--skip-tags (this run observed: prod, clone)" in \
        by_id["disk.headroom"]["message"]
    assert [c for c, rec in by_id.items() if rec["status"] != "pass"] == ["disk.headroom"]

def test_an_incoming_gate0_extra_var_cannot_mask_a_fail(lab: Lab, tmp_path: Path) -> None:
    """AWX hands the previous node's gate0 on as an extra var: this run's verdict must still rule."""
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"gate0": {"passed": True, "run_id": "old", "clone": {"database": "x"}}}))
    r = run_playbook("playbooks/gate0.yml", "--tags", "disk", "-e", f"@{stale}",
                     "-e", f"gate0_report_dir={tmp_path / 'r'}")
    assert r.returncode != 0
    (report,) = _reports(tmp_path / "r")
    assert json.loads(report.read_text())["verdict"] == "FAIL"


def test_a_profile_missing_a_key_fails_validation_naming_it(lab: Lab, tmp_path: Path) -> None:
    """The clone profile is typed deeply (meta/argument_specs.yml): a section without one of its keys
    is refused before any connection, naming the key and where it is missing."""
    profile = {"dispatch": {"registry": "event_type_registry"}, "lease": {"expected": 0}}
    with lab.logins() as logins:
        r = run_playbook("playbooks/gate0.yml", "-e", json.dumps({"gate0_clone_profile": profile}),
                         "-e", f"gate0_report_dir={tmp_path}")
    assert r.returncode != 0
    assert "missing required arguments: relation found in gate0_clone_profile -> lease" in r.stdout
    assert "TASK [gate0 : observe |" not in r.stdout  # the role's argument spec refused it
    assert logins == []
    assert _reports(tmp_path) == []


def test_a_quiet_window_at_or_above_the_observe_timeout_is_refused() -> None:
    assert problems(gate0_clone_quiet_window=5, gate0_observe_timeout=300) == []
    (why,) = problems(gate0_clone_quiet_window=300, gate0_observe_timeout=300)
    assert why.startswith("gate0_clone_quiet_window must be below gate0_observe_timeout (300 s)")


def test_the_markdown_report_is_what_ansibles_template_renders(lab: Lab, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The Markdown comes from Jinja2 itself (and its bytecode cache): the same text Ansible's templar
    renders from the same template and report dict - a PASS and a FAIL of real runs, one with a
    message holding non-ASCII text, a backslash, quotes and Jinja-looking text - and still rendered
    when the bytecode cache cannot be written."""
    template = str(Path(__file__).resolve().parent.parent / "roles/gate0/templates/report.md.j2")
    channels = {"production": {"login_user": "ro", "login_host": "127.0.0.1", "login_port": 5432,
                               "database": "directus", "allowed_databases": ["directus"],
                               "statement_timeout": 5000, "lock_timeout": 1000},
                "clone": {"login_user": "admin", "login_host": "127.0.0.1", "login_port": 5432,
                          "database": "directus_gov_test_20260602", "name_prefix": "directus_gov_test_"}}
    assert run_playbook("playbooks/gate0.yml", "-e", f"gate0_report_dir={tmp_path / 'pass'}").returncode == 0
    assert run_playbook("playbooks/gate0.yml", "--skip-tags", "disk",
                        "-e", f"gate0_report_dir={tmp_path / 'fail'}").returncode != 0
    reports = [json.loads(p.read_text()) for p in _reports(tmp_path / "pass") + _reports(tmp_path / "fail")]
    assert [r["verdict"] for r in reports] == ["PASS", "FAIL"]
    odd = json.loads(json.dumps(reports[1]))
    odd["checks"][0]["message"] = 'café \\ "quoted" {{ not a template }}'
    odd["checks"][0]["observed"] = {"ü": ["\\x", None, 1.5]}
    odd["production"]["digest"] = None  # a null in a printed place prints as nothing, as in Ansible
    odd["clone"]["identity"] = {"oid": None, "address": None, "version": None}
    for report in [*reports, odd]:
        ansible = Templar(loader=DataLoader(), variables={"report": report, "channels": channels}).template(
            trust_as_template(Path(template).read_text()), escape_backslashes=False)
        assert ga.render_markdown(template, report, channels) == ansible

    def unwritable(self: object, bucket: object) -> None:
        raise PermissionError("read-only cache")

    monkeypatch.setattr(jinja2.FileSystemBytecodeCache, "dump_bytecode", unwritable)
    monkeypatch.setattr(jinja2.FileSystemBytecodeCache, "load_bytecode", lambda self, bucket: None)
    assert ga.render_markdown(template, odd, channels) == ansible
