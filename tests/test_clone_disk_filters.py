"""Unit tests of the clone and disk judging filters and the shared clone name refusal (pure functions)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "roles" / "gate0" / "filter_plugins"))

import clone_checks as cc
import disk_checks as dc
from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import clone_name_refusal

CLONE = "directus_gov_test_20260602"
PREFIX = "directus_gov_test_"
PROD = ["directus"]


@pytest.mark.parametrize(("name", "prefix", "why"), [
    (CLONE, PREFIX, None),
    (CLONE, "directus_gov_test_%", "pattern character '%'"),
    (CLONE, "directus_gov*", "pattern character '*'"),
    ("directusXgovXtestX20260602", PREFIX, "does not start with exactly"),   # LIKE's _ would match
    ("Directus_gov_test_20260602", PREFIX, "does not start with exactly"),   # case matters
    (PREFIX, PREFIX, "bare prefix"),
    ("directus_gov_test_2026060", PREFIX, "does not match"),                 # suffix rule
    ("directus_gov_test_20260602_prod", PREFIX, "does not match"),
    ("directus", PREFIX, "production/allowlisted"),
    (CLONE, "dir", "shorter than 8"),
    (CLONE, "directus", "also matches production"),
    (CLONE, "", "shorter than 8"),
    ("", PREFIX, "empty"),
])
def test_name_rule(name: str, prefix: str, why: str | None) -> None:
    problems = cc.name_rule_problems(name, prefix, 8, "[0-9]{8}", PROD)
    if why is None:
        assert problems == []
    else:
        assert any(why in p for p in problems), problems


def test_invalid_suffix_regex_is_a_problem_not_a_crash() -> None:
    assert "is invalid" in cc.name_rule_problems(CLONE, PREFIX, 8, "[0-9", PROD)[0]
    assert "is invalid" in clone_name_refusal(CLONE, PREFIX, PROD, 8, "[0-9")


def test_allowlisted_name_matching_the_prefix_is_refused() -> None:
    problems = cc.name_rule_problems(CLONE, PREFIX, 8, "", ["directus", "directus_gov_test_archive"])
    assert any("also matches production/allowlisted 'directus_gov_test_archive'" in p for p in problems)


@pytest.mark.parametrize(("name", "prefix", "prod", "why"), [
    (CLONE, PREFIX, PROD, None),
    ("directus", PREFIX, PROD, "is a production database name"),
    (CLONE, "directus_gov_test_%", PROD, "give the literal prefix"),
    (CLONE, "", PROD, "prefix is empty"),
    (CLONE, "directus", PROD, "also matches production"),
    (PREFIX, PREFIX, PROD, "followed by a suffix"),
    ("", PREFIX, PROD, "name is empty"),
    (CLONE, "dir", [], "shorter than 8"),
    ("directus_gov_test_x", PREFIX, PROD, "does not match"),
])
def test_module_refuses_before_connecting(name: str, prefix: str, prod: list[str], why: str | None) -> None:
    got = clone_name_refusal(name, prefix, prod, 8, "[0-9]{8}")
    assert (got is None) if why is None else (why in got)


SETTINGS = {"database": CLONE, "prefix": PREFIX, "prefix_min_length": 8, "suffix_regex": "[0-9]{8}",
            "production_database": "directus", "allowed_databases": ["directus"], "production_identity": None,
            # Every optional section present (one left out is 'skipped': test_dispatch_profile.py).
            "profile": {"outbox": {"function": "fn_event_type_validate", "trigger": "t"},
                        "lease": {"relation": "l", "expected": 0}, "seed": {"relation": "s", "expected": 0},
                        "coverage": {"gap_relation": "g"}, "candidates": {"counts": {}}},
            "app_role": "directus",
            "outbox_probe": True, "rollback_plan": {"path": "/p", "exists": True, "text": "plan", "chars": 4}}


def test_module_failure_fails_every_observed_check() -> None:
    records = cc.gate0_clone_checks({"failed": True, "msg": "connecting to x: refused"}, SETTINGS)
    assert records[0]["id"] == "clone.name_pattern"
    by_id = {r["id"]: r for r in records}
    assert by_id["clone.rollback_plan"]["status"] == "pass"
    for cid, r in by_id.items():
        if cid != "clone.rollback_plan":
            assert r["status"] == "fail" and "connecting to x: refused" in r["message"], r


def test_section_error_fails_only_that_check() -> None:
    result = {"identity": {"database": CLONE}, "errors": {"seed": "reading seed rows: no table"}}
    assert cc.check_seed(result, SETTINGS)["message"] == "reading seed rows: no table"


IDENT = {"database": CLONE, "database_oid": 2, "address": "10.0.0.1", "port": 5432, "system_identifier": "7"}


@pytest.mark.parametrize(("prod", "same"), [
    ({**IDENT, "database": "directus", "database_oid": 1}, False),
    ({**IDENT, "database": "directus", "database_oid": 2}, True),        # a renamed database
    ({**IDENT, "system_identifier": "8"}, False),
    ({**IDENT, "system_identifier": None, "address": None}, None),
])
def test_same_database(prod: dict, same: bool | None) -> None:
    assert cc.same_database(IDENT, prod) is same


def test_not_production_compares_identities() -> None:
    result = {"identity": IDENT, "errors": {}}
    prod = {**IDENT, "database": "directus", "database_oid": 2}
    rec = cc.check_not_production(result, {**SETTINGS, "production_identity": prod})
    assert rec["status"] == "fail" and "reaches the production database" in rec["message"]
    rec = cc.check_not_production(result, SETTINGS)
    assert rec["status"] == "pass" and "identities not" in rec["message"]


def test_sessions_hidden_details_never_read_as_none() -> None:
    result = {"identity": IDENT, "errors": {}, "sessions": {"login": "a", "can_see_all": True, "prepared": [],
              "slots": [], "foreign": [{"pid": 9, "visible": False, "backend_type": "client backend"}]}}
    rec = cc.check_foreign_sessions(result, SETTINGS)
    assert rec["status"] == "fail" and "cannot see the details of 1" in rec["message"]


@pytest.mark.parametrize(("probe", "why"), [
    ({"ran": False, "reason": "guard"}, "probe not run: guard"),
    ({"ran": True, "rejected": False, "rolled_back": True}, "was NOT rejected"),
    ({"ran": True, "rejected": True, "from_function": False, "message": "null value", "rolled_back": True},
     "not by fn_event_type_validate"),
    ({"ran": True, "rejected": True, "from_function": True, "xid_assigned": "77", "rolled_back": True},
     "transaction id 77"),
])
def test_probe_problems(probe: dict, why: str) -> None:
    assert any(why in p for p in cc._probe_problems(probe, "fn_event_type_validate"))


@pytest.mark.parametrize(("n", "df", "pg"), [
    (0, "0", "0 bytes"),
    (22 * 1024**3, "22G", "22 GB"),
    (int(9.45 * 1024**3), "9.5G", "9677 MB"),
    (1200 * 1024**2, "1.2G", "1200 MB"),
    (None, "?", "unreadable"),
])
def test_human_units(n: int | None, df: str, pg: str) -> None:
    assert dc.human_df(n) == df
    assert dc.human_pg(n) == pg


DISK = {"path": "/", "path_error": None, "sizes": {CLONE: 1200 * 1024**2, "directus": 1296 * 1024**2},
        "size_errors": {}, "filesystem": {"total_bytes": 96 * 1024**3, "used_bytes": 74 * 1024**3,
                                          "free_bytes": 22 * 1024**3, "free_percent": 22.92}}
RULES = {"path": "/", "clone_database": CLONE, "production_database": "directus",
         "min_free_bytes": 5 * 1024**3, "min_free_percent": 10, "clone_size_factor": 2}


def test_disk_seed_numbers_pass_with_the_seed_line() -> None:
    rec = dc.gate0_disk_checks(dc.gate0_disk_report(DISK, RULES))[0]
    assert rec["status"] == "pass"
    assert rec["message"] == "22G free of 96G on / (22.92% free); clone 1200 MB; production 1296 MB"


@pytest.mark.parametrize(("rules", "why"), [
    ({"min_free_bytes": 30 * 1024**3}, "gate0_disk_min_free_bytes"),
    ({"min_free_percent": 25}, "gate0_disk_min_free_percent"),
    ({"clone_size_factor": 20}, "gate0_disk_clone_size_factor"),
])
def test_disk_each_rule_fails_by_name(rules: dict, why: str) -> None:
    rec = dc.gate0_disk_checks(dc.gate0_disk_report(DISK, {**RULES, **rules}))[0]
    assert rec["status"] == "fail" and why in rec["message"]
    assert sum(v in rec["message"] for v in ("min_free_bytes", "min_free_percent", "clone_size_factor")) == 1


def test_disk_unreadable_size_and_missing_path_fail() -> None:
    obs = {**DISK, "sizes": {CLONE: 1, "directus": None}, "size_errors": {"directus": "reading: denied"}}
    assert "reading: denied" in dc.gate0_disk_checks(dc.gate0_disk_report(obs, RULES))[0]["message"]
    obs = {**DISK, "filesystem": None, "path_error": "measuring /x: No such file or directory"}
    rec = dc.gate0_disk_checks(dc.gate0_disk_report(obs, RULES))[0]
    assert rec["status"] == "fail" and rec["message"].startswith("measuring /x")
    rec = dc.gate0_disk_checks(dc.gate0_disk_report({"failed": True, "msg": "boom"}, RULES))[0]
    assert rec["status"] == "fail" and "boom" in rec["message"]


def test_env_file_parsing() -> None:
    from ansible_collections.gate0.core.plugins.module_utils.gate0_clone import parse_env

    text = "# comment\nDB_HOST=x\nexport DB_DATABASE='directus'\nDB_DATABASE_X=no\n"
    assert parse_env(text, "DB_DATABASE") == "directus"
    assert parse_env('DB_DATABASE="a"\nDB_DATABASE=b\n', "DB_DATABASE") == "b"  # the last one wins
    assert parse_env("DB_HOST=x\n", "DB_DATABASE") is None


# --- clone.app_binding: the app container's state, every live container bound to the clone ------

def app_result(state: str = "running", value: str = "directus", containers: list | None = None,
               containers_error: str | None = None) -> dict:
    binding = {"source": "docker", "where": "directus", "variable": "DB_DATABASE", "value": value,
               "error": None, "state": state,
               "containers": containers if containers is not None else
               [{"name": "directus", "state": state, "bindings": {"DB_DATABASE": value}}]}
    if containers_error:
        binding["containers_error"] = containers_error
    return {"identity": {"database": CLONE}, "errors": {},
            "app": {"role": "directus", "role_exists": True, "superuser": False, "connect_on_clone": False,
                    "binding": binding}}


APP_SETTINGS = {"database": CLONE, "app_role": "directus"}


@pytest.mark.parametrize("state", ["exited", "restarting", "paused"])
def test_app_binding_names_a_stopped_or_restarting_app_container_state(state: str) -> None:
    rec = cc.check_app_binding(app_result(state), APP_SETTINGS)
    assert rec["status"] == "pass", rec
    assert f"its configuration as the container is {state}" in rec["message"]


def test_app_binding_a_stopped_app_container_bound_to_the_clone_fails_with_its_state() -> None:
    rec = cc.check_app_binding(app_result("exited", CLONE), APP_SETTINGS)
    assert rec["status"] == "fail"
    assert rec["message"] == (f"the app is bound to the clone: DB_DATABASE={CLONE} in directus"
                              " (container exited)")


@pytest.mark.parametrize(("env", "phrase"), [
    ({"DB_DATABASE": CLONE}, f"DB_DATABASE={CLONE}"),
    ({"PGDATABASE": CLONE}, f"PGDATABASE={CLONE}"),
    ({"DATABASE_URL": CLONE}, f"DATABASE_URL={CLONE}"),
])
def test_app_binding_fails_for_any_live_container_bound_to_the_clone(env: dict, phrase: str) -> None:
    others = [{"name": "directus", "state": "running", "bindings": {"DB_DATABASE": "directus"}},
              {"name": "worker", "state": "running", "bindings": env},
              {"name": "old", "state": "exited", "bindings": env}]
    rec = cc.check_app_binding(app_result(containers=others), APP_SETTINGS)
    assert rec["status"] == "fail"
    assert rec["message"] == f"bound to the clone {CLONE!r}: container 'worker' ({phrase})"


def test_app_binding_unread_container_list_fails() -> None:
    rec = cc.check_app_binding(app_result(containers=[], containers_error="listing the host's containers: x"),
                               APP_SETTINGS)
    assert rec["status"] == "fail" and rec["message"] == "listing the host's containers: x"


def test_app_binding_pass_says_how_many_containers_were_read() -> None:
    rec = cc.check_app_binding(app_result(), APP_SETTINGS)
    assert rec["status"] == "pass"
    assert rec["message"].endswith("none of the host's 1 live containers binds it")
