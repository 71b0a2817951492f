"""Action plugin gate0_verdict: the entry gate's observation and its one controller step after it.

Its settings - each module's options, the judges' settings, the report's channels - are built from
the role's variables by gate0.core's gate0_options (the builders the role's vars/main.yml gives the
consumers too), then checked against ARGUMENT_SPEC. It runs the gate0_observe action (the module
library/gate0_observe.py, in a forked process when the database host is the controller) for the gates
this run observes, bounded by gate0_observe_timeout; from its result and those settings it judges
every gate (gate0.core's judges), completes the records by the stable ids, decides, signs the gate0
fact (the gate0_receipt action), writes the JSON and the Markdown report from one report dict, and
returns the signed gate0 and gate0_sessions facts. Documentation: roles/gate0/library/gate0_verdict.py.
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.gate0.core.plugins.module_utils import (
    gate0_checks,
    gate0_clone_checks,
    gate0_decisions,
    gate0_disk_checks,
    gate0_options,
    gate0_prod_checks,
    gate0_report,
    gate0_verdict,
)

GATES = ("prod", "clone", "disk")
# gate0_observe's part for each gate.
PARTS = {"prod": "fingerprint", "clone": "clone", "disk": "disk"}
DICT, LIST, STR = {"type": "dict"}, {"type": "list", "elements": "str"}, {"type": "str"}
# This run (gate0_start's result): its id, start, report-name stamp and host.
RUN_SPEC: dict[str, Any] = {"type": "dict", "required": True, "options": {
    name: {**STR, "required": True} for name in ("id", "started_at", "stamp", "host")}}
# The task's own arguments.
TASK_SPEC: dict[str, Any] = {
    "run_gates": {**LIST, "required": True},
    "run": RUN_SPEC,
    # gate0_start's judgement of the variables: any problem refuses the run before any connection.
    "problems": {**LIST, "default": []},
    "install_psycopg2": {"type": "bool", "default": False},
}
# Everything it works from: the task's arguments and the settings built from the role's variables.
ARGUMENT_SPEC: dict[str, Any] = {
    "observe": {"type": "dict", "default": {}, "options": {
        "fingerprint": DICT, "clone": DICT, "disk": DICT}},
    "observe_timeout": {"type": "int", "required": True},
    "sessions_kept": {"type": "dict", "default": {}},
    "run_gates": {**LIST, "required": True},
    "gates": {**LIST, "required": True},
    "check_ids": {**LIST, "required": True},
    "run": RUN_SPEC,
    "production": {"type": "dict", "required": True, "options": {
        "database": {**STR, "required": True},
        "allowed_databases": {**LIST, "required": True},
        "clone_database": {**STR, "required": True},
        "baseline": {"type": "dict", "default": {}},
        "targets": {"type": "dict", "default": {}},
    }},
    "clone": {"type": "dict", "required": True},
    "disk": {"type": "dict", "required": True},
    "seed_approvals": {"type": "dict", "required": True},
    "report": {"type": "dict", "required": True, "options": {
        "dir": {"type": "path", "required": True},
        "channels": {"type": "dict", "required": True},
        "template": {**STR, "default": "report.md.j2"},
        "mode": {**STR, "default": "0640"},
    }},
}


class ObserveTimeout(Exception):
    """gate0_observe_timeout passed before gate0_observe returned."""


def judge(args: dict[str, Any]) -> dict[str, Any]:
    """Every gate this run observed, judged: records plus each gate's fact and report sections."""
    observed, run_gates, prod_cfg = args["observed"] or {}, args["run_gates"], args["production"]
    out: dict[str, Any] = {"records": [], "production": None, "production_report": {}, "clone": None,
                           "clone_report": {}, "disk_report": {}}
    prod = gate0_verdict.gate0_observed_part(observed, "fingerprint")
    if "prod" in run_gates:
        out["records"] += gate0_prod_checks.gate0_prod_checks(
            prod, prod_cfg["allowed_databases"], prod_cfg["database"], prod_cfg["clone_database"],
            prod_cfg["baseline"], prod_cfg["targets"])
        out["production"] = gate0_prod_checks.gate0_prod_summary(prod, prod_cfg["database"])
        out["production_report"] = gate0_prod_checks.gate0_prod_report(prod, prod_cfg["baseline"])
    if "clone" in run_gates:
        clone = gate0_verdict.gate0_observed_part(observed, "clone")
        settings = dict(args["clone"])
        if "prod" in run_gates and not settings.get("production_identity"):
            # This run's production identity, for clone.not_production.
            settings["production_identity"] = prod.get("identity") or {}
        out["records"] += gate0_clone_checks.gate0_clone_checks(clone, settings)
        # The clone's session counter to keep: its final reading, less the sessions the disk part
        # opened on the clone after it (gate0's own).
        disk_opened = (gate0_verdict.gate0_observed_part(observed, "disk").get("sessions_opened")
                       or {}).get(settings["database"], 0)
        out["clone"] = {"database": settings["database"], "identity": clone.get("identity"),
                        "sessions": gate0_clone_checks.gate0_clone_sessions_anchor(
                            clone, disk_opened, args["now"], f"gate0 run {args['run']['id']}")}
        out["clone_report"] = gate0_clone_checks.gate0_clone_report(clone, settings)
    if "disk" in run_gates:
        disk = gate0_disk_checks.gate0_disk_report(gate0_verdict.gate0_observed_part(observed, "disk"),
                                                   args["disk"])
        out["records"] += gate0_disk_checks.gate0_disk_checks(disk)
        out["disk_report"] = disk
    return out


def unsigned_fact(args: dict[str, Any], judged: dict[str, Any], checks: list[dict[str, Any]],
                  now: str) -> dict[str, Any]:
    """The gate0 fact before its receipt (README "Facts and set_stats")."""
    prod_db = args["production"]["database"]
    production = judged["production"] or {"database": prod_db, "digest": None, "counts": {}}
    fact = {
        "passed": not gate0_verdict.gate0_failed_checks(checks),
        "run_id": args["run"]["id"],
        "checked_at": now,
        "host": args["run"]["host"],
        "gates": list(args["gates"]),
        "production": production,
        "clone": judged["clone"] or {"database": args["clone"]["database"], "identity": None},
        "checks": checks,
    }
    fact["decisions"] = gate0_decisions.gate0_decisions(checks, list(args["gates"]),
                                                        judged["production"] or {}, args["seed_approvals"])
    return fact


def report_dict(args: dict[str, Any], judged: dict[str, Any], fact: dict[str, Any]) -> dict[str, Any]:
    """The JSON report (README "Report"): the one dict both reports are written from."""
    return {
        "verdict": "PASS" if fact["passed"] else "FAIL",
        "run_id": args["run"]["id"],
        "started_at": args["run"]["started_at"],
        "finished_at": fact["checked_at"],
        "host": args["run"]["host"],
        "checks": fact["checks"],
        "production": {"database": args["production"]["database"], **judged["production_report"]},
        "clone": {"database": args["clone"]["database"], **judged["clone_report"]},
        "disk": {"path": args["disk"]["path"], **judged["disk_report"]},
        "decisions": fact["decisions"],
        "receipt": fact["receipt"],
    }


class ActionModule(ActionBase):
    """Judge, complete, decide, sign, write both reports; changed only by the opt-in psycopg2 install."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def _action(self, name: str, args: dict[str, Any]) -> Any:
        """The action plugin `name` for a copy of this task with `args` (same host, connection, vars)."""
        task = self._task.copy()
        task.args = args
        return self._shared_loader_obj.action_loader.get(
            name, task=task, connection=self._connection, play_context=self._play_context,
            loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)

    def _sign(self, fact: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        """The gate0_receipt action (mode=sign) on `fact`: its result."""
        return self._action("gate0_receipt", {"mode": "sign", "gate0": fact}).run(task_vars=task_vars)

    def _observe(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        """gate0_observe's result for the gates this run observes, within gate0_observe_timeout: past it
        the observation is stopped (in process it is killed; a module's process runs on, each statement
        bounded by the statement and lock timeouts) and every part fails with that one reason."""
        parts = {PARTS[g]: args["observe"][PARTS[g]] for g in args["run_gates"]
                 if args["observe"].get(PARTS[g]) is not None}
        if not parts:
            return {}
        action = self._action("gate0_observe", parts)
        seconds = args["observe_timeout"]

        def stop(signum: int, frame: Any) -> None:
            raise ObserveTimeout

        previous = signal.signal(signal.SIGALRM, stop)
        signal.alarm(seconds)
        try:
            return action.run(task_vars=task_vars)
        except ObserveTimeout:
            why = f"gate0_observe stopped after {seconds} s (gate0_observe_timeout): it had not returned"
            return {"failed": True, "msg": why}
        except AnsibleConnectionFailure:
            raise  # the host is unreachable: Ansible says so, and the fact stays "not passed"
        except AnsibleError as exc:
            return {"failed": True, "msg": f"gate0_observe failed: {gate0_checks.one_line(str(exc))}"}
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    @staticmethod
    def _secrets(v: gate0_options.TemplatedVars) -> list[str]:
        """The values of the password variables and environment secrets (undefined or empty: none)."""
        out: list[str] = []
        for name in gate0_report.REDACT_VARS:
            try:
                value = v[name]
            except Exception:  # noqa: S112 - an undefined password variable has nothing to redact
                continue
            if isinstance(value, str) and value:
                out.append(value)
        return out + [os.environ[n] for n in gate0_report.REDACT_ENV if os.environ.get(n)]

    def _markdown(self, report: dict[str, Any], channels: dict[str, Any], template: str) -> str:
        """The Markdown report, rendered from the report dict (plus the channels it describes)."""
        return gate0_report.render_markdown(self._find_needle("templates", template), report, channels)

    def _install_psycopg2(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        """gate0_install_psycopg2: ansible.builtin.package installs python3-psycopg2 on the database
        host, through this task's connection and become settings (check mode: reported, not done)."""
        action = self._action("ansible.builtin.package", {"name": "python3-psycopg2", "state": "present"})
        return action.run(task_vars=task_vars)

    def _settings(self, v: gate0_options.TemplatedVars) -> dict[str, Any]:
        """The settings, from the role's variables (gate0.core's gate0_options); raises on one that
        cannot be read (undefined, a broken template)."""
        run_gates = self._task.args.get("run_gates") or []
        # The entry gate compares production's counts with the baseline; the exit fingerprint does not.
        entry = v.with_vars(__gate0_fingerprint_baseline=v["gate0_production_baseline"])
        options = {"prod": lambda: gate0_options.fingerprint_options(entry),
                   "clone": lambda: gate0_options.clone_options(v),
                   "disk": lambda: gate0_options.disk_options(v)}
        return {
            "observe": {PARTS[g]: options[g]() for g in GATES if g in run_gates},
            "observe_timeout": v["gate0_observe_timeout"],
            "sessions_kept": gate0_options.sessions_kept(v),
            "gates": v["gate0_gates"],
            "check_ids": v["__gate0_check_ids"],
            "production": gate0_options.production_settings(v),
            "clone": gate0_options.clone_settings(v),
            "disk": gate0_options.disk_settings(v),
            "seed_approvals": gate0_options.seed_approvals(v),
            "report": {"dir": v["gate0_report_dir"], "channels": gate0_options.report_channels(v)},
        }

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        fail = {**result, "failed": True, "changed": False}
        checked = ArgumentSpecValidator(TASK_SPEC).validate(dict(self._task.args))
        if checked.error_messages:
            return {**fail, "msg": f"gate0_verdict: {' '.join(' '.join(checked.error_messages).split())}"}
        task_args = checked.validated_parameters
        problems = task_args.pop("problems")
        if problems:
            # One line; the trailing newline makes the YAML callback print it whole (block style).
            return {**fail, "msg": f"gate0 vars: {'; '.join(problems)}\n"}
        # The package install is the one change this task can make (on the database host, opt-in).
        changed = False
        if task_args.pop("install_psycopg2"):
            installed = self._install_psycopg2(task_vars)
            changed = fail["changed"] = bool(installed.get("changed"))
            if installed.get("unreachable"):  # as the install task said it: the host is unreachable
                return {**result, **installed}
            if installed.get("failed"):
                why = gate0_checks.one_line(str(installed.get("msg") or "failed"))
                return {**fail, "msg": f"gate0: installing python3-psycopg2 on the database host: {why}"}
        # The role's variables, each rendered once for the settings and the report's masking.
        v = gate0_options.TemplatedVars(task_vars, self._templar.template)
        try:
            settings = self._settings(v)
        except Exception as exc:  # an undefined or broken variable: named, one line
            why = gate0_checks.one_line(str(exc))
            return {**fail, "msg": f"gate0_verdict: reading the role's variables: {why}"}
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate({**settings, **task_args})
        if validated.error_messages:
            why = " ".join(" ".join(validated.error_messages).split())
            return {**fail, "msg": f"gate0_verdict: {why}"}
        args = validated.validated_parameters
        start = time.monotonic()
        args["observed"] = self._observe(args, task_vars)
        # How long the observation took (its task-level wall) and each part's own duration_ms.
        observed_ms = {"gate0_observe": int((time.monotonic() - start) * 1000),
                       **{part: got.get("duration_ms") for part, got in args["observed"].items()
                          if part in PARTS.values() and isinstance(got, dict)}}
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        judged = judge({**args, "now": now})
        checks = gate0_verdict.gate0_complete_checks(judged["records"], args["check_ids"], args["gates"],
                                                     args["run_gates"])
        signed = self._sign(unsigned_fact(args, judged, checks, now), task_vars)
        if signed.get("failed"):
            return {**result, **signed, "changed": changed}
        fact = signed["gate0"]
        report = report_dict(args, judged, fact)
        rep = args["report"]
        try:
            markdown = self._markdown(report, rep["channels"], rep["template"])
        except Exception as exc:  # a template that cannot be found or rendered: one line, no report
            return {**result, "failed": True, "changed": changed,
                    "msg": f"gate0_verdict: rendering the Markdown report ({rep['template']}): "
                           f"{gate0_checks.one_line(str(exc))}"}
        basename = f"gate0-{args['run']['host']}-{args['run']['stamp']}-{args['run']['id']}"
        try:
            paths = gate0_report.write_reports(os.path.normpath(rep["dir"]), basename, report, markdown,
                                               self._secrets(v), int(rep["mode"], 8))
        except OSError as exc:
            return {**result, "failed": True, "changed": changed,
                    "msg": f"gate0_verdict: writing the reports in {rep['dir']}: {exc.strerror or exc}"}
        refused = (fact.get("receipt") or {}).get("refused")
        if refused:
            # Launch input set what gate0 computes itself (extra vars outrank register and set_fact: it
            # would be read in place of this verdict). The reports say what the run saw, unsigned; the
            # task fails, so nothing after it reads a verdict and the fact stays "not passed".
            return {**result, "failed": True, "changed": changed, "json_path": paths["json"],
                    "md_path": paths["md"], "msg": f"gate0 FAIL on {args['run']['host']}: {refused}",
                    "warnings": list(signed.get("warnings") or [])}
        warnings = list(signed.get("warnings") or [])
        host, checks = args["run"]["host"], fact["checks"]
        skipped = sum(1 for c in checks if c.get("status") == "skipped")
        # Only now, the reports written and the receipt signed, do the facts (and the cache) take this
        # run's verdict; `gate0` is the public contract that mutation roles and AWX read. `gate0_sessions`:
        # the clone's session counter as this run last read it, signed (None: not read), so the next gate0
        # step on this clone proves nobody else connected since.
        facts = {"gate0": fact, "gate0_sessions": {**args["sessions_kept"],
                                                   args["clone"]["database"]: signed.get("sessions")}}
        # set_stats for the play (AWX hands it to the next workflow node): a play of this one host is
        # published here; a play of several by the role's set_stats task, once all hosts have a verdict.
        play_hosts = self._templar.template(task_vars.get("ansible_play_hosts_all"))
        if isinstance(play_hosts, list) and [str(h) for h in play_hosts] == [host]:
            result["ansible_stats"] = {"data": gate0_verdict.gate0_play_stats({host: fact}, [host]),
                                       "per_host": False, "aggregate": False}
        return {**result, "changed": changed, "ansible_facts": facts, "gate0": fact,
                "sessions": signed.get("sessions"), "json_path": paths["json"], "md_path": paths["md"],
                "disk": judged["disk_report"], "observed_ms": observed_ms,
                "pass_msg": f"gate0 PASS on {host}: {len(checks)} checks ({skipped} skipped); "
                            f"report {paths['md']}",
                "fail_msg": gate0_verdict.gate0_fail_message(checks, host, paths["md"]),
                **({"warnings": warnings} if warnings else {})}
