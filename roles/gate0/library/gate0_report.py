# The work is done on the controller by roles/gate0/action_plugins/gate0_report.py; this file holds
# the documentation (the pattern of ansible-core's set_fact/assert).

DOCUMENTATION = r"""
---
module: gate0_report
short_description: Write gate0's JSON and Markdown reports on the controller
description:
  - Writes C(<dir>/<basename>.json) (the report dict as JSON) and C(<dir>/<basename>.md) (the given
    Markdown) atomically on the Ansible controller, creating O(dir) when missing.
  - Never replaces an existing report. When either name is taken (the same host gated twice in one
    second), both files get the first free name of C(<basename>-2), C(<basename>-3), ... (up to 100);
    RV(json_path) and RV(md_path) say which.
  - Every value of the variables named in O(redact_vars) is replaced by C(********) in both files
    before they are written, so a password can never reach a report.
  - Never reports changed; runs in check mode too (the reports are evidence of the run).
version_added: "1.0.0"
author: gate0 developers
options:
  dir:
    description: Directory for the reports, on the controller.
    type: str
    required: true
  basename:
    description: File name without extension, for example C(gate0-lab-20260602T120000Z).
    type: str
    required: true
  report:
    description: The report (its JSON layout is in the README, section "Report").
    type: dict
    required: true
  markdown:
    description: The Markdown report text.
    type: str
    required: true
  redact_vars:
    description:
      - Names of variables whose values must never appear in a report. The value of
        C(GATE0_RECEIPT_SECRET) in the controller's environment is masked too, always.
    type: list
    elements: str
    default: [gate0_production_login_password, gate0_clone_login_password, gate0_refresh_dba_login_password,
              gate0_receipt_secret]
  mode:
    description: File mode of both reports.
    type: str
    default: "0640"
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
"""

EXAMPLES = r"""
- name: Write the reports
  gate0_report:
    dir: /var/lib/gate0/reports
    basename: gate0-db1-20260602T120000Z
    report: "{{ {'verdict': 'PASS'} }}"
    markdown: "# Hard Gate 0\n"
"""

RETURN = r"""
json_path:
  description: Path of the JSON report.
  type: str
  returned: success
  sample: /var/lib/gate0/reports/gate0-db1-20260602T120000Z.json
md_path:
  description: Path of the Markdown report.
  type: str
  returned: success
  sample: /var/lib/gate0/reports/gate0-db1-20260602T120000Z.md
redacted:
  description: How many distinct secret values were masked.
  type: int
  returned: success
  sample: 2
"""
