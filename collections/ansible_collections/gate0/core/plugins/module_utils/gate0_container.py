"""Containers on the database host: a container's state, address and environment via `docker inspect`.

gate0's modules run on the database host (over SSH). When PostgreSQL or the application runs in a
container there, the host's container CLI (the real `docker`, or `podman`, which answers the same
`inspect`) tells where the container listens and how the application is bound. Helpers raise
GateError with a one-line reason naming the container; only a module's main() calls fail_json.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import GateError

# A command runner: argv -> (rc, stdout, stderr). Modules may pass AnsibleModule.run_command.
Runner = Callable[[list[str]], tuple[int, str, str]]

INSPECT_TIMEOUT = 15  # seconds; `docker inspect` answers in milliseconds when the engine is up


def run_subprocess(argv: list[str]) -> tuple[int, str, str]:
    """Run argv without a shell, bounded by INSPECT_TIMEOUT; a missing program is rc 127."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=INSPECT_TIMEOUT, check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"no answer within {INSPECT_TIMEOUT} s"
    return proc.returncode, proc.stdout, proc.stderr


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "failed"


def inspect_container(name: str, cli: str = "docker", run: Runner | None = None) -> dict[str, Any]:
    """`<cli> inspect --type container NAME` as a dict; GateError when it is missing or unreadable."""
    if not name:
        raise GateError("inspecting a container: no container name given")
    rc, out, err = (run or run_subprocess)([cli or "docker", "inspect", "--type", "container", name])
    if rc == 127:
        raise GateError(f"inspecting container {name!r}: the {cli!r} command is not installed on the "
                        "database host (set gate0_container_cli)")
    if rc != 0:
        reason = _last_line(err or out)
        if "no such" in reason.lower():
            raise GateError(f"inspecting container {name!r}: no such container on the database host")
        raise GateError(f"inspecting container {name!r}: {cli} inspect: {reason}")
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise GateError(f"inspecting container {name!r}: unreadable {cli} inspect output ({exc})") from None
    if isinstance(data, list):
        data = data[0] if len(data) == 1 else None
    if not isinstance(data, dict):
        raise GateError(f"inspecting container {name!r}: {cli} inspect did not return one container")
    return data


def container_state(info: dict[str, Any]) -> str:
    """'running', 'exited', 'paused', ... ('unknown' when the engine does not say)."""
    state = info.get("State") or {}
    if isinstance(state, dict):
        if state.get("Paused"):
            return "paused"
        if state.get("Restarting"):
            return "restarting"
        if state.get("Running") is True:
            return "running"
        return str(state.get("Status") or "unknown")
    return str(state or "unknown")


def container_address(info: dict[str, Any], name: str, network: str = "") -> str:
    """The running container's IP address on `network` (or on its only network)."""
    state = container_state(info)
    if state != "running":
        raise GateError(f"resolving container {name!r}: it is not running (state {state})")
    nets = ((info.get("NetworkSettings") or {}).get("Networks") or {})
    addrs = {net: (cfg or {}).get("IPAddress") or "" for net, cfg in nets.items()}
    if network:
        if not addrs.get(network):
            raise GateError(f"resolving container {name!r}: no address on network {network!r} "
                            f"(its networks: {', '.join(sorted(addrs)) or 'none'})")
        return addrs[network]
    with_addr = sorted(net for net, addr in addrs.items() if addr)
    if len(with_addr) == 1:
        return addrs[with_addr[0]]
    if not with_addr:
        raise GateError(f"resolving container {name!r}: it has no IP address on any network "
                        f"(networks: {', '.join(sorted(addrs)) or 'none'}; "
                        "with host networking set the login host instead)")
    raise GateError(f"resolving container {name!r}: it has addresses on several networks "
                    f"({', '.join(with_addr)}): set gate0_container_network")


def container_env(info: dict[str, Any]) -> dict[str, str]:
    """The container's configured environment (Config.Env) as a dict."""
    env: dict[str, str] = {}
    for item in ((info.get("Config") or {}).get("Env") or []):
        key, sep, value = str(item).partition("=")
        if sep:
            env[key] = value
    return env


def resolve_address(name: str, network: str = "", cli: str = "docker", run: Runner | None = None) -> str:
    """Inspect the container `name` on this host and return its address (see container_address)."""
    return container_address(inspect_container(name, cli, run), name, network)


# The environment variables that bind a process to a database: Directus' DB_DATABASE, libpq's
# PGDATABASE, and a DATABASE_URL (postgres://user:password@host/dbname) naming it.
BINDING_VARIABLES = ("DB_DATABASE", "PGDATABASE", "DATABASE_URL")


def binding_database(value: str) -> str:
    """The database a binding value names: the value itself, or a URL's path (no password kept)."""
    if "://" not in value:
        return value
    try:
        return unquote(urlsplit(value).path.lstrip("/"))
    except ValueError:
        return ""


def container_bindings(info: dict[str, Any], variables: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The databases the container's environment binds, by variable (only the variables set)."""
    env = container_env(info)
    return {v: binding_database(env[v]) for v in dict.fromkeys(variables) if v in env}


def container_name(info: dict[str, Any]) -> str:
    """The container's name as the CLI prints it (Docker's leading '/' removed)."""
    return str(info.get("Name") or info.get("Id") or "?").lstrip("/")


def host_bindings(variables: tuple[str, ...] | list[str], cli: str = "docker",
                  run: Runner | None = None) -> list[dict[str, Any]]:
    """Every live container on the host (`<cli> ps`: running, paused, restarting) with its state and
    the databases its environment binds. GateError when the list cannot be read (never an empty
    list in place of an unread one)."""
    runner = run or run_subprocess
    rc, out, err = runner([cli or "docker", "ps", "-q", "--no-trunc"])
    if rc == 127:
        raise GateError(f"listing the host's containers: the {cli!r} command is not installed on the "
                        "database host (set gate0_container_cli)")
    if rc != 0:
        raise GateError(f"listing the host's containers: {cli} ps: {_last_line(err or out)}")
    ids = [line.strip() for line in out.splitlines() if line.strip()]
    if not ids:
        return []
    rc, out, err = runner([cli or "docker", "inspect", "--type", "container", *ids])
    try:
        data = json.loads(out) if out.strip() else None
    except ValueError:
        data = None
    # A container removed between `ps` and `inspect` is missing from the answer (rc 1): not live.
    if not isinstance(data, list) or (rc != 0 and not data):
        raise GateError(f"listing the host's containers: {cli} inspect: {_last_line(err or out)}")
    return [{"name": container_name(info), "state": container_state(info),
             "bindings": container_bindings(info, variables)}
            for info in data if isinstance(info, dict)]
