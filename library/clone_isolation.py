#!/usr/bin/python
"""Ansible module clone_isolation: observe a clone's isolation facts over the clone channel."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: clone_isolation
short_description: Observe whether a PostgreSQL clone is isolated (sessions, dispatch, seed state)
description:
  - Connects once to the clone database over the clone channel (the clone's admin login) and returns
    facts for the gate0 clone checks; it judges nothing (the gate0 role's filters do).
  - Before connecting it refuses a clone name that is empty, is a production name, or does not start
    with exactly O(clone_name_prefix) (a literal prefix; C(_) and C(%) are plain characters).
  - Every query except the outbox probe runs in one C(REPEATABLE READ READ ONLY) transaction with
    statement and lock timeouts; each section runs under its own savepoint, so one failing section
    (a missing table, a timeout) is reported in RV(errors) and the others are still observed.
  - The outbox probe runs in a separate read-write transaction that first runs a server-side guard
    (it aborts unless C(current_database()) is the clone and starts with the prefix), then inserts
    one outbox row with an inactive event type under a savepoint, records how the insert ended,
    records whether any transaction id was assigned, and is always rolled back.
  - All table, column, trigger and marker names come from O(profile) (data, not code).
version_added: "0.1.0"
author: gate0 maintainers
extends_documentation_fragment: [gate0_pg, gate0_pg.clone_name]
attributes:
  check_mode:
    support: full
    details:
      - The module never changes anything, in either mode, so check mode runs exactly the same
        observations, the rolled-back outbox probe included. The probe is evidence, not a change;
        skipping it under C(--check) would change the verdict of C(clone.outbox_guard).
  diff_mode:
    support: none
options:
  clone_name_prefix:
    description:
      - The clone naming rule as a literal prefix (for example C(directus_gov_test_)).
      - O(login_db) must start with it and be longer than it.
    type: str
    required: true
  profile:
    description:
      - Where the clone's state lives (see the gate0 role's C(gate0_clone_profile) for the layout).
      - Keys used here are C(sessions.ignore_backend_types), C(dispatch.registry),
        C(dispatch.registry_key), C(dispatch.registry_details), C(dispatch.registry_scope),
        C(dispatch.registry_active), C(dispatch.outbound) (name to C(relation), C(active), C(label),
        C(details), C(parent)),
        C(outbox.relation), C(outbox.trigger), C(outbox.function), C(outbox.type_column),
        C(outbox.probe_event_type), C(lease.relation), C(seed.relation), C(seed.marker_column),
        C(seed.marker), C(coverage.gap_relation), C(coverage.cell_relations), C(candidates.counts),
        C(candidates.cursor.relation), C(candidates.cursor.fields). Expected numbers are ignored here.
      - C(outbox), C(lease), C(seed), C(coverage) and C(candidates) may be left out (absent or null);
        they are not observed (listed in RV(left_out)); the gate0 role reports their checks skipped.
      - A relation or column the profile names that the clone lacks is the section's error, naming
        the profile key (RV(errors)).
    type: dict
    required: true
  outbox_probe:
    description: Run the rolled-back probe insert into the outbox (after the server-side guard).
    type: bool
    default: true
  quiet_window:
    description:
      - Seconds to wait, connection held, between the first reading and the final re-check (sessions,
        dispatch, leases, the session counter), so that the evidence covers at least this window
        (an app that connects every N seconds is seen with a window over N). 0 re-checks at once.
    type: float
    default: 0
  app_role:
    description: The application's database role; its CONNECT privilege on the clone is read.
    type: str
    default: ''
  app_binding_source:
    description:
      - Where to read the application's own database binding.
      - C(env_file) reads O(app_binding_path) on the host running the module; C(docker) reads the
        environment and state of O(app_binding_container) with C(docker inspect) (the CLI
        O(container_cli)) on that host, and the databases every live container there binds
        (C(docker ps); C(DB_DATABASE), C(PGDATABASE), C(DATABASE_URL) and O(app_binding_variable);
        only database names, never a URL's password); C(none) reads nothing.
    type: str
    choices: [env_file, docker, none]
    default: none
  app_binding_path:
    description: The env file holding the binding when O(app_binding_source=env_file).
    type: path
  app_binding_container:
    description: The application's container when O(app_binding_source=docker).
    type: str
  app_binding_variable:
    description: The variable that names the application's database.
    type: str
    default: DB_DATABASE
  sections:
    description:
      - Observe only these sections (empty for all). The gate0 require entry point re-checks
        C(sessions), C(dispatch), C(lease), C(reach) and C(outbound) right before a mutation; a
        section left out is not queried and is reported in RV(errors) as not observed. The probe
        runs only with C(outbox).
    type: list
    elements: str
    choices: [sessions, app, dispatch, outbox, lease, seed, coverage, candidates, reach, outbound]
    default: []
  production_login_host:
    description:
      - Production's server, when it is not the clone's. The C(reach) section then also tries
        production's database there with the clone channel's credentials (it must be refused).
    type: str
    default: ''
  production_login_port:
    description: Production's port (default O(login_port)).
    type: int
  production_login_container:
    description: Production's container on the host running the module, when it is not the clone's.
    type: str
    default: ''
  production_role:
    description:
      - The production channel's read-only role. Membership of the clone login in it is a path to
        production (C(reach) section).
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Observe the clone
  clone_isolation:
    login_host: 127.0.0.1
    login_port: 5432
    login_user: workflow_admin
    login_password: "{{ gate0_clone_login_password }}"
    login_db: directus_gov_test_20260602
    clone_name_prefix: directus_gov_test_
    production_databases: [directus]
    profile: "{{ gate0_clone_profile }}"
    app_role: directus
    app_binding_source: env_file
    app_binding_path: /srv/directus/.env
  register: clone_facts
"""

RETURN = r"""
identity:
  description: Who answered (see module_utils gate0_pg.server_identity).
  type: dict
  returned: success
  sample: {database: directus_gov_test_20260602, database_oid: 16390, address: 127.0.0.1, port: 5432,
           version: "15.8", version_num: 150008, system_identifier: "7441000000000000000"}
  contains:
    database: {description: current_database(), type: str}
    database_oid: {description: The database's oid, type: int}
    address: {description: inet_server_addr() (null over a socket), type: str}
    port: {description: inet_server_port(), type: int}
    version: {description: server_version, type: str}
    version_num: {description: server_version_num, type: int}
    system_identifier: {description: The cluster's system identifier (null when not readable), type: str}
sessions:
  description: Every backend on the clone database but our own, and what the login can see.
  type: dict
  returned: success
  sample: {login: workflow_admin, can_see_all: true, foreign: [], ignored: [], prepared: [], slots: []}
  contains:
    login: {description: The login's role, type: str}
    can_see_all:
      description: The login may read other sessions' details (superuser or pg_read_all_stats).
      type: bool
    foreign:
      description:
        - Other backends on the clone (pid, user, application, client_addr, client_port, state, since,
          backend_type, visible).
      type: list
      elements: dict
    ignored:
      description: Backends whose type the profile ignores (listed, not judged).
      type: list
      elements: dict
    prepared:
      description: Prepared transactions on the clone (gid, owner, prepared).
      type: list
      elements: dict
    slots:
      description: Replication slots on the clone (slot_name, plugin, slot_type, active, active_pid).
      type: list
      elements: dict
app:
  description: Evidence of the application's binding.
  type: dict
  returned: success
  sample: {role: directus, role_exists: true, superuser: false, connect_on_clone: false,
           binding: {source: env_file, where: /srv/.env, variable: DB_DATABASE, value: directus, error: null}}
  contains:
    role: {description: The app role, type: str}
    role_exists: {description: The role exists on the server, type: bool}
    superuser: {description: The role is a superuser (null when it does not exist), type: bool}
    connect_on_clone: {description: has_database_privilege(role, clone, CONNECT), type: bool}
    binding:
      description: The app's own binding as read from its source.
      type: dict
      contains:
        source: {description: env_file, docker or none, type: str}
        where: {description: The file or container read, type: str}
        variable: {description: The variable read, type: str}
        value: {description: Its value (null when absent), type: str}
        error: {description: Why it could not be read (null when read), type: str}
        state:
          description: The app container's state (running, exited, restarting, paused, ...).
          type: str
          returned: with source docker, when the container was inspected
        containers:
          description: Every live container on the host with the databases its environment binds.
          type: list
          elements: dict
          returned: with source docker, when the list was read
          sample: [{name: directus, state: running, bindings: {DB_DATABASE: directus}}]
        containers_error:
          description: Why the host's containers could not be listed.
          type: str
          returned: with source docker, when the list could not be read
dispatch:
  description: The event type registry in scope and other outbound mechanisms.
  type: dict
  returned: success
  sample: {registry: {relation: event_type_registry, scope: {domain: governance}, rows: 8, active: [],
                      active_count: 0},
           outbound: {directus_operations: {relation: directus_operations, rows: 3, active: 1,
                      named: [{key: post_chat, type: request, gate0_parent: Notify owners}]}}}
  contains:
    registry:
      description:
        - Rows in scope, how many are active (C(active_count)) and the first 20 active ones, each as
          its C(registry_key) and C(registry_details) columns (text), or the whole row without a key.
      type: dict
    outbound:
      description:
        - Per mechanism, its rows, how many are active, and the first 20 active ones (C(named)) by
          their C(label) and C(details) columns and their parent's label (C(gate0_parent)). Only the
          named columns are read, never a whole row.
      type: dict
outbox:
  description: The outbox guard trigger as the catalog has it, and the probe.
  type: dict
  returned: success
  sample: {relation: event_outbox, trigger: {exists: true, enabled: "O", before: true, insert: true,
           row: true, function: fn_event_type_validate, has_when: false},
           probe: {ran: true, event_type: governance.gap.opened, rejected: true, from_function: true,
                   sqlstate: "23514", message: "event type ... is unknown or inactive",
                   xid_assigned: null, rolled_back: true, reason: null}}
  contains:
    trigger:
      description: exists, enabled (pg_trigger.tgenabled), before, insert, row, function, has_when.
      type: dict
    probe:
      description: Whether the probe ran and how its insert ended; always rolled back.
      type: dict
lease:
  description: Rows in the worker lease table.
  type: dict
  returned: success
  sample: {relation: dot_iu_runtime_lease, rows: 0}
  contains:
    relation: {description: The table, type: str}
    rows: {description: Its row count, type: int}
seed:
  description: Seed rows carrying the marker and the table's total.
  type: dict
  returned: success
  sample: {relation: governance_object_ownership, marker: CLONE_TEST_F6_SEED, marked: 30, total: 30}
  contains:
    relation: {description: The table, type: str}
    marker: {description: The marker value, type: str}
    marked: {description: Rows carrying the marker, type: int}
    total: {description: All rows, type: int}
coverage:
  description: Gap view rows and the number of cells (product of the cell relations' counts).
  type: dict
  returned: success
  sample: {gap_relation: v_object_owner_gap, gap_rows: 0, cells: 210,
           cell_counts: {governance_object_inventory: 35, governance_scopes: 6}}
  contains:
    gap_relation: {description: The gap view, type: str}
    gap_rows: {description: Its row count, type: int}
    cells: {description: Product of the cell relations' counts, type: int}
    cell_counts: {description: Each cell relation's count, type: dict}
candidates:
  description: Candidate state counts and the cursor rows.
  type: dict
  returned: success
  sample: {counts: {ruleset: 1, scan_run: 2}, cursor: [{watermark: wm-2, events_seen: 20}]}
  contains:
    counts: {description: Name to row count, type: dict}
    cursor: {description: The cursor rows (the profile's fields, as text), type: list, elements: dict}
reach:
  description:
    - What the clone login can reach beyond the clone (C(reach) section), then the connection
      attempts with its credentials to every name in O(production_databases).
  type: dict
  returned: success
  sample:
    login: workflow_admin
    roles: [workflow_admin, pg_read_all_stats]
    databases_here: [directus]
    databases_elsewhere: []
    findings: []
    attempts:
      - {database: directus, server: "the clone's server (127.0.0.1:5432)", refused: true,
         reason: "no CONNECT privilege: permission denied for database \"directus\""}
  contains:
    login: {description: The clone login, type: str}
    roles:
      description: The login and every role it belongs to (any INHERIT/SET option).
      type: list
      elements: str
    databases_here:
      description: Production/allowlisted names that exist on the clone's server.
      type: list
      elements: str
    databases_elsewhere: {description: Those that do not, type: list, elements: str}
    findings:
      description: Each path found (CONNECT, ownership, attribute, membership), C(name) and one-line C(text).
      type: list
      elements: dict
    attempts:
      description:
        - Each attempt, C(refused) true only on an authorization refusal, false when accepted
          (closed at once, no query), null when nothing was proven (network error, timeout).
      type: list
      elements: dict
outbound:
  description:
    - Everything in the clone that can open a connection outward (C(outbound) section) - foreign
      servers with user mappings or USAGE, foreign-data wrappers with USAGE, dblink-like functions,
      subscriptions, logical slots, walsenders, pg_cron jobs - and what could not be seen.
  type: dict
  returned: success
  sample: {findings: [], not_visible: [], cron: "not running (no pg_cron launcher, no cron.job here)"}
  contains:
    findings:
      description: Each link, C(name) (allowed by name in the profile) and C(text).
      type: list
      elements: dict
    not_visible: {description: What could not be read (never read as none), type: list, elements: dict}
    cron: {description: pg_cron's state as seen from the clone, type: str}
left_out:
  description: The optional profile sections the profile leaves out (not observed).
  type: list
  elements: str
  returned: success
  sample: [outbox, lease, seed, coverage, candidates]
errors:
  description: Sections that could not be observed, each with a one-line reason.
  type: dict
  returned: success
  sample: {seed: "reading seed rows: relation \"x\" does not exist"}
refused:
  description: True when the module refused the clone name before connecting (nothing was run).
  type: bool
  returned: failure
  sample: true
timings:
  description: Milliseconds spent connecting, observing, probing, in total.
  type: dict
  returned: success
  sample: {connect_ms: 4, observe_ms: 12, probe_ms: 3, total_ms: 20}
  contains:
    connect_ms: {description: Connecting, type: int}
    observe_ms: {description: The read-only transaction, type: int}
    probe_ms: {description: The probe transaction, type: int}
    total_ms: {description: Everything, type: int}
duration_ms:
  description: Milliseconds the whole observation took (the same as RV(timings.total_ms)).
  type: int
  returned: always
  sample: 20
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gate0.core.plugins.module_utils import gate0_clone as clone


def main() -> None:
    module = AnsibleModule(argument_spec=clone.argument_spec(), supports_check_mode=True)
    result = clone.observe(module.params)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
