"""gate0 against a real Directus 11.3.5 (marker `directus`: `make test-directus`, part of `make test`).

tests/directus/setup.sh installs Directus from the npm registry into .cache/directus (once, ~470 MB);
tests/directus_lab.py bootstraps it on the lab cluster (production `dx_app`), makes the clone with
`CREATE DATABASE ... TEMPLATE` and runs `directus start` in a network namespace with only `lo`,
reaching PostgreSQL through the lab's Unix socket. gate0 runs with the stock-Directus example
inventory (inventories/directus/): its profile has no outbox, lease, seed, coverage or candidates.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import directus_lab as dx
import pytest
from conftest import Lab, run_playbook

pytestmark = pytest.mark.directus

CLONE = dx.PREFIX + "20260602"
SKIPPED = {"prod.baseline": "skipped: gate0_production_baseline is empty",
           "clone.outbox_guard": "the profile has no outbox",
           "clone.worker_lease": "the profile has no lease",
           "clone.seed_present": "the profile has no seed", "clone.coverage": "the profile has no coverage",
           "clone.candidate_state": "the profile has no candidates"}
DIRECTUS_TABLES = ("directus_flows", "directus_operations", "directus_webhooks", "directus_extensions")


@pytest.fixture(scope="module")
def directus(lab: Lab) -> Iterator[Path]:
    """Directus installed (cached) and bootstrapped into production `dx_app`; dropped at the end."""
    if os.geteuid() != 0:
        pytest.skip("the real-Directus tests run as root (Directus runs in a network namespace with only lo)")
    start = time.monotonic()
    home = dx.install()
    print(f"\ndirectus: install/cache check {time.monotonic() - start:.1f} s ({home})")
    took = dx.bootstrap(lab, home)
    print(f"directus: bootstrap of {dx.PROD} {took:.1f} s")
    yield home
    for db in (CLONE, dx.PROD):
        dx.drop(lab, db)
    (lab.dir / "dx_app.env").unlink(missing_ok=True)


def bind_app(lab: Lab, database: str) -> None:
    """The app's own binding (its .env), as the inventory's gate0_clone_app_env_file reads it."""
    (lab.dir / "dx_app.env").write_text(f"DB_CLIENT=pg\nDB_DATABASE={database}\nDB_USER=directus\n")


def gate(tmp_path: Path) -> dict[str, Any]:
    """gate0 with the stock-Directus example inventory; rc, checks by id, the run's seconds."""
    report_dir = tmp_path / "reports"
    start = time.monotonic()
    proc = run_playbook("-i", "inventories/directus", "playbooks/gate0.yml", "-e",
                        f"gate0_report_dir={report_dir}", timeout=300,
                        env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / ".facts")})
    took = time.monotonic() - start
    files = sorted(report_dir.glob("gate0-*.json"))
    assert len(files) == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(files[0].read_text())
    print(f"directus: gate0 {report['verdict']} in {took:.1f} s")
    return {"rc": proc.returncode, "checks": {c["id"]: c for c in report["checks"]}, "report": report,
            "stdout": proc.stdout}


def not_passing(result: dict[str, Any]) -> dict[str, str]:
    return {cid: c["message"] for cid, c in result["checks"].items() if c["status"] != "pass"}


def test_lab_directus_tables_are_directus_11s(lab: Lab, directus: Path) -> None:
    """The lab's directus_* tables have the real bootstrap's columns (type, length, NOT NULL, default)
    and keys (the real ones' references to directus_users left out: the lab has no users table)."""
    columns = ("SELECT table_name::text, column_name::text, data_type::text, character_maximum_length, "
               "is_nullable::text, column_default::text FROM information_schema.columns "
               "WHERE table_schema = 'public' AND table_name IN %s ORDER BY 1, 2")
    keys = ("SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid::regclass::text IN %s "
            "AND pg_get_constraintdef(oid) NOT LIKE '%%directus_users%%' ORDER BY 1, 2")

    def norm(rows: list[tuple]) -> list[tuple]:
        # A serial default names its sequence (the same name in both); nothing else is normalised.
        return [(*r[:-1], r[-1].split("(")[0] if "nextval" in (r[-1] or "") else r[-1]) for r in rows]

    real = norm(lab.query(dx.PROD, columns, (DIRECTUS_TABLES,)))
    assert real, "the bootstrap created no directus_* tables"
    assert norm(lab.query("directus", columns, (DIRECTUS_TABLES,))) == real
    assert lab.query("directus", keys, (DIRECTUS_TABLES,)) == lab.query(dx.PROD, keys, (DIRECTUS_TABLES,))


def test_stock_directus_passes_with_the_directus_profile(lab: Lab, directus: Path, tmp_path: Path) -> None:
    dx.make_clone(lab, CLONE)
    bind_app(lab, dx.PROD)
    result = gate(tmp_path)
    assert result["rc"] == 0, not_passing(result)
    assert result["report"]["verdict"] == "PASS"
    assert not_passing(result) == SKIPPED
    assert {result["checks"][c]["status"] for c in SKIPPED} == {"skipped"}
    assert result["checks"]["clone.dispatch_disabled"]["message"].startswith(
        "directus_flows has no rows in scope (the profile accepts an empty registry)")


def test_app_on_production_and_clone_flows_inactive_pass(lab: Lab, directus: Path, tmp_path: Path) -> None:
    """Production runs an active flow (Directus bound to it, running); the clone's copy is set inactive."""
    dx.add_flow(lab, dx.PROD, "Ping out")
    try:
        dx.make_clone(lab, CLONE)
        lab.execute(CLONE, "UPDATE directus_flows SET status = 'inactive'")
        bind_app(lab, dx.PROD)
        start = time.monotonic()
        app = dx.App(directus, dx.app_env(lab, dx.PROD)).start()
        print(f"directus: start on {dx.PROD} {time.monotonic() - start:.1f} s")
        try:
            result = gate(tmp_path)
        finally:
            app.stop()
        assert result["rc"] == 0, not_passing(result)
        assert not_passing(result) == SKIPPED
        assert result["checks"]["clone.dispatch_disabled"]["message"].startswith(
            "1 rows of directus_flows in scope all inactive; none active in directus_extensions 0 rows, "
            "directus_operations 1 rows, directus_webhooks 0 rows")
    finally:
        lab.execute(dx.PROD, "DELETE FROM directus_flows WHERE id = %s", (dx.FLOW_ID,))


def test_app_bound_to_the_clone_with_an_active_flow_fails_naming_it(lab: Lab, directus: Path,
                                                                     tmp_path: Path) -> None:
    """Directus started on the clone (its .env says so) runs an active schedule flow with a request."""
    dx.make_clone(lab, CLONE)
    dx.add_flow(lab, CLONE, "Ping out")
    bind_app(lab, CLONE)
    env = dx.app_env(lab, CLONE, DB_USER="workflow_admin", DB_PASSWORD=lab.password("workflow_admin"))
    start = time.monotonic()
    app = dx.App(directus, env).start()
    print(f"directus: start on {CLONE} {time.monotonic() - start:.1f} s")
    try:
        result = gate(tmp_path)
    finally:
        app.stop()
    assert result["rc"] != 0
    failed = {cid for cid, c in result["checks"].items() if c["status"] == "fail"}
    for cid in sorted(failed):
        print(f"directus: {cid}: {result['checks'][cid]['message']}")
    assert {"clone.dispatch_disabled", "clone.app_binding", "clone.foreign_sessions"} <= failed
    assert result["checks"]["clone.dispatch_disabled"]["message"] == (
        "1 active in directus_flows: 'Ping out' (trigger=schedule); "
        "1 active in directus_operations: 'ping_out' (type=request, in directus_flows 'Ping out')")
    assert f"DB_DATABASE={CLONE}" in result["checks"]["clone.app_binding"]["message"]
    assert "gate0 FAIL" in result["stdout"] or "clone.dispatch_disabled" in result["stdout"]


def _sessions_on(lab: Lab, database: str) -> int:
    """Backends on `database` now, read from another database (this look opens none there)."""
    return int(lab.scalar("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                          (database,)))


def test_idle_app_on_the_clone_is_refused_by_require(lab: Lab, directus: Path, tmp_path: Path) -> None:
    """The issue's case: a second Directus started on the clone with DB_POOL__MIN=0 after the gate; idle,
    it holds no connection (pg_stat_activity shows nobody), yet it came: clone_apply.yml's require step
    refuses from the clone's session counter, and nothing is run."""
    dx.make_clone(lab, CLONE)
    bind_app(lab, dx.PROD)
    result = gate(tmp_path)
    assert result["rc"] == 0, not_passing(result)
    env = dx.app_env(lab, CLONE, DB_USER="workflow_admin", DB_PASSWORD=lab.password("workflow_admin"),
                     DB_POOL__MIN="0", DB_POOL__IDLE_TIMEOUT_MILLIS="1000")
    start = time.monotonic()
    app = dx.App(directus, env).start()
    print(f"directus: start on {CLONE} (pool min 0) {time.monotonic() - start:.1f} s")
    try:
        deadline = time.monotonic() + 60
        while _sessions_on(lab, CLONE) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _sessions_on(lab, CLONE) == 0, "Directus kept a connection to the clone"
        print(f"directus: idle, no connection to {CLONE} after {time.monotonic() - start:.1f} s")
        apply = json.dumps({"gate0_apply_mode": "commit",
                            "gate0_apply_statements": ["CREATE TABLE gate0_dx_probe (id int)"]})
        proc = run_playbook("-i", "inventories/directus", "playbooks/clone_apply.yml", "-e", apply,
            env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / ".facts")}, timeout=300)
    finally:
        app.stop()
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, out[-3000:]
    needle = "gate0 required: the clone changed since the gate fails: clone.foreign_sessions: "
    assert needle in out, out[-3000:]
    assert "session(s) established on the clone since gate0 run" in out, out[-3000:]
    print(f"directus: require refused: {out[out.index(needle):][:260]}")
    assert lab.scalar(CLONE, "SELECT to_regclass('gate0_dx_probe') IS NULL")
