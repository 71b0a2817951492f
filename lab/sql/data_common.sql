-- gate0 lab: data present in production and, copied, in the clone. Deterministic (no random()),
-- so content hashes are stable from one lab to the next.
SET client_min_messages = warning;

INSERT INTO governance_scopes (scope_code, title, description, created_at)
SELECT code, initcap(replace(code, '_', ' ')), 'Governance scope ' || code,
       timestamptz '2026-01-05 09:00:00+00' + (n || ' hours')::interval
FROM unnest(ARRAY['security', 'privacy', 'availability', 'cost', 'compliance', 'operations'])
     WITH ORDINALITY AS t(code, n);

-- 35 objects: 5 kinds x 7.
INSERT INTO governance_object_inventory (object_id, object_key, object_kind, title, source_ref, created_at)
SELECT g,
       kind || '.' || lpad(((g - 1) % 7 + 1)::text, 2, '0'),
       kind,
       initcap(kind) || ' object ' || ((g - 1) % 7 + 1),
       'git:governance/' || kind || '/' || ((g - 1) % 7 + 1) || '.yml',
       timestamptz '2026-02-01 00:00:00+00' + (g || ' minutes')::interval
FROM generate_series(1, 35) AS g,
     LATERAL (SELECT (ARRAY['collection', 'flow', 'role', 'dashboard', 'extension'])[(g - 1) / 7 + 1] AS kind) AS k;

INSERT INTO governance_object_containment (containment_id, object_id, container_key, path, created_at)
SELECT i.object_id, i.object_id, 'root.' || i.object_kind, '/' || i.object_kind || '/' || i.object_key,
       i.created_at
FROM governance_object_inventory AS i;

INSERT INTO system_issues (issue_id, issue_code, severity, source, message, resolved, created_at)
SELECT g,
       'SI-' || lpad((g % 997)::text, 4, '0'),
       (ARRAY['info', 'warning', 'error', 'critical'])[g % 4 + 1],
       (ARRAY['scanner', 'api', 'scheduler', 'importer', 'auth'])[g % 5 + 1],
       'Issue ' || g || ': ' || md5(g::text),
       g % 3 = 0,
       timestamptz '2025-01-01 00:00:00+00' + (g || ' minutes')::interval
FROM generate_series(1, 200480) AS g;

INSERT INTO dot_tools (tool_id, tool_code, name, category, config, created_at)
SELECT g,
       'tool_' || lpad(g::text, 3, '0'),
       'Tool ' || g,
       (ARRAY['lint', 'deploy', 'report', 'scan', 'sync', 'audit'])[g % 6 + 1],
       jsonb_build_object('enabled', g % 2 = 0, 'rank', g),
       timestamptz '2025-06-01 00:00:00+00' + (g || ' hours')::interval
FROM generate_series(1, 309) AS g;

-- Governance event types: all inactive (nothing may be dispatched).
INSERT INTO event_type_registry (event_type, domain, description, active, created_at)
SELECT 'governance.' || t, 'governance', 'Governance event ' || t, false,
       timestamptz '2026-03-01 00:00:00+00'
FROM unnest(ARRAY['ownership.assigned', 'ownership.revoked', 'scan.started', 'scan.finished',
                  'candidate.detected', 'candidate.resolved', 'gap.opened', 'gap.closed']) AS t;

-- Directus: two active flows, one sending mail and an HTTP request, one on a schedule; a webhook
-- (columns as Directus 11 requires them); an extension recorded as enabled.
INSERT INTO directus_flows (id, name, trigger, status, accountability, options, date_created)
VALUES ('6f1c2a8e-0000-4000-8000-000000000001', 'Notify owners', 'event', 'active', 'all',
        '{"type": "action", "scope": ["items.create"], "collections": ["governance_object_ownership"]}',
        timestamptz '2026-03-02 10:00:00+00'),
       ('6f1c2a8e-0000-4000-8000-000000000002', 'Nightly digest', 'schedule', 'active', 'all',
        '{"cron": "0 2 * * *"}', timestamptz '2026-03-02 10:05:00+00');

INSERT INTO directus_operations (id, name, key, type, position_x, position_y, options, flow, date_created)
VALUES ('7a2d3b9f-0000-4000-8000-000000000001', 'Mail the owners', 'mail_owners', 'mail', 19, 1,
        '{"to": ["owners@example.invalid"], "subject": "Ownership changed"}',
        '6f1c2a8e-0000-4000-8000-000000000001', timestamptz '2026-03-02 10:00:00+00'),
       ('7a2d3b9f-0000-4000-8000-000000000002', 'Post to chat', 'post_chat', 'request', 37, 1,
        '{"method": "POST", "url": "https://hooks.example.invalid/chat"}',
        '6f1c2a8e-0000-4000-8000-000000000001', timestamptz '2026-03-02 10:00:00+00'),
       ('7a2d3b9f-0000-4000-8000-000000000003', 'Build the digest', 'build_digest', 'transform', 19, 1,
        '{"json": "{}"}', '6f1c2a8e-0000-4000-8000-000000000002', timestamptz '2026-03-02 10:05:00+00');

UPDATE directus_flows SET operation = '7a2d3b9f-0000-4000-8000-000000000001'
WHERE id = '6f1c2a8e-0000-4000-8000-000000000001';
UPDATE directus_operations SET resolve = '7a2d3b9f-0000-4000-8000-000000000002'
WHERE id = '7a2d3b9f-0000-4000-8000-000000000001';
UPDATE directus_flows SET operation = '7a2d3b9f-0000-4000-8000-000000000003'
WHERE id = '6f1c2a8e-0000-4000-8000-000000000002';

INSERT INTO directus_webhooks (name, url, status, actions, collections)
VALUES ('Chat relay', 'https://hooks.example.invalid/relay', 'active', 'create,update', 'governance_object_ownership');

INSERT INTO directus_extensions (enabled, id, folder, source)
VALUES (true, '8b3e4c0a-0000-4000-8000-000000000001', 'directus-extension-audit-relay', 'local');
