"""gate0 at scale (`make bench-scale`; `make bench` runs it too): many clones of ONE production.

For 1, 4 and 8 clones of the lab's one production (inventories/lab_many; the clones are made by
`lab/lab.sh clones 8` and dropped at the end), the wall time of playbooks/gate0.yml with forks equal
to the clone count and with forks 1, the ratio to one gate, and where the time goes:
  - controller CPU: ansible-playbook, its forks and, over the lab's local connection, the modules'
    Python (on a real setup the modules run on the database host);
  - server CPU: the PostgreSQL backends that served the run (each one, once it exits, is added to
    the postmaster's children's CPU time, read from /proc).
Medians of --runs runs, the variants interleaved. Every run is expected to PASS; a FAIL is printed.

Usage: python bench/scale.py [--runs N] [--sizes 1,4,8] [--json FILE]
Figures are printed, never asserted: a busy machine makes them slower, not wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import bench_env  # bench/run.py, beside this file (the script's own directory is on sys.path)

REPO = Path(__file__).resolve().parent.parent
LAB_SH = REPO / "lab" / "lab.sh"
INVENTORY = "inventories/lab_many"
MAX_CLONES = 8


def env() -> dict[str, str]:
    """The environment `make` gives ansible-playbook (bench/run.py's, one rule)."""
    return bench_env()


def lab(*args: str) -> None:
    proc = subprocess.run([str(LAB_SH), *args], env=env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench: lab/lab.sh {' '.join(args)} failed: {proc.stderr.strip()}")


def server_cpu_s() -> float | None:
    """The postmaster's own and its exited children's CPU seconds (None when it cannot be read)."""
    lab_dir = Path(os.environ.get("GATE0_LAB_DIR") or REPO / ".lab")
    try:
        pid = (lab_dir / "data" / "postmaster.pid").read_text().split()[0]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the ") state" part: utime, stime, cutime, cstime are fields 14-17 of the whole line.
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def controller_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def gate(clones: int, forks: int, report_dir: str) -> dict[str, Any]:
    """One run of gate0 on the first `clones` hosts of lab_many: wall, exit code, CPU on each side."""
    hosts = ",".join(f"many_{i:02d}" for i in range(1, clones + 1))
    cpu0, srv0, start = controller_cpu_s(), server_cpu_s(), time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, "--limit", hosts, "-f", str(forks), "playbooks/gate0.yml",
         "-e", f"gate0_report_dir={report_dir}"],
        cwd=REPO, env=env(), capture_output=True, text=True, timeout=900, check=False)
    wall = time.monotonic() - start
    srv1 = server_cpu_s()
    return {"wall_s": wall, "rc": proc.returncode, "controller_cpu_s": controller_cpu_s() - cpu0,
            "server_cpu_s": None if srv0 is None or srv1 is None else srv1 - srv0}


def variants(sizes: list[int]) -> list[tuple[int, int]]:
    """(clones, forks): one gate alone, then each size with forks = clones and with forks 1."""
    out = [(1, 1)]
    for n in sizes:
        out += [(n, n), (n, 1)] if n > 1 else []
    return out


def med(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def measure(sizes: list[int], runs: int) -> list[dict[str, Any]]:
    samples: dict[tuple[int, int], list[dict[str, Any]]] = {v: [] for v in variants(sizes)}
    with tempfile.TemporaryDirectory(prefix="gate0-scale-") as reports:
        for i in range(runs):
            line = []
            for clones, forks in samples:  # interleaved: a burst of load elsewhere hits each alike
                s = gate(clones, forks, reports)
                samples[(clones, forks)].append(s)
                failed = "" if s["rc"] == 0 else f" rc {s['rc']}"
                line.append(f"{clones}/{forks} {s['wall_s']:.1f} s{failed}")
            print(f"  run {i + 1} (clones/forks): " + ", ".join(line), flush=True)
    one = med([s["wall_s"] for s in samples[(1, 1)]]) or 0.0
    rows = []
    for (clones, forks), ss in samples.items():
        wall = med([s["wall_s"] for s in ss]) or 0.0
        rows.append({
            "clones": clones, "forks": forks, "wall_s": wall, "per_clone_s": wall / clones,
            "ratio_to_one_gate": wall / one if one else None,
            "controller_cpu_s": med([s["controller_cpu_s"] for s in ss]),
            "server_cpu_s": med([s["server_cpu_s"] for s in ss]), "exit_codes": [s["rc"] for s in ss],
        })
    return rows


def fmt(value: float | None, unit: str = "s", width: int = 7) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:{width}.2f} {unit}"


def report(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'clones':>6} {'forks':>5} {'wall':>9} {'vs one gate':>12} {'per clone':>10} "
          f"{'controller CPU':>15} {'server CPU':>11}   verdicts")
    for r in rows:
        verdict = "all PASS" if all(rc == 0 for rc in r["exit_codes"]) else f"exit codes {r['exit_codes']}"
        print(f"{r['clones']:>6} {r['forks']:>5} {fmt(r['wall_s'])} {fmt(r['ratio_to_one_gate'], 'x', 9)} "
              f"{fmt(r['per_clone_s'])} {fmt(r['controller_cpu_s'], 's', 12)} "
              f"{fmt(r['server_cpu_s'], 's', 8)}   {verdict}")
    print(f"({os.cpu_count()} cores; load average now {os.getloadavg()[0]:.2f}. Controller CPU: "
          "ansible-playbook, its forks and the modules' Python; server CPU: the PostgreSQL backends.)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("GATE0_BENCH_RUNS", "3")))
    parser.add_argument("--sizes", default="1,4,8")
    parser.add_argument("--json", default=str(REPO / "bench" / "out" / "scale.json"))
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.runs < 1 or not sizes or sizes[0] < 1 or sizes[-1] > MAX_CLONES:
        parser.error(f"--runs must be at least 1 and --sizes between 1 and {MAX_CLONES}")
    print(f"gate0 at scale: clones of one production ({INVENTORY}), {args.runs} runs each, interleaved; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    lab("up")
    lab("clones", str(sizes[-1]))
    try:
        rows = measure(sizes, args.runs)
    finally:
        lab("clones", "0")
    report(rows)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": args.runs, "cores": os.cpu_count(), "rows": rows}, indent=2) + "\n")
    print(f"figures written to {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
