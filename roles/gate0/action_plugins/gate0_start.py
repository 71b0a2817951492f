"""Action plugin gate0_start: the entry gate's first step, on the controller, before any connection.

It starts the run (its id, start time and report-name stamp), marks this host's gate0 fact "not passed,
not finished" until the run's verdict (gate0.core's gate0_unfinished_fact: a run that fails, is stopped
or crashes never leaves an earlier run's PASS for a consumer to accept), and judges what the role's
argument spec cannot express (gate0.core's gate0_config_problems: ranges, the clone name rule, the
allowlist, a writable report directory). It never fails on a misconfiguration itself - a failed task's
facts are dropped, and the mark must land - but returns the problems, which the role's next task
(gate0_verdict) refuses before it connects anywhere.
Documentation: roles/gate0/library/gate0_start.py.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.gate0.core.plugins.module_utils import gate0_checks, gate0_options, gate0_verdict


class ActionModule(ActionBase):
    """Start the run, mark the fact, list the misconfigurations; never reports changed."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def _config(self, task_vars: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The variables gate0_config_problems judges, templated; a variable that cannot be is a problem."""
        v = gate0_options.TemplatedVars(task_vars, self._templar.template)
        cfg: dict[str, Any] = {}
        problems: list[str] = []
        for name in gate0_verdict.CONFIG_VARS:
            if name not in v:
                continue
            try:
                cfg[name] = v[name]
            except Exception as exc:  # an undefined or broken template: named, one line
                problems.append(f"{name} cannot be read: {gate0_checks.one_line(str(exc))}")
        return cfg, problems

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        now = datetime.datetime.now(datetime.UTC)
        host = str(task_vars.get("inventory_hostname"))
        run = {"id": str(uuid.uuid4()), "started_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "stamp": now.strftime("%Y%m%dT%H%M%SZ"), "host": host}
        cfg, problems = self._config(task_vars)
        problems += gate0_verdict.gate0_config_problems(cfg)
        gates = cfg.get("gate0_gates")
        run_gates = (gate0_verdict.gate0_selected_gates(
            gates, self._templar.template(task_vars.get("ansible_run_tags")),
            self._templar.template(task_vars.get("ansible_skip_tags"))) if isinstance(gates, list) else [])
        mark = gate0_verdict.gate0_unfinished_fact(run["id"], run["started_at"], host,
                                                   str(cfg.get("gate0_production_database")),
                                                   str(cfg.get("gate0_clone_database")))
        install = boolean(self._templar.template(task_vars.get("gate0_install_psycopg2", False)),
                          strict=False)
        return {**result, "changed": False, "ansible_facts": {"gate0": mark}, "run": run,
                "run_gates": run_gates, "problems": problems, "install_psycopg2": install}
