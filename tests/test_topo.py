"""The real topology: gate0 over SSH on a database host whose PostgreSQL runs in a container.

The topology (topo/topo.sh, `make topo-up`) is brought up once for the session, or reused when it
is already up, and taken down at the end only if this session started it. Select with `-m topo`.
Needs root (network namespaces, podman); CI runs as root.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, lab_env, run_playbook

TOPO_SH = REPO / "topo" / "topo.sh"
INVENTORY = "inventories/topo"
CLONE_DB = "directus_gov_test_20260602"
NEW_CLONE = "directus_gov_test_20261126"  # the refresh's target: directus_gov_test_<8 digits>

pytestmark = pytest.mark.topo


@dataclass
class Topo:
    """Handle on the running topology: its facts (topo/topo.sh env), the docker CLI, SSH."""

    env: dict[str, str]
    was_up: bool = False
    down_s: float = 0.0

    @property
    def host(self) -> str:
        return self.env["GATE0_TOPO_HOST"]

    @property
    def postgres_ip(self) -> str:
        return self.env["GATE0_TOPO_POSTGRES_IP"]

    def sh(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TOPO_SH), *args], env=lab_env(), capture_output=True, text=True,
                              timeout=timeout)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, DOCKER_HOST=self.env["GATE0_TOPO_DOCKER_HOST"])
        return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=60,
                              check=check)

    def ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        keys = Path(self.env["GATE0_TOPO_STATE"]) / "ssh"
        return subprocess.run(
            ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes",
             "-i", str(keys / "id_ed25519"), "-o", f"UserKnownHostsFile={keys / 'known_hosts'}",
             "-o", "StrictHostKeyChecking=yes", "-o", "ControlPath=none", f"root@{self.host}", command],
            capture_output=True, text=True, timeout=60)

    def psql(self, db: str, query: str) -> str:
        """One query as the container's superuser over its local socket (the seed's own channel).

        psql's exit 2 (no connection: the server still starting after a test recreated the container)
        is retried, 30 times a second at most; any other failure raises at once."""
        for _ in range(30):
            out = self.docker("exec", "-i", "postgres", "psql", "-X", "-At", "-w", "-v", "ON_ERROR_STOP=1",
                              "-U", "postgres", "-d", db, "-c", query, check=False)
            if out.returncode != 2:
                break
            time.sleep(1)
        if out.returncode != 0:
            raise AssertionError(f"psql -d {db} -c {query!r}: exit {out.returncode}: {out.stderr.strip()}")
        return out.stdout.strip()

    def databases(self) -> list[str]:
        return self.psql("postgres", "SELECT datname FROM pg_database WHERE NOT datistemplate").split()

    def restore(self) -> None:
        """Back to the seed topology: postgres running and the app bound to production."""
        self.sh("directus", "directus", timeout=60)
        up = self.sh("up")
        assert up.returncode == 0, up.stderr
        self.env = read_env()  # a recreated container may have another address


def read_env() -> dict[str, str]:
    out = subprocess.run([str(TOPO_SH), "env"], env=lab_env(), capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def topo() -> Iterator[Topo]:
    if os.geteuid() != 0:
        pytest.skip("the topology needs root (network namespaces, podman)")
    was_up = subprocess.run([str(TOPO_SH), "status"], env=lab_env(), capture_output=True).returncode == 0
    start = time.monotonic()
    up = subprocess.run([str(TOPO_SH), "up"], env=lab_env(), capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        pytest.fail(f"topo/topo.sh up failed: {up.stderr.strip()[-2000:]}")
    print(f"topology {'reused' if was_up else 'up'} in {time.monotonic() - start:.1f} s")
    handle = Topo(env=read_env(), was_up=was_up)
    yield handle
    if not was_up and not handle.down_s:
        try:
            subprocess.run([str(TOPO_SH), "down"], env=lab_env(), capture_output=True, timeout=300)
        except subprocess.TimeoutExpired:
            warnings.warn("topo/topo.sh down took over 300 s; run it again to finish the teardown",
                          stacklevel=1)


def test_controller_cannot_reach_the_container_address(topo: Topo) -> None:
    """The root namespace (the controller) has an unreachable route for the container subnet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    start = time.monotonic()
    with pytest.raises(OSError) as exc:
        sock.connect((topo.postgres_ip, 5432))
    sock.close()
    assert exc.value.errno == errno.EHOSTUNREACH
    assert time.monotonic() - start < 1, "the attempt must fail at once, not time out"


def test_database_host_reaches_postgres_and_runs_the_real_docker_cli(topo: Topo) -> None:
    """Over SSH, the host's `docker inspect` names the container's address and pg answers there."""
    fmt = '{{.State.Running}} {{(index .NetworkSettings.Networks "gate0").IPAddress}}'
    out = topo.ssh(f"docker inspect -f '{fmt}' postgres"
                   f" && /usr/lib/postgresql/*/bin/pg_isready -h {topo.postgres_ip} -p 5432")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"true {topo.postgres_ip}"
    assert "accepting connections" in out.stdout


def test_app_container_is_bound_to_production(topo: Topo) -> None:
    env = json.loads(topo.docker("inspect", "-f", "{{json .Config.Env}}", "directus").stdout)
    assert "DB_DATABASE=directus" in env


# --- gate0 through the topology -------------------------------------------------------------------

@dataclass
class Run:
    proc: subprocess.CompletedProcess[str]
    report: dict

    @property
    def checks(self) -> dict[str, dict]:
        return {c["id"]: c for c in self.report["checks"]}

    @property
    def failed(self) -> dict[str, str]:
        return {c["id"]: c["message"] for c in self.report["checks"] if c["status"] == "fail"}


def own_cache(tmp_path: Path) -> dict[str, str]:
    """A test's own fact cache: its gate compares the clone's session counter with its own runs only
    (the tests before it connected to the clone, which the next gate would rightly see)."""
    return {"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / ".facts")}


def gate0(tmp_path: Path, *extra: str) -> Run:
    """ansible-playbook playbooks/gate0.yml on the topology's host; its JSON report."""
    reports = tmp_path / "reports"
    proc = run_playbook("-i", INVENTORY, "playbooks/gate0.yml", "-e", f"gate0_report_dir={reports}", *extra,
                        timeout=300, env_extra=own_cache(tmp_path))
    found = sorted(reports.glob("gate0-dbhost-*.json"))
    assert found, f"no report written (rc {proc.returncode}): {proc.stdout[-3000:]}{proc.stderr[-2000:]}"
    return Run(proc=proc, report=json.loads(found[-1].read_text()))


@pytest.fixture
def fresh_topo(topo: Topo) -> Iterator[Topo]:
    """The topology for a test that changes it (containers): put back to the seed state afterwards."""
    yield topo
    topo.restore()


@pytest.fixture(scope="session")
def python_without_psycopg2(topo: Topo) -> str:
    """A Python on the database host without psycopg2 (a bare venv of the system's Python)."""
    venv = Path(topo.env["GATE0_TOPO_STATE"]) / "py-no-psycopg2"
    if not (venv / "bin" / "python").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)],
                       check=True, timeout=120)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import psycopg2"], capture_output=True).returncode != 0
    return python


def test_gate0_over_ssh_passes(topo: Topo, tmp_path: Path) -> None:
    run = gate0(tmp_path, "-e", "gate0_install_psycopg2=true")
    assert run.proc.returncode == 0, run.failed or run.proc.stdout[-3000:]
    assert run.report["verdict"] == "PASS"
    assert "gate0 PASS" in run.proc.stdout
    # The modules connected from the host to the container's address (the controller cannot).
    assert run.report["production"]["identity"]["address"] == topo.postgres_ip


def test_app_bound_to_the_clone_fails_app_binding(fresh_topo: Topo, tmp_path: Path) -> None:
    """The app container recreated with DB_DATABASE set to the clone: clone.app_binding FAILs."""
    assert fresh_topo.sh("directus", CLONE_DB, timeout=60).returncode == 0
    env = json.loads(fresh_topo.docker("inspect", "-f", "{{json .Config.Env}}", "directus").stdout)
    assert f"DB_DATABASE={CLONE_DB}" in env
    run = gate0(tmp_path)
    assert run.proc.returncode != 0
    assert list(run.failed) == ["clone.app_binding"], run.failed
    assert CLONE_DB in run.failed["clone.app_binding"]


def test_app_container_missing_fails_app_binding_naming_it(fresh_topo: Topo, tmp_path: Path) -> None:
    fresh_topo.docker("rm", "-f", "directus")
    run = gate0(tmp_path)
    assert run.proc.returncode != 0
    assert list(run.failed) == ["clone.app_binding"], run.failed
    assert "'directus'" in run.failed["clone.app_binding"]
    assert "no such container" in run.failed["clone.app_binding"]


def test_postgres_container_stopped_fails_naming_it(fresh_topo: Topo, tmp_path: Path) -> None:
    fresh_topo.docker("stop", "-t", "5", "postgres")
    run = gate0(tmp_path)
    assert run.proc.returncode != 0
    prod = {i: m for i, m in run.failed.items() if i.startswith("prod.")}
    clone = {i: m for i, m in run.failed.items() if i.startswith("clone.")}
    assert prod and clone, run.failed
    for message in [*prod.values(), *clone.values()]:
        assert "container 'postgres'" in message and "not running" in message, message
        assert "\n" not in message and "Traceback" not in message
    assert "Traceback" not in run.proc.stdout + run.proc.stderr


def test_host_without_psycopg2_says_how_to_install_it(topo: Topo, tmp_path: Path,
                                                      python_without_psycopg2: str) -> None:
    run = gate0(tmp_path, "-e", f"ansible_python_interpreter={python_without_psycopg2}")
    assert run.proc.returncode != 0
    assert run.failed
    for message in run.failed.values():
        if "psycopg2" in message:
            assert "python3-psycopg2" in message and "\n" not in message, message
    assert any("python3-psycopg2" in m for m in run.failed.values())
    assert "Traceback" not in run.proc.stdout + run.proc.stderr


# --- the operator's journey on the topology as shipped (README "Running against a real host") -----

def playbook(*args: str, timeout: float = 300, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_playbook("-i", INVENTORY, *args, timeout=timeout,
                        env_extra=own_cache(cache) if cache is not None else None)


def one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Steps:
    """Each step's wall time, printed at the end of the journey."""

    times: list[tuple[str, float]]
    cache: Path | None = None

    def run(self, name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        proc = playbook(*args, timeout=timeout, cache=self.cache)
        self.times.append((name, time.monotonic() - start))
        return proc


def test_journey_gate_apply_exit_refresh_recreate(fresh_topo: Topo, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """gate0 PASS -> apply (commit: the table in the clone only; rollback: no residue) -> exit PASS
    -> refresh into a new clone (its own gates PASS) -> the postgres container recreated at a new
    address: gate0 and the apply still work, by the container's name."""
    topo, steps = fresh_topo, Steps([], tmp_path)
    # The journey's client tools run inside the container (`docker exec`, the seed's channel). Where
    # podman itself runs inside a chroot (tests/fresh_debian.sh's fresh root), an exec'd process
    # escapes the container: entering the container's mount namespace (setns) resets its root to the
    # namespace's own, the machine's real root, since runc's pivot_root replaced only the chroot's
    # root mount. There the journey cannot be walked, and it says so; anywhere else it runs.
    inside = topo.docker("exec", "postgres", "test", "-f", "/opt/gate0/pg-entry.sh", check=False)
    if inside.returncode != 0:
        pytest.skip("`docker exec postgres` does not run inside the container's root here (podman in a "
                    "chroot: the exec's root is the machine's); the journey's client tools need it")
    reports = f"gate0_report_dir={tmp_path / 'reports'}"
    # What an earlier, interrupted run of this test may have left (the recreation below resets all).
    topo.psql(CLONE_DB, "DROP TABLE IF EXISTS gate0_t_m")
    topo.psql("postgres", f"DROP DATABASE IF EXISTS {NEW_CLONE} WITH (FORCE)")
    dbs = set(topo.databases())

    gate = steps.run("gate0.yml", "playbooks/gate0.yml", "-e", reports)
    assert gate.returncode == 0 and "gate0 PASS" in gate.stdout, gate.stdout[-3000:]

    commit = steps.run("clone_apply.yml commit", "playbooks/clone_apply.yml", "-e",
                       '{"gate0_apply_statements": ["CREATE TABLE gate0_t_m (id int)"], '
                       '"gate0_apply_mode": "commit"}')
    assert commit.returncode == 0, commit.stdout[-3000:]
    assert "receipt verified" in commit.stdout and "1 statement(s), committed" in one_line(commit.stdout)

    rollback = steps.run("clone_apply.yml rollback", "playbooks/clone_apply.yml", "-e",
                         '{"gate0_apply_statements": ["CREATE TABLE gate0_t_r (id int)"]}')
    assert rollback.returncode == 0, rollback.stdout[-3000:]
    assert "1 statement(s), rolled back" in one_line(rollback.stdout)

    exit_ = steps.run("gate0_exit.yml", "playbooks/gate0_exit.yml")
    assert exit_.returncode == 0, exit_.stdout[-3000:]
    assert "gate0 exit PASS: production unchanged" in exit_.stdout
    # Looked at only now: a look at the clone is a session gate0 did not open, which the next
    # require or exit would rightly refuse (the interval from the gate to the mutation).
    where = [db for db in topo.databases() if topo.psql(db, "SELECT to_regclass('public.gate0_t_m')")]
    assert where == [CLONE_DB]
    assert [db for db in topo.databases() if topo.psql(db, "SELECT to_regclass('public.gate0_t_r')")] == []

    refresh = steps.run("clone_refresh.yml", "playbooks/clone_refresh.yml", "-e",
                        f"gate0_clone_database={NEW_CLONE}", "-e", reports)
    assert refresh.returncode == 0, refresh.stdout[-4000:]
    assert one_line(refresh.stdout).count("gate0 PASS on dbhost") == 2
    assert "gate0 exit PASS" in refresh.stdout
    last = json.loads(sorted((tmp_path / "reports").glob("gate0-dbhost-*.json"))[-1].read_text())
    assert last["clone"]["database"] == NEW_CLONE and last["verdict"] == "PASS"
    assert set(topo.databases()) == dbs | {NEW_CLONE}
    assert topo.psql(NEW_CLONE, "SELECT count(*) FROM event_type_registry WHERE active") == "0"

    # The container recreated (its data is the seed's again) at a new address: found by name.
    old_ip = topo.postgres_ip
    topo.docker("rm", "-f", "postgres")
    # A placeholder holds an address so that the new container cannot get the old one back.
    topo.docker("run", "-d", "--name", "gate0-t-placeholder", "--network", "gate0",
                topo.env["GATE0_TOPO_IMAGE"], "sleep", "600")
    try:
        up = topo.sh("up", timeout=120)
        assert up.returncode == 0, up.stderr
    finally:
        topo.docker("rm", "-f", "gate0-t-placeholder", check=False)
    topo.env = read_env()
    assert topo.postgres_ip != old_ip
    regate = steps.run("gate0.yml (recreated)", "playbooks/gate0.yml", "-e", reports)
    assert regate.returncode == 0, regate.stdout[-3000:]
    again = steps.run("clone_apply.yml (recreated)", "playbooks/clone_apply.yml", "-e",
                      '{"gate0_apply_statements": ["SELECT 1"]}')
    assert again.returncode == 0, again.stdout[-3000:]
    assert "1 statement(s), rolled back" in one_line(again.stdout)
    with capsys.disabled():
        print("\ntopology journey: " + ", ".join(f"{n} {t:.1f} s" for n, t in steps.times)
              + f"; total {sum(t for _, t in steps.times):.1f} s")


def test_second_container_bound_to_the_clone_fails_naming_it(fresh_topo: Topo, tmp_path: Path) -> None:
    fresh_topo.docker("run", "-d", "--name", "gate0-t-worker", "--network", "gate0",
                      "-e", f"DATABASE_URL=postgres://worker:pw@postgres:5432/{CLONE_DB}",
                      fresh_topo.env["GATE0_TOPO_IMAGE"], "sleep", "600")
    try:
        run = gate0(tmp_path)
    finally:
        fresh_topo.docker("rm", "-f", "gate0-t-worker", check=False)
    assert run.proc.returncode != 0
    assert list(run.failed) == ["clone.app_binding"], run.failed
    assert run.failed["clone.app_binding"] == (
        f"bound to the clone '{CLONE_DB}': container 'gate0-t-worker' (DATABASE_URL={CLONE_DB})")
    assert "pw@" not in json.dumps(run.report)


def test_app_container_stopped_is_named_with_its_state(fresh_topo: Topo, tmp_path: Path) -> None:
    """A stopped app container passes (it runs nothing; its configuration binds production), and the
    message says it is stopped."""
    fresh_topo.docker("stop", "-t", "1", "directus")
    run = gate0(tmp_path)
    assert run.proc.returncode == 0, run.failed
    message = run.checks["clone.app_binding"]["message"]
    assert "DB_DATABASE=directus in directus, its configuration as the container is exited" in message


def test_topo_down_takes_seconds(topo: Topo, capsys: pytest.CaptureFixture[str]) -> None:
    """Last: every `docker exec` above (the refresh's, the health checks') leaves nothing that holds
    the teardown. Brought back up when this session found it up."""
    start = time.monotonic()
    down = topo.sh("down", timeout=300)
    topo.down_s = time.monotonic() - start
    with capsys.disabled():
        print(f"\ntopo-down in {topo.down_s:.1f} s")
    assert down.returncode == 0, down.stderr
    assert topo.down_s < 30
    if topo.was_up:
        assert topo.sh("up", timeout=300).returncode == 0
