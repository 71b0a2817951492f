-- gate0 lab: the governance schema shared by production (`directus`) and its clone.
-- Loaded into each template database by lab/lab.sh, as the database's owner role.
SET client_min_messages = warning;

CREATE TABLE governance_scopes (
    scope_code   text PRIMARY KEY,
    title        text NOT NULL,
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE governance_object_inventory (
    object_id    bigint PRIMARY KEY,
    object_key   text NOT NULL UNIQUE,
    object_kind  text NOT NULL,
    title        text NOT NULL,
    source_ref   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz
);

CREATE TABLE governance_object_containment (
    containment_id bigint PRIMARY KEY,
    object_id      bigint NOT NULL REFERENCES governance_object_inventory (object_id),
    container_key  text NOT NULL,
    path           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Ownership is assigned per (object kind, scope): one row covers every object of that kind.
CREATE TABLE governance_object_ownership (
    ownership_id bigserial PRIMARY KEY,
    object_kind  text NOT NULL,
    scope_code   text NOT NULL REFERENCES governance_scopes (scope_code),
    owner_ref    text NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (object_kind, scope_code)
);

-- Cells of inventory x scopes that have no owner.
CREATE VIEW v_object_owner_gap AS
SELECT i.object_id, i.object_key, i.object_kind, s.scope_code
FROM governance_object_inventory AS i
CROSS JOIN governance_scopes AS s
WHERE NOT EXISTS (
    SELECT 1 FROM governance_object_ownership AS o
    WHERE o.object_kind = i.object_kind AND o.scope_code = s.scope_code
);

CREATE TABLE governance_ruleset (
    ruleset_id   bigserial PRIMARY KEY,
    ruleset_code text NOT NULL UNIQUE,
    version      integer NOT NULL,
    definition   jsonb NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE governance_scan_run (
    scan_run_id  bigserial PRIMARY KEY,
    ruleset_id   bigint NOT NULL REFERENCES governance_ruleset (ruleset_id),
    status       text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    summary      jsonb
);

CREATE TABLE governance_candidate_state (
    candidate_state_id bigserial PRIMARY KEY,
    scan_run_id  bigint NOT NULL REFERENCES governance_scan_run (scan_run_id),
    state_code   text NOT NULL,
    object_count integer NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE governance_candidate_object (
    candidate_object_id bigserial PRIMARY KEY,
    scan_run_id  bigint NOT NULL REFERENCES governance_scan_run (scan_run_id),
    object_id    bigint NOT NULL REFERENCES governance_object_inventory (object_id),
    state_code   text NOT NULL,
    detail       jsonb,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE governance_scan_cursor (
    cursor_name  text PRIMARY KEY,
    watermark    text NOT NULL,
    events_seen  integer NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE os_proposal_approvals (
    approval_id  bigserial PRIMARY KEY,
    proposal_ref text NOT NULL,
    approver     text NOT NULL,
    decision     text NOT NULL CHECK (decision IN ('approve', 'reject')),
    decided_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE system_issues (
    issue_id     bigint PRIMARY KEY,
    issue_code   text NOT NULL,
    severity     text NOT NULL,
    source       text NOT NULL,
    message      text NOT NULL,
    resolved     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL
);

CREATE TABLE dot_tools (
    tool_id      bigint PRIMARY KEY,
    tool_code    text NOT NULL UNIQUE,
    name         text NOT NULL,
    category     text NOT NULL,
    config       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL
);

CREATE TABLE dot_iu_runtime_lease (
    lease_id     bigserial PRIMARY KEY,
    worker_id    text NOT NULL,
    iu_code      text NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE TABLE event_type_registry (
    event_type   text PRIMARY KEY,
    domain       text NOT NULL,
    description  text,
    active       boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE event_outbox (
    event_id     bigserial PRIMARY KEY,
    event_type   text NOT NULL,
    aggregate_ref text,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);

-- Rejects outbox events whose type is unknown or inactive: the clone's outbound guard.
CREATE FUNCTION fn_event_type_validate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM event_type_registry AS r
        WHERE r.event_type = NEW.event_type AND r.active
    ) THEN
        RAISE EXCEPTION 'event type % is unknown or inactive', NEW.event_type
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_event_outbox_validate
    BEFORE INSERT ON event_outbox
    FOR EACH ROW EXECUTE FUNCTION fn_event_type_validate();

-- Directus' own outbound mechanisms: the columns, NOT NULLs, defaults and keys of Directus 11.3.5's
-- system tables (from a real `directus bootstrap`; user_created's reference to directus_users left out).
CREATE TABLE directus_flows (
    id             uuid PRIMARY KEY,
    name           varchar(255) NOT NULL,
    icon           varchar(64),
    color          varchar(255),
    description    text,
    status         varchar(255) NOT NULL DEFAULT 'active',
    trigger        varchar(255),
    accountability varchar(255) DEFAULT 'all',
    options        json,
    operation      uuid UNIQUE,
    date_created   timestamptz DEFAULT CURRENT_TIMESTAMP,
    user_created   uuid
);

CREATE TABLE directus_operations (
    id           uuid PRIMARY KEY,
    name         varchar(255),
    key          varchar(255) NOT NULL,
    type         varchar(255) NOT NULL,
    position_x   integer NOT NULL,
    position_y   integer NOT NULL,
    options      json,
    resolve      uuid UNIQUE REFERENCES directus_operations (id),
    reject       uuid UNIQUE REFERENCES directus_operations (id),
    flow         uuid NOT NULL REFERENCES directus_flows (id) ON DELETE CASCADE,
    date_created timestamptz DEFAULT CURRENT_TIMESTAMP,
    user_created uuid
);

CREATE TABLE directus_webhooks (
    id                            serial PRIMARY KEY,
    name                          varchar(255) NOT NULL,
    method                        varchar(10) NOT NULL DEFAULT 'POST',
    url                           varchar(255) NOT NULL,
    status                        varchar(10) NOT NULL DEFAULT 'active',
    data                          boolean NOT NULL DEFAULT true,
    actions                       varchar(100) NOT NULL,
    collections                   varchar(255) NOT NULL,
    headers                       json,
    was_active_before_deprecation boolean NOT NULL DEFAULT false,
    migrated_flow                 uuid REFERENCES directus_flows (id) ON DELETE SET NULL
);

CREATE TABLE directus_extensions (
    enabled boolean NOT NULL DEFAULT true,
    id      uuid PRIMARY KEY,
    folder  varchar(255) NOT NULL,
    source  varchar(255) NOT NULL,
    bundle  uuid
);
