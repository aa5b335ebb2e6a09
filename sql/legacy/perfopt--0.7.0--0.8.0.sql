/* perfopt--0.7.0--0.8.0.sql: the Redis cache layer */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION perfopt UPDATE TO '0.8.0'" to load this file. \quit

------------------------------------------------------------------------------
-- Strategies: how long each kind of data may live in each layer

CREATE TABLE perfopt.cache_strategies (
    name text PRIMARY KEY,
    memory_ttl interval NOT NULL CHECK (memory_ttl > interval '0'),
    redis_ttl interval NOT NULL CHECK (redis_ttl > interval '0'),
    priority int NOT NULL DEFAULT 0,
    description text,
    builtin boolean NOT NULL DEFAULT false
);

COMMENT ON TABLE perfopt.cache_strategies IS
'cache strategies: the TTL of an entry in the application''s memory cache and in Redis; a higher priority is warmed first';

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

COMMENT ON TABLE perfopt.cache_watches IS
'tables whose committed row changes invalidate Redis keys made from key_template';

SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_watches', '');

-- written by the triggers in the writing transaction, emptied by the cache
-- worker once Redis confirmed; WAL-logged, so nothing committed is lost
CREATE TABLE perfopt.cache_invalidations (
    id bigserial PRIMARY KEY,
    key text NOT NULL,
    pattern boolean NOT NULL DEFAULT false,
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE perfopt.cache_invalidations IS
'the outbox: Redis keys (or SCAN patterns) to invalidate, queued by committed transactions';

CREATE VIEW perfopt.cache_outbox AS
SELECT id, key, pattern, queued_at,
       1000 * extract(epoch FROM clock_timestamp() - queued_at) AS age_ms
  FROM perfopt.cache_invalidations;

COMMENT ON VIEW perfopt.cache_outbox IS
'invalidations that are queued and not yet confirmed by Redis, oldest first by id';

------------------------------------------------------------------------------
-- Functions

CREATE FUNCTION perfopt.cache_trigger() RETURNS trigger
AS 'MODULE_PATHNAME', 'perfopt_cache_trigger'
LANGUAGE C SECURITY DEFINER;

COMMENT ON FUNCTION perfopt.cache_trigger() IS
'trigger of cache_watch: queues the keys its arguments (key templates) make from the old and the new row';

CREATE FUNCTION perfopt.cache_template_columns(rel regclass, key_template text) RETURNS text[]
AS 'MODULE_PATHNAME', 'perfopt_cache_template_columns'
LANGUAGE C STABLE;

COMMENT ON FUNCTION perfopt.cache_template_columns(regclass, text) IS
'the columns a key template names, checked against the relation (NULL: not checked); an error for a malformed template';

CREATE FUNCTION perfopt.cache_watch(rel regclass, key_template text,
                                    strategy text DEFAULT 'api_response')
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cols text[];
    templates text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = rel AND relkind IN ('r', 'p')) THEN
        RAISE EXCEPTION 'relation % is not a table', rel
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'cache_watch watches ordinary and partitioned tables.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM perfopt.cache_strategies s WHERE s.name = strategy) THEN
        RAISE EXCEPTION 'cache strategy "%" does not exist', strategy
            USING ERRCODE = 'undefined_object',
                  HINT = 'Use one of perfopt.cache_strategies, or insert a new one there.';
    END IF;
    cols := perfopt.cache_template_columns(rel, key_template);

    INSERT INTO perfopt.cache_watches (rel, key_template, strategy, columns)
    VALUES (rel, key_template, strategy, cols)
    ON CONFLICT ON CONSTRAINT cache_watches_pkey
    DO UPDATE SET strategy = EXCLUDED.strategy;

    PERFORM perfopt.cache_retrigger(rel);
END
$$;

COMMENT ON FUNCTION perfopt.cache_watch(regclass, text, text) IS
'invalidate the Redis keys made from key_template (''lead:{id}'') with the old and the new row of every committed change to rel';

-- (re)create the triggers of rel with all its templates as arguments
CREATE FUNCTION perfopt.cache_retrigger(rel regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    args text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = 'perfopt_cache_invalidate') THEN
        EXECUTE format('DROP TRIGGER perfopt_cache_invalidate ON %s', rel);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel AND tgname = 'perfopt_cache_truncate') THEN
        EXECUTE format('DROP TRIGGER perfopt_cache_truncate ON %s', rel);
    END IF;
    SELECT string_agg(quote_literal(key_template), ', ' ORDER BY key_template)
      INTO args FROM perfopt.cache_watches w WHERE w.rel = cache_retrigger.rel;
    IF args IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER perfopt_cache_invalidate AFTER INSERT OR UPDATE OR DELETE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION perfopt.cache_trigger(%s)', rel, args);
    EXECUTE format('CREATE TRIGGER perfopt_cache_truncate AFTER TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION perfopt.cache_trigger(%s)', rel, args);
END
$$;

CREATE FUNCTION perfopt.cache_unwatch(rel regclass, key_template text DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    removed int;
BEGIN
    DELETE FROM perfopt.cache_watches w
     WHERE w.rel = cache_unwatch.rel
       AND (cache_unwatch.key_template IS NULL OR w.key_template = cache_unwatch.key_template);
    GET DIAGNOSTICS removed = ROW_COUNT;
    PERFORM perfopt.cache_retrigger(rel);
    RETURN removed;
END
$$;

COMMENT ON FUNCTION perfopt.cache_unwatch(regclass, text) IS
'stop invalidating keys for rel (all its templates, or the one given); returns how many watches it removed';

CREATE FUNCTION perfopt.cache_invalidate(pattern text) RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_cache_invalidate'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION perfopt.cache_invalidate(text) IS
'queue the invalidation of every Redis key matching a glob pattern (SCAN MATCH), done once the transaction commits';

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
    UNIQUE (key_template, query)
);

COMMENT ON TABLE perfopt.cache_warmers IS
'queries whose most read keys (Redis OBJECT FREQ at least min_freq) cache_rewarm sets again once less than refresh_pct of their TTL is left';

SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_warmers', '');

CREATE FUNCTION perfopt.cache_warm(strategy text, key_template text, query text,
                                   keep_warm boolean DEFAULT false)
RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_cache_warm'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION perfopt.cache_warm(text, text, text, boolean) IS
'SET one Redis key per row of query (from key_template), the row as JSON, expiring after the strategy''s redis_ttl; keep_warm: also register it in cache_warmers';

CREATE FUNCTION perfopt.cache_rewarm() RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_cache_rewarm'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION perfopt.cache_rewarm() IS
'for each enabled warmer, SET again the keys Redis counts as read most (OBJECT FREQ, an LFU maxmemory-policy) before they expire; returns the keys set';

INSERT INTO perfopt.jobs (job_name, command, schedule, builtin) VALUES
    ('cache_rewarm', 'SELECT perfopt.cache_rewarm()', interval '10 seconds', true);

CREATE FUNCTION perfopt.cache_redis_stats(
    OUT connected boolean, OUT hits bigint, OUT misses bigint, OUT keys bigint,
    OUT used_memory_bytes bigint, OUT error text)
AS 'MODULE_PATHNAME', 'perfopt_cache_redis_stats'
LANGUAGE C VOLATILE;

CREATE FUNCTION perfopt.cache_worker_state(
    OUT worker_pid int, OUT redis_connected boolean, OUT invalidations_sent bigint,
    OUT batches_sent bigint, OUT last_sent_at timestamptz,
    OUT last_error text, OUT last_error_at timestamptz)
AS 'MODULE_PATHNAME', 'perfopt_cache_worker_state'
LANGUAGE C VOLATILE;

CREATE VIEW perfopt.cache_metrics AS
SELECT r.hits, r.misses,
       CASE WHEN r.hits + r.misses > 0
            THEN round(100.0 * r.hits / (r.hits + r.misses), 2)::float8 END AS hit_rate_pct,
       r.keys,
       w.invalidations_sent,
       o.depth AS outbox_depth,
       o.oldest_age_ms,
       coalesce(w.last_error, r.error) AS last_error,
       CASE WHEN w.last_error IS NOT NULL THEN w.last_error_at
            WHEN r.error IS NOT NULL THEN now() END AS last_error_at,
       w.redis_connected AS worker_connected,
       w.worker_pid,
       w.last_sent_at,
       r.used_memory_bytes
  FROM perfopt.cache_redis_stats() r,
       perfopt.cache_worker_state() w,
       (SELECT count(*) AS depth,
               1000 * extract(epoch FROM clock_timestamp() - min(queued_at)) AS oldest_age_ms
          FROM perfopt.cache_invalidations) o;

COMMENT ON VIEW perfopt.cache_metrics IS
'Redis hits, misses and hit rate (INFO stats), keys, invalidations sent by the worker, the outbox, and the last error';

-- only cache_watch attaches the trigger: attached by anyone else, it could
-- invalidate any key; writers need no privilege on it to fire it
REVOKE ALL ON FUNCTION perfopt.cache_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.cache_watch(regclass, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.cache_unwatch(regclass, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.cache_retrigger(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.cache_warm(text, text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.cache_rewarm() FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.cache_invalidate(text) FROM PUBLIC;
GRANT SELECT ON perfopt.cache_strategies, perfopt.cache_watches, perfopt.cache_outbox, perfopt.cache_warmers,
    perfopt.cache_metrics TO PUBLIC;
