"""The gate0 role's filters: names for the rules and judges of the collection gate0.core.

Nothing is judged here: each filter is a function of gate0.core's module_utils (one rule, one
place), which library/'s modules, the action plugins and the tests import too.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.gate0.core.plugins.module_utils import (
    gate0_clone_checks,
    gate0_decisions,
    gate0_disk_checks,
    gate0_options,
    gate0_pg,
    gate0_prod_checks,
    gate0_verdict,
)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            # the channels, the modules' options, the judges' settings (vars/main.yml)
            "gate0_options": gate0_options.gate0_options,
            # validation and the gates a run observes (the gate0_start action's rules)
            "gate0_config_problems": gate0_verdict.gate0_config_problems,
            "gate0_clone_name_problems": gate0_pg.clone_name_problems,
            "gate0_selected_gates": gate0_verdict.gate0_selected_gates,
            "gate0_observed_part": gate0_verdict.gate0_observed_part,
            # the judges: observation + vars -> check records (one file per gate)
            "gate0_prod_checks": gate0_prod_checks.gate0_prod_checks,
            "gate0_prod_summary": gate0_prod_checks.gate0_prod_summary,
            "gate0_prod_report": gate0_prod_checks.gate0_prod_report,
            "gate0_prod_exit": gate0_prod_checks.gate0_prod_exit,
            "gate0_clone_checks": gate0_clone_checks.gate0_clone_checks,
            "gate0_clone_report": gate0_clone_checks.gate0_clone_report,
            # the clone's session counter kept between gate0 steps (the interval proof)
            "gate0_clone_sessions_anchor": gate0_clone_checks.gate0_clone_sessions_anchor,
            "gate0_sessions_anchor": gate0_clone_checks.gate0_sessions_anchor,
            "gate0_sessions_latest": gate0_clone_checks.gate0_sessions_latest,
            "gate0_disk_report": gate0_disk_checks.gate0_disk_report,
            "gate0_disk_checks": gate0_disk_checks.gate0_disk_checks,
            # the verdict and the consumers
            "gate0_complete_checks": gate0_verdict.gate0_complete_checks,
            "gate0_failed_checks": gate0_verdict.gate0_failed_checks,
            "gate0_fail_message": gate0_verdict.gate0_fail_message,
            "gate0_play_stats": gate0_verdict.gate0_play_stats,
            "gate0_require_problems": gate0_verdict.gate0_require_problems,
            "gate0_decisions": gate0_decisions.gate0_decisions,
        }
