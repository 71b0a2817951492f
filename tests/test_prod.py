"""The production gate on the real lab: pg_fingerprint (module level) and prod.* (role level).

Every check is made to fail by creating the unsafe situation on the lab, and seen to pass on the
seed. Module-level tests run main() in-process with patched args (and once through `ansible -m`);
role-level tests run the real `ansible-playbook playbooks/gate0.yml --tags prod` and read the JSON
report (`--tags prod` leaves the other gates "not run": only prod.* records are judged here).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.gate0.core.plugins.module_utils import gate0_fingerprint
from ansible_collections.gate0.core.plugins.module_utils import gate0_prod_checks as prod_checks
from conftest import CLONE_DB, PROD_DB, REPO, Lab, lab_env, load_plugin, run_playbook

RO = "context_pack_readonly"
PROD_IDS = [
    "prod.allowlist",
    "prod.read_only_session",
    "prod.role_cannot_write",
    "prod.clone_unreachable",
    "prod.fingerprint",
    "prod.baseline",
    "prod.idle_in_transaction",
    "prod.targets_quiet",
]
TEST_ROLE = "gate0_test_writer"

pg_fingerprint = load_plugin("library/pg_fingerprint.py")


def _defaults() -> dict:
    import yaml

    return yaml.safe_load((REPO / "roles" / "gate0" / "defaults" / "main.yml").read_text())


DEFAULTS = _defaults()


def module_args(lab: Lab, **over: object) -> dict:
    args = {
        "login_host": "127.0.0.1",
        "login_port": lab.port,
        "login_user": RO,
        "login_password": lab.password(RO),
        "login_db": PROD_DB,
        "allowed_databases": [PROD_DB],
        "clone_database": CLONE_DB,
        "targets": DEFAULTS["gate0_production_targets"],
        "baseline": DEFAULTS["gate0_production_baseline"],
    }
    args.update(over)
    return args


def run_module(args: dict, capsys: pytest.CaptureFixture[str]) -> dict:
    """main() in-process; returns the module's JSON result (exit_json or fail_json)."""
    capsys.readouterr()
    with patch_module_args(args), pytest.raises(SystemExit):
        pg_fingerprint.main()
    return json.loads(capsys.readouterr().out)


def findings(result: dict) -> dict[str, dict]:
    return {f["check"]: f for f in result["read_only_proof"]["findings"]}


@contextlib.contextmanager
def session(lab: Lab, db: str, *statements: str, user: str | None = None) -> Iterator[object]:
    """A connection that ran `statements` in an open transaction, kept open for the block."""
    conn = lab.connect(db, user=user)
    conn.autocommit = False
    with conn.cursor() as cur:
        for stmt in statements:
            cur.execute(stmt)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def writer_role(fresh_lab: Lab) -> Iterator[str]:
    """A cluster-wide test role (dropped afterwards, after the reset removed its grants)."""
    fresh_lab.execute("postgres", f"DROP ROLE IF EXISTS {TEST_ROLE}")
    fresh_lab.execute("postgres", f"CREATE ROLE {TEST_ROLE} NOLOGIN")
    yield TEST_ROLE
    fresh_lab.reset()
    for db in (PROD_DB, CLONE_DB):
        fresh_lab.execute(db, f"DROP OWNED BY {TEST_ROLE}")
    fresh_lab.execute("postgres", f"DROP ROLE IF EXISTS {TEST_ROLE}")


def gate(tmp_path: Path, *extra: str, env: dict | None = None) -> tuple[dict[str, dict], str]:
    """Run the role's production gate; the prod.* records by id, and the output."""
    extra_vars = json.dumps({"gate0_report_dir": str(tmp_path)})
    proc = run_playbook("playbooks/gate0.yml", "--tags", "prod", "-e", extra_vars, *extra, env_extra=env)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    reports = sorted(tmp_path.glob("gate0-*.json"))
    assert reports, out[-3000:]
    report = json.loads(reports[-1].read_text())
    checks = {c["id"]: c for c in report["checks"] if c["id"].startswith("prod.")}
    assert sorted(checks) == sorted(PROD_IDS)
    assert proc.returncode != 0  # --tags prod: the other gates are "not run", so the verdict is FAIL
    return checks, out


def only_failed(checks: dict[str, dict]) -> list[str]:
    return sorted(cid for cid, c in checks.items() if c["status"] != "pass")


# --- module level ------------------------------------------------------------------------------


def test_module_passes_on_the_seed_and_is_stable(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_module(module_args(lab), capsys)
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is False
    assert first["counts"] == DEFAULTS["gate0_production_baseline"]
    assert first["baseline"] == {"given": True, "matches": True, "diff": []}
    assert first["session"]["xid_assigned"] is None and first["session"]["rolled_back"] is True
    assert first["session"]["settings"]["transaction_read_only"] == "on"
    assert first["read_only_proof"]["ok"], [f for f in first["read_only_proof"]["findings"] if not f["ok"]]
    assert first["clone_unreachable"]["has_connect"] is False
    assert first["clone_unreachable"]["attempt"]["refused"] is True
    assert "permission denied" in first["clone_unreachable"]["attempt"]["reason"]
    assert first["identity"]["database"] == PROD_DB and first["identity"]["version_num"] >= 140000
    assert first["volatile"] == ["idle_in_txn"]
    assert set(first["hashes"]) == {
        n for n, t in DEFAULTS["gate0_production_targets"].items() if t.get("hash")
    }
    assert first["target_tables"]["gap"] == [
        "governance_object_inventory",
        "governance_object_ownership",
        "governance_scopes",
    ]
    assert "dot_tools" in first["counters"]
    # Stable across sessions, and the hash does not depend on the chunk size.
    second = run_module(module_args(lab, hash_chunk_rows=1000), capsys)
    assert second["digest"] == first["digest"] and second["hashes"] == first["hashes"]
    assert second["timings"]["longest_statement_ms"] < 0.3 * 5000


def test_module_through_ansible_adhoc(lab: Lab) -> None:
    import subprocess

    args = json.dumps(
        module_args(
            lab, targets={"tools": {"relation": "public.dot_tools", "hash": True}}, baseline={"tools": 309}
        )
    )
    proc = subprocess.run(
        ["ansible", "localhost", "-m", "pg_fingerprint", "-a", args, "--check"],
        cwd=REPO,
        env=lab_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "changed: false" in proc.stdout and "tools: 309" in proc.stdout
    assert lab.password(RO) not in proc.stdout


@pytest.mark.parametrize(
    ("over", "msg"),
    [
        (
            {"allowed_databases": ["other"]},
            "allowlist: login_db 'directus' is not in allowed_databases ['other']",
        ),
        (
            {"allowed_databases": [PROD_DB, CLONE_DB]},
            f"allowlist: the clone '{CLONE_DB}' is in allowed_databases",
        ),
        ({"allowed_databases": []}, "allowlist: allowed_databases is empty"),
    ],
)
def test_module_refuses_before_connecting(
    lab: Lab, capsys: pytest.CaptureFixture[str], over: dict, msg: str
) -> None:
    # A port nobody listens on: the refusal must come before any connection attempt.
    result = run_module(module_args(lab, login_port=1, **over), capsys)
    assert result["failed"] and result["failed_stage"] == "allowlist"
    assert msg in result["msg"] and "\n" not in result["msg"]
    assert "session" not in result


def test_module_missing_relation_is_named(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    targets = dict(DEFAULTS["gate0_production_targets"], ghost={"relation": "public.no_such_table"})
    result = run_module(module_args(lab, targets=targets), capsys)
    assert result["failed"] and result["failed_stage"] == "targets"
    assert result["msg"] == (
        "pg_fingerprint: resolving targets: relation does not exist: ghost (public.no_such_table)"
    )
    # Evidence gathered before the failure is still returned, and the transaction was proven clean.
    assert result["read_only_proof"]["ok"] and result["session"]["wrote_nothing"] is True
    assert result["clone_unreachable"]["attempt"]["refused"] is True


def test_module_rls_fails_instead_of_undercounting(
    fresh_lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_lab.execute(PROD_DB, "ALTER TABLE dot_tools ENABLE ROW LEVEL SECURITY")
    fresh_lab.execute(
        PROD_DB, f"CREATE POLICY only_some ON dot_tools FOR SELECT TO {RO} USING (tool_id < 10)"
    )
    result = run_module(module_args(fresh_lab), capsys)
    assert result["failed"] and "counts" not in result
    assert "fingerprinting target 'dot_tools' (dot_tools)" in result["msg"]
    assert "row-level security" in result["msg"]


def test_module_lock_timeout_names_the_target(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    with session(lab, PROD_DB, "LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE"):
        start = time.monotonic()
        result = run_module(module_args(lab, lock_timeout=500), capsys)
        took = time.monotonic() - start
    assert result["failed"] and result["failed_stage"] == "targets"
    assert "fingerprinting target 'dot_tools' (dot_tools)" in result["msg"]
    assert "lock timeout" in result["msg"]
    assert took < 5
    assert result["session"]["wrote_nothing"] is True


def test_module_sql_target_and_where(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    targets = {
        "issues_critical": {"relation": "system_issues", "where": "severity = 'critical'", "hash": True},
        "answer": {"sql": "SELECT 42", "tables": ["dot_tools"]},
    }
    result = run_module(module_args(lab, targets=targets, baseline={"answer": 41}), capsys)
    assert not result.get("failed"), result.get("msg")
    assert result["counts"] == {"issues_critical": 50120, "answer": 42}
    assert result["baseline"]["diff"] == [{"target": "answer", "expected": 41, "observed": 42}]
    assert result["target_tables"]["answer"] == ["dot_tools"]


# --- the one rule for sessions idle in a transaction (prod.idle_in_transaction and the idle_in_txn
# target that prod.baseline compares: gate0_fingerprint.IDLE_IN_TRANSACTION_TOLERATED) -----------

IDLE_TARGETS = {"idle_in_txn": DEFAULTS["gate0_production_targets"]["idle_in_txn"]}


def idle_run(lab: Lab, capsys: pytest.CaptureFixture[str], *statements: str,
             user: str | None = RO) -> tuple[int, dict, dict]:
    """The module run while another session sits idle in its transaction after `statements`:
    that session's pid, the module's result and the prod.idle_in_transaction record."""
    with session(lab, PROD_DB, *statements, user=user) as conn:
        pid = conn.get_backend_pid()
        result = run_module(module_args(lab, targets=IDLE_TARGETS, baseline={"idle_in_txn": 0}), capsys)
    assert not result.get("failed"), result.get("msg")
    return pid, result, prod_checks.check_idle(result)


def test_idle_read_only_role_without_xid_is_tolerated(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """Another gate's fingerprint: the proven read-only role, idle in a READ ONLY transaction, no xid."""
    pid, result, check = idle_run(
        lab, capsys, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
        "SET application_name = 'gate0'", "SELECT count(*) FROM dot_tools")
    idle = result["idle_in_transaction"]
    assert [s["pid"] for s in idle["tolerated"]] == [pid] and idle["sessions"] == []
    assert result["counts"]["idle_in_txn"] == 0 and result["baseline"]["matches"]
    assert check["status"] == "pass"
    assert check["message"] == (
        "no idle-in-transaction session that could hold or make writes; 1 tolerated: the role "
        f"context_pack_readonly, proven unable to write in this run, with no transaction id (pid {pid})")


IDLE_DANGERS = [
    # (what, the session's statements, its login: None = the superuser)
    ("read-only role holding a transaction id", ["SELECT pg_current_xact_id()"], RO),
    ("app role calling itself gate0", ["SET application_name = 'gate0'", "SELECT 1"], "directus"),
    ("superuser SET ROLE to the read-only role",
     [f"SET ROLE {RO}", "SET application_name = 'gate0'", "SELECT 1"], None),
]


@pytest.mark.parametrize(("what", "statements", "user"), IDLE_DANGERS, ids=[d[0] for d in IDLE_DANGERS])
def test_idle_session_that_could_write_fails_both(
    lab: Lab, capsys: pytest.CaptureFixture[str], what: str, statements: list[str], user: str | None
) -> None:
    """Neither application_name nor SET ROLE is evidence: only the login role, its xid and the proof."""
    pid, result, check = idle_run(lab, capsys, *statements, user=user)
    idle = result["idle_in_transaction"]
    assert [s["pid"] for s in idle["sessions"]] == [pid] and idle["tolerated"] == [], what
    assert result["counts"]["idle_in_txn"] == 1 and not result["baseline"]["matches"]
    assert check["status"] == "fail"
    assert check["message"].startswith(f"1 idle-in-transaction session(s) on production: pid {pid} (")


def test_idle_read_only_role_not_proven_is_not_tolerated(
    fresh_lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same session as another gate's, but the role can write now: nothing is tolerated."""
    fresh_lab.execute(PROD_DB, f"GRANT INSERT ON directus_flows TO {RO}")
    pid, result, check = idle_run(fresh_lab, capsys, "SELECT 1")
    assert not result["read_only_proof"]["ok"]
    assert [s["pid"] for s in result["idle_in_transaction"]["sessions"]] == [pid]
    assert result["counts"]["idle_in_txn"] == 1 and check["status"] == "fail"


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        ({"rule": "every_session"}, "rule must be one of ['idle_in_transaction'], without tables"),
        ({"rule": "idle_in_transaction", "sql": "SELECT 0"}, "needs exactly one of relation, sql or rule"),
        ({"rule": "idle_in_transaction", "hash": True}, "where/hash need a relation"),
    ],
)
def test_module_rule_target_refused_before_connecting(
    lab: Lab, capsys: pytest.CaptureFixture[str], spec: dict, msg: str
) -> None:
    result = run_module(module_args(lab, login_port=1, targets={"idle": spec}), capsys)
    assert result["failed"] and result["failed_stage"] == "options"
    assert msg in result["msg"] and "session" not in result


HASH_TABLES = [
    # A plain table hashed through a filter, and a partitioned one (its leaves share the block ranges).
    ("CREATE TABLE gate0_hash_plain (id int PRIMARY KEY, kind text, body text); "
     "INSERT INTO gate0_hash_plain SELECT g, CASE WHEN g % 7 = 0 THEN 'rare' ELSE 'common' END, "
     "repeat(md5(g::text), 3) FROM generate_series(1, 60000) AS g",
     "gate0_hash_plain", "kind = 'rare'"),
    ("CREATE TABLE gate0_hash_parts (id int, part int, body text) PARTITION BY LIST (part); "
     "CREATE TABLE gate0_hash_parts_a PARTITION OF gate0_hash_parts FOR VALUES IN (0); "
     "CREATE TABLE gate0_hash_parts_b PARTITION OF gate0_hash_parts FOR VALUES IN (1); "
     "INSERT INTO gate0_hash_parts SELECT g, CASE WHEN g < 15000 THEN 0 ELSE 1 END, md5(g::text) "
     "FROM generate_series(1, 50000) AS g",
     "gate0_hash_parts", None),
]


@pytest.mark.parametrize(("setup", "table", "where"), HASH_TABLES, ids=["filtered", "partitioned"])
def test_module_hash_counts_every_row_once_in_block_ranges(fresh_lab: Lab, capsys: pytest.CaptureFixture[str],
                                                          setup: str, table: str, where: str | None) -> None:
    """Small ranges (many statements): the hash equals one statement's sum over the same rows, and a
    changed row changes it."""
    fresh_lab.execute(PROD_DB, f"{setup}; ANALYZE {table}; GRANT SELECT ON {table} TO {RO}")
    cond = f" WHERE {where}" if where else ""

    def reference() -> str:
        # The row hash the module uses for these tables (every column hashable: by column).
        row_hash = gate0_fingerprint.row_hash_sql(True)
        n, total = fresh_lab.query(PROD_DB, f"SELECT count(*), COALESCE(sum({row_hash}"
                                   f"::numeric), 0) FROM {table} AS t{cond}")[0]
        return f"{n}:{int(total) % (1 << 64):016x}"

    spec = {"relation": table, "hash": True, **({"where": where} if where else {})}

    def fingerprint() -> dict:
        result = run_module(module_args(fresh_lab, targets={"t": spec}, baseline={},
                                        hash_chunk_rows=1000), capsys)
        assert not result.get("failed"), result.get("msg")
        return result

    try:
        first = fingerprint()
        assert first["timings"]["statements"] > 5, first["timings"]  # really in several ranges
        assert first["timings"]["hash_methods"] == {"t": "record"}
        assert first["hashes"]["t"] == reference()
        # Row 7: kept by the filter, in the first partition.
        fresh_lab.execute(PROD_DB, f"UPDATE {table} SET body = body || 'x' WHERE id = 7")
        second = fingerprint()
        assert second["counts"] == first["counts"]
        assert second["hashes"]["t"] == reference() != first["hashes"]["t"]
    finally:
        fresh_lab.execute(PROD_DB, f"DROP TABLE IF EXISTS {table}")


WRITE_PATHS = [
    # (finding, setup run as superuser in production, text the detail must contain)
    ("table_privileges", f"GRANT UPDATE ON directus_webhooks TO {RO}", "directus_webhooks (UPDATE as"),
    ("column_privileges", f"GRANT UPDATE (status) ON directus_flows TO {RO}", "directus_flows.status"),
    (
        "ownership",
        f"CREATE FUNCTION public.gate0_owned() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
        f"ALTER FUNCTION public.gate0_owned() OWNER TO {RO}",
        "function gate0_owned()",
    ),
    ("create_privileges", f"GRANT CREATE ON SCHEMA public TO {RO}", "schema public"),
    ("sequences", f"GRANT USAGE ON SEQUENCE event_outbox_event_id_seq TO {RO}", "event_outbox_event_id_seq"),
    (
        "security_definer",
        "CREATE FUNCTION public.gate0_sd() RETURNS int LANGUAGE sql SECURITY DEFINER "
        "AS 'SELECT 1'; ALTER FUNCTION public.gate0_sd() OWNER TO directus",
        "gate0_sd() (owner directus",
    ),
    ("membership", f"GRANT pg_write_all_data TO {RO}", "pg_write_all_data"),
    ("createdb", f"ALTER ROLE {RO} CREATEDB", "CREATEDB held by context_pack_readonly"),
    (
        "large_objects",
        f"SELECT lo_create(4242); GRANT UPDATE ON LARGE OBJECT 4242 TO {RO}",
        "large object 4242",
    ),
]


@pytest.mark.parametrize(("check", "setup", "detail"), WRITE_PATHS, ids=[w[0] for w in WRITE_PATHS])
def test_module_write_path_found(
    fresh_lab: Lab, capsys: pytest.CaptureFixture[str], check: str, setup: str, detail: str
) -> None:
    fresh_lab.execute(PROD_DB, setup)
    result = run_module(module_args(fresh_lab), capsys)
    assert not result.get("failed"), result.get("msg")
    found = findings(result)
    assert found[check]["ok"] is False and detail in found[check]["detail"], found[check]
    others = [f for name, f in found.items() if not f["ok"] and name not in (check, "membership")]
    if check not in ("membership", "createdb"):
        assert not others, others


# --- role level --------------------------------------------------------------------------------


def test_gate_passes_on_the_seed(lab: Lab, tmp_path: Path) -> None:
    checks, _out = gate(tmp_path)
    assert only_failed(checks) == [], {c: checks[c]["message"] for c in only_failed(checks)}
    report = json.loads(next(tmp_path.glob("gate0-*.json")).read_text())
    prod = report["production"]
    assert prod["digest"] and prod["counts"]["system_issues"] == 200480
    assert prod["identity"]["database"] == PROD_DB and prod["read_only_proof"]["ok"]
    assert prod["baseline"]["matches"] and prod["timings"]["longest_statement_ms"] >= 0


def test_gate_unsafe_situations_each_fail_their_check(fresh_lab: Lab, tmp_path: Path) -> None:
    """Four unsafe situations at once; each check fails on its own cause, the others still pass."""
    fresh_lab.execute(PROD_DB, f"GRANT INSERT, DELETE ON directus_flows TO {RO}")  # a non-target table
    fresh_lab.execute("postgres", f'GRANT CONNECT ON DATABASE "{CLONE_DB}" TO {RO}')
    fresh_lab.execute(PROD_DB, "INSERT INTO governance_scopes (scope_code, title) VALUES ('extra', 'Extra')")
    fresh_lab.execute(PROD_DB, "DELETE FROM dot_tools WHERE tool_id > 300")
    with session(fresh_lab, PROD_DB, "SELECT 1", user="directus") as conn:
        pid = conn.get_backend_pid()
        checks, out = gate(tmp_path)
    assert only_failed(checks) == [
        "prod.baseline",
        "prod.clone_unreachable",
        "prod.idle_in_transaction",
        "prod.role_cannot_write",
    ]
    assert checks["prod.role_cannot_write"]["message"] == (
        "role context_pack_readonly can write: table_privileges: write privileges on directus_flows "
        "(DELETE/INSERT as context_pack_readonly)"
    )
    assert "prod.role_cannot_write: role context_pack_readonly can write" in out
    clone_msg = checks["prod.clone_unreachable"]["message"]
    assert f"the production role has CONNECT on the clone {CLONE_DB}" in clone_msg
    assert "was ACCEPTED" in clone_msg
    # The accepted connection was closed at once: no session of the role is left on the clone.
    assert (
        fresh_lab.scalar(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
            (CLONE_DB, RO),
        )
        == 0
    )
    assert checks["prod.baseline"]["message"] == (
        "baseline mismatch: dot_tools: expected 309, observed 300; gap: expected 210, observed 245; "
        "idle_in_txn: expected 0, observed 1; scopes: expected 6, observed 7"
    )
    assert f"pid {pid} (directus" in checks["prod.idle_in_transaction"]["message"]


def test_gate_member_of_a_writer_and_owner_of_something(
    writer_role: str, tmp_path: Path, fresh_lab: Lab
) -> None:
    fresh_lab.execute(PROD_DB, f"GRANT UPDATE ON system_issues TO {writer_role}")
    # From 16 a membership can be NOINHERIT: no inherited privilege, but SET ROLE still writes.
    version = int(fresh_lab.scalar("postgres", "SHOW server_version_num"))
    inherit = " WITH INHERIT FALSE" if version >= 160000 else ""
    fresh_lab.execute("postgres", f"GRANT {writer_role} TO {RO}{inherit}")
    fresh_lab.execute(PROD_DB, f"CREATE SCHEMA scratch AUTHORIZATION {RO}")
    checks, _out = gate(tmp_path, "-e", json.dumps({"gate0_production_baseline": {}}))
    assert only_failed(checks) == ["prod.baseline", "prod.role_cannot_write"]
    assert checks["prod.baseline"]["status"] == "skipped"  # an empty baseline says so
    msg = checks["prod.role_cannot_write"]["message"]
    assert f"membership: member of roles that can write: {writer_role}" in msg
    assert "system_issues (UPDATE as " in msg and f"{writer_role})" in msg
    assert "ownership: owns schema scratch (owned by context_pack_readonly)" in msg


def test_gate_allowlist_naming_the_clone(lab: Lab, tmp_path: Path) -> None:
    """The role refuses before any connection (validate.yml); the module would refuse too."""
    proc = run_playbook("playbooks/gate0.yml", "--tags", "prod", "-e", json.dumps(
        {"gate0_report_dir": str(tmp_path), "gate0_production_allowed_databases": [PROD_DB, CLONE_DB]}))
    assert proc.returncode != 0
    assert "TASK [gate0 : prod |" not in proc.stdout
    assert not list(tmp_path.glob("gate0-*.json"))
    assert (f"the clone '{CLONE_DB}' is in gate0_production_allowed_databases "
            f"['{PROD_DB}', '{CLONE_DB}']") in proc.stdout


def test_gate_rls_fails_the_counts_not_the_proof(fresh_lab: Lab, tmp_path: Path) -> None:
    fresh_lab.execute(PROD_DB, "ALTER TABLE governance_object_inventory ENABLE ROW LEVEL SECURITY")
    checks, _out = gate(tmp_path)
    # The fingerprint stopped before its end: the writers' check has no end to compare either.
    assert only_failed(checks) == ["prod.baseline", "prod.fingerprint", "prod.targets_quiet"]
    assert "writers not observed" in checks["prod.targets_quiet"]["message"]
    assert (
        "fingerprinting target 'inventory' (governance_object_inventory)"
        in checks["prod.baseline"]["message"]
    )
    assert "row-level security" in checks["prod.baseline"]["message"]


def test_gate_target_behind_a_held_lock_fails_on_lock_timeout(lab: Lab, tmp_path: Path) -> None:
    # In check mode too: the module only reads, the gate runs the same.
    with session(lab, PROD_DB, "LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE") as holder:
        start = time.monotonic()
        checks, _out = gate(tmp_path, "--check", "-e", json.dumps({"gate0_lock_timeout": 500}))
        took = time.monotonic() - start
        pid = holder.get_backend_pid()
    # The lock holder sits idle in its transaction: that check names it too.
    assert only_failed(checks) == ["prod.baseline", "prod.fingerprint", "prod.idle_in_transaction",
                                   "prod.targets_quiet"]
    assert f"pid {pid} (postgres" in checks["prod.idle_in_transaction"]["message"]
    assert f"dot_tools: pid {pid} (postgres, -, idle in transaction) holds AccessExclusiveLock at the start" \
        in checks["prod.targets_quiet"]["message"]
    assert checks["prod.baseline"]["message"] == (
        "counts not taken: pg_fingerprint: fingerprinting target 'dot_tools' (dot_tools): "
        "canceling statement due to lock timeout"
    )
    assert took < 60  # bounded by the lock timeout, not by the lock holder


def test_gate_cannot_connect(lab: Lab, tmp_path: Path) -> None:
    checks, _out = gate(tmp_path, "-e", json.dumps({"gate0_production_login_password": "wrong"}))
    assert only_failed(checks) == PROD_IDS[1:] or only_failed(checks) == sorted(PROD_IDS)
    assert "password authentication failed" in checks["prod.role_cannot_write"]["message"]


# --- exit fingerprint --------------------------------------------------------------------------


def exit_run(tmp_path: Path) -> tuple[int, str]:
    proc = run_playbook("playbooks/gate0_exit.yml", "-e", json.dumps({"gate0_report_dir": str(tmp_path)}))
    return proc.returncode, proc.stdout + proc.stderr


def test_exit_unchanged_then_count_preserving_update_caught(fresh_lab: Lab, tmp_path: Path) -> None:
    gate(tmp_path)  # registers the gate0 fact (cached) with the entry fingerprint
    rc, out = exit_run(tmp_path)
    assert rc == 0 and "gate0 exit PASS: production unchanged" in out, out[-2000:]
    fresh_lab.execute(PROD_DB, "UPDATE dot_tools SET name = 'Tool renamed' WHERE tool_id = 7")
    rc, out = exit_run(tmp_path)
    assert rc != 0
    assert "gate0 exit FAIL: production CHANGED between entry and exit: dot_tools: content changed" in out
    assert "dot_tools (dot_tools): n_tup_upd 0 -> 1" in out


def test_exit_stats_reset_cannot_prove(fresh_lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    # A content-preserving update moves the counter; the entry is taken after it; then the
    # statistics are reset: the counter went down, so nothing can be proven (never a PASS).
    fresh_lab.execute(PROD_DB, "UPDATE dot_tools SET name = name WHERE tool_id = 7")
    entry = prod_checks.gate0_prod_summary(run_module(module_args(fresh_lab), capsys), PROD_DB)
    assert entry["counters"]["dot_tools"]["n_tup_upd"] == 1
    same = prod_checks.gate0_prod_exit(entry, run_module(module_args(fresh_lab), capsys))
    assert same["status"] == "unchanged", same["message"]
    fresh_lab.execute(PROD_DB, "SELECT pg_stat_reset_single_table_counters('dot_tools'::regclass)")
    for _ in range(50):  # PostgreSQL 14's statistics collector applies a reset asynchronously (bounded)
        if fresh_lab.scalar(PROD_DB, "SELECT COALESCE(n_tup_upd, 0) FROM pg_stat_user_tables "
                                     "WHERE relname = 'dot_tools'") == 0:
            break
        time.sleep(0.1)
    verdict = prod_checks.gate0_prod_exit(entry, run_module(module_args(fresh_lab), capsys))
    assert verdict["status"] == "cannot_prove" and not verdict["unchanged"]
    assert verdict["message"].startswith(
        "production unchanged: cannot prove: dot_tools (dot_tools): n_tup_upd went down 1 -> 0 "
        "(statistics reset)"
    )


def test_exit_requires_the_entry_fact(lab: Lab, tmp_path: Path) -> None:
    # This test's own fact cache (conftest) is empty: no gate0 ran.
    rc, out = exit_run(tmp_path)
    assert rc != 0 and "gate0 exit: cannot prove production unchanged: no entry fingerprint" in out


# --- the exit comparison, pure ------------------------------------------------------------------


def _summary(**over: object) -> dict:
    base = {
        "database": PROD_DB,
        "digest": "d1",
        "counts": {"a": 1, "live": 5},
        "hashes": {"a": "1:00"},
        "counters": {"t": {"relfilenode": 10, "n_tup_ins": 1, "n_tup_upd": 0, "n_tup_del": 0}},
        "target_tables": {"a": ["t"], "live": ["l"]},
        "volatile": ["live"],
        "stats_reset": None,
        "server": {"database_oid": 1, "system_identifier": "s"},
    }
    base.update(over)
    return base


QUIET = {"start": {"locks": [], "counters": {}}, "end": {"locks": [], "counters": {}}}


def _result(**over: object) -> dict:
    s = _summary(**over)
    return {"writers": QUIET, **s, "identity": s["server"]}


@pytest.mark.parametrize(
    ("exit_over", "status", "text"),
    [
        ({}, "unchanged", "production unchanged: digest d1 equal"),
        ({"counts": {"a": 1, "live": 9}}, "unchanged", "(1 targets)"),  # volatile: reported, not proven
        ({"digest": "d2", "hashes": {"a": "1:ff"}}, "changed",
         "a: content changed (rows or their row versions, ctid/xmin: hash 1:00 -> 1:ff)"),
        ({"digest": "d2", "counts": {"a": 2, "live": 5}}, "changed", "a: count 1 -> 2"),
        (
            {"counters": {"t": {"relfilenode": 11, "n_tup_ins": 1, "n_tup_upd": 0, "n_tup_del": 0}}},
            "changed",
            "a (t): rewritten or truncated (relfilenode 10 -> 11)",
        ),
        (
            {"counters": {"t": {"relfilenode": 10, "n_tup_ins": 1, "n_tup_upd": 0, "n_tup_del": 1}}},
            "changed",
            "a (t): n_tup_del 0 -> 1",
        ),
        (
            {"counters": {"t": {"relfilenode": 10, "n_tup_ins": 0, "n_tup_upd": 0, "n_tup_del": 0}}},
            "cannot_prove",
            "a (t): n_tup_ins went down 1 -> 0 (statistics reset)",
        ),
        (
            {"server": {"database_oid": 2, "system_identifier": "s"}},
            "cannot_prove",
            "another database named directus (database_oid 1 -> 2)",
        ),
        (
            {"writers": {**QUIET, "end": {"locks": [{"table": "t", "pid": 7, "mode": "RowExclusiveLock",
                                                    "granted": True, "user": "app", "state": "active"}]}}},
            "cannot_prove",
            "written during the exit fingerprint: t: pid 7 (app, -, active) holds RowExclusiveLock at the "
            "end",
        ),
        ({"writers": {}}, "cannot_prove", "exit fingerprint: writers not observed"),
        (
            {"failed_stage": "connect", "msg": "pg_fingerprint: connecting to x: refused"},
            "cannot_prove",
            "exit fingerprint failed: pg_fingerprint: connecting to x: refused",
        ),
    ],
)
def test_exit_comparison(exit_over: dict, status: str, text: str) -> None:
    verdict = prod_checks.gate0_prod_exit(_summary(), _result(**exit_over))
    assert verdict["status"] == status and verdict["unchanged"] is (status == "unchanged")
    assert text in verdict["message"], verdict["message"]


def test_exit_without_entry_digest_cannot_prove() -> None:
    verdict = prod_checks.gate0_prod_exit(_summary(digest=None), _result())
    assert verdict["status"] == "cannot_prove" and "has no digest" in verdict["message"]
