"""Action plugin gate0_receipt: sign gate0's result, or verify a gate0 record's receipt.

Runs on the controller only (the secret never travels to a host, nor into task arguments, results
or logs: it is read here). Documentation: roles/gate0/library/gate0_receipt.py.

Where the key comes from - never from launch input (AWX launch or survey vars, workflow artifacts,
`-e`: all of them are extra vars, which outrank everything in Ansible):
- GATE0_RECEIPT_SECRET in the controller's environment (the AWX credential injects it), when it is
  set at all: set but empty means "no secret", never "read the variable instead";
- else the variable gate0_receipt_secret (inventory, group_vars, vault), resolved with every extra
  var withheld, so a template there cannot draw on launch input either.
An extra var gate0_receipt_secret is refused like the variables gate0 computes itself (one rule:
`protected_overrides`): the gate leaves its result not passed and unsigned, a consumer refuses.

The receipt is the part of the gate0 fact a consumer relies on (run, time, host, verdict, gates,
production database and digest plus a SHA-256 of the whole production section the exit compares
against, clone name, server identity and session counter, decisions), plus `tag` = HMAC-SHA256 over
its canonical JSON (sorted keys, no whitespace, UTF-8).

mode=guard fails, in that one line, when launch input sets any of them, and when one of the given
hosts holds no verdict of this run: playbooks/gate0.yml's last task (the role's gate0_verdict refuses
the same launch input itself, before any task reads its registered verdict).

mode=mark signs one entry of the `gate0_sessions` fact (the clone's session counter as gate0 last
read it, gate0.core's gate0_interval) the same way, bound to the host, and sets that fact (the kept
entries plus this clone's); mode=verify checks such an entry beside the record, so a consumer
compares the counter with a reading no launcher could write.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from ansible.plugins.action import ActionBase

ALG = "HMAC-SHA256"
VERSION = 3
SECRET_ENV = "GATE0_RECEIPT_SECRET"  # noqa: S105 - the name of the variable, not a secret
SECRET_VAR = "gate0_receipt_secret"  # noqa: S105 - the name of the variable, not a secret
MIN_SECRET_CHARS = 16
# Variables that never come from launch input: those gate0 computes itself (an extra var would replace
# gate0's own value) and the receipt key (an extra var would let the launcher sign their own receipt).
PROTECTED_PREFIX = "__gate0"
PROTECTED_NAMES = ("gate0_required_record", "gate0_required", "gate0_sessions", SECRET_VAR)
SESSIONS_KIND = "gate0-sessions"
# Containers through which a template reaches every variable, extra vars included.
ALL_VARS_CONTAINERS = ("vars", "hostvars")


def plain(value: Any) -> Any:
    """The value as plain JSON types (Ansible hands over its own subclasses); TypeError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"non-finite number {value!r}")
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same bytes for the same content, wherever it was parsed."""
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def compute_tag(body: Mapping[str, Any], secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), canonical_json(body), hashlib.sha256).hexdigest()


def section_sha256(section: Any) -> str:
    """SHA-256 of a section's canonical JSON: the receipt covers all of it without repeating it."""
    return hashlib.sha256(canonical_json(section)).hexdigest()


def receipt_body(fact: Mapping[str, Any]) -> dict[str, Any]:
    """What a consumer relies on, taken from a gate0 fact (everything the tag covers).

    The whole `production` section (counts, hashes, write counters, server: what the exit fingerprint
    compares against) is covered by its SHA-256; the require entry point reads the other fields.
    """
    prod = fact.get("production") or {}
    clone = fact.get("clone") or {}
    decisions = fact.get("decisions") or {}
    return {
        "version": VERSION,
        "alg": ALG,
        "run_id": fact.get("run_id"),
        "checked_at": fact.get("checked_at"),
        "host": fact.get("host"),
        "passed": fact.get("passed") is True,
        "gates": list(fact.get("gates") or []),
        "production": {"database": prod.get("database"), "digest": prod.get("digest"),
                       "sha256": section_sha256(prod)},
        "clone": {"database": clone.get("database"), "identity": clone.get("identity"),
                  "sessions": clone.get("sessions")},
        "decisions": {str(k): (v or {}).get("decision") for k, v in decisions.items()},
    }


def sign(fact: Mapping[str, Any], secret: str) -> dict[str, Any]:
    """The fact with its receipt; `tag` is None without a secret (consumers then fall back)."""
    body = plain(receipt_body(fact))  # a copy: the receipt shares nothing with the fact
    # Plain JSON types throughout: Ansible's tagged values (each with its origin) would make the fact
    # cache several times larger and slower to read back on every task.
    return {**plain(fact), "receipt": {**body, "tag": compute_tag(body, secret) if secret else None}}


def sessions_body(entry: Mapping[str, Any], host: str) -> dict[str, Any]:
    """What a `gate0_sessions` entry's tag covers: the reading, where and when, bound to the host."""
    return {**{str(k): v for k, v in entry.items() if k != "tag"}, "kind": SESSIONS_KIND, "host": host}


def mark(entry: Mapping[str, Any], secret: str, host: str) -> dict[str, Any]:
    """The entry with its tag (None without a secret)."""
    clean = plain({str(k): v for k, v in entry.items() if k != "tag"})
    return {**clean, "tag": compute_tag(sessions_body(clean, host), secret) if secret else None}


def sessions_problem(entry: Any, secret: str, host: str, clone_database: str) -> str | None:
    """Why a `gate0_sessions` entry is not gate0's own reading of this clone (None when it is)."""
    if not isinstance(entry, Mapping):
        return f"no session counter kept for this host (got {type(entry).__name__})"
    if entry.get("database") != clone_database:
        return f"the kept session counter is for {entry.get('database')!r}, not {clone_database!r}"
    if not secret:
        return None
    given = str(entry.get("tag") or "")
    try:
        want = compute_tag(sessions_body(entry, host), secret)
    except TypeError as exc:
        return f"the kept session counter holds a value that is not JSON ({exc})"
    if not hmac.compare_digest(want.encode("ascii"), given.encode("utf-8")):
        return "the kept session counter is not signed by gate0 for this host (edited, or another secret)"
    return None


def verify_problem(record: Any, secret: str, host: str, clone_database: str) -> str | None:
    """Why this gate0 record's receipt must be refused (None when it holds): one line naming which."""
    if not isinstance(record, Mapping):
        return f"no gate0 record for this host (got {type(record).__name__}); run playbooks/gate0.yml first"
    if record.get("finished") is False:  # the mark a run sets at its start (tasks/validate.yml)
        return (f"not passed: gate0 run {record.get('run_id')} started at {record.get('checked_at')} did "
                "not finish (failed or interrupted before its reports and receipt); run playbooks/gate0.yml")
    receipt = record.get("receipt")
    if not isinstance(receipt, Mapping):
        return "forged: the gate0 record carries no receipt (hand-made, or not written by gate0)"
    given = receipt.get("tag")
    if not given:
        return "forged: the receipt is not signed (written by a gate0 run without gate0_receipt_secret)"
    body = {k: v for k, v in receipt.items() if k != "tag"}
    try:
        want = compute_tag(body, secret)
    except TypeError as exc:
        return f"forged: the receipt holds a value that is not JSON ({exc})"
    if not hmac.compare_digest(want.encode("ascii"), str(given).encode("utf-8")):
        return ("forged or edited: the receipt's tag does not match its content "
                "(changed after signing, or signed with another secret)")
    view = receipt_body(record)
    edited = sorted(k for k in set(body) | set(view)
                    if canonical_json(body.get(k)) != canonical_json(view.get(k)))
    if edited:
        return f"edited: gate0 {', '.join(edited)} differ from its signed receipt"
    if body.get("host") != host:
        return f"replayed to another host: the receipt is for host {body.get('host')!r}, this is {host!r}"
    clone = (body.get("clone") or {}).get("database")
    if clone != clone_database:
        return f"replayed to another clone: the receipt is for {clone!r}, this clone is {clone_database!r}"
    return None


def protected_overrides(extra_vars: Mapping[str, Any]) -> list[str]:
    """Extra vars gate0 never takes from launch input: its own computed variables, the receipt key."""
    return sorted(str(k) for k in extra_vars
                  if str(k).startswith(PROTECTED_PREFIX) or str(k) in PROTECTED_NAMES)


def override_problem(names: list[str]) -> str | None:
    """One line naming the extra vars that must not be launch input (None when there are none)."""
    if not names:
        return None
    return (f"extra vars set {', '.join(names)}, which never come from launch input (the receipt key, "
            "and values gate0 computes itself: a result built from them is not evidence)")


def without_extra_vars(task_vars: Mapping[str, Any], extra_names: Any) -> dict[str, Any]:
    """The task's variables with every extra var withheld, `vars` rebuilt from them, no `hostvars`."""
    kept = {k: v for k, v in task_vars.items() if k not in extra_names and k not in ALL_VARS_CONTAINERS}
    return {**kept, "vars": dict(kept)}


def no_secret_reason() -> str:
    """Why there is no receipt key (the environment variable decides when it is set at all)."""
    if SECRET_ENV in os.environ:
        return f"{SECRET_ENV} is set but empty (no receipt key; {SECRET_VAR} is then not read)"
    return f"no {SECRET_VAR} (nor {SECRET_ENV}) is configured"


def secret_problem(secret: str) -> str | None:
    if secret and len(secret) < MIN_SECRET_CHARS:
        return f"{SECRET_VAR} is shorter than {MIN_SECRET_CHARS} characters"
    return None


class ActionModule(ActionBase):
    """mode=sign: return the gate0 fact with its receipt. mode=verify: check a record's receipt."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("mode", "gate0", "clone_database", "sessions", "hosts", "kept"))

    def _secret(self, task_vars: dict[str, Any], extra_vars: Mapping[str, Any]) -> str:
        """GATE0_RECEIPT_SECRET when set (empty: no secret), else the variable without any extra var."""
        if SECRET_ENV in os.environ:
            return os.environ[SECRET_ENV]
        if SECRET_VAR not in task_vars:
            return ""
        templar = self._templar.copy_with_new_env(
            available_variables=without_extra_vars(task_vars, extra_vars))
        value = templar.resolve_variable_expression(SECRET_VAR)
        return "" if value is None else str(value)

    def _extra_vars(self) -> Mapping[str, Any]:
        """This run's extra vars, as the VariableManager merged them (every launch input lands here)."""
        manager = self._task.get_variable_manager()
        if manager is not None:
            return manager.extra_vars
        from ansible.utils.vars import load_extra_vars
        return load_extra_vars(self._loader)

    def _without_verdict(self, hosts: Any) -> list[str]:
        """The given hosts that hold no verdict of this run (the role's registered `__gate0_verdict`
        with its `gate0`): unreachable, failed before it, or skipped."""
        # Only what this run registered: Ansible keeps registered results (and set_fact's) apart from
        # inventory, host and group variables, which could otherwise name `__gate0_verdict` themselves
        # (with the role skipped, an inventory variable of that name was a verdict). Untemplated: a
        # task's result is data, and an extra var of that name was refused before this.
        manager = self._task.get_variable_manager()
        registered = getattr(manager, "_nonpersistent_fact_cache", None)
        missing: list[str] = []
        for name in hosts if isinstance(hosts, list) else []:
            facts = registered.get(str(name)) if isinstance(registered, Mapping) else None
            verdict = facts.get("__gate0_verdict") if isinstance(facts, Mapping) else None
            if not (isinstance(verdict, Mapping) and isinstance(verdict.get("gate0"), Mapping)):
                missing.append(str(name))
        return missing

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        mode = args.get("mode")
        fail = {**result, "failed": True, "changed": False}
        if mode not in ("sign", "verify", "mark", "guard"):
            return {**fail, "msg": f"gate0_receipt: mode must be sign, verify, mark or guard, got {mode!r}"}
        extra_vars = self._extra_vars()
        why_not = override_problem(protected_overrides(extra_vars))
        if mode == "guard":
            # Before any task reads what gate0 computed (the registered verdict, its facts): an extra var
            # of that name would be read instead, whatever this run observed.
            if why_not:
                return {**fail, "msg": f"gate0 FAIL on {task_vars.get('inventory_hostname')}: {why_not}"}
            missing = self._without_verdict(args.get("hosts"))
            if missing:
                return {**fail, "msg": f"gate0 FAIL: no verdict from host(s) {', '.join(map(str, missing))}"}
            return {**result, "changed": False, "msg": "no launch input sets what gate0 computes itself"}
        if why_not and mode == "verify":
            return {**fail, "msg": f"gate0 refuses to accept a gate0 record: {why_not}"}
        if why_not and mode == "mark":
            return {**fail, "msg": f"gate0 refuses to keep a session counter: {why_not}"}
        if why_not:
            # The gate still reports what it saw, but its result is not passed and carries no tag.
            fact = dict(args.get("gate0") or {})
            unsigned = sign({**fact, "passed": False}, "")
            unsigned["receipt"]["refused"] = why_not
            return {**result, "changed": False, "gate0": unsigned, "signed": False, "sessions": None,
                    "warnings": [f"gate0 refuses to sign its verdict: {why_not}; "
                                 "the result is marked not passed"]}
        kept = args.get("kept") if isinstance(args.get("kept"), Mapping) else {}
        if mode == "mark" and not args.get("clone_database"):
            return {**fail, "msg": "gate0_receipt: mode=mark needs clone_database (whose counter to keep)"}
        if mode == "mark" and args.get("sessions") is None:
            # Not read: the clone's entry is kept as null (nothing to sign, no secret needed).
            return {**result, "changed": False, "sessions": None,
                    "ansible_facts": {"gate0_sessions": {**kept, str(args.get("clone_database")): None}}}
        try:
            secret = self._secret(task_vars, extra_vars)
        except Exception as exc:  # an unreadable secret is a failure, never "no secret"
            return {**fail, "msg": f"gate0_receipt: reading {SECRET_VAR} (extra vars withheld): "
                                   f"{' '.join(str(exc).split())}"}
        why = secret_problem(secret)
        if why:
            return {**fail, "msg": f"gate0_receipt: {why}"}
        host = str(task_vars.get("inventory_hostname"))
        if mode == "mark":
            entry = args.get("sessions")
            if not isinstance(entry, Mapping):
                return {**fail, "msg": "gate0_receipt: sessions (the counter reading to keep) must be a dict"}
            try:
                signed_entry = mark(entry, secret, host)
            except TypeError as exc:
                return {**fail, "msg": f"gate0_receipt: the session counter cannot be signed: {exc}"}
            return {**result, "changed": False, "sessions": signed_entry, "ansible_facts": {
                "gate0_sessions": {**kept, str(args.get("clone_database")): signed_entry}}}
        if mode == "sign":
            fact = args.get("gate0")
            if not isinstance(fact, Mapping):
                return {**fail, "msg": "gate0_receipt: gate0 (the fact to sign) must be a dict"}
            try:
                signed = sign(fact, secret)
            except TypeError as exc:
                return {**fail, "msg": f"gate0_receipt: the gate0 fact cannot be signed: {exc}"}
            anchor = (signed.get("clone") or {}).get("sessions")
            # Kept with the verdict: a gate that failed is history for the next gate, never the anchor
            # a consumer's interval starts from (gate0_sessions_latest leaves it out).
            kept = {**anchor, "passed": signed.get("passed") is True} if isinstance(anchor, Mapping) else None
            return {**result, "changed": False, "gate0": signed, "signed": bool(secret),
                    "sessions": mark(kept, secret, host) if kept is not None else None}
        record = args.get("gate0")
        kept = args.get("sessions")
        kept = [k for k in (kept if isinstance(kept, list) else [kept]) if k is not None]
        problems = [sessions_problem(k, secret, host, str(args.get("clone_database") or "")) for k in kept]
        sessions = {"sessions": [k for k, p in zip(kept, problems, strict=True) if p is None],
                    "sessions_refused": [p for p in problems if p is not None]}
        if not secret:
            return {**result, **sessions, "changed": False, "gate0": record, "verified": False,
                    "fallback": True,
                    "msg": f"gate0 receipt NOT verified: {no_secret_reason()}; re-running the whole "
                           "clone gate instead of trusting the record (slower, never weaker)"}
        problem = verify_problem(record, secret, host,
                                 str(args.get("clone_database") or ""))
        if problem:
            return {**fail, "msg": f"gate0 receipt refused: {problem}", "verified": False, "fallback": False}
        return {**result, **sessions, "changed": False, "gate0": record, "verified": True, "fallback": False,
                "msg": f"gate0 receipt verified: run {record.get('run_id')} of {record.get('checked_at')}"}
