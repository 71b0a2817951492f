"""Several hosts in one run (forks): each gates its own clone; any failing or unreachable host fails
the run, and each host's report states its own verdict. Inventory: inventories/lab2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Lab, run_playbook
from psycopg2 import sql

SECOND_CLONE = "directus_gov_test_20260603"
SECOND_PROD = "directus_b"


def _su(lab: Lab, *stmts: sql.Composable) -> None:
    conn = lab.connect("postgres")  # autocommit: CREATE/DROP DATABASE refuse a transaction block
    with conn.cursor() as cur:
        for stmt in stmts:
            cur.execute(stmt)
    conn.close()


@pytest.fixture
def second_clone(fresh_lab: Lab) -> Iterator[str]:
    """lab_b's production and clone, from the lab's templates with the seed's ACLs; dropped after."""
    db, prod = sql.Identifier(SECOND_CLONE), sql.Identifier(SECOND_PROD)
    _su(fresh_lab,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db),
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(prod),
        sql.SQL("CREATE DATABASE {} TEMPLATE gate0_lab_tpl_prod OWNER directus STRATEGY file_copy")
        .format(prod),
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(prod),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO directus, context_pack_readonly").format(prod),
        sql.SQL("CREATE DATABASE {} TEMPLATE gate0_lab_tpl_clone OWNER workflow_admin STRATEGY file_copy")
        .format(db),
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO workflow_admin").format(db))
    yield SECOND_CLONE
    _su(fresh_lab, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db),
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(prod))


def reports(report_dir: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(report_dir.glob("gate0-*.json")):
        data = json.loads(path.read_text())
        out[data["host"]] = data
    return out


def failed(report: dict) -> list[str]:
    return [c["id"] for c in report["checks"] if c["status"] == "fail"]


def test_two_hosts_each_pass_on_their_own_clone(second_clone: str, tmp_path: Path) -> None:
    r = run_playbook("-i", "inventories/lab2", "-f", "2", "playbooks/gate0.yml",
                     "-e", f"gate0_report_dir={tmp_path}", timeout=300)
    assert r.returncode == 0, r.stdout[-4000:]
    reps = reports(tmp_path)
    assert set(reps) == {"lab_a", "lab_b"}
    assert [reps[h]["verdict"] for h in ("lab_a", "lab_b")] == ["PASS", "PASS"]
    assert reps["lab_b"]["clone"]["database"] == second_clone
    assert reps["lab_a"]["clone"]["database"] == "directus_gov_test_20260602"
    assert reps["lab_b"]["production"]["database"] == SECOND_PROD
    assert "Every play host has this run's verdict" in r.stdout


def test_one_unsafe_host_fails_the_run_and_each_report_says_its_own(
        second_clone: str, fresh_lab: Lab, tmp_path: Path) -> None:
    fresh_lab.execute(second_clone, "UPDATE event_type_registry SET active = true "
                                    "WHERE event_type = (SELECT min(event_type) FROM event_type_registry)")
    r = run_playbook("-i", "inventories/lab2", "-f", "2", "playbooks/gate0.yml",
                     "-e", f"gate0_report_dir={tmp_path}", timeout=300)
    assert r.returncode != 0
    reps = reports(tmp_path)
    assert reps["lab_a"]["verdict"] == "PASS"
    assert reps["lab_b"]["verdict"] == "FAIL"
    assert "clone.dispatch_disabled" in failed(reps["lab_b"])
    assert "gate0 FAIL on lab_b:" in r.stdout


def test_an_unreachable_host_fails_the_run(lab: Lab, tmp_path: Path) -> None:
    extra = tmp_path / "extra.yml"
    extra.write_text("gate0_lab:\n  hosts:\n    lab_gone:\n      ansible_connection: ssh\n"
                     "      ansible_host: 127.0.0.1\n      ansible_port: 9\n"
                     "      ansible_ssh_common_args: -o ConnectTimeout=2 -o BatchMode=yes\n"
                     "      gate0_clone_database: directus_gov_test_20260604\n"
                     f"      __gate0_lab_dir: {REPO / '.lab'}\n")
    r = run_playbook("-i", "inventories/lab2", "-i", str(extra), "-f", "2", "--limit", "lab_a,lab_gone",
                     "playbooks/gate0.yml",
                     "-e", f"gate0_report_dir={tmp_path / 'r'}", timeout=300)
    assert r.returncode != 0
    assert "lab_gone" in r.stdout and "UNREACHABLE" in r.stdout
    reps = reports(tmp_path / "r")
    assert "lab_gone" not in reps
