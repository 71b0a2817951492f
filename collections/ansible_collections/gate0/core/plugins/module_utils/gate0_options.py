"""The two channels, the modules' options and the judges' settings, built once from the role's variables.

One builder per dict, from a mapping of variable name -> value: the role's `vars` through the gate0_options
filter (roles/gate0/vars/main.yml, for the consumers' tasks: clone_sql's module_defaults, the exit
fingerprint, the consumers' clone re-check, the refresh) or the task's variables in the gate0_verdict
action (the entry gate). Each value is converted as the role's templates did (`| int`, `| float`, `| bool`).
Pure functions: no connection, no file read (the rollback plan comes read, as `__gate0_rollback_plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean


class TemplatedVars(Mapping[str, Any]):
    """A task's variables (the `task_vars` an action plugin gets), each rendered when first read, as a
    template reading it would (`render`: the action's templar's `template`), then kept: the builders
    read some variables several times."""

    def __init__(self, task_vars: Mapping[str, Any], render: Callable[[Any], Any],
                 overrides: Mapping[str, Any] | None = None, rendered: dict[str, Any] | None = None) -> None:
        self._vars, self._render, self._overrides = task_vars, render, dict(overrides or {})
        self._rendered = rendered if rendered is not None else {}

    def __getitem__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        if name not in self._rendered:
            self._rendered[name] = self._render(self._vars[name])
        return self._rendered[name]

    def __contains__(self, name: object) -> bool:
        return name in self._overrides or name in self._vars

    def __iter__(self) -> Any:
        return iter({**dict.fromkeys(self._vars), **self._overrides})

    def __len__(self) -> int:
        return len(set(self._vars) | set(self._overrides))

    def with_vars(self, **overrides: Any) -> TemplatedVars:
        """The same variables with some set (as a task's `vars:` would)."""
        return TemplatedVars(self._vars, self._render, {**self._overrides, **overrides}, self._rendered)


def _int(value: Any) -> int:
    """As Jinja's `int` filter: a number or its text (a float's text truncated), anything else 0."""
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _float(value: Any) -> float:
    """As Jinja's `float` filter: anything that is not a number 0.0."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _bool(value: Any) -> bool:
    """As Ansible's `bool` filter."""
    return boolean(value, strict=False)


def _login(v: Mapping[str, Any], side: str) -> dict[str, Any]:
    """One channel's login (`side`: production or clone, the variables gate0_<side>_*) and timeouts."""
    return {
        "login_host": v[f"gate0_{side}_login_host"],
        "login_container": v[f"gate0_{side}_login_container"],
        "login_container_network": v["gate0_container_network"],
        "container_cli": v["gate0_container_cli"],
        "login_port": _int(v[f"gate0_{side}_login_port"]),
        "login_user": v[f"gate0_{side}_login_user"],
        "login_password": v[f"gate0_{side}_login_password"],
        "login_db": v[f"gate0_{side}_database"],
        "ssl_mode": v["gate0_ssl_mode"],
        "connect_timeout": _int(v["gate0_connect_timeout"]),
        "statement_timeout": _int(v["gate0_statement_timeout"]),
        "lock_timeout": _int(v["gate0_lock_timeout"]),
    }


def production_channel(v: Mapping[str, Any]) -> dict[str, Any]:
    """The production channel's login (the read-only role): the fingerprint, the refresh's room check."""
    return _login(v, "production")


def fingerprint_options(v: Mapping[str, Any]) -> dict[str, Any]:
    """pg_fingerprint's options: the production channel and what it reads. The entry gate compares the
    counts with `__gate0_fingerprint_baseline` when set; the exit fingerprint sets none."""
    return {
        **production_channel(v),
        "allowed_databases": v["gate0_production_allowed_databases"],
        "clone_database": v["gate0_clone_database"],
        "clone_login_host": v["gate0_clone_login_host"] or None,
        "clone_login_port": v["gate0_clone_login_port"] or None,
        "clone_login_container": v["gate0_clone_login_container"] or None,
        "targets": v["gate0_production_targets"],
        "baseline": v.get("__gate0_fingerprint_baseline", {}),
        "hash_chunk_rows": _int(v["gate0_production_hash_chunk_rows"]),
        "hash_workers": _int(v["gate0_production_hash_workers"]),
    }


def clone_channel(v: Mapping[str, Any]) -> dict[str, Any]:
    """The clone channel: its login (container included) and its name rule, passed whole to every
    consumer - the clone observation and the disk sizes, clone_sql (require, clone_apply, the refresh),
    the refresh's client tools."""
    return {
        **_login(v, "clone"),
        "clone_name_prefix": v["gate0_clone_name_prefix"],
        "clone_name_prefix_min_length": _int(v["gate0_clone_name_prefix_min_length"]),
        "clone_name_suffix_regex": v["gate0_clone_name_suffix_regex"],
        "production_databases": [v["gate0_production_database"], *v["gate0_production_allowed_databases"]],
    }


def clone_options(v: Mapping[str, Any]) -> dict[str, Any]:
    """clone_isolation's options: the clone channel, the profile, the app and production's login (for
    the refused attempt in both directions); `__gate0_clone_sections` narrows it (the re-check)."""
    return {
        **clone_channel(v),
        "profile": v["gate0_clone_profile"],
        "outbox_probe": _bool(v["gate0_clone_outbox_probe"]),
        "quiet_window": _float(v["gate0_clone_quiet_window"]),
        "app_role": v["gate0_clone_app_role"],
        "app_binding_source": v["gate0_clone_app_binding_source"],
        "app_binding_path": v["gate0_clone_app_env_file"],
        "app_binding_container": v["gate0_clone_app_container"],
        "app_binding_variable": v["gate0_clone_app_binding_variable"],
        "sections": v.get("__gate0_clone_sections", []),
        "production_login_host": v["gate0_production_login_host"],
        "production_login_port": _int(v["gate0_production_login_port"]),
        "production_login_container": v["gate0_production_login_container"],
        "production_role": v["gate0_production_login_user"],
    }


def disk_options(v: Mapping[str, Any]) -> dict[str, Any]:
    """disk_headroom's options: the clone channel (the database sizes), the path, the two databases."""
    return {**clone_channel(v), "path": v["gate0_disk_path"],
            "databases": [v["gate0_clone_database"], v["gate0_production_database"]]}


def sessions_kept(v: Mapping[str, Any]) -> dict[str, Any]:
    """The gate0_sessions fact (cached): clone database -> the last signed reading of its session counter."""
    kept = v.get("gate0_sessions")
    return dict(kept) if isinstance(kept, Mapping) else {}


def clone_settings(v: Mapping[str, Any]) -> dict[str, Any]:
    """What the clone judges (gate0.core's gate0_clone_checks) need besides the observation."""
    database = v["gate0_clone_database"]
    plan = dict(v["__gate0_rollback_plan"])
    return {
        "database": database,
        "prefix": v["gate0_clone_name_prefix"],
        "prefix_min_length": _int(v["gate0_clone_name_prefix_min_length"]),
        "suffix_regex": v["gate0_clone_name_suffix_regex"],
        "production_database": v["gate0_production_database"],
        "allowed_databases": v["gate0_production_allowed_databases"],
        # Set by the production gate in the same run (absent: names only, said in clone.not_production).
        "production_identity": v.get("__gate0_production_identity"),
        "profile": v["gate0_clone_profile"],
        # The clone's session counter as gate0 last read it (the last gate, refresh or consumer step):
        # the entry gate compares with it when it has one; the consumers' re-check requires it.
        "quiet_since": (v["__gate0_quiet_since"] if "__gate0_quiet_since" in v
                        else sessions_kept(v).get(database)),
        "quiet_required": v.get("__gate0_quiet_required", False),
        "quiet_own": _int(v.get("__gate0_quiet_own", 1)),
        "app_role": v["gate0_clone_app_role"],
        "outbox_probe": _bool(v["gate0_clone_outbox_probe"]),
        "rollback_plan": {**plan, "chars": len(str(plan.get("text") or ""))},
    }


def disk_settings(v: Mapping[str, Any]) -> dict[str, Any]:
    """The disk rules (gate0.core's gate0_disk_checks)."""
    return {
        "path": v["gate0_disk_path"],
        "clone_database": v["gate0_clone_database"],
        "production_database": v["gate0_production_database"],
        "min_free_bytes": _int(v["gate0_disk_min_free_bytes"]),
        "min_free_percent": _float(v["gate0_disk_min_free_percent"]),
        "clone_size_factor": _float(v["gate0_disk_clone_size_factor"]),
    }


def production_settings(v: Mapping[str, Any]) -> dict[str, Any]:
    """What the production judges (gate0.core's gate0_prod_checks) need besides the observation."""
    return {
        "database": v["gate0_production_database"],
        "allowed_databases": v["gate0_production_allowed_databases"],
        "clone_database": v["gate0_clone_database"],
        "baseline": v["gate0_production_baseline"],
        "targets": v["gate0_production_targets"],
    }


def seed_approvals(v: Mapping[str, Any]) -> dict[str, Any]:
    """The production persistent seed's approval rule (gate0.core's gate0_decisions)."""
    return {"target": v["gate0_persistent_seed_approvals_target"],
            "required": v["gate0_persistent_seed_approvals_required"],
            "targets": v["gate0_production_targets"]}


def report_channels(v: Mapping[str, Any]) -> dict[str, Any]:
    """The two channels the Markdown report describes (never a password)."""
    return {
        "production": {
            "login_user": v["gate0_production_login_user"],
            "login_host": v["gate0_production_login_host"],
            "login_port": v["gate0_production_login_port"],
            "database": v["gate0_production_database"],
            "allowed_databases": v["gate0_production_allowed_databases"],
            "statement_timeout": v["gate0_statement_timeout"],
            "lock_timeout": v["gate0_lock_timeout"],
        },
        "clone": {
            "login_user": v["gate0_clone_login_user"],
            "login_host": v["gate0_clone_login_host"],
            "login_port": v["gate0_clone_login_port"],
            "database": v["gate0_clone_database"],
            "name_prefix": v["gate0_clone_name_prefix"],
        },
    }


BUILDERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "production_channel": production_channel,
    "fingerprint_options": fingerprint_options,
    "clone_channel": clone_channel,
    "clone_options": clone_options,
    "disk_options": disk_options,
    "sessions_kept": sessions_kept,
    "clone_settings": clone_settings,
    "disk_settings": disk_settings,
    "production_settings": production_settings,
    "seed_approvals": seed_approvals,
    "report_channels": report_channels,
}


def gate0_options(v: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The filter: `{{ vars | gate0_options('clone_channel') }}`."""
    if kind not in BUILDERS:
        raise ValueError(f"gate0_options: no builder {kind!r} (one of {', '.join(BUILDERS)})")
    return BUILDERS[kind](v)
