"""lab/pg.sh: each supported major has its own binaries, lab directory and port; unknown majors fail."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from conftest import REPO

PG_SH = REPO / "lab" / "pg.sh"


def pg_sh(*args: str, port: str = "55432") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE0_")} | {"GATE0_LAB_PORT": port}
    return subprocess.run([str(PG_SH), *args], env=env, capture_output=True, text=True, timeout=60)


def lab_of(major: str) -> dict[str, str]:
    out = pg_sh("env", major)
    assert out.returncode == 0, out.stderr
    return {k: shlex.split(v)[0] for k, _, v in (line.partition("=") for line in out.stdout.splitlines())}


def test_majors_are_the_supported_ones() -> None:
    assert pg_sh("majors").stdout.split() == ["14", "15", "16", "17", "18"]


def test_each_major_has_its_own_lab() -> None:
    default = pg_sh("default").stdout.strip()
    labs = {m: lab_of(m) for m in pg_sh("majors").stdout.split()}
    assert labs[default]["GATE0_LAB_PORT"] == "55432"
    assert labs[default]["GATE0_LAB_DIR"] == str(REPO / ".lab")
    ports = [int(lab["GATE0_LAB_PORT"]) for lab in labs.values()]
    dirs = [lab["GATE0_LAB_DIR"] for lab in labs.values()]
    assert len(set(dirs)) == len(dirs)
    # Distinct, and none on the default lab's second-lab port (its port + 1).
    assert len(set(ports)) == len(ports) and 55433 not in ports
    for major, lab in labs.items():
        if major != default:
            assert lab["GATE0_LAB_DIR"].startswith(str(REPO / ".cache" / "lab")), "not an ignored directory"
        assert f"/{major}/" in lab["GATE0_PG_BIN"] or f"-{major}." in lab["GATE0_PG_BIN"]


def test_ports_follow_the_base_port() -> None:
    assert "GATE0_LAB_PORT=60004\n" in pg_sh("env", "16", port="60000").stdout


@pytest.mark.parametrize("major", ["13", "19", "x"])
def test_unsupported_major_refused_in_one_line(major: str) -> None:
    out = pg_sh("bin", major)
    assert out.returncode != 0
    assert out.stderr.strip() == f"pg: PostgreSQL {major} is not supported (supported: 14 15 16 17 18)"
