"""The content hash over several connections on one exported snapshot (pg_fingerprint's hash workers).

Module level, on the real lab: main() in-process with patched args. The digest and every hash are the
same with one connection and with several, a row change changes them alike, every worker proves its
read-only session, and a worker that fails (refused, terminated) is one line naming the target and the
worker, with every connection closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import test_prod as prod_tests
from conftest import PROD_DB, Lab

RO = "context_pack_readonly"
TABLE = "gate0_hash_workers"
ROWS = 120_000
ONLY_TABLE = {"extra": {"relation": TABLE, "hash": True}}

# The production module tests' own helpers: the module's arguments on the lab, main() in-process.
fingerprint = prod_tests.pg_fingerprint.fingerprint
DEFAULTS = prod_tests.DEFAULTS
run_module = prod_tests.run_module


def module_args(lab: Lab, **over: object) -> dict:
    return prod_tests.module_args(lab, **{
        "targets": {**DEFAULTS["gate0_production_targets"], "extra": {"relation": TABLE, "hash": True}},
        "baseline": {}, "hash_chunk_rows": 1000, **over})


def gate0_sessions(lab: Lab) -> int:
    return int(lab.scalar(PROD_DB, "SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                                   "AND application_name = 'gate0'", (RO,)))


@pytest.fixture
def big_table(fresh_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """A table worth several workers (one per 20,000 rows here), readable by the production role."""
    monkeypatch.setattr(fingerprint, "HASH_ROWS_PER_WORKER", 20_000)
    fresh_lab.execute(PROD_DB, f"CREATE TABLE {TABLE} (id int PRIMARY KEY, body text); INSERT INTO {TABLE} "
                               f"SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) AS g; "
                               f"ANALYZE {TABLE}; GRANT SELECT ON {TABLE} TO {RO}")
    try:
        yield fresh_lab
    finally:
        fresh_lab.execute(PROD_DB, f"DROP TABLE IF EXISTS {TABLE}")
        fresh_lab.execute(PROD_DB, f"ALTER ROLE {RO} CONNECTION LIMIT -1")


def test_digest_is_the_same_with_one_and_several_workers(big_table: Lab,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    def take(workers: int) -> dict:
        result = run_module(module_args(big_table, hash_workers=workers), capsys)
        assert not result.get("failed"), result.get("msg")
        return result

    one, three = take(1), take(3)
    assert one["timings"]["hash_connections"] == 1 and "hash_workers" not in one["session"]
    assert three["timings"]["hash_connections"] == 3
    workers = three["session"]["hash_workers"]
    assert [w["worker"] for w in workers] == [2, 3]
    for w in workers:  # each really hashed, in a proven read-only session, and rolled back
        assert w["ranges"] >= 1 and w["settings_ok"] and w["read_only_proof_ok"], w
        assert w["xid_assigned"] is None and w["rolled_back"] is True, w
    assert three["session"]["wrote_nothing"] is True
    assert three["hashes"] == one["hashes"] and three["digest"] == one["digest"]
    assert gate0_sessions(big_table) == 0

    big_table.execute(PROD_DB, f"UPDATE {TABLE} SET body = body || 'x' WHERE id = {ROWS // 2}")
    one_after, three_after = take(1), take(3)
    assert one_after["counts"] == one["counts"]
    assert one_after["hashes"]["extra"] != one["hashes"]["extra"] and one_after["digest"] != one["digest"]
    assert three_after["hashes"] == one_after["hashes"] and three_after["digest"] == one_after["digest"]


def test_hash_workers_out_of_range_refused_before_connecting(lab: Lab,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    top = fingerprint.HASH_WORKERS_MAX
    for bad in (0, top + 1):
        result = run_module(module_args(lab, login_port=1, hash_workers=bad), capsys)
        assert result["failed"] and result["failed_stage"] == "options", result
        assert f"hash_workers must be a number in 1..{top}, got {bad}" in result["msg"]


def test_a_refused_worker_is_one_line_naming_the_target(big_table: Lab,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The role may hold one connection: the worker's is refused, the fingerprint fails in one line."""
    big_table.execute(PROD_DB, f"ALTER ROLE {RO} CONNECTION LIMIT 1")
    result = run_module(module_args(big_table, hash_workers=2, targets=ONLY_TABLE), capsys)
    assert result["failed"] and result["failed_stage"] == "targets", result
    msg = result["msg"]
    assert "\n" not in msg and "Traceback" not in msg
    assert "target 'extra'" in msg and "hash worker 2 of 2: connecting to" in msg, msg
    assert "too many connections" in msg, msg
    assert "gate0_production_hash_workers: 1 hashes on the fingerprint's own connection" in msg, msg
    assert result["session"]["rolled_back"] is True and "digest" not in result
    assert gate0_sessions(big_table) == 0


def test_a_terminated_worker_is_one_line_naming_the_target(big_table: Lab,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A worker's backend is terminated while the leader's lives: one line, every connection closed."""
    killed: list[int] = []
    stop = threading.Event()

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            # The worker is the newer of the role's two gate0 sessions on production.
            rows = big_table.query(PROD_DB, "SELECT pid FROM pg_stat_activity WHERE usename = %s "
                                            "AND application_name = 'gate0' AND datname = %s "
                                            "ORDER BY backend_start", (RO, PROD_DB))
            if len(rows) >= 2:
                big_table.execute(PROD_DB, "SELECT pg_terminate_backend(%s)", (rows[-1][0],))
                killed.append(rows[-1][0])
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=kill_the_worker, daemon=True)
    watcher.start()
    try:
        # Many small ranges (the worker lives long enough to be found), on two connections.
        result = run_module(module_args(big_table, hash_workers=2, targets=ONLY_TABLE), capsys)
    finally:
        stop.set()
        watcher.join(timeout=35)
    assert killed, "the worker was never seen"
    assert result["failed"] and result["failed_stage"] == "targets", result
    msg = result["msg"]
    assert "\n" not in msg and "Traceback" not in msg
    assert "hash worker 2 of 2: " in msg and "target 'extra'" in msg, msg
    assert "digest" not in result
    deadline = time.monotonic() + 5
    while gate0_sessions(big_table) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gate0_sessions(big_table) == 0
