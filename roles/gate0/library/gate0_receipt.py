# The work is done on the controller by roles/gate0/action_plugins/gate0_receipt.py; this file holds
# the documentation (the pattern of ansible-core's set_fact/assert).

DOCUMENTATION = r"""
---
module: gate0_receipt
short_description: Sign gate0's result as a receipt, or verify a gate0 record's receipt (controller only)
description:
  - O(mode=sign) returns the gate0 fact with a C(receipt) - run id, time, host, verdict, gates,
    production database and digest and a SHA-256 of the whole production section (what the exit
    fingerprint compares against), clone database and server identity, decisions - and its C(tag),
    HMAC-SHA256 over the receipt's canonical JSON (sorted keys, no whitespace, UTF-8). Without a
    secret the tag is null and consumers fall back to re-running the clone gate.
  - O(mode=verify) checks a gate0 record before a mutation, in this order, and fails with one line
    naming the first problem - forged (no receipt, or unsigned), forged or edited (the tag does not
    match, compared in constant time), edited (a field of the record differs from its signed receipt),
    replayed to another host, replayed to another clone (by name; the database oid and server are
    compared on the server by C(clone_sql)). Without a secret it returns RV(fallback)=true.
    With O(sessions), it also checks that each given entry of the C(gate0_sessions) fact (the clone's
    session counter as gate0 last read it - the cached fact, a workflow's artifacts) was signed for this
    host and this clone, and returns those that hold as RV(sessions) (RV(sessions_refused) says why
    the others do not).
  - O(mode=guard) fails with one line (C(gate0 FAIL on) the host, then the variables named) when
    extra vars set a variable named below, then (C(gate0 FAIL), the hosts named) when a host of
    O(hosts) holds no verdict of this run (the role's registered C(__gate0_verdict)), else returns ok;
    it needs no secret. C(playbooks/gate0.yml) runs it as its last task (an extra var
    C(__gate0_verdict) would be read in place of the role's registered verdict; the role's verdict
    step refuses the same launch input itself).
  - O(mode=mark) signs one C(gate0_sessions) entry (O(sessions), bound to the host; null when not
    read, kept as null), returns it, and sets the cacheable C(gate0_sessions) fact to O(kept) with
    this entry for O(clone_database).
    O(mode=sign) returns the entry of the gate's own reading as RV(sessions).
  - The secret is read on the controller only and never appears in the task's arguments or result.
    It never comes from launch input (extra vars - C(-e), AWX launch and survey variables, workflow
    artifacts - outrank everything in Ansible) - C(GATE0_RECEIPT_SECRET) in the controller's
    environment when it is set at all (the AWX credential injects it; set but empty means no secret,
    never "read the variable instead"), else the variable C(gate0_receipt_secret) from the inventory
    or a vault file, resolved with every extra var withheld (a template there that draws on an extra
    var fails). A secret shorter than 16 characters is refused.
  - Every mode refuses to run when extra vars set C(gate0_receipt_secret) or a variable gate0 computes
    itself (C(__gate0_*), C(gate0_required_record), C(gate0_required), C(gate0_sessions)), because
    extra vars outrank set_fact and register - one line naming the variable; O(mode=sign) then marks
    the result not passed and leaves it unsigned.
version_added: "1.0.0"
author: gate0 developers
options:
  mode:
    description: C(sign) (the gate0 role's verdict), C(verify) (the require entry point, the exit),
      C(mark) (keep a session counter reading) or C(guard) (refuse launch input that sets what gate0
      computes itself).
    type: str
    choices: [sign, verify, mark, guard]
    required: true
  gate0:
    description: The gate0 fact to sign, or the gate0 record to verify (not with O(mode=mark)).
    type: raw
  sessions:
    description:
      - A session counter reading to sign (O(mode=mark)), or the kept ones to verify (O(mode=verify),
        one entry or a list; null entries are left out).
    type: raw
  kept:
    description: With O(mode=mark), the C(gate0_sessions) entries kept so far (clone database to entry).
    type: dict
  clone_database:
    description: With O(mode=verify), the clone about to be mutated (C(gate0_clone_database)); with
      O(mode=mark), the clone whose entry is set.
    type: str
  hosts:
    description: With O(mode=guard), the play's hosts, each of which must hold this run's verdict
      (fails naming those that do not).
    type: list
    elements: str
extends_documentation_fragment: [gate0_controller]
"""

EXAMPLES = r"""
- name: Verify the receipt before a mutation
  gate0_receipt:
    mode: verify
    gate0: "{{ gate0_required_record }}"
    clone_database: "{{ gate0_clone_database }}"
  register: receipt_check
"""

RETURN = r"""
gate0:
  description: With O(mode=sign), the fact with its C(receipt); with O(mode=verify), the record verified.
  type: dict
  returned: success
  sample: {passed: true, run_id: 0b5c..., receipt: {version: 1, alg: HMAC-SHA256, tag: 9f2c...}}
  contains:
    receipt:
      description: The signed receipt (every key but C(tag) is covered by the tag).
      type: dict
      sample: {version: 1, alg: HMAC-SHA256, run_id: 0b5c..., host: lab, passed: true, tag: 9f2c...}
signed:
  description: With O(mode=sign), whether a secret was configured and the receipt carries a tag.
  type: bool
  returned: mode is sign
  sample: true
verified:
  description: With O(mode=verify), whether the receipt's tag and fields were verified.
  type: bool
  returned: mode is verify
  sample: true
fallback:
  description: With O(mode=verify), true when no secret is configured (the caller re-runs the clone gate).
  type: bool
  returned: mode is verify
  sample: false
sessions:
  description:
    - With O(mode=mark) and O(mode=sign), the signed C(gate0_sessions) entry (null when the gate read
      no counter); with O(mode=verify), the list of the given entries that hold.
  type: raw
  returned: success
  sample: {database: directus_gov_test_20261126, database_oid: 16384, sessions: 42, stats_reset: null,
           own_after: 1, at: "2026-11-26T10:00:00Z", by: "gate0 run 0b5c...", tag: 9f2c...}
sessions_refused:
  description: With O(mode=verify), why each refused entry was not accepted.
  type: list
  returned: mode is verify
  sample: [the kept session counter is not signed by gate0 for this host (edited, or another secret)]
msg:
  description: With O(mode=verify), one line saying what was verified, or what was refused and why;
    with O(mode=guard), why it refused, or that nothing was.
  type: str
  returned: mode is verify or guard
  sample: "gate0 receipt refused: forged: the gate0 record carries no receipt (hand-made, ...)"
"""
