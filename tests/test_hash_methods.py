"""How pg_fingerprint hashes a relation's rows: by column (each column type's own extended hash
function, when every column's type has one) or by the row's text form - both with the row's version.

On the real lab: which method each kind of table gets (decided on the server's catalogs), that the
module's hash equals one statement's sum with that method's row hash over the same rows, and that a
change to any column, of either kind of table, changes the hash.
"""

from __future__ import annotations

import pytest
import test_prod as prod_tests
from conftest import PROD_DB, Lab

RO = "context_pack_readonly"
TABLE = "gate0_hash_method"
fingerprint = prod_tests.pg_fingerprint.fingerprint

# Column types -> the method PostgreSQL's catalogs allow: `record` only when every column's type has a
# default hash operator class with an extended hash function (varchar and a domain through their base).
COLUMNS = [
    ("id int, body text, at timestamptz, n numeric, ok boolean, u uuid, j jsonb, b bytea, c char(3)",
     "record"),
    ("id int, name varchar(20), d gate0_hash_dom", "record"),
    ("id int, body json", "text"),
    ("id int, tags int[]", "text"),
    ("id int, x xml", "text"),
    ("id int, p point", "text"),
    ("id int, m gate0_hash_mood", "text"),
]


@pytest.fixture
def types_lab(fresh_lab: Lab) -> Lab:
    fresh_lab.execute(PROD_DB, "CREATE DOMAIN gate0_hash_dom AS int CHECK (VALUE > 0); "
                               "CREATE TYPE gate0_hash_mood AS ENUM ('calm', 'busy')")
    return fresh_lab


@pytest.mark.parametrize(("columns", "method"), COLUMNS,
                         ids=[m + ":" + c.split(", ", 1)[1] for c, m in COLUMNS])
def test_the_method_follows_the_column_types(types_lab: Lab, columns: str, method: str) -> None:
    types_lab.execute(PROD_DB, f"CREATE TABLE {TABLE} ({columns})")
    with types_lab.connect(PROD_DB) as conn, conn.cursor() as cur:
        oid = types_lab.scalar(PROD_DB, "SELECT %s::regclass::oid::bigint", (TABLE,))
        assert fingerprint.record_hashable(cur, {"oid": oid}) is (method == "record")


@pytest.mark.parametrize(("columns", "insert", "change"), [
    ("id int PRIMARY KEY, body text, n numeric", "SELECT g, md5(g::text), g / 7.0",
     f"UPDATE {TABLE} SET n = n * 1.0 WHERE id = 4321"),  # the same number, another scale and version
    ("id int PRIMARY KEY, body json", "SELECT g, json_build_object('k', g)",
     f"UPDATE {TABLE} SET body = '{{\"k\": 4321}}' WHERE id = 4321"),  # the same text, a new version
], ids=["record", "text"])
def test_the_module_hash_is_the_method_sum_and_changes_with_a_write(
        fresh_lab: Lab, capsys: pytest.CaptureFixture[str], columns: str, insert: str, change: str) -> None:
    fresh_lab.execute(PROD_DB, f"CREATE TABLE {TABLE} ({columns}); INSERT INTO {TABLE} {insert} FROM "
                               f"generate_series(1, 20000) AS g; ANALYZE {TABLE}; "
                               f"GRANT SELECT ON {TABLE} TO {RO}")
    spec = {"extra": {"relation": TABLE, "hash": True}}

    def module() -> dict:
        result = prod_tests.run_module(prod_tests.module_args(fresh_lab, targets=spec, baseline={},
                                                              hash_chunk_rows=1000), capsys)
        assert not result.get("failed"), result.get("msg")
        return result

    def reference(method: str) -> str:
        n, total = fresh_lab.query(PROD_DB, f"SELECT count(*), COALESCE(sum("
                                            f"{fingerprint.row_hash_sql(method == 'record')}::numeric), 0) "
                                            f"FROM {TABLE} AS t")[0]
        return f"{n}:{int(total) % (1 << 64):016x}"

    first = module()
    method = first["timings"]["hash_methods"]["extra"]
    assert method == ("record" if "json" not in columns else "text")
    assert first["hashes"]["extra"] == reference(method)
    fresh_lab.execute(PROD_DB, change)
    second = module()
    assert second["timings"]["hash_methods"]["extra"] == method
    assert second["hashes"]["extra"] == reference(method)
    assert second["hashes"]["extra"] != first["hashes"]["extra"]
    assert second["digest"] != first["digest"]
