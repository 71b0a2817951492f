"""Every bad day ends in a clean FAIL: the real playbook on the real lab, under injected faults.

For each case: `ansible-playbook playbooks/gate0.yml` exits non-zero; a failed check's one-line
message names the cause; no traceback; the run ends within its timeouts plus a margin; and both
databases are unchanged afterwards (row counts, n_tup_ins/upd/del, relfilenodes, and the
database-wide tuple write counters: compared, not assumed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLONE_DB, PROD_DB, Lab
from faultlib import (
    Terminator,
    blackhole_address,
    closed_port,
    db_state,
    diff_state,
    exclusive_lock,
    flush_stats,
    lab_sh,
    server_down,
    silent_listener,
    stop_server_when_waiting,
)
from gaterun import FAST_TIMEOUTS, assert_clean_fail, require_gate, run_gate

CONNECT_S = FAST_TIMEOUTS["gate0_connect_timeout"]
STATEMENT_S = FAST_TIMEOUTS["gate0_statement_timeout"] / 1000
LOCK_S = FAST_TIMEOUTS["gate0_lock_timeout"] / 1000
# Connections a run may open in the worst case (production channel, its clone probe, clone, disk):
# each may wait its connect timeout. Plus a margin for Ansible itself on a busy 2-core machine.
MAX_CONNECTIONS = 6
MARGIN_S = 15.0


@pytest.fixture(scope="module")
def pass_wall(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> float:
    """A PASS run's wall time on this machine now: the base of every time bound."""
    require_gate()
    lab.reset()
    run = run_gate(tmp_path_factory.mktemp("pass"))
    assert run.rc == 0, f"gate0 does not PASS on the seed lab:\n{run.output[-3000:]}"
    assert "Traceback" not in run.output
    return run.wall


def bound(pass_wall: float, connects: int = 0, statements: int = 0, locks: int = 0) -> float:
    """A PASS run's time (x1.5: the machine is shared) plus every timeout the fault can cost."""
    return 1.5 * pass_wall + connects * CONNECT_S + statements * STATEMENT_S + locks * LOCK_S + MARGIN_S


@pytest.fixture
def unchanged(fresh_lab: Lab) -> Iterator[list]:
    """Snapshot both databases (after the test's setup calls `take()`), compare after the run."""
    snaps: list = []

    def take() -> None:
        for db in (PROD_DB, CLONE_DB):
            flush_stats(fresh_lab, db)
        snaps.append({db: db_state(fresh_lab, db) for db in (PROD_DB, CLONE_DB)})

    def check() -> None:
        assert snaps, "the test did not snapshot the databases"
        for db in (PROD_DB, CLONE_DB):
            flush_stats(fresh_lab, db)
        after = {db: db_state(fresh_lab, db) for db in (PROD_DB, CLONE_DB)}
        for db in (PROD_DB, CLONE_DB):
            assert diff_state(snaps[0][db], after[db]) == [], f"{db} changed"

    yield [take, check]


# --- the server and the network -----------------------------------------------------------------

def test_server_down_before_the_run(lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    take, check = unchanged
    take()
    with server_down():
        run = run_gate(tmp_path)
    assert_clean_fail(run, "prod.", r"[Cc]onnection refused|could not connect|No such file",
                      bound(pass_wall, connects=MAX_CONNECTIONS))
    assert_clean_fail(run, "clone.", r"[Cc]onnection refused|could not connect|No such file",
                      bound(pass_wall, connects=MAX_CONNECTIONS))
    check()


def test_server_stopped_between_production_and_clone_gates(lab: Lab, pass_wall: float, unchanged,
                                                           tmp_path: Path) -> None:
    """gate0_observe fingerprints production while it observes the clone, in one module call: the
    server is stopped once the production part's transaction is done and the clone part is certainly
    under way (blocked on a lock)."""
    take, check = unchanged
    take()
    waits = {"gate0_lock_timeout": 30000, "gate0_statement_timeout": 30000}
    try:
        with exclusive_lock(lab, CLONE_DB, "event_type_registry"), \
                stop_server_when_waiting(lab, CLONE_DB, done_on=PROD_DB) as stopped:
            run = run_gate(tmp_path, waits)
    finally:
        lab_sh("up")
    assert stopped, "the watcher never saw the clone part waiting"
    # The production gate ran on a live server; the clone gate found it gone.
    assert_clean_fail(run, "clone.",
                      r"terminat|server closed the connection|[Cc]onnection refused|could not connect",
                      bound(pass_wall, connects=MAX_CONNECTIONS))
    assert run.status("prod.read_only_session") == "pass", run.report
    assert run.status("prod.baseline") == "pass", run.report
    check()


def test_backend_terminated_during_the_fingerprint(fresh_lab: Lab, pass_wall: float, unchanged,
                                                   tmp_path: Path) -> None:
    """Another session kills our backend while it waits on a lock in the middle of the fingerprint."""
    take, check = unchanged
    take()
    with exclusive_lock(fresh_lab, PROD_DB, "dot_tools"), Terminator(fresh_lab, PROD_DB, timeout=60) as t:
        run = run_gate(tmp_path, {"gate0_lock_timeout": 30000})
    assert t.terminated, "the watcher never saw gate0's backend waiting"
    msg = assert_clean_fail(run, "prod.", r"terminat|server closed the connection|connection already closed",
                            bound(pass_wall, locks=1))
    assert "30000" not in msg
    check()


def test_wrong_password(lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    take, check = unchanged
    take()
    run = run_gate(tmp_path, {"gate0_production_login_password": "Wr0ng-gate0-fault-secret"})
    assert_clean_fail(run, "prod.", r"password authentication failed", bound(pass_wall))
    assert "Wr0ng-gate0-fault-secret" not in run.output
    check()


def test_closed_port(lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    take, check = unchanged
    take()
    port = closed_port()
    run = run_gate(tmp_path, {"gate0_production_login_port": port, "gate0_clone_login_port": port})
    assert_clean_fail(run, "prod.", r"[Cc]onnection refused", bound(pass_wall))
    assert_clean_fail(run, "clone.", r"[Cc]onnection refused", bound(pass_wall))
    check()


def test_server_that_never_answers(lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    """TCP accepted, no PostgreSQL startup reply: every connection ends at connect_timeout."""
    take, check = unchanged
    take()
    with silent_listener() as port:
        run = run_gate(tmp_path, {"gate0_production_login_port": port})
    assert_clean_fail(run, "prod.", r"timeout expired", bound(pass_wall, connects=MAX_CONNECTIONS))
    check()


def test_unreachable_address_in_a_namespace(lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    """An address that swallows SYNs (inside a netns we create; the /24 is unreachable beyond it)."""
    take, check = unchanged
    take()
    with blackhole_address(lab.port) as addr:
        if addr is None:
            pytest.skip("cannot create a network namespace here (needs CAP_NET_ADMIN)")
        run = run_gate(tmp_path, {"gate0_production_login_host": addr})
    assert_clean_fail(run, "prod.", r"timeout expired", bound(pass_wall, connects=MAX_CONNECTIONS))
    check()


def test_ssl_required_against_a_server_without_tls(lab: Lab, pass_wall: float, unchanged,
                                                   tmp_path: Path) -> None:
    take, check = unchanged
    take()
    run = run_gate(tmp_path, {"gate0_ssl_mode": "require"})
    assert_clean_fail(run, "prod.", r"does not support SSL", bound(pass_wall))
    assert_clean_fail(run, "clone.", r"does not support SSL", bound(pass_wall))
    check()


# --- targets --------------------------------------------------------------------------------------

def test_target_behind_an_exclusive_lock(fresh_lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    take, check = unchanged
    take()
    with exclusive_lock(fresh_lab, PROD_DB, "dot_tools"):
        run = run_gate(tmp_path)
    msg = assert_clean_fail(run, "prod.", r"lock timeout", bound(pass_wall, locks=2))
    assert "dot_tools" in msg or "dot_tools" in str(run.failures)
    check()


def test_target_slower_than_the_statement_timeout(fresh_lab: Lab, pass_wall: float, unchanged,
                                                  tmp_path: Path) -> None:
    """The gap target's view sleeps 3x the statement timeout per row."""
    fresh_lab.execute(PROD_DB, f"""
        CREATE OR REPLACE VIEW v_object_owner_gap AS
        SELECT i.object_id, i.object_key, i.object_kind, s.scope_code
        FROM governance_object_inventory AS i CROSS JOIN governance_scopes AS s
        WHERE pg_sleep({3 * STATEMENT_S}) IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM governance_object_ownership AS o
            WHERE o.object_kind = i.object_kind AND o.scope_code = s.scope_code)""")
    take, check = unchanged
    take()
    run = run_gate(tmp_path)
    assert_clean_fail(run, "prod.", r"statement timeout", bound(pass_wall, statements=2))
    check()


def test_target_dropped(fresh_lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    fresh_lab.execute(PROD_DB, "DROP TABLE dot_tools")
    take, check = unchanged
    take()
    run = run_gate(tmp_path)
    missing = r"dot_tools.*(does not exist|missing)|(does not exist|missing).*dot_tools"
    assert_clean_fail(run, "prod.", missing, bound(pass_wall))
    check()


def test_read_only_role_lacks_select(fresh_lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    fresh_lab.execute(PROD_DB, "REVOKE SELECT ON dot_tools FROM context_pack_readonly")
    take, check = unchanged
    take()
    run = run_gate(tmp_path)
    assert_clean_fail(run, "prod.", r"permission denied.*dot_tools", bound(pass_wall))
    check()


def test_view_that_errors(fresh_lab: Lab, pass_wall: float, unchanged, tmp_path: Path) -> None:
    fresh_lab.execute(PROD_DB, """
        CREATE OR REPLACE VIEW v_object_owner_gap AS
        SELECT i.object_id, i.object_key, i.object_kind, s.scope_code
        FROM governance_object_inventory AS i CROSS JOIN governance_scopes AS s
        WHERE i.object_id / (i.object_id - i.object_id) > 0""")
    take, check = unchanged
    take()
    run = run_gate(tmp_path)
    assert_clean_fail(run, "prod.", r"division by zero", bound(pass_wall))
    check()


def test_fault_suite_leaves_no_session_behind(lab: Lab) -> None:
    time.sleep(0.2)
    rows = lab.query("postgres", "SELECT pid, datname, application_name, state FROM pg_stat_activity "
                                 "WHERE datname IN (%s, %s) AND pid <> pg_backend_pid()", (PROD_DB, CLONE_DB))
    assert rows == []



def test_one_line_unwraps_nested_server_severity() -> None:
    from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import one_line

    exc = Exception('connection to server at "127.0.0.1", port 1 failed: FATAL:  password authentication '
                    'failed for user "x"\n')
    assert one_line(exc) == ('connection to server at "127.0.0.1", port 1 failed: password authentication '
                             'failed for user "x"')
    assert one_line(Exception("ERROR:  canceling statement due to lock timeout\nLINE 1: SELECT\n")) == (
        "canceling statement due to lock timeout")
