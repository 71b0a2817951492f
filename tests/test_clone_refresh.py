"""playbooks/clone_refresh.yml on the lab: a real copy of production into a new clone, gated."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLONE_DB, PROD_DB, REPO, Lab, run_playbook

NEW_CLONE = "directus_gov_test_20260615"
CREATE_SQL = REPO / "roles/gate0_refresh/files/create_clone.sql"


def psql_create(lab: Lab, clone: str, replace: str = "false") -> subprocess.CompletedProcess[str]:
    pg_bin = subprocess.run("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1", shell=True,  # noqa: S602
                            capture_output=True, text=True).stdout.strip()
    return subprocess.run(
        [f"{pg_bin}/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(lab.dir),
         "-p", str(lab.port), "-U", "postgres", "-d", "postgres", "-v", f"clone={clone}",
         "-v", "prefix=directus_gov_test_",
         "-v", f"production={PROD_DB}", "-v", "owner=workflow_admin", "-v", f"replace={replace}",
         "-f", str(CREATE_SQL)], capture_output=True, text=True, timeout=60)


def db_oid(lab: Lab, name: str) -> object:
    rows = lab.query("postgres", "SELECT oid FROM pg_database WHERE datname = %s", (name,))
    return rows[0][0] if rows else None


@pytest.fixture
def new_clone(lab: Lab) -> Iterator[str]:
    """The refresh target; dropped afterwards (it is not part of the seed state)."""
    lab.drop_database(NEW_CLONE)
    yield NEW_CLONE
    lab.drop_database(NEW_CLONE)


@pytest.mark.parametrize("target", [PROD_DB, "directus_gov_test_", "scratch"])
def test_server_side_guard_refuses_names_outside_the_rule(lab: Lab, target: str) -> None:
    before = db_oid(lab, PROD_DB)
    r = psql_create(lab, target, replace="true")
    assert r.returncode != 0
    assert f"gate0 refresh: refusing database {target}: it does not match the clone rule" in r.stderr
    assert db_oid(lab, PROD_DB) == before


def test_server_side_guard_refuses_an_existing_clone_unless_replace(lab: Lab) -> None:
    before = db_oid(lab, CLONE_DB)
    r = psql_create(lab, CLONE_DB)
    assert r.returncode != 0
    assert "exists; set gate0_refresh_replace=true" in r.stderr
    assert db_oid(lab, CLONE_DB) == before


def test_refresh_refuses_a_production_target_before_connecting(lab: Lab, tmp_path: Path) -> None:
    before = db_oid(lab, PROD_DB)
    r = run_playbook("playbooks/clone_refresh.yml", "-e", f"gate0_clone_database={PROD_DB}",
                     "-e", f"gate0_report_dir={tmp_path}")
    assert r.returncode != 0
    assert "gate0 vars: the clone 'directus' is in gate0_production_allowed_databases" in r.stdout
    assert "TASK [gate0 : prod |" not in r.stdout and "Create the new clone" not in r.stdout
    assert db_oid(lab, PROD_DB) == before


def test_refresh_refuses_after_a_failed_upstream_gate(lab: Lab, new_clone: str, tmp_path: Path) -> None:
    arts = tmp_path / "artifacts.json"
    arts.write_text(json.dumps({"gate0_hosts": {"lab": {"passed": False, "run_id": "upstream"}}}))
    r = run_playbook("playbooks/clone_refresh.yml", "-e", f"gate0_clone_database={new_clone}",
                     "-e", f"@{arts}", "-e", f"gate0_report_dir={tmp_path}")
    assert r.returncode != 0
    assert "gate0 refresh: the upstream gate0 did not pass for lab (run upstream)" in r.stdout
    assert db_oid(lab, new_clone) is None


def test_refresh_copies_production_into_a_new_clone_that_passes_gate0(
        lab: Lab, new_clone: str, tmp_path: Path) -> None:
    prod_oid = db_oid(lab, PROD_DB)
    r = run_playbook("playbooks/clone_refresh.yml", "-e", f"gate0_clone_database={new_clone}",
                     "-e", f"gate0_report_dir={tmp_path}", timeout=400)
    assert r.returncode == 0, r.stdout[-4000:]
    assert "gate0 exit PASS: production unchanged" in r.stdout
    # A mutation on the new clone, in a later run: gate0 comes from the fact cache, for this clone.
    # Before anybody else connects to it (the checks below do; require would refuse them).
    apply = run_playbook("playbooks/clone_apply.yml", "-e", f"gate0_clone_database={new_clone}",
                         "-e", '{"gate0_apply_statements": ["SELECT count(*) FROM system_issues"]}')
    assert apply.returncode == 0, apply.stdout[-3000:]
    assert "1 statement(s), rolled back" in " ".join(apply.stdout.split())
    # The copy: production's data, isolated.
    for table in ("system_issues", "dot_tools", "governance_object_inventory"):
        q = f"SELECT count(*) FROM {table}"
        assert lab.scalar(new_clone, q) == lab.scalar(PROD_DB, q), table
    assert lab.scalar(new_clone, "SELECT count(*) FROM event_type_registry WHERE active") == 0
    assert lab.scalar(new_clone, "SELECT count(*) FROM directus_flows WHERE status <> 'inactive'") == 0
    acl = lab.scalar("postgres", "SELECT datacl::text FROM pg_database WHERE datname = %s", (new_clone,))
    assert acl == "{workflow_admin=CTc/workflow_admin}"
    assert db_oid(lab, PROD_DB) == prod_oid
    # Two gate0 runs: before anything is created (production only), then every gate on the new clone.
    runs = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("gate0-*.json"))]
    assert [r_["verdict"] for r_ in runs] == ["PASS", "PASS"]
    first, last = runs
    assert {c["status"] for c in first["checks"] if c["gate"] in ("clone", "disk")} == {"skipped"}
    assert [c["id"] for c in last["checks"] if c["status"] != "pass"] == []
    assert last["clone"]["database"] == new_clone


def test_refresh_leaves_production_outbound_links_behind(lab: Lab, new_clone: str, tmp_path: Path) -> None:
    """Production has a foreign server with a user mapping (for the app, not the read-only role): the
    copy leaves it, its wrapper's extension and its mappings out, and the gate on the new clone proves
    there is no outbound link."""
    if not lab.scalar("postgres", "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgres_fdw'"):
        pytest.skip("postgres_fdw is not available on this server")
    try:
        lab.execute(PROD_DB, "CREATE EXTENSION postgres_fdw")
        lab.execute(PROD_DB, "CREATE SERVER gate0_t_srv FOREIGN DATA WRAPPER postgres_fdw "
                             "OPTIONS (host '127.0.0.1', dbname 'elsewhere')")
        lab.execute(PROD_DB, "CREATE USER MAPPING FOR directus SERVER gate0_t_srv OPTIONS (user 'x')")
        r = run_playbook("playbooks/clone_refresh.yml", "-e", f"gate0_clone_database={new_clone}",
                         "-e", f"gate0_report_dir={tmp_path}", timeout=400)
    finally:
        lab.execute(PROD_DB, "DROP EXTENSION IF EXISTS postgres_fdw CASCADE")
    assert r.returncode == 0, r.stdout[-4000:]
    assert lab.scalar(new_clone, "SELECT count(*) FROM pg_foreign_server") == 0
    assert lab.scalar(new_clone, "SELECT count(*) FROM pg_extension WHERE extname = 'postgres_fdw'") == 0
    last = json.loads(sorted(tmp_path.glob("gate0-*.json"))[-1].read_text())
    links = next(c for c in last["checks"] if c["id"] == "clone.outbound_links")
    assert links["status"] == "pass" and last["clone"]["database"] == new_clone, links


def test_refresh_failing_after_the_create_drops_the_new_clone(
        lab: Lab, new_clone: str, tmp_path: Path) -> None:
    """The hardening fails (a statement divides by zero): the new clone is dropped again and the run
    fails in one line naming the step; production untouched."""
    prod_oid = db_oid(lab, PROD_DB)
    r = run_playbook("playbooks/clone_refresh.yml", "-e", f"gate0_clone_database={new_clone}",
                     "-e", '{"gate0_refresh_hardening_sql": ["SELECT 1/0"]}',
                     "-e", f"gate0_report_dir={tmp_path}", timeout=400)
    assert r.returncode != 0
    out = " ".join(r.stdout.split())
    assert "gate0 refresh FAIL at 'copy | The clone is hardened': gate0 refresh: hardening" in out
    assert f"division by zero - the new clone {new_clone} was dropped" in out
    assert db_oid(lab, new_clone) is None
    assert db_oid(lab, PROD_DB) == prod_oid


def test_refresh_dba_without_a_password_fails_in_one_line_never_prompts(
        lab: Lab, new_clone: str, tmp_path: Path) -> None:
    """The DBA login over TCP, where the server asks for a password it was not given: psql -w fails
    at once naming the login (no prompt reading the SQL as a password); nothing is created."""
    r = run_playbook("playbooks/clone_refresh.yml", "-e", f"gate0_clone_database={new_clone}",
                     "-e", "gate0_refresh_dba_login_host=127.0.0.1", "-e", f"gate0_report_dir={tmp_path}",
                     timeout=400)
    assert r.returncode != 0
    out = " ".join(r.stdout.split())
    assert f"gate0 refresh: creating {new_clone} as the DBA login postgres:" in out
    assert "no password supplied - nothing was created" in out
    assert db_oid(lab, new_clone) is None
