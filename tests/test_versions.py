"""The read-only proof on each PostgreSQL major: version-specific escapes caught where they exist.

Run on every supported major by `make test-matrix` (each against a lab of that major). Every test
checks the version tables of gate0.core's gate0_readonly.py against the real server first (the data
says a role, privilege or behaviour exists on this version exactly when the server has it), then
creates the escape where it exists and sees the finding fail, and where it cannot exist sees the
server refuse to create it and the finding pass (no false report).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from ansible_collections.gate0.core.plugins.module_utils import gate0_readonly as ro
from conftest import PROD_DB, REPO, Lab
from test_prod import module_args, run_module

ROLE = "context_pack_readonly"


@pytest.fixture(scope="module")
def version(lab: Lab) -> int:
    return int(lab.scalar(PROD_DB, "SHOW server_version_num"))


def read_only_cursor(lab: Lab) -> Iterator[Any]:
    """The gate role in a REPEATABLE READ READ ONLY transaction on production, rolled back after."""
    conn = lab.connect(PROD_DB, user=ROLE)
    conn.autocommit = False
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.rollback()
        conn.close()


def proof(lab: Lab, version: int) -> dict[str, Any]:
    for cur in read_only_cursor(lab):
        return ro.read_only_proof(cur, version)
    raise AssertionError("unreachable")


def finding(result: dict[str, Any], check: str) -> dict[str, Any]:
    return next(f for f in result["findings"] if f["check"] == check)


def failed(result: dict[str, Any]) -> dict[str, str]:
    return {f["check"]: f["detail"] for f in result["findings"] if not f["ok"]}


def role_exists(lab: Lab, name: str) -> bool:
    return bool(lab.scalar(PROD_DB, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,)))


def test_lab_runs_the_major_asked_for(version: int) -> None:
    major = os.environ.get("GATE0_LAB_MAJOR") or subprocess.run(
        [str(REPO / "lab" / "pg.sh"), "default"], capture_output=True, text=True, check=True).stdout.strip()
    assert version // 10000 == int(major)


def test_seed_role_proven_read_only_on_this_major(lab: Lab, version: int) -> None:
    """No false report: the seed's read-only role passes every finding, each stating its versions."""
    result = proof(lab, version)
    assert failed(result) == {}
    assert result["server_version_num"] == version
    assert all(f["versions"] for f in result["findings"])


def test_xact_id_function_on_every_major(lab: Lab) -> None:
    """The no-write proof's pg_current_xact_id_if_assigned() (13+): NULL until a write assigns one."""
    for cur in read_only_cursor(lab):
        cur.execute("SELECT count(*) FROM system_issues")
        cur.execute("SELECT pg_current_xact_id_if_assigned()")
        assert cur.fetchone() == (None,)
    conn = lab.connect(PROD_DB)
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE gate0_t (x int)")
        cur.execute("SELECT pg_current_xact_id_if_assigned()")
        assert cur.fetchone()[0] is not None
    conn.rollback()
    conn.close()


def test_large_object_write_in_read_only_transaction(lab: Lab, version: int) -> None:
    """Before 16 READ ONLY does not refuse large-object writes; the no-write proof (xid) sees them."""
    enforced = version >= ro.LO_READ_ONLY_ENFORCED_FROM
    for statement in ("SELECT lo_create(0)", "SELECT lo_from_bytea(0, '\\x00')"):
        for cur in read_only_cursor(lab):
            if enforced:
                with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                    cur.execute(statement)
            else:
                cur.execute(statement)
                cur.execute("SELECT pg_current_xact_id_if_assigned()")
                assert cur.fetchone()[0] is not None, "a large-object write left no xid: the proof is blind"
    assert lab.scalar(PROD_DB, "SELECT count(*) FROM pg_largeobject_metadata") == 0


def test_module_large_object_write_in_a_target_caught(lab: Lab, version: int,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """An operator's `sql` target that writes a large object: on 14/15 READ ONLY lets it through and
    the no-write proof fails the module; from 16 the server refuses it. Nothing stays either way."""
    targets = {"sneaky": {"sql": "SELECT lo_create(0)", "tables": ["dot_tools"]}}
    result = run_module(module_args(lab, targets=targets, baseline={}), capsys)
    assert result.get("failed"), "a large-object write in a target passed"
    if version >= ro.LO_READ_ONLY_ENFORCED_FROM:
        assert "cannot execute lo_create() in a read-only transaction" in result["msg"]
    else:
        assert result["session"]["wrote_nothing"] is False
        assert result["session"]["xid_assigned"] is not None
        assert "pg_current_xact_id_if_assigned()" in result["msg"]
    assert result["session"]["rolled_back"] is True
    assert lab.scalar(PROD_DB, "SELECT count(*) FROM pg_largeobject_metadata") == 0


def test_large_object_update_privilege_caught(fresh_lab: Lab, version: int) -> None:
    """UPDATE on a large object is a write path on every major; the finding says how READ ONLY helps."""
    oid = fresh_lab.scalar(PROD_DB, "SELECT lo_from_bytea(0, 'seed')")
    fresh_lab.execute(PROD_DB, f"GRANT SELECT, UPDATE ON LARGE OBJECT {int(oid)} TO {ROLE}")
    for cur in read_only_cursor(fresh_lab):
        if version >= ro.LO_READ_ONLY_ENFORCED_FROM:
            with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                cur.execute("SELECT lo_put(%s, 0, 'x')", (oid,))
        else:
            cur.execute("SELECT lo_put(%s, 0, 'x')", (oid,))
    lo = finding(proof(fresh_lab, version), "large_objects")
    assert not lo["ok"]
    assert f"large object {oid}" in lo["detail"]
    assert ("do NOT refuse" in lo["detail"]) == (version < ro.LO_READ_ONLY_ENFORCED_FROM)
    assert "16" in lo["versions"]


def test_maintain_privilege(fresh_lab: Lab, version: int) -> None:
    """MAINTAIN (17+) on a table is a write path where it exists; before 17 it cannot be granted."""
    since = ro.TABLE_WRITE_PRIVILEGES["MAINTAIN"]
    if version < since:
        with pytest.raises(psycopg2.Error, match=r"(?i)maintain"):
            fresh_lab.execute(PROD_DB, f"GRANT MAINTAIN ON dot_tools TO {ROLE}")
        table = finding(proof(fresh_lab, version), "table_privileges")
        assert table["ok"] and "MAINTAIN" not in table["detail"]
        return
    fresh_lab.execute(PROD_DB, f"GRANT MAINTAIN ON dot_tools TO {ROLE}")
    table = finding(proof(fresh_lab, version), "table_privileges")
    assert not table["ok"]
    assert "dot_tools (MAINTAIN" in table["detail"]
    assert "17" in table["versions"]


PREDEFINED = sorted((set(ro.PREDEFINED_WRITE_ROLES) | set(ro.PREDEFINED_READ_ROLES)) - {"pg_database_owner"})


def since(name: str) -> int:
    if name in ro.PREDEFINED_WRITE_ROLES:
        return ro.PREDEFINED_WRITE_ROLES[name][0]
    return ro.PREDEFINED_READ_ROLES[name]


def test_every_predefined_role_is_classified(lab: Lab) -> None:
    """A major's predefined roles are all in the tables (a new one fails here until classified)."""
    names = {r[0] for r in lab.query(PROD_DB, "SELECT rolname FROM pg_roles WHERE rolname ~ '^pg_'")}
    assert names - set(ro.PREDEFINED_WRITE_ROLES) - set(ro.PREDEFINED_READ_ROLES) == set()


@pytest.mark.parametrize("name", PREDEFINED)
def test_predefined_role(fresh_lab: Lab, version: int, name: str) -> None:
    """The table's first version for each predefined role is the server's; write roles are caught,
    read-only ones are not reported; roles a major lacks cannot be granted there."""
    assert role_exists(fresh_lab, name) == (version >= since(name)), f"{name}: table says {since(name)}"
    if version < since(name):
        with pytest.raises(psycopg2.errors.UndefinedObject):
            fresh_lab.execute(PROD_DB, f"GRANT {name} TO {ROLE}")
        return
    fresh_lab.execute(PROD_DB, f"GRANT {name} TO {ROLE}")
    result = proof(fresh_lab, version)
    if name in ro.PREDEFINED_WRITE_ROLES:
        membership = finding(result, "membership")
        assert not membership["ok"] and name in membership["detail"]
    else:
        assert failed(result) == {}


PARAMETER_GRANTS = [
    # (privilege, parameter, reported): ALTER SYSTEM rewrites the server's configuration; SET on a
    # superuser parameter lifts a protection (every large object writable); SET on a user one is
    # what every role may do anyway.
    ("ALTER SYSTEM", "work_mem", True),
    ("SET", "lo_compat_privileges", True),
    ("SET", "work_mem", False),
]


@pytest.mark.parametrize(("privilege", "parameter", "reported"), PARAMETER_GRANTS,
                         ids=[f"{p}-{n}" for p, n, _ in PARAMETER_GRANTS])
def test_parameter_privileges(lab: Lab, version: int, privilege: str, parameter: str,
                              reported: bool) -> None:
    """Parameter privileges (15+) that change the server are caught; before 15 they cannot exist."""
    grant = f"GRANT {privilege} ON PARAMETER {parameter} TO {ROLE}"
    if version < ro.PARAMETER_ACL_FROM:
        with pytest.raises(psycopg2.errors.SyntaxError):
            lab.execute(PROD_DB, grant)
        params = finding(proof(lab, version), "parameter_privileges")
        assert params["ok"] and params["versions"] == ">= 15"
        return
    lab.execute(PROD_DB, grant)
    try:
        result = proof(lab, version)
    finally:
        lab.execute(PROD_DB, f"REVOKE {privilege} ON PARAMETER {parameter} FROM {ROLE}")
    params = finding(result, "parameter_privileges")
    assert params["ok"] is not reported, params
    if reported:
        assert f"{privilege} on parameter {parameter} (as {ROLE})" in params["detail"]
    else:
        assert failed(result) == {}
    assert lab.scalar(PROD_DB, "SELECT count(*) FROM pg_parameter_acl") == 0


def test_unclassified_predefined_role_taken_as_writer() -> None:
    """A predefined role a future major adds is a writer until the tables classify it."""
    closure = [{"name": ROLE, "self": True, **dict.fromkeys(ro.ROLE_ATTRIBUTES, False)},
               {"name": "pg_future_role", "self": False, **dict.fromkeys(ro.ROLE_ATTRIBUTES, False)},
               {"name": "pg_read_all_stats", "self": False, **dict.fromkeys(ro.ROLE_ATTRIBUTES, False)}]
    writers = ro._writer_roles(closure, [], 190000)
    assert writers == ["pg_future_role (a predefined role gate0 has not classified: taken as a writer)"]


def test_public_schema_create_as_on_14(fresh_lab: Lab, version: int) -> None:
    """14 creates schema public with CREATE for PUBLIC (15+ does not): caught on every major."""
    fresh_lab.execute(PROD_DB, "GRANT CREATE ON SCHEMA public TO PUBLIC")
    create = finding(proof(fresh_lab, version), "create_privileges")
    assert not create["ok"] and "schema public" in create["detail"]
