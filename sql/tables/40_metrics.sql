-- metrics: tables, indexes and seeds (jobs, the metrics sampler, retention and latency percentiles)
-- Run once, by CREATE EXTENSION; an update changes them in sql/updates/.

------------------------------------------------------------------------------
-- Jobs: what the launcher runs, and what came of each run

CREATE TABLE perfopt.jobs (
    job_name text PRIMARY KEY,
    command text NOT NULL,
    schedule interval CHECK (schedule >= interval '1 second'),
    enabled boolean NOT NULL DEFAULT true,
    timeout interval NOT NULL DEFAULT interval '5 minutes'
        CHECK (timeout >= interval '0'),
    builtin boolean NOT NULL DEFAULT false,
    last_start timestamptz,
    last_finish timestamptz,
    last_status text CHECK (last_status IN ('running', 'succeeded', 'failed')),
    last_error text,
    last_duration_ms float8,
    failures int NOT NULL DEFAULT 0,
    next_run timestamptz
);

CREATE TABLE perfopt.job_runs (
    run_id bigserial PRIMARY KEY,
    job_name text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    sqlstate text,
    message text,
    duration_ms float8
);

CREATE INDEX ON perfopt.job_runs (job_name, started_at);

-- jobs users add are dumped; the built-in ones come with CREATE EXTENSION
SELECT pg_catalog.pg_extension_config_dump('perfopt.jobs', 'WHERE NOT builtin');

------------------------------------------------------------------------------
-- Metrics: partitioned by day, so that retention drops whole partitions

CREATE TABLE perfopt.metrics (
    ts timestamptz NOT NULL,
    metric text NOT NULL,
    entity text NOT NULL DEFAULT '',
    value float8
) PARTITION BY RANGE (ts);

-- rows of days that have no partition (imported series, say) land here
CREATE TABLE perfopt.metrics_default PARTITION OF perfopt.metrics DEFAULT;

-- Each partition has an index of its own, made with it (metrics_partition),
-- and perfopt.metrics has none: pg_dump keeps the daily partitions (they are
-- not the extension's), and pg_restore, attaching one to a partitioned index
-- of the extension, would make its index and then fail to make it again
CREATE INDEX ON perfopt.metrics_default (metric, entity, ts);

CREATE TABLE perfopt.metrics_latest (
    metric text NOT NULL,
    entity text NOT NULL,
    ts timestamptz NOT NULL,
    value float8,
    PRIMARY KEY (metric, entity)
);

INSERT INTO perfopt.jobs (job_name, command, schedule, builtin) VALUES
    ('sample_metrics', 'SELECT perfopt.sample_metrics()', NULL, true),
    ('apply_retention', 'SELECT perfopt.apply_retention()', interval '1 hour', true);
