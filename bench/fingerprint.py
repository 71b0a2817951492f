#!/usr/bin/env python3
"""Speed of pg_fingerprint on the lab: the seed's 15 targets, and content-hash throughput.

Prints (median of several runs, milliseconds):
  - the 15-target fingerprint as the gate takes it (counts + hashes + proof + clone probe), and the
    15 counts alone (no hashes);
  - content-hash throughput (rows/s) on system_issues (200k rows) and on a generated 2M-row table (made
    in a scratch database of the lab, dropped afterwards), hashed by 1 connection and by N (the
    leader and its hash workers on one exported snapshot: N = the default hash_workers and the
    machine's cores, at most HASH_WORKERS_MAX), interleaved; the digests must be equal;
  - the longest single statement against the statement timeout (target: under 30 %).

  GATE0_LAB_PORT=55432 .venv/bin/python bench/fingerprint.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.gate0.core.plugins.module_utils import gate0_fingerprint as fp  # noqa: E402 - pg_fingerprint's code
from ansible_collections.gate0.core.plugins.module_utils.gate0_pg import pg_argument_spec  # noqa: E402

SCRATCH_DB = "gate0_bench_scratch"
BIG_ROWS = 2_000_000


def lab_dsn() -> str:
    out = subprocess.run([str(REPO / "lab" / "lab.sh"), "dsn"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def params(**over: Any) -> dict[str, Any]:
    defaults = yaml.safe_load((REPO / "roles" / "gate0" / "defaults" / "main.yml").read_text())
    p = {k: v.get("default") for k, v in pg_argument_spec().items()}
    p.update(
        login_host="127.0.0.1",
        login_port=int(os.environ.get("GATE0_LAB_PORT", "55432")),
        login_user="context_pack_readonly",
        login_password=(REPO / ".lab" / "secrets" / "context_pack_readonly.pw").read_text().strip(),
        login_db="directus",
        allowed_databases=["directus"],
        clone_database="directus_gov_test_20260602",
        clone_login_host=None,
        clone_login_port=None,
        targets=defaults["gate0_production_targets"],
        baseline=defaults["gate0_production_baseline"],
        hash_chunk_rows=defaults["gate0_production_hash_chunk_rows"],
        hash_workers=defaults["gate0_production_hash_workers"],
    )
    p.update(over)
    return p


def fingerprint(p: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    fp.run(p, result)
    return result


def median_runs(p: dict[str, Any], runs: int) -> tuple[float, dict[str, Any]]:
    times, last = [], {}
    for _ in range(runs):
        last = fingerprint(p)
        times.append(last["duration_ms"])
    return statistics.median(times), last


def worker_counts() -> list[int]:
    """1, the default hash_workers, and the machine's cores (at most HASH_WORKERS_MAX)."""
    cores = min(os.cpu_count() or 1, fp.HASH_WORKERS_MAX)
    return sorted({1, fp.HASH_WORKERS_DEFAULT, cores})


def hash_throughput(db: str, table: str, runs: int) -> dict[int, dict[str, Any]]:
    """Per connection count: the median ms pg_fingerprint's hashing of `table` takes (its hash phase:
    the workers' start included), rows, longest statement, the hash. Runs interleaved."""
    p = params(login_db=db, allowed_databases=[db], clone_database=None, baseline={},
               targets={table: {"relation": table, "hash": True}})
    times: dict[int, list[int]] = {n: [] for n in worker_counts()}
    out: dict[int, dict[str, Any]] = {n: {"longest": 0, "hashes": set()} for n in times}
    for _ in range(runs):
        for n in times:
            result = fingerprint({**p, "hash_workers": n})
            t = result["timings"]
            times[n].append(t["hash_ms"])
            out[n].update(rows=result["counts"][table], connections=t["hash_connections"])
            out[n]["longest"] = max(out[n]["longest"], t["longest_statement_ms"])
            out[n]["hashes"].add(result["hashes"][table])
    for n, fig in out.items():
        fig["ms"] = statistics.median(times[n])
        fig["rows_s"] = fig["rows"] / fig["ms"] * 1000 if fig["ms"] else 0.0
    if len(set().union(*(fig["hashes"] for fig in out.values()))) != 1:
        raise SystemExit(f"bench: {table}: the hashes differ between connection counts: {out}")
    return out


def print_throughput(label: str, figs: dict[int, dict[str, Any]]) -> int:
    """One line per connection count; returns the longest statement seen."""
    one = figs[1]["ms"]
    for n, fig in figs.items():
        speedup = f", {one / fig['ms']:.2f} x one connection" if n > 1 and fig["ms"] else ""
        print(f"  content hash {label:<28}: {fig['ms']:7.0f} ms  = {fig['rows_s']:,.0f} rows/s with {n} "
              f"connection(s) ({fig['connections']} used){speedup}, longest statement {fig['longest']} ms")
    return max(fig["longest"] for fig in figs.values())


def su(dsn: str, db: str, statement: str) -> None:
    conn = psycopg2.connect(f"{dsn} dbname={db}")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    p = params()
    timeout = p["statement_timeout"]
    print(
        f"pg_fingerprint bench (lab port {p['login_port']}, statement_timeout {timeout} ms, "
        f"median of {args.runs})"
    )

    full_ms, full = median_runs(p, args.runs)
    t = full["timings"]
    print(
        f"  15 targets, hashes + proof + clone probe : {full_ms:7.0f} ms  (proof {t.get('proof_ms')} ms, "
        f"targets {t.get('targets_ms')} ms, {t['statements']} target statements)"
    )
    counts_only = {n: {k: v for k, v in s.items() if k != "hash"} for n, s in p["targets"].items()}
    counts_ms, counts = median_runs(params(targets=counts_only), args.runs)
    print(
        f"  15 targets, counts only (no hashes)      : {counts_ms:7.0f} ms  (targets "
        f"{counts['timings'].get('targets_ms')} ms)"
    )

    dsn = lab_dsn()
    si_longest = print_throughput("system_issues (200,480 rows)", hash_throughput("directus", "system_issues",
                                                                               args.runs))

    su(dsn, "postgres", f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
    su(dsn, "postgres", f"CREATE DATABASE {SCRATCH_DB}")
    try:
        su(
            dsn,
            SCRATCH_DB,
            "CREATE TABLE big (id bigint PRIMARY KEY, code text NOT NULL, n integer, "
            f"at timestamptz NOT NULL); INSERT INTO big SELECT g, md5(g::text), g % 1000, "
            f"timestamptz '2025-01-01' + g * interval '1 second' FROM generate_series(1, {BIG_ROWS}) "
            "AS g; ANALYZE big; GRANT SELECT ON big TO context_pack_readonly",
        )
        big_longest = print_throughput("big (2,000,000 rows)", hash_throughput(SCRATCH_DB, "big",
                                                                             max(1, args.runs // 2)))
    finally:
        su(dsn, "postgres", f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")

    longest = max(t["longest_statement_ms"], si_longest, big_longest)
    share = longest / timeout * 100
    print(
        f"  longest single statement                 : {longest:7d} ms  = {share:.0f}% of the "
        f"{timeout} ms statement timeout (target < 30%): {'OK' if share < 30 else 'OVER'}"
    )


if __name__ == "__main__":
    main()
