"""Many clones of ONE production gated at once (forks = clones), the way AWX runs them: each safe
clone PASSes although the other gates read the same production at the same time, and an unsafe clone
FAILs alone, naming its own check. Inventory: inventories/lab_many; clones: `lab/lab.sh clones N`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import LAB_SH, PROD_DB, REPO, Lab, lab_env, run_playbook

N = 4
RO = "context_pack_readonly"
INVENTORY = "inventories/lab_many"
# The custom stats line (set_stats, shown with ANSIBLE_SHOW_CUSTOM_STATS) in JSON, on one line.
STATS_ENV = {"ANSIBLE_SHOW_CUSTOM_STATS": "true", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}


def _inventory_clones() -> dict[str, str]:
    hosts = yaml.safe_load((REPO / INVENTORY / "hosts.yml").read_text())["gate0_lab"]["hosts"]
    return {host: v["gate0_clone_database"] for host, v in list(hosts.items())[:N]}


CLONES = _inventory_clones()


def _clones(n: int) -> None:
    out = subprocess.run([str(LAB_SH), "clones", str(n)], env=lab_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.fixture
def clones(fresh_lab: Lab) -> Iterator[dict[str, str]]:
    """N clones of the one production (the clone template, the clone's ACLs); dropped afterwards."""
    _clones(N)
    yield CLONES
    _clones(0)
    assert not fresh_lab.query("postgres", "SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                               (list(CLONES.values()),))


def gate_all(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, dict], dict]:
    """gate0 on the N hosts with forks N: the run, each host's JSON report, the play's set_stats."""
    r = run_playbook("-i", INVENTORY, "--limit", ",".join(CLONES), "-f", str(N), "playbooks/gate0.yml",
                     "-e", f"gate0_report_dir={tmp_path}", env_extra=STATS_ENV, timeout=300)
    assert "Traceback" not in r.stdout + r.stderr
    reports = {}
    for path in sorted(tmp_path.glob("gate0-*.json")):
        data = json.loads(path.read_text())
        reports[data["host"]] = data
    assert sorted(reports) == sorted(CLONES), r.stdout[-3000:]
    stats_line = next(line for line in r.stdout.splitlines() if line.strip().startswith("RUN:"))
    return r, reports, json.loads(stats_line.split("RUN:", 1)[1])


def failed(report: dict) -> list[str]:
    return [c["id"] for c in report["checks"] if c["status"] == "fail"]


def test_clones_of_one_production_all_pass_at_once(
        clones: dict[str, str], fresh_lab: Lab, tmp_path: Path) -> None:
    # The N gates overlap only by chance; one more gate, held mid-fingerprint (its read-only role,
    # idle in its READ ONLY transaction, no transaction id) makes the overlap certain for every gate.
    other = fresh_lab.connect(PROD_DB, user=RO, application_name="gate0")
    other.set_session(isolation_level="REPEATABLE READ", readonly=True, autocommit=False)
    with other.cursor() as cur:
        cur.execute("SELECT count(*) FROM dot_tools")
    pid = other.get_backend_pid()
    try:
        r, reports, stats = gate_all(tmp_path)
    finally:
        other.rollback()
        other.close()
    assert r.returncode == 0, {h: [c["message"] for c in rep["checks"] if c["status"] == "fail"]
                               for h, rep in reports.items()}
    for rep in reports.values():
        idle = next(c for c in rep["checks"] if c["id"] == "prod.idle_in_transaction")
        assert pid in [s["pid"] for s in idle["observed"]["tolerated"]], idle["message"]
    for host, clone in clones.items():
        rep = reports[host]
        assert (rep["verdict"], failed(rep)) == ("PASS", []), (host, failed(rep))
        assert (rep["production"]["database"], rep["clone"]["database"]) == (PROD_DB, clone)
        assert stats["gate0_hosts"][host]["clone"]["database"] == clone
    # Each gate fingerprinted the same production, and each saw the same numbers.
    assert len({rep["production"]["digest"] for rep in reports.values()}) == 1
    assert stats["gate0"]["passed"] is True and stats["gate0"]["failed_hosts"] == []
    assert stats["gate0"]["hosts"] == sorted(clones)


def test_one_unsafe_clone_fails_alone_naming_its_check(
        clones: dict[str, str], fresh_lab: Lab, tmp_path: Path) -> None:
    unsafe = sorted(clones)[2]
    fresh_lab.execute(clones[unsafe], "INSERT INTO dot_iu_runtime_lease (worker_id, iu_code, expires_at) "
                                      "VALUES ('worker-1', 'iu-1', now() + interval '1 hour')")
    r, reports, stats = gate_all(tmp_path)
    assert r.returncode != 0
    assert {h: failed(rep) for h, rep in reports.items()} == {
        h: (["clone.worker_lease"] if h == unsafe else []) for h in clones}
    assert f"gate0 FAIL on {unsafe}: 1 of {len(reports[unsafe]['checks'])} checks failed" in r.stdout
    assert [line.split()[0] for line in r.stdout.splitlines() if "failed=1" in line] == [unsafe]
    assert stats["gate0"]["passed"] is False and stats["gate0"]["failed_hosts"] == [unsafe]
    assert [h for h, g in stats["gate0_hosts"].items() if g["passed"]] == sorted(set(clones) - {unsafe})
