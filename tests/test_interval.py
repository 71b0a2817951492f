"""The clone stayed quiet over the interval, not only at an instant (pg_stat_database.sessions).

An app that connects, works and disconnects between two of gate0's looks (a pool that closes idle
connections) is never in pg_stat_activity when gate0 looks. The clone's session counter is: the gate
keeps it, and require (before a mutation), clone_apply's own clone_sql, the exit and the next gate
prove that nobody but gate0 connected since. On the real lab, every major (tests/matrix_focus.txt).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from ansible_collections.gate0.core.plugins.module_utils.gate0_interval import (
    anchor,
    interval_problem,
    same_clone,
    was_reset,
)
from conftest import CLONE_DB, Lab, run_playbook
from gaterun import FAST_TIMEOUTS, run_gate

IDENT = {"database": CLONE_DB, "database_oid": 16384}
TABLE = "gate0_interval_probe"


def test_unit_the_interval_rule() -> None:
    kept = anchor(IDENT, {"sessions": 10, "stats_reset": None}, 1, "T0", "gate0 run r")
    assert kept == {**IDENT, "system_identifier": None, "sessions": 10, "stats_reset": None, "own_after": 1,
                    "at": "T0", "by": "gate0 run r"}
    # the disk part's session (own_after) and this connection's own: quiet
    assert interval_problem(kept, {"sessions": 12, "stats_reset": None}) is None
    one_more = interval_problem(kept, {"sessions": 13, "stats_reset": None})
    assert one_more.startswith("1 session(s) established on the clone since gate0 run r at T0 besides")
    assert "10 -> 13, 2 of them gate0's" in one_more
    reset = interval_problem(kept, {"sessions": 40, "stats_reset": "2026-11-26T10:00:00.000000Z"})
    assert reset.startswith("cannot prove") and "statistics were reset" in reset
    assert "cannot prove" in interval_problem(kept, {"sessions": 3, "stats_reset": None})
    assert "fewer sessions than gate0 opened" in interval_problem(kept, {"sessions": 11, "stats_reset": None})
    assert "no earlier session counter" in interval_problem(None, {"sessions": 1, "stats_reset": None})
    assert "no earlier session counter" in interval_problem({}, {"sessions": 1, "stats_reset": None})
    assert "not read" in interval_problem(kept, None)
    assert "not read" in interval_problem(kept, {"sessions": None, "stats_reset": None})
    assert anchor(IDENT, None, 0, "T", "x") is None
    assert anchor(IDENT, {"sessions": None}, 0, "T", "x") is None
    assert same_clone(kept, IDENT)
    assert not same_clone(kept, {**IDENT, "database_oid": 16385})  # recreated since: no history
    assert not same_clone(kept, {**IDENT, "database": "other"})
    assert not same_clone({**kept, "database_oid": None}, IDENT)
    # a cluster initialised again (same oids, another system identifier)
    assert not same_clone({**kept, "system_identifier": "1"}, {**IDENT, "system_identifier": "2"})
    assert same_clone({**kept, "system_identifier": "1"}, IDENT)  # not readable by this login: oid only
    assert was_reset(kept, {"sessions": 40, "stats_reset": "2026-11-26T10:00:00.000000Z"})
    assert was_reset(kept, {"sessions": 3, "stats_reset": None})
    assert not was_reset(kept, {"sessions": 13, "stats_reset": None})


def _visit(lab: Lab) -> None:
    """An app's visit: connect to the clone, do a little, disconnect - nothing left to see after."""
    conn = lab.connect(CLONE_DB, user="workflow_admin")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_class")
    conn.close()


def _apply(facts: Path, statement: str, mode: str = "commit") -> str:
    """clone_apply.yml with the gate's fact cache; returns its output, rc in the first line."""
    r = run_playbook("playbooks/clone_apply.yml", "-e", json.dumps(
        {**FAST_TIMEOUTS, "gate0_apply_statements": [statement], "gate0_apply_mode": mode}),
        env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts)})
    return f"rc={r.returncode}\n" + " ".join((r.stdout + r.stderr).split())


def _exit(facts: Path) -> str:
    r = run_playbook("playbooks/gate0_exit.yml", "-e", json.dumps(FAST_TIMEOUTS),
                     env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts)})
    return f"rc={r.returncode}\n" + " ".join((r.stdout + r.stderr).split())


def _table_exists(lab: Lab, name: str) -> bool:
    return bool(lab.scalar(CLONE_DB, "SELECT to_regclass(%s) IS NOT NULL", (name,)))


def _foreign_message(run) -> str:
    return next(c["message"] for c in run.report["checks"] if c["id"] == "clone.foreign_sessions")


def test_quiet_clone_gate_apply_apply_exit_pass(fresh_lab: Lab, tmp_path: Path) -> None:
    gate = run_gate(tmp_path)
    assert gate.rc == 0, gate.output[-3000:]
    assert _foreign_message(gate).endswith("no history: instant only")
    facts = tmp_path / ".facts"
    out = _apply(facts, f"CREATE TABLE {TABLE}_a (id int)")
    assert out.startswith("rc=0"), out[-3000:]
    out = _apply(facts, f"CREATE TABLE {TABLE}_b (id int)", mode="rollback")  # the chain goes on
    assert out.startswith("rc=0"), out[-3000:]
    out = _exit(facts)
    assert out.startswith("rc=0"), out[-3000:]
    assert "gate0 exit PASS" in out and "quiet since clone_apply" in out, out[-3000:]
    # The next gate compares with the exit's reading: nobody came in between.
    again = run_gate(tmp_path)
    assert again.rc == 0, again.output[-3000:]
    assert "quiet since gate0 exit at" in _foreign_message(again)
    assert _table_exists(fresh_lab, f"{TABLE}_a") and not _table_exists(fresh_lab, f"{TABLE}_b")


def test_a_session_that_came_and_went_after_the_gate_is_refused(fresh_lab: Lab, tmp_path: Path) -> None:
    gate = run_gate(tmp_path)
    assert gate.rc == 0, gate.output[-3000:]
    _visit(fresh_lab)
    out = _apply(tmp_path / ".facts", f"CREATE TABLE {TABLE}_c (id int)")
    assert out.startswith("rc=2"), out[-3000:]
    assert ("the clone changed since the gate fails: clone.foreign_sessions: 1 session(s) established on "
            "the clone since gate0 run") in out, out[-3000:]
    assert "Traceback" not in out
    # The exit sees it too, and so does the next entry gate (it compares with this gate).
    out = _exit(tmp_path / ".facts")
    assert out.startswith("rc=2") and "clone.foreign_sessions: " in out and "session(s) established" in out
    again = run_gate(tmp_path)
    assert again.rc != 0 and "session(s) established on the clone since" in again.failures.get(
        "clone.foreign_sessions", ""), again.failures
    assert not _table_exists(fresh_lab, f"{TABLE}_c")


def test_a_session_between_require_and_the_mutation_is_refused(fresh_lab: Lab, tmp_path: Path) -> None:
    """The mutation's own clone_sql proves the last stretch: from require's re-check to itself."""
    gate = run_gate(tmp_path)
    assert gate.rc == 0, gate.output[-3000:]
    facts = tmp_path / ".facts"
    # clone_apply.yml's require step keeps its reading in the fact cache; a visit after it and before
    # the mutation: run require alone (a play that stops after it), visit, then apply.
    play = tmp_path / "require_only.yml"
    play.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.include_role: {name: gate0, tasks_from: require, public: true}\n")
    r = run_playbook(str(play), "-e", json.dumps(FAST_TIMEOUTS),
                     env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts)})
    assert r.returncode == 0, r.stdout[-3000:]
    _visit(fresh_lab)
    out = _apply(facts, f"CREATE TABLE {TABLE}_d (id int)")
    assert out.startswith("rc=2"), out[-3000:]
    assert "session(s) established on the clone since require at" in out, out[-3000:]
    assert not _table_exists(fresh_lab, f"{TABLE}_d")


def _wait_reset(lab: Lab, before: object) -> None:
    """pg_stat_reset() is applied asynchronously on 14 (statistics collector): wait, bounded."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if lab.scalar(CLONE_DB, "SELECT stats_reset::text FROM pg_stat_database "
                                "WHERE datname = current_database()") != before:
            return
        time.sleep(0.2)
    pytest.fail("the clone's statistics reset never showed")


def test_a_counter_reset_cannot_prove(fresh_lab: Lab, tmp_path: Path) -> None:
    gate = run_gate(tmp_path)
    assert gate.rc == 0, gate.output[-3000:]
    before = fresh_lab.scalar(CLONE_DB, "SELECT stats_reset::text FROM pg_stat_database "
                                        "WHERE datname = current_database()")
    fresh_lab.execute(CLONE_DB, "SELECT pg_stat_reset()")
    _wait_reset(fresh_lab, before)
    out = _apply(tmp_path / ".facts", f"CREATE TABLE {TABLE}_e (id int)")
    assert out.startswith("rc=2"), out[-3000:]
    assert "clone.foreign_sessions: cannot prove the clone stayed quiet since gate0 run" in out, out[-3000:]
    assert "statistics were reset" in out
    # The entry gate has no evidence either way about the time before the reset: its own look stands
    # (instant only, said so); require after it compares with it.
    again = run_gate(tmp_path)
    assert again.rc == 0, again.output[-3000:]
    assert "no history: statistics reset since gate0 run" in _foreign_message(again)
    assert not _table_exists(fresh_lab, f"{TABLE}_e")


def test_the_recheck_is_bounded_by_gate0_observe_timeout(fresh_lab: Lab, tmp_path: Path) -> None:
    """require's re-check is one module call bounded like the gate's: a re-check held past
    gate0_observe_timeout (here by a quiet window longer than it) FAILs each clone check in one line."""
    gate = run_gate(tmp_path)
    assert gate.rc == 0, gate.output[-3000:]
    start = time.monotonic()
    r = run_playbook("playbooks/clone_apply.yml", "-e", json.dumps(
        {**FAST_TIMEOUTS, "gate0_clone_quiet_window": 20, "gate0_observe_timeout": 2,
         "gate0_apply_statements": [f"CREATE TABLE {TABLE}_f (id int)"], "gate0_apply_mode": "commit"}),
        env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / ".facts")})
    wall = time.monotonic() - start
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, out[-3000:]
    assert "the clone changed since the gate fails: clone." in out, out[-3000:]
    assert ("clone.foreign_sessions: not observed: gate0_observe stopped after 2 s (gate0_observe_timeout)"
            in out), out[-3000:]
    assert "Traceback" not in out and wall < 60, wall
    assert not _table_exists(fresh_lab, f"{TABLE}_f")


def test_a_failed_gate_does_not_restart_an_earlier_pass(fresh_lab: Lab, tmp_path: Path) -> None:
    """PASS, a visit, a gate that FAILs on it (it keeps its reading, as history for the next gate), then
    a mutation with the earlier PASS (as an AWX node's artifact would hand it): still refused."""
    first = run_gate(tmp_path)
    assert first.rc == 0 and first.fact and first.fact["passed"] is True, first.output[-3000:]
    _visit(fresh_lab)
    second = run_gate(tmp_path)
    assert second.rc != 0 and "clone.foreign_sessions" in second.failures, second.failures
    record = tmp_path / "pass.json"
    record.write_text(json.dumps({"gate0": first.fact, **FAST_TIMEOUTS, "gate0_apply_mode": "commit",
                                  "gate0_apply_statements": [f"CREATE TABLE {TABLE}_g (id int)"]}))
    r = run_playbook("playbooks/clone_apply.yml", "-e", f"@{record}",
                     env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / ".facts")})
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, out[-3000:]
    assert "clone.foreign_sessions: " in out and "session(s) established on the clone since gate0 run" in out
    assert not _table_exists(fresh_lab, f"{TABLE}_g")
