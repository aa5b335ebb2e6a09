# pg_cancel_backend() on perfopt's workers: a cancel that finds a worker
# idle, between its steps, is nothing (the same process goes on working),
# and a cancel during a long job cancels that job only (recorded as failed
# with SQLSTATE 57014, and the next job runs).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my $no_redis = PostgreSQL::Test::Cluster::get_free_port();

my $node = PostgreSQL::Test::Cluster->new('cancel');
$node->init;
$node->append_conf('postgresql.conf', qq{
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.sample_interval = 1s
perfopt.health_check_interval = 1s
perfopt.health_check_timeout = 1s
perfopt.metrics_listen = '127.0.0.1:$metrics_port'
perfopt.redis_host = '127.0.0.1'
perfopt.redis_port = $no_redis
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION perfopt CASCADE');

sub query { return $node->safe_psql('postgres', $_[0]); }

sub pid_of
{
	my ($type) = @_;
	return query(qq{SELECT pid FROM pg_stat_activity WHERE backend_type = '$type'});
}

sub metrics_status
{
	my $out = `curl -s -m 10 -o /dev/null -w '%{http_code}' 'http://127.0.0.1:$metrics_port/metrics'`;
	return $out;
}

# the exporter connects on its first scrape; then it shows in pg_stat_activity
ok($node->poll_query_until('postgres', q{SELECT true}, 't'), 'the server runs');
for (1 .. 100)
{
	last if metrics_status() eq '200';
	usleep(100_000);
}
query(qq{SELECT perfopt.register_instance('self', 'tcp', '127.0.0.1:${\ $node->port}')});

# What "still works" means for each worker, after the time $since
my %works = (
	'perfopt launcher' => sub {
		my ($since) = @_;
		return $node->poll_query_until('postgres', qq{
			SELECT count(*) > 0 FROM perfopt.job_runs
			 WHERE job_name = 'sample_metrics' AND status = 'succeeded'
			   AND started_at > '$since'});
	},
	'perfopt cache invalidator' => sub {
		my ($since) = @_;
		query(q{SELECT perfopt.cache_invalidate('cancel:*')});
		return $node->poll_query_until('postgres', qq{
			SELECT last_error_at > '$since' FROM perfopt.cache_worker_state()});
	},
	'perfopt exporter' => sub {
		return metrics_status() eq '200';
	},
	'perfopt health checker' => sub {
		my ($since) = @_;
		return $node->poll_query_until('postgres', qq{
			SELECT last_check > '$since' FROM perfopt.instances WHERE name = 'self'});
	},
);

# 1. A cancel of an idle worker is nothing
foreach my $type ('perfopt launcher', 'perfopt cache invalidator',
	'perfopt exporter', 'perfopt health checker')
{
	ok($node->poll_query_until('postgres',
			qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = '$type'}),
		"$type runs");
	# idle: not in a step (the launcher and the checker run one a second)
	$node->poll_query_until('postgres',
		qq{SELECT state = 'idle' FROM pg_stat_activity WHERE backend_type = '$type'});
	my $pid = pid_of($type);
	my $since = query('SELECT clock_timestamp()');
	is(query("SELECT pg_cancel_backend($pid)"), 't', "$type: cancel sent");
	usleep(2_000_000);
	is(pid_of($type), $pid, "$type: the same process runs after a cancel");
	ok($works{$type}->($since), "$type: and still works");
	is(pid_of($type), $pid, "$type: still the same process");
}

# 2. A cancel during a long job cancels that job only
my $launcher = pid_of('perfopt launcher');
# (only its first run is long)
query(q{INSERT INTO perfopt.jobs (job_name, command, schedule)
		VALUES ('long', 'SELECT pg_sleep(CASE WHEN count(*) <= 1 THEN 60 ELSE 0 END)
		                   FROM perfopt.job_runs WHERE job_name = ''long''', '1 hour')});
ok($node->poll_query_until('postgres', qq{
		SELECT query LIKE '%pg_sleep%' FROM pg_stat_activity WHERE pid = $launcher}),
	'the long job runs');
my $since = query('SELECT clock_timestamp()');
query("SELECT pg_cancel_backend($launcher)");
ok($node->poll_query_until('postgres', q{
		SELECT status = 'failed' AND sqlstate = '57014'
		  FROM perfopt.job_runs WHERE job_name = 'long' ORDER BY run_id LIMIT 1}),
	'the job is recorded failed with 57014');
ok($node->poll_query_until('postgres', qq{
		SELECT count(*) > 0 FROM perfopt.job_runs
		 WHERE job_name = 'sample_metrics' AND status = 'succeeded'
		   AND started_at > '$since'}),
	'the next job runs');
is(pid_of('perfopt launcher'), $launcher, 'in the same launcher');

unlike(slurp_file($node->logfile),
	qr/background worker "perfopt [^"]*" \(PID \d+\) (exited with exit code|was terminated by signal)/,
	'no worker exited or crashed');

$node->stop('fast');
done_testing();
