"""Consumers of gate0: the clone_sql runner and the require entry point, on the real lab."""

from __future__ import annotations

import datetime
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.gate0.core.plugins.module_utils import gate0_interval
from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import server_identity
from conftest import CLONE_DB, PROD_DB, REPO, Lab, lab_env, load_plugin, run_playbook

# gate0 signs its record's receipt (action_plugins/gate0_receipt.py); the lab's secret is in .lab/secrets/.
receipt = load_plugin("roles/gate0/action_plugins/gate0_receipt.py")
clone_sql = load_plugin("library/clone_sql.py")

APPLY = "playbooks/clone_apply.yml"
STATEMENTS = {"gate0_apply_mode": "commit", "gate0_apply_statements": [
    {"query": "INSERT INTO governance_scan_cursor (cursor_name, watermark, events_seen) VALUES (%s, %s, 0)",
     "args": ["require-test", "wm-test"]}]}


def clone_identity(lab: Lab, db: str = CLONE_DB) -> dict[str, Any]:
    conn = lab.connect(db, user="workflow_admin")
    with conn.cursor() as cur:
        ident = server_identity(cur)
    conn.close()
    return ident


def clone_counter(lab: Lab, db: str = CLONE_DB) -> tuple[dict[str, Any], dict[str, Any]]:
    """The clone's identity and session counter as a gate would keep them (this session included)."""
    conn = lab.connect(db, user="workflow_admin")
    gate0_interval.settle_own_session(conn)
    with conn.cursor() as cur:
        ident = server_identity(cur)
        reading = gate0_interval.sessions_established(cur)
    conn.close()
    return ident, reading


def counted_clone(lab: Lab, now: str) -> dict[str, Any]:
    """A gate0 record's clone section, its session counter read last (nobody connects after it)."""
    ident, reading = clone_counter(lab)
    return {"database": CLONE_DB, "identity": ident,
            "sessions": gate0_interval.anchor(ident, reading, 0, now, "gate0 run test")}


def gate0_record(lab: Lab, **over: Any) -> dict[str, Any]:
    """A gate0 record as a passed gate signs it."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rec = {"passed": True, "run_id": "test", "checked_at": now, "host": "lab",
           "gates": ["prod", "clone", "disk"],
           "production": {"database": PROD_DB, "digest": "f" * 64, "counts": {}},
           "clone": counted_clone(lab, now), "checks": []}
    rec.update(over)
    return receipt.sign(rec, lab.password("gate0_receipt"))


def adhoc(lab: Lab, **args: Any) -> dict[str, Any]:
    """Run clone_sql through real Ansible (ad hoc); return the host's result (`failed` when rc != 0)."""
    params = {"login_host": "127.0.0.1", "login_port": lab.port, "login_user": "workflow_admin",
              "login_password": lab.password("workflow_admin"), "login_db": CLONE_DB,
              "clone_name_prefix": "directus_gov_test_", "production_databases": [PROD_DB], **args}
    with tempfile.TemporaryDirectory() as tree:
        r = subprocess.run(["ansible", "lab", "-m", "clone_sql", "-t", tree, "-a", json.dumps(params)],
                           cwd=REPO, env=lab_env(), capture_output=True, text=True, timeout=60)
        result = json.loads((Path(tree) / "lab").read_text())
    result["failed"] = r.returncode != 0
    return result


def cursor_rows(lab: Lab) -> int:
    return lab.scalar(CLONE_DB, "SELECT count(*) FROM governance_scan_cursor")


def test_unit_target_and_gate0_rules() -> None:
    now = datetime.datetime(2026, 6, 2, 12, 0, tzinfo=datetime.UTC)
    rule = {"clone_name_prefix": "directus_gov_test_", "production_databases": [],
            "clone_name_prefix_min_length": 8, "clone_name_suffix_regex": "[0-9]{8}"}
    with pytest.raises(clone_sql.GateError, match="does not start with exactly"):
        clone_sql.check_target({**rule, "login_db": "directus"})
    with pytest.raises(clone_sql.GateError, match="is a production/allowlisted database"):
        clone_sql.check_target({**rule, "login_db": "directus_gov_test_x",
                                "production_databases": ["directus_gov_test_x"]})
    with pytest.raises(clone_sql.GateError, match="does not match"):  # the suffix rule, as the gate's
        clone_sql.check_target({**rule, "login_db": "directus_gov_test_x"})
    with pytest.raises(clone_sql.GateError, match="shorter than 8"):
        clone_sql.check_target({**rule, "login_db": "dir_1", "clone_name_prefix": "dir_"})
    clone_sql.check_target({**rule, "login_db": "directus_gov_test_20260602"})
    ok = {"passed": True, "checked_at": "2026-06-02T11:30:00Z"}
    assert clone_sql.gate0_age_problem(ok, 3600, now) is None
    assert "older than max_age 600" in clone_sql.gate0_age_problem(ok, 600, now)
    assert "did not pass" in clone_sql.gate0_age_problem({**ok, "passed": "true"}, 3600, now)
    future = {**ok, "checked_at": "2026-06-02T13:00:00Z"}
    assert "in the future" in clone_sql.gate0_age_problem(future, 3600, now)
    ident = {"database": "c_1", "database_oid": 5, "address": "10.0.0.1", "port": 5432}
    gate = {"clone": {"database": "c_1", "identity": ident}}
    assert clone_sql.identity_problems(gate, "c_1", ident) == []
    assert clone_sql.identity_problems(gate, "c_1", {**ident, "database_oid": 6}) == [
        "database_oid is 6 now, 5 at the gate"]
    bare = {"clone": {"database": "c_1"}}
    assert "no server identity" in clone_sql.identity_problems(bare, "c_1", ident)[0]


def test_rollback_mode_is_residue_free(lab: Lab) -> None:
    before = cursor_rows(lab)
    res = adhoc(lab, statements=[
        {"query": "INSERT INTO governance_scan_cursor (cursor_name, watermark, events_seen) "
                  "VALUES (%s, %s, 0)", "args": ["probe", "wm-x"]},
        "SELECT count(*) FROM governance_scan_cursor"])
    assert res["failed"] is False, res
    assert res["results"][1]["rows"] == [[before + 1]]
    assert res["wrote"] is True and res["committed"] is False and res["changed"] is False
    assert cursor_rows(lab) == before


def test_refuses_a_production_database_before_connecting(lab: Lab) -> None:
    res = adhoc(lab, login_db=PROD_DB, statements=["SELECT 1"])
    assert res["failed"] is True
    assert res["msg"] == ("clone_sql on directus: checking the target: 'directus' does not start with "
                          "exactly 'directus_gov_test_'; 'directus' is a production/allowlisted database "
                          "name")


def test_a_failing_statement_names_it_and_leaves_nothing(lab: Lab) -> None:
    before = cursor_rows(lab)
    res = adhoc(lab, mode="rollback", statements=[
        "INSERT INTO governance_scan_cursor (cursor_name, watermark, events_seen) VALUES ('a', 'b', 0)",
        "SELECT * FROM no_such_table"])
    assert res["failed"] is True
    assert res["msg"].startswith("clone_sql on directus_gov_test_20260602: running statement 1: relation ")
    assert cursor_rows(lab) == before


def test_commit_requires_gate0(lab: Lab) -> None:
    res = adhoc(lab, mode="commit", statements=["SELECT 1"])
    assert res["failed"] is True and "mode commit requires gate0" in res["msg"]


def test_commit_with_gate0_commits_and_reports_changed(fresh_lab: Lab) -> None:
    before = cursor_rows(fresh_lab)
    res = adhoc(fresh_lab, mode="commit", gate0=gate0_record(fresh_lab), statements=[
        "INSERT INTO governance_scan_cursor (cursor_name, watermark, events_seen) VALUES ('c', 'wm', 0)"])
    assert res["failed"] is False, res
    assert res["committed"] is True and res["changed"] is True and res["gate0_verified"] is True
    assert cursor_rows(fresh_lab) == before + 1


def _require(tmp_path: Path, gate0: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "gate0.json"
    path.write_text(json.dumps({"gate0": gate0, **STATEMENTS}))
    return run_playbook(APPLY, "-e", f"@{path}", *extra)


def test_require_accepts_a_fresh_pass_for_this_clone(fresh_lab: Lab, tmp_path: Path) -> None:
    r = _require(tmp_path, gate0_record(fresh_lab))
    assert r.returncode == 0, r.stdout
    assert "1 statement(s), committed" in " ".join(r.stdout.split())
    assert fresh_lab.scalar(CLONE_DB, "SELECT count(*) FROM governance_scan_cursor WHERE cursor_name = "
                                      "'require-test'") == 1


@pytest.mark.parametrize(("over", "needle"), [
    ({"passed": False}, "gate0 required: gate0 did not pass"),
    ({"gates": ["prod", "disk"]}, "gate0 required: gate0 ran without gate(s) clone"),
    ({"checked_at": "2026-01-01T00:00:00Z"}, "verifying gate0: gate0 is "),
    ({"clone": {"database": "directus_gov_test_20990101", "identity": None}},
     "replayed to another clone: the receipt is for 'directus_gov_test_20990101'"),
])
def test_require_refuses(lab: Lab, tmp_path: Path, over: dict, needle: str) -> None:
    before = cursor_rows(lab)
    r = _require(tmp_path, gate0_record(lab, **over))
    assert r.returncode != 0
    assert needle in r.stdout, r.stdout[-2000:]
    assert "statement(s)," not in r.stdout
    assert cursor_rows(lab) == before


def test_require_refuses_a_clone_recreated_since_the_gate(fresh_lab: Lab, tmp_path: Path) -> None:
    gate = gate0_record(fresh_lab)
    fresh_lab.reset()  # drops and recreates the clone from its template: same name, new oid
    r = _require(tmp_path, gate)
    assert r.returncode != 0
    assert "verifying gate0 against the clone: database_oid is " in r.stdout
    assert "statement(s)," not in r.stdout


def test_require_reads_the_hosts_map_of_a_multi_host_run(fresh_lab: Lab, tmp_path: Path) -> None:
    """AWX passes set_stats: gate0_hosts[inventory_hostname] wins over a play-level gate0 summary."""
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"gate0": {"passed": False, "hosts": ["lab", "other"]},
                                "gate0_hosts": {"lab": gate0_record(fresh_lab)}, **STATEMENTS}))
    r = run_playbook(APPLY, "-e", f"@{path}")
    assert r.returncode == 0, r.stdout[-2000:]
