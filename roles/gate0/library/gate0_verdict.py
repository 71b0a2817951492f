# The work is done on the controller by roles/gate0/action_plugins/gate0_verdict.py; this file holds
# the documentation (the pattern of ansible-core's set_fact/assert).

DOCUMENTATION = r"""
---
module: gate0_verdict
short_description: Observe, judge, decide, sign, write both reports and set the gate0 facts (controller)
description:
  - First, before any connection, it refuses the run in one line (C(gate0 vars:) ...) when
    O(problems) is not empty, and, with O(install_psycopg2), installs the OS package
    C(python3-psycopg2) on the database host with C(ansible.builtin.package), through this task's
    connection and become settings (in check mode reported, not done).
  - The entry gate's observation and its one controller step. Runs the C(gate0_observe) action (the
    module C(library/gate0_observe.py); without a module payload when the database host is the
    controller) for the gates this run observes, bounded by C(gate0_observe_timeout) (past it the
    observation is stopped and each part fails with that one reason). Judges each gate with the judges
    of the collection C(gate0.core) (one function per check id), completes the check records by the stable
    ids (a gate left out by C(gate0_gates) is C(skipped), one left out by tags FAILs as not run),
    decides (clone objectives, production persistent seed), signs the gate0 fact with the
    C(gate0_receipt) action (the secret never passes through this task), and writes
    C(<dir>/gate0-<host>-<stamp>-<run id>.json) and C(.md) from one report dict.
  - Only then sets the C(gate0) fact and the C(gate0_sessions) fact (the kept entries with this clone's
    signed counter), in memory and in the fact cache, and, when the play has this one host, publishes
    the play's C(gate0) and C(gate0_hosts) as C(ansible.builtin.set_stats) does (for a play of several
    hosts the role's set_stats task does, once every host has its verdict). It fails, facts unchanged, when
    launch input sets what gate0 computes itself (the reports are written unsigned).
  - Never replaces an existing report (the first free name of C(<basename>-2), C(-3), ... up to 100).
    Every value of the password variables and of C(GATE0_RECEIPT_SECRET) is masked in both files.
  - It reads the role's variables itself, through the builders of C(gate0.core)'s C(gate0_options) (the
    modules' options, the judges' settings, the channels the report describes - the same builders
    the role's C(vars/main.yml) gives the consumers), and checks what it built and its two options
    against its argument spec; it reports changed only when it installed the package.
version_added: "1.0.0"
author: gate0 developers
options:
  run:
    description: This run's id, start (UTC, ISO 8601), file-name stamp and host (C(gate0_start)'s RV(run)).
    type: dict
    required: true
  run_gates:
    description: The gates this run observes (C(gate0_gates) narrowed by tags, C(gate0_start)'s
      RV(run_gates)); the others are not observed and their checks complete as skipped or not run.
    type: list
    elements: str
    required: true
  problems:
    description: The misconfigurations C(gate0_start) found (its RV(problems)); any refuses the run
      before any connection.
    type: list
    elements: str
    default: []
  install_psycopg2:
    description: Install C(python3-psycopg2) on the database host first (C(gate0_install_psycopg2)).
    type: bool
    default: false
extends_documentation_fragment: [gate0_controller]
"""

EXAMPLES = r"""
- name: Start the run
  gate0_start:
  register: __gate0_start

- name: Observe, judge, sign and write both reports
  gate0_verdict:
    run: "{{ __gate0_start.run }}"
    run_gates: "{{ __gate0_start.run_gates }}"
    problems: "{{ __gate0_start.problems }}"
    install_psycopg2: "{{ __gate0_start.install_psycopg2 }}"
  register: __gate0_verdict
"""

RETURN = r"""
ansible_facts:
  description: C(gate0) (the signed fact) and C(gate0_sessions) (the kept entries with this clone's
    entry), cacheable.
  type: dict
  returned: success
pass_msg:
  description: The PASS line (host, checks, skipped, report path).
  type: str
  returned: success
fail_msg:
  description: The FAIL message, a header line then every failed check on its own line, then the report.
  type: str
  returned: success
observed_ms:
  description: How long the observation took (C(gate0_observe)) and each part's own duration.
  type: dict
  returned: success
  sample: {gate0_observe: 700, fingerprint: 550, clone: 120, disk: 28}
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
