-- routing: functions, views, triggers, policies and grants (instance routing and scaling advice)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

COMMENT ON TABLE perfopt.instance_registry IS
'instances route() chooses from: a libpq connection string (kind postgresql) or host:port (kind tcp)';

CREATE OR REPLACE FUNCTION perfopt.routing_reload() RETURNS boolean
    AS 'MODULE_PATHNAME', 'perfopt_routing_reload'
    LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.routing_reload() IS
'load perfopt.instance_registry into shared memory now (the health checker also does before each round)';

CREATE OR REPLACE FUNCTION perfopt.register_instance(name text, kind text, address text, weight int DEFAULT 1)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR length(name) NOT BETWEEN 1 AND 63 THEN
        RAISE EXCEPTION 'instance name must have 1 to 63 characters'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Name the instance, such as ''replica1''.';
    END IF;
    IF kind IS NULL OR kind NOT IN ('postgresql', 'tcp') THEN
        RAISE EXCEPTION 'unknown instance kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use postgresql (checked through libpq) or tcp (checked by a TCP connect).';
    END IF;
    IF address IS NULL OR length(address) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'instance address must have 1 to 255 characters'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give a libpq connection string for postgresql, host:port for tcp.';
    END IF;
    IF kind = 'tcp' AND address !~ '^[^:]+:[0-9]+$' AND address !~ '^\[?[0-9a-fA-F:.]+\]?:[0-9]+$' THEN
        RAISE EXCEPTION 'address "%" is not host:port', address
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Give a numeric address and port, such as 10.0.0.5:8080.';
    END IF;
    IF weight IS NULL OR weight NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'weight must be between 1 and 1000, not %', weight
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Give a larger instance a proportionally larger weight.';
    END IF;
    IF (SELECT count(*) FROM perfopt.instance_registry r WHERE r.name <> register_instance.name) >= 64 THEN
        RAISE EXCEPTION 'the registry holds at most 64 instances'
            USING ERRCODE = 'program_limit_exceeded', HINT = 'Deregister an instance first.';
    END IF;
    INSERT INTO perfopt.instance_registry AS r (name, kind, address, weight)
    VALUES (register_instance.name, register_instance.kind, register_instance.address, register_instance.weight)
    ON CONFLICT ON CONSTRAINT instance_registry_pkey DO UPDATE
       SET kind = excluded.kind, address = excluded.address, weight = excluded.weight, draining = false;
    PERFORM perfopt.routing_reload();
END
$$;

COMMENT ON FUNCTION perfopt.register_instance(text, text, text, int) IS
'add an instance (or change one, which also ends its drain); it takes traffic once its health checks succeed';

CREATE OR REPLACE FUNCTION perfopt.deregister_instance(name text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM perfopt.instance_registry r WHERE r.name = deregister_instance.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no instance named "%"', name
            USING ERRCODE = 'undefined_object', HINT = 'See perfopt.instances for the registered instances.';
    END IF;
    PERFORM perfopt.routing_reload();
END
$$;

COMMENT ON FUNCTION perfopt.deregister_instance(text) IS
'remove an instance from the registry; drain it first to let its sessions end';

CREATE OR REPLACE FUNCTION perfopt.drain_instance(name text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE perfopt.instance_registry r SET draining = true WHERE r.name = drain_instance.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no instance named "%"', name
            USING ERRCODE = 'undefined_object', HINT = 'See perfopt.instances for the registered instances.';
    END IF;
    PERFORM perfopt.routing_reload();
END
$$;

COMMENT ON FUNCTION perfopt.drain_instance(text) IS
'stop routing new requests to an instance; deregister it when its connections reach zero';

CREATE OR REPLACE FUNCTION perfopt.instance_status(
    OUT name text, OUT state text, OUT last_check timestamptz, OUT response_ms float8,
    OUT ewma_ms float8, OUT connections bigint, OUT lag_bytes bigint, OUT failures int,
    OUT routed bigint, OUT checks float8)
RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'perfopt_instance_status'
    LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW perfopt.instances AS
SELECT r.name, r.kind, r.address, r.weight,
       coalesce(s.state, CASE WHEN r.draining THEN 'draining' ELSE 'down' END) AS state,
       s.last_check, s.response_ms, s.connections, s.lag_bytes,
       s.ewma_ms, s.failures, s.routed
  FROM perfopt.instance_registry r
  LEFT JOIN perfopt.instance_status() s ON s.name = r.name
 ORDER BY r.registered_at, r.name;

COMMENT ON VIEW perfopt.instances IS
'registered instances with their health: healthy, degraded (failing or lagging), down or draining';

CREATE OR REPLACE FUNCTION perfopt.route(session_key text DEFAULT NULL, algorithm text DEFAULT NULL)
RETURNS TABLE (instance text, address text, confidence float8)
    AS 'MODULE_PATHNAME', 'perfopt_route'
    LANGUAGE C VOLATILE;

COMMENT ON FUNCTION perfopt.route(text, text) IS
'the instance to send a request to now: round_robin, least_connections, weighted or adaptive; a session key keeps affinity';

CREATE OR REPLACE FUNCTION perfopt.simulate_requests(n int, algorithm text, load float8 DEFAULT 0.7, seed bigint DEFAULT 42)
RETURNS TABLE (instance text, capacity float8, requests bigint, p95_ms float8, utilization float8, overloads bigint)
    AS 'MODULE_PATHNAME', 'perfopt_simulate_requests'
    LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.simulate_requests(int, text, float8, bigint) IS
'replay a Poisson request stream against a heterogeneous simulated fleet; one row per instance and one for all';

------------------------------------------------------------------------------
-- Autoscaling advice

CREATE OR REPLACE FUNCTION perfopt.hpa_desired_replicas(current int, value float8, target float8,
                                             tolerance float8 DEFAULT 0.1,
                                             min_replicas int DEFAULT 1, max_replicas int DEFAULT 100)
RETURNS int
    AS 'MODULE_PATHNAME', 'perfopt_hpa_desired_replicas'
    LANGUAGE C IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.hpa_desired_replicas(int, float8, float8, float8, int, int) IS
'the Kubernetes HPA rule: ceil(current * value / target), unchanged within the tolerance';

COMMENT ON TABLE perfopt.scaling_advice IS
'each autoscaling recommendation: raw_desired is the HPA formula, desired_instances after stabilization and cooldown';

CREATE OR REPLACE FUNCTION perfopt.recommend_scaling(
    metric text, target float8,
    current_value float8 DEFAULT NULL, current_instances int DEFAULT NULL,
    predictive boolean DEFAULT false, tolerance float8 DEFAULT 0.1,
    stabilization interval DEFAULT '5 minutes', cooldown interval DEFAULT '3 minutes',
    min_instances int DEFAULT 1, max_instances int DEFAULT 100, horizon interval DEFAULT '15 minutes')
RETURNS perfopt.scaling_advice
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    now_ts timestamptz := perfopt.now();
    cur int := current_instances;
    val float8 := current_value;
    raw int;
    desired int;
    why text;
    forecast_fn regprocedure := to_regprocedure('perfopt.forecast(timestamptz[],double precision[],interval,interval)');
    peak float8;
    result perfopt.scaling_advice;
BEGIN
    IF metric IS NULL OR target IS NULL OR target <= 0 THEN
        RAISE EXCEPTION 'metric and a positive target are required'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Such as recommend_scaling(''cpu_usage_pct'', 70).';
    END IF;
    IF cur IS NULL THEN
        SELECT count(*) INTO cur FROM perfopt.instances i WHERE i.state IN ('healthy', 'degraded');
    END IF;
    IF val IS NULL THEN
        SELECT avg(m.value) INTO val FROM perfopt.live_metrics m WHERE m.metric = recommend_scaling.metric;
    END IF;
    IF val IS NULL THEN
        RAISE EXCEPTION 'no value of metric "%"', metric
            USING ERRCODE = 'no_data_found', HINT = 'Pass current_value, or name a metric of perfopt.live_metrics.';
    END IF;
    why := format('%s = %s against target %s', metric, round(val::numeric, 2), target);

    -- predictive: scale for the highest value the forecaster expects within the horizon
    IF predictive THEN
        IF forecast_fn IS NULL THEN
            RAISE EXCEPTION 'predictive scaling needs perfopt.forecast()'
                USING ERRCODE = 'feature_not_supported', HINT = 'Update perfopt, or call with predictive => false.';
        END IF;
        EXECUTE $q$
            SELECT max(f.baseline)
              FROM (SELECT array_agg(ts ORDER BY ts) AS t, array_agg(v ORDER BY ts) AS v
                      FROM (SELECT m.ts, avg(m.value) AS v FROM perfopt.metrics m
                             WHERE m.metric = $1 AND m.ts > $2 - interval '1 day' AND m.ts <= $2
                             GROUP BY m.ts) s
                     HAVING count(*) >= 3) a,
                   perfopt.forecast(a.t, a.v, $3) f$q$
           INTO peak USING metric, now_ts, horizon;
        IF peak IS NOT NULL AND peak > val THEN
            why := why || format('; forecast peak %s within %s', round(peak::numeric, 2), horizon);
            val := peak;
        END IF;
    END IF;

    raw := perfopt.hpa_desired_replicas(greatest(cur, 0), val, target, tolerance, min_instances, max_instances);
    desired := raw;

    -- scale down only to the highest recommendation of the stabilization window
    IF desired < cur THEN
        SELECT least(greatest(desired, max(a.raw_desired)), cur) INTO desired
          FROM perfopt.scaling_advice a
         WHERE a.metric = recommend_scaling.metric AND a.created_at > now_ts - stabilization;
        IF desired > raw THEN
            why := why || format('; held at %s by the %s stabilization window', desired, stabilization);
        END IF;
    END IF;

    -- no change within the cooldown of the last change advised
    IF desired <> cur AND EXISTS (
        SELECT FROM perfopt.scaling_advice a
         WHERE a.metric = recommend_scaling.metric AND a.desired_instances <> a.current_instances
           AND a.created_at > now_ts - cooldown) THEN
        why := why || format('; %s wanted, but within the %s cooldown', desired, cooldown);
        desired := cur;
    END IF;

    INSERT INTO perfopt.scaling_advice (created_at, metric, value, target, predictive,
                                        current_instances, raw_desired, desired_instances, reason)
    VALUES (now_ts, metric, val, target, predictive, cur, raw, desired, why)
    RETURNING * INTO result;

    IF desired <> cur THEN
        PERFORM pg_notify('perfopt_autoscale', row_to_json(result)::text);
        -- the same message the orchestrator's notify action sends
        PERFORM pg_notify('perfopt_actions', jsonb_build_object(
            'event', CASE WHEN desired > cur THEN 'scale_up' ELSE 'scale_down' END,
            'target', 'load_balancer',
            'params', jsonb_build_object('instances', abs(desired - cur), 'desired', desired,
                                         'advice_id', result.id))::text);
    END IF;
    RETURN result;
END
$$;

COMMENT ON FUNCTION perfopt.recommend_scaling(text, float8, float8, int, boolean, float8, interval, interval, int, int, interval) IS
'autoscaling advice by the HPA rule with tolerance, scale-down stabilization and cooldown; NOTIFY perfopt_autoscale on a change';
