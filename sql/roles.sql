-- roles: the roles perfopt grants to, made if missing (docs/security.md)
-- Run by CREATE EXTENSION and again by every update, before anything else.
--
-- Roles are shared by the cluster's databases, so they outlive DROP
-- EXTENSION and may already exist.  A role of that name that someone made
-- beforehand is adopted only if it is a plain group role: one that can log
-- in, or carries any attribute, could hand perfopt's rights to whoever made
-- it, so the install stops and says what to do.
--   perfopt_admin  writes automation rules, runs actions by hand, reads what
--                  the workers gather
--   perfopt_app    what an application's login role needs: route()
--   perfopt_reader read-only: every view and what the workers gather, for
--                  dashboards (docs/observability.md)

DO $$
DECLARE
    wanted text;
    r record;
BEGIN
    FOREACH wanted IN ARRAY ARRAY['perfopt_admin', 'perfopt_app', 'perfopt_reader'] LOOP
        SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) wanted;
        IF NOT FOUND THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', wanted);
        ELSIF r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb
              OR r.rolreplication OR r.rolbypassrls THEN
            RAISE EXCEPTION 'role "%" already exists and is not a plain group role', wanted
                USING ERRCODE = 'duplicate_object',
                      DETAIL = 'perfopt grants its rights to this role; one that can log in or has '
                               'attributes could pass them to whoever made it.',
                      HINT = pg_catalog.format('Check who made it, then ALTER ROLE %I NOLOGIN NOSUPERUSER '
                                               'NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS, or drop it.',
                                               wanted);
        END IF;
    END LOOP;
END
$$;
