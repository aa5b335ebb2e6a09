# The launcher and its jobs as a DBA meets them: sampling from start-up,
# a failing job retried while the others go on, SIGHUP, SIGTERM, kill -9,
# DROP and CREATE EXTENSION, and a standby that runs nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.sample_interval = 1s
restart_after_crash = on
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

sub launcher_pid
{
	return query(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'perfopt launcher'});
}

sub runs
{
	my ($job, $status) = @_;
	return query(qq{SELECT count(*) FROM perfopt.job_runs
					 WHERE job_name = '$job' AND status = '$status'});
}

# 1. The launcher waits for the extension, then samples with no user action
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'perfopt launcher'}),
	'the launcher runs, with its own backend_type');
usleep(1_500_000);
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'perfopt'}),
	'0', 'no extension yet: the launcher waits');
query('CREATE EXTENSION perfopt CASCADE');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) >= 3 FROM perfopt.job_runs
		   WHERE job_name = 'sample_metrics' AND status = 'succeeded'}),
	'then it samples every second');

# the file system figure is the one df reports
my $free = query(q{SELECT value FROM perfopt.live_metrics
					WHERE metric = 'disk_free_bytes' AND entity = 'data_directory'});
my ($df) = (`df -B1 --output=avail "${\ $node->data_dir}"` =~ /(\d+)\s*$/);
ok(abs($free - $df) <= 0.02 * $df, "disk_free_bytes ($free) agrees with df ($df)");

my $size = query(q{SELECT value / pg_database_size('postgres') FROM perfopt.live_metrics
					WHERE metric = 'database_size_bytes' AND entity = 'postgres'});
ok($size > 0.9 && $size < 1.1, "database_size_bytes agrees with pg_database_size ($size)");
is(query(q{SELECT value FROM perfopt.live_metrics
			WHERE metric = 'max_connections'}),
	query('SHOW max_connections'), 'max_connections is sampled');

# sessions by state and active ones by what they wait for: one idle in a
# transaction holding a lock, one waiting for it (the waits not seen are 0)
query('CREATE TABLE session_demo (id int)');
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK TABLE session_demo');
my $waiter = $node->background_psql('postgres');
$waiter->query_until(qr/waiting/, "\\echo waiting\nSELECT count(*) FROM session_demo;\n");
ok($node->poll_query_until('postgres',
		q{SELECT string_agg(entity || '=' || value, ',' ORDER BY entity) FROM perfopt.live_metrics
		   WHERE (metric = 'connections' AND entity = 'idle in transaction')
		      OR (metric = 'waiting_sessions' AND entity IN ('Lock', 'IO'))},
		'IO=0,Lock=1,idle in transaction=1'),
	'sessions are counted by state and by wait event type');
$holder->query_safe('COMMIT');
$holder->quit;
$waiter->quit;
query('DROP TABLE session_demo');

# dead rows per table, as the statistics count them (a rule can vacuum on it)
query(q{CREATE TABLE dead_rows_demo (id int) WITH (autovacuum_enabled = false);
		INSERT INTO dead_rows_demo SELECT generate_series(1, 1000);});
query('DELETE FROM dead_rows_demo WHERE id <= 400');
ok($node->poll_query_until('postgres',
		q{SELECT m.value > 0 AND m.value = s.n_dead_tup
		    FROM perfopt.live_metrics m, pg_stat_user_tables s
		   WHERE m.metric = 'dead_tuples' AND m.entity = 'public.dead_rows_demo'
		     AND s.relid = 'dead_rows_demo'::regclass}),
	'dead_tuples has a table\'s dead rows, as pg_stat_user_tables counts them');
query('DROP TABLE dead_rows_demo');

# of many tables, the ten with the most dead rows are sampled
query(join('', map { qq{CREATE TABLE dead_$_ (id int) WITH (autovacuum_enabled = false);
						INSERT INTO dead_$_ SELECT generate_series(1, 20000);
						DELETE FROM dead_$_ WHERE id <= $_ * 1000;} } 1 .. 12));
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 10 FROM perfopt.live_metrics m
		    JOIN pg_stat_user_tables s ON m.entity = 'public.' || s.relname
		   WHERE m.metric = 'dead_tuples' AND s.relname LIKE 'dead\_%'
		     AND m.value = s.n_dead_tup AND s.n_dead_tup >= 3000}),
	'dead_tuples has the ten tables with the most dead rows');
query(join('', map { "DROP TABLE dead_$_;" } 1 .. 12));

# the largest tables, whose sizes a sample records, have their dead rows in
# the same sample, 0 included
query(q{CREATE TABLE big_clean (id int, pad text);
		INSERT INTO big_clean SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g;
		ANALYZE big_clean;});
ok($node->poll_query_until('postgres',
		q{SELECT bool_or(s.entity = 'public.big_clean')
		         AND bool_and(EXISTS (SELECT 1 FROM perfopt.live_metrics d
		                               WHERE d.metric = 'dead_tuples' AND d.entity = s.entity AND d.ts = s.ts
		                                 AND (s.entity <> 'public.big_clean' OR d.value = 0)))
		    FROM perfopt.live_metrics s
		   WHERE s.metric = 'table_size_bytes'
		     AND s.ts = (SELECT max(ts) FROM perfopt.live_metrics WHERE metric = 'table_size_bytes')}),
	'the largest tables have their dead rows in the sample that has their sizes, 0 included');
query('DROP TABLE big_clean');

# a burst of 3000 commits shows in commits_per_sec: the rate integrated
# over the samples around the burst counts them, plus a little background
query(q{CREATE TABLE burst (i int)});
my $before = query('SELECT now()');
my $t0 = time();
$node->safe_psql('postgres', join('', map { "INSERT INTO burst VALUES ($_);\n" } 1 .. 3000));
my $burst = time() - $t0;
my $after = query('SELECT now()');
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) > 0 FROM perfopt.metrics
		    WHERE metric = 'commits_per_sec' AND ts > '$after'::timestamptz + interval '2 s'}),
	'samples follow the burst');
my $integral = query(qq{
	SELECT round(sum(value * gap)) FROM (
	  SELECT ts, value, extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS gap
	    FROM perfopt.metrics WHERE metric = 'commits_per_sec' AND entity = 'postgres') r
	 WHERE ts > '$before' AND ts <= (SELECT min(ts) FROM perfopt.metrics
	                                  WHERE metric = 'commits_per_sec'
	                                    AND ts > '$after'::timestamptz + interval '2 s')});
ok($integral >= 3000 && $integral <= 3000 + 20 * ($burst + 5),
	sprintf('commits_per_sec over the burst adds up to %d commits (3000 made in %.1f s)',
		$integral, $burst));

# a statistics reset never shows as a negative rate
query('SELECT pg_stat_reset()');
my $after_reset = query('SELECT max(run_id) FROM perfopt.job_runs');
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) >= 3 FROM perfopt.job_runs
		    WHERE job_name = 'sample_metrics' AND run_id > $after_reset}),
	'sampling goes on after pg_stat_reset()');
is(query(q{SELECT count(*) FROM perfopt.metrics
			WHERE (metric LIKE '%per_sec' OR metric = 'cache_hit_ratio') AND value < 0}),
	'0', 'no negative rate after the reset');

# 2. A job that fails is recorded and retried with a growing delay, while
#    the sampler goes on
query(q{INSERT INTO perfopt.jobs (job_name, command, schedule)
		VALUES ('failing', 'SELECT 1/0', '30 seconds')});
my $samples_before = runs('sample_metrics', 'succeeded');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) >= 4 FROM perfopt.job_runs
		   WHERE job_name = 'failing' AND status = 'failed'}),
	'the failing job is retried');
is(query(q{SELECT DISTINCT sqlstate || ' ' || message FROM perfopt.job_runs
			WHERE job_name = 'failing'}),
	'22012 division by zero', 'each failure is recorded with its SQLSTATE and message');
my @gaps = split /\n/, query(q{
	SELECT extract(epoch FROM started_at - lag(started_at) OVER (ORDER BY run_id))
	  FROM perfopt.job_runs WHERE job_name = 'failing' ORDER BY run_id OFFSET 1 LIMIT 3});
ok($gaps[2] > 2 * $gaps[0], "the retry delay grows (@gaps s)");
cmp_ok(runs('sample_metrics', 'succeeded'), '>', $samples_before + 3,
	'the sampler went on meanwhile');
like(query(q{SELECT last_status || ' ' || failures FROM perfopt.jobs WHERE job_name = 'failing'}),
	qr/^failed [4-9]/, 'perfopt.jobs shows the consecutive failures');
query(q{DELETE FROM perfopt.jobs WHERE job_name = 'failing'});

# 3. SIGHUP changes the interval
$node->append_conf('postgresql.conf', 'perfopt.sample_interval = 3s');
$node->reload;
my $reloaded = query('SELECT max(run_id) FROM perfopt.job_runs');
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) >= 4 FROM perfopt.job_runs
		    WHERE job_name = 'sample_metrics' AND run_id > $reloaded}, 't'),
	'sampling goes on after the reload');
my $min_gap = query(qq{
	SELECT min(gap) FROM (
	  SELECT extract(epoch FROM started_at - lag(started_at) OVER (ORDER BY run_id)) AS gap
	    FROM perfopt.job_runs WHERE job_name = 'sample_metrics' AND run_id > $reloaded) g
	 WHERE gap IS NOT NULL});
ok($min_gap >= 2.5, "samples are 3 s apart after the reload (shortest gap $min_gap s)");
$node->append_conf('postgresql.conf', 'perfopt.sample_interval = 1s');
$node->reload;

# 4. SIGTERM stops a running job promptly
# (it sleeps only on its first run, so that a retry does not block the rest)
query(q{INSERT INTO perfopt.jobs (job_name, command, schedule)
		VALUES ('sleeper', 'SELECT pg_sleep(CASE WHEN count(*) <= 1 THEN 60 ELSE 0 END)
		                      FROM perfopt.job_runs WHERE job_name = ''sleeper''', '1 hour')});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM perfopt.job_runs WHERE job_name = 'sleeper' AND status = 'running'}),
	'a long job runs');
my $pid = launcher_pid();
$t0 = time();
query("SELECT pg_terminate_backend($pid)");
query(q{UPDATE perfopt.jobs SET enabled = false WHERE job_name = 'sleeper'});
$node->poll_query_until('postgres',
	qq{SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid});
my $stopped = time() - $t0;
ok($stopped < 5, sprintf('SIGTERM stops the launcher in the middle of a job (%.1f s)', $stopped));
ok($node->poll_query_until('postgres',
		q{SELECT status = 'failed' AND message LIKE 'interrupted%'
		    FROM perfopt.job_runs WHERE job_name = 'sleeper'}),
	'the restarted launcher marks the interrupted run failed');
isnt(launcher_pid(), $pid, 'a new launcher runs');

# 5. kill -9 in the middle of a run: the server restarts, the run is failed
query(q{DELETE FROM perfopt.job_runs WHERE job_name = 'sleeper';
		UPDATE perfopt.jobs SET enabled = true, failures = 0, last_start = NULL
		 WHERE job_name = 'sleeper'});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM perfopt.job_runs WHERE job_name = 'sleeper' AND status = 'running'}),
	'a long job runs again');
$pid = launcher_pid();
kill 'KILL', $pid;
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity
		    WHERE backend_type = 'perfopt launcher' AND pid <> $pid}),
	'after kill -9 the server restarts and so does the launcher');
ok($node->poll_query_until('postgres',
		q{SELECT status = 'failed' AND message LIKE 'interrupted%'
		    FROM perfopt.job_runs WHERE job_name = 'sleeper' ORDER BY run_id LIMIT 1}),
	'the interrupted run is marked failed');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM perfopt.job_runs
		   WHERE job_name = 'sleeper' AND status = 'succeeded'}),
	'and the job is retried');
query(q{UPDATE perfopt.jobs SET enabled = false WHERE job_name = 'sleeper'});
my $after_crash = query('SELECT max(run_id) FROM perfopt.job_runs');
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) >= 2 FROM perfopt.job_runs
		    WHERE job_name = 'sample_metrics' AND status = 'succeeded' AND run_id > $after_crash}),
	'and sampling resumes');

# 6. DROP EXTENSION and CREATE EXTENSION again
$pid = launcher_pid();
query('DROP EXTENSION perfopt');
usleep(2_000_000);
is(launcher_pid(), $pid, 'the launcher outlives DROP EXTENSION');
query('CREATE EXTENSION perfopt');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) >= 2 FROM perfopt.job_runs
		   WHERE job_name = 'sample_metrics' AND status = 'succeeded'}),
	'and samples again once it is created');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM perfopt.live_metrics WHERE metric = 'commits_per_sec'}),
	'with rates');

# 7. A standby runs nothing until it is promoted
$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
usleep(3_000_000);
is($standby->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'perfopt%'}),
	'0', 'no perfopt worker on a standby');
$standby->promote;
my $promoted = $standby->safe_psql('postgres', 'SELECT now()');
ok($standby->poll_query_until('postgres',
		qq{SELECT count(*) >= 1 FROM perfopt.job_runs
		    WHERE job_name = 'sample_metrics' AND status = 'succeeded'
		      AND started_at > '$promoted'}),
	'once promoted it samples');

$standby->stop;
$node->stop;
done_testing();
