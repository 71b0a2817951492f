"""A stand-in for an AWX server that only answers what awxkit's `import_assets` asks, and records POSTs.

`awx import` is `ApiV2.import_assets(json.load(stdin))` (awxkit/cli/resource.py): OPTIONS on each list
endpoint (its POST fields), GET on list endpoints filtered by a natural key's string fields (lookups),
GET on detail endpoints (to build a found object's natural key), POST to create objects, POST {"id"}
to attach one to a relation (answered 204 No Content, as AWX does), POST of a survey spec. Nothing
else is answered: a request awxkit would make to a real server that this stand-in does not know fails
the test (`unexpected`).

The POST fields are those of AWX's own serializers (awx/api/serializers.py at ansible/awx e21dd0a093:
JobTemplateSerializer, WorkflowJobTemplateSerializer, WorkflowJobTemplateNodeSerializer,
CredentialTypeSerializer), read-only fields left out as AWX's OPTIONS leaves them out. `id` marks a
foreign key (awxkit resolves a natural key there), as in AWX's OPTIONS metadata.
"""

from __future__ import annotations

import datetime
import itertools
import json
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import requests

API = "/api/v2/"
# /api/v2/ as AWX lists it (awx/api/views/root.py, ApiVersionRootView): name -> path below /api/v2/.
# `import_assets` orders its work by every page class these name (awxkit's _dependent_resources).
ROOT = {
    name: name
    for name in (
        "ping",
        "instances",
        "instance_groups",
        "receptor_addresses",
        "config",
        "settings",
        "me",
        "dashboard",
        "organizations",
        "users",
        "execution_environments",
        "projects",
        "project_updates",
        "teams",
        "credentials",
        "credential_types",
        "credential_input_sources",
        "applications",
        "tokens",
        "metrics",
        "inventory_sources",
        "inventory_updates",
        "groups",
        "hosts",
        "host_metrics",
        "host_metric_summary_monthly",
        "job_templates",
        "jobs",
        "ad_hoc_commands",
        "system_job_templates",
        "system_jobs",
        "schedules",
        "roles",
        "notification_templates",
        "notifications",
        "labels",
        "unified_job_templates",
        "unified_jobs",
        "activity_stream",
        "workflow_job_templates",
        "workflow_jobs",
        "workflow_approvals",
        "workflow_job_template_nodes",
        "workflow_job_nodes",
        "mesh_visualizer",
        "bulk",
        "analytics",
    )
} | {"inventory": "inventories", "constructed_inventory": "constructed_inventories"}
# List endpoint -> the `type` of its objects.
TYPES = {
    "organizations": "organization",
    "projects": "project",
    "inventories": "inventory",
    "execution_environments": "execution_environment",
    "credential_types": "credential_type",
    "credentials": "credential",
    "job_templates": "job_template",
    "workflow_job_templates": "workflow_job_template",
    "workflow_job_template_nodes": "workflow_job_template_node",
    "labels": "label",
}
PLURAL = {v: k for k, v in TYPES.items()}
S, B, N, J, C, ID = "string", "boolean", "integer", "json", "choice", "id"
_ASK = (
    "scm_branch",
    "diff_mode",
    "variables",
    "limit",
    "tags",
    "skip_tags",
    "job_type",
    "verbosity",
    "inventory",
    "credential",
    "execution_environment",
    "labels",
    "forks",
    "job_slice_count",
    "timeout",
    "instance_groups",
)
POST_FIELDS: dict[str, dict[str, str]] = {
    "credential_type": {"name": S, "description": S, "kind": C, "inputs": J, "injectors": J},
    "job_template": {
        "name": S,
        "description": S,
        "job_type": C,
        "inventory": ID,
        "project": ID,
        "playbook": S,
        "scm_branch": S,
        "forks": N,
        "limit": S,
        "verbosity": C,
        "extra_vars": S,
        "job_tags": S,
        "force_handlers": B,
        "skip_tags": S,
        "start_at_task": S,
        "timeout": N,
        "use_fact_cache": B,
        "execution_environment": ID,
        "host_config_key": S,
        **{f"ask_{a}_on_launch": B for a in _ASK},
        "survey_enabled": B,
        "become_enabled": B,
        "diff_mode": B,
        "allow_simultaneous": B,
        "job_slice_count": N,
        "webhook_service": C,
        "webhook_credential": ID,
        "prevent_instance_group_fallback": B,
    },
    "workflow_job_template": {
        "name": S,
        "description": S,
        "extra_vars": S,
        "organization": ID,
        "survey_enabled": B,
        "allow_simultaneous": B,
        "ask_variables_on_launch": B,
        "inventory": ID,
        "limit": S,
        "scm_branch": S,
        "ask_inventory_on_launch": B,
        "ask_scm_branch_on_launch": B,
        "ask_limit_on_launch": B,
        "webhook_service": C,
        "webhook_credential": ID,
        "ask_labels_on_launch": B,
        "ask_skip_tags_on_launch": B,
        "ask_tags_on_launch": B,
        "skip_tags": S,
        "job_tags": S,
    },
    "workflow_job_template_node": {
        "extra_data": J,
        "inventory": ID,
        "scm_branch": S,
        "job_type": C,
        "job_tags": S,
        "skip_tags": S,
        "limit": S,
        "diff_mode": B,
        "verbosity": C,
        "execution_environment": ID,
        "forks": N,
        "job_slice_count": N,
        "timeout": N,
        "workflow_job_template": ID,
        "unified_job_template": ID,
        "all_parents_must_converge": B,
        "identifier": S,
    },
}
# Related endpoints of each type (AWX's serializers' get_related) that an import may post to.
# Both kinds of template share these.
TEMPLATE_SUBLISTS = (
    "labels",
    "survey_spec",
    "schedules",
    "notification_templates_started",
    "notification_templates_success",
    "notification_templates_error",
)
SUBLISTS = {
    "job_template": ("credentials", *TEMPLATE_SUBLISTS, "instance_groups"),
    "workflow_job_template": ("workflow_nodes", *TEMPLATE_SUBLISTS, "notification_templates_approvals"),
    "workflow_job_template_node": (
        "success_nodes",
        "failure_nodes",
        "always_nodes",
        "credentials",
        "labels",
        "instance_groups",
    ),
}
# What a relation holds (attach sets), and what a create set creates.
MEMBER_TYPE = {
    "credentials": "credential",
    "success_nodes": "workflow_job_template_node",
    "failure_nodes": "workflow_job_template_node",
    "always_nodes": "workflow_job_template_node",
    "labels": "label",
    "workflow_nodes": "workflow_job_template_node",
}
FOREIGN_KEYS = {
    "organization",
    "project",
    "inventory",
    "execution_environment",
    "credential_type",
    "workflow_job_template",
    "unified_job_template",
    "webhook_credential",
}


class _Request:
    def __init__(self, method: str, path: str) -> None:
        self.method, self.path_url = method.upper(), path


def _response(method: str, path: str, status: int, body: Any = None, allow: str = "") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = b"" if body is None else json.dumps(body).encode()
    r.encoding = "utf-8"
    r.headers["Content-Type"] = "application/json"
    if allow:
        r.headers["Allow"] = allow
    r.request = _Request(method, path)  # awxkit reads request.path_url and request.method
    r.elapsed = datetime.timedelta(0)
    return r


class FakeAwx:
    """Objects by URL; `posts`: every POST (path, payload); `unexpected`: requests it could not answer."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.members: dict[str, list[int]] = defaultdict(list)  # relation URL -> member ids
        self.surveys: dict[str, dict[str, Any]] = {}
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.unexpected: list[str] = []
        self._ids = itertools.count(1)

    # --- objects ---------------------------------------------------------------------------------

    def add(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Create an object as AWX would (a prerequisite, or the result of a POST): id, url, related links."""
        oid = next(self._ids)
        url = f"{API}{PLURAL[type_]}/{oid}/"
        related = {
            k: f"{API}{PLURAL[self.objects_type(v)]}/{v}/"
            for k, v in fields.items()
            if k in FOREIGN_KEYS and isinstance(v, int)
        }
        related.update({name: f"{url}{name}/" for name in SUBLISTS.get(type_, ())})
        obj = {"id": oid, "type": type_, "url": url, "related": related, **fields}
        self.objects[url] = obj
        return obj

    def objects_type(self, oid: int) -> str:
        return next(o["type"] for o in self.objects.values() if o["id"] == oid)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if o["type"] == type_]

    def by_id(self, oid: Any) -> dict[str, Any] | None:
        return next((o for o in self.objects.values() if o["id"] == oid), None)

    def posted(self, path_suffix: str) -> list[dict[str, Any]]:
        return [payload for path, payload in self.posts if path.endswith(path_suffix)]

    # --- the connection awxkit calls ---------------------------------------------------------------

    def options(self, endpoint: str) -> requests.Response:
        path = urlsplit(endpoint).path
        kind = self._list_type(path)
        if kind is None:
            return self._unexpected("OPTIONS", path)
        fields = POST_FIELDS.get(kind, {"name": S})
        body = {
            "actions": {"POST": {k: {"type": t} for k, t in fields.items()}},
            "search_fields": ["name", "description"],
        }
        return _response("OPTIONS", path, 200, body, allow="GET, POST, HEAD, OPTIONS")

    def get(
        self, endpoint: str, query_parameters: dict[str, Any] | None = None, headers: Any = None
    ) -> requests.Response:
        path = urlsplit(endpoint).path
        if path == API:
            return _response("GET", path, 200, {name: f"{API}{plural}/" for name, plural in ROOT.items()})
        if path in self.objects:
            return _response("GET", path, 200, self.objects[path])
        if path in self.surveys or path.endswith("/survey_spec/"):
            return _response("GET", path, 200, self.surveys.get(path, {}))
        items = self._list(path)
        if items is None:
            return self._unexpected("GET", path)
        want = {k: str(v) for k, v in (query_parameters or {}).items()}
        found = [o for o in items if all(str(o.get(k)) == v for k, v in want.items())]
        return _response(
            "GET", path, 200, {"count": len(found), "next": None, "previous": None, "results": found}
        )

    def post(
        self, endpoint: str, json: Any = None, data: Any = None, headers: Any = None
    ) -> requests.Response:
        path = urlsplit(endpoint).path
        payload = dict(json or {})
        self.posts.append((path, payload))
        if path.endswith("/survey_spec/"):
            self.surveys[path] = payload
            return _response("POST", path, 200, {})
        parent, _, relation = path.rstrip("/").rpartition("/")
        if relation in MEMBER_TYPE and f"{parent}/" in self.objects and relation != "workflow_nodes":
            return self._attach(path, relation, payload)
        kind = self._list_type(path)
        if kind not in POST_FIELDS:
            return self._unexpected("POST", path)
        problems = self._fk_problems(payload)
        if problems:
            return _response("POST", path, 400, {"detail": problems})
        fields = dict(payload)
        if kind == "job_template" and payload.get("project") is not None:
            # AWX derives a job template's (read-only) organization from its project.
            fields["organization"] = self.by_id(payload["project"]).get("organization")
        return _response("POST", path, 201, self.add(kind, **fields))

    def put(self, endpoint: str, json: Any = None) -> requests.Response:
        return self._unexpected("PUT", urlsplit(endpoint).path)

    def patch(self, endpoint: str, json: Any = None) -> requests.Response:
        return self._unexpected("PATCH", urlsplit(endpoint).path)

    def delete(self, endpoint: str) -> requests.Response:
        return self._unexpected("DELETE", urlsplit(endpoint).path)

    def head(self, endpoint: str) -> requests.Response:
        return self._unexpected("HEAD", urlsplit(endpoint).path)

    # --- helpers ---------------------------------------------------------------------------------

    def _unexpected(self, method: str, path: str) -> requests.Response:
        self.unexpected.append(f"{method} {path}")
        return _response(method, path, 404, {"detail": "not answered by the stand-in"})

    def _list_type(self, path: str) -> str | None:
        """The type of the objects a list endpoint holds (top-level or a relation of an object)."""
        parts = path[len(API) :].strip("/").split("/")
        if len(parts) == 1:
            return TYPES.get(parts[0], "other" if parts[0] in ROOT.values() else None)
        if len(parts) == 3 and f"{API}{parts[0]}/{parts[1]}/" in self.objects:
            return MEMBER_TYPE.get(parts[2])
        return None

    def _list(self, path: str) -> list[dict[str, Any]] | None:
        parts = path[len(API) :].strip("/").split("/")
        if len(parts) == 1 and (parts[0] in TYPES or parts[0] in ROOT.values()):
            return self.of_type(TYPES.get(parts[0], "")) if parts[0] in TYPES else []
        if len(parts) == 3 and f"{API}{parts[0]}/{parts[1]}/" in self.objects:
            if parts[2] == "workflow_nodes":
                return [
                    o
                    for o in self.of_type("workflow_job_template_node")
                    if o.get("workflow_job_template") == int(parts[1])
                ]
            return [self.by_id(i) for i in self.members[path]]
        return None

    def _attach(self, path: str, relation: str, payload: dict[str, Any]) -> requests.Response:
        member = self.by_id(payload.get("id"))
        if member is None or member["type"] != MEMBER_TYPE[relation]:
            return _response(
                "POST", path, 400, {"detail": f"no {MEMBER_TYPE[relation]} with id {payload.get('id')}"}
            )
        self.members[path].append(member["id"])
        return _response("POST", path, 204)

    def _fk_problems(self, payload: dict[str, Any]) -> list[str]:
        return [
            f"{k}: no object with id {v}"
            for k, v in payload.items()
            if k in FOREIGN_KEYS and v is not None and self.by_id(v) is None
        ]
