# The orchestrator on a running cluster: a threshold rule with a duration
# fires once and acts for real (VACUUM, CREATE INDEX CONCURRENTLY, both run
# by the launcher outside any transaction), keeps its cooldown and logs
# everything; an unused index it made is rolled back; a dry run changes
# nothing; an anomaly opens an incident that resolves itself; a rule owned
# by a non-admin is refused; a failing action does not stop the cycle.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('orchestrator');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.sample_interval = 1s
perfopt.optimization_interval = 1d
perfopt.incident_hold = 0
perfopt.index_rollback_window = 1min
autovacuum = off
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }
sub as_dba { return $node->safe_psql('postgres', "SET ROLE dba;\n" . $_[0]); }

# Wait until every queued action has been run by the launcher
sub actions_done
{
	return $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM perfopt.action_log WHERE outcome IN ('queued', 'running')});
}

# The dead tuples of a table, once the statistics are flushed
sub dead_tuples
{
	my ($table) = @_;
	return query(qq{SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = '$table'});
}

query('CREATE EXTENSION perfopt CASCADE');
# only what the test records: no sampler, no anomaly or capacity job, no cycle
# but the ones the test runs; the launcher still runs the queued actions
query(q{UPDATE perfopt.jobs SET enabled = false
		 WHERE job_name IN ('sample_metrics', 'analyze_anomalies', 'forecast_capacity', 'optimization_cycle')});
query(q{CREATE ROLE dba LOGIN; GRANT perfopt_admin TO dba; GRANT CREATE ON SCHEMA public TO dba;
		CREATE ROLE app LOGIN;});

# A table with 6000 dead rows and a query without an index, owned by dba
as_dba(q{
CREATE TABLE leads (id int, agent int, payload text);
INSERT INTO leads SELECT g, g % 500, repeat('x', 100) FROM generate_series(1, 20000) g;
DELETE FROM leads WHERE id % 10 < 3;
ANALYZE leads;});
query('SELECT pg_stat_statements_reset()');
$node->safe_psql('postgres',
	join('', map { "SELECT count(*) FROM leads WHERE agent = $_;\n" } 1 .. 30));
ok($node->poll_query_until('postgres', q{
	SELECT n_dead_tup >= 6000 FROM pg_stat_user_tables WHERE relname = 'leads'}),
	'the table has 6000 dead rows');

# a series of the dead rows: above 1000 for the last six minutes
query(q{SELECT perfopt.record_metrics(now() - g * interval '30 s', '{dead_rows}', '{public.leads}', '{6000}')
		  FROM generate_series(12, 0, -1) g});

# 1. A rule with a duration fires once and acts
as_dba(q{
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, entity, condition, threshold, duration,
                                      actions, cooldown, dry_run)
VALUES ('vacuum_dead_rows', 'threshold', 'dead_rows', 'public.leads', 'greater_than', 1000, interval '5 minutes',
        '[{"type": "vacuum_analyze", "target": "{entity}"}, {"type": "create_index", "target": "{entity}"}]',
        interval '1 hour', false),
       ('not_long_enough', 'threshold', 'dead_rows', 'public.leads', 'greater_than', 1000, interval '10 minutes',
        '[{"type": "analyze", "target": "{entity}"}]', interval '1 hour', false);});
query('SELECT perfopt.run_optimization_cycle()');
is(query(q{SELECT string_agg(action || ' ' || outcome, ', ' ORDER BY id) FROM perfopt.action_log
			WHERE rule_name = 'vacuum_dead_rows'}),
	'vacuum_analyze queued, create_index queued', 'the rule fired once: both actions queued');
is(query(q{SELECT count(*) FROM perfopt.action_log WHERE rule_name = 'not_long_enough'}), '0',
	'a rule whose duration has not passed does not fire');
ok(actions_done(), 'the launcher ran them');
is(query(q{SELECT string_agg(outcome, ', ' ORDER BY id) FROM perfopt.action_log
			WHERE rule_name = 'vacuum_dead_rows'}), 'succeeded, succeeded', 'both succeeded');
ok($node->poll_query_until('postgres', q{
	SELECT n_dead_tup = 0 AND last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'leads'}),
	'a real VACUUM removed the dead rows');
my $index = query(q{SELECT details->>'index' FROM perfopt.action_log
					 WHERE rule_name = 'vacuum_dead_rows' AND action = 'create_index'});
is(query(qq{SELECT indisvalid FROM pg_index WHERE indexrelid = '$index'::regclass}), 't',
	"a real CREATE INDEX CONCURRENTLY made $index");
like(query(qq{SELECT pg_get_indexdef('$index'::regclass)}), qr/\(agent\)/, 'on the column the queries filter');
like(query(q{SELECT statement FROM perfopt.action_log WHERE action = 'create_index'}),
	qr/^CREATE INDEX CONCURRENTLY/, 'the log holds the statement');
is(query(q{SELECT trigger_values->>'value' || ' ' || (trigger_values->>'entity') FROM perfopt.action_log
			WHERE action = 'vacuum_analyze'}), '6000 public.leads', 'and what triggered it');
is(query(q{SELECT owner FROM perfopt.action_log WHERE action = 'vacuum_analyze'}), 'dba',
	'it ran as the rule owner');

# the cooldown: the trigger still holds, nothing more is done
query(q{SELECT perfopt.record_metrics(now(), '{dead_rows}', '{public.leads}', '{6000}')});
query('SELECT perfopt.run_optimization_cycle()');
is(query(q{SELECT count(*) FROM perfopt.action_log WHERE rule_name = 'vacuum_dead_rows'}), '2',
	'the cooldown holds the rule back');

# 2. The index nobody used is dropped after perfopt.index_rollback_window
query(q{SELECT perfopt.run_optimization_cycle(now() + interval '2 minutes')});
ok(actions_done(), 'the rollback ran');
is(query(q{SELECT outcome FROM perfopt.action_log WHERE action = 'rollback'}), 'succeeded',
	'the rollback is logged');
is(query(qq{SELECT to_regclass('$index') IS NULL}), 't', 'and the unused index is gone');

# 3. A dry run changes nothing
as_dba(q{
CREATE TABLE events (id int);
INSERT INTO events SELECT generate_series(1, 5000);
DELETE FROM events WHERE id <= 2500;});
query(q{SELECT perfopt.record_metrics(now() - g * interval '30 s', '{dead_rows}', '{public.events}', '{2500}')
		  FROM generate_series(12, 0, -1) g});
as_dba(q{
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, entity, condition, threshold, duration,
                                      actions)
VALUES ('dry', 'threshold', 'dead_rows', 'public.events', 'greater_than', 1000, interval '5 minutes',
        '[{"type": "vacuum_analyze", "target": "{entity}"}]');});
query('SELECT perfopt.run_optimization_cycle()');
is(query(q{SELECT outcome || ': ' || statement FROM perfopt.action_log WHERE rule_name = 'dry'}),
	'dry_run: VACUUM (ANALYZE) public.events', 'a dry run logs what it would do');
sleep(2);
is(dead_tuples('events'), '2500', 'and does nothing');

# 4. An anomaly opens an incident that resolves itself: a day of one-minute
# points, a spike at its end, then the series back to normal
my $now = query(q{SELECT date_trunc('minute', now())});
query(qq{
SELECT setseed(0.5);
INSERT INTO perfopt.metrics (ts, metric, entity, value)
SELECT t, 'api_latency_ms', '', 20 + random() + CASE WHEN t > '$now'::timestamptz - interval '3 minutes' THEN 80 ELSE 0 END
  FROM generate_series('$now'::timestamptz - interval '1 day', '$now'::timestamptz - interval '1 minute',
                       interval '1 minute') t;
SELECT perfopt.record_metrics('$now', '{api_latency_ms}', '{""}', '{100}');});
$node->safe_psql('postgres', qq{SET perfopt.now_override = '$now'; SELECT perfopt.analyze_anomalies();});
is(query(q{SELECT count(*) FROM perfopt.anomalies WHERE metric = 'api_latency_ms' AND resolved_at IS NULL}),
	'1', 'the detector opened an anomaly');
query(qq{SELECT perfopt.run_optimization_cycle('$now')});
is(query(q{SELECT count(*) FROM perfopt.incidents WHERE resolved_at IS NULL AND 'api_latency_ms/' = ANY (series)}),
	'1', 'the anomaly opened an incident');
query(qq{
INSERT INTO perfopt.metrics (ts, metric, entity, value)
SELECT t, 'api_latency_ms', '', 20 + random()
  FROM generate_series('$now'::timestamptz + interval '1 minute', '$now'::timestamptz + interval '30 minutes',
                       interval '1 minute') t;
UPDATE perfopt.metrics_latest SET ts = '$now'::timestamptz + interval '30 minutes'
 WHERE metric = 'api_latency_ms';});
my $later = query(qq{SELECT '$now'::timestamptz + interval '30 minutes'});
$node->safe_psql('postgres', qq{SET perfopt.now_override = '$later'; SELECT perfopt.analyze_anomalies();});
is(query(q{SELECT count(*) FROM perfopt.anomalies WHERE metric = 'api_latency_ms' AND resolved_at IS NULL}),
	'0', 'the anomaly resolved');
query(qq{SELECT perfopt.run_optimization_cycle('$later')});
is(query(q{SELECT count(*) FILTER (WHERE resolved_at IS NULL), count(*) FROM perfopt.incidents
			 WHERE 'api_latency_ms/' = ANY (series)}),
	'0|1', 'and so did the incident');

# 5. A rule owned by a non-admin is refused
my ($ret, $out, $err) = $node->psql('postgres', q{
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions, owner)
VALUES ('by_app', 'schedule', '0 3 * * *', '[]', 'app');});
like($err, qr/role app may not own automation rules/, 'a rule owned by a non-admin is refused');
($ret, $out, $err) = $node->psql('postgres', q{SET ROLE app;
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions)
VALUES ('by_app', 'schedule', '0 3 * * *', '[]');});
like($err, qr/permission denied/, 'and a non-admin cannot write rules');
($ret, $out, $err) = $node->psql('postgres', q{SET ROLE dba;
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, condition, threshold, actions)
VALUES ('typo', 'threshold', 'cpu_usage', 'greater_than', 85, '[]');});
like($err, qr/unknown metric "cpu_usage"/, 'an unknown metric is refused');
# others read the actions on their own tables only
query(q{GRANT CREATE ON SCHEMA public TO app});
$node->safe_psql('postgres', q{SET ROLE app; CREATE TABLE app_table (id int);});
as_dba(q{SELECT perfopt.optimize('analyze', 'public.app_table')});
is($node->safe_psql('postgres', q{SET ROLE app; SELECT string_agg(action || ' ' || target, ', ') FROM perfopt.action_log}),
	'analyze public.app_table', 'others read the actions on their own tables, and nothing else');
($ret, $out, $err) = $node->psql('postgres', q{SET ROLE app; SELECT perfopt.optimize('analyze', 'public.app_table')});
like($err, qr/permission denied|may not run perfopt actions/, 'and cannot run actions');

# 6. A failing action does not stop the cycle; the failure budget disables the rule
query(q{SELECT perfopt.record_metrics(now() - g * interval '30 s', '{dead_rows}', '{public.orders}', '{5000}')
		  FROM generate_series(12, 0, -1) g});
as_dba(q{
CREATE TABLE orders (id int);
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, entity, condition, threshold, duration,
                                      actions, dry_run, max_failures)
VALUES ('failing', 'threshold', 'dead_rows', 'public.orders', 'greater_than', 1000, interval '1 minute',
        '[{"type": "vacuum_analyze", "target": "public.missing"},
          {"type": "set_table_option", "target": "{entity}", "options": {"autovacuum_vacuum_scale_factor": -1}},
          {"type": "analyze", "target": "{entity}"}]', false, 1);});
query('SELECT perfopt.run_optimization_cycle()');
ok(actions_done(), 'the launcher went through the queue');
is(query(q{SELECT string_agg(action || ' ' || outcome, ', ' ORDER BY id) FROM perfopt.action_log
			WHERE rule_name = 'failing'}),
	'vacuum_analyze failed, set_table_option failed, analyze succeeded',
	'a failing action does not stop the others');
like(query(q{SELECT error FROM perfopt.action_log WHERE rule_name = 'failing' AND action = 'set_table_option'}),
	qr/^22023: /, 'the error is logged with its SQLSTATE');
is(query(q{SELECT enabled FROM perfopt.automation_rules WHERE name = 'failing'}), 'f',
	'the rule used its failure budget and is disabled');
ok($node->poll_query_until('postgres', q{
	SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'orders'}),
	'the real ANALYZE ran');

# the reports
is(query(q{SELECT count(*) >= 5 FROM perfopt.optimization_reports}), 't', 'every cycle stored a report');
is(query(q{SELECT (perfopt.latest_report()->>'performance_score')::int = perfopt.performance_score()}), 't',
	'latest_report() has the current score');

done_testing();
