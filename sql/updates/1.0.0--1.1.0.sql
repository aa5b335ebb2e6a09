-- perfopt 1.0.0 -> 1.1.0: what the update changes in tables.  The functions,
-- views and grants are re-created from sql/definitions/ after this.
SELECT perfopt.lock_for_update();

-- issue 18: one outbox row per transaction, its keys in an array (the view
-- over the old column goes first; sql/definitions/ makes it again).  The
-- watched tables are locked first, in the order their writers take them
-- (the table, then the outbox): sql/definitions/ re-creates their triggers,
-- and taking the outbox first would deadlock with a writer that holds one.
DO $$
DECLARE
    r regclass;
BEGIN
    FOR r IN SELECT DISTINCT w.rel FROM perfopt.cache_watches w
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) w.rel
              ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', r);
    END LOOP;
END
$$;
DROP VIEW perfopt.cache_outbox;
ALTER TABLE perfopt.cache_invalidations ADD COLUMN keys text[];
UPDATE perfopt.cache_invalidations SET keys = ARRAY[key];
ALTER TABLE perfopt.cache_invalidations ALTER COLUMN keys SET NOT NULL, DROP COLUMN key;
