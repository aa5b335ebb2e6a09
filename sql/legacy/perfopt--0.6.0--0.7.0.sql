/* perfopt--0.6.0--0.7.0.sql: Prometheus metrics */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION perfopt UPDATE TO '0.7.0'" to load this file. \quit

CREATE FUNCTION perfopt.prometheus_metrics() RETURNS text
AS 'MODULE_PATHNAME', 'perfopt_prometheus_metrics'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION perfopt.prometheus_metrics() IS
'everything perfopt knows in the Prometheus text exposition format; the exporter serves it on perfopt.metrics_listen';

REVOKE ALL ON FUNCTION perfopt.prometheus_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION perfopt.prometheus_metrics() TO pg_monitor, perfopt_admin;
