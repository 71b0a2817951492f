"""gate0's reports on the controller: one report dict -> `<dir>/<basename>.json` and `.md`, secrets masked.

Used by the gate0_verdict action plugin (roles/gate0/action_plugins/gate0_verdict.py). A report is
evidence: one never replaces another, and a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import jinja2

REDACTED = "********"
# The variables whose values never reach a report, and the controller's environment secrets (the
# AWX credential injects the receipt key there).
REDACT_VARS = (
    "gate0_production_login_password", "gate0_clone_login_password", "gate0_refresh_dba_login_password",
    "gate0_receipt_secret")
REDACT_ENV = ("GATE0_RECEIPT_SECRET",)
# The same host gated twice in one second (two jobs for two clones behind one inventory host) gets
# the first free name of <basename>-2, -3, ...
MAX_NAMES = 100


def redact(text: str, secrets: list[str]) -> str:
    """Replace every occurrence of every secret (longest first) with a fixed mask."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def report_json(report: dict[str, Any]) -> str:
    """The JSON report's text (README "Report")."""
    return json.dumps(report, indent=2, sort_keys=False, default=str) + "\n"


def _to_json(value: Any) -> str:
    """The report template's `to_json`: Ansible's filter of that name (json.dumps, ASCII-escaped)."""
    return json.dumps(value, default=str)


def _finalize(value: Any) -> Any:
    """As Ansible's templar: a null prints as nothing, not "None"."""
    return "" if value is None else value


# The report's Jinja2 options: Ansible's template settings (trim_blocks, the trailing newline kept; an
# undefined name is an error, `default` still applies; a null prints as nothing).
JINJA_OPTIONS: dict[str, Any] = {"trim_blocks": True, "keep_trailing_newline": True, "autoescape": False,
                                 "undefined": jinja2.StrictUndefined, "finalize": _finalize}
CACHE_KEY = hashlib.sha256(repr((sorted((k, getattr(v, "__name__", v)) for k, v in JINJA_OPTIONS.items()),
                                 jinja2.__version__)).encode()).hexdigest()[:12]


def _markdown_template(path: str, cache: jinja2.BytecodeCache | None) -> jinja2.Template:
    """The report template at `path`, with JINJA_OPTIONS and Ansible's `to_json`."""
    env = jinja2.Environment(**JINJA_OPTIONS, bytecode_cache=cache,  # noqa: S701 - Markdown, not HTML
                             loader=jinja2.FileSystemLoader(os.path.dirname(path)))
    env.filters["to_json"] = _to_json
    return env.get_template(os.path.basename(path))


def render_markdown(path: str, report: dict[str, Any], channels: dict[str, Any]) -> str:
    """The Markdown report: the template at `path` (the role's templates/report.md.j2) rendered from the
    report dict and the channels it describes, by Jinja2 itself - the report is plain data, and Ansible's
    templar (its lazy containers) cost ~0.1 s a run. Compiling the template costs ~50 ms more: Jinja2's
    own bytecode cache keeps it (FileSystemBytecodeCache's default, a directory of this user's, mode
    0700, keyed by the template's name and checksum); where that cannot be used, it is compiled."""
    try:
        # Jinja2 keys its cache by the template's name and text only, while the compiled code also
        # depends on the environment's options (finalize, trim_blocks...): its files are named with
        # CACHE_KEY, which changes with those options and with Jinja2's version.
        cache: jinja2.BytecodeCache | None = jinja2.FileSystemBytecodeCache(
            pattern=f"__gate0_report_{CACHE_KEY}_%s.cache")
    except (OSError, RuntimeError):  # no safe directory of this user's: compile every time
        cache = None
    try:
        template = _markdown_template(path, cache)
    except jinja2.TemplateNotFound:
        raise
    except OSError:  # the cache could not be read or written: compile without it
        if cache is None:
            raise
        template = _markdown_template(path, None)
    return template.render(report=report, channels=channels)


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


def write_reports(directory: str, basename: str, report: dict[str, Any], markdown: str,
                  secrets: list[str], mode: int = 0o640) -> dict[str, str]:
    """Both reports of one run, every secret masked in both; raises OSError. Returns ext -> path."""
    os.makedirs(directory, mode=0o750, exist_ok=True)
    texts = {"json": report_json(report), "md": markdown}
    return write_new(directory, basename, {e: redact(t, secrets) for e, t in texts.items()}, mode)
