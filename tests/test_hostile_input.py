"""Hostile identifiers: quoted or refused, never executed (Hypothesis, and the real lab server).

Properties of gate0.core's gate0_pg.py's split_relation/ident:
  - split_relation either refuses with a one-line GateError or returns 1-2 non-empty parts that are
    exactly the input split at its dot;
  - ident refuses exactly what quoting cannot carry faithfully (empty, NUL, > 63 bytes) and otherwise
    yields SQL that the server reads back as that one identifier, byte for byte;
  - a hostile relation name (quotes, semicolons, comment markers, DROP TABLE ...) sent as a table
    reference reaches the server as one name: the only possible errors are "no such relation/schema",
    and a canary table that the injection would drop survives, with its rows.
"""

from __future__ import annotations

import json
import re

import psycopg2
import psycopg2.errors
import pytest
import yaml
from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import (
    MAX_IDENTIFIER_BYTES,
    GateError,
    ident,
    split_relation,
)
from conftest import CLONE_DB, PROD_DB, REPO, Lab
from faultlib import closed_port
from gaterun import require_gate, run_gate, run_module
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg2 import sql

CANARY = "gate0_canary"
# Fragments an attacker (or a careless copy-paste) puts into a name.
HOSTILE = ['"', "'", ";", "--", "/*", "*/", "$$", "\\", " ", "\n", "\t", ".", "\x00", "é", "ß",
           f"DROP TABLE {CANARY}", f'"; DROP TABLE {CANARY}; --', "public", "governance_scopes",
           "SELECT pg_sleep(5)", "U&\"\\0061\"", "E'\\x41'", ")", "(", ",", "*"]

# Any text PostgreSQL's UTF-8 could hold (no lone surrogates), plus assemblies of hostile fragments.
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
hostile_text = st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=8).map("".join)
names = st.one_of(any_text, hostile_text)


def _fits(part: str) -> bool:
    return bool(part) and "\x00" not in part and len(part.encode()) <= MAX_IDENTIFIER_BYTES


@given(names)
@example(".\x00")  # refused for its shape too: the NUL is named all the same
def test_split_relation_splits_exactly_or_refuses_in_one_line(name: str) -> None:
    try:
        parts = split_relation(name)
    except GateError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("checking options: ")
        assert "\x00" not in name or "NUL character" in message, message
        assert not (1 <= name.count(".") + 1 <= 2 and all(_fits(p) for p in name.split(".")))
        return
    assert 1 <= len(parts) <= 2
    assert ".".join(parts) == name
    assert all(_fits(p) for p in parts)


@pytest.mark.parametrize("bad", [None, 42, ["a"], {"a": 1}])
def test_split_relation_refuses_non_strings(bad: object) -> None:
    with pytest.raises(GateError, match="is not a string"):
        split_relation(bad)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def su(lab: Lab):
    """One superuser connection to production: the role that COULD drop the canary if asked to."""
    conn = lab.connect(PROD_DB)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(CANARY)))
        cur.execute(sql.SQL("CREATE TABLE {} AS SELECT g AS id FROM generate_series(1, 7) AS g")
                    .format(sql.Identifier(CANARY)))
    yield conn
    conn.close()  # (a lab reset by another fixture may have ended it already)
    lab.execute(PROD_DB, sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(CANARY)))


def _canary_rows(conn) -> int:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(CANARY)))
        return cur.fetchone()[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names)
def test_ident_round_trips_through_the_server(su, name: str) -> None:
    """The server reads the quoted name back as exactly the input: one identifier, nothing else."""
    try:
        quoted = ident(name)
    except GateError as exc:
        assert "\n" not in str(exc)
        assert not _fits(name)
        return
    assert _fits(name)
    with su.cursor() as cur:
        cur.execute(sql.SQL("SELECT 1 AS {}").format(quoted))
        assert cur.description[0].name == name
        assert cur.fetchall() == [(1,)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names)
def test_hostile_relation_names_are_names_never_code(su, name: str) -> None:
    """As the superuser (who could drop anything): only 'no such relation/schema' or a real count."""
    try:
        query = sql.SQL("SELECT count(*) FROM {}").format(ident(*split_relation(name)))
    except GateError:
        return
    with su.cursor() as cur:
        try:
            cur.execute(query)
            assert isinstance(cur.fetchone()[0], int)
        except (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName):
            pass
    assert _canary_rows(su) == 7


def test_canary_survives_known_injections(su) -> None:
    for name in [f'x"; DROP TABLE {CANARY}; --', f"{CANARY}; DROP TABLE {CANARY}",
                 f"public.{CANARY}\" CASCADE; --", f"{CANARY} /* */ ; DROP TABLE {CANARY}"]:
        with su.cursor() as cur, pytest.raises(psycopg2.errors.UndefinedTable):
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(ident(*split_relation(name))))
    assert _canary_rows(su) == 7
    # The real name still works: quoting does not break the legitimate case.
    with su.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(ident(*split_relation(f"public.{CANARY}"))))
        assert cur.fetchone() == (7,)


def test_nul_and_overlong_names_are_refused_not_truncated() -> None:
    """libpq would cut 'governance_scopes\\0x' to governance_scopes; the server would cut a 64-byte name."""
    with pytest.raises(GateError, match="NUL"):
        split_relation("governance_scopes\x00; DROP TABLE x")
    with pytest.raises(GateError, match="longer than 63 bytes"):
        split_relation("a" * 64)
    with pytest.raises(GateError, match="longer than 63 bytes"):
        ident("é" * 32)  # 64 bytes in UTF-8
    assert split_relation("s" * 63 + "." + "t" * 63) == ("s" * 63, "t" * 63)


# --- the fingerprint module's targets: relation names, filters, SQL, target names ----------------

@pytest.fixture(scope="module")
def owned_canary(lab: Lab):
    """A canary the production login OWNS: if any hostile text ever ran outside the READ ONLY
    transaction, this role could drop it. Removed (and the lab reset) afterwards."""
    if not (REPO / "library" / "pg_fingerprint.py").is_file():
        pytest.skip("library/pg_fingerprint.py not merged yet")
    lab.execute(PROD_DB, f"DROP TABLE IF EXISTS {CANARY}_owned")
    lab.execute(PROD_DB, f"CREATE TABLE {CANARY}_owned AS SELECT g AS id FROM generate_series(1, 7) AS g")
    lab.execute(PROD_DB, f"ALTER TABLE {CANARY}_owned OWNER TO context_pack_readonly")
    yield f"{CANARY}_owned"
    lab.reset()


def _fp_args(lab: Lab, targets: dict) -> dict:
    return {"login_host": "127.0.0.1", "login_port": lab.port, "login_user": "context_pack_readonly",
            "login_password": lab.password("context_pack_readonly"), "login_db": PROD_DB,
            "allowed_databases": [PROD_DB], "targets": targets, "statement_timeout": 2000,
            "lock_timeout": 500, "connect_timeout": 3}


def _canary_alive(lab: Lab, table: str) -> bool:
    return lab.scalar(PROD_DB, "SELECT count(*) FROM pg_class WHERE relname = %s", (table,)) == 1 and \
        lab.scalar(PROD_DB, f"SELECT count(*) FROM {table}") == 7


def _one_line(result: dict) -> None:
    assert "Traceback" not in json.dumps(result)
    assert "\n" not in result.get("msg", "")


INJECTIONS = [
    "true); COMMIT; DROP TABLE {c}; --",
    "true) ; DROP TABLE {c}",
    "true /* ; */ OR (true",
    "true -- ",
    "true); COMMIT; BEGIN READ WRITE; DROP TABLE {c}; COMMIT; SELECT (1",
    "event_type = 'x' \x00; DROP TABLE {c}",
]


@pytest.mark.parametrize("where", INJECTIONS)
def test_fingerprint_refuses_filters_that_could_be_code(lab: Lab, owned_canary: str, where: str) -> None:
    result = run_module("pg_fingerprint", _fp_args(lab, {
        "gov_emit": {"relation": "event_outbox", "where": where.format(c=owned_canary)}}))
    assert result.get("failed"), result
    assert "checking options" in result["msg"] and "refused" in result["msg"], result["msg"]
    _one_line(result)
    assert _canary_alive(lab, owned_canary)


@pytest.mark.parametrize("text", [
    "SELECT 1; COMMIT; DROP TABLE {c}",
    "SELECT count(*) FROM dot_tools; DROP TABLE {c}",
    "SELECT 1 -- and then",
    "SELECT /* hidden */ 1",
])
def test_fingerprint_refuses_sql_targets_with_more_than_one_statement(lab: Lab, owned_canary: str,
                                                                     text: str) -> None:
    result = run_module("pg_fingerprint", _fp_args(lab, {"x": {"sql": text.format(c=owned_canary)}}))
    assert result.get("failed"), result
    assert "refused" in result["msg"], result["msg"]
    _one_line(result)
    assert _canary_alive(lab, owned_canary)


def test_fingerprint_quotes_legitimate_filters(lab: Lab) -> None:
    """Quotes inside a filter are fine: a single expression, run inside the READ ONLY transaction."""
    result = run_module("pg_fingerprint", _fp_args(lab, {
        "gov_emit": {"relation": "event_outbox", "where": "event_type LIKE 'governance.%'"},
        "quoted": {"relation": "dot_tools", "where": "name <> 'O''Brien \"x\"'"}}))
    assert not result.get("failed"), result.get("msg")
    assert result["counts"] == {"gov_emit": 0, "quoted": 309}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(relation=names, target=names)
def test_fingerprint_hostile_relation_and_target_names(lab: Lab, owned_canary: str, relation: str,
                                                       target: str) -> None:
    """Any relation name is quoted or refused, any target name is a label: one-line failures, the
    canary (owned by the login) survives, and a real relation is counted."""
    result = run_module("pg_fingerprint", _fp_args(lab, {target or "t": {"relation": relation}}))
    _one_line(result)
    if result.get("failed"):
        assert re.search(r"checking options|does not exist|missing|not found|permission denied|"
                         r"not a table|cannot", result["msg"]), result["msg"]
    else:
        assert isinstance(result["counts"][target or "t"], int)
    assert _canary_alive(lab, owned_canary)


# --- malformed vars: refused before any connection ------------------------------------------------

BAD_VARS = [
    ("gate0_statement_timeout", "five seconds"),
    ("gate0_statement_timeout", 0),
    ("gate0_lock_timeout", -1),
    ("gate0_connect_timeout", 0),
    ("gate0_production_login_port", "fivefourthreetwo"),
    ("gate0_production_allowed_databases", []),
    ("gate0_production_allowed_databases", ["directus", "directus_gov_test_20260602"]),
    ("gate0_clone_name_prefix", "dir"),       # would also match the production database `directus`
    ("gate0_clone_name_prefix", ""),
    ("gate0_production_targets", "not a dict"),
    ("gate0_disk_min_free_percent", "lots"),
]


@pytest.mark.parametrize(("var", "value"), BAD_VARS, ids=[f"{v}={x!r}" for v, x in BAD_VARS])
def test_malformed_vars_refused_before_any_connection(lab: Lab, tmp_path, var: str, value: object) -> None:
    """Both channels point at a closed port: a connection attempt would show as 'Connection refused'.
    The run must stop on the variable instead, naming it."""
    require_gate()
    port = closed_port()
    run = run_gate(tmp_path, {"gate0_production_login_port": port, "gate0_clone_login_port": port,
                              var: value})
    assert run.rc != 0
    assert "Traceback" not in run.output
    assert var in run.output, run.output[-3000:]
    assert not re.search(r"[Cc]onnection refused|connecting to", run.output), run.output[-3000:]


def test_unwritable_report_dir_refused_before_any_connection(lab: Lab, tmp_path) -> None:
    require_gate()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    port = closed_port()
    run = run_gate(tmp_path, {"gate0_production_login_port": port, "gate0_clone_login_port": port,
                              "gate0_report_dir": str(blocker / "reports")})
    assert run.rc != 0
    assert "Traceback" not in run.output
    assert "gate0_report_dir" in run.output, run.output[-3000:]
    assert not re.search(r"[Cc]onnection refused|connecting to", run.output), run.output[-3000:]


@pytest.mark.parametrize("name", [
    "directus_gov_testX20260602",      # '_' is a LIKE wildcard: LIKE 'directus_gov_test_%' matches
    "directus%gov_test_20260602",
    "directus_gov_test_",               # the prefix alone
    "directus_gov_test_20260602'; DROP DATABASE directus; --",
    "directus",
])
def test_clone_names_outside_the_literal_prefix_are_refused_before_connecting(lab: Lab, name: str) -> None:
    """The clone module refuses before connecting: the rule is a literal prefix, not a LIKE pattern."""
    result = run_module("clone_isolation", {**_clone_args(lab, {}), "login_db": name,
                                            "login_port": closed_port()})
    assert result.get("failed") and result.get("refused"), result
    assert result["msg"].startswith("refusing the clone channel before connecting"), result["msg"]
    assert "\n" not in result["msg"]
    assert "Connection refused" not in result["msg"]


# --- the clone module's profile: relation, column and marker values ------------------------------

@pytest.fixture(scope="module")
def clone_canary(lab: Lab):
    """A canary in the clone, owned by the clone's admin login (which could drop it)."""
    lab.execute(CLONE_DB, f"DROP TABLE IF EXISTS {CANARY}")
    lab.execute(CLONE_DB, f"CREATE TABLE {CANARY} AS SELECT g AS id FROM generate_series(1, 7) AS g")
    lab.execute(CLONE_DB, f"ALTER TABLE {CANARY} OWNER TO workflow_admin")
    yield CANARY
    lab.execute(CLONE_DB, f"DROP TABLE IF EXISTS {CANARY}")


def _clone_args(lab: Lab, profile: dict) -> dict:
    return {"login_host": "127.0.0.1", "login_port": lab.port, "login_user": "workflow_admin",
            "login_password": lab.password("workflow_admin"), "login_db": CLONE_DB,
            "clone_name_prefix": "directus_gov_test_", "production_databases": [PROD_DB],
            "profile": profile, "statement_timeout": 2000, "lock_timeout": 500, "connect_timeout": 3,
            "outbox_probe": True, "clone_name_prefix_min_length": 8, "clone_name_suffix_regex": "[0-9]{8}"}


def _clone_profile(where: str, value: str) -> dict:
    defaults = yaml.safe_load((REPO / "roles/gate0/defaults/main.yml").read_text())
    profile = defaults["gate0_clone_profile"]
    # The seed profile's outbound mechanisms are the shared Directus list (a template in defaults).
    profile["dispatch"]["outbound"] = defaults["gate0_clone_directus_outbound"]
    section, key = where.split(".")
    profile[section][key] = value
    return profile


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["seed.relation", "seed.marker_column", "seed.marker", "lease.relation",
                              "outbox.relation", "outbox.type_column", "outbox.probe_event_type"]),
       value=names)
@example(where="seed.marker", value="CLONE_TEST_F6_SEED\x00' OR 'x'='x")
@example(where="seed.marker_column", value="created_by\x00; DROP TABLE gate0_canary")
@example(where="outbox.relation", value=f'event_outbox"; DROP TABLE {CANARY}; --')
@example(where="seed.marker", value=f"x'); DROP TABLE {CANARY}; --")
@example(where="seed.relation", value=".\x00")
@example(where="outbox.type_column", value="\x00" + "x" * 70)
def test_clone_profile_values_are_quoted_or_refused(lab: Lab, clone_canary: str, where: str,
                                                    value: str) -> None:
    """Any hostile value in the clone profile: a one-line result, never a traceback, canary intact."""
    if not (REPO / "library" / "clone_isolation.py").is_file():
        pytest.skip("library/clone_isolation.py not merged yet")
    result = run_module("clone_isolation", _clone_args(lab, _clone_profile(where, value)))
    assert "Traceback" not in json.dumps(result)
    assert "\n" not in result.get("msg", "")
    assert all("\n" not in str(e) for e in (result.get("errors") or {}).values())
    if "\x00" in value and not where.endswith(("marker", "probe_event_type")):
        # A NUL would make libpq read another name (cut there): refused, never silently substituted,
        # and the refusal names the NUL whatever else is wrong with the value.
        assert "NUL character" in json.dumps(result), result
    assert lab.scalar(CLONE_DB, "SELECT count(*) FROM pg_class WHERE relname = %s", (clone_canary,)) == 1
    assert lab.scalar(CLONE_DB, f"SELECT count(*) FROM {clone_canary}") == 7
