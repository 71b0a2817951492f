"""gate0.core's gate0_container.py: docker inspect's answers turned into an address, or one-line errors.

Pure functions with a scripted runner; the real `docker inspect` over SSH is exercised in test_topo.py.
"""

from __future__ import annotations

import json

import pytest
from ansible_collections.gate0.core.plugins.module_utils.gate0_container import (
    container_address,
    container_env,
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
