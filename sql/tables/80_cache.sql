-- cache: tables, indexes and seeds (the Redis cache layer)
-- Run once, by CREATE EXTENSION; an update changes them in sql/updates/.

------------------------------------------------------------------------------
-- Strategies: how long each kind of data may live in each layer

CREATE TABLE perfopt.cache_strategies (
    name text PRIMARY KEY,
    memory_ttl interval NOT NULL CHECK (memory_ttl > interval '0'),
    redis_ttl interval NOT NULL CHECK (redis_ttl > interval '0'),
    priority int NOT NULL DEFAULT 0,
    description text,
    builtin boolean NOT NULL DEFAULT false,
    -- adaptive: cache_warm and cache_rewarm use cache_advice's recommended
    -- TTL, kept within [min_ttl, max_ttl], instead of redis_ttl
    adaptive boolean NOT NULL DEFAULT false,
    min_ttl interval NOT NULL DEFAULT interval '1 minute' CHECK (min_ttl > interval '0'),
    max_ttl interval NOT NULL DEFAULT interval '1 day',
    CHECK (max_ttl >= min_ttl)
);

INSERT INTO perfopt.cache_strategies (name, memory_ttl, redis_ttl, priority, description, builtin) VALUES
    ('user_data', '30 minutes', '1 hour', 30, 'user and lead records', true),
    ('analytics', '5 minutes', '15 minutes', 10, 'aggregates and reports', true),
    ('api_response', '10 minutes', '30 minutes', 20, 'rendered API responses', true),
    ('static_content', '2 hours', '24 hours', 0, 'content that rarely changes', true);

SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_strategies', 'WHERE NOT builtin');

------------------------------------------------------------------------------
-- Watches and the outbox of invalidations

CREATE TABLE perfopt.cache_watches (
    rel regclass NOT NULL,
    key_template text NOT NULL,
    strategy text NOT NULL REFERENCES perfopt.cache_strategies ON UPDATE CASCADE,
    columns text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rel, key_template)
);

SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_watches', '');

-- written by the triggers in the writing transaction, one row per
-- transaction with all its keys (or one row per pattern), emptied by the
-- cache worker once Redis confirmed; WAL-logged, so nothing committed is lost
CREATE TABLE perfopt.cache_invalidations (
    id bigserial PRIMARY KEY,
    keys text[] NOT NULL,
    pattern boolean NOT NULL DEFAULT false,
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- each nextval reserves a block of 1,024 ids, which the committing backends
-- share (perfopt_cache_next_id in src/cache/cache_worker.c): one sequence
-- access per 1,024 outbox rows; a row inserted by hand takes a block of its own
ALTER SEQUENCE perfopt.cache_invalidations_id_seq INCREMENT BY 1024;

-- what cache_warm(..., keep_warm => true) keeps warm
CREATE TABLE perfopt.cache_warmers (
    id serial PRIMARY KEY,
    strategy text NOT NULL REFERENCES perfopt.cache_strategies ON UPDATE CASCADE,
    key_template text NOT NULL,
    query text NOT NULL,
    min_freq int NOT NULL DEFAULT 6 CHECK (min_freq BETWEEN 0 AND 255),
    refresh_pct int NOT NULL DEFAULT 25 CHECK (refresh_pct BETWEEN 1 AND 100),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_run timestamptz,
    last_rewarmed bigint,
    -- the query is this role's text: cache_rewarm runs it as this role
    owner regrole NOT NULL,
    UNIQUE (key_template, query)
);

SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_warmers', '');
SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_warmers_id_seq', '');

INSERT INTO perfopt.jobs (job_name, command, schedule, builtin) VALUES
    ('cache_rewarm', 'SELECT perfopt.cache_rewarm()', interval '10 seconds', true);

-- the last window cache_hit_rates() measured per key template (reads and
-- misses), for cache_advice's hit rate; one row per template
CREATE TABLE perfopt.cache_hit_samples (
    key_template text PRIMARY KEY,
    strategy text NOT NULL,
    measured_at timestamptz NOT NULL,
    sample_seconds float8 NOT NULL,
    reads bigint NOT NULL,
    misses bigint NOT NULL
);

-- invalidations per key template and hour, counted by the cache worker in
-- the transaction that takes them from the outbox (so only sent ones count);
-- pruned by apply_retention with the metrics
CREATE TABLE perfopt.cache_template_stats (
    key_template text NOT NULL,
    bucket timestamptz NOT NULL,
    invalidations bigint NOT NULL DEFAULT 0,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (key_template, bucket)
);
