-- models: functions, views, triggers, policies and grants (anomaly detection and capacity forecasting)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

------------------------------------------------------------------------------
-- The detector and the forecaster, on any series

CREATE OR REPLACE FUNCTION perfopt.detect_anomalies(
    times timestamptz[],
    vals float8[],
    threshold float8 DEFAULT NULL)
RETURNS TABLE (ts timestamptz, value float8, expected float8, score float8,
               is_anomaly boolean, reason text)
AS 'MODULE_PATHNAME', 'perfopt_detect_anomalies'
-- STABLE: with a NULL threshold it reads perfopt.anomaly_threshold
LANGUAGE C STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.detect_anomalies(timestamptz[], float8[], float8) IS
'anomalies of a series, causally: points are judged in time order (a stable sort: repeated times keep their input order), the row for time t uses only points up to t, and rows come back in input order; threshold in robust deviations (NULL: perfopt.anomaly_threshold); reason says why a point was reported';

CREATE OR REPLACE FUNCTION perfopt.forecast(
    times timestamptz[],
    vals float8[],
    horizon interval DEFAULT interval '90 days',
    step interval DEFAULT NULL)
RETURNS TABLE (ts timestamptz, baseline float8, optimistic float8,
               pessimistic float8, confidence float8)
AS 'MODULE_PATHNAME', 'perfopt_forecast_sql'
LANGUAGE C IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.forecast(timestamptz[], float8[], interval, interval) IS
'forecast of a series over horizon: baseline, optimistic (lower) and pessimistic (upper) bounds of an 80% interval, confidence 0-100 from a backtest';

COMMENT ON TABLE perfopt.anomalies IS
'one row per excursion the anomaly job found in a series of perfopt.metrics; resolved_at is set when the series is back to normal';
COMMENT ON COLUMN perfopt.anomalies.group_id IS
'the anomaly_id of the first anomaly of its incident: an anomaly that starts within 5 minutes of an incident''s first anomaly, in another series, joins it';
COMMENT ON COLUMN perfopt.anomalies.reason IS
'why the detector reported the point: which baseline it left, by how much, a spike or a shift';
COMMENT ON COLUMN perfopt.anomalies.score IS
'robust deviations from the expected value, signed; critical when 4 times perfopt.anomaly_threshold or more';

COMMENT ON TABLE perfopt.anomaly_progress IS
'the newest point of each series whose verdict the anomaly job recorded';

CREATE OR REPLACE FUNCTION perfopt.analyze_anomalies() RETURNS int
AS 'MODULE_PATHNAME', 'perfopt_analyze_anomalies'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.analyze_anomalies() IS
'the anomaly job: runs the detector over every series sampled in the last day; returns the number of anomalies opened';

CREATE OR REPLACE VIEW perfopt.anomaly_groups AS
    SELECT group_id,
           min(detected_at) AS started_at,
           CASE WHEN bool_or(resolved_at IS NULL) THEN NULL
                ELSE max(resolved_at) END AS resolved_at,
           CASE WHEN bool_or(severity = 'critical') THEN 'critical'
                ELSE 'warning' END AS severity,
           count(*) AS anomalies,
           array_agg(CASE WHEN entity = '' THEN metric
                          ELSE metric || ' (' || entity || ')' END
                     ORDER BY detected_at, anomaly_id) AS series
      FROM perfopt.anomalies
     GROUP BY group_id;

COMMENT ON VIEW perfopt.anomaly_groups IS
'incidents: anomalies of different series that started together, open until all of them are resolved';

COMMENT ON TABLE perfopt.capacity_history IS
'hourly use of each resource against its limit, rolled up from perfopt.metrics and kept 400 days';

COMMENT ON TABLE perfopt.capacity_forecasts IS
'the latest forecast of each resource, written by perfopt.forecast_capacity()';

COMMENT ON TABLE perfopt.capacity_forecast_points IS
'the latest forecast of each resource, hour by hour over perfopt.forecast_horizon, for charts';

COMMENT ON TABLE perfopt.capacity_alerts IS
'raised once when a resource is forecast to run out within perfopt.forecast_horizon (critical: within 30 days); cleared when the forecast recovers';

CREATE OR REPLACE VIEW perfopt.capacity_forecast AS
    SELECT resource, entity, current_value, capacity, forecast_30d, forecast_90d,
           exhaustion_at, confidence, unit, pessimistic_90d,
           optimistic_exhaustion_at, pessimistic_exhaustion_at, growth_per_day,
           action, recommendation, forecast_at
      FROM perfopt.capacity_forecasts
     ORDER BY exhaustion_at NULLS LAST, resource, entity;

COMMENT ON VIEW perfopt.capacity_forecast IS
'each resource against its limit: the forecast in 30 and 90 days and when it runs out (baseline; optimistic and pessimistic scenarios)';

CREATE OR REPLACE VIEW perfopt.bottlenecks AS
    SELECT row_number() OVER (ORDER BY coalesce(exhaustion_at, pessimistic_exhaustion_at,
                                                'infinity'),
                                       current_value / capacity DESC) AS rank,
           resource, entity,
           round((100 * current_value / capacity)::numeric, 1) AS utilization_pct,
           round((100 * forecast_90d / capacity)::numeric, 1) AS utilization_90d_pct,
           exhaustion_at, pessimistic_exhaustion_at,
           round((extract(epoch FROM exhaustion_at - forecast_at) / 86400)::numeric, 1)
               AS days_left,
           action, cost, recommendation
      FROM perfopt.capacity_forecasts
     WHERE capacity > 0
     ORDER BY rank;

COMMENT ON VIEW perfopt.bottlenecks IS
'resources with a known limit, the one that saturates first on top';

-- What to do about a resource, cheapest fitting action first
CREATE OR REPLACE FUNCTION perfopt.capacity_recommendation(
    resource text, entity text, current_value float8, capacity float8,
    forecast_90d float8, exhaustion_at timestamptz,
    OUT action text, OUT cost text, OUT recommendation text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    runs_out text := CASE WHEN exhaustion_at IS NULL THEN 'is not forecast to run out'
                          ELSE 'runs out about ' || to_char(exhaustion_at AT TIME ZONE 'UTC',
                                                            'YYYY-MM-DD') || ' (UTC)' END;
    missing float8 := greatest(forecast_90d - capacity, 0);
BEGIN
    CASE resource
    WHEN 'disk' THEN
        action := 'add disk';
        cost := 'medium';
        recommendation := format('The %s file system %s. Grow it by %s or more, or archive and '
                                 'partition the tables that grow fastest (see the table_size rows).',
                                 entity, runs_out,
                                 pg_size_pretty(greatest(missing, 0.2 * capacity)::bigint));
    WHEN 'database_size' THEN
        action := 'archive';
        cost := 'low';
        recommendation := format('Database %s %s on the free space of its file system. Archive or '
                                 'delete old rows of its largest tables, or add disk.',
                                 entity, runs_out);
    WHEN 'table_size' THEN
        action := 'partition or archive';
        cost := 'low';
        recommendation := format('Table %s %s on the free space of its file system. Partition it by '
                                 'time and detach or archive old partitions.', entity, runs_out);
    WHEN 'connections' THEN
        action := 'add a pooler';
        cost := 'low';
        recommendation := format('Client connections %s against max_connections (%s usable). Put a '
                                 'transaction pooler such as PgBouncer in front (perfopt.pool_recommendation() '
                                 'sizes it), or raise max_connections.', runs_out, capacity);
    WHEN 'transaction_ids' THEN
        action := 'optimize';
        cost := 'low';
        recommendation := format('Transaction IDs %s before wraparound. Run VACUUM (FREEZE) on the '
                                 'databases with the oldest datfrozenxid and make sure autovacuum keeps up.',
                                 runs_out);
    WHEN 'wal_rate' THEN
        action := 'raise a limit';
        cost := 'low';
        recommendation := format('WAL %s against max_wal_size per checkpoint_timeout (%s/s): beyond it '
                                 'checkpoints are requested early. Raise max_wal_size.',
                                 runs_out, pg_size_pretty(capacity::bigint));
    WHEN 'tps' THEN
        action := CASE WHEN forecast_90d > 1.5 * current_value THEN 'optimize' END;
        cost := CASE WHEN action IS NOT NULL THEN 'low' END;
        recommendation := CASE WHEN action IS NOT NULL THEN
            format('Transactions per second in %s grow %s%% in 90 days. Apply perfopt.recommend_indexes() '
                   'before scaling up; add read replicas (scale out) if reads dominate.',
                   entity, round((100 * (forecast_90d / nullif(current_value, 0) - 1))::numeric))
            END;
    ELSE
        action := NULL;
    END CASE;
END
$$;

-- Rolls the capacity resources of perfopt.metrics up into hourly history
CREATE OR REPLACE FUNCTION perfopt.capacity_rollup(since timestamptz, until timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    connection_limit float8 := current_setting('max_connections')::float8
                               - current_setting('superuser_reserved_connections')::float8;
    wal_limit float8 := pg_size_bytes(current_setting('max_wal_size'))
                        / extract(epoch FROM current_setting('checkpoint_timeout')::interval);
    -- PostgreSQL stops assigning transaction IDs 3 million short of 2^31
    xid_limit float8 := 2147483647 - 3000000;
    n bigint;
BEGIN
    WITH hourly AS (
        SELECT date_trunc('hour', ts) AS hour, metric, entity,
               avg(value) AS mean, max(value) AS peak
          FROM perfopt.metrics
         WHERE ts >= since AND ts < until
           AND metric IN ('disk_total_bytes', 'disk_free_bytes', 'database_size_bytes',
                          'table_size_bytes', 'connections', 'frozenxid_age_xids',
                          'wal_bytes_per_sec', 'transactions_per_sec')
           AND (metric <> 'connections' OR entity = 'total')
         GROUP BY 1, 2, 3),
    free AS (SELECT hour, entity, mean AS free FROM hourly WHERE metric = 'disk_free_bytes'),
    total AS (SELECT hour, entity, mean AS total FROM hourly WHERE metric = 'disk_total_bytes'),
    rows AS (
        SELECT 'disk' AS resource, t.entity, t.hour, t.total - f.free AS value, t.total AS capacity
          FROM total t JOIN free f USING (hour, entity)
        UNION ALL
        SELECT CASE h.metric WHEN 'database_size_bytes' THEN 'database_size'
                             ELSE 'table_size' END,
               h.entity, h.hour, h.mean, h.mean + f.free
          FROM hourly h JOIN free f ON f.hour = h.hour AND f.entity = 'data_directory'
         WHERE h.metric IN ('database_size_bytes', 'table_size_bytes')
        UNION ALL
        SELECT 'connections', '', hour, peak, connection_limit
          FROM hourly WHERE metric = 'connections'
        UNION ALL
        SELECT 'transaction_ids', '', hour, peak, xid_limit
          FROM hourly WHERE metric = 'frozenxid_age_xids'
        UNION ALL
        SELECT 'wal_rate', '', hour, mean, wal_limit
          FROM hourly WHERE metric = 'wal_bytes_per_sec'
        UNION ALL
        SELECT 'tps', entity, hour, mean, NULL
          FROM hourly WHERE metric = 'transactions_per_sec')
    INSERT INTO perfopt.capacity_history AS c (resource, entity, hour, value, capacity)
    SELECT resource, entity, hour, value, capacity FROM rows
    ON CONFLICT (resource, entity, hour) DO UPDATE
       SET value = excluded.value, capacity = excluded.capacity;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

COMMENT ON FUNCTION perfopt.capacity_rollup(timestamptz, timestamptz) IS
'rolls the hours in [since, until) of perfopt.metrics up into perfopt.capacity_history';

-- The capacity job: roll up, forecast every resource, raise and clear alerts
CREATE OR REPLACE FUNCTION perfopt.forecast_capacity(at timestamptz DEFAULT perfopt.now())
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    horizon interval := current_setting('perfopt.forecast_horizon')::interval;
    until timestamptz := date_trunc('hour', at);
    since timestamptz;
    r record;
    f record;
    advice record;
    backtest_confidence float8;
    forecasts int := 0;
BEGIN
    -- the hours not rolled up yet (the newest one again: it may have been partial)
    SELECT coalesce(max(hour), '-infinity') INTO since
      FROM perfopt.capacity_history WHERE hour < until;
    PERFORM perfopt.capacity_rollup(since, until);

    DELETE FROM perfopt.capacity_forecasts;
    DELETE FROM perfopt.capacity_forecast_points;

    FOR r IN
        SELECT resource, entity,
               array_agg(hour ORDER BY hour) AS times,
               array_agg(value ORDER BY hour) AS vals,
               (array_agg(value ORDER BY hour DESC))[1] AS current_value,
               (array_agg(capacity ORDER BY hour DESC))[1] AS capacity,
               max(hour) AS last_hour,
               count(*) AS hours
          FROM perfopt.capacity_history
         WHERE hour >= at - interval '400 days' AND hour < until AND value IS NOT NULL
         GROUP BY resource, entity
        HAVING max(hour) >= until - interval '1 day' AND count(*) >= 2
    LOOP
        WITH p AS (SELECT * FROM perfopt.forecast(r.times, r.vals, horizon, interval '1 hour')),
             saved AS (INSERT INTO perfopt.capacity_forecast_points
                       SELECT r.resource, r.entity, p.ts, p.baseline, p.optimistic,
                              p.pessimistic, r.capacity
                         FROM p)
        SELECT max(p.confidence) INTO backtest_confidence FROM p;

        SELECT (SELECT p.baseline FROM perfopt.capacity_forecast_points p
                 WHERE p.resource = r.resource AND p.entity = r.entity
                   AND p.ts <= r.last_hour + interval '30 days'
                 ORDER BY p.ts DESC LIMIT 1) AS d30,
               max(p.baseline) FILTER (WHERE p.ts = r.last_hour + interval '90 days') AS d90,
               max(p.pessimistic) FILTER (WHERE p.ts = r.last_hour + interval '90 days') AS p90,
               min(p.ts) FILTER (WHERE p.baseline >= r.capacity) AS ex,
               min(p.ts) FILTER (WHERE p.optimistic >= r.capacity) AS ex_opt,
               min(p.ts) FILTER (WHERE p.pessimistic >= r.capacity) AS ex_pes
          INTO f
          FROM perfopt.capacity_forecast_points p
         WHERE p.resource = r.resource AND p.entity = r.entity;

        -- a resource already at its limit is exhausted now
        IF r.current_value >= r.capacity THEN
            f.ex := r.last_hour;
            f.ex_opt := r.last_hour;
            f.ex_pes := r.last_hour;
        END IF;

        SELECT * INTO advice
          FROM perfopt.capacity_recommendation(r.resource, r.entity, r.current_value,
                                               r.capacity, coalesce(f.d90, f.d30), f.ex);

        INSERT INTO perfopt.capacity_forecasts
            (resource, entity, forecast_at, unit, current_value, capacity, forecast_30d,
             forecast_90d, pessimistic_90d, exhaustion_at, optimistic_exhaustion_at,
             pessimistic_exhaustion_at, growth_per_day, confidence, history_hours,
             action, cost, recommendation)
        VALUES (r.resource, r.entity, at,
                CASE r.resource WHEN 'connections' THEN 'connections'
                                WHEN 'transaction_ids' THEN 'transactions'
                                WHEN 'wal_rate' THEN 'bytes/s'
                                WHEN 'tps' THEN 'transactions/s'
                                ELSE 'bytes' END,
                r.current_value, r.capacity, f.d30, f.d90, f.p90, f.ex, f.ex_opt, f.ex_pes,
                (f.d30 - r.current_value) / 30, backtest_confidence, r.hours,
                advice.action, advice.cost, advice.recommendation);

        forecasts := forecasts + 1;
    END LOOP;

    -- alerts: raised once per resource, updated while open, cleared on recovery
    UPDATE perfopt.capacity_alerts a
       SET cleared_at = at
      FROM (SELECT a2.alert_id
              FROM perfopt.capacity_alerts a2
              LEFT JOIN perfopt.capacity_forecasts c USING (resource, entity)
             WHERE a2.cleared_at IS NULL AND c.exhaustion_at IS NULL) gone
     WHERE a.alert_id = gone.alert_id;

    INSERT INTO perfopt.capacity_alerts AS a
        (resource, entity, severity, raised_at, exhaustion_at, message)
    SELECT resource, entity,
           CASE WHEN exhaustion_at <= at + interval '30 days' THEN 'critical'
                ELSE 'warning' END,
           at, exhaustion_at,
           format('%s%s runs out about %s: %s', resource,
                  CASE WHEN entity <> '' THEN ' ' || entity ELSE '' END,
                  to_char(exhaustion_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                  recommendation)
      FROM perfopt.capacity_forecasts
     WHERE exhaustion_at IS NOT NULL
    ON CONFLICT (resource, entity) WHERE cleared_at IS NULL DO UPDATE
       SET severity = excluded.severity, exhaustion_at = excluded.exhaustion_at,
           message = excluded.message;

    RETURN forecasts;
END
$$;

COMMENT ON FUNCTION perfopt.forecast_capacity(timestamptz) IS
'the capacity job: rolls perfopt.metrics up by hour, forecasts every resource over perfopt.forecast_horizon, raises and clears capacity alerts';

CREATE OR REPLACE FUNCTION perfopt.capacity_dashboard()
RETURNS TABLE (resource text, entity text, status text, utilization_pct numeric,
               current_value float8, capacity float8, forecast_90d float8,
               exhaustion_at timestamptz, days_left numeric, confidence float8,
               action text, cost text, recommendation text, alert text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.resource, c.entity,
           CASE WHEN c.capacity IS NULL THEN 'no limit'
                WHEN c.exhaustion_at <= c.forecast_at + interval '30 days' THEN 'critical'
                WHEN c.exhaustion_at IS NOT NULL THEN 'warning'
                WHEN c.pessimistic_exhaustion_at IS NOT NULL THEN 'watch'
                ELSE 'ok' END,
           round((100 * c.current_value / nullif(c.capacity, 0))::numeric, 1),
           c.current_value, c.capacity, c.forecast_90d, c.exhaustion_at,
           round((extract(epoch FROM c.exhaustion_at - c.forecast_at) / 86400)::numeric, 1),
           c.confidence, c.action, c.cost, c.recommendation,
           (SELECT a.severity || ' since ' || a.raised_at
              FROM perfopt.capacity_alerts a
             WHERE a.resource = c.resource AND a.entity = c.entity AND a.cleared_at IS NULL)
      FROM perfopt.capacity_forecasts c
     ORDER BY c.exhaustion_at NULLS LAST, c.pessimistic_exhaustion_at NULLS LAST,
              c.current_value / nullif(c.capacity, 0) DESC NULLS LAST, c.resource, c.entity
$$;

COMMENT ON FUNCTION perfopt.capacity_dashboard() IS
'one row per resource, the most urgent first: status, use, when it runs out, what to do';
