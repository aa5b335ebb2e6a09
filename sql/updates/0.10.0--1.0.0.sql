-- update 0.10.0 to 1.0.0: what changes in tables, and what goes away
-- Runs after sql/roles.sql and before sql/definitions/, which then replace
-- every function, view, trigger, policy and grant with its 1.0.0 form.

-- first of all, wait for the workers' running jobs and make them wait for
-- the update (the lock they take before each job, exclusively); 0.10.0 has
-- the function, sql/definitions/ keep it
SELECT perfopt.lock_for_update();

-- pg_dump keeps what users wrote (rules, jobs, strategies, watches, warmers,
-- instances) since the releases that made those tables, but not the values
-- of their sequences: a restored database then handed out the restored
-- rows' ids again (a duplicate key on the next rule or warmer)
SELECT pg_catalog.pg_extension_config_dump('perfopt.automation_rules_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_warmers_id_seq', '');

-- perfopt.metrics gives up its partitioned index for one index per partition
-- (see sql/tables/40_metrics.sql): pg_restore failed on every daily
-- partition's index, made once by ATTACH PARTITION and again as dumped.
-- Dropping the partitioned index drops those of the partitions; each
-- partition then gets its own again.
DO $$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN SELECT i.indexrelid::regclass FROM pg_catalog.pg_index i
                WHERE i.indrelid OPERATOR(pg_catalog.=) 'perfopt.metrics'::regclass LOOP
        EXECUTE pg_catalog.format('DROP INDEX %s', rel);
    END LOOP;
    FOR rel IN SELECT h.inhrelid::regclass FROM pg_catalog.pg_inherits h
                WHERE h.inhparent OPERATOR(pg_catalog.=) 'perfopt.metrics'::regclass LOOP
        EXECUTE pg_catalog.format('CREATE INDEX ON %s (metric, entity, ts)', rel);
    END LOOP;
END
$$;
