# The work is done on the controller by roles/gate0/action_plugins/gate0_start.py; this file holds
# the documentation (the pattern of ansible-core's set_fact/assert).

DOCUMENTATION = r"""
---
module: gate0_start
short_description: Start a gate0 run, mark the gate0 fact not passed, list misconfigurations (controller only)
description:
  - The entry gate's first step, after the role's argument spec and before any connection. Starts the
    run (a random id, its UTC start and the reports' file-name stamp) and sets the C(gate0) fact - in
    memory and in the fact cache - to C(passed=false), C(finished=false) until this run's verdict, so
    a run that fails, is stopped or crashes never leaves an earlier run's PASS for a consumer.
  - Judges what the argument spec cannot express (ranges, the clone name rule, the production
    allowlist, a writable report directory), reading the role variables itself, and returns each
    problem as one line naming the variable and the value it got. It does not fail on them (a failed
    task's facts are dropped, and the mark must land); the role's next task, M(gate0_verdict), refuses
    the run on RV(problems) before it connects anywhere.
  - Takes no options; never reports changed.
version_added: "1.0.0"
author: gate0 developers
options: {}
extends_documentation_fragment: [gate0_controller]
"""

EXAMPLES = r"""
- name: Start the run; gate0 not passed until its verdict
  gate0_start:
  register: __gate0_start

- name: Observe, judge, sign and report; refuse a misconfiguration before any connection
  gate0_verdict:
    run: "{{ __gate0_start.run }}"
    run_gates: "{{ __gate0_start.run_gates }}"
    problems: "{{ __gate0_start.problems }}"
    install_psycopg2: "{{ __gate0_start.install_psycopg2 }}"
"""

RETURN = r"""
run:
  description: The run's id, start (UTC, ISO 8601), report-name stamp and host.
  type: dict
  returned: always
  sample: {id: 0f6c5e1a-..., started_at: "2026-06-02T12:00:00Z", stamp: 20260602T120000Z, host: db1}
run_gates:
  description: The gates this run observes - C(gate0_gates) narrowed by C(--tags)/C(--skip-tags) prod,
    clone, disk, as Ansible selects a task tagged with the gate's name.
  type: list
  elements: str
  returned: always
  sample: [prod, clone, disk]
problems:
  description: Every misconfiguration, one line each (empty when there is none).
  type: list
  elements: str
  returned: always
  sample: ["gate0_statement_timeout must be a number in 1..3600000, got '0'"]
install_psycopg2:
  description: C(gate0_install_psycopg2) as a boolean.
  type: bool
  returned: always
ansible_facts:
  description: The C(gate0) fact, not passed and not finished, carrying this run's id and start.
  type: dict
  returned: always
"""
