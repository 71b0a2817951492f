"""Action plugin gate0_observe: the module library/gate0_observe.py, without a module payload when the
database host is the controller itself.

Over a local connection, with the controller's own Python (``ansible_python_interpreter`` is
``ansible_playbook_python``, or another name of it in the same directory), no become, no task
environment, and ``gate0_observe_in_process`` true (the role's default), the module's work (gate0.core's
``gate0_observe.observe_all``, the same code the module runs) runs in a child process forked from
Ansible's worker: its options validated against the module's own argument spec, its result passed back
as JSON with every ``no_log`` value masked, as AnsibleModule does. It saves Ansible's cost of one module
run (building the AnsiballZ payload, starting a new Python, importing from the zip: 0.6-0.8 s on the
lab machine). A child, not the worker itself: a statement blocked inside libpq does not see Python's
signals, so the task's ``timeout`` (the role's ``gate0_observe_timeout``) could not stop it; the worker
waits for the child in Python and kills it when the timeout fires, as Ansible stops a module. Any
other case runs the module, as any module runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.gate0.core.plugins.module_utils import gate0_observe, gate0_pg

MODULE = "gate0_observe"


def _plain(value: Any) -> Any:
    """What json cannot encode by itself, as AnsibleModule's JSON does: sets as lists, the rest as text."""
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def observe_in_child(params: dict[str, Any]) -> dict[str, Any]:
    """observe_all(params) in a forked child; the parent waits in Python (interruptible) and kills the
    child on any exception that reaches it (the task's timeout among them)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into Ansible's worker
        # A stop (the worker passes SIGTERM or SIGINT to its process group) ends the child at once, as it
        # ends a module's process: the worker's own handler, inherited by the fork, is Python code that
        # could not run while a statement waits inside libpq (on a lock: up to the lock timeout).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        code = 0
        try:
            os.close(read_end)
            start = time.monotonic()
            result: dict[str, Any] = {"changed": False, **gate0_observe.observe_all(params)}
            result["duration_ms"] = int((time.monotonic() - start) * 1000)
            data = json.dumps(result, default=_plain).encode()
        except BaseException as exc:  # one line back to the parent, never a traceback
            why = " ".join(str(exc).split())
            failure = {"failed": True, "msg": f"{MODULE}: unexpected {type(exc).__name__}: {why}"}
            data = json.dumps(failure).encode()
            code = 1
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view):]
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    try:
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
        os.waitpid(pid, 0)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(read_end)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"failed": True, "msg": f"{MODULE}: the observing process ended without a result"}


def same_python(interpreter: str, executable: str) -> bool:
    """The same Python with the same packages: one binary, named from the same directory (a venv's
    bin/python3 and bin/python are one; the system's python3 is another, with other packages)."""
    a, b = os.path.abspath(interpreter), os.path.abspath(executable)
    return os.path.dirname(a) == os.path.dirname(b) and os.path.realpath(a) == os.path.realpath(b)


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def _in_process(self, task_vars: dict[str, Any]) -> bool:
        """The controller is the database host and runs the module as it would run it itself."""
        if not gate0_pg.HAS_PSYCOPG2 or getattr(self._connection, "transport", None) != "local":
            return False
        if self._play_context.become or any(self._task.environment or []):
            return False
        wanted = self._templar.template(task_vars.get("gate0_observe_in_process", True))
        if not (wanted if isinstance(wanted, bool) else str(wanted).lower() in ("1", "true", "yes", "on")):
            return False
        interpreter = self._templar.template(task_vars.get("ansible_python_interpreter", ""))
        return isinstance(interpreter, str) and same_python(interpreter, sys.executable)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        if not self._in_process(task_vars):
            return {**result, **self._execute_module(module_name=MODULE, module_args=self._task.args,
                                                     task_vars=task_vars)}
        validated = ArgumentSpecValidator(gate0_observe.argument_spec()).validate(dict(self._task.args))
        if validated.error_messages:
            return {**result, "failed": True, "changed": False,
                    "msg": f"{MODULE}: {' '.join(' '.join(validated.error_messages).split())}"}
        observed = observe_in_child(validated.validated_parameters)
        return {**result, **remove_values(observed, validated._no_log_values)}
