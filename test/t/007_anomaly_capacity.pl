# The anomaly and capacity jobs on a running cluster, on recorded series and
# an injected clock: a latency spike with a connection surge at the same
# time (one incident, opened and resolved), and a database that grows at a
# known rate towards a full disk (its exhaustion date, a capacity alert
# raised once, then cleared when disk is added).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('anomaly');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.sample_interval = 1s
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

# Run a job through the launcher now, and wait for its run to succeed
sub run_job
{
	my ($job) = @_;
	my $done = query(qq{SELECT count(*) FROM perfopt.job_runs
						 WHERE job_name = '$job' AND status = 'succeeded'});
	query(qq{UPDATE perfopt.jobs SET last_start = NULL WHERE job_name = '$job'});
	ok($node->poll_query_until('postgres',
			qq{SELECT count(*) > $done FROM perfopt.job_runs
			    WHERE job_name = '$job' AND status = 'succeeded'}),
		"the launcher ran $job");
}

query('CREATE EXTENSION perfopt CASCADE');
# only the recorded series: no live samples
query(q{UPDATE perfopt.jobs SET enabled = false WHERE job_name = 'sample_metrics'});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM perfopt.job_runs
		   WHERE job_name = 'sample_metrics' AND status = 'running'}),
	'no sample in progress');
query(q{TRUNCATE perfopt.metrics, perfopt.metrics_latest});

# The clock of the jobs: an injected now, on the hour
my $now = '2026-03-02 12:00:00+00';
query(qq{ALTER SYSTEM SET perfopt.now_override = '$now'});
query('SELECT pg_reload_conf()');

# Ten days of one-minute samples up to now.  Latency and connections follow
# a daily cycle with noise; two hours ago latency jumps by 60 ms and
# connections by 150 for ten minutes.  The database grows 50 MB an hour,
# and the disk's free space shrinks by as much from 48 GB now.
my $spike = '2026-03-02 10:00:00+00';
my $growth = 50 * 1024 * 1024;	   # bytes an hour
my $free_now = 48 * 1024**3;
query(qq{
SELECT setseed(0.42);
CREATE TEMP TABLE recorded AS
SELECT t, m.metric, m.entity, m.value
  FROM generate_series(timestamptz '$now' - interval '10 days', timestamptz '$now',
                       interval '1 minute') AS t,
       LATERAL (SELECT extract(epoch FROM t - timestamptz '$now') / 3600 AS h,
                       t >= timestamptz '$spike' AND t < timestamptz '$spike' + interval '10 minutes'
                         AS in_spike) x,
       LATERAL (VALUES
         ('latency_p95_ms', '', 20 + 8 * sin(2 * pi() * x.h / 24) + random() - 0.5
                                 + CASE WHEN x.in_spike THEN 60 ELSE 0 END),
         ('connections', 'total', round(50 + 20 * sin(2 * pi() * x.h / 24) + 4 * random()
                                 + CASE WHEN x.in_spike THEN 150 ELSE 0 END)),
         ('database_size_bytes', 'app', 10e9 + $growth * x.h + 1e5 * random()),
         ('disk_free_bytes', 'data_directory', $free_now - $growth * x.h),
         ('disk_total_bytes', 'data_directory', 200e9)) AS m(metric, entity, value);
INSERT INTO perfopt.metrics (ts, metric, entity, value)
SELECT t, metric, entity, value FROM recorded WHERE t < timestamptz '$now';
SELECT perfopt.record_metrics(timestamptz '$now', array_agg(metric), array_agg(entity),
                              array_agg(value))
  FROM recorded WHERE t = timestamptz '$now';
});

# An untidy series, stored as real metrics arrive: five-minute points over
# four days with a daily cycle, an hour whose times repeat (a clock falling
# back), points stored later with times already seen (a clock set back),
# NULL values, six hours without points, and a spike a day ago.
query(qq{
SELECT setseed(0.17);
INSERT INTO perfopt.metrics (ts, metric, entity, value)
SELECT t, 'untidy', '',
       CASE WHEN extract(minute FROM t) = 35 AND extract(hour FROM t)::int % 5 = 0 THEN NULL
            ELSE 100 + 30 * sin(2 * pi() * extract(epoch FROM t) / 86400) + 4 * random()
                 + CASE WHEN t = timestamptz '$now' - interval '1 day' THEN 120 ELSE 0 END END
  FROM generate_series(timestamptz '$now' - interval '4 days', timestamptz '$now' - interval '5 minutes',
                       interval '5 minutes') t
 WHERE t NOT BETWEEN timestamptz '$now' - interval '60 hours' AND timestamptz '$now' - interval '54 hours';
INSERT INTO perfopt.metrics (ts, metric, entity, value)
SELECT t, 'untidy', '', 100 + 30 * sin(2 * pi() * extract(epoch FROM t) / 86400) + 4 * random()
  FROM generate_series(timestamptz '$now' - interval '40 hours', timestamptz '$now' - interval '39 hours',
                       interval '5 minutes') t;
INSERT INTO perfopt.metrics_latest (metric, entity, ts, value)
VALUES ('untidy', '', timestamptz '$now' - interval '5 minutes', 100);
});

# 1. The anomaly job finds the spike and the surge, as one incident
run_job('analyze_anomalies');

my $latency = query(qq{
	SELECT count(*) FILTER (WHERE detected_at >= '$spike'
	                          AND detected_at < timestamptz '$spike' + interval '3 minutes'),
	       count(*) FILTER (WHERE detected_at >= '$spike'
	                          AND detected_at < timestamptz '$spike' + interval '3 minutes'
	                          AND resolved_at >= timestamptz '$spike' + interval '10 minutes'
	                          AND resolved_at < timestamptz '$spike' + interval '1 hour'),
	       count(*)
	  FROM perfopt.anomalies WHERE metric = 'latency_p95_ms'});
my ($found, $resolved, $all) = split /\|/, $latency;
is($found, 1, 'the latency spike opens one anomaly within 3 minutes');
is($resolved, 1, 'it is resolved once latency is back to normal');
cmp_ok($all, '<=', 2, "few other latency anomalies over the replayed days ($all in all)");

my $group = query(qq{
	SELECT count(DISTINCT group_id), count(*), bool_and(severity = 'critical')
	  FROM perfopt.anomalies
	 WHERE detected_at >= '$spike' AND detected_at < timestamptz '$spike' + interval '3 minutes'
	   AND metric IN ('latency_p95_ms', 'connections')});
is($group, '1|2|t', 'the spike and the surge are one critical incident');
like(query(qq{SELECT series FROM perfopt.anomaly_groups
			   WHERE started_at >= '$spike'
			     AND started_at < timestamptz '$spike' + interval '3 minutes'}),
	qr/latency_p95_ms.*connections \(total\)|connections \(total\).*latency_p95_ms/,
	'anomaly_groups shows both series in the incident');

# a second run judges only new points: nothing is opened twice
my $count = query('SELECT count(*) FROM perfopt.anomalies');
run_job('analyze_anomalies');
is(query('SELECT count(*) FROM perfopt.anomalies'), $count, 'a second run opens nothing again');

# a restarted launcher replays history without reopening what it judged
$node->restart;
run_job('analyze_anomalies');
is(query('SELECT count(*) FROM perfopt.anomalies'), $count,
	'after a restart the replay opens nothing again');

# detect_anomalies() on the same series from psql agrees with the job
is(query(qq{
	SELECT min(d.ts) FROM (SELECT array_agg(ts ORDER BY ts) AS t, array_agg(value ORDER BY ts) AS v
	                         FROM perfopt.metrics WHERE metric = 'latency_p95_ms'
	                          AND ts > timestamptz '$now' - interval '8 days') s,
	       perfopt.detect_anomalies(s.t, s.v) d
	 WHERE d.is_anomaly AND d.ts >= '$spike'}),
	query(qq{SELECT min(detected_at) FROM perfopt.anomalies
			  WHERE metric = 'latency_p95_ms' AND detected_at >= '$spike'}),
	'detect_anomalies() flags the point the job recorded');

# On the untidy series, the job and detect_anomalies() over the same stored
# points (in time order, equal times as stored) give the same events
my $job_events = query(qq{
	SELECT string_agg(detected_at::text, ',' ORDER BY detected_at)
	  FROM perfopt.anomalies WHERE metric = 'untidy'});
like($job_events, qr/\Q@{[ query(qq{SELECT (timestamptz '$now' - interval '1 day')::text}) ]}\E/,
	'the job finds the spike of the untidy series');
is(query(qq{
	SELECT string_agg(d.ts::text, ',' ORDER BY d.ts)
	  FROM (SELECT array_agg(ts ORDER BY ts, ctid) AS t, array_agg(value ORDER BY ts, ctid) AS v
	          FROM perfopt.metrics WHERE metric = 'untidy'
	           AND ts > timestamptz '$now' - interval '8 days') s,
	       perfopt.detect_anomalies(s.t, s.v) d
	 WHERE d.is_anomaly AND abs(d.value - d.expected) >= 0.05 * abs(d.expected)}),
	$job_events,
	'detect_anomalies() gives the events the job gave on repeated, stepped-back, NULL and gapped points');
is(query(qq{
	SELECT count(*) FROM perfopt.anomalies
	 WHERE metric = 'untidy' AND (reason IS NULL OR reason !~ '^(spike|level shift)')}),
	'0', 'every anomaly of the job says why it was reported');
is(query(qq{
	SELECT count(*) = (SELECT count(*) FROM perfopt.metrics WHERE metric = 'untidy')
	  FROM (SELECT array_agg(ts) AS t, array_agg(value) AS v
	          FROM perfopt.metrics WHERE metric = 'untidy') s,
	       perfopt.detect_anomalies(s.t, s.v) d}),
	't', 'detect_anomalies() returns one row per stored point, in any order');

# 2. The capacity job: the database fills the disk when the free space runs out
run_job('forecast_capacity');

# free space runs out after free_now / growth hours
my $expected_hours = $free_now / $growth;
foreach my $resource ('database_size', 'disk')
{
	my ($hours, $confidence, $action) = split /\|/, query(qq{
		SELECT extract(epoch FROM exhaustion_at - timestamptz '$now') / 3600, confidence, action
		  FROM perfopt.capacity_forecast
		 WHERE resource = '$resource'});
	ok(defined $hours && $hours ne ''
		  && abs($hours - $expected_hours) <= 0.1 * $expected_hours,
		sprintf('%s runs out in %.0f hours (growth says %.0f)', $resource,
			$hours || 0, $expected_hours));
	cmp_ok($confidence, '>=', 90, "$resource: confidence $confidence from the backtest");
	like($action, qr/add disk|archive/, "$resource: the recommendation names the action ($action)");
}

is(query(q{SELECT resource FROM perfopt.bottlenecks WHERE rank = 1}) =~ /^(disk|database_size)$/
	  ? 'disk or database' : 'other', 'disk or database',
	'bottlenecks puts what runs out first on top');
my ($status, $alert) = split /\|/, query(q{
	SELECT status, alert FROM perfopt.capacity_dashboard() LIMIT 1});
is($status, 'warning', 'capacity_dashboard: warning (runs out in 30 to 90 days)');
like($alert, qr/^warning since/, 'capacity_dashboard shows the open alert');
is(query(q{SELECT count(*) FROM perfopt.capacity_alerts WHERE resource = 'database_size'}), '1',
	'one capacity alert for the database');
is(query(q{SELECT count(*) FROM perfopt.capacity_forecast WHERE resource = 'connections'}), '1',
	'connections are forecast too');
is(query(q{SELECT exhaustion_at IS NULL FROM perfopt.capacity_forecast WHERE resource = 'connections'}),
	't', 'connections do not run out');

# raised once: the next run updates the alert, it does not raise another
run_job('forecast_capacity');
is(query(q{SELECT count(*) FROM perfopt.capacity_alerts WHERE resource = 'database_size'}), '1',
	'the alert is raised once');

# a day later 500 GB of disk were added: the forecast recovers and the
# alert is cleared
my $later = '2026-03-03 12:00:00+00';
query(qq{
INSERT INTO perfopt.metrics (ts, metric, entity, value)
SELECT t, m.metric, m.entity, m.value
  FROM generate_series(timestamptz '$now' + interval '1 minute', timestamptz '$later',
                       interval '1 minute') AS t,
       LATERAL (SELECT extract(epoch FROM t - timestamptz '$now') / 3600 AS h) x,
       LATERAL (VALUES
         ('database_size_bytes', 'app', 10e9 + $growth * x.h),
         ('disk_free_bytes', 'data_directory', $free_now + 500e9 - $growth * x.h),
         ('disk_total_bytes', 'data_directory', 700e9)) AS m(metric, entity, value);
UPDATE perfopt.metrics_latest SET ts = '$later'
 WHERE metric IN ('database_size_bytes', 'disk_free_bytes', 'disk_total_bytes');
ALTER SYSTEM SET perfopt.now_override = '$later';
SELECT pg_reload_conf();
});
run_job('forecast_capacity');
is(query(q{SELECT count(*) FILTER (WHERE cleared_at IS NOT NULL), count(*)
			 FROM perfopt.capacity_alerts WHERE resource = 'database_size'}), '1|1',
	'with disk added the alert is cleared');
is(query(q{SELECT exhaustion_at IS NULL FROM perfopt.capacity_forecast WHERE resource = 'database_size'}),
	't', 'and the database no longer runs out within the horizon');

done_testing();
