"""Fault injection on the lab for tests/test_faults.py and tests/test_load.py.

Each helper is a context manager that creates one bad day and undoes it (bounded in time, loopback
or a network namespace we create ourselves only). `db_state` snapshots what "unchanged" means:
row counts, tuple write counters and relfilenodes of every user table.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from conftest import LAB_SH, Lab, lab_env
from psycopg2 import sql

# --- what "unchanged" means -----------------------------------------------------------------------

# Database-wide tuple writes (inserted, updated, deleted), minus the server's own statistics
# upkeep: autoanalyze (also of catalogs, at any moment) rewrites pg_statistic rows in the database.
DB_WRITES = ("SELECT d.tup_inserted - s.n_tup_ins, d.tup_updated - s.n_tup_upd, "
             "d.tup_deleted - s.n_tup_del FROM pg_stat_database AS d, pg_stat_sys_tables AS s "
             "WHERE d.datname = current_database() AND s.relid = 'pg_catalog.pg_statistic'::regclass")


def db_state(lab: Lab, db: str) -> dict[str, object]:
    """Counts, write counters (ins/upd/del) and relfilenode of every table in public, and the
    database-wide tuple write counters less pg_statistic's (autoanalyze). Over a fresh connection."""
    conn = lab.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(
                "SELECT c.relname, c.relfilenode, s.n_tup_ins, s.n_tup_upd, s.n_tup_del "
                "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm') ORDER BY c.relname")
            tables = {r[0]: {"relfilenode": r[1], "ins": r[2], "upd": r[3], "del": r[4]}
                      for r in cur.fetchall()}
            for name, rec in tables.items():
                cur.execute(sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(name)))
                rec["count"] = cur.fetchone()[0]
            cur.execute(DB_WRITES)
            ins, upd, dele = cur.fetchone()
    finally:
        conn.close()
    return {"tables": tables, "db": {"tup_inserted": ins, "tup_updated": upd, "tup_deleted": dele}}


def flush_stats(lab: Lab, db: str) -> None:
    """Let backends that just exited publish their pending statistics (PostgreSQL 15: on exit)."""
    deadline = time.monotonic() + 3
    conn = lab.connect(db)
    try:
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
                if cur.fetchone()[0] == 0:
                    break
                time.sleep(0.05)
    finally:
        conn.close()
    time.sleep(0.3)


def diff_state(before: dict, after: dict) -> list[str]:
    """Every difference between two db_state snapshots, one line each."""
    out: list[str] = []
    for name in sorted(set(before["tables"]) | set(after["tables"])):
        b, a = before["tables"].get(name), after["tables"].get(name)
        if b != a:
            out.append(f"{name}: {b} -> {a}")
    for key in ("tup_inserted", "tup_updated", "tup_deleted"):
        if after["db"][key] != before["db"][key]:
            out.append(f"pg_stat_database.{key} (less pg_statistic upkeep): "
                       f"{before['db'][key]} -> {after['db'][key]}")
    return out


# --- the server -----------------------------------------------------------------------------------

def lab_sh(cmd: str) -> None:
    subprocess.run([str(LAB_SH), cmd], env=lab_env(), check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def server_down() -> Iterator[None]:
    """The lab server stopped (fast shutdown: statistics are kept); started again afterwards."""
    lab_sh("down")
    try:
        yield
    finally:
        lab_sh("up")


# --- sessions -------------------------------------------------------------------------------------

@contextlib.contextmanager
def exclusive_lock(lab: Lab, db: str, table: str) -> Iterator[None]:
    """Another session holds ACCESS EXCLUSIVE on `table` (every read of it waits) until the end."""
    conn = lab.connect(db)
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
        yield
    finally:
        with contextlib.suppress(psycopg2.Error):  # the server may have been stopped meanwhile
            conn.rollback()
        conn.close()


@contextlib.contextmanager
def stop_server_when_waiting(lab: Lab, db: str, timeout: float = 60.0,
                             done_on: str | None = None) -> Iterator[list[int]]:
    """A watcher thread that stops the lab server (lab.sh down) as soon as our backend (application_name
    'gate0') on `db` waits on a lock: gate0 is certainly in the middle of its work on `db`. With
    `done_on`, only once gate0 was seen on that database too and has left it (its work there is done).
    Yields the pids it saw (empty: it never fired). Bounded: gives up after `timeout` seconds."""
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        conn = lab.connect("postgres")
        deadline = time.monotonic() + timeout
        was_on = False
        try:
            with conn.cursor() as cur:
                while not stop.is_set() and time.monotonic() < deadline:
                    cur.execute("SELECT pg_stat_clear_snapshot()")
                    cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'gate0' "
                                "AND datname = %s AND wait_event_type = 'Lock'", (db,))
                    waiting = [r[0] for r in cur.fetchall()]
                    if done_on is not None:
                        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gate0' "
                                    "AND datname = %s", (done_on,))
                        on = cur.fetchone()[0] > 0
                        was_on = was_on or on
                        if on or not was_on:
                            waiting = []
                    seen.extend(waiting)
                    if seen:
                        break
                    time.sleep(0.02)
        finally:
            conn.close()
        if seen:
            lab_sh("down")

    thread = threading.Thread(target=watch, name="gate0-stopper", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=70)


@dataclass
class Terminator:
    """A watcher thread that terminates our backend (application_name 'gate0') on `db`.

    With `waiting_on_lock`, it waits until that backend is blocked on a lock (so it is certainly in
    the middle of its transaction), then terminates it. Bounded: gives up after `timeout` seconds.
    """

    lab: Lab
    db: str
    timeout: float = 60.0
    waiting_on_lock: bool = True
    terminated: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        conn = self.lab.connect("postgres")
        query = ("SELECT pid FROM pg_stat_activity WHERE application_name = 'gate0' AND datname = %s "
                 "AND pid <> pg_backend_pid()" + (" AND wait_event_type = 'Lock'" if self.waiting_on_lock
                                                   else " AND xact_start IS NOT NULL"))
        deadline = time.monotonic() + self.timeout
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set() and time.monotonic() < deadline:
                    cur.execute("SELECT pg_stat_clear_snapshot()")
                    cur.execute(query, (self.db,))
                    pids = [r[0] for r in cur.fetchall()]
                    for pid in pids:
                        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
                        if cur.fetchone()[0]:
                            self.terminated.append(pid)
                    if self.terminated:
                        return
                    time.sleep(0.02)
        finally:
            conn.close()

    def __enter__(self) -> Terminator:
        self._thread = threading.Thread(target=self._run, name="gate0-terminator", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


# --- addresses that do not answer -----------------------------------------------------------------

def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts TCP but never answers the PostgreSQL startup (a hung server)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(srv.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for s in held:
            s.close()
        srv.close()


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


@contextlib.contextmanager
def blackhole_address(port: int) -> Iterator[str | None]:
    """An address inside a network namespace we create, that never answers (SYNs are swallowed).

    TEST-NET-2 (198.51.100.0/24, documentation-only) with an `unreachable` route for the whole /24 in
    the root namespace added FIRST, so nothing can leave the machine; then a /30 of it on a veth pair
    into namespace gate0f<port>, whose side has no route back (replies are dropped). Yields the
    address, or None when namespaces cannot be created here (the test then skips that variant).
    """
    ns, host_if, ns_if = f"gate0f{port}", f"g0f{port}h", f"g0f{port}n"
    base = (port % 60) * 4
    host_ip, ns_ip = f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"
    added_route = _ip("route", "add", "unreachable", "198.51.100.0/24").returncode == 0
    if not added_route and "unreachable 198.51.100.0/24" not in _ip("route", "show").stdout:
        yield None
        return
    _ip("netns", "del", ns)
    steps = [("netns", "add", ns),
             ("link", "add", host_if, "type", "veth", "peer", "name", ns_if),
             ("link", "set", ns_if, "netns", ns),
             ("addr", "add", f"{host_ip}/30", "dev", host_if),
             ("link", "set", host_if, "up"),
             ("-n", ns, "addr", "add", f"{ns_ip}/32", "dev", ns_if),
             ("-n", ns, "link", "set", ns_if, "up")]
    ok = all(_ip(*step).returncode == 0 for step in steps)
    try:
        yield ns_ip if ok else None
    finally:
        _ip("link", "del", host_if)
        _ip("netns", "del", ns)
        if added_route:
            _ip("route", "del", "unreachable", "198.51.100.0/24")


# --- checking a run -------------------------------------------------------------------------------

def secrets_of(lab: Lab) -> list[str]:
    return [lab.password(r) for r in ("context_pack_readonly", "workflow_admin", "directus")]


def files_containing(root: Path, needles: list[str]) -> list[str]:
    """Files under `root` that contain any of `needles` (binary-safe)."""
    hits: list[str] = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {n[:3]}..." for n in needles if n and n.encode() in data]
    return hits
