"""gate0 end to end on the lab: PASS, --check gives the same verdict, a FAIL lists every failed check
at once (last on screen), nothing reports changed, and a FAIL replaces a cached PASS."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from conftest import CLONE_DB, REPO, Lab, lab_env, run_playbook


def _cache(tmp_path: Path) -> dict[str, str]:
    """Each test its own fact cache: the next gate compares with the last one kept there."""
    return {"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / ".facts")}


def run(tmp_path: Path, *extra: str) -> tuple[int, str, dict]:
    out_dir = tmp_path / f"r{len([p for p in tmp_path.iterdir() if p.name.startswith('r')])}"
    r = run_playbook("playbooks/gate0.yml", "-e", f"gate0_report_dir={out_dir}", *extra,
                     env_extra=_cache(tmp_path))
    (report,) = sorted(out_dir.glob("gate0-*.json"))
    return r.returncode, r.stdout, json.loads(report.read_text())


def failed_ids(report: dict) -> list[str]:
    return [c["id"] for c in report["checks"] if c["status"] == "fail"]


def cached_gate0(tmp_path: Path) -> str:
    """The gate0 fact as a later, separate Ansible run sees it (the fact cache): 'passed run_id'."""
    r = subprocess.run(["ansible", "lab", "-m", "ansible.builtin.debug", "-a",
                        json.dumps({"msg": "CACHED {{ gate0.passed }} {{ gate0.run_id }}"})],
                       cwd=REPO, env={**lab_env(), **_cache(tmp_path)}, capture_output=True, text=True,
                       timeout=60)
    m = re.search(r"CACHED (\S+ \S+)", r.stdout)
    assert m, r.stdout + r.stderr
    return m.group(1)


def test_pass_and_check_mode_give_the_same_verdict_and_nothing_changes(lab: Lab, tmp_path: Path) -> None:
    rc, out, report = run(tmp_path)
    assert rc == 0, out[-3000:]
    assert report["verdict"] == "PASS" and failed_ids(report) == []
    assert cached_gate0(tmp_path) == f"True {report['run_id']}"  # a later, separate run sees it
    assert re.search(r"lab\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", out)
    rc2, out2, report2 = run(tmp_path, "--check")
    assert rc2 == 0, out2[-3000:]
    assert [c["status"] for c in report2["checks"]] == [c["status"] for c in report["checks"]]
    assert re.search(r"lab\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", out2)
    md = next((tmp_path / "r1").glob("*.md")).read_text()
    assert md.splitlines()[2].startswith("**Verdict: PASS**")


def test_an_unsafe_clone_fails_with_every_failed_check_listed_once(fresh_lab: Lab, tmp_path: Path) -> None:
    rc0, out0, passed = run(tmp_path)
    assert rc0 == 0, out0[-3000:]
    assert cached_gate0(tmp_path) == f"True {passed['run_id']}"
    # Made unsafe by hand: those two sessions on the clone since the PASS are seen too (the history).
    fresh_lab.execute(CLONE_DB, "UPDATE event_type_registry SET active = true "
                                "WHERE event_type = (SELECT min(event_type) FROM event_type_registry)")
    fresh_lab.execute(CLONE_DB, "INSERT INTO dot_iu_runtime_lease (worker_id, iu_code, expires_at) "
                                "VALUES ('w1', 'iu', now() + interval '1 hour')")
    rc, out, report = run(tmp_path)
    assert rc != 0
    assert report["verdict"] == "FAIL"
    assert cached_gate0(tmp_path) == f"False {report['run_id']}"  # the FAIL replaced the cached PASS
    assert failed_ids(report) == ["clone.foreign_sessions", "clone.dispatch_disabled", "clone.worker_lease"]
    tail = out[out.rindex("fatal: [lab]"):]
    lines = [ln.strip() for ln in tail.splitlines()]
    head = lines.index("gate0 FAIL on lab: 3 of 22 checks failed")
    assert lines[head + 1].startswith("clone.foreign_sessions: 2 session(s) established on the clone since")
    assert lines[head + 2].startswith("clone.dispatch_disabled: ")
    assert lines[head + 3].startswith("clone.worker_lease: ")
    # Nothing else but the recap follows the list.
    assert "TASK [" not in tail
    # --check: the same verdict on the clone's state (the sessions are history now: the failed run
    # kept its reading, and nobody came since).
    rc2, _out2, report2 = run(tmp_path, "--check")
    assert rc2 != 0 and failed_ids(report2) == ["clone.dispatch_disabled", "clone.worker_lease"]
