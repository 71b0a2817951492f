#!/usr/bin/python
"""Ansible module gate0_observe: pg_fingerprint, clone_isolation and disk_headroom in one module call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gate0_observe
short_description: Run pg_fingerprint, clone_isolation and disk_headroom in one call
description:
  - The gate0 role's entry gate observes production, the clone and the disk with this one module call
    instead of three, which saves Ansible's fixed cost of two module runs (building, sending and
    starting a module, about 0.7 s each on the lab machine; see the README's Performance).
  - Each part is the same code as its own module (the shared code lives in the collection C(gate0.core)),
    takes the same options (O(fingerprint) are M(pg_fingerprint)'s, O(clone) are M(clone_isolation)'s, O(disk)
    are M(disk_headroom)'s, validated the same way, passwords C(no_log)), and returns the same result
    that module would have returned, with C(failed) and a one-line C(msg) when it failed.
  - Production is fingerprinted while the clone and then the disk are observed (two threads), each part
    over its own channel and connections. That is sound because no part counts the other's sessions;
    the fingerprint's connections (its transaction and its hash workers) are to the production database,
    which the clone's foreign-session check (backends and C(pg_stat_database.sessions) of the clone
    database) does not count, and the fingerprint lists only production's sessions. The one connection
    the fingerprint makes to the clone - its probe that the clone refuses the production credentials -
    waits until the clone part has ended, so the clone never sees it; the disk part, which connects to
    the clone too, starts only after the clone part ended.
  - A part that fails does not stop the next one; the module itself fails only when its options are
    invalid. An omitted part is not run and not returned.
version_added: "0.2.0"
author: gate0 maintainers
attributes:
  check_mode:
    support: full
    details: Each part supports check mode as its own module does (only the clone's rolled-back probe writes).
  diff_mode:
    support: none
options:
  fingerprint:
    description:
      - M(pg_fingerprint)'s options (C(ansible-doc -M library pg_fingerprint)).
      - Omitted, production is not fingerprinted.
    type: dict
  clone:
    description:
      - M(clone_isolation)'s options (C(ansible-doc -M library clone_isolation)).
      - Omitted, the clone is not observed.
    type: dict
  disk:
    description:
      - M(disk_headroom)'s options (C(ansible-doc -M library disk_headroom)).
      - Omitted, the disk is not measured.
    type: dict
notes:
  - The gate0 role runs it from its C(gate0_verdict) step (C(roles/gate0/tasks/observe.yml)), and with one
    part for the exit fingerprint (C(tasks/exit.yml)) and the consumers' clone re-check (C(tasks/clone.yml)).
"""

EXAMPLES = r"""
- name: Observe production, the clone and the disk in one module call
  gate0_observe:
    fingerprint:
      login_host: 127.0.0.1
      login_user: context_pack_readonly
      login_password: "{{ vault_readonly_password }}"
      login_db: directus
      allowed_databases: [directus]
      targets:
        inventory: {relation: governance_object_inventory, hash: true}
    clone:
      login_host: 127.0.0.1
      login_user: workflow_admin
      login_password: "{{ vault_clone_password }}"
      login_db: directus_gov_test_20260602
      clone_name_prefix: directus_gov_test_
      production_databases: [directus]
      profile: "{{ gate0_clone_profile }}"
    disk:
      login_host: 127.0.0.1
      login_user: workflow_admin
      login_password: "{{ vault_clone_password }}"
      login_db: directus_gov_test_20260602
      path: /var/lib/postgresql
      databases: [directus_gov_test_20260602, directus]
  register: observed
"""

RETURN = r"""
fingerprint:
  description: M(pg_fingerprint)'s result (C(failed), C(msg) and C(failed_stage) when it failed).
  type: dict
  returned: when O(fingerprint) is given
clone:
  description: M(clone_isolation)'s result (C(failed), C(msg) and C(refused) when it failed).
  type: dict
  returned: when O(clone) is given
disk:
  description: M(disk_headroom)'s result.
  type: dict
  returned: when O(disk) is given
duration_ms:
  description: Milliseconds for all the parts together.
  type: int
  returned: always
  sample: 850
changed:
  description: Always false.
  type: bool
  returned: always
  sample: false
"""

import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gate0.core.plugins.module_utils.gate0_observe import argument_spec, observe_all


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    start = time.monotonic()
    result: dict[str, Any] = {"changed": False, **observe_all(module.params)}
    result["duration_ms"] = int((time.monotonic() - start) * 1000)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
