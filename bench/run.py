"""gate0 speed figures (`make bench`): medians of several runs, same machine, same run.

Prints, against the local lab (GATE0_LAB_PORT):
  - Ansible's fixed cost: a no-op playbook on the same inventory (bench/noop.yml), and the cost of one
    module run on top of it (bench/one_module.yml: one ansible.builtin.ping task);
  - the gate written by hand the way operators do today (bench/handwritten.yml: one
    ansible.builtin.command task running psql per target and per check);
  - gate0 itself (playbooks/gate0.yml): wall time, what it adds over the fixed cost, its ratio to the
    no-op and to the hand-written gate against the goals (GOAL_RATIO_TO_NOOP, GOAL_FASTER_THAN_HAND);
  - gate0 again with gate0_observe run as a module (gate0_observe_in_process=false), as over SSH;
  - per module: the gate0_observe task (wall time) and, inside it, pg_fingerprint, clone_isolation
    and disk_headroom (each part's own duration_ms), recorded by bench/callback_plugins/gate0_timing.py;
  - content-hash throughput (rows/s with 1 and N connections on one snapshot) and the longest
    statement, from bench/fingerprint.py (the fingerprint module's own benchmark), run once;
  - many clones of one production gated at once, from bench/scale.py: 1, 4 and 8 clones with forks
    equal to the clone count and with forks 1, the ratio to one gate, controller vs server CPU.

Usage: python bench/run.py [--runs N] [--json FILE] [--skip-handwritten] [--skip-fingerprint]
       [--skip-scale]
Figures are printed, never asserted: a busy machine makes them slower, not wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
MODULES = ("pg_fingerprint", "clone_isolation", "disk_headroom")
OBSERVE = "gate0_observe"
# The role's task that runs gate0_observe, then judges, signs and writes the reports.
VERDICT = "gate0_verdict"
PART_OF = {"pg_fingerprint": "fingerprint", "clone_isolation": "clone", "disk_headroom": "disk"}
# Issue 17's goals: the whole gate within 2.0 x the no-op playbook, and >= 8 x faster than by hand.
GOAL_RATIO_TO_NOOP = 2.0
AS_MODULE = "gate0_observe_in_process=false"
GOAL_FASTER_THAN_HAND = 8.0


def bench_env(timing_file: str | None = None) -> dict[str, str]:
    """The environment `make` gives ansible-playbook, plus the timing callback when asked."""
    env = dict(os.environ)
    env.setdefault("GATE0_LAB_PORT", "55432")
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    venv_bin = REPO / ".venv" / "bin"
    if venv_bin.is_dir():
        env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}"
    if timing_file:
        env["ANSIBLE_CALLBACK_PLUGINS"] = str(BENCH / "callback_plugins")
        env["ANSIBLE_CALLBACKS_ENABLED"] = "gate0_timing"
        env["GATE0_BENCH_TIMING"] = timing_file
    return env


def run_playbook(playbook: str, timing: bool = False, *args: str) -> tuple[float, int, list[dict[str, Any]]]:
    """One run: wall seconds, exit code, and the per-task timing rows (when `timing`)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        timing_file = fh.name
    # Each run its own, empty fact cache: every gate0 run is a first gate on the clone ("no history:
    # instant only"). With the cache shared, the hand-written gate's psql sessions on the clone in
    # between would rightly FAIL the next gate0 run's interval proof (clone.foreign_sessions).
    cache = tempfile.TemporaryDirectory(prefix="gate0-bench-facts-")
    env = {**bench_env(timing_file if timing else None), "ANSIBLE_CACHE_PLUGIN_CONNECTION": cache.name}
    try:
        start = time.monotonic()
        proc = subprocess.run(["ansible-playbook", playbook, *args], cwd=REPO, capture_output=True, text=True,
                              env=env, timeout=600, check=False)
        wall = time.monotonic() - start
        rows: list[dict[str, Any]] = []
        if timing and os.path.getsize(timing_file):
            rows = json.loads(Path(timing_file).read_text())
    finally:
        os.unlink(timing_file)
        cache.cleanup()
    if proc.returncode != 0 and playbook != "playbooks/gate0.yml":
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise SystemExit(f"bench: {playbook} failed (rc {proc.returncode}):\n{tail}")
    return wall, proc.returncode, rows


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def module_figures(all_rows: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The module tasks: median task wall seconds and duration_ms over the runs (summed per run).

    gate0_observe runs the three modules' code in one call (inside the role's gate0_verdict task, which
    reports how long it took): each part's own duration_ms is reported under its module's name, with
    the observation's wall time under gate0_observe and the task's under gate0_verdict.
    """
    out: dict[str, dict[str, Any]] = {}
    hosts = (OBSERVE, VERDICT)
    for module in (VERDICT, OBSERVE, *MODULES):
        walls: list[float] = []
        own: list[float] = []
        calls = 0
        for rows in all_rows:
            if module == VERDICT:
                mine = [r for r in rows if str(r.get("action", "")).split(".")[-1] == module]
                durations: list[Any] = []
            elif module == OBSERVE:
                mine = [r for r in rows if str(r.get("action", "")).split(".")[-1] in hosts
                        and r.get("duration_ms") is not None]
                durations = [r.get("duration_ms") for r in mine]
            else:
                mine = [r for r in rows if str(r.get("action", "")).split(".")[-1] in hosts
                        and PART_OF[module] in (r.get("parts") or {})]
                durations = [r["parts"][PART_OF[module]] for r in mine]
            if not mine:
                continue
            calls = len(mine)
            walls.append(sum(r["seconds"] or 0 for r in mine))
            durations = [d for d in durations if isinstance(d, int | float)]
            if durations:
                own.append(sum(durations))
        if walls:
            out[module] = {"calls_per_run": calls, "task_s": median(walls), "duration_ms": median(own),
                           "in": OBSERVE if module in PART_OF else (VERDICT if module == OBSERVE else None)}
    return out


def slowest_tasks(all_rows: list[list[dict[str, Any]]], top: int = 6) -> list[tuple[str, float]]:
    """The tasks that cost gate0 most: median wall seconds per task name over the runs."""
    per_task: dict[str, list[float]] = {}
    for rows in all_rows:
        for row in rows:
            per_task.setdefault(row["task"], []).append(row["seconds"] or 0.0)
    ranked = sorted(((name, statistics.median(v)) for name, v in per_task.items()), key=lambda t: -t[1])
    return ranked[:top]


def script_bench(name: str, runs: int) -> str:
    """bench/<name>'s own output (fingerprint.py: issue 3's benchmark; scale.py: many clones), run
    once; not duplicated here."""
    script = BENCH / name
    if not script.is_file():
        return f"bench/{name} is not present"
    proc = subprocess.run([sys.executable, str(script), "--runs", str(runs)], cwd=REPO, capture_output=True,
                          text=True, env=bench_env(), timeout=1800, check=False)
    text = (proc.stdout + ("\n" + proc.stderr if proc.returncode else "")).rstrip()
    return text if proc.returncode == 0 else f"bench/{name} failed (rc {proc.returncode}):\n{text}"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return (f"{platform.node()}: {os.cpu_count()} x {cpu}, Python {platform.python_version()}, "
            f"{pg or 'psql ?'}, {load()}")


def load() -> str:
    """The load average (1, 5, 15 min): the machine may be shared, and figures move with it."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def fmt(value: float | None, unit: str = "s") -> str:
    return "n/a" if value is None else f"{value:.2f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("GATE0_BENCH_RUNS", "5")))
    parser.add_argument("--json", default=str(BENCH / "out" / "figures.json"))
    parser.add_argument("--skip-handwritten", action="store_true")
    parser.add_argument("--skip-fingerprint", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print(f"gate0 bench: {args.runs} runs each, interleaved, on {machine()}")
    noop: list[float] = []
    one: list[float] = []
    hand: list[float] = []
    gate: list[float] = []
    gate_rc: list[int] = []
    gate_rows: list[list[dict[str, Any]]] = []
    as_module: list[float] = []
    for i in range(args.runs):
        # Interleaved, so that a burst of load elsewhere on the machine hits every variant alike.
        noop.append(run_playbook("bench/noop.yml")[0])
        one.append(run_playbook("bench/one_module.yml")[0])
        if not args.skip_handwritten:
            hand.append(run_playbook("bench/handwritten.yml")[0])
        wall, rc, rows = run_playbook("playbooks/gate0.yml", timing=True)
        gate.append(wall)
        gate_rc.append(rc)
        gate_rows.append(rows)
        # The same gate with gate0_observe run as a module, as it always is over SSH.
        as_module.append(run_playbook("playbooks/gate0.yml", False, "-e", AS_MODULE)[0])
        print(f"  run {i + 1}: no-op {noop[-1]:.2f} s, by hand {fmt(hand[-1] if hand else None)}, "
              f"gate0 {wall:.2f} s (rc {rc}), gate0 observing by module {as_module[-1]:.2f} s", flush=True)

    m_noop, m_hand, m_gate, m_one = median(noop), median(hand), median(gate), median(one)
    m_module = median(as_module)
    added = m_gate - m_noop
    figures: dict[str, Any] = {
        "machine": machine(), "runs": args.runs,
        "noop_s": m_noop, "one_module_s": m_one, "handwritten_s": m_hand, "gate0_s": m_gate,
        "gate0_added_s": added, "gate0_rc": gate_rc, "gate0_observe_as_module_s": m_module,
        "ratio_to_noop": m_gate / m_noop, "ratio_to_handwritten": (m_gate / m_hand) if m_hand else None,
        "modules": module_figures(gate_rows),
        "gate0_tasks_per_run": len(gate_rows[0]) if gate_rows else None,
    }
    print()
    print(f"no-op playbook (Ansible's fixed cost)   {fmt(m_noop)}")
    print(f"hand-written gate (psql per check)      {fmt(m_hand)}   "
          f"({sum(1 for _ in (BENCH / 'handwritten.yml').read_text().split('ansible.builtin.command:')) - 1}"
          " command tasks)")
    verdict = "PASS" if all(rc == 0 for rc in gate_rc) else f"exit codes {gate_rc}"
    print(f"gate0 playbook                          {fmt(m_gate)}   ({verdict}, "
          f"{figures['gate0_tasks_per_run']} tasks)")
    print(f"  adds over the fixed cost              {fmt(added)}")
    ratio = figures["ratio_to_noop"]
    print(f"  ratio to the no-op                    {ratio:.2f} x   (goal <= {GOAL_RATIO_TO_NOOP} x: "
          f"{'met' if ratio <= GOAL_RATIO_TO_NOOP else 'NOT met'})")
    if m_hand:
        faster = m_hand / m_gate
        figures["faster_than_handwritten"] = faster
        met = "met" if faster >= GOAL_FASTER_THAN_HAND else "NOT met"
        print(f"  ratio to the hand-written gate        {figures['ratio_to_handwritten']:.2f} x = "
              f"{faster:.1f} x faster   (goal >= {GOAL_FASTER_THAN_HAND} x: {met})")
    if m_one is not None:
        print(f"  one module task (ansible.builtin.ping) {fmt(m_one - m_noop)} over the no-op: Ansible's "
              "cost of one module run")
    if m_module is not None:
        print(f"gate0, observing by module              {fmt(m_module)}   "
              f"({m_module / m_noop:.2f} x the no-op; {AS_MODULE}, as over SSH)")
    for module in (VERDICT, OBSERVE, *MODULES):
        fig = figures["modules"].get(module)
        if fig is None:
            print(f"module {module:<32}not in this gate0 run")
        elif fig["in"] == VERDICT:
            print(f"  {module:<34}{fmt(fig['duration_ms'], 'ms')} wall, inside {fig['in']}")
        elif fig["in"]:
            print(f"    part {module:<28}{fmt(fig['duration_ms'], 'ms')} own, inside {fig['in']}")
        else:
            print(f"module {module:<32}{fmt(fig['task_s'])} task wall, {fmt(fig['duration_ms'], 'ms')} own "
                  f"({fig['calls_per_run']} call(s) per run)")
    slow = slowest_tasks(gate_rows)
    figures["slowest_tasks"] = slow
    print("gate0's slowest tasks (median wall):")
    for name, secs in slow:
        print(f"  {secs:5.2f} s  {name}")
    if not args.skip_fingerprint:
        print()
        print("content hash (bench/fingerprint.py):")
        text = script_bench("fingerprint.py", args.runs)
        figures["fingerprint"] = text
        print("\n".join("  " + line for line in text.splitlines()))
    if not args.skip_scale:
        print()
        print("many clones of one production (bench/scale.py):")
        text = script_bench("scale.py", min(args.runs, 3))
        figures["scale"] = text
        print("\n".join("  " + line for line in text.splitlines()))
    figures["load_at_end"] = load()
    print(f"\n{load()} at the end")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures written to {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
