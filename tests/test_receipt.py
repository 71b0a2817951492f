"""The gate0 receipt (sign on the gate, verify before a mutation) and the seed's decisions as outputs.

Unit tests of the pure functions (canonical JSON, HMAC-SHA256, the decisions) beside real
ansible-playbook runs on the lab: a mutation (playbooks/clone_apply.yml) refuses a hand-made, edited,
expired, replayed-to-a-recreated-clone receipt and a clone that gained a foreign session; it proceeds
with a genuine receipt; without a secret it re-runs the whole clone gate and says so.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.gate0.core.plugins.module_utils import gate0_decisions as gd
from conftest import CLONE_DB, PROD_DB, REPO, Lab, lab_env, load_plugin, run_playbook
from gaterun import cached_fact
from test_consumers import clone_identity, counted_clone

gr = load_plugin("roles/gate0/action_plugins/gate0_receipt.py")

APPLY = "playbooks/clone_apply.yml"
_ROLE_VARS = yaml.safe_load((REPO / "roles/gate0/vars/main.yml").read_text())
RECHECKED = len(_ROLE_VARS["__gate0_recheck_checks"])  # what a verified receipt re-checks on the clone
CLONE_CHECKS = len([i for i in _ROLE_VARS["__gate0_check_ids"] if i.startswith("clone.")])  # the whole gate
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
    assert gr.protected_overrides({"gate0_receipt_secret": "", "gate0": {}}) == ["gate0_receipt_secret"]
    assert gr.override_problem([]) is None
    assert gr.override_problem(["gate0_receipt_secret"]).startswith(
        "extra vars set gate0_receipt_secret, which never come from launch input")


def test_the_key_is_resolved_with_every_extra_var_withheld() -> None:
    task_vars = {"gate0_receipt_secret": "{{ k }}", "k": "launcher", "kept": 1,
                 "vars": {"k": "launcher"}, "hostvars": {"lab": {"k": "launcher"}}}
    out = gr.without_extra_vars(task_vars, {"k": "launcher"})
    assert out == {"gate0_receipt_secret": "{{ k }}", "kept": 1,
                   "vars": {"gate0_receipt_secret": "{{ k }}", "kept": 1}}


def test_the_receipt_covers_the_whole_production_section() -> None:
    signed = gr.sign(fact(), SECRET)
    assert signed["receipt"]["production"]["sha256"] == gr.section_sha256(fact()["production"])
    edits = (("counts", {"ospa": 1}), ("volatile", ["ospa"]), ("counters", {"t": {"n_tup_ins": 0}}))
    for key, value in edits:
        edited = copy.deepcopy(signed)
        edited["production"][key] = value
        assert gr.verify_problem(edited, SECRET, "lab", CLONE_DB) == (
            "edited: gate0 production differ from its signed receipt"), key
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
    fields = {"checked_at": now, "clone": counted_clone(lab, now), **over}
    return gr.sign(fact(**fields), lab.password("gate0_receipt"))


def apply(tmp_path: Path, gate0: dict[str, Any] | None, *extra: str, env_extra: dict[str, str] | None = None
          ) -> Any:
    path = tmp_path / "vars.json"
    path.write_text(json.dumps({**({"gate0": gate0} if gate0 is not None else {}), **ROLLBACK_ONE}))
    return run_playbook(APPLY, "-e", f"@{path}", *extra, env_extra=env_extra)


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
    assert f"gate0 required: {RECHECKED} clone checks pass now (receipt verified)" in flat(r.stdout)
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
    refused(r, "gate0 refuses to accept a gate0 record: extra vars set gate0_required_record, which never "
               "come from launch input")


def test_a_receipt_for_a_dropped_and_recreated_clone_is_refused(fresh_lab: Lab, tmp_path: Path) -> None:
    receipt = lab_signed(fresh_lab)
    fresh_lab.reset()  # the clone is dropped and recreated from its template: same name, new oid
    refused(apply(tmp_path, receipt), "verifying gate0 against the clone: database_oid is ")


def test_without_a_secret_the_whole_clone_gate_runs_again(fresh_lab: Lab, tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    hand_made = fact(clone=counted_clone(fresh_lab, now), checked_at=now)
    no_key = {"GATE0_RECEIPT_SECRET": ""}  # set but empty: no key, and the inventory's is not read
    ok = apply(tmp_path, hand_made, env_extra=no_key)
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert ("gate0 receipt NOT verified: GATE0_RECEIPT_SECRET is set but empty (no receipt key; "
            "gate0_receipt_secret is then not read)") in flat(ok.stdout)
    assert (f"gate0 required: {CLONE_CHECKS} clone checks pass now "
            "(whole clone gate re-run, receipt not verified)") in flat(ok.stdout)
    assert "1 statement(s), rolled back" in flat(ok.stdout)
    fresh_lab.execute(CLONE_DB, "UPDATE event_type_registry SET active = true "
                                "WHERE event_type = (SELECT min(event_type) FROM event_type_registry)")
    bad = apply(tmp_path, hand_made, env_extra=no_key)
    # Fails, naming the active event type; and the test's own session that made it so (the interval).
    refused(bad, "gate0 required: the whole clone gate (re-run: no receipt secret) fails: "
                 "clone.foreign_sessions: 1 session(s) established on the clone since clone_apply at")
    assert "; clone.dispatch_disabled: 1 active in event_type_registry" in flat(bad.stdout)


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


# --- issue 20: a launcher signs a receipt with a key of their own ------------------------------------

ATTACKER_KEY = "attacker-key-0123456789"
FORGED_ROW = "forged-commit"
COMMIT_ONE = {"gate0_apply_mode": "commit", "gate0_apply_statements": [
    {"query": "INSERT INTO governance_scan_cursor (cursor_name, watermark, events_seen) VALUES (%s, %s, 0)",
     "args": [FORGED_ROW, "wm-forged"]}]}
REFUSED_KEY = ("gate0 refuses to accept a gate0 record: extra vars set gate0_receipt_secret, which never "
               "come from launch input")


@pytest.fixture(scope="module")
def forged(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The issue's attack: a gate0 run that FAILs, its cached fact flipped to PASS and re-signed."""
    lab.reset()
    reports = tmp_path_factory.mktemp("failing")
    r = run_playbook("playbooks/gate0.yml", "-e", "gate0_disk_min_free_percent=99.9",
                     "-e", json.dumps({"gate0_report_dir": str(reports)}), env_extra=_cache(reports))
    assert r.returncode != 0 and "disk.headroom" in r.stdout, r.stdout[-3000:]
    cached = _cached_gate0(reports)
    assert cached["passed"] is False and cached["receipt"]["tag"], cached.get("receipt")
    flipped = {k: v for k, v in cached.items() if k != "receipt"}
    flipped["passed"] = True
    flipped["checks"] = [{**c, "status": "pass"} if c["status"] == "fail" else c for c in flipped["checks"]]
    flipped["decisions"]["clone_objectives"]["decision"] = "GO"
    return gr.sign(flipped, ATTACKER_KEY)


def _cache(where: Path) -> dict[str, str]:
    """The fact cache of a run, in a directory of the test's own (read back as an attacker would)."""
    return {"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(where / "facts")}


def _cached_gate0(where: Path) -> dict[str, Any]:
    """The `gate0` fact as ansible-core 2.19's jsonfile cache keeps it (<prefix>lab: a payload; the fact is
    plain JSON, as the gate0_verdict action returns it)."""
    (path,) = (where / "facts").glob("*lab")
    cached = json.loads(json.loads(path.read_text())["__payload__"])["gate0"]
    assert "__ansible_type" not in json.dumps(cached)
    return cached


def _forged_rows(lab: Lab) -> int:
    return int(lab.scalar(CLONE_DB, "SELECT count(*) FROM governance_scan_cursor WHERE cursor_name = %s",
                          (FORGED_ROW,)))


def _one_line(text: str, needle: str) -> None:
    """One failure, on one line: ansible-playbook's single [ERROR] line opens with the message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # ansible-runner's output is coloured
    errors = [line for line in text.splitlines() if line.startswith("[ERROR]: ")]
    assert len(errors) == 1 and needle[:60] in errors[0], text[-3000:]
    assert needle in flat(text), text[-3000:]


@pytest.mark.parametrize(("carrier", "env_extra"), [
    ("gate0", None), ("gate0_hosts", None), ("gate0", {"GATE0_RECEIPT_SECRET": ""})],
    ids=["gate0", "gate0_hosts", "empty-env"])
def test_a_receipt_signed_with_a_launch_time_key_is_refused(
        lab: Lab, forged: dict[str, Any], tmp_path: Path, carrier: str, env_extra: dict[str, str] | None,
) -> None:
    """`clone_apply.yml -e @forged.json` (gate0 or gate0_hosts, the key, a commit): nothing committed."""
    record = forged if carrier == "gate0" else {"lab": forged}
    path = tmp_path / "forged.json"
    path.write_text(json.dumps({carrier: record, "gate0_receipt_secret": ATTACKER_KEY, **COMMIT_ONE}))
    r = run_playbook(APPLY, "-e", f"@{path}", env_extra=env_extra)
    assert r.returncode != 0, r.stdout[-3000:]
    _one_line(r.stdout, REFUSED_KEY)
    assert "statement(s)" not in r.stdout and "receipt verified" not in r.stdout
    assert _forged_rows(lab) == 0


def test_the_forged_receipt_is_refused_only_for_its_key(lab: Lab, forged: dict[str, Any], tmp_path: Path,
                                                        ) -> None:
    """Control: with the attacker's key where a key may come from, the same record would pass (its
    clone session counter read again: the tests before this one connected to the clone to count rows,
    which require would refuse as sessions since the gate)."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    unsigned = {k: v for k, v in forged.items() if k != "receipt"}
    counter = counted_clone(lab, now)["sessions"]
    control = gr.sign({**unsigned, "clone": {**forged["clone"], "sessions": counter}}, ATTACKER_KEY)
    assert apply(tmp_path, control, env_extra={"GATE0_RECEIPT_SECRET": ATTACKER_KEY}).returncode == 0
    refused(apply(tmp_path, forged),
            "gate0 receipt refused: forged or edited: the receipt's tag does not match")


def test_a_key_template_drawing_on_extra_vars_is_refused(lab: Lab, forged: dict[str, Any], tmp_path: Path,
                                                         ) -> None:
    """An inventory key built from a variable a launcher can set: resolved without extra vars, it fails."""
    inventory = tmp_path / "key.yml"
    inventory.write_text(json.dumps({"gate0_lab": {"hosts": {"lab": {
        "gate0_receipt_secret": "{{ gate0_test_receipt_key }}"}}}}))
    path = tmp_path / "forged.json"
    path.write_text(json.dumps({"gate0": forged, "gate0_test_receipt_key": ATTACKER_KEY, **COMMIT_ONE}))
    r = run_playbook(APPLY, "-i", str(REPO / "inventories" / "lab"), "-i", str(inventory), "-e", f"@{path}",
                     env_extra={"GATE0_LAB_DIR": str(lab.dir)})
    assert r.returncode != 0, r.stdout[-3000:]
    _one_line(r.stdout, "gate0_receipt: reading gate0_receipt_secret (extra vars withheld): ")
    assert "gate0_test_receipt_key" in flat(r.stdout) and "statement(s)" not in r.stdout
    assert _forged_rows(lab) == 0


def test_the_gate_refuses_to_sign_with_a_launch_time_key(lab: Lab, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    r = run_playbook("playbooks/gate0.yml", "-e", json.dumps({"gate0_receipt_secret": ATTACKER_KEY,
                                                              "gate0_report_dir": str(reports)}),
                     env_extra=_cache(tmp_path))
    assert r.returncode != 0, r.stdout[-3000:]
    assert "gate0 refuses to sign its verdict: extra vars set gate0_receipt_secret" in flat(r.stderr)
    _one_line(r.stdout, "gate0 FAIL on lab: extra vars set gate0_receipt_secret, which never come from")
    # The refusal comes before the fact takes the verdict: it keeps the run's "not passed" mark, unsigned.
    cached = cached_fact(tmp_path / "facts")
    assert cached is not None and cached["passed"] is False
    assert (cached.get("receipt") or {}).get("tag") is None
    assert ATTACKER_KEY not in r.stdout + "".join(p.read_text() for p in reports.iterdir())


# What gate0 computes itself, handed in as launch input: extra vars outrank register and set_fact, so
# every task after the verdict that read `__gate0_verdict` would read the launcher's instead.
FORGED_VERDICT = {"__gate0_verdict": {"gate0": {"passed": True, "checks": []}, "md_path": "forged",
                                      "sessions": None}}


@pytest.mark.parametrize("args", [(), ("--skip-tags", "always"), ("--tags", "prod", "--skip-tags", "always")],
                         ids=["whole-run", "role-skipped", "role-skipped-gate-tag"])
def test_a_launch_time_verdict_never_passes_the_gate(lab: Lab, tmp_path: Path, args: tuple[str, ...]) -> None:
    """`gate0.yml -e '{"__gate0_verdict": {"gate0": {"passed": true}}}'` (with the role skipped too: the
    playbook's last check reads the same variable): FAIL, one line naming it; no PASS, no passed fact."""
    reports = tmp_path / "reports"
    r = run_playbook("playbooks/gate0.yml", *args,
                     "-e", json.dumps({**FORGED_VERDICT, "gate0_report_dir": str(reports)}),
                     env_extra=_cache(tmp_path))
    assert r.returncode != 0, r.stdout[-3000:]
    assert "gate0 PASS" not in r.stdout, r.stdout[-3000:]
    _one_line(r.stdout, "gate0 FAIL on lab: extra vars set __gate0_verdict, which never come from launch")
    cached = cached_fact(tmp_path / "facts")
    assert cached is None if args else cached["passed"] is False, cached


@pytest.mark.parametrize("args", [("--skip-tags", "always"), ("--tags", "prod", "--skip-tags", "always"),
                                  ("--skip-tags", "tagged"), ("--tags", "nosuchtag", "--skip-tags", "always"),
                                  ("--tags", "clone,disk", "--skip-tags", "always,disk"),
                                  ("--skip-tags", "always", "-e", '{"ansible_skip_tags": []}')],
                         ids=["always", "gate-tag", "tagged", "unknown-tag", "gate-tags-some-skipped",
                              "launch-input-tags"])
def test_a_run_that_skips_the_role_fails(lab: Lab, tmp_path: Path, args: tuple[str, ...]) -> None:
    """Tags that skip every task of the role leave no verdict: the playbook's last check FAILs, naming
    the host, instead of an exit code 0 for a gate that checked nothing."""
    r = run_playbook("playbooks/gate0.yml", *args, env_extra=_cache(tmp_path))
    assert r.returncode != 0, r.stdout[-3000:]
    _one_line(r.stdout, "gate0 FAIL: no verdict from host(s) lab")


def test_an_inventory_variable_named_like_the_verdict_is_no_verdict(lab: Lab, tmp_path: Path) -> None:
    """Whoever edits the inventory cannot hand the playbook's every-host check a verdict: with the role
    skipped, a host variable `__gate0_verdict` was taken for one (exit 0, nothing checked). Only what
    this run registered counts; the same inventory with the role run still passes."""
    host_vars = tmp_path / "inv" / "host_vars"
    host_vars.mkdir(parents=True)
    (host_vars / "lab.yml").write_text("__gate0_verdict: {gate0: {passed: true}}\n")
    inv = ("-i", "inventories/lab", "-i", str(tmp_path / "inv"))
    r = run_playbook("playbooks/gate0.yml", *inv, "--skip-tags", "always", env_extra=_cache(tmp_path))
    assert r.returncode != 0, r.stdout[-3000:]
    _one_line(r.stdout, "gate0 FAIL: no verdict from host(s) lab")
    r = run_playbook("playbooks/gate0.yml", *inv, env_extra=_cache(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:]


def test_the_attack_through_ansible_runner_is_refused(
        lab: Lab, forged: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As AWX hands it on: extravars and the credential's env (receipt input left empty)."""
    import ansible_runner
    env = lab_env()
    monkeypatch.setenv("PATH", env["PATH"])
    private = tmp_path / "runner"
    private.mkdir()
    r = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook=APPLY,
        inventory=str(REPO / "inventories" / "lab"), quiet=True, timeout=300,
        envvars={"ANSIBLE_CONFIG": env["ANSIBLE_CONFIG"], "GATE0_LAB_PORT": env["GATE0_LAB_PORT"],
                 "GATE0_RECEIPT_SECRET": ""},
        extravars={"gate0": forged, "gate0_receipt_secret": ATTACKER_KEY, **COMMIT_ONE})
    out = r.stdout.read()
    assert r.status == "failed" and r.rc != 0, out[-3000:]
    _one_line(out, REFUSED_KEY)
    assert _forged_rows(lab) == 0
