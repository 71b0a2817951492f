"""The clone gate and disk headroom on the real lab, through the real ansible-playbook.

Each test creates an unsafe situation on the lab (or none), runs `--tags clone,disk` and judges the
clone.*/disk.* records of the JSON report (prod.* are "not run" under these tags, so the overall
verdict is FAIL by design and is not what these tests look at).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from conftest import CLONE_DB, PROD_DB, Lab, run_playbook

CLONE_IDS = ["clone.name_pattern", "clone.not_production", "clone.production_unreachable",
             "clone.foreign_sessions", "clone.app_binding", "clone.outbound_links",
             "clone.dispatch_disabled", "clone.outbox_guard", "clone.worker_lease", "clone.seed_present",
             "clone.coverage", "clone.candidate_state", "clone.rollback_plan", "disk.headroom"]


def gate(tmp_path: Path, *extra: str) -> dict[str, Any]:
    """Run the clone and disk gates; return {'rc', 'checks': {id: record}, 'report': json}."""
    report_dir = tmp_path / "reports"
    proc = run_playbook("playbooks/gate0.yml", "--tags", "clone,disk", "-e", f"gate0_report_dir={report_dir}",
                        *extra)
    files = sorted(report_dir.glob("gate0-*.json"))
    assert len(files) == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(files[0].read_text())
    checks = {c["id"]: c for c in report["checks"]}
    for cid in CLONE_IDS:
        assert "\n" not in (checks[cid]["message"] or ""), checks[cid]
        assert "Traceback" not in (checks[cid]["message"] or "")
    return {"rc": proc.returncode, "checks": checks, "report": report, "stdout": proc.stdout}


def status(result: dict[str, Any]) -> dict[str, str]:
    return {cid: result["checks"][cid]["status"] for cid in CLONE_IDS}


def failing(result: dict[str, Any]) -> set[str]:
    return {cid for cid in CLONE_IDS if result["checks"][cid]["status"] != "pass"}


def wait_no_gate0_sessions(lab: Lab) -> None:
    """Bounded wait until the gate's backends have exited (their statistics are flushed at exit)."""
    for _ in range(50):
        if not lab.scalar("postgres",
                          "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gate0'"):
            return
        time.sleep(0.1)
    raise AssertionError("gate0 sessions still open after 5 s")


def residue_evidence(lab: Lab) -> dict[str, Any]:
    """Everything the probe could leave behind on the clone: rows, tuple counters, the sequence."""
    wait_no_gate0_sessions(lab)
    return {
        "outbox_rows": lab.scalar(CLONE_DB, "SELECT count(*) FROM event_outbox"),
        "table": lab.query(CLONE_DB, "SELECT n_tup_ins, n_tup_upd, n_tup_del, n_live_tup, n_dead_tup "
                                     "FROM pg_stat_user_tables WHERE relname = 'event_outbox'"),
        # Every user table of the clone (catalog counters move with autovacuum/analyze, not with us).
        "user_tables": lab.query(CLONE_DB, "SELECT sum(n_tup_ins), sum(n_tup_upd), sum(n_tup_del), "
                                           "sum(n_live_tup) FROM pg_stat_user_tables"),
        "sequence": lab.query(CLONE_DB, "SELECT last_value, is_called FROM event_outbox_event_id_seq"),
        "registry": lab.query(CLONE_DB, "SELECT event_type, active FROM event_type_registry ORDER BY 1"),
    }


def test_seed_state_passes_and_the_probe_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    before = residue_evidence(lab)
    result = gate(tmp_path)
    assert set(status(result).values()) == {"pass"}, {k: v["message"] for k, v in result["checks"].items()}
    assert all(result["checks"][c]["status"] == "fail" for c in result["checks"] if c.startswith("prod."))
    assert residue_evidence(lab) == before
    clone = result["report"]["clone"]
    probe = clone["outbox"]["probe"]
    assert probe["ran"] and probe["rejected"] and probe["from_function"] and probe["rolled_back"]
    assert probe["xid_assigned"] is None and probe["sqlstate"] == "23514"
    assert clone["identity"]["database"] == CLONE_DB
    assert result["report"]["disk"]["human"].count(" free of ") == 1
    assert "clone " in result["checks"]["disk.headroom"]["message"]


def test_check_mode_gives_the_same_verdict(lab: Lab, tmp_path: Path) -> None:
    before = residue_evidence(lab)
    result = gate(tmp_path, "--check")
    assert set(status(result).values()) == {"pass"}
    assert result["report"]["clone"]["outbox"]["probe"]["ran"] is True
    assert residue_evidence(lab) == before


def test_foreign_sessions_and_disk_rules_fail(lab: Lab, tmp_path: Path) -> None:
    idle = lab.connect(CLONE_DB, user="workflow_admin", application_name="idle-client")
    listener = lab.connect(CLONE_DB, user="workflow_admin", application_name="listener")
    try:
        with listener.cursor() as cur:
            cur.execute("LISTEN governance_events")
            cur.execute("SELECT pg_backend_pid()")
            listener_pid = cur.fetchone()[0]
        idle_pid = idle.info.backend_pid
        result = gate(tmp_path, "-e", "gate0_disk_min_free_bytes=1000000000000000",
                      "-e", "gate0_disk_min_free_percent=99.9",
                      "-e", "gate0_disk_clone_size_factor=100000000")
    finally:
        idle.close()
        listener.close()
    assert failing(result) == {"clone.foreign_sessions", "disk.headroom"}
    msg = result["checks"]["clone.foreign_sessions"]["message"]
    assert "2 foreign on the clone" in msg and f"pid {idle_pid} " in msg
    assert f"pid {listener_pid} " in msg and "app=listener" in msg and "state=idle" in msg
    disk = result["checks"]["disk.headroom"]["message"]
    for var in ("gate0_disk_min_free_bytes", "gate0_disk_min_free_percent", "gate0_disk_clone_size_factor"):
        assert var in disk
    assert " free of " in disk and "clone " in disk and "production " in disk


def test_registry_lease_seed_candidates_plan_fail(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    lab.execute(CLONE_DB, "UPDATE event_type_registry SET active = true "
                          "WHERE event_type = 'governance.gap.opened'")
    lab.execute(CLONE_DB, "INSERT INTO dot_iu_runtime_lease (worker_id, iu_code, expires_at) "
                          "VALUES ('w-1', 'iu-1', now() + interval '1 hour')")
    lab.execute(CLONE_DB, "INSERT INTO governance_object_ownership "
                          "(object_kind, scope_code, owner_ref, created_by) "
                          "SELECT 'ghost', min(scope_code), 'x', 'CLONE_TEST_F6_SEED' FROM governance_scopes")
    lab.execute(CLONE_DB, "INSERT INTO governance_scan_run (ruleset_id, status, started_at) "
                          "VALUES (1, 'x', now())")
    result = gate(tmp_path, "-e", f"gate0_clone_rollback_plan={tmp_path}/no-such-plan.md")
    assert failing(result) == {"clone.dispatch_disabled", "clone.worker_lease", "clone.seed_present",
                               "clone.candidate_state", "clone.rollback_plan"}
    c = result["checks"]
    assert "governance.gap.opened" in c["clone.dispatch_disabled"]["message"]
    assert "dot_iu_runtime_lease = 1 rows" in c["clone.worker_lease"]["message"]
    assert "31 rows by 'CLONE_TEST_F6_SEED'" in c["clone.seed_present"]["message"]
    assert "scan_run=3 (expected 2)" in c["clone.candidate_state"]["message"]
    assert "does not exist" in c["clone.rollback_plan"]["message"]


def test_missing_seed_row_gap_cell_flows_and_app_binding_fail(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    lab.execute(CLONE_DB, "DELETE FROM governance_object_ownership WHERE ownership_id = "
                          "(SELECT min(ownership_id) FROM governance_object_ownership)")
    lab.execute(CLONE_DB, "UPDATE directus_flows SET status = 'active' WHERE name = 'Notify owners'")
    env = tmp_path / "app.env"
    env.write_text(f"DB_CLIENT=pg\nexport DB_DATABASE=\"{CLONE_DB}\"\n")
    empty_plan = tmp_path / "plan.md"
    empty_plan.write_text("  \n")
    result = gate(tmp_path, "-e", f"gate0_clone_app_env_file={env}",
                  "-e", f"gate0_clone_rollback_plan={empty_plan}")
    assert failing(result) == {"clone.seed_present", "clone.coverage", "clone.dispatch_disabled",
                               "clone.app_binding", "clone.rollback_plan"}
    c = result["checks"]
    assert "29 rows by" in c["clone.seed_present"]["message"]
    assert "v_object_owner_gap = 7 of 210 cells" in c["clone.coverage"]["message"]
    assert "1 active in directus_flows" in c["clone.dispatch_disabled"]["message"]
    assert f"DB_DATABASE={CLONE_DB}" in c["clone.app_binding"]["message"]
    assert "is empty" in c["clone.rollback_plan"]["message"]


def test_disabled_trigger_fails_and_leaves_nothing(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    lab.execute(CLONE_DB, "ALTER TABLE event_outbox DISABLE TRIGGER trg_event_outbox_validate")
    before = residue_evidence(lab)
    result = gate(tmp_path, "-e", "gate0_disk_path=/no/such/path")
    assert failing(result) == {"clone.outbox_guard", "disk.headroom"}
    msg = result["checks"]["clone.outbox_guard"]["message"]
    assert "is disabled (tgenabled='D')" in msg and "was NOT rejected" in msg
    disk = result["checks"]["disk.headroom"]["message"]
    assert "measuring /no/such/path: No such file or directory" in disk
    after = residue_evidence(lab)
    # The unguarded insert reached the heap and was rolled back: no row, no sequence step, no live tuple.
    assert after["outbox_rows"] == 0 and after["sequence"] == before["sequence"]
    assert after["table"][0][3] == before["table"][0][3]


def test_trigger_that_no_longer_rejects_app_connect_and_hidden_sessions_fail(fresh_lab: Lab,
                                                                              tmp_path: Path) -> None:
    lab = fresh_lab
    lab.execute(CLONE_DB, "CREATE OR REPLACE FUNCTION fn_event_type_validate() RETURNS trigger "
                          "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END; $$")
    lab.execute("postgres", f'GRANT CONNECT ON DATABASE "{CLONE_DB}" TO directus')
    lab.execute("postgres", "REVOKE pg_read_all_stats FROM workflow_admin")
    before = residue_evidence(lab)
    result = gate(tmp_path)
    assert failing(result) == {"clone.outbox_guard", "clone.app_binding", "clone.foreign_sessions",
                               "disk.headroom"}
    c = result["checks"]
    assert "was NOT rejected" in c["clone.outbox_guard"]["message"]
    assert "'directus' has CONNECT on" in c["clone.app_binding"]["message"]
    assert "cannot see other sessions' details" in c["clone.foreign_sessions"]["message"]
    assert f"reading the size of {PROD_DB}: permission denied" in c["disk.headroom"]["message"]
    after = residue_evidence(lab)
    # The insert the broken trigger let through was rolled back: no row, no sequence step.
    assert after["outbox_rows"] == 0 and after["sequence"] == before["sequence"]


def refused_before_connecting(lab: Lab, tmp_path: Path, *extra: str) -> str:
    """The role's validation refuses the run before any connection: one line, no report, no login."""
    report_dir = tmp_path / "reports"
    with lab.logins() as logins:
        proc = run_playbook("playbooks/gate0.yml", "--tags", "clone,disk", "-e",
                            f"gate0_report_dir={report_dir}", *extra)
    assert proc.returncode != 0
    assert logins == []
    assert not list(report_dir.glob("gate0-*.json"))
    (line,) = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("gate0 vars:")]
    return line


def test_clone_name_outside_the_rule_is_refused(lab: Lab, tmp_path: Path) -> None:
    line = refused_before_connecting(lab, tmp_path, "-e", "gate0_clone_name_prefix=directus_gov_test_%")
    assert "gate0_clone_name_prefix=directus_gov_test_% break the clone name rule" in line
    assert "pattern character '%'" in line


def test_clone_name_set_to_production_is_refused_before_any_probe(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    # Make production reachable by the clone login, so that only the gate's own refusal protects it.
    lab.execute("postgres", f'GRANT CONNECT ON DATABASE "{PROD_DB}" TO workflow_admin')
    lab.execute(PROD_DB, "GRANT INSERT ON event_outbox TO workflow_admin")
    sessions = "SELECT sessions FROM pg_stat_database WHERE datname = %s"
    wait_no_gate0_sessions(lab)
    before = (lab.scalar("postgres", sessions, (PROD_DB,)),
              lab.query(PROD_DB, "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'event_outbox'"))
    line = refused_before_connecting(lab, tmp_path, "-e", f"gate0_clone_database={PROD_DB}")
    assert "is a production/allowlisted database name" in line
    wait_no_gate0_sessions(lab)
    # Our own two reads of production above and below count once each; the gate opened none.
    after = (lab.scalar("postgres", sessions, (PROD_DB,)),
             lab.query(PROD_DB, "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'event_outbox'"))
    assert after[0] == before[0] + 1 and after[1] == before[1]


def test_connection_refused_fails_every_observed_check(lab: Lab, tmp_path: Path) -> None:
    result = gate(tmp_path, "-e", "gate0_clone_login_port=1")
    assert failing(result) == set(CLONE_IDS) - {"clone.rollback_plan"}
    for cid in CLONE_IDS:
        if cid not in ("clone.rollback_plan", "clone.name_pattern"):
            assert "connect" in result["checks"][cid]["message"], result["checks"][cid]


def test_a_locked_table_times_out_into_fails_not_a_hang(lab: Lab, tmp_path: Path) -> None:
    locker = lab.connect(CLONE_DB, user="workflow_admin", application_name="locker")
    try:
        locker.autocommit = False
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE governance_object_ownership IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = gate(tmp_path, "-e", "gate0_lock_timeout=300")
        elapsed = time.monotonic() - started
    finally:
        locker.rollback()
        locker.close()
    assert failing(result) == {"clone.foreign_sessions", "clone.seed_present", "clone.coverage"}
    assert "reading seed rows: canceling statement due to lock timeout" in \
        result["checks"]["clone.seed_present"]["message"]
    assert "app=locker" in result["checks"]["clone.foreign_sessions"]["message"]
    assert elapsed < 90


def test_clone_reaching_the_production_database_by_identity_fails(lab: Lab, tmp_path: Path) -> None:
    """Names differ, but the production gate's identity is this very database (same server, same oid)."""
    oid = lab.scalar("postgres", "SELECT oid::bigint FROM pg_database WHERE datname = %s", (CLONE_DB,))
    sysid = lab.scalar("postgres", "SELECT system_identifier::text FROM pg_control_system()")
    prod = {"database": PROD_DB, "database_oid": oid, "address": "127.0.0.1", "port": lab.port,
            "version": "x", "version_num": 0, "system_identifier": sysid}
    result = gate(tmp_path, "--tags", "clone", "-e", json.dumps({"__gate0_production_identity": prod}))
    rec = result["checks"]["clone.not_production"]
    assert rec["status"] == "fail" and "reaches the production database" in rec["message"], rec
