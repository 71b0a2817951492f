"""clone.dispatch_disabled and the profile's optional sections: the judges (pure functions) and the
observation on the real lab (clone_isolation's code, gate0.core's gate0_clone.py), whose Directus
tables follow Directus 11's real schema (lab/sql/schema.sql)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "roles" / "gate0" / "filter_plugins"))

import clone_checks as cc
from ansible_collections.gate0.core.plugins.module_utils import gate0_clone
from conftest import CLONE_DB, PROD_DB, REPO, Lab, run_playbook

DEFAULTS = yaml.safe_load((REPO / "roles" / "gate0" / "defaults" / "main.yml").read_text())
DIRECTUS_OUTBOUND = DEFAULTS["gate0_clone_directus_outbound"]
SEED_PROFILE = {**DEFAULTS["gate0_clone_profile"],
                "dispatch": {**DEFAULTS["gate0_clone_profile"]["dispatch"], "outbound": DIRECTUS_OUTBOUND}}
# The stock-Directus example's profile (inventories/directus/), its outbound templated like the role does.
EXAMPLE = yaml.safe_load((REPO / "inventories/directus/group_vars/all/profile.yml").read_text())
STOCK_PROFILE = copy.deepcopy(EXAMPLE["gate0_clone_profile"])
STOCK_PROFILE["dispatch"]["outbound"] = {k: v for k, v in DIRECTUS_OUTBOUND.items() if k != "directus_flows"}
OPTIONAL = {"clone.outbox_guard": "outbox", "clone.worker_lease": "lease", "clone.seed_present": "seed",
            "clone.coverage": "coverage", "clone.candidate_state": "candidates"}


def settings(profile: dict[str, Any]) -> dict[str, Any]:
    return {"database": CLONE_DB, "prefix": "directus_gov_test_", "profile": profile, "outbox_probe": True}


def observed(dispatch: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"identity": {"database": CLONE_DB}, "errors": {}, "dispatch": dispatch, **extra}


def registry(rows: int = 3, active: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"relation": "directus_flows", "scope": {}, "rows": rows, "active": active or [],
            "active_count": len(active or [])}


# --- judges (pure) ---------------------------------------------------------------------------------

def test_dispatch_names_each_active_flow_operation_webhook_and_extension() -> None:
    disp = {"registry": registry(2, [{"name": "Ping out", "trigger": "schedule"}]), "outbound": {
        "directus_operations": {"relation": "directus_operations", "rows": 3, "active": 1, "named": [
            {"key": "ping_out", "type": "request", "gate0_parent": "Ping out"}]},
        "directus_webhooks": {"relation": "directus_webhooks", "rows": 1, "active": 1, "named": [
            {"name": "Chat relay", "actions": "create", "collections": "posts"}]},
        "directus_extensions": {"relation": "directus_extensions", "rows": 1, "active": 1, "named": [
            {"folder": "audit-relay", "source": "local"}]}}}
    rec = cc.check_dispatch(observed(disp), settings(STOCK_PROFILE))
    assert rec["status"] == "fail"
    assert rec["message"] == (
        "1 active in directus_flows: 'Ping out' (trigger=schedule); "
        "1 active in directus_operations: 'ping_out' (type=request, in directus_flows 'Ping out'); "
        "1 active in directus_webhooks: 'Chat relay' (actions=create, collections=posts); "
        "1 active in directus_extensions: 'audit-relay' (source=local)")


def test_dispatch_lists_five_and_counts_the_rest() -> None:
    named = [{"name": f"flow {i}", "trigger": "event"} for i in range(20)]
    disp = {"registry": {**registry(30, named), "active_count": 27}, "outbound": {}}
    msg = cc.check_dispatch(observed(disp), settings(STOCK_PROFILE))["message"]
    assert msg.startswith("27 active in directus_flows: 'flow 0' (trigger=event), ")
    assert msg.endswith("'flow 4' (trigger=event) (+22 more)")


def test_dispatch_unnamed_outbound_says_which_key_to_set() -> None:
    prof = copy.deepcopy(STOCK_PROFILE)
    del prof["dispatch"]["outbound"]["directus_webhooks"]["label"]
    disp = {"registry": registry(), "outbound": {
        "directus_webhooks": {"relation": "directus_webhooks", "rows": 1, "active": 1, "named": []}}}
    msg = cc.check_dispatch(observed(disp), settings(prof))["message"]
    assert msg == ("1 active in directus_webhooks (unnamed: the profile's "
                   "dispatch.outbound.directus_webhooks.label is not set)")


@pytest.mark.parametrize(("empty_ok", "status"), [(True, "pass"), (False, "fail"), (None, "fail")])
def test_empty_registry_passes_only_where_the_profile_says_so(empty_ok: bool | None, status: str) -> None:
    prof = copy.deepcopy(STOCK_PROFILE)
    prof["dispatch"].pop("registry_empty_ok", None)
    if empty_ok is not None:
        prof["dispatch"]["registry_empty_ok"] = empty_ok
    disp = {"registry": registry(0), "outbound": {
        "directus_flows": {"relation": "directus_flows", "rows": 0, "active": 0, "named": []}}}
    rec = cc.check_dispatch(observed(disp), settings(prof))
    assert rec["status"] == status, rec
    if status == "pass":
        assert rec["message"].startswith("directus_flows has no rows in scope (the profile accepts")
    else:
        assert "registry_empty_ok: true accepts an empty registry" in rec["message"]


def test_an_empty_registry_with_an_active_outbound_row_still_fails() -> None:
    disp = {"registry": registry(0), "outbound": {
        "directus_extensions": {"relation": "directus_extensions", "rows": 1, "active": 1,
                                "named": [{"folder": "x", "source": "local"}]}}}
    rec = cc.check_dispatch(observed(disp), settings(STOCK_PROFILE))
    assert rec["status"] == "fail" and "'x' (source=local)" in rec["message"]


JUDGES = {"clone.outbox_guard": cc.check_outbox_guard, "clone.worker_lease": cc.check_worker_lease,
          "clone.seed_present": cc.check_seed, "clone.coverage": cc.check_coverage,
          "clone.candidate_state": cc.check_candidates}


@pytest.mark.parametrize(("cid", "section"), sorted(OPTIONAL.items()))
def test_a_section_left_out_is_skipped_never_pass(cid: str, section: str) -> None:
    judge = JUDGES[cid]
    for prof in ({k: v for k, v in SEED_PROFILE.items() if k != section}, {**SEED_PROFILE, section: None}):
        rec = judge(observed({}), settings(prof))
        assert (rec["id"], rec["status"], rec["message"]) == (cid, "skipped", f"the profile has no {section}")
    # In the profile but not observed: a FAIL, never skipped.
    assert judge(observed({}), settings(SEED_PROFILE))["status"] == "fail"


def test_left_out_is_one_rule_for_module_and_judge() -> None:
    for section in OPTIONAL.values():
        prof = {k: v for k, v in SEED_PROFILE.items() if k != section}
        assert gate0_clone.left_out(prof) == [section]
        assert cc.left_out(settings(prof), section)
    assert gate0_clone.left_out(SEED_PROFILE) == []
    assert tuple(sorted(OPTIONAL.values())) == tuple(sorted(gate0_clone.OPTIONAL_SECTIONS))


def test_superuser_app_role_is_named_as_such() -> None:
    app = {"role": "directus", "role_exists": True, "superuser": True, "connect_on_clone": True,
           "binding": {"source": "none"}}
    rec = cc.check_app_binding(observed({}, app=app), {**settings(SEED_PROFILE), "app_role": "directus"})
    assert rec["status"] == "fail" and "is a superuser" in rec["message"]


# --- observation on the lab (real tables, real SQL) ------------------------------------------------

def observe(lab: Lab, profile: dict[str, Any], sections: list[str] | None = None) -> dict[str, Any]:
    params = {"login_host": "127.0.0.1", "login_port": lab.port, "login_user": "workflow_admin",
              "login_password": lab.password("workflow_admin"), "login_db": CLONE_DB, "login_unix_socket": "",
              "login_container": "", "login_container_network": "", "container_cli": "docker",
              "ssl_mode": "prefer", "ca_cert": None, "connect_timeout": 5, "statement_timeout": 5000,
              "lock_timeout": 1000, "clone_name_prefix": "directus_gov_test_",
              "clone_name_prefix_min_length": 8, "clone_name_suffix_regex": "[0-9]{8}",
              "production_databases": [PROD_DB], "profile": profile, "outbox_probe": True,
              "app_role": "", "app_binding_source": "none", "app_binding_path": None,
              "app_binding_container": None, "app_binding_variable": "DB_DATABASE",
              "sections": sections or ["dispatch", "outbox", "lease", "seed", "coverage", "candidates"],
              "production_login_host": "", "production_login_port": lab.port,
              "production_login_container": "", "production_role": "context_pack_readonly"}
    spec = gate0_clone.argument_spec()
    for key, opt in spec.items():
        params.setdefault(key, opt.get("default"))
    result = gate0_clone.observe(params)
    assert not result.get("failed"), result
    return result


def test_lab_clone_passes_with_the_real_directus_tables(lab: Lab) -> None:
    result = observe(lab, SEED_PROFILE)
    out = result["dispatch"]["outbound"]
    assert {k: (v["rows"], v["active"]) for k, v in out.items()} == {
        "directus_extensions": (1, 0), "directus_flows": (2, 0), "directus_operations": (3, 0),
        "directus_webhooks": (1, 0)}
    assert cc.check_dispatch(result, settings(SEED_PROFILE))["status"] == "pass"


def test_lab_active_flow_names_the_flow_and_its_outbound_operations(fresh_lab: Lab) -> None:
    fresh_lab.execute(CLONE_DB, "UPDATE directus_flows SET status = 'active' WHERE name = 'Notify owners'")
    fresh_lab.execute(CLONE_DB, "UPDATE directus_extensions SET enabled = true")
    rec = cc.check_dispatch(observe(fresh_lab, SEED_PROFILE), settings(SEED_PROFILE))
    assert rec["status"] == "fail"
    assert rec["message"] == (
        "1 active in directus_extensions: 'directus-extension-audit-relay' (source=local); "
        "1 active in directus_flows: 'Notify owners' (trigger=event); "
        "2 active in directus_operations: 'mail_owners' (type=mail, in directus_flows 'Notify owners'), "
        "'post_chat' (type=request, in directus_flows 'Notify owners')")
    # Only the named columns are read: never an operation's options (they may hold credentials).
    assert "hooks.example.invalid" not in str(rec["observed"])


def test_lab_webhook_insert_as_real_directus_requires(fresh_lab: Lab) -> None:
    with pytest.raises(Exception, match="actions"):
        fresh_lab.execute(CLONE_DB, "INSERT INTO directus_webhooks (name, url, collections) "
                                    "VALUES ('x', 'y', 'z')")
    fresh_lab.execute(CLONE_DB, "INSERT INTO directus_webhooks (name, url, actions, collections) "
                                "VALUES ('Late hook', 'http://127.0.0.1:9/', 'create', 'posts')")
    rec = cc.check_dispatch(observe(fresh_lab, SEED_PROFILE), settings(SEED_PROFILE))
    assert rec["message"] == "1 active in directus_webhooks: 'Late hook' (actions=create, collections=posts)"


def test_lab_missing_outbound_table_is_one_line_naming_table_and_key(lab: Lab) -> None:
    prof = copy.deepcopy(SEED_PROFILE)
    prof["dispatch"]["outbound"]["directus_shares"] = {"relation": "directus_shares", "active": {"x": 1}}
    rec = cc.check_dispatch(observe(lab, prof), settings(prof))
    assert rec["status"] == "fail"
    assert rec["message"] == ("reading the dispatch registry and outbound tables: relation 'directus_shares' "
                              "(the profile's dispatch.outbound.directus_shares.relation) does not exist in "
                              "the clone")
    prof = copy.deepcopy(SEED_PROFILE)
    prof["dispatch"]["outbound"]["directus_flows"]["label"] = "title"
    rec = cc.check_dispatch(observe(lab, prof), settings(prof))
    assert rec["message"] == ("reading the dispatch registry and outbound tables: column 'title' "
                              "(the profile's dispatch.outbound.directus_flows.label/details) does not "
                              "exist in 'directus_flows'")
    prof = copy.deepcopy(SEED_PROFILE)
    prof["dispatch"]["registry_scope"] = {"realm": "governance"}
    rec = cc.check_dispatch(observe(lab, prof), settings(prof))
    assert rec["message"] == ("reading the dispatch registry and outbound tables: column 'realm' "
                              "(the profile's dispatch.registry_scope) does not exist in "
                              "'event_type_registry'")


def test_lab_sections_left_out_are_not_observed_and_skipped(lab: Lab) -> None:
    prof = {k: v for k, v in SEED_PROFILE.items() if k not in OPTIONAL.values()}
    result = observe(lab, prof)
    assert result["left_out"] == list(gate0_clone.OPTIONAL_SECTIONS)
    # Only the sections this call did not ask for are errors; none of the left-out ones.
    assert set(result["errors"]) == {"sessions", "reach", "outbound"}
    assert result["dispatch"] is not None
    assert result["outbox"]["probe"] == {"ran": False, "reason": "the profile has no outbox"}
    records = {r["id"]: r for r in cc.gate0_clone_checks(result, settings(prof))}
    for cid, section in OPTIONAL.items():
        assert (records[cid]["status"], records[cid]["message"]) == (
            "skipped", f"the profile has no {section}")


# --- the role, end to end on the lab ---------------------------------------------------------------

def test_role_passes_with_sections_left_out_reported_skipped(lab: Lab, tmp_path: Path) -> None:
    """The argument spec accepts a profile without the optional sections; the run PASSes with each
    of their checks 'skipped' and its reason (the other checks observed as usual)."""
    prof = {k: v for k, v in DEFAULTS["gate0_clone_profile"].items() if k not in OPTIONAL.values()}
    report_dir = tmp_path / "reports"
    proc = run_playbook("playbooks/gate0.yml", "-e", json.dumps({"gate0_clone_profile": prof}),
                        "-e", f"gate0_report_dir={report_dir}")
    report = json.loads(next(report_dir.glob("gate0-*.json")).read_text())
    checks = {c["id"]: c for c in report["checks"]}
    assert proc.returncode == 0, [c["message"] for c in checks.values() if c["status"] == "fail"]
    assert report["verdict"] == "PASS"
    assert {cid: (c["status"], c["message"]) for cid, c in checks.items() if c["status"] != "pass"} == {
        cid: ("skipped", f"the profile has no {section}") for cid, section in OPTIONAL.items()}
