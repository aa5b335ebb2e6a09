-- perfopt 1.0.0 -> 1.1.0: what the update changes in tables.  The functions,
-- views and grants are re-created from sql/definitions/ after this.
SELECT perfopt.lock_for_update();

-- issue 16: cache_redis_stats() and cache_metrics report perfopt's own
-- lookups apart (own_hits, own_misses): a function's OUT columns cannot be
-- replaced, so both are made again by sql/definitions/80_cache.sql
DROP VIEW perfopt.cache_metrics;
DROP FUNCTION perfopt.cache_redis_stats();

-- issue 19: detect_anomalies() and perfopt.anomalies say why a point was
-- reported (a reason column); the function's result type changes, so it is
-- dropped here and made again from sql/definitions/50_models.sql
ALTER TABLE perfopt.anomalies ADD COLUMN reason text;
DROP FUNCTION perfopt.detect_anomalies(timestamptz[], float8[], float8);

-- issue 20: measured action outcomes; optimization_plan() gains its costs,
-- ROI and risk (new OUT columns: made again by 60_orchestrator.sql)
-- What each action did, measured: the target's figures over a window
-- before the action and a window after it (closed by a later cycle), the
-- benefit they show, how sure that is, and what was done about it
CREATE TABLE perfopt.action_outcomes (
    action_id bigint PRIMARY KEY,
    action text NOT NULL,
    rule_id int,
    rule_name text,
    target text,
    target_owner oid,
    owner regrole NOT NULL,
    trial boolean NOT NULL DEFAULT false,
    read_queryids bigint[] NOT NULL DEFAULT '{}',
    write_queryids bigint[] NOT NULL DEFAULT '{}',
    before_from timestamptz,
    before_to timestamptz,
    after_from timestamptz,
    after_to timestamptz,
    before_start_figures jsonb,
    before_figures jsonb,
    after_start_figures jsonb,
    after_end_figures jsonb,
    measured jsonb NOT NULL DEFAULT '{}',
    benefit_ms_per_hour float8,
    benefit_pct float8,
    confidence float8,
    monthly_saving float8,
    verdict text NOT NULL DEFAULT 'measuring'
        CHECK (verdict IN ('measuring', 'helped', 'no_effect', 'harmful', 'inconclusive')),
    decision text CHECK (decision IN ('kept', 'rolled_back', 'dropped')),
    rollback_id bigint,
    closed_at timestamptz
);

CREATE INDEX ON perfopt.action_outcomes (verdict) WHERE verdict = 'measuring';

DROP FUNCTION perfopt.optimization_plan();

-- issue 18: one outbox row per transaction, its keys in an array (the view
-- over the old column goes first; sql/definitions/ makes it again).  The
-- watched tables are locked first, in the order their writers take them
-- (the table, then the outbox): sql/definitions/ re-creates their triggers,
-- and taking the outbox first would deadlock with a writer that holds one.
DO $$
DECLARE
    r regclass;
BEGIN
    FOR r IN SELECT DISTINCT w.rel FROM perfopt.cache_watches w
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) w.rel
              ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', r);
    END LOOP;
END
$$;
DROP VIEW perfopt.cache_outbox;
ALTER TABLE perfopt.cache_invalidations ADD COLUMN keys text[];
UPDATE perfopt.cache_invalidations SET keys = ARRAY[key];
ALTER TABLE perfopt.cache_invalidations ALTER COLUMN keys SET NOT NULL, DROP COLUMN key;
-- issue 18: the outbox's ids in blocks of 1,024 (one nextval per block)
ALTER SEQUENCE perfopt.cache_invalidations_id_seq INCREMENT BY 1024;

-- issue 20: cache advice (invalidations per template, adaptive TTLs)
ALTER TABLE perfopt.cache_strategies
    ADD COLUMN adaptive boolean NOT NULL DEFAULT false,
    ADD COLUMN min_ttl interval NOT NULL DEFAULT interval '1 minute' CHECK (min_ttl > interval '0'),
    ADD COLUMN max_ttl interval NOT NULL DEFAULT interval '1 day',
    ADD CHECK (max_ttl >= min_ttl);
CREATE TABLE perfopt.cache_template_stats (
    key_template text NOT NULL,
    bucket timestamptz NOT NULL,
    invalidations bigint NOT NULL DEFAULT 0,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (key_template, bucket)
);
-- issue 20: cache hit rates per template (the last window measured)
CREATE TABLE perfopt.cache_hit_samples (
    key_template text PRIMARY KEY,
    strategy text NOT NULL,
    measured_at timestamptz NOT NULL,
    sample_seconds float8 NOT NULL,
    reads bigint NOT NULL,
    misses bigint NOT NULL
);
