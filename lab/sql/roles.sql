-- gate0 lab: cluster roles, normalised to the seed's state on every reset.
-- Variables (psql -v): ro_pw, admin_pw, app_pw.
SET client_min_messages = warning;

SELECT format('CREATE ROLE %I', r)
FROM unnest(ARRAY['context_pack_readonly', 'workflow_admin', 'directus']) AS r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
\gexec

-- Drop every membership the three roles hold (tests may have added some), then grant the seed's.
SELECT format('REVOKE %I FROM %I CASCADE', g.rolname, m.rolname)
FROM pg_auth_members AS am
JOIN pg_roles AS g ON g.oid = am.roleid
JOIN pg_roles AS m ON m.oid = am.member
WHERE m.rolname IN ('context_pack_readonly', 'workflow_admin', 'directus')
\gexec

ALTER ROLE context_pack_readonly LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity' PASSWORD :'ro_pw';
ALTER ROLE workflow_admin LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity' PASSWORD :'admin_pw';
ALTER ROLE directus LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
    NOBYPASSRLS INHERIT CONNECTION LIMIT -1 VALID UNTIL 'infinity' PASSWORD :'app_pw';
ALTER ROLE context_pack_readonly RESET ALL;
ALTER ROLE workflow_admin RESET ALL;
ALTER ROLE directus RESET ALL;

-- Both gate logins may see other sessions' details (pg_stat_activity), a read-only predefined role.
GRANT pg_read_all_stats TO context_pack_readonly;
GRANT pg_read_all_stats TO workflow_admin;
