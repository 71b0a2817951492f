# The work is done on the controller by roles/gate0/action_plugins/gate0_verdict.py; this file holds
# the documentation (the pattern of ansible-core's set_fact/assert).

DOCUMENTATION = r"""
---
module: gate0_verdict
short_description: Judge gate0's observation, decide, sign, and write both reports (controller only)
description:
  - The entry gate's one controller step after C(gate0_observe). Judges each gate this run observed
    with the judges of the collection C(gate0.core) (one function per check id), completes the check
    records by the stable ids (a gate left out by C(gate0_gates) is C(skipped), one left out by tags
    FAILs as not run), decides (clone objectives, production persistent seed), signs the gate0 fact
    with the C(gate0_receipt) action (the secret never passes through this task), and writes
    C(<dir>/gate0-<host>-<stamp>-<run id>.json) and C(.md) from one report dict.
  - Never replaces an existing report (the first free name of C(<basename>-2), C(-3), ... up to 100).
    Every value of the password variables and of C(GATE0_RECEIPT_SECRET) is masked in both files.
  - Its arguments are validated (C(validate_argument_spec)); it never reports changed.
version_added: "1.0.0"
author: gate0 developers
options:
  observed:
    description: The registered result of C(gate0_observe) (its parts C(fingerprint), C(clone), C(disk)).
    type: dict
    default: {}
  run_gates:
    description: The gates this run observed (C(gate0_gates) narrowed by tags).
    type: list
    elements: str
    required: true
  gates:
    description: C(gate0_gates); a gate not in it has its checks reported C(skipped).
    type: list
    elements: str
    required: true
  check_ids:
    description: The stable check ids, in report order.
    type: list
    elements: str
    required: true
  run:
    description: The run's id, start (UTC, ISO 8601), file-name stamp and host.
    type: dict
    required: true
  production:
    description: The production gate's settings (database, allowed_databases, clone_database, baseline,
      targets).
    type: dict
    required: true
  clone:
    description: The clone gate's settings (the role's C(__gate0_clone_settings)).
    type: dict
    required: true
  disk:
    description: The disk rules (the role's C(__gate0_disk_settings)).
    type: dict
    required: true
  seed_approvals:
    description: The production persistent seed's approval rule (target, required, targets).
    type: dict
    required: true
  report:
    description: Where the reports go (C(dir)), the channels the Markdown describes (C(channels)), the
      Markdown template (C(template), default C(report.md.j2)) and the files' mode (C(mode), default C(0640)).
    type: dict
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
"""

EXAMPLES = r"""
- name: Judge, decide, sign and write both reports
  gate0_verdict:
    observed: "{{ __gate0_observed }}"
    run_gates: [prod, clone, disk]
    gates: [prod, clone, disk]
    check_ids: "{{ __gate0_check_ids }}"
    run: {id: "{{ __gate0_run_id }}", started_at: "{{ __gate0_started_at }}", stamp: "{{ __gate0_stamp }}",
          host: "{{ inventory_hostname }}"}
    production: {database: directus, allowed_databases: [directus],
                 clone_database: directus_gov_test_20260602}
    clone: "{{ __gate0_clone_settings }}"
    disk: "{{ __gate0_disk_settings }}"
    seed_approvals: {target: governance_ownership, required: 210, targets: "{{ gate0_production_targets }}"}
    report: {dir: reports, channels: "{{ __gate0_report_channels }}"}
  register: __gate0_verdict
"""

RETURN = r"""
gate0:
  description: The signed gate0 fact (README "Facts and set_stats").
  type: dict
  returned: success
  sample: {passed: true, run_id: 0f6c..., checks: []}
sessions:
  description: The clone's session counter as this run last read it, signed for the C(gate0_sessions)
    fact (null when the clone gate did not read it).
  type: dict
  returned: success
  sample: {database: directus_gov_test_20260602, sessions: 42, at: "2026-06-02T12:00:00Z", tag: 9f2c...}
json_path:
  description: Path of the JSON report.
  type: str
  returned: success
  sample: /var/lib/gate0/reports/gate0-db1-20260602T120000Z-0f6c.json
md_path:
  description: Path of the Markdown report.
  type: str
  returned: success
  sample: /var/lib/gate0/reports/gate0-db1-20260602T120000Z-0f6c.md
disk:
  description: The report's C(disk) section (filesystem, sizes, each rule, the human line).
  type: dict
  returned: success
  sample: {free_bytes: 1000000000, human: "9.3G free"}
"""
