"""The gate0 role's filters: names for the rules and judges of the collection gate0.core.

Nothing is judged here: each filter is a function of gate0.core's module_utils (one rule, one
place), which library/'s modules, the action plugins and the tests import too. Each module is imported
when one of its filters is first called: Ansible loads every filter plugin into each task's worker
process for any filter (`| int` included), and gate0.core's modules (psycopg2 with them) would cost
every such task ~0.1 s to import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

PACKAGE = "ansible_collections.gate0.core.plugins.module_utils"


def _function(module: str, name: str) -> Callable[..., Any]:
    """gate0.core's `module.name`, imported on its first call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"{PACKAGE}.{module}"), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"gate0.core's {module}.{name}"
    return call


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            # the channels, the modules' options, the judges' settings (vars/main.yml)
            "gate0_options": _function("gate0_options", "gate0_options"),
            # the clone name rule (the refresh, before it creates) and one part of gate0_observe's result
            "gate0_clone_name_problems": _function("gate0_pg", "clone_name_problems"),
            "gate0_observed_part": _function("gate0_verdict", "gate0_observed_part"),
            # the judges: observation + vars -> check records (one file per gate)
            "gate0_prod_exit": _function("gate0_prod_checks", "gate0_prod_exit"),
            "gate0_clone_checks": _function("gate0_clone_checks", "gate0_clone_checks"),
            # the clone's session counter kept between gate0 steps (the interval proof)
            "gate0_clone_sessions_anchor": _function("gate0_clone_checks", "gate0_clone_sessions_anchor"),
            "gate0_sessions_anchor": _function("gate0_clone_checks", "gate0_sessions_anchor"),
            "gate0_sessions_latest": _function("gate0_clone_checks", "gate0_sessions_latest"),
            "gate0_disk_report": _function("gate0_disk_checks", "gate0_disk_report"),
            # the verdict and the consumers
            "gate0_failed_checks": _function("gate0_verdict", "gate0_failed_checks"),
            "gate0_play_stats": _function("gate0_verdict", "gate0_play_stats"),
            "gate0_require_problems": _function("gate0_verdict", "gate0_require_problems"),
        }
