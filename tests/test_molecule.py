"""Molecule scenarios (delegated driver, the local lab), run the way `make test` runs everything."""

from __future__ import annotations

import os
import subprocess

from conftest import REPO, Lab, lab_env


def molecule(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = lab_env()
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes and uses its own ansible.cfg
    env["NO_COLOR"] = "1"
    env["PY_COLORS"] = "0"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env.setdefault("HOME", os.path.expanduser("~"))
    return subprocess.run(["molecule", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_default_scenario_passes_is_idempotent_and_verifies(lab: Lab) -> None:
    r = molecule("test", "-s", "default")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "idempotence" in out


def test_unsafe_clone_scenario_fails_with_the_dispatch_check(fresh_lab: Lab) -> None:
    try:
        prep = molecule("prepare", "-s", "unsafe_clone", "--force")
        assert prep.returncode == 0, (prep.stdout + prep.stderr)[-3000:]
        conv = molecule("converge", "-s", "unsafe_clone")
        out = conv.stdout + conv.stderr
        assert conv.returncode != 0, out[-3000:]
        assert "clone.dispatch_disabled:" in out
        ver = molecule("verify", "-s", "unsafe_clone")
        assert ver.returncode == 0, (ver.stdout + ver.stderr)[-3000:]
    finally:
        clean = molecule("cleanup", "-s", "unsafe_clone")
    assert clean.returncode == 0, (clean.stdout + clean.stderr)[-3000:]
    assert fresh_lab.scalar("directus_gov_test_20260602",
                            "SELECT count(*) FROM event_type_registry WHERE active") == 0
