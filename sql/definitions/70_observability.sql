-- observability: functions, views, triggers, policies and grants (the Prometheus exposition)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

CREATE OR REPLACE FUNCTION perfopt.prometheus_metrics() RETURNS text
AS 'MODULE_PATHNAME', 'perfopt_prometheus_metrics'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.prometheus_metrics() IS
'everything perfopt knows in the Prometheus text exposition format; the exporter serves it on perfopt.metrics_listen';
