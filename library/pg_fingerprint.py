#!/usr/bin/python
"""Ansible module pg_fingerprint: a read-only fingerprint of a production PostgreSQL database."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_fingerprint
short_description: Fingerprint a production PostgreSQL database read-only and prove the role cannot write
description:
  - Refuses to connect unless O(login_db) is in O(allowed_databases) (and O(clone_database) is not), then
    checks C(current_database()) again after connecting (a pooler or service file may route elsewhere).
  - Uses B(one) C(REPEATABLE READ READ ONLY) transaction (one snapshot for every count and hash), with
    C(statement_timeout), C(lock_timeout), C(row_security=off) (row-level security raises an error
    instead of silently hiding rows) and pinned text formats set with C(SET LOCAL) and read back.
  - Counts every target, optionally hashes its content in ranges of blocks (order-independent, no
    single statement near the timeout) over up to O(hash_workers) connections that import the
    transaction's snapshot (C(pg_export_snapshot()), C(SET TRANSACTION SNAPSHOT)), each C(READ ONLY)
    with the same settings read back and the same read-only proof, and proven to have written nothing
    before its rollback; reads per-table write counters (C(n_tup_ins/upd/del),
    C(relfilenode)) outside the snapshot, and combines counts and hashes into one O(digest).
  - Proves the role cannot write (RV(read_only_proof)), lists idle-in-transaction sessions, and proves
    the clone unreachable (no C(CONNECT) privilege, and a connection attempt with the same credentials
    is refused; should it succeed it is closed at once without any query).
  - Before rolling back it proves the transaction wrote nothing (C(pg_current_xact_id_if_assigned()) is
    NULL). The transaction is always rolled back. The module never reports C(changed).
  - On failure it returns the one-line reason in C(msg), the stage in C(failed_stage), and every result
    gathered before the failure, so a caller can still judge the other checks.
version_added: "1.0.0"
author: gate0 developers
extends_documentation_fragment: [gate0_pg]
options:
  allowed_databases:
    description:
      - The only databases this channel may connect to. O(login_db) must be one of them; the clone never.
    type: list
    elements: str
    required: true
  clone_database:
    description:
      - The clone's database name. When set, it must not be in O(allowed_databases), the role must have no
        C(CONNECT) on it, and a connection attempt to it with these credentials must be refused.
    type: str
  clone_login_host:
    description: Server to try the refused clone connection on; default the production server.
    type: str
  clone_login_port:
    description: Port for the refused clone connection attempt; default O(login_port).
    type: int
  clone_login_container:
    description:
      - Container of the clone's server on the host that runs the module, for the refused clone
        connection attempt (its address by C(docker inspect), as O(login_container)); default the
        production server. A container that cannot be found fails the module naming it.
    type: str
  targets:
    description:
      - What to count, as data. Each key is a target name; each value has one of C(relation)
        (C(table) or C(schema.table), optionally with C(where), an SQL condition), C(sql) (a read-only
        query returning one number) or C(rule) (a number the module takes by its own rule; the one rule is
        C(idle_in_transaction), the count of RV(idle_in_transaction.sessions)).
      - C(hash) (bool) also hashes the relation's rows (a table, partitioned table or materialized
        view); C(volatile) (bool) counts and reports the target but leaves it out of the digest and the
        unchanged proof; C(tables) (list) names the tables whose write counters an C(sql) target
        depends on.
      - C(where) and C(sql) run inside the READ ONLY transaction and must be one expression or
        statement; text with a semicolon, a comment marker (C(--), C(/*)) or a NUL is refused before
        connecting. Relation names are quoted; names with a NUL or over 63 bytes are refused.
    type: dict
    required: true
  baseline:
    description: Expected counts, target name to number; compared and returned in RV(baseline).
    type: dict
    default: {}
  hash_chunk_rows:
    description:
      - Rows per content-hash statement to start with; adapted so that each statement stays under a tenth
        of O(statement_timeout).
    type: int
    default: 50000
  hash_workers:
    description:
      - Connections that hash the targets' rows at most, this transaction's included (1 to 8). Each
        other one opens its own read-only transaction on the same snapshot, after the idle sessions
        were listed; one is started per 100,000 rows to hash, so small targets use one connection.
      - Each costs the server one more connection and, while it hashes, one more core. A worker that
        fails (refused, cancelled, terminated, timed out) fails the fingerprint with one line naming
        the target and the worker.
    type: int
    default: 2
attributes:
  check_mode:
    support: full
    description: The module only reads; it does the same in check mode.
  diff_mode:
    support: none
notes:
  - The login role needs C(pg_read_all_stats) (or equivalent) to see other sessions' states; without it
    RV(idle_in_transaction.unknown) counts the sessions it could not see.
seealso:
  - name: The gate0 design contract
    description: Check ids and facts built from this module's results.
    link: https://www.postgresql.org/docs/current/functions-info.html
"""

EXAMPLES = r"""
- name: Take the production fingerprint
  pg_fingerprint:
    login_host: 10.0.0.5
    login_user: context_pack_readonly
    login_password: "{{ vault_ro_password }}"
    login_db: directus
    allowed_databases: [directus]
    clone_database: directus_gov_test_20260602
    targets:
      inventory: {relation: governance_object_inventory, hash: true}
      gov_emit: {relation: event_outbox, where: "event_type LIKE 'governance.%'"}
      idle_in_txn: {rule: idle_in_transaction, volatile: true}
    baseline: {inventory: 35, gov_emit: 0, idle_in_txn: 0}
  register: fingerprint
"""

RETURN = r"""
database:
  description: The database the fingerprint was taken of (C(current_database()) after connecting).
  type: str
  returned: after connecting
  sample: directus
identity:
  description: Which server answered (gate0_pg.server_identity).
  type: dict
  returned: after connecting
  sample: {database: directus, database_oid: 16390, address: 127.0.0.1, port: 5432, version: "15.8",
           version_num: 150008, system_identifier: null}
  contains:
    database: {description: current_database(), type: str, returned: always, sample: directus}
    database_oid: {description: The database's oid, type: int, returned: always, sample: 16390}
    address: {description: inet_server_addr() (null over a socket), type: str, returned: always,
              sample: 127.0.0.1}
    port: {description: inet_server_port(), type: int, returned: always, sample: 5432}
    version: {description: server_version, type: str, returned: always, sample: "15.8"}
    version_num: {description: server_version_num, type: int, returned: always, sample: 150008}
    system_identifier: {description: pg_control_system()'s identifier when readable, type: str,
                        returned: always, sample: "7310000000000000000"}
allowlist:
  description: The allowlist as enforced before and after connecting.
  type: dict
  returned: always
  sample: {allowed_databases: [directus], login_db: directus, current_database: directus, ok: true}
  contains:
    allowed_databases: {description: O(allowed_databases), type: list, returned: always, sample: [directus]}
    login_db: {description: O(login_db), type: str, returned: always, sample: directus}
    current_database: {description: current_database() after connecting, type: str,
                       returned: after connecting, sample: directus}
    ok: {description: Both checks passed, type: bool, returned: always, sample: true}
session:
  description: The transaction's settings as the server reports them, and the write proof.
  type: dict
  returned: after the transaction started
  sample: {settings: {transaction_read_only: "on", statement_timeout: 5s}, xid_assigned: null,
           wrote_nothing: true}
  contains:
    settings: {description: Settings read back after SET LOCAL, type: dict, returned: always,
               sample: {transaction_read_only: "on"}}
    xid_assigned: {description: pg_current_xact_id_if_assigned() before rollback (null = no write),
                   type: str, returned: when proven, sample: null}
    wrote_nothing: {description: True when the transaction was proven not to have written, type: bool,
                    returned: when proven, sample: true}
    rolled_back: {description: ROLLBACK was sent, type: bool, returned: when proven, sample: true}
    hash_workers:
      description: The hash workers started besides this transaction (none for one connection), each with
        its transaction's read-back C(settings_ok), C(read_only_proof_ok), C(xid_assigned), C(rolled_back).
      type: list
      elements: dict
      returned: when targets were hashed
      sample: [{worker: 2, settings_ok: true, read_only_proof_ok: true, ranges: 5, xid_assigned: null,
                rolled_back: true}]
read_only_proof:
  description: Every way the login role could write, each a finding; see gate0.core's gate0_readonly.py.
  type: dict
  returned: after the transaction started
  sample: {ok: true, role: context_pack_readonly, roles_checked: [context_pack_readonly, pg_read_all_stats],
           server_version_num: 150008,
           findings: [{check: superuser, ok: true, detail: no SUPERUSER attribute, versions: all}]}
  contains:
    ok: {description: Every finding ok, type: bool, returned: always, sample: true}
    role: {description: The login role, type: str, returned: always, sample: context_pack_readonly}
    roles_checked: {description: The role and every role it is a member of, type: list,
                    returned: always, sample: [context_pack_readonly]}
    server_version_num: {description: The version the checks were chosen for, type: int,
                         returned: always, sample: 150008}
    findings: {description: "Each {check, ok, detail, versions}", type: list, returned: always,
               sample: [{check: ownership, ok: true, detail: owns nothing, versions: all}]}
idle_in_transaction:
  description:
    - Idle-in-transaction sessions on the database other than ours, by one rule
      (gate0.core's gate0_fingerprint.py IDLE_IN_TRANSACTION_TOLERATED).
    - Tolerated are only sessions that logged in as the login role itself, have no transaction id, and
      only when RV(read_only_proof) found no way for that role to write; every other one is in
      RV(idle_in_transaction.sessions).
  type: dict
  returned: after the transaction started
  sample: {sessions: [], tolerated: [], unknown: 0}
  contains:
    sessions: {description: "Sessions that could hold or make writes: each {pid, user, application_name,
               client_addr, state, xact_start, idle_s}", type: list, returned: always, sample: []}
    tolerated: {description: "Sessions of the proven read-only login role without a transaction id
                (another gate's fingerprint), same keys", type: list, returned: always, sample: []}
    unknown: {description: Client sessions whose state this role cannot see, type: int,
              returned: always, sample: 0}
writers:
  description:
    - Other backends writing a non-volatile target while it is fingerprinted, seen at the start (before the
      first count) and at the end (after the counters) - the role's prod.targets_quiet judges it.
    - A write lock (RowExclusiveLock or stronger, held or awaited) on a target table or its partitions,
      and each table's write counters and relfilenode at both ends.
  type: dict
  returned: after the targets were resolved
  sample: {tables: [dot_tools], start: {locks: [], counters: {dot_tools: {relfilenode: 16528, n_tup_ins: 0,
           n_tup_upd: 0, n_tup_del: 0}}}, end: {locks: [], counters: {}}}
  contains:
    tables: {description: The non-volatile targets' tables, type: list, returned: always, sample: [dot_tools]}
    start: {description: "{locks: [{table, pid, mode, granted, user, application_name, state}], counters}",
            type: dict, returned: always, sample: {locks: [], counters: {}}}
    end: {description: The same at the end, type: dict, returned: when the fingerprint reached its end,
          sample: {locks: [], counters: {}}}
clone_unreachable:
  description: Evidence that this channel cannot reach the clone.
  type: dict
  returned: when O(clone_database) is set and the transaction started
  sample: {database: directus_gov_test_20260602, exists_here: true, has_connect: false,
           attempt: {refused: true, reason: "permission denied for database"}}
  contains:
    database: {description: O(clone_database), type: str, returned: always,
               sample: directus_gov_test_20260602}
    exists_here: {description: The clone exists on the production server, type: bool, returned: always,
                  sample: true}
    has_connect: {description: has_database_privilege(role, clone, CONNECT), type: bool, returned: always,
                  sample: false}
    attempt: {description: "The connection attempt: {refused, authorization, refused_by, reason, server};
                            authorization is true only for a refusal for who we are (no CONNECT, no
                            pg_hba entry, wrong password, unknown role), never for a network error",
              type: dict, returned: after the rollback,
              sample: {refused: true, authorization: true, refused_by: no CONNECT privilege,
                       reason: permission denied}}
counts:
  description: Target name to row count (or the number an C(sql) target returned).
  type: dict
  returned: success
  sample: {inventory: 35, system_issues: 200480}
hashes:
  description: Target name to content hash (C(<rows>:<64-bit sum of row hashes, hex>)), for C(hash) targets.
  type: dict
  returned: success
  sample: {inventory: "35:8c2f0a1b3d4e5f60"}
counters:
  description: Per-table write counters read outside the snapshot, by relation name.
  type: dict
  returned: success
  sample: {public.dot_tools: {n_tup_ins: 309, n_tup_upd: 0, n_tup_del: 0, relfilenode: 16500}}
  contains:
    n_tup_ins: {description: Tuples inserted since the last stats reset, type: int, returned: always,
                sample: 309}
    n_tup_upd: {description: Tuples updated, type: int, returned: always, sample: 0}
    n_tup_del: {description: Tuples deleted, type: int, returned: always, sample: 0}
    relfilenode: {description: pg_relation_filenode (changes on TRUNCATE/rewrite), type: int,
                  returned: always, sample: 16500}
target_tables:
  description: Target name to the tables whose counters prove it unchanged.
  type: dict
  returned: success
  sample: {gap: [governance_object_inventory, governance_scopes, governance_object_ownership]}
volatile:
  description: Targets left out of the digest and the unchanged proof.
  type: list
  returned: success
  sample: [idle_in_txn]
stats_reset:
  description: pg_stat_database.stats_reset of the database (a change means counters cannot prove anything).
  type: str
  returned: success
  sample: null
digest:
  description: sha256 over the database name and every non-volatile target's count and hash.
  type: str
  returned: success
  sample: 3f1c...e9
baseline:
  description: The comparison with O(baseline).
  type: dict
  returned: success
  sample: {given: true, matches: false, diff: [{target: own, expected: 0, observed: 1}]}
  contains:
    given: {description: A baseline was given, type: bool, returned: always, sample: true}
    matches: {description: Every baseline target equals its count, type: bool, returned: always, sample: true}
    diff: {description: "Each mismatch {target, expected, observed}", type: list, returned: always,
           sample: []}
taken_at:
  description: The snapshot's time (server now(), UTC).
  type: str
  returned: after the transaction started
  sample: "2026-06-02T10:00:00Z"
duration_ms:
  description: Milliseconds from before connecting to after the clone probe.
  type: int
  returned: always
  sample: 180
timings:
  description: Milliseconds per phase, the statement count and the longest single statement.
  type: dict
  returned: always
  sample: {connect_ms: 5, proof_ms: 60, targets_ms: 90, statements: 40, longest_statement_ms: 35,
           longest_statement: "hash system_issues"}
  contains:
    longest_statement_ms: {description: The longest single statement, type: int, returned: always, sample: 35}
    longest_statement: {description: What that statement was, type: str, returned: always, sample: hash x}
    statements: {description: Statements sent for targets, type: int, returned: always, sample: 40}
    hash_ms: {description: Hashing the targets' rows (all connections), type: int, returned: when hashed,
              sample: 210}
    hash_connections: {description: Connections that hashed (this one and the workers), type: int,
                       returned: when hashed, sample: 2}
    hash_methods:
      description: Per hashed target, how its rows were hashed - C(record) (column by column, with each
        column type's own extended hash function, when every column's type has one) or C(text) (the
        row's text form); both with the row's version (ctid, xmin).
      type: dict
      returned: when hashed
      sample: {system_issues: record, settings: text}
failed_stage:
  description: Where it failed (allowlist, options, connect, session, proof, targets, counters, write_proof,
    clone_probe).
  type: str
  returned: failure
  sample: targets
changed:
  description: Always false.
  type: bool
  returned: always
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gate0.core.plugins.module_utils import gate0_fingerprint as fingerprint
from ansible_collections.gate0.core.plugins.module_utils import gate0_pg as pg


def main() -> None:
    module = AnsibleModule(argument_spec=fingerprint.argument_spec(), supports_check_mode=True)
    if not pg.HAS_PSYCOPG2:
        module.fail_json(msg=pg.PSYCOPG2_HINT, exception=pg.PSYCOPG2_IMPORT_ERROR, failed_stage="options")
    result = fingerprint.observe(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
