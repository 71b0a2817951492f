"""The seed's "Decision" as outputs: what may proceed (clone objectives) and what may not (the
production persistent seed), each with the evidence lines behind it.

Separate from the gate verdict: a PASS gate with a NO-GO persistent seed is the seed's normal state.
Pure functions (no I/O); the gate0_verdict action calls gate0_decisions on the completed check records and
the production fingerprint's summary (its snapshot's counts).
"""

from __future__ import annotations

from typing import Any

GATES = (("prod", "production read-only gate"), ("clone", "clone isolation gate"), ("disk", "disk headroom"))
GO, NO_GO = "GO", "NO-GO"


def _line(text: Any) -> str:
    return " ".join(str(text or "").split())


def _gate_lines(checks: list[dict[str, Any]], gates: list[str]) -> tuple[bool, list[str]]:
    """Whether every gate ran and passed, and one evidence line per gate plus each check not passed."""
    ok, lines = True, []
    for gate, label in GATES:
        recs = [c for c in checks if c.get("gate") == gate]
        failed = [c for c in recs if c.get("status") == "fail"]
        skipped = [c for c in recs if c.get("status") == "skipped"]
        if gate not in gates:
            ok = False
            lines.append(f"{label} NOT RUN (gate0_gates={list(gates)})")
            continue
        ok = ok and not failed and bool(recs)
        verdict = "FAIL" if failed or not recs else "PASS"
        lines.append(f"{label} {verdict}: {len(recs) - len(failed) - len(skipped)} pass, {len(failed)} fail, "
                     f"{len(skipped)} skipped")
        lines += [f"{c.get('id')} {c.get('status')}: {_line(c.get('message'))}" for c in failed + skipped]
    return ok, lines


def clone_objectives(checks: list[dict[str, Any]], gates: list[str]) -> dict[str, Any]:
    ok, evidence = _gate_lines(checks, gates)
    reason = ("all gates PASS: proceed with clone objectives (clone mutations through gate0 require)"
              if ok else "a gate did not pass or did not run: do not mutate the clone")
    return {"decision": GO if ok else NO_GO, "reason": reason, "evidence": evidence}


def persistent_seed(checks: list[dict[str, Any]], production: dict[str, Any],
                    settings: dict[str, Any]) -> dict[str, Any]:
    """GO only with the required approvals counted in production's snapshot and the production gate PASS."""
    target = str(settings.get("target") or "")
    required = int(settings.get("required") or 0)
    relation = str(((settings.get("targets") or {}).get(target) or {}).get("relation") or target)
    counts = (production or {}).get("counts") or {}
    approved = counts.get(target)
    prod = [c for c in checks if c.get("gate") == "prod"]
    prod_ok = bool(prod) and all(c.get("status") != "fail" for c in prod)
    evidence = [f"production read-only gate {'PASS' if prod_ok else 'FAIL or not run'} "
                f"(snapshot digest {(production or {}).get('digest') or 'none'})"]
    out = {"required": required, "approved": approved, "relation": relation, "target": target}
    if approved is None:
        evidence.insert(0, f"{relation}: approvals not counted (fingerprint target {target!r} has no count)")
        return {**out, "decision": NO_GO, "evidence": evidence,
                "reason": f"gate closed: approvals in {relation} not counted"}
    evidence.insert(0, f"{relation}: {approved} approved row(s) in production's snapshot (fingerprint target "
                       f"{target!r}); {required} required")
    if required < 1:
        return {**out, "decision": NO_GO, "evidence": evidence,
                "reason": f"gate closed: gate0_persistent_seed_approvals_required is {required}, "
                          "must be at least 1"}
    if int(approved) < required:
        return {**out, "decision": NO_GO, "evidence": evidence,
                "reason": f"gate closed: {approved} of {required} required approvals in {relation}"}
    if not prod_ok:
        return {**out, "decision": NO_GO, "evidence": evidence,
                "reason": f"{approved} of {required} required approvals, "
                          "but the production gate did not pass"}
    return {**out, "decision": GO, "evidence": evidence,
            "reason": f"{approved} of {required} required approvals in {relation}"}


def gate0_decisions(checks: list[dict[str, Any]], gates: list[str], production: dict[str, Any] | None,
                    seed_settings: dict[str, Any]) -> dict[str, Any]:
    """`{clone_objectives, persistent_seed}`, each `{decision: GO|NO-GO, reason, evidence: [lines]}`."""
    return {
        "clone_objectives": clone_objectives(checks, list(gates or [])),
        "persistent_seed": persistent_seed(checks, production or {}, seed_settings),
    }
