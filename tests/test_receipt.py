"""The gate0 receipt (sign on the gate, verify before a mutation) and the seed's decisions as outputs.

Unit tests of the pure functions (canonical JSON, HMAC-SHA256, the decisions) beside real
ansible-playbook runs on the lab: a mutation (playbooks/clone_apply.yml) refuses a hand-made, edited,
expired, replayed-to-a-recreated-clone receipt and a clone that gained a foreign session; it proceeds
with a genuine receipt; without a secret it re-runs the whole clone gate and says so.
"""

from __future__ import annotations

import copy
import datetime
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CLONE_DB, PROD_DB, REPO, Lab, run_playbook
from test_consumers import clone_identity


def _load(name: str, path: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gr = _load("gate0_receipt", "roles/gate0/action_plugins/gate0_receipt.py")
gd = _load("gate0_decisions", "roles/gate0/filter_plugins/gate0_decisions.py")

APPLY = "playbooks/clone_apply.yml"
SECRET = "s" * 32
ROLLBACK_ONE = {"gate0_apply_mode": "rollback", "gate0_apply_statements": [
    {"query": "INSERT INTO governance_scan_cursor (cursor_name, watermark, events_seen) VALUES (%s, %s, 0)",
     "args": ["receipt-test", "wm-test"]}]}
IDENT = {"database": CLONE_DB, "database_oid": 16420, "address": "127.0.0.1", "port": 5432,
         "version": "15.8", "version_num": 150008, "system_identifier": "7441"}


def fact(**over: Any) -> dict[str, Any]:
    base = {"passed": True, "run_id": "r-1", "checked_at": "2026-06-02T12:00:00Z", "host": "lab",
            "gates": ["prod", "clone", "disk"],
            "production": {"database": PROD_DB, "digest": "ab" * 32, "counts": {"ospa": 0}},
            "clone": {"database": CLONE_DB, "identity": dict(IDENT)}, "checks": [],
            "decisions": {"clone_objectives": {"decision": "GO"}, "persistent_seed": {"decision": "NO-GO"}}}
    base.update(over)
    return base


# --- unit: canonical JSON and HMAC ----------------------------------------------------------------

def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert gr.canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    assert gr.canonical_json({"x": {"z": 1, "y": 2}}) == gr.canonical_json({"x": {"y": 2, "z": 1}})
    with pytest.raises(TypeError):
        gr.canonical_json({"a": float("nan")})
    with pytest.raises(TypeError):
        gr.canonical_json({"a": object()})


def test_sign_then_verify_and_the_tag_is_hmac_sha256() -> None:
    import hashlib
    import hmac
    signed = gr.sign(fact(), SECRET)
    rec = signed["receipt"]
    body = {k: v for k, v in rec.items() if k != "tag"}
    assert rec["tag"] == hmac.new(SECRET.encode(), gr.canonical_json(body), hashlib.sha256).hexdigest()
    assert rec["alg"] == "HMAC-SHA256"
    assert rec["decisions"] == {"clone_objectives": "GO", "persistent_seed": "NO-GO"}
    assert gr.verify_problem(signed, SECRET, "lab", CLONE_DB) is None
    # A JSON round trip (AWX artifacts, extra vars) keeps it valid.
    assert gr.verify_problem(json.loads(json.dumps(signed)), SECRET, "lab", CLONE_DB) is None


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, (*prefix, k))]
    return [prefix]


def _set(doc: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _tampered(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return value[:-1]
    return f"{value}x"


SIGNED_PATHS = _paths({k: v for k, v in gr.sign(fact(), SECRET)["receipt"].items() if k != "tag"})


@pytest.mark.parametrize("path", SIGNED_PATHS, ids=[".".join(p) for p in SIGNED_PATHS])
def test_tampering_any_signed_field_of_the_receipt_fails(path: tuple) -> None:
    signed = gr.sign(fact(), SECRET)
    receipt = copy.deepcopy(signed["receipt"])
    _set(receipt, path, _tampered(_get(receipt, path)))
    problem = gr.verify_problem({**signed, "receipt": receipt}, SECRET, "lab", CLONE_DB)
    assert problem and problem.startswith("forged or edited: the receipt's tag does not match"), problem


def _get(doc: dict, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@pytest.mark.parametrize(("path", "value"), [
    (("passed",), False), (("run_id",), "other"), (("checked_at",), "2099-01-01T00:00:00Z"),
    (("clone", "identity", "database_oid"), 99), (("production", "digest"), "00"), (("gates",), ["prod"]),
    (("decisions", "persistent_seed", "decision"), "GO"),
])
def test_editing_the_record_outside_its_receipt_fails(path: tuple, value: Any) -> None:
    signed = gr.sign(fact(), SECRET)
    _set(signed, path, value)
    problem = gr.verify_problem(signed, SECRET, "lab", CLONE_DB)
    assert problem and problem.startswith(f"edited: gate0 {path[0]} differ"), problem


def test_forged_unsigned_wrong_secret_replayed() -> None:
    assert gr.verify_problem(fact(), SECRET, "lab", CLONE_DB).startswith(
        "forged: the gate0 record carries no receipt")
    assert gr.verify_problem(gr.sign(fact(), ""), SECRET, "lab", CLONE_DB).startswith(
        "forged: the receipt is not signed")
    other_secret = gr.sign(fact(), "t" * 32)
    assert gr.verify_problem(other_secret, SECRET, "lab", CLONE_DB).startswith("forged or edited")
    forged_tag = gr.sign(fact(), SECRET)
    forged_tag["receipt"]["tag"] = "é" * 64  # not even hex: still a clean refusal
    assert gr.verify_problem(forged_tag, SECRET, "lab", CLONE_DB).startswith("forged or edited")
    assert gr.verify_problem(gr.sign(fact(), SECRET), SECRET, "lab2", CLONE_DB) == (
        "replayed to another host: the receipt is for host 'lab', this is 'lab2'")
    assert gr.verify_problem(gr.sign(fact(), SECRET), SECRET, "lab", "directus_gov_test_20260603") == (
        f"replayed to another clone: the receipt is for {CLONE_DB!r}, "
        "this clone is 'directus_gov_test_20260603'")
    assert gr.verify_problem(None, SECRET, "lab", CLONE_DB).startswith("no gate0 record for this host")


def test_the_tag_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []
    real = gr.hmac.compare_digest
    monkeypatch.setattr(gr.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    assert gr.verify_problem(gr.sign(fact(), SECRET), SECRET, "lab", CLONE_DB) is None
    assert len(calls) == 1


def test_protected_overrides_and_secret_length() -> None:
    assert gr.protected_overrides({"gate0": {}, "gate0_hosts": {}, "gate0_clone_database": "x"}) == []
    assert gr.protected_overrides({"__gate0_fact": 1, "gate0_required_record": 2, "a": 3}) == [
        "__gate0_fact", "gate0_required_record"]
    assert gr.secret_problem("short") == "gate0_receipt_secret is shorter than 16 characters"
    assert gr.secret_problem("") is None and gr.secret_problem(SECRET) is None


# --- unit: decisions ------------------------------------------------------------------------------

def _checks(**status: str) -> list[dict[str, Any]]:
    ids = ["prod.allowlist", "prod.baseline", "clone.name_pattern", "clone.foreign_sessions", "disk.headroom"]
    return [{"id": i, "gate": i.split(".")[0], "status": status.get(i.replace(".", "_"), "pass"),
             "message": f"{i} says so"} for i in ids]


SEED = {"target": "ospa_approved", "required": 1,
        "targets": {"ospa_approved": {"relation": "os_proposal_approvals", "where": "decision = 'approve'"}}}
ALL = ["prod", "clone", "disk"]


@pytest.mark.parametrize(("approved", "required", "prod_status", "decision", "reason"), [
    (0, 1, "pass", "NO-GO", "gate closed: 0 of 1 required approvals in os_proposal_approvals"),
    (1, 1, "pass", "GO", "1 of 1 required approvals in os_proposal_approvals"),
    (1, 2, "pass", "NO-GO", "gate closed: 1 of 2 required approvals in os_proposal_approvals"),
    (3, 2, "pass", "GO", "3 of 2 required approvals in os_proposal_approvals"),
    (1, 1, "fail", "NO-GO", "1 of 1 required approvals, but the production gate did not pass"),
    (5, 0, "pass", "NO-GO", "gate closed: gate0_persistent_seed_approvals_required is 0, must be at least 1"),
    (None, 1, "pass", "NO-GO", "gate closed: approvals in os_proposal_approvals not counted"),
])
def test_persistent_seed_decision(approved: int | None, required: int, prod_status: str, decision: str,
                                  reason: str) -> None:
    counts = {"ospa": 7} if approved is None else {"ospa": 7, "ospa_approved": approved}
    out = gd.gate0_decisions(_checks(prod_baseline=prod_status), ALL, {"counts": counts, "digest": "d"},
                             {**SEED, "required": required})
    seed = out["persistent_seed"]
    assert (seed["decision"], seed["reason"]) == (decision, reason)
    assert seed["evidence"][0].startswith("os_proposal_approvals: ")


def test_clone_objectives_decision() -> None:
    go = gd.gate0_decisions(_checks(), ALL, {}, SEED)["clone_objectives"]
    assert go["decision"] == "GO"
    assert go["evidence"][1] == "clone isolation gate PASS: 2 pass, 0 fail, 0 skipped"
    nogo = gd.gate0_decisions(_checks(clone_foreign_sessions="fail"), ALL, {}, SEED)["clone_objectives"]
    assert nogo["decision"] == "NO-GO"
    assert "clone.foreign_sessions fail: clone.foreign_sessions says so" in nogo["evidence"]
    notrun = gd.gate0_decisions(_checks(), ["prod", "disk"], {}, SEED)["clone_objectives"]
    assert notrun["decision"] == "NO-GO" and "clone isolation gate NOT RUN" in notrun["evidence"][1]


# --- the lab: real gate0 runs and real mutations ---------------------------------------------------

def lab_signed(lab: Lab, **over: Any) -> dict[str, Any]:
    """A record signed with the lab's secret, as gate0 signs it, for the clone as it is now."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"checked_at": now, "clone": {"database": CLONE_DB, "identity": clone_identity(lab)}, **over}
    return gr.sign(fact(**fields), lab.password("gate0_receipt"))


def apply(tmp_path: Path, gate0: dict[str, Any] | None, *extra: str) -> Any:
    path = tmp_path / "vars.json"
    path.write_text(json.dumps({**({"gate0": gate0} if gate0 is not None else {}), **ROLLBACK_ONE}))
    return run_playbook(APPLY, "-e", f"@{path}", *extra)


def flat(text: str) -> str:
    """Output with line wrapping undone (the YAML callback folds long messages)."""
    return " ".join(text.split())


def refused(r: Any, needle: str) -> None:
    assert r.returncode != 0, r.stdout[-3000:]
    assert needle in flat(r.stdout), r.stdout[-3000:]
    assert "statement(s), rolled back" not in flat(r.stdout)


@pytest.fixture(scope="module")
def gated(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real gate0 run (verbose, to prove the secret stays out of its log): record, report, output."""
    lab.reset()
    out = tmp_path_factory.mktemp("gated") / "gate0.json"
    r = run_playbook("tests/playbooks/gate0_record.yml", "-vvv", "-e", f"gate0_record_file={out}")
    assert r.returncode == 0, r.stdout[-3000:]
    record = json.loads(out.read_text())
    report = sorted((REPO / "reports").glob("gate0-lab-*.json"))[-1]
    return {"record": record, "stdout": r.stdout + r.stderr, "json": json.loads(report.read_text()),
            "md": report.with_suffix(".md").read_text()}


def test_the_gate_signs_a_receipt_and_reports_the_decisions(lab: Lab, gated: dict[str, Any]) -> None:
    rec, secret = gated["record"], lab.password("gate0_receipt")
    assert gr.verify_problem(rec, secret, "lab", CLONE_DB) is None
    assert rec["decisions"]["clone_objectives"]["decision"] == "GO"
    seed = rec["decisions"]["persistent_seed"]
    assert (seed["decision"], seed["approved"], seed["required"]) == ("NO-GO", 0, 1)
    assert gated["json"]["verdict"] == "PASS" and gated["json"]["receipt"] == rec["receipt"]
    assert gated["json"]["decisions"] == rec["decisions"]
    md = gated["md"]
    assert ("**Production persistent seed: NO-GO** — gate closed: 0 of 1 required approvals in "
            "os_proposal_approvals") in md
    assert "**May proceed — clone objectives: GO.**" in md
    assert "**May not proceed — production persistent seed: NO-GO (gate closed).**" in md
    assert "- os_proposal_approvals: 0 approved row(s) in production's snapshot" in md
    for text in (gated["stdout"], json.dumps(gated["json"]), md, json.dumps(rec)):
        assert secret not in text


def test_a_genuine_receipt_lets_the_mutation_proceed(lab: Lab, gated: dict[str, Any], tmp_path: Path) -> None:
    r = apply(tmp_path, gated["record"])
    assert r.returncode == 0, r.stdout[-3000:]
    assert "gate0 required: 5 clone checks pass now (receipt verified)" in flat(r.stdout)
    assert "1 statement(s), rolled back" in flat(r.stdout)


def test_a_hand_made_gate0_is_refused(lab: Lab, tmp_path: Path) -> None:
    hand_made = fact(clone={"database": CLONE_DB, "identity": clone_identity(lab)},
                     checked_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    refused(apply(tmp_path, hand_made), "gate0 receipt refused: forged: the gate0 record carries no receipt")


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda g: _set(g, ("receipt", "passed"), True) or _set(g, ("receipt", "run_id"), "mine"),
     "gate0 receipt refused: forged or edited: the receipt's tag does not match its content"),
    (lambda g: _set(g, ("production", "digest"), "0" * 64),
     "gate0 receipt refused: edited: gate0 production differ from its signed receipt"),
], ids=["receipt", "record"])
def test_an_edited_receipt_is_refused(gated: dict[str, Any], tmp_path: Path, edit: Any, needle: str) -> None:
    record = copy.deepcopy(gated["record"])
    edit(record)
    refused(apply(tmp_path, record), needle)


def test_an_expired_receipt_is_refused(lab: Lab, tmp_path: Path) -> None:
    refused(apply(tmp_path, lab_signed(lab, checked_at="2026-01-01T00:00:00Z")), "older than max_age 3600 s")


def test_a_clone_that_gained_a_foreign_session_is_refused(lab: Lab, gated: dict[str, Any],
                                                         tmp_path: Path) -> None:
    other = lab.connect(CLONE_DB, user="workflow_admin", application_name="late_worker")
    try:
        r = apply(tmp_path, gated["record"])
    finally:
        other.close()
    refused(r, "gate0 required: the clone changed since the gate fails: clone.foreign_sessions: 1 foreign on "
               "the clone: pid ")
    assert "app=late_worker" in flat(r.stdout)


def test_extra_vars_cannot_replace_what_gate0_computes(gated: dict[str, Any], tmp_path: Path) -> None:
    r = apply(tmp_path, gated["record"], "-e", json.dumps({"gate0_required_record": fact()}))
    refused(r, "gate0 refuses to accept a gate0 record: extra vars set gate0's own variable(s) "
               "gate0_required_record")


def test_a_receipt_for_a_dropped_and_recreated_clone_is_refused(fresh_lab: Lab, tmp_path: Path) -> None:
    receipt = lab_signed(fresh_lab)
    fresh_lab.reset()  # the clone is dropped and recreated from its template: same name, new oid
    refused(apply(tmp_path, receipt), "verifying gate0 against the clone: database_oid is ")


def test_without_a_secret_the_whole_clone_gate_runs_again(fresh_lab: Lab, tmp_path: Path) -> None:
    hand_made = fact(clone={"database": CLONE_DB, "identity": clone_identity(fresh_lab)},
                     checked_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    ok = apply(tmp_path, hand_made, "-e", "gate0_receipt_secret=")
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert "gate0 receipt NOT verified: no gate0_receipt_secret (nor GATE0_RECEIPT_SECRET)" in flat(ok.stdout)
    assert "gate0 required: 13 clone checks pass now (whole clone gate re-run, receipt not verified)" in \
        flat(ok.stdout)
    assert "1 statement(s), rolled back" in flat(ok.stdout)
    fresh_lab.execute(CLONE_DB, "UPDATE event_type_registry SET active = true "
                                "WHERE event_type = (SELECT min(event_type) FROM event_type_registry)")
    bad = apply(tmp_path, hand_made, "-e", "gate0_receipt_secret=")
    refused(bad, "gate0 required: the whole clone gate (re-run: no receipt secret) fails: "
                 "clone.dispatch_disabled")


def test_approvals_in_production_flip_the_persistent_seed_to_go(fresh_lab: Lab, tmp_path: Path) -> None:
    fresh_lab.execute(PROD_DB, "INSERT INTO os_proposal_approvals (proposal_ref, approver, decision) VALUES "
                               "('seed-1', 'alice', 'approve'), ('seed-1', 'bob', 'reject')")
    out = tmp_path / "gate0.json"
    baseline = {"own": 0, "gap": 210, "inventory": 35, "containment": 35, "scopes": 6, "ruleset": 0,
                "scan_run": 0, "cand_state": 0, "cand_object": 0, "cursor": 0, "gov_emit": 0, "ospa": 2,
                "ospa_approved": 1, "system_issues": 200480, "dot_tools": 309, "idle_in_txn": 0}
    r = run_playbook("tests/playbooks/gate0_record.yml", "-e", f"gate0_record_file={out}",
                     "-e", json.dumps({"gate0_production_baseline": baseline}))
    assert r.returncode == 0, r.stdout[-3000:]
    seed = json.loads(out.read_text())["decisions"]["persistent_seed"]
    assert (seed["decision"], seed["approved"]) == ("GO", 1), seed
    md = sorted((REPO / "reports").glob("gate0-lab-*.md"))[-1].read_text()
    assert ("**May proceed — production persistent seed: GO.** 1 of 1 required approvals in "
            "os_proposal_approvals") in md
