-- The orchestrator's validation, cron schedules, action statements and
-- health; rules firing and acting on a running cluster are tested in
-- test/t/008_orchestrator.pl
SET client_min_messages = warning;

-- cron schedules (UTC): the next time after a given one
SELECT s, perfopt.cron_next(s, '2026-11-27 10:07:30+00') AT TIME ZONE 'UTC' AS next
  FROM unnest(ARRAY['* * * * *', '*/15 * * * *', '0 3 * * *', '0 3 * * sun', '30 8 1 * *',
                    '0 0 * jan,jul *', '5-10/2 * * * *', '0 9 13 * fri', '@hourly', '@weekly',
                    '0 0 29 2 *', '0 12 * * 7']) s;
-- bad schedules: a clear error
SELECT perfopt.cron_next('61 * * * *', now());
SELECT perfopt.cron_next('* * * *', now());
SELECT perfopt.cron_next('* * * * * *', now());
SELECT perfopt.cron_next('*/0 * * * *', now());
SELECT perfopt.cron_next('5-1 * * * *', now());
SELECT perfopt.cron_next('0 0 30 2 *', now());
SELECT perfopt.cron_next('x * * * *', now());

-- the seeded rules: the users' alert thresholds and example rule, all dry runs
SELECT name, trigger_type, metric, condition, threshold, duration, cooldown, dry_run, actions
  FROM perfopt.automation_rules ORDER BY id;

-- rules are checked when written
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, condition, threshold)
VALUES ('typo', 'threshold', 'cpu_usage', 'greater_than', 85);
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, condition, threshold)
VALUES ('typo', 'threshold', 'cpu_usage_pct', 'more_than', 85);
INSERT INTO perfopt.automation_rules (name, trigger_type, metric)
VALUES ('typo', 'threshold', 'cpu_usage_pct');
INSERT INTO perfopt.automation_rules (name, trigger_type) VALUES ('typo', 'sometimes');
INSERT INTO perfopt.automation_rules (name, trigger_type) VALUES ('typo', 'schedule');
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule) VALUES ('typo', 'schedule', '99 * * * *');
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions)
VALUES ('typo', 'schedule', '0 3 * * *', '[{"type": "defragment"}]');
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions)
VALUES ('typo', 'schedule', '0 3 * * *', '[{"type": "vacuum_analyze"}]');
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions)
VALUES ('typo', 'schedule', '0 3 * * *', '[{"type": "set_table_option", "target": "t", "options": {"fillfactor": 50}}]');
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions)
VALUES ('typo', 'schedule', '0 3 * * *', '{"type": "analyze"}');
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions, owner)
VALUES ('typo', 'schedule', '0 3 * * *', '[]', 'pg_monitor');
CREATE ROLE perfopt_regress_admin;
GRANT perfopt_admin TO perfopt_regress_admin;
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions, owner)
VALUES ('typo', 'schedule', '0 3 * * *', '[{"type": "sql", "statement": "CHECKPOINT"}]', 'perfopt_regress_admin');
-- a good one
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions, owner)
VALUES ('nightly', 'schedule', '0 3 * * *', '[{"type": "analyze", "target": "pg_class"}]',
        'perfopt_regress_admin')
RETURNING name, dry_run, cooldown, enabled;

-- the statements actions make
CREATE TABLE orders (id int, customer int);
SELECT statement, rollback_statement, confidence
  FROM perfopt.action_statement('{"type": "vacuum_analyze"}', 'orders', 'perfopt_regress_admin', 1);
SELECT statement FROM perfopt.action_statement('{"type": "reindex"}', 'orders', 'perfopt_regress_admin', 1);
SELECT statement, rollback_statement
  FROM perfopt.action_statement('{"type": "set_table_option", "options": {"autovacuum_vacuum_scale_factor": 0.01}}',
                                'orders', 'perfopt_regress_admin', 1);
ALTER TABLE orders SET (autovacuum_vacuum_scale_factor = 0.1);
SELECT rollback_statement
  FROM perfopt.action_statement('{"type": "set_table_option", "options": {"autovacuum_vacuum_scale_factor": 0.01}}',
                                'orders', 'perfopt_regress_admin', 1);
SELECT statement FROM perfopt.action_statement('{"type": "terminate_backend", "min_duration": "15 minutes"}',
                                               NULL, 'perfopt_regress_admin', 1);
SELECT statement FROM perfopt.action_statement('{"type": "notify", "event": "scale_up", "instances": 1}',
                                               'load_balancer', 'perfopt_regress_admin', 1);
SELECT statement FROM perfopt.action_statement('{"type": "analyze"}', 'no_such_table', 'perfopt_regress_admin', 1);

-- optimize(): by hand, a dry run unless told otherwise
SELECT action, target, statement, dry_run, outcome FROM perfopt.optimize('analyze', 'public.orders');

-- health: every component and the overall score, 0-100
SELECT component, score BETWEEN 0 AND 100 AS in_range,
       status IN ('healthy', 'degraded', 'critical') AS known_status
  FROM perfopt.health() ORDER BY component;
SELECT perfopt.performance_score() = (SELECT score FROM perfopt.health() WHERE component = 'overall') AS same;

DROP TABLE orders;
DELETE FROM perfopt.automation_rules WHERE name = 'nightly';
DELETE FROM perfopt.action_log;
DROP ROLE perfopt_regress_admin;
