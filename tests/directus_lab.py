"""A real Directus (tests/directus/setup.sh installs it) beside the lab, for tests/test_directus.py.

Directus runs in a network namespace with only `lo` (it reaches nothing outside the machine, not
even the host's loopback) and reaches the lab's PostgreSQL through its Unix socket. Telemetry off.
Its databases live on the lab cluster under their own names (production `dx_app`, clones
`dx_app_gov_test_<date>`), owned by the lab's app role `directus`; they are dropped at the end.
Every wait is bounded; only the processes started here are stopped, by their process group.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import REPO, Lab, lab_env

SETUP = REPO / "tests" / "directus" / "setup.sh"
PROD = "dx_app"
PREFIX = "dx_app_gov_test_"
APP_ROLE = "directus"
PING_SECONDS = 90


def install() -> Path:
    """The cached Directus install (installed on first use): its directory."""
    out = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=1200, env=lab_env())
    if out.returncode != 0:
        raise RuntimeError(f"tests/directus/setup.sh failed: {out.stderr.strip()[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def app_env(lab: Lab, database: str, **extra: str) -> dict[str, str]:
    """Directus' environment: the lab's socket, the app role, telemetry off, loopback only."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "NODE_ENV": "production",
        "DB_CLIENT": "pg",
        "DB_HOST": str(lab.dir.resolve()),
        "DB_PORT": str(lab.port),
        "DB_DATABASE": database,
        "DB_USER": APP_ROLE,
        "DB_PASSWORD": lab.password(APP_ROLE),
        "SECRET": "gate0-directus-test-secret-0123456789",
        "TELEMETRY": "false",
        "HOST": "127.0.0.1",
        "PORT": "8055",
        "LOG_LEVEL": "warn",
        "CACHE_ENABLED": "false",
        "RATE_LIMITER_ENABLED": "false",
        "ADMIN_EMAIL": "admin@example.com",
        "ADMIN_PASSWORD": secrets.token_hex(12),
    }
    env.update(extra)
    return env


@dataclass
class Namespace:
    """A network namespace with only `lo` up; deleted on close."""

    name: str = field(default_factory=lambda: f"gate0-dx-{os.getpid()}-{secrets.token_hex(3)}")

    def __post_init__(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True, timeout=20)
        subprocess.run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True, timeout=20)

    def argv(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)


def run_cli(home: Path, ns: Namespace, env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """`directus <args>` to completion inside the namespace (bootstrap); its output."""
    with tempfile.TemporaryDirectory(prefix="gate0-directus-") as cwd:
        out = subprocess.run(ns.argv(str(home / "node_modules" / ".bin" / "directus"), *args), cwd=cwd,
                             env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"directus {' '.join(args)}: {(out.stderr or out.stdout).strip()[-2000:]}")
    return out.stdout


@dataclass
class App:
    """A running `directus start` in its own namespace and process group."""

    home: Path
    env: dict[str, str]
    ns: Namespace = field(default_factory=Namespace)
    proc: subprocess.Popen[bytes] | None = None
    cwd: str = ""
    log: Path | None = None

    def start(self) -> App:
        self.cwd = tempfile.mkdtemp(prefix="gate0-directus-run-", dir="/var/tmp")
        self.log = Path(self.cwd) / "directus.log"
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(self.ns.argv(str(self.home / "node_modules" / ".bin" / "directus"),
                                                      "start"),
                                         cwd=self.cwd, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def ping(self) -> bool:
        code = ("import urllib.request,sys;"
                "r=urllib.request.urlopen('http://127.0.0.1:8055/server/ping',timeout=2);"
                "sys.exit(0 if r.status==200 else 1)")
        out = subprocess.run(self.ns.argv("python3", "-c", code), capture_output=True, timeout=15)
        return out.returncode == 0

    def wait_ready(self) -> None:
        deadline = time.monotonic() + PING_SECONDS
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"directus start exited {self.proc.returncode}: {self.tail()}")
            if self.ping():
                return
            time.sleep(1)
        raise RuntimeError(f"directus did not answer /server/ping within {PING_SECONDS} s: {self.tail()}")

    def tail(self) -> str:
        try:
            return (self.log.read_text(errors="replace") if self.log else "")[-1500:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.ns.close()
        if self.cwd:
            shutil.rmtree(self.cwd, ignore_errors=True)


def bootstrap(lab: Lab, home: Path, database: str = PROD) -> float:
    """A fresh database owned by the app role, bootstrapped by a real Directus; seconds taken."""
    drop(lab, database)
    admin(lab, f'CREATE DATABASE "{database}" OWNER {APP_ROLE}')
    # Production's access: the app (owner), the read-only role; PUBLIC (the clone admin) none.
    lab.execute("postgres", f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC')
    lab.execute("postgres", f'GRANT CONNECT ON DATABASE "{database}" TO context_pack_readonly')
    ns = Namespace()
    start = time.monotonic()
    try:
        run_cli(home, ns, app_env(lab, database), "bootstrap")
    finally:
        ns.close()
    took = time.monotonic() - start
    with lab.connect(database) as conn, conn.cursor() as cur:
        cur.execute(f"SET ROLE {APP_ROLE}")
        cur.execute("GRANT USAGE ON SCHEMA public TO context_pack_readonly")
        cur.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO context_pack_readonly")
    conn.close()
    return took


def make_clone(lab: Lab, clone: str, source: str = PROD) -> None:
    """CREATE DATABASE ... TEMPLATE production, then what must be revoked: the app's and PUBLIC's
    CONNECT, the objects moved to the clone admin; the read-only role loses its grants there."""
    drop(lab, clone)
    admin(lab, f'CREATE DATABASE "{clone}" TEMPLATE "{source}" OWNER workflow_admin')
    lab.execute("postgres",
                f'REVOKE ALL ON DATABASE "{clone}" FROM PUBLIC, {APP_ROLE}, context_pack_readonly')
    with lab.connect(clone) as conn, conn.cursor() as cur:
        # Not REASSIGN OWNED: it would hand over the app's databases (production) too.
        cur.execute(OWN_TO_ADMIN)
        cur.execute("REVOKE ALL ON SCHEMA public FROM context_pack_readonly")
        cur.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM context_pack_readonly")
    conn.close()


# The clone's relations owned by the app role, handed to the clone admin (sequences of a serial
# column follow their table).
OWN_TO_ADMIN = f"""
DO $$DECLARE r record; BEGIN
FOR r IN SELECT c.oid::regclass AS rel,
                CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                               WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS kind
         FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relowner = '{APP_ROLE}'::regrole
           AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
           AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend AS d
                                               WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
LOOP EXECUTE format('ALTER %s %s OWNER TO workflow_admin', r.kind, r.rel); END LOOP; END$$"""


def admin(lab: Lab, statement: str, database: str = "postgres") -> None:
    """One statement as the lab's superuser outside any transaction block (CREATE/DROP DATABASE):
    psycopg2's `with connection` would open one even in autocommit."""
    conn = lab.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def drop(lab: Lab, database: str) -> None:
    admin(lab, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


FLOW_ID = "9c0ffee0-0000-4000-8000-00000000f10a"
OP_ID = "9c0ffee0-0000-4000-8000-0000000000a1"


def add_flow(lab: Lab, database: str, name: str, status: str = "active") -> None:
    """A schedule flow (every minute) whose one operation is an HTTP `request` (to a loopback
    address inside the app's namespace: nothing leaves it)."""
    with lab.connect(database) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO directus_flows (id, name, status, trigger, accountability, options) "
                    "VALUES (%s, %s, %s, 'schedule', 'all', '{\"cron\": \"* * * * *\"}')",
                    (FLOW_ID, name, status))
        cur.execute("INSERT INTO directus_operations "
                    "(id, name, key, type, position_x, position_y, options, flow) "
                    "VALUES (%s, 'Ping', 'ping_out', 'request', 19, 1, "
                    "'{\"method\": \"GET\", \"url\": \"http://127.0.0.1:9/\"}', %s)", (OP_ID, FLOW_ID))
        cur.execute("UPDATE directus_flows SET operation = %s WHERE id = %s", (OP_ID, FLOW_ID))
    conn.close()
