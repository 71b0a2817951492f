"""Test-only callback: run a fault command once, synchronously, when a chosen task starts.

tests/faultlib.py enables it (ANSIBLE_CALLBACKS_ENABLED=gate0_fault) with GATE0_FAULT_AT_TASK (a task
name prefix, e.g. "gate0 : clone |") and GATE0_FAULT_COMMAND (argv, space-separated, no shell): e.g.
stop the lab server after the production gate and before the clone gate, deterministically.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: gate0_fault
type: aggregate
short_description: Runs a fault command when a chosen task starts (gate0 tests only)
description: Runs $GATE0_FAULT_COMMAND once when the first task named $GATE0_FAULT_AT_TASK* starts.
requirements: [enable with ANSIBLE_CALLBACKS_ENABLED]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gate0_fault"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._done = False

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        prefix = os.environ.get("GATE0_FAULT_AT_TASK", "")
        if self._done or not prefix or not task.get_name().startswith(prefix):
            return
        self._done = True
        subprocess.run(shlex.split(os.environ["GATE0_FAULT_COMMAND"]), check=False, timeout=60,
                       capture_output=True)
