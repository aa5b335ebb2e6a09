-- perfopt 1.0.0 -> 1.1.0: what the update changes in tables.  The functions,
-- views and grants are re-created from sql/definitions/ after this.
SELECT perfopt.lock_for_update();

-- issue 18: one outbox row per transaction, its keys in an array (the view
-- over the old column goes first; sql/definitions/ makes it again)
DROP VIEW perfopt.cache_outbox;
ALTER TABLE perfopt.cache_invalidations ADD COLUMN keys text[];
UPDATE perfopt.cache_invalidations SET keys = ARRAY[key];
ALTER TABLE perfopt.cache_invalidations ALTER COLUMN keys SET NOT NULL, DROP COLUMN key;
