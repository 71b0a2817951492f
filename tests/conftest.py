"""Shared fixtures: the real lab cluster (lab/lab.sh), connections to it, and playbook runs."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import psycopg2
import psycopg2.sql
import pytest

REPO = Path(__file__).resolve().parent.parent
LAB_SH = REPO / "lab" / "lab.sh"
PROD_DB = "directus"
CLONE_DB = "directus_gov_test_20260602"

# The shared code, importable by unit tests as Ansible finds it: the in-project collection gate0.core
# (ansible.cfg collections_path), `from ansible_collections.gate0.core.plugins.module_utils import ...`.
sys.path.insert(0, str(REPO / "collections"))
# The repository root: the tests import the library modules (`from library import clone_sql`) and each
# other's helpers (`from tests.conftest import ...`) from it, whatever pytest's import mode.
sys.path.insert(0, str(REPO))


_PLUGINS: dict[str, ModuleType] = {}


def load_plugin(path: str) -> ModuleType:
    """The one way tests load what Ansible loads by path: a module of library/ or an action plugin
    ("library/clone_sql.py", "roles/gate0/action_plugins/gate0_receipt.py"), once per session.
    The rules and judges they use are gate0.core's module_utils: tests import those directly."""
    if path not in _PLUGINS:
        spec = importlib.util.spec_from_file_location("gate0_test_" + Path(path).stem, REPO / path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _PLUGINS[path] = module
    return _PLUGINS[path]


def _resolve_major() -> None:
    """GATE0_PG=MAJOR (make ... PG=MAJOR, the matrix): run against that major's own lab.

    lab/pg.sh installs the major's binaries when missing and names its lab (GATE0_PG_BIN,
    GATE0_LAB_DIR, GATE0_LAB_PORT); every later lab.sh and ansible-playbook call inherits them.
    GATE0_LAB_MAJOR records the major asked for (tests/test_versions.py checks the server is it).
    """
    major = os.environ.pop("GATE0_PG", "")
    if not major:
        return
    pg_sh = REPO / "lab" / "pg.sh"
    for cmd in ("bin", "env"):
        out = subprocess.run([str(pg_sh), cmd, major], capture_output=True, text=True)
        if out.returncode != 0:
            raise pytest.UsageError(f"lab/pg.sh {cmd} {major}: {out.stderr.strip()}")
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        os.environ[key] = shlex.split(value)[0]
    os.environ["GATE0_LAB_MAJOR"] = major


_resolve_major()


@dataclass
class Lab:
    """Handle on the running lab: the superuser's socket DSN, role passwords, reset."""

    dir: Path
    port: int

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.dir} port={self.port} user=postgres dbname={dbname}"

    def password(self, role: str) -> str:
        return (self.dir / "secrets" / f"{role}.pw").read_text().strip()

    def connect(self, dbname: str = "postgres", user: str | None = None, **kw: object):
        """A superuser socket connection, or `user` over TCP loopback with its lab password."""
        if user is None:
            conn = psycopg2.connect(self.dsn(dbname), **kw)
        else:
            conn = psycopg2.connect(host="127.0.0.1", port=self.port, dbname=dbname, user=user,
                                    password=self.password(user), connect_timeout=5, **kw)
        conn.autocommit = True
        return conn

    def query(self, dbname: str, sql: str, params: tuple | None = None) -> list[tuple]:
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows

    def scalar(self, dbname: str, sql: str, params: tuple | None = None) -> object:
        return self.query(dbname, sql, params)[0][0]

    def execute(self, dbname: str, sql: str, params: tuple | None = None) -> None:
        self.query(dbname, sql, params)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS ... WITH (FORCE), outside a transaction block (it refuses one)."""
        conn = self.connect("postgres")
        with conn.cursor() as cur:
            cur.execute(psycopg2.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg2.sql.Identifier(name)))
        conn.close()

    def reset(self) -> None:
        subprocess.run([str(LAB_SH), "reset"], check=True, capture_output=True, env=lab_env())

    @contextlib.contextmanager
    def logins(self) -> Iterator[list[str]]:
        """The roles, other than the superuser, that logged in to the lab while the block ran, and
        "tcp:<host>" for every TCP connection received (logged in or not; the superuser's own
        statements here use the socket): the server's own log (log_connections, on for the block
        only: new sessions read it on reload)."""
        log = self.dir / "postgres.log"

        def setting(statement: str) -> None:  # outside a transaction block (ALTER SYSTEM refuses one)
            conn = self.connect("postgres")
            with conn.cursor() as cur:
                cur.execute(statement)
                cur.execute("SELECT pg_reload_conf()")
            conn.close()

        setting("ALTER SYSTEM SET log_connections = on")
        start = log.stat().st_size
        seen: list[str] = []
        try:
            yield seen
        finally:
            setting("ALTER SYSTEM RESET log_connections")
            with log.open("rb") as fh:
                fh.seek(start)
                text = fh.read().decode(errors="replace")
            seen += [u for u in re.findall(r"connection authorized: user=(\S+)", text) if u != "postgres"]
            # A TCP connection that never logged in (refused, failed authentication) is one too.
            seen += [f"tcp:{h}" for h in re.findall(r"connection received: host=([^\s\[]\S*)", text)]


def lab_dir() -> Path:
    """The lab's directory: GATE0_LAB_DIR when set (another major's lab, the matrix), else .lab."""
    return Path(os.environ.get("GATE0_LAB_DIR") or REPO / ".lab")


def lab_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GATE0_LAB_PORT", "55432")
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    venv_bin = REPO / ".venv" / "bin"
    if venv_bin.is_dir():
        env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}"
    return env


@pytest.fixture(autouse=True)
def _own_fact_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own fact cache (every playbook run of the test shares it): gate0's facts - the
    verdict, the clone's kept session counter - never reach the next test, whose own connections to
    the clone would otherwise be sessions its gate rightly sees since the last test's gate0 step."""
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path_factory.mktemp("facts")))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Bring the lab up once for the session; stop it at the end if this session started it."""
    env = lab_env()
    was_running = subprocess.run([str(LAB_SH), "status"], env=env, capture_output=True).returncode == 0
    up = subprocess.run([str(LAB_SH), "up"], env=env, capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"lab/lab.sh up failed: {up.stderr.strip()}")
    lab = Lab(dir=lab_dir(), port=int(env["GATE0_LAB_PORT"]))
    lab.reset()
    yield lab
    if not was_running:
        subprocess.run([str(LAB_SH), "down"], env=env, capture_output=True)


@pytest.fixture
def fresh_lab(lab: Lab) -> Iterator[Lab]:
    """The lab for a test that changes it: put back to the seed state afterwards."""
    yield lab
    lab.reset()


def run_playbook(*args: str, env_extra: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ansible-playbook from the project root; output captured as text."""
    env = lab_env()
    env.update(env_extra or {})
    return subprocess.run(["ansible-playbook", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
