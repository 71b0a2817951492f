"""Cache plugin gate0_jsonfile: ansible-core's jsonfile fact cache that ignores an entry of the wrong shape.

ansible-core's jsonfile cache stores each host's facts as `{"__payload__": "<JSON of a dict>"}`; a file
holding valid JSON of another shape (a list, a string, a payload that is not a dict) makes every
playbook die with "Unexpected Exception" and a traceback. This plugin reads the same files, and an
entry of the wrong shape is ignored with one warning line naming the file: the host then has no
cached facts (for gate0: no cached verdict, which consumers refuse, never a PASS).
"""

from __future__ import annotations

DOCUMENTATION = """
    name: gate0_jsonfile
    short_description: JSON formatted files, an entry of the wrong shape ignored
    description:
        - ansible-core's jsonfile cache; a file that is valid JSON of the wrong shape is ignored with
          one warning instead of failing every playbook.
    author: gate0 maintainers
    options:
      _uri:
        required: True
        description:
          - Path in which the cache plugin will save the JSON files
        env:
          - name: ANSIBLE_CACHE_PLUGIN_CONNECTION
        ini:
          - key: fact_caching_connection
            section: defaults
        type: path
      _prefix:
        description: User defined prefix to use when creating the JSON files
        env:
          - name: ANSIBLE_CACHE_PLUGIN_PREFIX
        ini:
          - key: fact_caching_prefix
            section: defaults
      _timeout:
        default: 86400
        description: Expiration timeout for the cache plugin data
        env:
          - name: ANSIBLE_CACHE_PLUGIN_TIMEOUT
        ini:
          - key: fact_caching_timeout
            section: defaults
        type: integer
"""

import json
from typing import Any

from ansible.plugins.cache.jsonfile import CacheModule as JsonFileCache
from ansible.utils.display import Display

display = Display()
EMPTY = {"__payload__": "{}"}


def shape_problem(data: Any) -> str | None:
    """Why a loaded cache entry is not `{"__payload__": "<JSON object>"}` (or a plain dict of facts)."""
    if not isinstance(data, dict):
        return f"it holds a {type(data).__name__}, not a dict of facts"
    if "__payload__" not in data:
        return None
    payload = data["__payload__"]
    if not isinstance(payload, str):
        return f"its __payload__ is a {type(payload).__name__}, not JSON text"
    try:
        inner = json.loads(payload)
    except ValueError as exc:
        return f"its __payload__ is not JSON ({exc})"
    if not isinstance(inner, dict):
        return f"its __payload__ holds a {type(inner).__name__}, not a dict of facts"
    return None


class CacheModule(JsonFileCache):
    """jsonfile, with an entry of the wrong shape read as no facts (one warning line)."""

    def _load(self, filepath: str) -> object:
        data = super()._load(filepath)
        why = shape_problem(data)
        if why:
            display.warning(f"gate0: ignoring the fact cache entry {filepath}: {why}")
            return dict(EMPTY)
        return data
