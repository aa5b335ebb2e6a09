-- orchestrator: tables, indexes and seeds (the orchestrator: rules, actions, incidents, reports)
-- Run once, by CREATE EXTENSION; an update changes them in sql/updates/.

------------------------------------------------------------------------------
-- Rules, what they did, incidents and reports

CREATE TABLE perfopt.automation_rules (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    trigger_type text NOT NULL,
    metric text,
    entity text,
    condition text,
    threshold float8,
    duration interval NOT NULL DEFAULT interval '0',
    schedule text,
    actions jsonb NOT NULL DEFAULT '[]',
    enabled boolean NOT NULL DEFAULT true,
    cooldown interval NOT NULL DEFAULT interval '10 minutes',
    dry_run boolean NOT NULL DEFAULT true,
    severity text NOT NULL DEFAULT 'warning',
    min_confidence float8 NOT NULL DEFAULT 0.5,
    max_failures int NOT NULL DEFAULT 3,
    failures int NOT NULL DEFAULT 0,
    owner regrole NOT NULL DEFAULT current_user::regrole,
    builtin boolean NOT NULL DEFAULT false,
    last_fired_at timestamptz,
    last_evaluated_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

SELECT pg_catalog.pg_extension_config_dump('perfopt.automation_rules', 'WHERE NOT builtin');
-- and the sequence, so that ids go on after a restore instead of meeting the
-- restored rows' (the builtin rows take the first ones in a fresh install)
SELECT pg_catalog.pg_extension_config_dump('perfopt.automation_rules_id_seq', '');

CREATE TABLE perfopt.action_log (
    id bigserial PRIMARY KEY,
    cycle_id bigint,
    rule_id int,
    rule_name text,
    trigger_values jsonb,
    action text NOT NULL,
    target text,
    statement text,
    rollback_statement text,
    dry_run boolean NOT NULL,
    confidence float8,
    outcome text NOT NULL CHECK (outcome IN ('proposed', 'dry_run', 'queued', 'running',
                                             'succeeded', 'failed', 'skipped')),
    error text,
    details jsonb NOT NULL DEFAULT '{}',
    owner regrole NOT NULL,
    target_owner oid,
    queued_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    check_after timestamptz,
    rollback_of bigint,
    rolled_back_by bigint
);

CREATE INDEX ON perfopt.action_log (rule_id, target, queued_at);
CREATE INDEX ON perfopt.action_log (outcome) WHERE outcome IN ('queued', 'running');

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

CREATE TABLE perfopt.incidents (
    id bigserial PRIMARY KEY,
    opened_at timestamptz NOT NULL,
    resolved_at timestamptz,
    severity text NOT NULL CHECK (severity IN ('warning', 'critical')),
    title text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    series text[] NOT NULL DEFAULT '{}',
    rule_ids int[] NOT NULL DEFAULT '{}',
    anomaly_group bigint,
    capacity_alert bigint,
    clear_since timestamptz
);

CREATE INDEX ON perfopt.incidents (opened_at);

CREATE TABLE perfopt.optimization_reports (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL,
    report jsonb NOT NULL
);

CREATE INDEX ON perfopt.optimization_reports (created_at);

------------------------------------------------------------------------------
-- Seeds: the users' alert thresholds and example rule, all dry runs

INSERT INTO perfopt.automation_rules
    (name, trigger_type, metric, entity, condition, threshold, duration, actions, cooldown, dry_run,
     severity, builtin, owner)
VALUES
    ('slow_responses', 'threshold', 'latency_p95_ms', '', 'greater_than', 500, interval '5 minutes',
     '[{"type": "notify", "event": "slow_responses"}]', interval '15 minutes', true, 'warning', true,
     'perfopt_admin'),
    ('error_rate', 'threshold', 'error_rate_pct', NULL, 'greater_than', 5, interval '5 minutes',
     '[{"type": "notify", "event": "error_rate"}]', interval '15 minutes', true, 'warning', true,
     'perfopt_admin'),
    ('high_cpu', 'threshold', 'cpu_usage_pct', '', 'greater_than', 80, interval '5 minutes',
     '[{"type": "notify", "event": "high_cpu"}]', interval '15 minutes', true, 'warning', true,
     'perfopt_admin'),
    ('high_memory', 'threshold', 'memory_used_pct', '', 'greater_than', 85, interval '5 minutes',
     '[{"type": "notify", "event": "high_memory"}]', interval '15 minutes', true, 'warning', true,
     'perfopt_admin'),
    ('scale_up_on_high_cpu', 'threshold', 'cpu_usage_pct', '', 'greater_than', 85, interval '5 minutes',
     '[{"type": "notify", "event": "scale_up", "target": "load_balancer", "instances": 1}]',
     interval '10 minutes', true, 'critical', true, 'perfopt_admin'),
    ('anomaly_incidents', 'anomaly', NULL, NULL, NULL, NULL, interval '0', '[]', interval '10 minutes',
     true, 'warning', true, 'perfopt_admin');

INSERT INTO perfopt.jobs (job_name, command, schedule, builtin) VALUES
    ('optimization_cycle', 'SELECT perfopt.run_scheduled_cycle()', interval '1 minute', true);
