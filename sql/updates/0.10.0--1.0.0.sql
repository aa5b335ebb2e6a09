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
