"""`make demo` prints the verdict, every check's line and the report paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from conftest import REPO, Lab, lab_env


def test_make_demo_prints_pass_every_check_and_the_reports(lab: Lab) -> None:
    r = subprocess.run(["make", "-s", "demo"], cwd=REPO, env=lab_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert re.search(r"^gate0 PASS on lab \(run ", r.stdout, re.M)
    ids = re.findall(r"^  (?:PASS|SKIPPED)\s+(\S+)", r.stdout, re.M)
    expected = yaml.safe_load((REPO / "roles/gate0/vars/main.yml").read_text())["__gate0_check_ids"]
    assert ids == expected  # every check, in report order
    paths = re.findall(r"(?:report:|^)\s+(\S+gate0-lab-\S+\.(?:json|md))$", r.stdout, re.M)
    assert len(paths) == 2 and all((REPO / p).is_file() or Path(p).is_file() for p in paths)
