"""pg_fingerprint's work (library/pg_fingerprint.py, and gate0_observe's production part).

A read-only fingerprint of a production PostgreSQL database: one REPEATABLE READ READ ONLY transaction
(the leader: counts, the read-only proof, the clone probe) whose snapshot hash workers import to hash
the targets' rows in parallel, each under the same settings and proofs. `observe(params)`
never raises: a failure is a result with `failed`, a one-line `msg` and `failed_stage`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.gate0.core.plugins.module_utils import gate0_pg as pg
from ansible_collections.gate0.core.plugins.module_utils import gate0_reach, gate0_readonly

GateError = pg.GateError
HAS_PSYCOPG2 = pg.HAS_PSYCOPG2
if HAS_PSYCOPG2:
    import psycopg2
    from psycopg2 import sql

TARGET_KEYS = {"relation", "where", "sql", "rule", "hash", "volatile", "tables"}
TABLE_KINDS = ("r", "p", "m")
HASH_MIN_ROWS = 1000
HASH_MAX_ROWS = 1_000_000
# Each hash statement aims at this share of statement_timeout (the bench reports the longest).
HASH_STATEMENT_SHARE = 0.1
MAX_VIEW_DEPTH = 5
# One row's hash: its text form (formats pinned) and its version - where it lives (ctid) and the
# transaction that wrote it (xmin) - hashed to 64 bits with hashtextextended (stable across platforms
# and versions: hash partitioning relies on it). Every UPDATE, and a DELETE + INSERT, gives a row a new
# version even when its content is the same, so the hash changes with any write to a row whether or
# not the writer's statistics were flushed. What rewrites row versions without a write (VACUUM FULL,
# CLUSTER, a table rewrite by ALTER TABLE) changes it too; so does the relfilenode compared beside it.
ROW_HASH_SQL = "hashtextextended(t::text || ' ' || t.ctid::text || ' ' || t.xmin::text, 0)"
# The same row, version and all, hashed column by column with each column type's own extended hash
# function (hash_record_extended, PostgreSQL 14+: the functions hash partitioning relies on), without
# writing the row out as text: about twice as fast. Used for a relation only when every column's type
# has a default hash operator class with an extended hash function (RECORD_HASHABLE_SQL); otherwise, and
# for a type PostgreSQL would only find through an array, a range, an enum or a nested domain, the text
# form above. Both include ctid and xmin, so both change with any write to a row; here as themselves
# (tid and xid have had extended hash functions since before PostgreSQL 14): their text forms cost a
# third of the statement on the lab's largest table.
ROW_HASH_RECORD_SQL = "hash_record_extended(ROW(t.*, t.ctid, t.xmin), 0)"
# Whether every column of each relation (%(oids)s) has such a type: exactly, through a domain over it,
# or through an implicit binary-coercible cast (varchar -> text), as PostgreSQL finds a default opclass.
# One row per relation, in one statement for all of them.
RECORD_HASHABLE_SQL = (
    "SELECT r.oid::bigint, COALESCE((SELECT bool_and(EXISTS ("
    "SELECT 1 FROM pg_catalog.pg_opclass AS oc "
    "JOIN pg_catalog.pg_am AS am ON am.oid = oc.opcmethod AND am.amname = 'hash' "
    "JOIN pg_catalog.pg_amproc AS p ON p.amprocfamily = oc.opcfamily AND p.amprocnum = 2 "
    "AND p.amproclefttype = oc.opcintype AND p.amprocrighttype = oc.opcintype "
    "WHERE oc.opcdefault AND (oc.opcintype = b.oid OR EXISTS ("
    "SELECT 1 FROM pg_catalog.pg_cast AS k WHERE k.castsource = b.oid AND k.casttarget = oc.opcintype "
    "AND k.castmethod = 'b' AND k.castcontext = 'i')))) "
    "FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS ty ON ty.oid = a.atttypid "
    "JOIN pg_catalog.pg_type AS b ON b.oid = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END "
    "WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped), false) "
    "FROM unnest(%(oids)s::oid[]) AS r(oid)"
)
# Each relation's blocks to cover and rows per block (hash_plans), in one statement for all of them.
HASH_BLOCKS_SQL = (
    "SELECT r.oid::bigint, s.blocks, s.per_block FROM unnest(%(oids)s::oid[]) AS r(oid) "
    "CROSS JOIN LATERAL (SELECT max(pg_relation_size(l.relid)) / current_setting('block_size')::bigint "
    "AS blocks, sum(c.reltuples) FILTER (WHERE c.reltuples > 0) "
    "/ NULLIF(sum(c.relpages) FILTER (WHERE c.reltuples > 0), 0) AS per_block "
    "FROM (SELECT r.oid AS relid UNION SELECT p.relid FROM pg_partition_tree(r.oid) AS p WHERE p.isleaf) "
    "AS l JOIN pg_catalog.pg_class AS c ON c.oid = l.relid) AS s"
)
# One hash statement: the rows in a range of blocks (ctid, from a lower bound, below an upper one
# unless it is the last range), their row hashes summed: order-independent. Returns the rows and the sum.
HASH_CHUNK_SQL = (
    "SELECT count(*), COALESCE(sum({row_hash}::numeric), 0)::text "
    "FROM {rel} AS t WHERE t.ctid >= %s::tid{upper}{where}"
)


def row_hash_sql(record: bool) -> str:
    """The row hash a relation is hashed with: by column (`record`) or by its text form."""
    return ROW_HASH_RECORD_SQL if record else ROW_HASH_SQL


class Stage(GateError):
    """A GateError that knows which stage failed."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


class Timer:
    """Statement bookkeeping: how many, and the longest one."""

    def __init__(self) -> None:
        self.statements = 0
        self.longest_ms = 0
        self.longest = ""
        self.lock = threading.Lock()  # the leader and its hash workers share one

    def run(self, cur: Any, what: str, query: Any, params: Any = None) -> list[tuple]:
        """Run one statement; it is counted and timed even when it fails (a statement timeout is
        the longest statement of its run)."""
        start = time.monotonic()
        try:
            cur.execute(query, params)
            return cur.fetchall()
        finally:
            ms = pg.elapsed_ms(start)
            with self.lock:
                self.statements += 1
                if ms >= self.longest_ms:
                    self.longest_ms, self.longest = ms, what


def check_options(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Allowlist before connecting, timeouts, and the targets' shape. Returns the targets."""
    problems = pg.allowlist_problems(params["allowed_databases"] or [], params["login_db"],
                                     params.get("clone_database"))
    if problems:
        raise Stage("allowlist", f"allowlist: {'; '.join(problems)}; refusing to connect")
    try:
        pg.check_timeouts(params)
    except GateError as exc:
        raise Stage("options", str(exc)) from None
    workers = params.get("hash_workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= HASH_WORKERS_MAX:
        raise Stage("options", f"checking options: hash_workers must be a number in 1..{HASH_WORKERS_MAX}, "
                    f"got {workers!r}")
    targets = params["targets"] or {}
    if not targets:
        raise Stage("options", "checking options: targets is empty")
    for name, spec in targets.items():
        if not isinstance(spec, dict):
            raise Stage("options", f"checking options: target {name!r} must be a dict, got {spec!r}")
        unknown = set(spec) - TARGET_KEYS
        if unknown:
            raise Stage("options", f"checking options: target {name!r} has unknown keys {sorted(unknown)}")
        if [bool(spec.get(k)) for k in ("relation", "sql", "rule")].count(True) != 1:
            raise Stage("options",
                        f"checking options: target {name!r} needs exactly one of relation, sql or rule")
        if not spec.get("relation") and (spec.get("where") or spec.get("hash")):
            raise Stage("options", f"checking options: target {name!r}: where/hash need a relation")
        if spec.get("rule") and (spec["rule"] not in RULE_TARGETS or spec.get("tables")):
            raise Stage("options", f"checking options: target {name!r}: rule must be one of "
                        f"{list(RULE_TARGETS)}, without tables; got {spec['rule']!r}")
        try:
            if spec.get("relation"):
                pg.split_relation(spec["relation"])
            # where/sql are SQL text from vars: one statement, no comments (never a second statement
            # after a COMMIT, outside the READ ONLY transaction).
            for key in ("where", "sql"):
                if spec.get(key) is not None:
                    pg.check_sql_text(f"target {name!r} {key}", spec[key])
            for rel in spec.get("tables") or []:
                pg.split_relation(rel)
        except GateError as exc:
            raise Stage("options", f"{exc} (target {name!r})") from None
    return targets


def _printable(text: str) -> str:
    """A name as is, or quoted with escapes when it holds a newline or other control character."""
    return text if text.isprintable() else repr(text)


def resolve_relations(cur: Any, targets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Target name -> {oid, name, kind, tables} for relation targets, in one statement; every missing
    one named at once."""
    wanted = [(name, spec, rel) for name, spec in targets.items()
              for rel in ([spec["relation"]] if spec.get("relation") else list(spec.get("tables") or []))]
    cur.execute(
        "SELECT c.oid::bigint, c.oid::regclass::text, c.relkind, n.nspname, c.relname "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS w(name, i) "
        "LEFT JOIN pg_class AS c ON c.oid = to_regclass(w.name) "
        "LEFT JOIN pg_namespace AS n ON n.oid = c.relnamespace ORDER BY w.i",
        ([sql.Identifier(*pg.split_relation(rel)).as_string(cur) for _, _, rel in wanted],),
    )
    out: dict[str, dict[str, Any]] = {}
    missing = []
    for (name, spec, rel), row in zip(wanted, cur.fetchall(), strict=True):
        if row[0] is None:
            missing.append(f"{_printable(name)} ({_printable(rel)})")
            continue
        entry = {"oid": row[0], "name": row[1], "kind": row[2], "ident": [row[3], row[4]]}
        if spec.get("relation"):
            out[name] = entry
        else:
            out.setdefault(name, {"tables": []})["tables"].append(entry)
    if missing:
        raise Stage("targets", f"resolving targets: relation does not exist: {', '.join(missing)}")
    return out


def base_tables(cur: Any, oid: int) -> list[tuple[int, str]]:
    """The tables a view reads from (through nested views, bounded depth)."""
    seen: dict[int, str] = {}
    frontier = [oid]
    for _ in range(MAX_VIEW_DEPTH):
        if not frontier:
            break
        cur.execute(
            "SELECT DISTINCT d.refobjid::bigint, d.refobjid::regclass::text, c.relkind FROM pg_rewrite AS rw "
            "JOIN pg_depend AS d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid "
            "AND d.refclassid = 'pg_class'::regclass JOIN pg_class AS c ON c.oid = d.refobjid "
            "WHERE rw.ev_class = ANY(%s::oid[]) AND d.refobjid <> rw.ev_class",
            (frontier,),
        )
        frontier = []
        for roid, rname, kind in cur.fetchall():
            if kind in TABLE_KINDS:
                seen[roid] = rname
            elif kind == "v" and roid not in seen:
                frontier.append(roid)
    return sorted(seen.items(), key=lambda kv: kv[1])


def _rel_sql(rel: dict[str, Any]) -> Any:
    """The resolved relation, schema-qualified and quoted (the name was resolved once, by oid)."""
    return sql.Identifier(*rel["ident"])


def count_target(cur: Any, timer: Timer, name: str, spec: dict[str, Any], rel: dict[str, Any] | None) -> int:
    if rel is None:
        rows = timer.run(cur, f"count {name}", spec["sql"])
        if len(rows) != 1 or len(rows[0]) != 1:
            raise GateError(f"counting target {name!r}: its sql must return one row with one number")
        try:
            return int(rows[0][0])
        except (TypeError, ValueError):
            raise GateError(
                f"counting target {name!r}: its sql returned {rows[0][0]!r}, not a number"
            ) from None
    query = sql.SQL("SELECT count(*) FROM {} AS t").format(_rel_sql(rel))
    if spec.get("where"):
        query = sql.SQL("{} WHERE ({})").format(query, sql.SQL(spec["where"]))
    return int(timer.run(cur, f"count {name}", query)[0][0])


def hash_plans(cur: Any, oids: list[int]) -> dict[int, tuple[int, float | None, bool]]:
    """Each relation's blocks to cover, the rows a block holds by the planner's statistics (None: not
    known yet) and whether it is hashed by column (RECORD_HASHABLE_SQL), in two statements for all.

    The blocks: the relation's size now (a partitioned table: its largest leaf partition's). Read
    inside the snapshot: any row visible to it lies in a block that existed when the snapshot was
    taken, and the last range is open-ended anyway, so rows in blocks added since are still counted.
    The rows per block size the ranges by what a statement reads, whatever a `where` keeps of them.
    """
    if not oids:
        return {}
    cur.execute(RECORD_HASHABLE_SQL, {"oids": oids})
    record = {int(oid): bool(ok) for oid, ok in cur.fetchall()}
    cur.execute(HASH_BLOCKS_SQL, {"oids": oids})
    return {int(oid): (int(blocks or 0), float(per_block) if per_block else None, record[int(oid)])
            for oid, blocks, per_block in cur.fetchall()}


def target_relations(cur: Any, targets: dict[str, dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    """Resolve every target and the tables it depends on (a view's base tables); fills
    `target_tables`, `volatile` and `_table_oids` in `result`. Returns the resolved relations."""
    rels = resolve_relations(cur, targets)
    target_tables: dict[str, list[str]] = {}
    table_oids: dict[str, int] = {}
    for name, spec in targets.items():
        rel = rels.get(name) if spec.get("relation") else None
        if rel is None:
            tables = [(t["oid"], t["name"]) for t in rels.get(name, {}).get("tables", [])]
        elif rel["kind"] in TABLE_KINDS:
            tables = [(rel["oid"], rel["name"])]
        else:
            tables = base_tables(cur, rel["oid"])
        target_tables[name] = [t[1] for t in tables]
        table_oids.update({t[1]: t[0] for t in tables})
    result.update(target_tables=target_tables,
                  volatile=sorted(n for n, s in targets.items() if s.get("volatile")))
    result["_table_oids"] = table_oids
    return rels


def fingerprint_targets(
    cur: Any, timer: Timer, targets: dict[str, dict[str, Any]], params: dict[str, Any],
    result: dict[str, Any], rels: dict[str, Any], crew: HashCrew | None,
) -> None:
    """Count every target, then hash the hashed ones (hash_targets: the leader and its crew)."""
    counts: dict[str, int] = {}
    hashed: list[str] = []
    for name, spec in targets.items():
        rel = rels.get(name) if spec.get("relation") else None
        what = f"target {name!r}" + (f" ({rel['name']})" if rel else "")
        try:
            if spec.get("rule"):
                counts[name] = rule_count(name, spec["rule"], result)
            else:
                counts[name] = count_target(cur, timer, name, spec, rel)
            if spec.get("hash"):
                check_hashable(name, rel)
                hashed.append(name)
        except psycopg2.Error as exc:
            raise Stage("targets", f"fingerprinting {what}: {pg.one_line(exc)}") from None
        except GateError as exc:
            raise Stage("targets", str(exc)) from None
    try:
        plans = hash_plans(cur, sorted({rels[name]["oid"] for name in hashed}))
    except psycopg2.Error as exc:
        raise Stage("targets", f"planning the hash of {', '.join(map(repr, hashed))}: "
                               f"{pg.one_line(exc)}") from None
    jobs = [HashJob(name, targets[name], rels[name], plans[rels[name]["oid"]], params, counts[name])
            for name in hashed]
    hashes = hash_targets(cur, timer, jobs, crew, result)
    result.update(counts=counts, hashes=hashes)


# --- the content hash: block ranges over one snapshot, in parallel ---------------------------------------
# A hashed target's rows are summed in ranges of blocks (`ctid` ranges: a TID range scan, as fast as a
# sequential scan, from PostgreSQL 14), the last range open-ended. Every row visible to the snapshot
# has exactly one `ctid`, so the ranges count each row once; the rows hashed must equal the rows
# counted in the same snapshot. The sum does not depend on the order of the ranges or on who hashed
# them, so the digest is the same for any number of connections.
#
# The ranges are handed out one at a time (HashPool) to the leader - the transaction that counts the
# rows - and to up to hash_workers - 1 more connections, the hash workers (HashCrew). A worker opens
# its own REPEATABLE READ READ ONLY transaction as the same role on the same server and database,
# imports the leader's snapshot before any query (pg_export_snapshot() / SET TRANSACTION SNAPSHOT, as
# pg_dump -j and pgcopydb do: it sees exactly the rows the leader counts), sets and reads back the same
# timeouts and pinned formats, makes the same read-only proof, and before its ROLLBACK proves it wrote
# nothing. The crew starts after the leader listed the idle sessions (it never counts its workers) and
# while the leader resolves and counts the targets, so the workers are ready when the hashing starts.
HASH_WORKERS_MAX = 8
# One more connection and one more core of production at most, by default: hashing takes about half
# the time on a server with a core to spare, and gate0 takes no more of production unless asked.
HASH_WORKERS_DEFAULT = 2
# A worker costs a connection, a transaction and its read-only proof (about 0.05 s of a core on the
# lab) and saves about half of what is left to hash when it is ready: one connection is used per this
# many rows to hash (the planner's estimate), up to hash_workers. On the lab's 2 cores, with the row
# hash by column, a worker for the seed's 200,000 rows took the fingerprint from 363 to 287 ms and the
# whole playbook from 2.63 to 2.27 s (6 interleaved runs each, README's Performance); for 2,000,000
# rows, 1.4-1.7 x the rows/s.
HASH_ROWS_PER_WORKER = 100_000
# A worker refused a connection (the role's or the database's connection limit, max_connections):
# what the operator can do about it, said with the cause.
REFUSED_HINT = (" (each hash worker is one more connection of the production role; "
                "gate0_production_hash_workers: 1 hashes on the fingerprint's own connection)")
# With workers, each target is cut into at least this many ranges per connection, so that the work
# spreads over them (a range still holds HASH_MIN_ROWS rows at least).
RANGES_PER_CONNECTION = 3
# While it waits for its workers the leader runs a trivial statement this often, so that its session
# (whose snapshot the workers import) never idles towards idle_in_transaction_session_timeout.
LEADER_KEEPALIVE_S = 0.5


class HashJob:
    """One hashed target's block ranges, handed out one at a time and sized to the statement budget.

    Each statement aims at HASH_STATEMENT_SHARE of statement_timeout: the next range is halved after a
    statement over it and doubled after one under a quarter of it.
    """

    def __init__(self, name: str, spec: dict[str, Any], rel: dict[str, Any],
                 plan: tuple[int, float | None, bool], params: dict[str, Any], expected_rows: int) -> None:
        self.name, self.rel, self.expected_rows = name, rel, expected_rows
        self.nblocks, per_block, record = plan
        self.method = "record" if record else "text"
        # This statement has parameters: a literal % in the condition must reach the server as %.
        cond = (spec.get("where") or "").replace("%", "%%")
        where = sql.SQL(" AND ({})").format(sql.SQL(cond)) if cond else sql.SQL("")
        upper = sql.SQL(" AND t.ctid < %s::tid")
        row_hash = sql.SQL(row_hash_sql(record))
        self.ranged = sql.SQL(HASH_CHUNK_SQL).format(row_hash=row_hash, rel=_rel_sql(rel), upper=upper,
                                                     where=where)
        self.last = sql.SQL(HASH_CHUNK_SQL).format(row_hash=row_hash, rel=_rel_sql(rel), upper=sql.SQL(""),
                                                   where=where)
        self.budget_ms = max(1, int(params["statement_timeout"] * HASH_STATEMENT_SHARE))
        self.rows_per_block = max(1.0, per_block or (expected_rows / self.nblocks if self.nblocks else 1.0))
        # The rows a scan of every range reads (a `where` may keep fewer).
        self.work_rows = max(expected_rows, int(self.rows_per_block * self.nblocks))
        self.max_chunk = HASH_MAX_ROWS
        self.chunk = max(HASH_MIN_ROWS, min(HASH_MAX_ROWS, int(params["hash_chunk_rows"])))
        self.block = 0
        self.handed_all = False
        self.rows = 0
        self.total = 0

    @property
    def what(self) -> str:
        return f"target {self.name!r} ({self.rel['name']})"

    def share(self, connections: int) -> None:
        """Cut the ranges so that `connections` connections each get several."""
        if connections > 1:
            self.max_chunk = max(HASH_MIN_ROWS, self.work_rows // (connections * RANGES_PER_CONNECTION))
            self.chunk = min(self.chunk, self.max_chunk)

    def next_range(self) -> tuple[Any, tuple[str, ...]] | None:
        """The next range's statement and bounds; None once the open-ended last one was handed out.
        Each call moves on by at least one block: at most nblocks + 1 ranges."""
        if self.handed_all:
            return None
        span = max(1, int(self.chunk / self.rows_per_block))
        lower = f"({self.block},0)"
        if self.block + span >= self.nblocks:
            self.handed_all = True
            return self.last, (lower,)
        self.block += span
        return self.ranged, (lower, f"({self.block},0)")

    def record(self, rows: Any, part: Any, ms: int) -> None:
        """Add one range's rows and hash sum; size the next range by this one's time."""
        self.rows += int(rows)
        self.total = (self.total + int(part)) % (1 << 64)
        if ms > self.budget_ms and self.chunk > HASH_MIN_ROWS:
            self.chunk = max(HASH_MIN_ROWS, self.chunk // 2)
        elif ms < self.budget_ms / 4:
            self.chunk = min(self.max_chunk, self.chunk * 2)

    def result(self) -> str:
        """'<rows>:<sum of row hashes mod 2^64>'; raises GateError unless every counted row was hashed."""
        if self.rows != self.expected_rows:
            raise GateError(f"hashing {self.what}: hashed {self.rows} rows, counted {self.expected_rows} in "
                            "the same snapshot")
        return f"{self.rows}:{self.total:016x}"


class HashPool:
    """Every hashed target's ranges, handed out under one lock to the leader and the workers.

    The leader publishes the jobs once it counted the targets (workers wait for them); the first
    failure stops the handing out and keeps its job (None: a worker failed outside a range) and cause.
    """

    def __init__(self) -> None:
        self.jobs: list[HashJob] | None = None
        self.cond = threading.Condition()
        self.in_flight = 0
        self.failure: tuple[HashJob | None, str] | None = None
        self.conns: list[Any] = []

    def publish(self, jobs: list[HashJob]) -> None:
        """The jobs, largest first (the small ones then fill the connections' last gaps)."""
        with self.cond:
            if self.jobs is None:
                self.jobs = sorted(jobs, key=lambda job: -job.work_rows)
            self.cond.notify_all()

    def take(self, wait_s: float = 0.0) -> tuple[HashJob, Any, tuple[str, ...]] | None:
        """The next range, or None when none is left, the pool failed, or no jobs came within wait_s."""
        with self.cond:
            self.cond.wait_for(lambda: self.jobs is not None or self.failure is not None, timeout=wait_s)
            if self.failure is not None or self.jobs is None:
                return None
            for job in self.jobs:
                taken = job.next_range()
                if taken is not None:
                    self.in_flight += 1
                    return job, taken[0], taken[1]
            return None

    def handed_all(self) -> bool:
        """Nothing left to hand out: a worker still starting has nothing to do."""
        with self.cond:
            if self.failure is not None:
                return True
            return self.jobs is not None and all(job.handed_all for job in self.jobs)

    def done(self, job: HashJob, rows: Any, part: Any, ms: int) -> None:
        with self.cond:
            job.record(rows, part, ms)
            self.in_flight -= 1
            self.cond.notify_all()

    def fail(self, job: HashJob | None, why: str, took: bool = False) -> None:
        with self.cond:
            if took:
                self.in_flight -= 1
            if self.failure is None:
                self.failure = (job, why)
            self.cond.notify_all()

    def failed_what(self) -> str:
        """What the failure message names: the failed range's target, else the targets not yet hashed."""
        job = self.failure[0] if self.failure else None
        if job is not None:
            return job.what
        jobs = self.jobs or []
        unfinished = [j for j in jobs if not j.handed_all or j.rows != j.expected_rows] or jobs
        if not unfinished:
            return "the targets"
        more = f" and {len(unfinished) - 1} more hashed target(s)" if len(unfinished) > 1 else ""
        return unfinished[0].what + more


def hash_ranges(cur: Any, timer: Timer, pool: HashPool, who: str, wait_s: float = 0.0) -> int:
    """Hash ranges from the pool until none is left or one failed (a failure stops the pool).
    Returns how many ranges this connection hashed."""
    ranges = 0
    while True:  # bounded: each take() hands out another of a bounded set of ranges
        taken = pool.take(wait_s)
        if taken is None:
            return ranges
        job, query, bounds = taken
        start = time.monotonic()
        try:
            n, part = timer.run(cur, f"hash {job.name}", query, bounds)[0]
        except psycopg2.Error as exc:
            pool.fail(job, f"{who}{pg.one_line(exc)}", took=True)
            return ranges
        pool.done(job, n, part, pg.elapsed_ms(start))
        ranges += 1


def check_hashable(name: str, rel: dict[str, Any] | None) -> None:
    """Only a table (of any kind TABLE_KINDS names) can be hashed."""
    if rel is None or rel.get("kind") not in TABLE_KINDS:
        what = f" ({rel['name']})" if rel else ""
        raise GateError(f"hashing target {name!r}{what}: only a table, a partitioned table or a "
                        "materialized view can be hashed (hash: false counts a view)")


def record_hashable(cur: Any, rel: dict[str, Any]) -> bool:
    """Whether every column of the relation can be hashed by its type's own function (ROW_HASH_RECORD_SQL)."""
    return hash_plans(cur, [rel["oid"]])[int(rel["oid"])][2]


def rows_to_hash(cur: Any, targets: dict[str, dict[str, Any]]) -> int:
    """The planner's estimate of the rows the hashed targets hold (leaf partitions included; a table
    never analyzed counted at 100 bytes a row). Sizes the crew only: a missing relation counts 0 here
    and is named when the targets are resolved."""
    names = [sql.Identifier(*pg.split_relation(s["relation"])).as_string(cur)
             for s in targets.values() if s.get("hash") and s.get("relation")]
    cur.execute(
        "WITH r AS (SELECT to_regclass(n) AS oid FROM unnest(%s::text[]) AS n), "
        "l AS (SELECT oid AS relid FROM r WHERE oid IS NOT NULL UNION "
        "SELECT p.relid FROM r, LATERAL pg_partition_tree(r.oid) AS p WHERE p.isleaf) "
        "SELECT COALESCE(sum(CASE WHEN c.reltuples >= 0 THEN c.reltuples "
        "ELSE pg_relation_size(c.oid) / 100 END), 0)::bigint FROM l JOIN pg_class AS c ON c.oid = l.relid",
        (names,),
    )
    return int(cur.fetchone()[0])


class HashCrew:
    """The leader's hash workers: started before the targets are counted, finished once."""

    def __init__(self, count: int, leader: dict[str, Any], params: dict[str, Any], timer: Timer,
                 wait_s: float) -> None:
        self.count, self.leader, self.params, self.timer, self.wait_s = count, leader, params, timer, wait_s
        self.pool = HashPool()
        self.reports: list[dict[str, Any]] = [{"worker": i} for i in range(2, count + 1)]
        self.threads = [threading.Thread(target=self.work, args=(r,), name=f"gate0-hash-{r['worker']}",
                                         daemon=True) for r in self.reports]
        self.finished = False
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def work(self, report: dict[str, Any]) -> None:
        """One hash worker's whole life (a thread): connect, import the snapshot, prove, hash, prove it
        wrote nothing, roll back, close. Never raises: a failure stops the pool with a one-line cause."""
        who = f"hash worker {report['worker']} of {self.count}: "
        leader, pool = self.leader, self.pool
        conn = None
        try:
            conn = pg.connect(leader["params"])
            with pool.cond:
                pool.conns.append(conn)
            if pool.handed_all():
                return
            settings = pg.begin(conn, leader["params"], read_only=True, isolation="REPEATABLE READ",
                                snapshot=leader["snapshot"])
            report["settings_ok"] = settings["transaction_read_only"] == "on"
            cur = conn.cursor()
            same_session(cur, leader)
            proof = gate0_readonly.read_only_proof(cur, int(leader["identity"]["version_num"]))
            report["read_only_proof_ok"] = proof["ok"]
            if (proof["ok"], proof["role"]) != tuple(leader["proof"]):
                raise GateError(f"its read-only proof ({proof['ok']}, role {proof['role']!r}) differs from "
                                f"the leader's {tuple(leader['proof'])}")
            report["ready_ms"] = pg.elapsed_ms(self.started)
            report["ranges"] = hash_ranges(cur, self.timer, pool, who, self.wait_s)
            report["xid_assigned"] = pg.xid_assigned(cur)
            if report["xid_assigned"] is not None:
                raise GateError("proving its transaction wrote nothing: pg_current_xact_id_if_assigned() = "
                                f"{report['xid_assigned']!r}")
        except GateError as exc:
            pool.fail(None, f"{who}{exc}{REFUSED_HINT if 'too many connections' in str(exc) else ''}")
        except psycopg2.Error as exc:
            pool.fail(None, f"{who}{pg.one_line(exc)}")
        except Exception as exc:  # a thread must not die with a traceback: one line, the pool stops
            pool.fail(None, f"{who}unexpected {type(exc).__name__}: {pg.one_line(exc)}")
        finally:
            if conn is not None:
                try:
                    pg.rollback(conn)
                    report["rolled_back"] = True
                except GateError:
                    report["rolled_back"] = False
                with contextlib.suppress(Exception):
                    conn.close()
            with pool.cond:
                pool.cond.notify_all()

    def finish(self, cur: Any) -> None:
        """Join every worker (once), keeping the leader's session busy meanwhile. Bounded by what a
        worker's life may take (a connection, its proof, a range): past it the workers' statements are
        cancelled and the pool fails. Never raises."""
        if self.finished:
            return
        self.finished = True
        self.pool.publish([])  # the leader stopped before publishing its jobs: nothing to hash
        limit_s = self.params["connect_timeout"] + self.wait_s + 3 * self.params["statement_timeout"] / 1000
        deadline = time.monotonic() + limit_s
        leader_ok = True
        while any(t.is_alive() for t in self.threads):
            if time.monotonic() > deadline:
                self.pool.fail(None, f"hash workers still running after {limit_s:.0f} s: cancelled")
                with self.pool.cond:
                    for conn in self.pool.conns:
                        with contextlib.suppress(Exception):
                            conn.cancel()
                for thread in self.threads:
                    thread.join(timeout=2)
                return
            with self.pool.cond:
                self.pool.cond.wait(LEADER_KEEPALIVE_S)
            if leader_ok and any(t.is_alive() for t in self.threads):
                try:
                    cur.execute("SELECT 1")
                except psycopg2.Error:
                    leader_ok = False  # the leader's own failure is reported by its caller


def start_crew(cur: Any, params: dict[str, Any], targets: dict[str, dict[str, Any]], result: dict[str, Any],
               timer: Timer) -> HashCrew | None:
    """Export the leader's snapshot and start its hash workers: one per HASH_ROWS_PER_WORKER rows to
    hash, up to hash_workers - 1. None when no worker is needed (the leader hashes alone). Runs outside
    any savepoint (a subtransaction cannot export its snapshot), after the idle sessions were listed."""
    workers = int(params.get("hash_workers") or 1)
    if workers <= 1 or not any(s.get("hash") for s in targets.values()):
        return None
    count = min(workers, math.ceil(rows_to_hash(cur, targets) / HASH_ROWS_PER_WORKER))
    if count <= 1:
        return None
    cur.execute("SELECT pg_export_snapshot(), current_user::text, session_user::text")
    snapshot, current_user, session_user = cur.fetchone()
    proof = result.get("read_only_proof") or {}
    worker_params = dict(params)
    if params.get("login_container") and not params.get("login_unix_socket"):
        # The container's address, found once for every worker.
        worker_params.update(login_host=pg.login_host(params), login_container="")
    leader = {"snapshot": snapshot, "users": (current_user, session_user), "identity": result["identity"],
              "proof": (proof.get("ok"), proof.get("role")), "params": worker_params}
    # A worker waits for the leader's jobs at most as long as counting every target may take.
    wait_s = (len(targets) + 1) * params["statement_timeout"] / 1000
    return HashCrew(count, leader, params, timer, wait_s)


def same_session(cur: Any, leader: dict[str, Any]) -> None:
    """The worker is the leader's role on the leader's server and database; raises GateError if not."""
    cur.execute("SELECT current_user::text, session_user::text")
    users = tuple(cur.fetchone())
    identity = pg.server_identity(cur)
    if users != tuple(leader["users"]) or identity != leader["identity"]:
        def where(ident: dict[str, Any], user: str) -> str:
            return f"{ident.get('database')!r} on {ident.get('address')}:{ident.get('port')} as {user!r}"
        raise GateError(f"reached {where(identity, users[0])}, not the leader's "
                        f"{where(leader['identity'], leader['users'][0])}")


def hash_targets(cur: Any, timer: Timer, jobs: list[HashJob], crew: HashCrew | None,
                 result: dict[str, Any]) -> dict[str, str]:
    """Every job's hash, by the leader and its crew; raises Stage naming the target and the cause."""
    pool = crew.pool if crew is not None else HashPool()
    connections = crew.count if crew is not None else 1
    for job in jobs:
        job.share(connections)
    start = time.monotonic()
    pool.publish(jobs)
    try:
        ranges = hash_ranges(cur, timer, pool, "")
    finally:
        if crew is not None:
            crew.finish(cur)
        result.setdefault("timings", {}).update(hash_ms=pg.elapsed_ms(start), hash_connections=connections,
                                                hash_rows=sum(job.work_rows for job in jobs))
    result["timings"]["hash_leader_ranges"] = ranges
    result["timings"]["hash_methods"] = {job.name: job.method for job in jobs}
    if pool.failure is not None:
        raise Stage("targets", f"fingerprinting {pool.failed_what()}: {pool.failure[1]}")
    try:
        return {job.name: job.result() for job in jobs}
    except GateError as exc:
        raise Stage("targets", str(exc)) from None


# --- writers during the fingerprint -----------------------------------------------------------------
# A target being written while it is fingerprinted: the snapshot's counts and hashes are already stale
# when reported. Seen two ways, at the start (before the first count) and at the end (after the
# counters): another backend holding or waiting for a lock that writes (RowExclusiveLock, taken by
# INSERT/UPDATE/DELETE/MERGE/COPY FROM, or stronger) on a target table or one of its partitions, and
# the write counters moving between the start and the end. Locks taken by VACUUM/ANALYZE
# (ShareUpdateExclusiveLock) and by readers are not writes. gate0_prod_checks.py judges prod.targets_quiet.
WRITE_LOCKS = ("RowExclusiveLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


def write_locks(cur: Any, table_oids: dict[str, int]) -> list[dict[str, Any]]:
    """Other backends' write locks (held or awaited) on these tables or their partitions, now."""
    cur.execute(
        # pg_partition_tree() lists a partitioned table and its partitions; nothing for a plain table.
        "WITH o AS (SELECT unnest(%s::oid[]) AS root), t AS (SELECT root, root AS relid FROM o "
        "UNION SELECT o.root, p.relid FROM o, LATERAL pg_partition_tree(o.root) AS p) "
        "SELECT t.root::regclass::text, l.pid, l.mode, l.granted, a.usename::text, a.application_name, "
        "a.state "
        "FROM pg_locks AS l JOIN t ON l.relation = t.relid "
        "LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid() AND l.mode = ANY(%s) "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY 1, 2",
        (list(table_oids.values()), list(WRITE_LOCKS)),
    )
    keys = ("table", "pid", "mode", "granted", "user", "application_name", "state")
    return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


def quiet_tables(result: dict[str, Any], targets: dict[str, dict[str, Any]]) -> dict[str, int]:
    """The tables of the non-volatile targets (a table shared with a volatile target included)."""
    names = {t for n, tables in result["target_tables"].items() if not targets[n].get("volatile")
             for t in tables}
    return {t: oid for t, oid in result["_table_oids"].items() if t in names}


def writers_seen(cur: Any, table_oids: dict[str, int], when: str, result: dict[str, Any]) -> None:
    """Record the write locks and the write counters at `when` ('start' or 'end') of the fingerprint."""
    quiet = result.setdefault("writers", {"tables": sorted(table_oids)})
    counters, _ = read_counters(cur, table_oids)
    quiet[when] = {"locks": write_locks(cur, table_oids), "counters": counters}


def read_counters(cur: Any, table_oids: dict[str, int]) -> tuple[dict[str, dict[str, int]], str | None]:
    """Write counters and file nodes, fresh from the statistics system (not the transaction snapshot)."""
    cur.execute("SELECT pg_stat_clear_snapshot()")
    cur.execute(
        "SELECT c.oid::regclass::text, pg_relation_filenode(c.oid)::bigint, COALESCE(s.n_tup_ins, 0), "
        "COALESCE(s.n_tup_upd, 0), COALESCE(s.n_tup_del, 0) FROM pg_class AS c "
        "LEFT JOIN pg_stat_all_tables AS s ON s.relid = c.oid WHERE c.oid = ANY(%s::oid[])",
        (list(table_oids.values()),),
    )
    counters = {
        r[0]: {"relfilenode": r[1], "n_tup_ins": r[2], "n_tup_upd": r[3], "n_tup_del": r[4]}
        for r in cur.fetchall()
    }
    cur.execute(
        "SELECT to_char(stats_reset AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
        "FROM pg_stat_database WHERE datname = current_database()"
    )
    row = cur.fetchone()
    return counters, (row[0] if row else None)


# The one rule for production sessions idle inside a transaction, used by prod.idle_in_transaction and
# by the `idle_in_transaction` rule target that prod.baseline compares (never copy it into vars). Such
# a session may hold uncommitted writes that land after the fingerprint, or make them later: each one
# is danger, except one that provably holds no write and can make none, all three of:
#  - it logged in as current_user, the role this transaction's read-only proof just covered (that
#    role and every role it can SET ROLE to; SET SESSION AUTHORIZATION needs a superuser, which the
#    proof excludes). usesysid is the login role, visible for every session; the application_name,
#    client address or backend type a session reports is never evidence;
#  - it has no transaction id (backend_xid IS NULL): nothing written in that transaction so far (any
#    write, to a temporary table too, assigns one, and keeps it after ROLLBACK TO SAVEPOINT);
#  - that proof found no way to write (%(proven)s, false otherwise): it can write nothing later either.
# Our own session reads its own role's sessions in full, so backend_xid is never hidden from it.
IDLE_IN_TRANSACTION_TOLERATED = (
    "(%(proven)s AND a.backend_xid IS NULL "
    "AND a.usesysid = (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user))"
)
# Rule targets: counts gate0 takes by its own rule (module_utils), not by SQL from vars.
RULE_TARGETS = ("idle_in_transaction",)


def idle_sessions(cur: Any, proven: bool) -> dict[str, Any]:
    """Sessions idle in a transaction on this database but ours, split by the rule above into
    `sessions` (danger) and `tolerated`; `unknown`: client sessions whose state this role cannot see.
    `proven`: the read-only proof of current_user, taken in this transaction, found no write path."""
    cur.execute(
        "SELECT a.pid, a.usename, a.application_name, a.client_addr::text, a.state, "
        "to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "greatest(0, round(extract(epoch FROM clock_timestamp() - a.state_change)))::int, "
        f"{IDLE_IN_TRANSACTION_TOLERATED} FROM pg_catalog.pg_stat_activity AS a "
        "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() "
        "AND a.state IN ('idle in transaction', 'idle in transaction (aborted)') ORDER BY a.pid",
        {"proven": bool(proven)},
    )
    keys = ("pid", "user", "application_name", "client_addr", "state", "xact_start", "idle_s")
    rows = [(dict(zip(keys, r[:-1], strict=True)), bool(r[-1])) for r in cur.fetchall()]
    cur.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state IS NULL"
    )
    unknown = int(cur.fetchone()[0])
    # A prepared transaction holds its writes like an idle one, with no session at all.
    cur.execute(
        "SELECT gid, owner::text, to_char(prepared AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM pg_catalog.pg_prepared_xacts WHERE database = current_database() ORDER BY prepared"
    )
    prepared = [dict(zip(("gid", "owner", "prepared"), r, strict=True)) for r in cur.fetchall()]
    return {
        "sessions": [s for s, tolerated in rows if not tolerated],
        "tolerated": [s for s, tolerated in rows if tolerated],
        "unknown": unknown,
        "prepared": prepared,
    }


def rule_count(name: str, rule: str, result: dict[str, Any]) -> int:
    """A rule target's number, from this transaction's own observation by that rule."""
    if rule == "idle_in_transaction" and "idle_in_transaction" in result:
        idle = result["idle_in_transaction"]
        return len(idle["sessions"]) + len(idle.get("prepared") or [])
    raise GateError(f"counting target {name!r}: rule {rule!r} was not observed in this transaction")


def clone_privilege(cur: Any, clone: str) -> dict[str, Any]:
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = %s)", (clone,))
    exists = bool(cur.fetchone()[0])
    has_connect = False
    if exists:
        cur.execute("SELECT has_database_privilege(current_user, %s, 'CONNECT')", (clone,))
        has_connect = bool(cur.fetchone()[0])
    return {"database": clone, "exists_here": exists, "has_connect": has_connect}


def clone_attempt(params: dict[str, Any]) -> dict[str, Any]:
    """Try the clone with the production credentials; it must be refused. Never runs a query on it."""
    probe = dict(params)
    probe["login_db"] = params["clone_database"]
    if params.get("clone_login_container"):
        probe["login_container"], probe["login_unix_socket"] = params["clone_login_container"], ""
    elif params.get("clone_login_host"):
        probe.update(login_host=params["clone_login_host"], login_unix_socket="", login_container="")
    if probe.get("login_container") and not probe.get("login_unix_socket"):
        # Locate the clone's server first (raises GateError naming the container): a container that
        # cannot be found proves nothing, so it must not count as a refused connection below.
        probe["login_host"], probe["login_container"] = pg.login_host(probe), ""
    if params.get("clone_login_port"):
        probe["login_port"] = params["clone_login_port"]
    host = probe.get("login_unix_socket") or probe.get("login_host") or "localhost"
    server = f"{host}:{probe['login_port']}"
    try:
        conn = pg.connect(probe)
    except GateError as exc:
        reason = re.sub(
            r"^connecting to \S+: (connection to server at .*? failed: )?(FATAL:\s+)?", "", str(exc)
        )
        # Only a refusal by authorization proves anything (gate0_reach.refusal, the rule the clone
        # channel's mirror check uses too); a network error or a timeout proves nothing.
        why = gate0_reach.refusal(reason)
        return {"refused": True, "authorization": why is not None, "refused_by": why,
                "reason": reason, "server": server}
    try:
        conn.close()
    except Exception:  # noqa: S110 - closing a connection we must not use; nothing else to do
        pass
    return {
        "refused": False,
        "reason": "the connection was accepted (closed at once, no query sent)",
        "server": server,
    }


def compare_baseline(counts: dict[str, int], baseline: dict[str, Any]) -> dict[str, Any]:
    diff = []
    for name, expected in sorted(baseline.items()):
        observed = counts.get(name)
        if observed is None or int(expected) != observed:
            diff.append({"target": name, "expected": int(expected), "observed": observed})
    return {"given": bool(baseline), "matches": not diff, "diff": diff}


def digest(database: str, counts: dict[str, int], hashes: dict[str, str], volatile: list[str]) -> str:
    content = {n: {"count": c, "hash": hashes.get(n)} for n, c in sorted(counts.items()) if n not in volatile}
    blob = json.dumps({"database": database, "targets": content}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def in_transaction(
    conn: Any,
    params: dict[str, Any],
    targets: dict[str, dict[str, Any]],
    result: dict[str, Any],
    timings: dict[str, Any],
    timer: Timer,
) -> None:
    """Everything inside the one READ ONLY transaction; raises Stage on the first failure."""
    try:
        settings = pg.begin(conn, params, read_only=True, isolation="REPEATABLE READ")
    except GateError as exc:
        raise Stage("session", str(exc)) from None
    result["session"] = {"settings": settings}
    cur = conn.cursor()
    stage = "session"
    try:
        cur.execute(
            "SELECT current_database(), "
            "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
        database, result["taken_at"] = cur.fetchone()
        result["allowlist"]["current_database"] = database
        if database != params["login_db"] or database not in params["allowed_databases"]:
            result["allowlist"]["ok"] = False
            raise Stage(
                "allowlist",
                f"allowlist: connected to {database!r}, not to login_db "
                f"{params['login_db']!r} in {params['allowed_databases']}",
            )
        result["allowlist"]["ok"] = True
        result["database"] = database
        result["identity"] = pg.server_identity(cur)
        stage = "proof"
        start = time.monotonic()
        result["read_only_proof"] = gate0_readonly.read_only_proof(
            cur, int(result["identity"]["version_num"])
        )
        result["idle_in_transaction"] = idle_sessions(cur, result["read_only_proof"]["ok"])
        if params.get("clone_database"):
            result["clone_unreachable"] = clone_privilege(cur, params["clone_database"])
        timings["proof_ms"] = pg.elapsed_ms(start)
        stage = "targets"
        start = time.monotonic()
        try:
            crew = start_crew(cur, params, targets, result, timer)
        except (GateError, psycopg2.Error) as exc:
            why = str(exc) if isinstance(exc, GateError) else pg.one_line(exc)
            raise Stage("targets", f"starting the hash workers (hash_workers 1 starts none): {why}") from None
        try:
            cur.execute("SAVEPOINT gate0_targets")
            rels = target_relations(cur, targets, result)
            writers_seen(cur, quiet_tables(result, targets), "start", result)
            fingerprint_targets(cur, timer, targets, params, result, rels, crew)
        except Stage:
            # Best effort: on a terminated connection this fails too, and the first cause is the one
            # to report (not "cursor already closed").
            with contextlib.suppress(psycopg2.Error):
                cur.execute("ROLLBACK TO SAVEPOINT gate0_targets")
            raise
        finally:
            if crew is not None:  # (stopped before hashing: its workers end, hashing nothing)
                crew.finish(cur)
                result["session"]["hash_workers"] = crew.reports
        timings["targets_ms"] = pg.elapsed_ms(start)
        stage = "counters"
        result["counters"], result["stats_reset"] = read_counters(cur, result["_table_oids"])
        writers_seen(cur, quiet_tables(result, targets), "end", result)
        result.pop("_table_oids")
    except psycopg2.Error as exc:
        raise Stage(stage, f"{stage}: {pg.one_line(exc)}") from None
    finally:
        prove_and_roll_back(cur, result)


def prove_and_roll_back(cur: Any, result: dict[str, Any]) -> None:
    """Prove the transaction wrote nothing (no xid assigned), then ROLLBACK. Records what it could."""
    session = result.setdefault("session", {})
    try:
        xid = pg.xid_assigned(cur)
        session.update(xid_assigned=xid, wrote_nothing=xid is None)
    except psycopg2.Error as exc:
        session.update(xid_assigned=None, wrote_nothing=False, proof_error=pg.one_line(exc))
    for worker in session.get("hash_workers") or []:
        if worker.get("xid_assigned") is not None:
            session.update(wrote_nothing=False, proof_error=f"hash worker {worker['worker']}: xid "
                           f"{worker['xid_assigned']!r} assigned")
    try:
        cur.execute("ROLLBACK")
        session["rolled_back"] = True
    except psycopg2.Error:
        session["rolled_back"] = False


def in_one_transaction(
    params: dict[str, Any],
    targets: dict[str, dict[str, Any]],
    result: dict[str, Any],
    timings: dict[str, Any],
    timer: Timer,
    start: float,
) -> Stage | None:
    """Connect, run everything in the one transaction, always roll back and close.

    Returns the Stage failure that happened after the connection (so the caller can still probe the
    clone before failing); connection failures are raised at once.
    """
    try:
        conn = pg.connect(params)
    except GateError as exc:
        raise Stage("connect", str(exc)) from None
    timings["connect_ms"] = pg.elapsed_ms(start)
    try:
        in_transaction(conn, params, targets, result, timings, timer)
    except Stage as exc:
        return exc
    finally:
        pg.rollback_quietly(conn)
    return None


def run(params: dict[str, Any], result: dict[str, Any],
        before_probe: Callable[[], Any] | None = None) -> None:
    """The whole fingerprint; fills `result` as it goes and raises Stage on failure.

    `before_probe` is called before the clone probe connects to the clone (gate0_observe waits there
    for its clone part to end: the clone must not see the probe while it counts its sessions).
    """
    start = time.monotonic()
    timer = Timer()
    timings: dict[str, Any] = {}
    result["timings"] = timings
    result["allowlist"] = {
        "allowed_databases": params["allowed_databases"],
        "login_db": params["login_db"],
        "ok": False,
    }
    try:
        targets = check_options(params)
        result["allowlist"]["ok"] = True
        pending = in_one_transaction(params, targets, result, timings, timer, start)
        if params.get("clone_database") and "clone_unreachable" in result:
            # After our transaction ended, whatever happened in it: the clone must refuse us.
            if before_probe is not None:
                before_probe()
            probe_start = time.monotonic()
            result["clone_unreachable"]["attempt"] = clone_attempt(params)
            timings["clone_probe_ms"] = pg.elapsed_ms(probe_start)
        if pending is not None:
            raise pending
        if not result["session"].get("wrote_nothing"):
            raise Stage(
                "write_proof",
                "proving the transaction wrote nothing: "
                f"pg_current_xact_id_if_assigned() = {result['session'].get('xid_assigned')!r}",
            )
        result["baseline"] = compare_baseline(result["counts"], params["baseline"] or {})
        result["digest"] = digest(result["database"], result["counts"], result["hashes"], result["volatile"])
    finally:
        timings.update(
            statements=timer.statements,
            longest_statement_ms=timer.longest_ms,
            longest_statement=timer.longest,
        )
        result["duration_ms"] = pg.elapsed_ms(start)
        result.pop("_table_oids", None)


def argument_spec() -> dict[str, Any]:
    """pg_fingerprint's options (its DOCUMENTATION describes them)."""
    spec = pg.pg_argument_spec()
    spec.update(
        allowed_databases={"type": "list", "elements": "str", "required": True},
        clone_database={"type": "str"},
        clone_login_host={"type": "str"},
        clone_login_port={"type": "int"},
        clone_login_container={"type": "str"},
        targets={"type": "dict", "required": True},
        baseline={"type": "dict", "default": {}},
        hash_chunk_rows={"type": "int", "default": 50000},
        hash_workers={"type": "int", "default": HASH_WORKERS_DEFAULT},
    )
    return spec


def observe(params: dict[str, Any], before_probe: Callable[[], Any] | None = None) -> dict[str, Any]:
    """The whole fingerprint as a module result: on failure `failed`, one-line `msg`, `failed_stage`.
    `before_probe`: see run()."""
    result: dict[str, Any] = {"changed": False}
    if not HAS_PSYCOPG2:
        return {**result, "failed": True, "msg": pg.PSYCOPG2_HINT, "failed_stage": "options"}
    try:
        run(params, result, before_probe)
    except Stage as exc:
        result.update(failed=True, msg=f"pg_fingerprint: {exc}", failed_stage=exc.stage)
    except GateError as exc:
        result.update(failed=True, msg=f"pg_fingerprint: {exc}", failed_stage="unknown")
    except Exception as exc:  # one line, never a traceback; the transaction was rolled back
        result.update(failed=True, msg=f"pg_fingerprint: unexpected {type(exc).__name__}: {pg.one_line(exc)}",
                      failed_stage="unknown")
    return result
