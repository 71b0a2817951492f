"""Isolation in both directions, on the real lab.

- clone.production_unreachable: every catalog path from the clone login (workflow_admin) to
  production, and the proof by attempt;
- clone.outbound_links: everything in the clone that can connect outward;
- prod.fingerprint: an incomplete fingerprint never passes, whatever the baseline says;
- prod.role_cannot_write: a SECURITY DEFINER function's owner is judged by what it can really write.

Each unsafe situation is made on the lab, observed by the real clone part (gate0.core's gate0_clone.py,
as gate0_observe runs it) and judged by the real judge; each is undone afterwards (role changes
survive `lab reset`, so every test restores what it changed). A few cases run the whole playbook.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from ansible_collections.gate0.core.plugins.module_utils import gate0_clone, gate0_readonly
from ansible_collections.gate0.core.plugins.module_utils import gate0_clone_checks as cc
from ansible_collections.gate0.core.plugins.module_utils import gate0_prod_checks as pc
from conftest import CLONE_DB, PROD_DB, Lab, run_playbook
from faultlib import DB_WRITES
from gaterun import run_gate

ADMIN = "workflow_admin"


def clone_params(lab: Lab, **over: Any) -> dict[str, Any]:
    """The clone part's options as the role builds them (vars/main.yml), limited to two sections."""
    p = {"login_host": "127.0.0.1", "login_port": lab.port, "login_user": ADMIN,
         "login_password": lab.password(ADMIN), "login_db": CLONE_DB, "login_unix_socket": "",
         "login_container": "", "login_container_network": "", "container_cli": "docker",
         "ssl_mode": "prefer", "ca_cert": None, "connect_timeout": 3, "statement_timeout": 5000,
         "lock_timeout": 1000, "clone_name_prefix": "directus_gov_test_", "clone_name_prefix_min_length": 1,
         "clone_name_suffix_regex": "", "production_databases": [PROD_DB], "profile": {},
         "outbox_probe": False, "app_role": "", "app_binding_source": "none", "app_binding_path": None,
         "app_binding_container": None, "app_binding_variable": "DB_DATABASE",
         "sections": ["reach", "outbound"], "production_login_host": "127.0.0.1",
         "production_login_port": lab.port, "production_login_container": "",
         "production_role": "context_pack_readonly"}
    p.update(over)
    return p


def judge(lab: Lab, allow: list[str] | None = None, **over: Any) -> dict[str, dict[str, Any]]:
    result = gate0_clone.observe(clone_params(lab, **over))
    assert not result.get("failed"), result
    settings = {"database": CLONE_DB, "production_database": PROD_DB, "allowed_databases": [PROD_DB],
                "profile": {"outbound_links": {"allow": allow or []}}}
    return {r["id"]: r for r in (cc.check_production_unreachable(result, settings),
                                 cc.check_outbound_links(result, settings))}


def assert_fail(records: dict[str, dict[str, Any]], cid: str, needle: str) -> str:
    rec = records[cid]
    assert rec["status"] == "fail", rec
    assert needle in rec["message"], rec["message"]
    assert "\n" not in rec["message"]
    return rec["message"]


def write_counters(lab: Lab) -> dict[str, tuple]:
    """Rows written to either database, by the statistics (less autoanalyze's pg_statistic upkeep,
    which the server does at any moment), once they have settled: no client backend
    left on either database (a backend flushes its statistics when it exits - the test's own setup
    sessions too, not only gate0's), then the same figures twice, 0.5 s apart (a flush can land late
    on a loaded machine, and 14's collector applies it asynchronously). Bounded: 5 s, then 10 s."""
    for _ in range(50):
        if not lab.scalar("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname IN (%s, %s) "
                                      "AND backend_type = 'client backend'", (PROD_DB, CLONE_DB)):
            break
        time.sleep(0.1)

    def read() -> dict[str, tuple]:
        return {db: tuple(lab.query(db, DB_WRITES)[0]) for db in (PROD_DB, CLONE_DB)}

    last = read()
    for _ in range(20):
        time.sleep(0.5)
        now = read()
        if now == last:
            return now
        last = now
    return last


@contextmanager
def changed(lab: Lab, do: list[tuple[str, str]], undo: list[tuple[str, str]]) -> Iterator[None]:
    """Apply (database, statement) changes as the superuser; always undo them."""
    try:
        for db, stmt in do:
            lab.execute(db, stmt)
        yield
    finally:
        for db, stmt in undo:
            try:
                lab.execute(db, stmt)
            except Exception as exc:
                print(f"undo {stmt!r} on {db}: {exc}")


def has_extension(lab: Lab, name: str) -> bool:
    """The extension can be created here (its library loads: some builds ship one that does not)."""
    conn = lab.connect(CLONE_DB)
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")
        return True
    except psycopg2.Error:
        return False
    finally:
        conn.rollback()
        conn.close()


def version(lab: Lab) -> int:
    return int(lab.scalar("postgres", "SHOW server_version_num"))


# --- the negative control ------------------------------------------------------------------------

def test_the_seed_clone_login_passes_both(lab: Lab) -> None:
    records = judge(lab)
    assert records["clone.production_unreachable"]["status"] == "pass", records
    message = records["clone.production_unreachable"]["message"]
    assert "attempts refused: directus (no CONNECT privilege)" in message
    assert records["clone.outbound_links"]["status"] == "pass", records


# --- clone.production_unreachable: every catalog path ------------------------------------------

def _attribute(case: str, attribute: str, needle: str) -> tuple:
    """A case that gives the clone login a role attribute (and takes it back)."""
    return (case, [("postgres", f"ALTER ROLE {ADMIN} {attribute}")],
            [("postgres", f"ALTER ROLE {ADMIN} NO{attribute}")], needle)


def _member(case: str, role: str, needle: str) -> tuple:
    """A case that makes the clone login a member of `role` (and takes it back)."""
    return (case, [("postgres", f"GRANT {role} TO {ADMIN}")], [("postgres", f"REVOKE {role} FROM {ADMIN}")],
            needle)


REACH_CASES = [
    ("connect", [(PROD_DB, f"GRANT CONNECT ON DATABASE {PROD_DB} TO {ADMIN}")],
     [(PROD_DB, f"REVOKE CONNECT ON DATABASE {PROD_DB} FROM {ADMIN}")], "CONNECT on database directus"),
    ("public", [(PROD_DB, f"GRANT CONNECT ON DATABASE {PROD_DB} TO PUBLIC")],
     [(PROD_DB, f"REVOKE CONNECT ON DATABASE {PROD_DB} FROM PUBLIC")],
     "CONNECT on database directus (as PUBLIC)"),
    _attribute("superuser", "SUPERUSER", "superuser"),
    _attribute("createrole", "CREATEROLE", "CREATEROLE"),
    _attribute("replication", "REPLICATION", "REPLICATION"),
    _member("program", "pg_execute_server_program", "member of pg_execute_server_program"),
    _member("write_files", "pg_write_server_files", "member of pg_write_server_files"),
    _member("read_files", "pg_read_server_files", "member of pg_read_server_files"),
    _member("signal", "pg_signal_backend", "member of pg_signal_backend"),
    _member("app_owner", "directus", "owner of production database directus"),
    _member("readonly_role", "context_pack_readonly", "the production read-only role"),
    ("connect_role", [("postgres", "CREATE ROLE gate0_t_bridge NOLOGIN"),
                      (PROD_DB, f"GRANT CONNECT ON DATABASE {PROD_DB} TO gate0_t_bridge"),
                      ("postgres", f"GRANT gate0_t_bridge TO {ADMIN}")],
     [(PROD_DB, f"REVOKE CONNECT ON DATABASE {PROD_DB} FROM gate0_t_bridge"),
      ("postgres", "DROP ROLE IF EXISTS gate0_t_bridge")], "(as workflow_admin/gate0_t_bridge)"),
    ("owner", [(PROD_DB, f"ALTER DATABASE {PROD_DB} OWNER TO {ADMIN}")],
     [(PROD_DB, f"ALTER DATABASE {PROD_DB} OWNER TO directus")], "owns database directus"),
]


@pytest.mark.parametrize(("case", "do", "undo", "needle"), REACH_CASES, ids=[c[0] for c in REACH_CASES])
def test_every_path_to_production_fails(lab: Lab, case: str, do: list, undo: list, needle: str) -> None:
    with changed(lab, do, undo):
        records = judge(lab)
    msg = assert_fail(records, "clone.production_unreachable", needle)
    assert msg.startswith("the clone channel (workflow_admin) can reach beyond the clone: ")
    if case in ("connect", "public", "superuser", "connect_role", "owner", "app_owner"):
        assert "was ACCEPTED" in msg, msg
    # Undone: the control passes again (nothing of the case is left for the next one).
    assert judge(lab)["clone.production_unreachable"]["status"] == "pass"


def test_membership_only_by_set_role_still_counts(lab: Lab) -> None:
    """PostgreSQL 16+: a membership WITH INHERIT FALSE gives no privileges but SET ROLE still works."""
    if version(lab) < 160000:
        pytest.skip("GRANT ... WITH INHERIT FALSE needs PostgreSQL 16")
    with changed(lab, [("postgres", f"GRANT directus TO {ADMIN} WITH INHERIT FALSE")],
                 [("postgres", f"REVOKE directus FROM {ADMIN}")]):
        records = judge(lab)
    assert_fail(records, "clone.production_unreachable", "member of directus (owner of production database")


def test_create_subscription_role_counts(lab: Lab) -> None:
    if version(lab) < 160000:
        pytest.skip("pg_create_subscription exists from PostgreSQL 16")
    with changed(lab, [("postgres", f"GRANT pg_create_subscription TO {ADMIN}")],
                 [("postgres", f"REVOKE pg_create_subscription FROM {ADMIN}")]):
        records = judge(lab)
    assert_fail(records, "clone.production_unreachable", "member of pg_create_subscription")


def test_a_network_error_is_no_proof(lab: Lab) -> None:
    """Production's endpoint elsewhere and closed: nothing refused by authorization, nothing proven."""
    records = judge(lab, production_login_port=1)
    msg = assert_fail(records, "clone.production_unreachable",
                      "cannot prove directus on production's endpoint")
    assert "not refused by authorization" in msg and "onnection refused" in msg


def test_attempt_is_refused_even_with_the_right_password(lab: Lab) -> None:
    """The refusal is the server's (no CONNECT privilege), not a wrong password."""
    records = judge(lab)
    attempts = records["clone.production_unreachable"]["observed"]["attempts"]
    assert [a["refused"] for a in attempts] == [True]
    assert attempts[0]["reason"].startswith("no CONNECT privilege: ")


def test_unit_reach_judge_without_evidence() -> None:
    settings = {"database": CLONE_DB, "production_database": PROD_DB, "allowed_databases": [PROD_DB]}
    no_section = {"identity": {"database": CLONE_DB}, "errors": {}}
    for check in (cc.check_production_unreachable, cc.check_outbound_links):
        assert check({}, settings)["status"] == "fail"
        assert check(no_section, settings)["status"] == "fail"
    empty = {**no_section, "reach": {"login": ADMIN, "findings": [], "attempts": []}}
    rec = cc.check_production_unreachable(empty, settings)
    assert rec["status"] == "fail" and "no connection attempt made" in rec["message"]
    unproven = {**no_section, "reach": {"login": ADMIN, "findings": [], "attempts": [
        {"database": PROD_DB, "server": "x", "refused": None, "reason": "timeout expired"}]}}
    assert cc.check_production_unreachable(unproven, settings)["status"] == "fail"


# --- clone.outbound_links ------------------------------------------------------------------------

FDW_SERVER = (f"CREATE SERVER gate0_t_prod FOREIGN DATA WRAPPER postgres_fdw "
              f"OPTIONS (host '127.0.0.1', port '{{port}}', dbname '{PROD_DB}')")


@pytest.fixture
def postgres_fdw(lab: Lab) -> Iterator[None]:
    if not has_extension(lab, "postgres_fdw"):
        pytest.skip("postgres_fdw cannot be created on this server")
    with changed(lab, [(CLONE_DB, "CREATE EXTENSION IF NOT EXISTS postgres_fdw"),
                       (CLONE_DB, FDW_SERVER.format(port=lab.port))],
                 [(CLONE_DB, "DROP EXTENSION IF EXISTS postgres_fdw CASCADE")]):
        yield


def test_foreign_server_with_public_mapping_fails(lab: Lab, postgres_fdw: None) -> None:
    before = None
    with changed(lab, [(CLONE_DB, "CREATE USER MAPPING FOR PUBLIC SERVER gate0_t_prod "
                                  "OPTIONS (user 'directus', password 'x')")], []):
        before = write_counters(lab)
        records = judge(lab)
    assert_fail(records, "clone.outbound_links",
                "foreign server gate0_t_prod (postgres_fdw) with a user mapping for PUBLIC")
    assert write_counters(lab) == before


def test_foreign_server_allowed_by_name_passes(lab: Lab, postgres_fdw: None) -> None:
    with changed(lab, [(CLONE_DB, f"CREATE USER MAPPING FOR {ADMIN} SERVER gate0_t_prod")], []):
        failing = judge(lab)
        allowed = judge(lab, allow=["gate0_t_prod"])
    assert_fail(failing, "clone.outbound_links", f"with a user mapping for {ADMIN}")
    rec = allowed["clone.outbound_links"]
    assert rec["status"] == "pass", rec
    assert "allowed by name: foreign server gate0_t_prod" in rec["message"]


def test_usage_on_a_server_or_wrapper_fails(lab: Lab, postgres_fdw: None) -> None:
    with changed(lab, [(CLONE_DB, f"GRANT USAGE ON FOREIGN SERVER gate0_t_prod TO {ADMIN}"),
                       (CLONE_DB, f"GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {ADMIN}")], []):
        records = judge(lab)
    msg = assert_fail(records, "clone.outbound_links", "foreign server gate0_t_prod (postgres_fdw): USAGE as")
    assert "foreign-data wrapper postgres_fdw: USAGE as workflow_admin" in msg


def test_dblink_functions_and_dblink_fdw_fail(lab: Lab) -> None:
    if not has_extension(lab, "dblink"):
        pytest.skip("dblink cannot be created on this server")
    with changed(lab, [(CLONE_DB, "CREATE EXTENSION IF NOT EXISTS dblink"),
                       (CLONE_DB, f"CREATE SERVER gate0_t_link FOREIGN DATA WRAPPER dblink_fdw "
                                  f"OPTIONS (host '127.0.0.1', port '{lab.port}', dbname '{PROD_DB}')"),
                       (CLONE_DB, f"CREATE USER MAPPING FOR {ADMIN} SERVER gate0_t_link")],
                 [(CLONE_DB, "DROP EXTENSION IF EXISTS dblink CASCADE")]):
        records = judge(lab)
    msg = assert_fail(records, "clone.outbound_links", "foreign server gate0_t_link (dblink_fdw)")
    assert "dblink: EXECUTE on " in msg and "function(s) that open connections" in msg, msg


def test_subscription_fails_even_disabled(lab: Lab) -> None:
    with changed(lab, [(CLONE_DB, "CREATE SUBSCRIPTION gate0_t_sub "
                                  "CONNECTION 'host=127.0.0.1 dbname=directus' PUBLICATION gate0_t_pub "
                                  "WITH (connect = false, slot_name = NONE)")],
                 [(CLONE_DB, "DROP SUBSCRIPTION IF EXISTS gate0_t_sub")]):
        records = judge(lab)
    assert_fail(records, "clone.outbound_links", "subscription gate0_t_sub (disabled)")


def test_logical_slot_fails(lab: Lab) -> None:
    if lab.scalar("postgres", "SHOW wal_level") != "logical":
        pytest.skip("logical slots need wal_level = logical")
    slot = "SELECT pg_create_logical_replication_slot('gate0_t_slot', 'test_decoding')"
    with changed(lab, [(CLONE_DB, slot)],
                 [(CLONE_DB, "SELECT pg_drop_replication_slot('gate0_t_slot')")]):
        records = judge(lab)
    assert_fail(records, "clone.outbound_links", "logical replication slot gate0_t_slot")


def test_unit_outbound_not_visible_is_never_none() -> None:
    settings = {"database": CLONE_DB, "profile": {"outbound_links": {"allow": []}}}
    result = {"identity": {"database": CLONE_DB}, "errors": {}, "outbound": {
        "findings": [], "cron": "running elsewhere",
        "not_visible": [{"name": "pg_cron", "text": "pg_cron runs (launcher pid 7) but its job table is not "
                                                    "in this database: jobs ... not visible"}]}}
    rec = cc.check_outbound_links(result, settings)
    assert rec["status"] == "fail" and "not visible" in rec["message"]
    settings["profile"]["outbound_links"]["allow"] = ["pg_cron"]
    assert cc.check_outbound_links(result, settings)["status"] == "pass"


# --- prod.fingerprint ----------------------------------------------------------------------------

def test_gate_fails_a_missing_target_whatever_the_baseline(lab: Lab, tmp_path: Path) -> None:
    targets = {"ghost": {"relation": "no_such_table"}, "scopes": {"relation": "governance_scopes"}}
    run = run_gate(tmp_path, {"gate0_production_targets": targets, "gate0_production_baseline": {}})
    assert run.rc != 0
    msg = run.failures.get("prod.fingerprint", "")
    assert "relation does not exist: ghost (no_such_table)" in msg, run.failures
    assert run.report["decisions"]["clone_objectives"]["decision"] == "NO-GO"
    assert run.fact is not None and run.fact["passed"] is False
    assert run.fact["production"]["digest"] is None


def test_unit_fingerprint_judge_without_evidence() -> None:
    targets = {"a": {"relation": "a", "hash": True}, "b": {"relation": "b"}}
    whole = {"counts": {"a": 1, "b": 2}, "hashes": {"a": "1:00"}, "digest": "d" * 64}
    assert pc.check_fingerprint(whole, targets)["status"] == "pass"
    for part, needle in [({}, "not counted"), ({**whole, "hashes": {}}, "target a: not hashed"),
                         ({**whole, "digest": None}, "no digest"),
                         ({**whole, "counts": {"a": 1}}, "target b: not counted"),
                         ({"failed": True, "failed_stage": "targets", "msg": "boom"}, "boom")]:
        rec = pc.check_fingerprint(part, targets)
        assert rec["status"] == "fail" and needle in rec["message"], (part, rec)
    assert pc.check_fingerprint(whole, {})["status"] == "fail"


@pytest.mark.parametrize("check", ["check_session", "check_role", "check_idle"])
def test_unit_every_prod_judge_fails_without_its_evidence(check: str) -> None:
    assert getattr(pc, check)({})["status"] == "fail"


def test_unit_prod_judges_with_args_fail_without_evidence() -> None:
    assert pc.check_allowlist({}, [PROD_DB], PROD_DB, CLONE_DB)["status"] == "fail"
    assert pc.check_clone({}, CLONE_DB)["status"] == "fail"
    assert pc.check_baseline({}, {"own": 0})["status"] == "fail"
    assert pc.check_baseline({}, {})["status"] == "skipped"  # only where its vars say so


def test_unit_every_clone_judge_fails_without_its_evidence() -> None:
    # Every optional section named (empty): one the profile leaves out is 'skipped' by design
    # (tests/test_dispatch_profile.py); named but not observed must fail.
    profile = {s: {} for s in ("outbox", "lease", "seed", "coverage", "candidates")}
    settings = {"database": CLONE_DB, "prefix": "directus_gov_test_", "production_database": PROD_DB,
                "allowed_databases": [PROD_DB], "app_role": "directus", "profile": profile,
                "rollback_plan": {}}
    bare = {"identity": {"database": CLONE_DB}, "errors": {}}
    for check in cc.CHECKS:
        if check in (cc.check_name_pattern, cc.check_not_production):
            assert check({}, settings)["status"] == "fail", check.__name__
            continue
        for result in ({}, bare):
            assert check(result, settings)["status"] == "fail", (check.__name__, result)


def test_consumers_refuse_a_record_without_a_production_digest() -> None:
    from ansible_collections.gate0.core.plugins.module_utils import gate0_verdict as gv
    record = {"passed": True, "gates": ["prod", "clone", "disk"], "clone": {"database": CLONE_DB},
              "production": {"database": PROD_DB, "digest": None}}
    assert any("no production digest" in p for p in gv.gate0_require_problems(record, CLONE_DB))
    record["production"]["digest"] = "e" * 64
    assert gv.gate0_require_problems(record, CLONE_DB) == []


# --- prod.role_cannot_write: SECURITY DEFINER owners ---------------------------------------------

def prod_proof(lab: Lab) -> dict[str, Any]:
    conn = lab.connect(PROD_DB, user="context_pack_readonly")
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            return gate0_readonly.read_only_proof(cur, version(lab))
    finally:
        conn.rollback()
        conn.close()


def secdef(name: str, owner: str, body: str = "SELECT 1") -> list[tuple[str, str]]:
    return [(PROD_DB, f"CREATE FUNCTION public.{name}() RETURNS int LANGUAGE sql SECURITY DEFINER "
                      f"AS $$ {body} $$"),
            (PROD_DB, f"ALTER FUNCTION public.{name}() OWNER TO {owner}")]


@pytest.fixture
def definer_roles(lab: Lab) -> Iterator[None]:
    do = [("postgres", "CREATE ROLE gate0_t_reader NOLOGIN"),
          ("postgres", "CREATE ROLE gate0_t_writer NOLOGIN"),
          (PROD_DB, "GRANT SELECT ON governance_scopes TO gate0_t_reader"),
          (PROD_DB, "GRANT UPDATE ON governance_scopes TO gate0_t_writer"),
          (PROD_DB, "GRANT USAGE ON SCHEMA public TO gate0_t_reader, gate0_t_writer")]
    undo = [(PROD_DB, "DROP OWNED BY gate0_t_reader, gate0_t_writer"),
            ("postgres", "DROP ROLE IF EXISTS gate0_t_reader"),
            ("postgres", "DROP ROLE IF EXISTS gate0_t_writer")]
    with changed(lab, do, undo):
        yield


def _definer_finding(proof: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in proof["findings"] if f["check"] == "security_definer")


def test_definer_owned_by_a_reader_passes(lab: Lab, definer_roles: None) -> None:
    with changed(lab, secdef("gate0_t_read", "gate0_t_reader"), []):
        proof = prod_proof(lab)
    assert _definer_finding(proof)["ok"], _definer_finding(proof)
    assert proof["ok"], [f for f in proof["findings"] if not f["ok"]]


def test_definer_owned_by_a_writer_fails(lab: Lab, definer_roles: None) -> None:
    with changed(lab, secdef("gate0_t_write", "gate0_t_writer"), []):
        finding = _definer_finding(prod_proof(lab))
    assert not finding["ok"]
    assert "gate0_t_write() (owner gate0_t_writer can write: governance_scopes (UPDATE" in finding["detail"]


def test_definer_chain_through_a_reader_to_a_writer_fails(lab: Lab, definer_roles: None) -> None:
    """A reader's definer can call a writer's definer (EXECUTE is PUBLIC's by default)."""
    chain = [*secdef("gate0_t_write", "gate0_t_writer"),
             (PROD_DB, "REVOKE EXECUTE ON FUNCTION public.gate0_t_write() FROM PUBLIC"),
             (PROD_DB, "GRANT EXECUTE ON FUNCTION public.gate0_t_write() TO gate0_t_reader"),
             *secdef("gate0_t_read", "gate0_t_reader", "SELECT public.gate0_t_write()")]
    with changed(lab, chain, []):
        finding = _definer_finding(prod_proof(lab))
    assert not finding["ok"]
    chained = "gate0_t_read() (owner gate0_t_reader can write: gate0_t_write() (owner gate0_t_writer"
    assert chained in finding["detail"]


# --- the whole gate and the consumers ------------------------------------------------------------

def test_gate_fails_naming_the_new_ids(lab: Lab, tmp_path: Path) -> None:
    with changed(lab, [(PROD_DB, f"GRANT CONNECT ON DATABASE {PROD_DB} TO {ADMIN}")],
                 [(PROD_DB, f"REVOKE CONNECT ON DATABASE {PROD_DB} FROM {ADMIN}")]):
        run = run_gate(tmp_path)
    assert run.rc != 0
    assert set(run.failures) == {"clone.production_unreachable"}, run.failures
    assert "clone.production_unreachable" in run.output
    assert run.report["decisions"]["clone_objectives"]["decision"] == "NO-GO"


def test_gate_then_require_rechecks_reach_before_a_mutation(fresh_lab: Lab, tmp_path: Path) -> None:
    """The gate passes; a GRANT a second later; the consumer's re-check refuses the mutation."""
    run = run_gate(tmp_path)
    assert run.rc == 0, run.output[-3000:]
    before = fresh_lab.scalar(CLONE_DB, "SELECT count(*) FROM governance_scan_cursor")
    evars = tmp_path / "apply.json"
    evars.write_text(json.dumps({"gate0": run.fact, "gate0_apply_mode": "commit",
                                 "gate0_apply_statements": ["DELETE FROM governance_scan_cursor"]}))
    with changed(fresh_lab, [(PROD_DB, f"GRANT CONNECT ON DATABASE {PROD_DB} TO {ADMIN}")],
                 [(PROD_DB, f"REVOKE CONNECT ON DATABASE {PROD_DB} FROM {ADMIN}")]):
        proc = run_playbook("playbooks/clone_apply.yml", "-e", f"@{evars}")
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, out[-3000:]
    assert "clone.production_unreachable" in out, out[-3000:]
    assert fresh_lab.scalar(CLONE_DB, "SELECT count(*) FROM governance_scan_cursor") == before


def test_a_function_in_an_untrusted_language_fails(lab: Lab) -> None:
    """An untrusted procedural language (plpython3u, plperlu ...) can open sockets: a function in one
    that the clone login can execute is an outbound link. The language is made here from plpgsql's
    handler (CREATE LANGUAGE without TRUSTED); the function is never called."""
    do = [(CLONE_DB, "CREATE FUNCTION gate0_t_handler() RETURNS language_handler "
                     "AS '$libdir/plpgsql', 'plpgsql_call_handler' LANGUAGE c"),
          (CLONE_DB, "CREATE LANGUAGE gate0_t_untrusted HANDLER gate0_t_handler"),
          (CLONE_DB, "CREATE FUNCTION gate0_t_fetch() RETURNS int LANGUAGE gate0_t_untrusted AS $$ x $$")]
    undo = [(CLONE_DB, "DROP LANGUAGE IF EXISTS gate0_t_untrusted CASCADE"),
            (CLONE_DB, "DROP FUNCTION IF EXISTS gate0_t_handler()")]
    with changed(lab, do, undo):
        records = judge(lab)
        allowed = judge(lab, allow=["gate0_t_untrusted"])
    assert_fail(records, "clone.outbound_links",
                "gate0_t_untrusted: EXECUTE on 1 function(s) in an untrusted language (may open sockets): "
                "gate0_t_fetch()")
    assert allowed["clone.outbound_links"]["status"] == "pass"


def test_gate_fails_on_a_prepared_transaction_on_production(lab: Lab, tmp_path: Path) -> None:
    """A prepared transaction holds its writes with no session at all; it may commit after the entry
    fingerprint, like an idle transaction."""
    if int(lab.scalar("postgres", "SHOW max_prepared_transactions")) == 0:
        pytest.skip("max_prepared_transactions = 0 on this server")
    lab.execute(PROD_DB, "BEGIN; UPDATE dot_tools SET tool_id = tool_id WHERE tool_id = 1; "
                         "PREPARE TRANSACTION 'gate0_t_prepared'")
    try:
        run = run_gate(tmp_path)
    finally:
        conn = lab.connect(PROD_DB)  # autocommit, outside any block: ROLLBACK PREPARED refuses one
        conn.cursor().execute("ROLLBACK PREPARED 'gate0_t_prepared'")
        conn.close()
    assert run.rc != 0
    assert "1 prepared transaction(s) on production hold writes: 'gate0_t_prepared' by postgres" in \
        run.failures.get("prod.idle_in_transaction", ""), run.failures
