-- perfopt 1.0.0 -> 1.1.0: what the update changes in tables.  The functions,
-- views and grants are re-created from sql/definitions/ after this.
SELECT perfopt.lock_for_update();

-- issue 16: cache_redis_stats() and cache_metrics report perfopt's own
-- lookups apart (own_hits, own_misses): a function's OUT columns cannot be
-- replaced, so both are made again by sql/definitions/80_cache.sql
DROP VIEW perfopt.cache_metrics;
DROP FUNCTION perfopt.cache_redis_stats();

-- issue 19: detect_anomalies() and perfopt.anomalies say why a point was
-- reported (a reason column); the function's result type changes, so it is
-- dropped here and made again from sql/definitions/50_models.sql
ALTER TABLE perfopt.anomalies ADD COLUMN reason text;
DROP FUNCTION perfopt.detect_anomalies(timestamptz[], float8[], float8);
