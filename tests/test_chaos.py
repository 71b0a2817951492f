"""Sound over time and under failure: races inside a run, writers the statistics have not seen,
runs that do not finish, hostile values. Each case is bounded, loopback only, a few seconds.

Every case here was seen failing before its fix (issue 16): a worker arriving during the clone
check, a write whose statistics are not flushed, a PASS left by a run that did not finish, ...
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from conftest import CLONE_DB, PROD_DB, REPO, Lab, lab_env, run_playbook
from gaterun import cached_fact, run_gate

# --- the clone part's pause point (gate0.core's gate0_clone.py, GATE0_TEST_PAUSE_FILE) ----------------

PAUSE_WAIT_S = 90.0


def clone_gate(report_dir: Path, env: dict[str, str] | None = None, *extra: str) -> dict[str, Any]:
    """The clone gate alone (`--tags clone`) through the real playbook; its records by id."""
    proc = run_playbook("playbooks/gate0.yml", "--tags", "clone", "-e", f"gate0_report_dir={report_dir}",
                        *extra, env_extra={"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(report_dir / ".facts"),
                                           **(env or {})}, timeout=150)
    files = sorted(report_dir.glob("gate0-*.json"))
    assert files, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads(files[-1].read_text())
    assert "Traceback" not in proc.stdout + proc.stderr
    return {"rc": proc.returncode, "checks": {c["id"]: c for c in report["checks"]}, "report": report,
            "output": proc.stdout + proc.stderr}


@contextlib.contextmanager
def paused_clone_gate(tmp_path: Path, *extra: str) -> Iterator[dict[str, Any]]:
    """Run the clone gate in a thread, held at its pause point (after its first read, sessions) until
    the body is done; yields the dict the run's result is put in (after the block)."""
    pause = tmp_path / "pause"
    pause.write_text("held by the test\n")
    out: dict[str, Any] = {}

    def run() -> None:
        out.update(clone_gate(tmp_path / "reports", {"GATE0_TEST_PAUSE_FILE": str(pause)}, *extra))

    thread = threading.Thread(target=run, name="gate0-paused", daemon=True)
    thread.start()
    deadline = time.monotonic() + PAUSE_WAIT_S
    reached = Path(f"{pause}.reached")
    while not reached.exists() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert reached.exists(), "the clone part never reached its pause point"
        yield out
    finally:
        pause.unlink(missing_ok=True)
        thread.join(timeout=150)
    assert out, "the paused gate0 run did not finish"


def worker(lab: Lab, *statements: str) -> Any:
    """A worker's session on the clone (the clone admin over TCP), after running `statements`."""
    conn = lab.connect(CLONE_DB, user="workflow_admin", application_name="chaos-worker")
    with conn.cursor() as cur:
        for stmt in statements:
            cur.execute(stmt)
    return conn


LEASE = ("INSERT INTO dot_iu_runtime_lease (worker_id, iu_code, expires_at) "
         "VALUES ('chaos', 'IU-1', now() + interval '1 hour')")
ACTIVATE = ("UPDATE event_type_registry SET active = true "
            "WHERE event_type = (SELECT max(event_type) FROM event_type_registry)")

# (what the worker does while the clone part is paused, stays connected, the checks that must fail)
ARRIVALS = [
    pytest.param([LEASE], True, {"clone.worker_lease", "clone.foreign_sessions"}, id="lease-and-stays"),
    pytest.param([ACTIVATE], False, {"clone.dispatch_disabled", "clone.foreign_sessions"},
                 id="dispatch-and-goes"),
    pytest.param(["SELECT 1"], False, {"clone.foreign_sessions"}, id="comes-and-goes"),
]


@pytest.mark.parametrize(("statements", "stays", "failing"), ARRIVALS)
def test_a_worker_arriving_during_the_clone_check_fails_it(fresh_lab: Lab, tmp_path: Path,
                                                           statements: list[str], stays: bool,
                                                           failing: set[str]) -> None:
    """Issue 16.1: a session that connects to the clone after the clone part's first read (and
    writes a lease, activates dispatch, or only comes and goes) fails the gate."""
    conns = []
    with paused_clone_gate(tmp_path) as result:
        conns.append(worker(fresh_lab, *statements))
        if not stays:
            conns.pop().close()
    try:
        bad = {cid: c["message"] for cid, c in result["checks"].items()
               if cid.startswith("clone.") and c["status"] != "pass"}
        assert set(bad) == failing, json.dumps(bad, indent=1)
        assert result["rc"] != 0
        for cid in failing:
            assert "\n" not in bad[cid]
        if stays:
            assert "chaos-worker" in bad["clone.foreign_sessions"], bad
        else:
            assert "established" in bad["clone.foreign_sessions"], bad
    finally:
        for conn in conns:
            conn.close()


def test_the_clone_check_passes_when_nobody_arrives(lab: Lab, tmp_path: Path) -> None:
    """The same held run, nobody arriving: every clone check passes (the re-check is not a false alarm)."""
    with paused_clone_gate(tmp_path) as result:
        time.sleep(0.5)
    bad = {cid: c["message"] for cid, c in result["checks"].items()
           if cid.startswith("clone.") and c["status"] != "pass"}
    assert bad == {}, bad


# --- writes the statistics have not seen (issue 16.3) ------------------------------------------------

def gate_run(report_dir: Path, playbook: str = "playbooks/gate0.yml", *extra: str,
             env: dict[str, str] | None = None, timeout: float = 150) -> tuple[int, str]:
    """A real playbook run with its own fact cache and report directory: (rc, output)."""
    env_extra = {"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(report_dir / ".facts"), **(env or {})}
    proc = run_playbook(playbook, "-e", f"gate0_report_dir={report_dir}", *extra, timeout=timeout,
                        env_extra=env_extra)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    return proc.returncode, out


@contextlib.contextmanager
def busy_writer(lab: Lab, db: str, statements: str, hold: float = 30.0) -> Iterator[int]:
    """A backend that runs `statements` and then stays busy (pg_sleep) in the same query message, so
    its statistics stay pending; yields its pid once it sleeps; cancelled afterwards (bounded)."""
    conn = lab.connect(db)
    pid = conn.get_backend_pid()

    def run() -> None:
        with contextlib.suppress(psycopg2.Error), conn.cursor() as cur:
            cur.execute(f"{statements}; SELECT pg_sleep({hold})")

    thread = threading.Thread(target=run, name="gate0-busy-writer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event = 'PgSleep'"
    while time.monotonic() < deadline and not lab.scalar("postgres", sleeping, (pid,)):
        time.sleep(0.05)
    try:
        yield pid
    finally:
        lab.execute("postgres", "SELECT pg_cancel_backend(%s)", (pid,))
        thread.join(timeout=10)
        conn.close()


# (what a writer did, and stays busy; the target the exit must name)
UNSEEN_WRITES = [
    pytest.param("BEGIN; UPDATE governance_scopes SET title = title; COMMIT", "scopes",
                 id="same-value-update"),
    pytest.param("BEGIN; UPDATE dot_tools SET name = name || 'x' WHERE tool_id = 7; "
                 "UPDATE dot_tools SET name = left(name, -1) WHERE tool_id = 7; COMMIT",
                 "dot_tools", id="flipped-and-back"),
    pytest.param("BEGIN; DELETE FROM governance_ruleset; INSERT INTO governance_ruleset "
                 "SELECT * FROM governance_ruleset; COMMIT", None, id="empty-delete-insert"),
]


@pytest.mark.parametrize(("statements", "target"), UNSEEN_WRITES)
def test_exit_catches_a_write_whose_statistics_are_not_flushed(fresh_lab: Lab, tmp_path: Path,
                                                               statements: str, target: str | None) -> None:
    """Issue 16.3: a committed write that leaves content and counts as they were, its writer still busy
    (its counters unflushed): the exit fingerprint FAILs naming the target (row versions changed)."""
    rc, out = gate_run(tmp_path)
    assert rc == 0, out[-3000:]
    with busy_writer(fresh_lab, PROD_DB, statements):
        rc, out = gate_run(tmp_path, "playbooks/gate0_exit.yml")
    if target is None:  # no row was touched: nothing to see, and nothing is claimed
        assert rc == 0, out[-3000:]
        return
    assert rc != 0, out[-3000:]
    assert f"production CHANGED between entry and exit: {target}: " in out, out[-3000:]
    assert "row versions" in out, out[-3000:]


def test_what_rewrites_row_versions_without_a_write(fresh_lab: Lab) -> None:
    """What README Safety says: plain VACUUM (HOT pruning included) and freezing keep every live row's
    ctid and xmin, so the row hash (by column or by text form, both); VACUUM FULL and CLUSTER move rows
    (new ctid) and change it."""
    from ansible_collections.gate0.core.plugins.module_utils.gate0_fingerprint import (
        ROW_HASH_RECORD_SQL,
        ROW_HASH_SQL,
    )

    def row_hashes() -> tuple[int, int]:
        return tuple(int(fresh_lab.scalar(PROD_DB, f"SELECT sum({h}::numeric) FROM gate0_versions AS t"))
                     for h in (ROW_HASH_SQL, ROW_HASH_RECORD_SQL))

    fresh_lab.execute(PROD_DB, "CREATE TABLE gate0_versions (id int PRIMARY KEY, body text) "
                               "WITH (fillfactor = 50, autovacuum_enabled = false); "
                               "INSERT INTO gate0_versions "
                               "SELECT g, md5(g::text) FROM generate_series(1, 2000) AS g")
    conn = fresh_lab.connect(PROD_DB)  # autocommit, outside `with` (VACUUM runs outside a transaction)

    def run(stmt: str) -> None:
        with conn.cursor() as cur:
            cur.execute(stmt)

    try:
        # Dead versions (HOT updates, then deleted rows) for VACUUM and pruning to clean up.
        fresh_lab.execute(PROD_DB, "UPDATE gate0_versions SET body = body || 'x' WHERE id % 3 = 0")
        fresh_lab.execute(PROD_DB, "DELETE FROM gate0_versions WHERE id % 5 = 0")
        before = row_hashes()
        for keeps in ("SELECT count(*) FROM gate0_versions", "VACUUM gate0_versions",
                      "VACUUM (FREEZE) gate0_versions"):
            run(keeps)
            assert row_hashes() == before, keeps
        run("VACUUM FULL gate0_versions")
        after_full = row_hashes()
        assert all(a != b for a, b in zip(after_full, before, strict=True))
        run("CLUSTER gate0_versions USING gate0_versions_pkey")
        assert all(a != b for a, b in zip(row_hashes(), after_full, strict=True))
    finally:
        run("DROP TABLE IF EXISTS gate0_versions")
        conn.close()


# --- writers during the entry fingerprint (issue 16.2) -----------------------------------------------

@contextlib.contextmanager
def writers(lab: Lab, statement: str, threads: int = 3, hold: float = 0.3,
            limit: float = 60.0) -> Iterator[list[int]]:
    """`threads` real writers on production, each looping `BEGIN; <statement>; pg_sleep(hold); COMMIT`
    (staggered: a target is being written at every instant), until the block ends (or `limit` s)."""
    stop = threading.Event()
    done: list[int] = []

    def write(n: int) -> None:
        conn = lab.connect(PROD_DB, application_name=f"chaos-writer-{n}")
        deadline = time.monotonic() + limit
        time.sleep(n * hold / threads)
        try:
            with conn.cursor() as cur:
                while not stop.is_set() and time.monotonic() < deadline:
                    cur.execute(f"BEGIN; {statement}; SELECT pg_sleep({hold}); COMMIT")
                    done.append(n)
        finally:
            conn.close()

    pool = [threading.Thread(target=write, args=(n,), daemon=True) for n in range(threads)]
    for t in pool:
        t.start()
    try:
        while len(done) < threads:  # every writer has committed once: they are under way
            time.sleep(0.05)
        yield done
    finally:
        stop.set()
        for t in pool:
            t.join(timeout=10)


FLIP = "UPDATE system_issues SET resolved = NOT resolved WHERE issue_id = 1 + (random() * 100)::int"
# Real concurrent writers: three flipping rows in short committed transactions (pgbench-like), and one
# that has updated a row and is still busy in its transaction (nothing committed, no counter moves:
# only its lock shows the write).
WRITERS = [
    pytest.param(lambda lab: writers(lab, FLIP), id="flipping-writers"),
    pytest.param(lambda lab: busy_writer(lab, PROD_DB, f"BEGIN; {FLIP}"), id="uncommitted-busy-writer"),
]


@pytest.mark.parametrize("writing", WRITERS)
def test_a_target_written_during_the_entry_fingerprint_fails(fresh_lab: Lab, tmp_path: Path,
                                                             writing: Any) -> None:
    """Issue 16.2: a non-volatile target (system_issues) written by another backend while the entry
    gate fingerprints it: prod.targets_quiet FAILs naming it (the other prod checks still pass)."""
    with writing(fresh_lab):
        rc, _ = gate_run(tmp_path, "playbooks/gate0.yml", "--tags", "prod")
    report = json.loads(sorted((tmp_path).glob("gate0-*.json"))[-1].read_text())
    checks = {c["id"]: c for c in report["checks"]}
    quiet = checks.get("prod.targets_quiet") or {}
    assert rc != 0
    assert quiet.get("status") == "fail", json.dumps(checks, indent=1)[-3000:]
    assert "system_issues" in quiet["message"] and "\n" not in quiet["message"]
    assert checks["prod.baseline"]["status"] == "pass"  # nothing else stands in for it


def test_targets_quiet_passes_with_writers_elsewhere(lab: Lab, tmp_path: Path) -> None:
    """Writers on a table that is no target (and a volatile target's session count) do not fail it."""
    lab.execute(PROD_DB, "CREATE TABLE IF NOT EXISTS gate0_chaos_other (id int)")
    try:
        with writers(lab, "INSERT INTO gate0_chaos_other VALUES (1)"):
            gate_run(tmp_path, "playbooks/gate0.yml", "--tags", "prod")
        report = json.loads(sorted((tmp_path).glob("gate0-*.json"))[-1].read_text())
        assert {c["id"]: c["message"] for c in report["checks"]
                if c["gate"] == "prod" and c["status"] != "pass"} == {}
    finally:
        lab.execute(PROD_DB, "DROP TABLE IF EXISTS gate0_chaos_other")


# --- no PASS survives a run that did not finish; concurrent runs keep their own reports (16.4, 16.5) --

@contextlib.contextmanager
def full_filesystem(path: Path) -> Iterator[Path]:
    """A tiny tmpfs at `path`, filled up (a report cannot be written there); unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(path)],
                             capture_output=True, timeout=10).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with contextlib.suppress(OSError), open(path / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=10)


def test_a_run_that_cannot_write_its_report_leaves_no_pass(lab: Lab, tmp_path: Path) -> None:
    """Issue 16.4: after a PASS, a run whose report directory is full fails, and the cached gate0 fact
    it leaves says not passed; the mutation playbook refuses it, naming the unfinished run."""
    rc, out = gate_run(tmp_path)
    assert rc == 0, out[-3000:]
    assert (cached_fact(tmp_path / ".facts") or {}).get("passed") is True
    with full_filesystem(tmp_path / "full") as full:
        rc, out = gate_run(tmp_path, "playbooks/gate0.yml", "-e", f"gate0_report_dir={full}")
    assert rc != 0 and "No space left on device" in out, out[-3000:]
    fact = cached_fact(tmp_path / ".facts") or {}
    assert fact.get("passed") is False, fact
    rc, out = gate_run(tmp_path, "playbooks/clone_apply.yml")
    assert rc != 0, out[-3000:]
    assert "did not finish" in out, out[-3000:]


def test_an_interrupted_run_leaves_no_pass(lab: Lab, tmp_path: Path) -> None:
    """Issue 16.4: after a PASS, a run interrupted (SIGINT) in the middle of its clone part leaves a
    cached gate0 fact that says not passed."""
    rc, out = gate_run(tmp_path)
    assert rc == 0, out[-3000:]
    pause = tmp_path / "pause"
    pause.write_text("held\n")
    env = lab_env()
    env.update(ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / ".facts"), GATE0_TEST_PAUSE_FILE=str(pause),
               ANSIBLE_REMOTE_TEMP=str(tmp_path / "remote"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "local"))
    proc = subprocess.Popen(["ansible-playbook", "playbooks/gate0.yml", "-e", f"gate0_report_dir={tmp_path}"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + PAUSE_WAIT_S
        while not Path(f"{pause}.reached").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Path(f"{pause}.reached").exists(), "the run never reached the pause point"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        pause.unlink(missing_ok=True)
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode != 0
    fact = cached_fact(tmp_path / ".facts") or {}
    assert fact.get("passed") is False, fact


def test_concurrent_runs_keep_their_own_reports(lab: Lab, tmp_path: Path) -> None:
    """Issue 16.5: a PASS and a FAIL run started together into one report directory: two reports, and
    each run prints the path of its own report, whose verdict is its own."""
    gates = ["-e", json.dumps({"gate0_gates": ["prod"]})]
    bad = ["-e", json.dumps({"gate0_gates": ["prod"], "gate0_production_baseline": {"own": 5}})]
    outs: dict[str, tuple[int, str]] = {}

    def run(name: str, extra: list[str]) -> None:
        outs[name] = gate_run(tmp_path / name, "playbooks/gate0.yml", "-e", f"gate0_report_dir={tmp_path}",
                              *extra)

    pool = [threading.Thread(target=run, args=(name, extra))
            for name, extra in (("pass", gates), ("fail", bad))]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=200)
    assert outs["pass"][0] == 0 and outs["fail"][0] != 0, outs
    assert len(list(tmp_path.glob("gate0-*.json"))) == 2
    for name, verdict in (("pass", "PASS"), ("fail", "FAIL")):
        paths = re.findall(r"report (\S+?\.md)", outs[name][1])
        assert paths, outs[name][1][-2000:]
        report = json.loads(Path(paths[-1]).with_suffix(".json").read_text())
        assert report["verdict"] == verdict, (name, paths[-1])


# --- prod.clone_unreachable: only an authorization refusal proves it (issue 16.6) --------------------

def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_clone_unreachable_is_not_proven_by_a_closed_port(lab: Lab, tmp_path: Path) -> None:
    """Issue 16.6: the production credentials' attempt on the clone hits a closed port: that proves
    nothing about the role, so prod.clone_unreachable FAILs as "cannot prove" (it passed before)."""
    elsewhere = {"gate0_clone_login_host": "127.0.0.1", "gate0_clone_login_port": closed_port()}
    rc, _ = gate_run(tmp_path, "playbooks/gate0.yml", "--tags", "prod", "-e", json.dumps(elsewhere))
    report = json.loads(sorted(tmp_path.glob("gate0-*.json"))[-1].read_text())
    rec = {c["id"]: c for c in report["checks"]}["prod.clone_unreachable"]
    assert rc != 0
    assert rec["status"] == "fail", rec
    assert "cannot prove" in rec["message"] and "Connection refused" in rec["message"], rec["message"]


# server message (as libpq reports it) -> an authorization refusal?
REFUSALS = [
    ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  permission denied for database "c"',
     True),
    ('connection to server at "10.0.0.1", port 5432 failed: FATAL:  no pg_hba.conf entry for host '
     '"10.0.0.2", user "ro", database "c", no encryption', True),
    ('connection to server at "h", port 5432 failed: FATAL:  pg_hba.conf rejects connection for host "x"',
     True),
    ('connection to server at "h", port 5432 failed: FATAL:  password authentication failed for user "ro"',
     True),
    ('connection to server at "h", port 5432 failed: FATAL:  role "ro" does not exist', True),
    ('connection to server at "h", port 5432 failed: FATAL:  role "ro" is not permitted to log in', True),
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused', False),
    ("connection to server at \"198.51.100.1\", port 5432 failed: timeout expired", False),
    ('could not translate host name "nowhere" to address: Name or service not known', False),
    ('connection to server at "h", port 5432 failed: server closed the connection unexpectedly', False),
    ('connection to server on socket "/x/.s.PGSQL.5432" failed: No such file or directory', False),
    ('connection to server at "h", port 5432 failed: FATAL:  database "c" does not exist', True),
    ('connection to server at "h", port 5432 failed: FATAL:  the database system is starting up', False),
    ('connection to server at "h", port 5432 failed: FATAL:  sorry, too many clients already', False),
    ("FATAL:  Zugriff verweigert für Datenbank »c«", False),  # a localized server: cannot tell, not proven
]


@pytest.mark.parametrize(("message", "refusal"), REFUSALS)
def test_authorization_refusal_is_told_from_other_failures(message: str, refusal: bool) -> None:
    from ansible_collections.gate0.core.plugins.module_utils.gate0_reach import (
        refusal as authorization_refusal,
    )

    assert (authorization_refusal(message) is not None) is refusal


# --- secrets on disk after an interrupt; a stalled gate holds no snapshot (issue 16.7) -----------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_no_secret_on_disk_after_an_interrupt(lab: Lab, tmp_path: Path, sig: int) -> None:
    """Issue 16.7: ansible-playbook interrupted while the module runs (held at the clone part's pause
    point), the signal sent to its whole process group as a terminal's Ctrl-C or a job runner's stop
    does: no file under the run's own HOME (~/.ansible/tmp) or local temp holds a password."""
    from faultlib import files_containing, secrets_of

    # Its own HOME, local and remote temp (the local connection's "remote" temp is ~/.ansible/tmp of the
    # login's passwd entry, not $HOME: hence ANSIBLE_REMOTE_TEMP too).
    home, local = tmp_path / "home", tmp_path / "local"
    home.mkdir()
    pause = tmp_path / "pause"
    pause.write_text("held\n")
    env = lab_env()
    env.update(HOME=str(home), ANSIBLE_LOCAL_TEMP=str(local), ANSIBLE_REMOTE_TEMP=str(home / "remote"),
               GATE0_TEST_PAUSE_FILE=str(pause),
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / ".facts"))
    proc = subprocess.Popen(["ansible-playbook", "playbooks/gate0.yml", "-e", f"gate0_report_dir={tmp_path}"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + PAUSE_WAIT_S
        while not Path(f"{pause}.reached").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Path(f"{pause}.reached").exists(), "the run never reached the pause point"
        os.killpg(proc.pid, sig)
        proc.communicate(timeout=60)
        leaked = files_containing(home, secrets_of(lab)) + files_containing(local, secrets_of(lab))
        payloads = [p.name for p in home.rglob("AnsiballZ_*")] + [p.name for p in local.rglob("AnsiballZ_*")]
    finally:
        pause.unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
    assert leaked == []
    assert payloads == []


def test_a_stalled_gate_holds_no_snapshot(lab: Lab) -> None:
    """Issue 16.7: the gate's transaction (production channel, gate0_pg.begin) idle longer than its
    idle_in_transaction_session_timeout (statement timeout + 1 s) is ended by the server: a stalled
    module cannot keep its snapshot on production."""
    from ansible_collections.gate0.core.plugins.module_utils import gate0_pg

    params = {"login_host": "127.0.0.1", "login_port": lab.port, "login_user": "context_pack_readonly",
              "login_password": lab.password("context_pack_readonly"), "login_db": PROD_DB,
              "statement_timeout": 1000, "lock_timeout": 500, "connect_timeout": 5}
    conn = gate0_pg.connect(params)
    try:
        got = gate0_pg.begin(conn, params, read_only=True)
        assert gate0_pg._norm_ms(got["idle_in_transaction_session_timeout"]) == "2000"
        pid = conn.get_backend_pid()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and lab.scalar(
                "postgres", "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)):
            time.sleep(0.2)
        assert not lab.scalar("postgres", "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert time.monotonic() < deadline
        with pytest.raises(psycopg2.Error), conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


# --- hostile values refused before any connection, one line naming the variable (issue 16.8) ----------

BASELINE = "gate0_production_baseline"
BAD_VALUES = [
    pytest.param({BASELINE: {"own": "abc"}}, BASELINE, id="baseline-text"),
    pytest.param({BASELINE: {"own": None}}, BASELINE, id="baseline-null"),
    pytest.param({BASELINE: {"own": False, "gap": "210"}}, BASELINE, id="baseline-bool-and-string"),
    pytest.param({BASELINE: {"own": {"n": 1}}}, BASELINE, id="baseline-dict-value"),
    pytest.param({BASELINE: {"own": -1}}, BASELINE, id="baseline-negative"),
    pytest.param({"gate0_production_allowed_databases": "directus"}, "gate0_production_allowed_databases",
                 id="allowlist-string"),
    pytest.param({"gate0_production_hash_chunk_rows": -5}, "gate0_production_hash_chunk_rows",
                 id="chunk-rows-negative"),
]


@pytest.mark.parametrize(("extra", "variable"), BAD_VALUES)
def test_bad_values_are_refused_before_any_connection(lab: Lab, tmp_path: Path, extra: dict,
                                                      variable: str) -> None:
    with lab.logins() as logins:
        rc, out = gate_run(tmp_path, "playbooks/gate0.yml", "-e", json.dumps(extra))
    assert rc != 0
    assert logins == [], out[-3000:]  # nothing connected
    line = next((ln for ln in out.splitlines()
                 if variable in ln and ("gate0 vars:" in ln or "argument" in ln)), None)
    assert line is not None, out[-3000:]
    assert "Traceback" not in out and "Unexpected Exception" not in out


# A fact cache entry of the wrong shape (valid JSON): ignored in one warning line, never a traceback.
BAD_CACHE = [
    pytest.param("[1, 2]", "it holds a list", id="list"),
    pytest.param('"just text"', "it holds a str", id="string"),
    pytest.param('{"__payload__": "[1]"}', "its __payload__ holds a list", id="payload-list"),
    pytest.param('{"__payload__": 7}', "its __payload__ is a int", id="payload-number"),
]


@pytest.mark.parametrize(("content", "why"), BAD_CACHE)
def test_a_fact_cache_entry_of_the_wrong_shape_is_ignored(lab: Lab, tmp_path: Path, content: str,
                                                          why: str) -> None:
    cache = tmp_path / ".facts"
    cache.mkdir()
    for name in ("lab", "s1_lab"):  # the file name ansible-core's jsonfile uses for host lab
        (cache / name).write_text(content + "\n")
    rc, out = gate_run(tmp_path, "playbooks/gate0_exit.yml")
    assert rc != 0 and "Unexpected Exception" not in out, out[-3000:]
    assert "gate0: ignoring the fact cache entry" in out and why in out, out[-3000:]
    assert "no entry fingerprint" in out


def test_the_exit_verifies_the_receipt(lab: Lab, tmp_path: Path) -> None:
    """Issue 16.8: the exit trusts the entry fingerprint only with its receipt: a gate0 fact edited after
    signing (here its time) is refused in one line, before production is fingerprinted again."""
    rc, out = gate_run(tmp_path)
    assert rc == 0, out[-3000:]
    fact = cached_fact(tmp_path / ".facts") or {}
    assert fact.get("passed") is True
    edited = {**fact, "checked_at": "2099-01-01T00:00:00Z"}
    rc, out = gate_run(tmp_path, "playbooks/gate0_exit.yml", "-e", json.dumps({"gate0": edited}))
    assert rc != 0, out[-3000:]
    assert "gate0 receipt refused: edited: gate0 checked_at differ" in out, out[-3000:]
    assert "Fingerprint production again" not in out


def test_a_stalled_observation_is_stopped_by_gate0_observe_timeout(lab: Lab, tmp_path: Path) -> None:
    """Long statement and lock timeouts, a target locked by another session: the whole observation is
    bounded by gate0_observe_timeout, every check it feeds FAILs, and the gate's sessions end."""
    holder = lab.connect(PROD_DB)
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE")
        run = run_gate(tmp_path, {"gate0_statement_timeout": 60000, "gate0_lock_timeout": 60000,
                                  "gate0_observe_timeout": 4}, fast=False, timeout=120)
    finally:
        holder.rollback()
        holder.close()
    assert run.rc != 0
    assert run.wall < 40, run.wall
    message = run.failures.get("prod.fingerprint", "")
    assert "timeout" in message.lower() or "timed out" in message.lower(), run.failures
    assert "Traceback" not in run.output
    for _ in range(50):  # the killed module's sessions end (bounded wait)
        gate_sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gate0'"
        if not lab.scalar("postgres", gate_sessions):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("gate0 sessions still open 10 s after the observe timeout")
