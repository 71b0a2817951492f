"""The lab reproduces the seed: every number, the roles' access both ways, the outbox trigger."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import psycopg2
import pytest
from conftest import CLONE_DB, LAB_SH, PROD_DB, REPO, Lab, lab_env

COUNTS = {
    "governance_object_ownership": (0, 30),
    "v_object_owner_gap": (210, 0),
    "governance_object_inventory": (35, 35),
    "governance_object_containment": (35, 35),
    "governance_scopes": (6, 6),
    "governance_ruleset": (0, 1),
    "governance_scan_run": (0, 2),
    "governance_candidate_state": (0, 5),
    "governance_candidate_object": (0, 35),
    "governance_scan_cursor": (0, 1),
    "os_proposal_approvals": (0, 0),
    "system_issues": (200480, 200480),
    "dot_tools": (309, 309),
    "dot_iu_runtime_lease": (0, 0),
    "event_outbox": (0, 0),
}


@pytest.mark.parametrize("table", sorted(COUNTS))
def test_seed_counts(lab: Lab, table: str) -> None:
    prod, clone = COUNTS[table]
    assert lab.scalar(PROD_DB, f"SELECT count(*) FROM {table}") == prod
    assert lab.scalar(CLONE_DB, f"SELECT count(*) FROM {table}") == clone


def test_clone_only_state(lab: Lab) -> None:
    assert lab.query(CLONE_DB, "SELECT DISTINCT created_by FROM governance_object_ownership") == [
        ("CLONE_TEST_F6_SEED",)]
    assert lab.query(CLONE_DB, "SELECT watermark, events_seen FROM governance_scan_cursor") == [("wm-2", 20)]
    for db in (PROD_DB, CLONE_DB):
        assert lab.scalar(db, "SELECT count(*) FROM event_type_registry WHERE domain = 'governance'") == 8
        assert lab.scalar(db, "SELECT count(*) FROM event_type_registry WHERE active") == 0
    assert lab.scalar(CLONE_DB, "SELECT count(*) FROM directus_flows WHERE status = 'active'") == 0
    assert lab.scalar(PROD_DB, "SELECT count(*) FROM directus_flows WHERE status = 'active'") == 2


def test_readonly_role_reaches_production_only(lab: Lab) -> None:
    conn = lab.connect(PROD_DB, user="context_pack_readonly")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM system_issues")
        assert cur.fetchone() == (200480,)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("INSERT INTO dot_tools (tool_id, tool_code, name, category, created_at) "
                        "VALUES (999, 'x', 'x', 'x', now())")
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        lab.connect(CLONE_DB, user="context_pack_readonly")


def test_app_role_and_admin_role(lab: Lab) -> None:
    lab.connect(PROD_DB, user="directus").close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        lab.connect(CLONE_DB, user="directus")
    lab.connect(CLONE_DB, user="workflow_admin").close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        lab.connect(PROD_DB, user="workflow_admin")
    assert lab.scalar(CLONE_DB, "SELECT pg_get_userbyid(datdba) FROM pg_database "
                                "WHERE datname = current_database()") == "workflow_admin"


def test_readonly_role_sees_other_sessions(lab: Lab) -> None:
    other = lab.connect(PROD_DB, user="directus")
    conn = lab.connect(PROD_DB, user="context_pack_readonly")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'directus' AND query IS NOT NULL "
                    "AND query <> '<insufficient privilege>'")
        assert cur.fetchone()[0] >= 1
    conn.close()
    other.close()


def test_outbox_trigger_rejects_inactive_and_unknown(lab: Lab) -> None:
    conn = lab.connect(CLONE_DB)
    conn.autocommit = False
    with conn.cursor() as cur:
        for event_type in ("governance.gap.closed", "no.such.type"):
            with pytest.raises(psycopg2.errors.CheckViolation, match="unknown or inactive"):
                cur.execute("INSERT INTO event_outbox (event_type) VALUES (%s)", (event_type,))
            conn.rollback()
        # The trigger lets an active type through: it really validates, it does not block everything.
        cur.execute("UPDATE event_type_registry SET active = true WHERE event_type = 'governance.gap.closed'")
        cur.execute("INSERT INTO event_outbox (event_type) VALUES ('governance.gap.closed')")
    conn.rollback()
    conn.close()
    assert lab.scalar(CLONE_DB, "SELECT count(*) FROM event_outbox") == 0


def test_app_env_file_binds_production(lab: Lab) -> None:
    env = (lab.dir / "directus.env").read_text()
    assert re.search(r"^DB_DATABASE=directus$", env, re.M)
    assert oct((lab.dir / "directus.env").stat().st_mode & 0o777) == "0o600"


def test_dsn_is_one_keyword_line(lab: Lab) -> None:
    out = subprocess.run(["make", "-s", "lab-dsn"], cwd=REPO, env=lab_env(), capture_output=True,
                         text=True, check=True).stdout
    assert out.count("\n") == 1
    assert out.strip() == f"host={lab.dir} port={lab.port} user=postgres dbname=postgres"
    conn = psycopg2.connect(out.strip() + f" dbname={CLONE_DB}")
    conn.close()


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting for init to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return not re.search(r"^State:\s+Z", status, re.M)


def _postgres_pids(data_dir: Path) -> list[int]:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return []
    pid = int(pid_file.read_text().split()[0])
    return [pid] if _alive(pid) else []


def test_second_lab_from_nothing_idempotent_and_down() -> None:
    """A lab in its own dir and port: up from nothing, up again (harmless), down leaves no process."""
    base = Path("/var/tmp") / f"gate0-test-lab-{os.getpid()}"
    port = int(lab_env()["GATE0_LAB_PORT"]) + 1
    env = lab_env() | {"GATE0_LAB_DIR": str(base), "GATE0_LAB_PORT": str(port)}
    try:
        t0 = time.monotonic()
        subprocess.run([str(LAB_SH), "up"], env=env, check=True, capture_output=True)
        first = time.monotonic() - t0
        pid = _postgres_pids(base / "data")
        assert pid, "no postmaster after lab up"
        subprocess.run([str(LAB_SH), "up"], env=env, check=True, capture_output=True)
        assert _postgres_pids(base / "data") == pid, "a second lab up restarted the server"
        conn = psycopg2.connect(host=str(base), port=port, user="postgres", dbname=CLONE_DB)
        conn.close()
        print(f"lab up from nothing: {first:.1f}s")
        subprocess.run([str(LAB_SH), "down"], env=env, check=True, capture_output=True)
        assert not _alive(pid[0]), "postgres still running after lab down"
        # A crash leaves a stale pid file: up must still work.
        (base / "data" / "postmaster.pid").write_text("999999\n")
        subprocess.run([str(LAB_SH), "up"], env=env, check=True, capture_output=True)
        assert _postgres_pids(base / "data")
    finally:
        subprocess.run([str(LAB_SH), "down"], env=env, capture_output=True)
        subprocess.run(["rm", "-rf", str(base)], check=False)
