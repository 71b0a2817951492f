"""Action plugin gate0_report: write the run's JSON and Markdown reports on the controller.

Runs entirely on the controller (no module is shipped to the host, ≈0 s instead of ≈0.45 s per
file), whatever the host's connection. Documentation: roles/gate0/library/gate0_report.py.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from ansible.plugins.action import ActionBase

REDACTED = "********"
DEFAULT_REDACT_VARS = (
    "gate0_production_login_password", "gate0_clone_login_password", "gate0_refresh_dba_login_password",
    "gate0_receipt_secret")
# Secrets held in the controller's environment (the AWX credential injects the receipt key there).
REDACT_ENV = ("GATE0_RECEIPT_SECRET",)


def _secrets(templar: Any, names: list[str]) -> list[str]:
    """The values of the password variables (undefined or empty ones are skipped)."""
    out: list[str] = []
    for name in names:
        try:
            value = templar.resolve_variable_expression(name)
        except Exception:  # noqa: S112 - an undefined password variable has nothing to redact
            continue
        if isinstance(value, str) and value:
            out.append(value)
    return out


def redact(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of every secret (longest first) with a fixed mask."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


# A report is evidence: one never replaces another. The same host gated twice in one second (two jobs
# for two clones behind one inventory host) gets the first free name of <basename>-2, -3, ...
MAX_NAMES = 100


def _claim(path: str, text: str, mode: int) -> bool:
    """Write `text` to `path` unless that name exists (False then); a reader never sees half of it.

    Written to a temporary file beside it, then hard-linked to the name (which fails on an existing
    name); where hard links are not supported, the name is reserved with O_EXCL and the file renamed
    over that reservation.
    """
    fd, tmp = tempfile.mkstemp(prefix=".gate0-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                return False
            os.replace(tmp, path)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_new(directory: str, basename: str, texts: dict[str, str], mode: int) -> dict[str, str]:
    """<basename>.<ext> for each ext of `texts`, under the first name free for all of them
    (<basename>, <basename>-2, ...): no existing file is replaced. Returns ext -> path."""
    for n in range(1, MAX_NAMES + 1):
        name = basename if n == 1 else f"{basename}-{n}"
        paths = {ext: os.path.join(directory, f"{name}.{ext}") for ext in texts}
        claimed: list[str] = []
        for ext, path in paths.items():
            if not _claim(path, texts[ext], mode):
                break
            claimed.append(path)
        else:
            return paths
        for path in claimed:  # a name half taken: give ours back, try the next
            os.unlink(path)
    raise FileExistsError(f"{basename} to {basename}-{MAX_NAMES} are all taken")


class ActionModule(ActionBase):
    """Write <dir>/<basename>.json and .md; never reports changed (evidence, not configuration)."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("dir", "basename", "report", "markdown", "redact_vars", "mode"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        directory = os.path.normpath(str(args.get("dir") or "")) if args.get("dir") else ""
        basename = str(args.get("basename") or "")
        if not directory or not basename or os.sep in basename:
            return {**result, "failed": True, "changed": False,
                    "msg": f"gate0_report: dir and a plain basename are required, got dir={directory!r} "
                           f"basename={basename!r}"}
        mode = int(str(args.get("mode") or "0640"), 8)
        secrets = _secrets(self._templar, list(args.get("redact_vars") or DEFAULT_REDACT_VARS))
        secrets += [os.environ[name] for name in REDACT_ENV if os.environ.get(name)]
        texts = {
            "json": json.dumps(args.get("report") or {}, indent=2, sort_keys=False, default=str) + "\n",
            "md": str(args.get("markdown") or ""),
        }
        try:
            os.makedirs(directory, mode=0o750, exist_ok=True)
            paths = write_new(directory, basename, {e: redact(t, secrets) for e, t in texts.items()}, mode)
        except OSError as exc:
            return {**result, "failed": True, "changed": False,
                    "msg": f"gate0_report: writing the reports in {directory}: {exc.strerror or exc}"}
        return {**result, "changed": False, "json_path": paths["json"], "md_path": paths["md"],
                "redacted": len(secrets)}
