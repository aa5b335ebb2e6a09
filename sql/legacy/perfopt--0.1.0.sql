/* perfopt--0.1.0.sql: query complexity analysis and the slow-query view */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION perfopt" to load this file. \quit

CREATE SCHEMA perfopt;
GRANT USAGE ON SCHEMA perfopt TO PUBLIC;

CREATE FUNCTION perfopt.analyze_query(query text)
RETURNS TABLE (
    pattern text,
    complexity int,
    impact text,
    total_cost float8,
    plan_rows float8,
    features jsonb,
    recommendations jsonb)
AS 'MODULE_PATHNAME', 'perfopt_analyze_query'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION perfopt.analyze_query(text) IS
'complexity (1-10), impact and recommendations of one statement, from its generic plan; never executes it';

CREATE FUNCTION perfopt.slow_queries(
    OUT queryid bigint,
    OUT query text,
    OUT calls bigint,
    OUT mean_ms float8,
    OUT p95_ms float8,
    OUT total_ms float8,
    OUT time_share_pct float8,
    OUT complexity int,
    OUT impact text,
    OUT recommendations jsonb)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_slow_queries'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE VIEW perfopt.slow_queries AS
    SELECT * FROM perfopt.slow_queries();

COMMENT ON VIEW perfopt.slow_queries IS
'statements of pg_stat_statements whose mean time is at least perfopt.slow_query_ms, analyzed';

GRANT SELECT ON perfopt.slow_queries TO PUBLIC;
