"""Action plugin gate0_observe: the module library/gate0_observe.py, without a module payload when the
database host is the controller itself.

Over a local connection, with the controller's own Python (``ansible_python_interpreter`` is
``ansible_playbook_python``, or another name of it in the same directory), no become, no task
environment, and ``gate0_observe_in_process`` true (the role's default), the module's work (gate0.core's
``gate0_observe.observe_all``, the same code the module runs) runs in a child process forked from
Ansible's worker: its options validated against the module's own argument spec, its result passed back
as JSON (AnsibleModule's own encoder) with every ``no_log`` value masked, its refusals too, as
AnsibleModule does. It saves Ansible's cost of one module run (building the AnsiballZ payload, starting
a new Python, importing from the zip: 0.6-0.8 s on the lab machine). A child, not the worker itself: a
statement blocked inside libpq does not see Python's signals, so the task's ``timeout`` (the role's
``gate0_observe_timeout``) could not stop it; the worker waits for the child in Python and kills it
when the timeout fires (a module's process is not stopped by it: it runs on to its end, each statement
bounded by the statement and lock timeouts). A stopped run (SIGTERM, SIGINT) ends the child at once, as
it ends a module's process. The server ends a killed child's sessions when their statement returns: one
waiting on a lock, at the lock timeout. Any other case runs the module, as any module runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.json import Direction, get_module_decoder, get_module_encoder
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.gate0.core.plugins.module_utils import gate0_observe, gate0_pg

MODULE = "gate0_observe"


# The JSON encoder AnsibleModule writes a module's result with (the legacy profile every module gets):
# what it turns into JSON (sets, dates, bytes) the child returns alike, and what it refuses (a Decimal, an
# object) fails the observation as it fails the module - never passed on as its text.
MODULE_ENCODER = get_module_encoder("legacy", Direction.MODULE_TO_CONTROLLER)
# And the options as the module receives them: through the JSON Ansible sends a module (its origin tags,
# tuples and the like gone), never the controller's own objects.
ARGS_ENCODER = get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE)
ARGS_DECODER = get_module_decoder("legacy", Direction.CONTROLLER_TO_MODULE)


def observe_in_child(params: dict[str, Any]) -> dict[str, Any]:
    """observe_all(params) in a forked child; the parent waits in Python (interruptible) and kills the
    child on any exception that reaches it (the task's timeout among them)."""
    try:
        read_end, write_end = os.pipe()
    except OSError as exc:
        return {"failed": True, "msg": f"{MODULE}: could not start the observing process: {exc}"}
    try:
        pid = os.fork()
    except OSError as exc:  # the process limit, memory: one line, nothing observed
        os.close(read_end)
        os.close(write_end)
        return {"failed": True, "msg": f"{MODULE}: could not start the observing process: {exc}"}
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
            data = json.dumps(result, cls=MODULE_ENCODER).encode()
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


def validated_options(args: dict[str, Any]) -> tuple[dict[str, Any] | None, set[str], str | None]:
    """The options as AnsibleModule hands them to the module, the no_log values, and when the options are
    refused the one-line reason - masked, as AnsibleModule masks its fail_json message."""
    sent = json.loads(json.dumps(dict(args), cls=ARGS_ENCODER), cls=ARGS_DECODER)
    validated = ArgumentSpecValidator(gate0_observe.argument_spec()).validate(sent)
    no_log = validated._no_log_values
    if validated.error_messages:
        why = " ".join(" ".join(validated.error_messages).split())
        return None, no_log, remove_values(f"{MODULE}: {why}", no_log)
    return validated.validated_parameters, no_log, None


def masked(result: dict[str, Any], no_log: set[str]) -> dict[str, Any]:
    """The result with every no_log value masked, its top-level booleans and nulls kept, as AnsibleModule
    returns it."""
    kept = {k: v for k, v in result.items() if v is None or isinstance(v, bool)}
    return {**remove_values(result, no_log), **kept}


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
        if not boolean(self._templar.template(task_vars.get("gate0_observe_in_process", True)), strict=False):
            return False
        interpreter = self._templar.template(task_vars.get("ansible_python_interpreter", ""))
        return isinstance(interpreter, str) and same_python(interpreter, sys.executable)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        if not self._in_process(task_vars):
            return {**result, **self._execute_module(module_name=MODULE, module_args=self._task.args,
                                                     task_vars=task_vars)}
        params, no_log, refused = validated_options(self._task.args)
        if params is None:
            return {**result, "failed": True, "changed": False, "msg": refused}
        return {**result, **masked(observe_in_child(params), no_log)}
