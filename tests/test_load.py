"""gate0 against a production under concurrent write load (loopback, bounded in time and count).

- pgbench writes tables outside the targets: gate0 still PASSes, within its timeouts, with the same
  digest as on a quiet production, and every target table's write counters stay untouched.
- a writer thread inserts into two tables marked `volatile` as targets, one row into each per
  statement: the fingerprint reports both (equal counts: one snapshot for every count, although the
  writer ran between them) and leaves them out of the digest and the unchanged proof.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import PROD_DB, REPO, Lab
from faultlib import db_state, flush_stats
from gaterun import GateRun, require_gate, run_gate

LOAD_SECONDS = 90          # hard bound on any load generator
WRITER_MAX_ROWS = 20000    # hard bound on the writer thread
PGBENCH_RATE = 150         # transactions per second (2 shared cores: keep the machine usable)
TARGET_TABLES = [
    "governance_object_ownership", "governance_object_inventory", "governance_object_containment",
    "governance_scopes", "governance_ruleset", "governance_scan_run", "governance_candidate_state",
    "governance_candidate_object", "governance_scan_cursor", "event_outbox", "os_proposal_approvals",
    "system_issues", "dot_tools"]
PGBENCH_SCRIPT = """\\set aid random(1, 1000)
INSERT INTO gate0_load_events (account, delta, note) VALUES (:aid, 1, 'pgbench');
UPDATE gate0_load_accounts SET balance = balance + 1 WHERE aid = :aid;
DELETE FROM gate0_load_events WHERE id IN (SELECT id FROM gate0_load_events WHERE account = :aid LIMIT 1);
"""


def default_targets() -> dict:
    return yaml.safe_load((REPO / "roles/gate0/defaults/main.yml").read_text())["gate0_production_targets"]


def production_section(run: GateRun) -> dict:
    assert run.report is not None, run.output[-2000:]
    return run.report.get("production") or {}


def find_counts(section: dict) -> dict:
    """The reported counts, wherever the report keeps them (production.counts or a fingerprint)."""
    for key in ("counts", "fingerprint"):
        value = section.get(key)
        if isinstance(value, dict) and "counts" in value:
            return value["counts"]
        if key == "counts" and isinstance(value, dict):
            return value
    raise AssertionError(f"no counts in the report's production section: {sorted(section)}")


@pytest.fixture
def load_tables(fresh_lab: Lab) -> Iterator[Lab]:
    require_gate()
    fresh_lab.execute(PROD_DB, """
        CREATE TABLE gate0_load_accounts (aid int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
        INSERT INTO gate0_load_accounts (aid) SELECT g FROM generate_series(1, 1000) AS g;
        CREATE TABLE gate0_load_events (id bigserial PRIMARY KEY, account int NOT NULL, delta int NOT NULL,
                                        note text, at timestamptz NOT NULL DEFAULT clock_timestamp());
        CREATE TABLE gate0_load_a (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
        CREATE TABLE gate0_load_b (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp());
        CREATE SEQUENCE gate0_load_seq;
        GRANT SELECT ON gate0_load_a, gate0_load_b TO context_pack_readonly;
        ANALYZE;""")
    yield fresh_lab


class Pgbench:
    """pgbench against production over the socket, bounded by -T; stopped (SIGINT) when done."""

    def __init__(self, lab: Lab, script: Path) -> None:
        self.proc = subprocess.Popen(
            ["pgbench", "-n", "-h", str(lab.dir), "-p", str(lab.port), "-U", "postgres", "-c", "2", "-j", "1",
             "-T", str(LOAD_SECONDS), "-R", str(PGBENCH_RATE), "-f", str(script), PROD_DB],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=5)
        return out


class PairWriter(threading.Thread):
    """Inserts one row into gate0_load_a and one into gate0_load_b per statement (atomic), as fast as
    a short sleep allows, until stopped, WRITER_MAX_ROWS or LOAD_SECONDS."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(name="gate0-pair-writer", daemon=True)
        self.lab = lab
        self.rows = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        conn = self.lab.connect(PROD_DB)
        deadline = time.monotonic() + LOAD_SECONDS
        try:
            with conn.cursor() as cur:
                while not self.stop_event.is_set() and self.rows < WRITER_MAX_ROWS \
                        and time.monotonic() < deadline:
                    cur.execute("WITH a AS (INSERT INTO gate0_load_a (id) VALUES (nextval('gate0_load_seq')) "
                                "RETURNING id) INSERT INTO gate0_load_b (id) SELECT id FROM a")
                    self.rows += 1
                    time.sleep(0.003)
        finally:
            conn.close()

    def stop(self) -> int:
        self.stop_event.set()
        self.join(timeout=10)
        return self.rows


def target_state(lab: Lab) -> dict:
    flush_stats(lab, PROD_DB)
    tables = db_state(lab, PROD_DB)["tables"]
    return {t: tables[t] for t in TARGET_TABLES}


def test_gate_passes_under_pgbench_load_outside_the_targets(load_tables: Lab, tmp_path: Path) -> None:
    lab = load_tables
    quiet = run_gate(tmp_path / "quiet", fast=False)
    assert quiet.rc == 0, quiet.output[-3000:]
    before = target_state(lab)
    script = tmp_path / "load.sql"
    script.write_text(PGBENCH_SCRIPT)
    written_before = lab.scalar(PROD_DB, "SELECT n_tup_ins FROM pg_stat_user_tables "
                                         "WHERE relname = 'gate0_load_events'")
    bench = Pgbench(lab, script)
    try:
        time.sleep(1.0)  # the load is running before the gate starts
        loaded = run_gate(tmp_path / "loaded", fast=False)
    finally:
        out = bench.stop()
    assert "Traceback" not in loaded.output
    assert loaded.rc == 0, f"gate0 failed under load outside its targets:\n{loaded.output[-3000:]}\n{out}"
    # Within the timeouts: no statement waited on the writers (different tables, no locks).
    assert loaded.wall < quiet.wall + 30, (loaded.wall, quiet.wall)
    # The load really wrote while the gate ran ...
    flush_stats(lab, PROD_DB)
    written_after = lab.scalar(PROD_DB, "SELECT n_tup_ins FROM pg_stat_user_tables "
                                        "WHERE relname = 'gate0_load_events'")
    assert written_after - written_before > 100, out
    # ... yet the targets prove unchanged: same digest as on a quiet production, counters untouched.
    assert production_section(loaded).get("digest") == production_section(quiet).get("digest") is not None
    assert target_state(lab) == before


def test_volatile_targets_reported_but_excluded_under_writes(load_tables: Lab, tmp_path: Path) -> None:
    lab = load_tables
    targets = default_targets()
    # load_a first and load_b last: every other target (hashes included) is counted between them.
    with_volatile = {"load_a": {"relation": "gate0_load_a", "volatile": True}, **targets,
                     "load_b": {"relation": "gate0_load_b", "volatile": True}}
    quiet = run_gate(tmp_path / "quiet", {"gate0_production_targets": with_volatile}, fast=False)
    assert quiet.rc == 0, quiet.output[-3000:]
    writer = PairWriter(lab)
    writer.start()
    try:
        deadline = time.monotonic() + 10
        while writer.rows < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        run = run_gate(tmp_path / "loaded", {"gate0_production_targets": with_volatile}, fast=False)
        rows_during = writer.rows
    finally:
        rows = writer.stop()
    assert "Traceback" not in run.output
    assert run.rc == 0, run.output[-3000:]
    counts = find_counts(production_section(run))
    # One snapshot: the pair is equal although the writer committed pairs during the whole run.
    assert counts["load_a"] == counts["load_b"] > 0, counts
    assert lab.scalar(PROD_DB, "SELECT count(*) FROM gate0_load_a") == rows > counts["load_a"], (rows, counts)
    assert rows_during > 50
    # Reported as volatile, and left out of the digest: equal to the digest before the writes began.
    section = production_section(run)
    volatile = section.get("volatile") or ((run.fact or {}).get("production") or {}).get("volatile") or []
    assert set(volatile) >= {"load_a", "load_b"}, (section, run.fact)
    assert section.get("digest") == production_section(quiet).get("digest") is not None
