"""Hostile identifiers: quoted or refused, never executed (Hypothesis, and the real lab server).

Properties of module_utils/gate0_pg.py's split_relation/ident:
  - split_relation either refuses with a one-line GateError or returns 1-2 non-empty parts that are
    exactly the input split at its dot;
  - ident refuses exactly what quoting cannot carry faithfully (empty, NUL, > 63 bytes) and otherwise
    yields SQL that the server reads back as that one identifier, byte for byte;
  - a hostile relation name (quotes, semicolons, comment markers, DROP TABLE ...) sent as a table
    reference reaches the server as one name: the only possible errors are "no such relation/schema",
    and a canary table that the injection would drop survives, with its rows.
"""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest
from conftest import PROD_DB, Lab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg2 import sql

from module_utils.gate0_pg import MAX_IDENTIFIER_BYTES, GateError, ident, split_relation

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
def test_split_relation_splits_exactly_or_refuses_in_one_line(name: str) -> None:
    try:
        parts = split_relation(name)
    except GateError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("checking options: ")
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
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(CANARY)))
    conn.close()


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
