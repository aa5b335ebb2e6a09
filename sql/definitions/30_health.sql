-- health: functions, views, triggers, policies and grants (table health and pool advice)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

CREATE OR REPLACE FUNCTION perfopt.table_health(exact boolean DEFAULT false, rel regclass DEFAULT NULL)
RETURNS TABLE (
    table_name regclass,
    health_score int,
    est_bloat_pct float8,
    dead_tuple_pct float8,
    seq_scan_pct float8,
    cache_hit_pct float8,
    hot_update_pct float8,
    xid_age_pct float8,
    last_vacuum timestamptz,
    last_analyze timestamptz,
    issues jsonb,
    recommendations jsonb,
    index_bloat_pct float8,
    vacuum_due float8,
    analyze_due float8,
    size_bytes bigint,
    measured boolean,
    bloat_error_pct float8)
AS 'MODULE_PATHNAME', 'perfopt_table_health'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.table_health(boolean, regclass) IS
'a 0-100 health score per table (or for rel) with its components, issues and fixes; exact reads sampled pages';

CREATE OR REPLACE VIEW perfopt.table_health AS
    SELECT * FROM perfopt.table_health(false);

COMMENT ON VIEW perfopt.table_health IS
'table_health(false): scores from statistics and catalogs only, no table read';

CREATE OR REPLACE FUNCTION perfopt.pool_recommendation(sample_seconds float8 DEFAULT 2)
RETURNS TABLE (
    setting text,
    current_value text,
    recommended text,
    reason text)
AS 'MODULE_PATHNAME', 'perfopt_pool_recommendation'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.pool_recommendation(float8) IS
'pool size and mode, max_connections and timeouts, from the backends sampled for sample_seconds';
