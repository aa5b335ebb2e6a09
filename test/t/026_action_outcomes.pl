# Measured outcomes of the orchestrator's actions, on a running cluster.
#
# A table is read by one statement (a filter on column a) and written by
# updates of column b and inserts.  Two trial indexes are built in turn by
# the launcher: one on a, which the reads use, and one on b, which no read
# uses and which turns every update of b from a HOT update into one that
# writes index tuples.  Each is measured over a window before and a window
# after (the after-window closed by a later cycle, at a time the test
# gives): the first is kept, the second is dropped.  Writes are judged by
# WAL bytes and index tuples written; the test measures the WAL of the
# updates itself (pg_current_wal_lsn deltas) and checks perfopt's figures
# against it.  Then the success rates, health(), the report, and what a
# plain and a hostile role may do with the new functions and tables.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('outcomes');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.optimization_interval = 1d
perfopt.outcome_window = 10min
perfopt.index_rollback_window = 7d
autovacuum = off
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

# Run sql as role; returns (stdout, stderr) without dying on an error
sub as_role
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SET ROLE $role;\n" . $sql,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($out, $err);
}

sub actions_done
{
	return $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM perfopt.action_log WHERE outcome IN ('queued', 'running')});
}

query('CREATE EXTENSION perfopt CASCADE');
query(q{UPDATE perfopt.jobs SET enabled = false
		 WHERE job_name IN ('sample_metrics', 'analyze_anomalies', 'forecast_capacity', 'optimization_cycle')});
query(q{CREATE ROLE dba LOGIN; GRANT perfopt_admin TO dba; GRANT CREATE ON SCHEMA public TO dba;
		CREATE ROLE app LOGIN; CREATE ROLE mallory LOGIN IN ROLE perfopt_admin;});

# 50,000 rows with room on every page for HOT updates
as_role('dba', q{
CREATE TABLE trial_orders (id int PRIMARY KEY, a int, b int, pad text) WITH (fillfactor = 50);
INSERT INTO trial_orders SELECT g, g % 500, 0, repeat('x', 60) FROM generate_series(1, 50000) g;
ANALYZE trial_orders;});
query('SELECT pg_stat_statements_reset()');

# One window's workload, as dba, each statement on its own: 150 reads, 300
# updates of b, 50 inserts; returns the WAL bytes the updates wrote, from
# pg_current_wal_lsn() around them
my $next_id = 50000;
my $round = 0;
sub workload
{
	$round++;
	my $reads = join('', map { "SELECT count(*) FROM trial_orders WHERE a = " . (($_ * 7 + $round) % 500) . ";\n" } 1 .. 150);
	my $updates = join('', map { "UPDATE trial_orders SET b = b + 1 WHERE id = " . (($_ * 163 + $round * 11) % 50000 + 1) . ";\n" } 1 .. 300);
	my $inserts = join('', map { $next_id++; "INSERT INTO trial_orders VALUES ($next_id, $next_id % 500, 0, 'y');\n" } 1 .. 50);
	$node->safe_psql('postgres', "SET ROLE dba;\n$reads");
	my $wal = $node->safe_psql('postgres', qq{SET ROLE dba;
CREATE TEMP TABLE lsn AS SELECT pg_current_wal_lsn() AS at;
$updates
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), at) FROM lsn;});
	$node->safe_psql('postgres', "SET ROLE dba;\n$inserts");
	return $wal;
}

# The figure at path of the outcome of action id
sub measured
{
	my ($id, $path) = @_;
	return query(qq{SELECT measured #>> '{$path}' FROM perfopt.action_outcomes WHERE action_id = $id});
}

# 1. The index the reads need, as a trial: the advisor's, kept
my $wal_before = workload();
my $a_id = query(q{SET ROLE dba; SELECT id FROM perfopt.optimize('create_index', 'public.trial_orders', false, '{"trial": true}')});
like(query("SELECT statement FROM perfopt.action_log WHERE id = $a_id"), qr/^CREATE INDEX CONCURRENTLY \S+ ON "?public"?\."?trial_orders"? .*\("?a"?\)$/,
	'the trial builds the advisor\'s index on a');
is(query("SELECT trial AND verdict = 'measuring' AND before_figures IS NOT NULL FROM perfopt.action_outcomes WHERE action_id = $a_id"),
	't', 'its window before is noted when it is queued');
ok(actions_done(), 'the launcher built it');
my $a_index = query("SELECT details->>'index' FROM perfopt.action_log WHERE id = $a_id");
is(query("SELECT outcome FROM perfopt.action_log WHERE id = $a_id") . ' ' . query("SELECT to_regclass('$a_index') IS NOT NULL"),
	'succeeded t', "index $a_index exists");
is(query("SELECT after_from IS NOT NULL FROM perfopt.action_outcomes WHERE action_id = $a_id"), 't',
	'its window after opened when it ended');
my $wal_a = workload();
query(q{SELECT perfopt.run_optimization_cycle(now() + interval '5 minutes')});
is(query("SELECT verdict FROM perfopt.action_outcomes WHERE action_id = $a_id"), 'measuring',
	'a cycle before perfopt.outcome_window has passed leaves it open');
query(q{SELECT perfopt.run_optimization_cycle(now() + interval '11 minutes')});
is(query("SELECT verdict || ' ' || decision FROM perfopt.action_outcomes WHERE action_id = $a_id"), 'helped kept',
	'a later cycle closed the window: it helped and is kept');
cmp_ok(measured($a_id, 'index_scans'), '>=', 150, 'the reads scanned it');
cmp_ok(measured($a_id, 'reads,mean_ms_after'), '<', measured($a_id, 'reads,mean_ms_before') / 5,
	'the reads took less than a fifth of their time before');
my ($p95_before, $p95_after) = (measured($a_id, 'reads,p95_ms_before'), measured($a_id, 'reads,p95_ms_after'));
cmp_ok($p95_after, '<', $p95_before / 2, "their P95 in perfopt's latency histograms of the two windows at least halved ($p95_before, then $p95_after ms; tails are noisier than means)");
cmp_ok(query("SELECT confidence FROM perfopt.action_outcomes WHERE action_id = $a_id"), '>=', 0.9, 'with confidence');
is(measured($a_id, 'index_tuples_written'), '50', 'the window\'s 50 inserts wrote 50 tuples to it; its HOT updates none');
ok(actions_done(), 'nothing was queued to undo it');
is(query("SELECT to_regclass('$a_index') IS NOT NULL"), 't', 'and it is still there');

# 2. An index no read uses, as a trial: dropped
my $b_id = query(q{SET ROLE dba; SELECT id FROM perfopt.optimize('create_index', 'public.trial_orders', false,
	'{"trial": true, "columns": ["b"]}')});
like(query("SELECT statement FROM perfopt.action_log WHERE id = $b_id"), qr/^CREATE INDEX CONCURRENTLY \S+ ON public\.trial_orders \(b\)$/,
	'the second trial builds an index on b');
ok(actions_done(), 'the launcher built it');
my $b_index = query("SELECT details->>'index' FROM perfopt.action_log WHERE id = $b_id");
is(query("SELECT to_regclass('$b_index') IS NOT NULL"), 't', "index $b_index exists");
my $wal_b = workload();
query(q{SELECT perfopt.run_optimization_cycle(now() + interval '11 minutes')});
is(query("SELECT verdict || ' ' || decision FROM perfopt.action_outcomes WHERE action_id = $b_id"), 'harmful dropped',
	'it only cost writes: harmful, dropped');
is(measured($b_id, 'index_scans'), '0', 'no read scanned it');
is(measured($b_id, 'reads,saved_ms'), '0', 'so it saved no read time');
is(measured($b_id, 'index_tuples_written'), '350', 'every update and insert wrote a tuple to it (no HOT update any more)');
# the WAL, as the test measured it around the updates: more per update with the index
cmp_ok($wal_b, '>', 1.3 * $wal_a, "the updates wrote more WAL with the index on b ($wal_a, then $wal_b bytes)");
cmp_ok(measured($b_id, 'writes,wal_bytes_per_call_after'), '>', measured($b_id, 'writes,wal_bytes_per_call_before'),
	'perfopt measured more WAL per write call too');
cmp_ok(measured($b_id, 'writes,extra_ms'), '>', 0, 'which it counts as write time');
cmp_ok(query("SELECT benefit_pct FROM perfopt.action_outcomes WHERE action_id = $b_id"), '<',
	-query('SHOW perfopt.outcome_harm_pct'), 'a harm beyond perfopt.outcome_harm_pct');
ok(actions_done(), 'the launcher ran the drop');
is(query("SELECT action || ' ' || outcome || ' ' || owner FROM perfopt.action_log WHERE rollback_of = $b_id"),
	'rollback succeeded dba', 'as the action\'s owner');
is(query("SELECT to_regclass('$b_index') IS NULL"), 't', 'the index on b is gone');
is(query("SELECT rollback_id = (SELECT id FROM perfopt.action_log WHERE rollback_of = $b_id)
			FROM perfopt.action_outcomes WHERE action_id = $b_id"), 't', 'the outcome names the drop');
is(query("SELECT to_regclass('$a_index') IS NOT NULL"), 't', 'the index on a stays');

# the figures, for docs/orchestrator.md
diag(query(qq{SELECT string_agg(format('%s on %s: %s, %s; reads %s -> %s ms per call (P95 %s -> %s), z %s; WAL per write %s -> %s bytes; '
					'index tuples written %s; net %s ms (%s%%), confidence %s',
					o.action, l.statement, o.verdict, o.decision,
					round((m #>> '{reads,mean_ms_before}')::numeric, 3), round((m #>> '{reads,mean_ms_after}')::numeric, 3),
					round((m #>> '{reads,p95_ms_before}')::numeric, 3), round((m #>> '{reads,p95_ms_after}')::numeric, 3),
					round((m #>> '{reads,z}')::numeric, 1),
					round((m #>> '{writes,wal_bytes_per_call_before}')::numeric), round((m #>> '{writes,wal_bytes_per_call_after}')::numeric),
					m->>'index_tuples_written', round((m->>'net_ms')::numeric, 1), round(o.benefit_pct::numeric, 1),
					round(o.confidence::numeric, 3)), E'\n' ORDER BY o.action_id)
				FROM perfopt.action_outcomes o JOIN perfopt.action_log l ON l.id = o.action_id, LATERAL (SELECT o.measured AS m) x
			   WHERE o.action_id IN ($a_id, $b_id)}));

# 3. Success rates, health() and the report
is(query(q{SELECT ran || ' ' || measured || ' ' || helped || ' ' || harmful || ' ' || undone || ' ' || success_pct
			 FROM perfopt.action_success_rates WHERE per = 'action' AND name = 'create_index'}),
	'2 2 1 1 1 50', 'success rate per action type: one of two helped');
my $health = query(q{SELECT score || ' ' || (details->>'judged') || ' ' || (details->'success_pct_per_action'->>'create_index')
					 FROM perfopt.health() WHERE component = 'actions'});
is($health, '50 2 50', 'health() shows it');
is(query(q{SELECT (details->'weights'->>'actions') FROM perfopt.health() WHERE component = 'overall'}), '0',
	'without weighing in the overall score');
my $report = query(q{SELECT perfopt.latest_report()->'outcomes'->0->>'decision'});
is($report, 'dropped', 'the report lists the outcome its cycle closed');
is(query(q{SELECT (r->'savings'->>'measured_actions_kept')::int = 1
				  AND (r->'savings'->>'measured_exec_ms_saved_per_hour')::float8 > 0
				  AND (r->'savings'->>'measured_monthly_saving') IS NOT NULL
			 FROM perfopt.latest_report() r}), 't', 'and sums the measured savings of the kept actions');

# 4. A plain role and a hostile one
my ($out, $err) = as_role('app', 'SELECT count(*) FROM perfopt.action_outcomes');
is($out, '0', 'a plain role sees no outcome of tables it does not own');
($out, $err) = as_role('app', 'SELECT count(*) FROM perfopt.action_success_rates');
is($out, '0', 'nor their success rates');
foreach my $call ("perfopt.close_outcome($a_id, now(), NULL)", "perfopt.begin_outcome($a_id)",
	"perfopt.action_ended($a_id, false)", 'perfopt.health()')
{
	($out, $err) = as_role('app', "SELECT $call");
	like($err, qr/42501/, "a plain role may not call $call");
}
($out, $err) = as_role('app', q{SELECT perfopt.optimize('create_index', 'public.trial_orders', false, '{"trial": true}')});
like($err, qr/42501/, 'nor start a trial');
# a hostile admin: a column name that smuggles SQL, a trial of another kind, and another role's table
($out, $err) = as_role('mallory', q{SELECT outcome || ' ' || error FROM perfopt.optimize('create_index', 'public.trial_orders', false,
	'{"columns": ["a) WITH (fillfactor = 10"]}')});
like($out, qr/^failed 42703: table public.trial_orders has no column a\) WITH/, 'a column name that is not a column is refused');
($out, $err) = as_role('mallory', q{SELECT perfopt.optimize('vacuum_analyze', 'public.trial_orders', false, '{"trial": true}')});
like($err, qr/only create_index takes "trial"/, 'only create_index may be a trial');
($out, $err) = as_role('mallory', q{SELECT perfopt.optimize('create_index', 'public.trial_orders', false, '{"trial": "yes"}')});
like($err, qr/"trial" must be true or false/, 'trial is a boolean');
my $m_id = query(q{SET ROLE mallory; SELECT id FROM perfopt.optimize('create_index', 'public.trial_orders', false,
	'{"trial": true, "columns": ["pad"]}')});
ok(actions_done(), 'the launcher took mallory\'s trial');
like(query("SELECT outcome || ': ' || error FROM perfopt.action_log WHERE id = $m_id"), qr/^failed: 42501: /,
	'it failed as mallory, who may not act on dba\'s table');
is(query("SELECT verdict FROM perfopt.action_outcomes WHERE action_id = $m_id"), 'inconclusive',
	'a failed action is recorded as inconclusive');
($out, $err) = as_role('mallory', 'UPDATE perfopt.action_outcomes SET verdict = \'helped\'');
like($err, qr/42501/, 'nobody but the extension writes outcomes');

# 5. Cost, ROI and risk
is(query(q{SELECT count(*) FROM perfopt.optimization_plan()
			WHERE monthly_cost_doing IS NULL OR risk NOT IN ('low', 'medium', 'high') OR risk_reason IS NULL}), '0',
	'every row of the plan has a cost and a risk with its reason');
is(query(q{SELECT risk || ': ' || reason FROM perfopt.action_risk('VACUUM FULL public.trial_orders', 2e9, 1)}),
	'high: ACCESS EXCLUSIVE on the table while it rewrites it: reads and writes wait; changes no data, but its lock cannot be taken back once it waits; 1907 MB; confidence 1.00',
	'VACUUM FULL of 2 GB is a high risk, and says why');
is(query(q{SELECT risk FROM perfopt.action_risk('CREATE INDEX CONCURRENTLY i ON t (a)', 8192, 0.9)}), 'low',
	'a small CREATE INDEX CONCURRENTLY a low one');
query(q{ALTER SYSTEM SET perfopt.price_storage_gb_month = 0.25; ALTER SYSTEM SET perfopt.price_outage = 1000;
		SELECT pg_reload_conf()});
$node->poll_query_until('postgres', q{SELECT current_setting('perfopt.price_outage') = '1000'});
is(query(q{SELECT round(monthly_cost_doing::numeric, 2) || ' ' || round(monthly_cost_not_doing::numeric, 2) || ' '
			|| round(roi::numeric, 2) || ' ' || risk
			 FROM perfopt.capacity_cost('disk', '/', 80e9, 100e9, 120e9, now() + interval '60 days', now(), 0.8)}),
	'5.00 500.00 99.00 low',
	'adding 20 GB costs 5.00 a month; an outage of 1000 due in 60 days is 500.00 a month');

ok(!(slurp_file($node->logfile) =~ /terminated by signal/), 'no backend crashed');
$node->stop;
done_testing();
