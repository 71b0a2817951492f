-- gate0 clone refresh: create the new clone, as the DBA login. psql variables: clone, prefix,
-- production (comma-separated production names), owner (the clone admin), replace (true|false),
-- create (true|false: false only drops the clone - a failed refresh's cleanup, with replace=true).
-- The guard runs on the server before anything is dropped or created.
\if :{?create}
\else
\set create true
\endif
SET client_min_messages = warning;
SELECT set_config('gate0.clone', :'clone', false), set_config('gate0.prefix', :'prefix', false),
       set_config('gate0.production', :'production', false), set_config('gate0.replace', :'replace', false)
\g /dev/null

DO $guard$
DECLARE
    c text := current_setting('gate0.clone');
    p text := current_setting('gate0.prefix');
BEGIN
    IF p = '' OR NOT starts_with(c, p) OR c = p
       OR c = ANY (string_to_array(current_setting('gate0.production'), ',')) THEN
        RAISE EXCEPTION 'gate0 refresh: refusing database %: it does not match the clone rule % or is a production name', c, p;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_database WHERE datname = c) AND current_setting('gate0.replace') <> 'true' THEN
        RAISE EXCEPTION 'gate0 refresh: database % exists; set gate0_refresh_replace=true to drop and recreate it', c;
    END IF;
END
$guard$;

SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'clone') \gexec
\if :create
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0', :'clone', :'owner') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'clone') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'clone', :'owner') \gexec
\endif
