-- gate0 lab: (re)create production and the clone from their templates, with database-level ACLs.
-- Variables (psql -v): prod, clone, prod_tpl, clone_tpl, strategy (the copy clause: PostgreSQL 15+
-- says STRATEGY file_copy, the fast copy of a small template; 14 copies files and has no clause).
SET client_min_messages = warning;

SELECT count(pg_terminate_backend(pid)) AS terminated FROM pg_stat_activity
WHERE datname IN (:'prod', :'clone') AND pid <> pg_backend_pid() \gset

DROP DATABASE IF EXISTS :"prod" WITH (FORCE);
DROP DATABASE IF EXISTS :"clone" WITH (FORCE);
CREATE DATABASE :"prod" TEMPLATE :"prod_tpl" OWNER directus :strategy;
CREATE DATABASE :"clone" TEMPLATE :"clone_tpl" OWNER workflow_admin :strategy;

-- Production: the app and the read-only gate role may connect; nobody else.
REVOKE ALL ON DATABASE :"prod" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"prod" TO directus, context_pack_readonly;
-- The clone: its admin only. The read-only role and the app are refused (load-bearing).
REVOKE ALL ON DATABASE :"clone" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"clone" TO workflow_admin;
