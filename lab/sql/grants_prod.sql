-- gate0 lab: privileges inside production (`directus`), applied to its template.
SET client_min_messages = warning;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO context_pack_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO context_pack_readonly;
