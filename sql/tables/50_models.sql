-- models: tables, indexes and seeds (anomaly detection and capacity forecasting)
-- Run once, by CREATE EXTENSION; an update changes them in sql/updates/.

------------------------------------------------------------------------------
-- The anomaly job

CREATE TABLE perfopt.anomalies (
    anomaly_id bigserial PRIMARY KEY,
    group_id bigint NOT NULL,
    detected_at timestamptz NOT NULL,
    metric text NOT NULL,
    entity text NOT NULL DEFAULT '',
    value float8,
    expected float8,
    score float8,
    severity text NOT NULL CHECK (severity IN ('warning', 'critical')),
    resolved_at timestamptz,
    reason text
);

CREATE INDEX ON perfopt.anomalies (detected_at);
CREATE INDEX ON perfopt.anomalies (metric, entity) WHERE resolved_at IS NULL;

CREATE TABLE perfopt.anomaly_progress (
    metric text NOT NULL,
    entity text NOT NULL,
    analyzed_until timestamptz NOT NULL,
    PRIMARY KEY (metric, entity)
);

------------------------------------------------------------------------------
-- Capacity: hourly history of each resource, its forecast, alerts

CREATE TABLE perfopt.capacity_history (
    resource text NOT NULL,
    entity text NOT NULL,
    hour timestamptz NOT NULL,
    value float8,
    capacity float8,
    PRIMARY KEY (resource, entity, hour)
);

CREATE TABLE perfopt.capacity_forecasts (
    resource text NOT NULL,
    entity text NOT NULL,
    forecast_at timestamptz NOT NULL,
    unit text NOT NULL,
    current_value float8,
    capacity float8,
    forecast_30d float8,
    forecast_90d float8,
    pessimistic_90d float8,
    exhaustion_at timestamptz,
    optimistic_exhaustion_at timestamptz,
    pessimistic_exhaustion_at timestamptz,
    growth_per_day float8,
    confidence float8,
    history_hours int,
    action text,
    cost text,
    recommendation text,
    PRIMARY KEY (resource, entity)
);

CREATE TABLE perfopt.capacity_forecast_points (
    resource text NOT NULL,
    entity text NOT NULL,
    ts timestamptz NOT NULL,
    baseline float8,
    optimistic float8,
    pessimistic float8,
    capacity float8,
    PRIMARY KEY (resource, entity, ts)
);

CREATE TABLE perfopt.capacity_alerts (
    alert_id bigserial PRIMARY KEY,
    resource text NOT NULL,
    entity text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('warning', 'critical')),
    raised_at timestamptz NOT NULL,
    exhaustion_at timestamptz,
    message text NOT NULL,
    cleared_at timestamptz
);

CREATE UNIQUE INDEX capacity_alerts_open ON perfopt.capacity_alerts (resource, entity)
    WHERE cleared_at IS NULL;

INSERT INTO perfopt.jobs (job_name, command, schedule, builtin) VALUES
    ('analyze_anomalies', 'SELECT perfopt.analyze_anomalies()', interval '1 minute', true),
    ('forecast_capacity', 'SELECT perfopt.forecast_capacity()', interval '1 hour', true);
