-- gate0 lab: the clone-only state of the seed (prior run F6), on top of data_common.sql.
SET client_min_messages = warning;

-- Isolation hardening of the clone: Directus' outbound mechanisms off.
UPDATE directus_flows SET status = 'inactive';
UPDATE directus_webhooks SET status = 'inactive';
UPDATE directus_extensions SET enabled = false;

-- 30 ownership rows (5 kinds x 6 scopes) close the gap view to 0 of 210 cells.
INSERT INTO governance_object_ownership (object_kind, scope_code, owner_ref, created_by, created_at)
SELECT k.kind, s.scope_code, 'team-' || k.kind || '-' || s.scope_code, 'CLONE_TEST_F6_SEED',
       timestamptz '2026-06-01 12:00:00+00'
FROM (SELECT DISTINCT object_kind AS kind FROM governance_object_inventory) AS k
CROSS JOIN governance_scopes AS s
ORDER BY k.kind, s.scope_code;

INSERT INTO governance_ruleset (ruleset_code, version, definition, created_by, created_at)
VALUES ('ownership-default', 1, '{"rules": ["every-cell-owned"]}', 'CLONE_TEST_F6_SEED',
        timestamptz '2026-06-01 12:05:00+00');

INSERT INTO governance_scan_run (ruleset_id, status, started_at, finished_at, summary)
SELECT 1, 'finished', timestamptz '2026-06-01 13:00:00+00' + (g || ' hours')::interval,
       timestamptz '2026-06-01 13:02:00+00' + (g || ' hours')::interval,
       jsonb_build_object('run', g, 'watermark', 'wm-' || g)
FROM generate_series(1, 2) AS g;

INSERT INTO governance_candidate_state (scan_run_id, state_code, object_count, recorded_at)
SELECT 2, s, c, timestamptz '2026-06-01 15:02:00+00'
FROM unnest(ARRAY['detected', 'confirmed', 'owned', 'dismissed', 'pending'],
            ARRAY[35, 35, 35, 0, 0]) AS t(s, c);

INSERT INTO governance_candidate_object (scan_run_id, object_id, state_code, detail, recorded_at)
SELECT 2, object_id, 'owned', jsonb_build_object('kind', object_kind),
       timestamptz '2026-06-01 15:02:00+00'
FROM governance_object_inventory;

INSERT INTO governance_scan_cursor (cursor_name, watermark, events_seen, updated_at)
VALUES ('governance-scan', 'wm-2', 20, timestamptz '2026-06-01 15:02:00+00');
