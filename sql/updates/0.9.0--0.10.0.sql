-- update 0.9.0 to 0.10.0: what changes in tables, and what goes away
-- Runs after sql/roles.sql and before sql/definitions/, which then replace
-- every function, view, trigger, policy and grant with its 0.10.0 form.

-- first of all, wait for the workers' running jobs and make them wait for
-- the update (the lock they take before each job, exclusively)
CREATE FUNCTION perfopt.lock_for_update() RETURNS void
AS 'MODULE_PATHNAME', 'perfopt_lock_for_update'
LANGUAGE C STRICT VOLATILE
SET search_path = pg_catalog, pg_temp;
SELECT perfopt.lock_for_update();

-- cache_rewarm runs each warmer's query as the role that registered it;
-- only superusers could register one before 0.10.0, and nothing recorded
-- which: those run as the extension's owner
ALTER TABLE perfopt.cache_warmers ADD COLUMN owner regrole;
UPDATE perfopt.cache_warmers
   SET owner = (SELECT e.extowner FROM pg_catalog.pg_extension e
                 WHERE e.extname OPERATOR(pg_catalog.=) 'perfopt')::regrole;
ALTER TABLE perfopt.cache_warmers ALTER COLUMN owner SET NOT NULL;
