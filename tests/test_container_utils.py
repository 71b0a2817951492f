"""gate0.core's gate0_container.py: docker inspect's answers turned into an address, or one-line errors.

Pure functions with a scripted runner; the real `docker inspect` over SSH is exercised in test_topo.py.
"""

from __future__ import annotations

import json

import pytest
from ansible_collections.gate0.core.plugins.module_utils.gate0_container import (
    BINDING_VARIABLES,
    binding_database,
    container_address,
    container_env,
    container_state,
    host_bindings,
    inspect_container,
    resolve_address,
    run_subprocess,
)
from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import GateError, login_host


def runner(rc: int, out: str = "", err: str = ""):
    calls: list[list[str]] = []

    def run(argv: list[str]) -> tuple[int, str, str]:
        calls.append(argv)
        return rc, out, err

    run.calls = calls  # type: ignore[attr-defined]
    return run


def info(running: bool = True, status: str = "running", networks: dict | None = None,
         env: list[str] | None = None) -> dict:
    return {
        "State": {"Running": running, "Status": status, "Paused": False},
        "NetworkSettings": {
            "Networks": networks if networks is not None else {"gate0": {"IPAddress": "10.0.0.5"}},
        },
        "Config": {"Env": env if env is not None else ["PATH=/usr/bin", "DB_DATABASE=directus", "X=a=b"]},
    }


def test_inspect_runs_the_cli_on_the_named_container() -> None:
    run = runner(0, json.dumps([info()]))
    assert inspect_container("postgres", "podman", run)["State"]["Running"] is True
    assert run.calls == [["podman", "inspect", "--type", "container", "postgres"]]


MISSING = "inspecting container 'postgres': no such container on the database host"
NO_CLI = ("inspecting container 'postgres': the 'docker' command is not installed on the database host "
          "(set gate0_container_cli)")
NO_ENGINE = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."


@pytest.mark.parametrize(("rc", "err", "expected"), [
    (1, "Error: No such container: postgres\n", MISSING),
    (1, "Error response from daemon: no such container\n", MISSING),
    (127, "docker: command not found", NO_CLI),
    (1, NO_ENGINE + "\n", f"inspecting container 'postgres': docker inspect: {NO_ENGINE}"),
])
def test_inspect_failures_are_one_line_and_name_the_container(rc: int, err: str, expected: str) -> None:
    with pytest.raises(GateError) as exc:
        inspect_container("postgres", "docker", runner(rc, "", err))
    assert str(exc.value) == expected


@pytest.mark.parametrize("out", ["not json", "[]", json.dumps([info(), info()])])
def test_inspect_refuses_unreadable_output(out: str) -> None:
    with pytest.raises(GateError, match=r"^inspecting container 'postgres': "):
        inspect_container("postgres", run=runner(0, out))


def test_inspect_needs_a_name() -> None:
    with pytest.raises(GateError, match="no container name given"):
        inspect_container("", run=runner(0, "[]"))


def test_address_of_the_only_network() -> None:
    assert container_address(info(), "postgres") == "10.0.0.5"


def test_address_on_a_named_network_among_several() -> None:
    nets = {"a": {"IPAddress": "10.0.0.5"}, "b": {"IPAddress": "10.1.0.5"}}
    assert container_address(info(networks=nets), "postgres", "b") == "10.1.0.5"
    with pytest.raises(GateError, match=r"several networks \(a, b\): set gate0_container_network"):
        container_address(info(networks=nets), "postgres")
    with pytest.raises(GateError, match=r"no address on network 'c' \(its networks: a, b\)"):
        container_address(info(networks=nets), "postgres", "c")


def test_stopped_container_has_no_address() -> None:
    with pytest.raises(GateError) as exc:
        container_address(info(running=False, status="exited"), "postgres")
    assert str(exc.value) == "resolving container 'postgres': it is not running (state exited)"


def test_host_networking_has_no_address() -> None:
    with pytest.raises(GateError, match="no IP address on any network"):
        container_address(info(networks={"host": {"IPAddress": ""}}), "postgres")


def test_env_is_split_on_the_first_equals_sign() -> None:
    assert container_env(info()) == {"PATH": "/usr/bin", "DB_DATABASE": "directus", "X": "a=b"}
    assert container_env({}) == {}


def test_resolve_address_end_to_end_with_a_scripted_cli() -> None:
    assert resolve_address("postgres", run=runner(0, json.dumps([info()]))) == "10.0.0.5"


def test_run_subprocess_reports_a_missing_program() -> None:
    assert run_subprocess(["/nonexistent/gate0-docker", "inspect"])[0] == 127


def test_login_host_prefers_socket_then_container_then_host() -> None:
    assert login_host({"login_unix_socket": "/run/pg", "login_container": "pg"}) == "/run/pg"
    assert login_host({"login_host": "db.example"}) == "db.example"
    assert login_host({"login_host": ""}) is None
    with pytest.raises(GateError, match="the '/nonexistent/docker' command is not installed"):
        login_host({"login_container": "postgres", "container_cli": "/nonexistent/docker"})


def test_clone_probe_never_counts_an_unfound_container_as_refused() -> None:
    """pg_fingerprint's refused-clone attempt: a container it cannot locate fails, naming it."""
    from ansible_collections.gate0.core.plugins.module_utils.gate0_fingerprint import clone_attempt

    params = {"login_host": "", "login_unix_socket": "", "login_port": 5432, "login_user": "ro",
              "login_db": "directus", "clone_database": "directus_gov_test_1", "login_container": "",
              "clone_login_container": "pgclone", "container_cli": "/nonexistent/docker",
              "connect_timeout": 1}
    with pytest.raises(GateError, match=r"^inspecting container 'pgclone': the '/nonexistent/docker' "):
        clone_attempt(params)


# --- every live container's binding (clone.app_binding's evidence) -------------------------------

def scripted(*answers: tuple[int, str, str]):
    """A runner answering each call in turn (ps, then inspect)."""
    calls: list[list[str]] = []
    queue = list(answers)

    def run(argv: list[str]) -> tuple[int, str, str]:
        calls.append(argv)
        return queue.pop(0)

    run.calls = calls  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize(("value", "database"), [
    ("directus", "directus"),
    ("postgres://app:s3cret@db:5432/directus_gov_test_1?sslmode=disable", "directus_gov_test_1"),
    ("postgresql://db/my%20db", "my db"),
    ("postgres://db", ""),
])
def test_binding_database_keeps_the_database_never_the_password(value: str, database: str) -> None:
    assert binding_database(value) == database


def test_restarting_is_a_state_of_its_own() -> None:
    restarting = {"State": {"Running": True, "Restarting": True, "Status": "restarting"}}
    assert container_state(restarting) == "restarting"
    assert container_state(info(running=False, status="exited")) == "exited"


def test_host_bindings_lists_every_live_container_with_its_databases() -> None:
    a = {**info(env=["DB_DATABASE=directus"]), "Name": "/directus"}
    b = {**info(env=["DATABASE_URL=postgres://u:pw@h/directus_gov_test_1", "OTHER=x"]), "Name": "worker"}
    run = scripted((0, "id1\nid2\n", ""), (0, json.dumps([a, b]), ""))
    got = host_bindings(BINDING_VARIABLES, "docker", run)
    assert got == [
        {"name": "directus", "state": "running", "bindings": {"DB_DATABASE": "directus"}},
        {"name": "worker", "state": "running", "bindings": {"DATABASE_URL": "directus_gov_test_1"}}]
    assert run.calls == [["docker", "ps", "-q", "--no-trunc"],  # type: ignore[attr-defined]
                         ["docker", "inspect", "--type", "container", "id1", "id2"]]
    assert "pw" not in json.dumps(got)


def test_host_bindings_with_no_container_is_an_empty_list() -> None:
    assert host_bindings(BINDING_VARIABLES, "docker", scripted((0, "", ""))) == []


@pytest.mark.parametrize(("answers", "expected"), [
    ([(127, "", "")], "listing the host's containers: the 'docker' command is not installed"),
    ([(1, "", "Cannot connect to the Docker daemon\n")], "containers: docker ps: Cannot connect"),
    ([(0, "id1\n", ""), (1, "[]", "Error: no such container id1")], "docker inspect: Error: no such"),
])
def test_host_bindings_unread_is_an_error_never_an_empty_list(answers: list, expected: str) -> None:
    with pytest.raises(GateError, match=expected):
        host_bindings(BINDING_VARIABLES, "docker", scripted(*answers))
