# ALTER EXTENSION perfopt UPDATE from the release before, with the workers
# running: the launcher runs every job every second (sampling, the cycle,
# anomalies, forecasts, retention, re-warming), the cache worker drains
# invalidations that a writer keeps queueing, and the health checker checks
# an instance.  The update completes without a deadlock or an error, and the
# workers carry on in the new version: new runs succeed, samples arrive,
# invalidations reach Redis, checks go on, and no process crashed.
#
# Without perfopt.lock_for_update() first in the update's prelude, the update
# replaces views (AccessExclusiveLock) and then the policy of rules, while a
# job holds a lock on rules and next reads one of those views: a deadlock,
# reported to the update or to the job (SQLSTATE 40P01).  A user job here
# does just that (reads rules, takes its time, reads live_metrics).  With
# the lock, the update waits for the running job and the jobs for it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use PerfoptTest::Redis;

my $rounds = $ENV{PERFOPT_UPGRADE_ROUNDS} // 3;
my $redis = PerfoptTest::Redis->new('upgrade');
my $node = PostgreSQL::Test::Cluster->new('live_upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.sample_interval = 1s
perfopt.health_check_interval = 1s
perfopt.redis_host = '127.0.0.1'
perfopt.redis_port = ${\ $redis->port}
perfopt.cache_batch_delay = 0
deadlock_timeout = 100ms
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

my $default = query("SELECT default_version FROM pg_available_extensions WHERE name = 'perfopt'");
my @versions = split /\n/, query(
	"SELECT version FROM pg_available_extension_versions WHERE name = 'perfopt'
	  ORDER BY string_to_array(version, '.')::int[]");
my $previous = $versions[-2];

query(q{
CREATE TABLE public.leads (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO public.leads SELECT i FROM generate_series(1, 10) i;});
my $writes = $node->basedir . '/writes.sql';
append_to_file($writes, "\\set id random(1, 10)\nUPDATE public.leads SET n = n + 1 WHERE id = :id;\n");

for my $round (1 .. $rounds)
{
	query(qq{
DROP EXTENSION IF EXISTS perfopt CASCADE;
CREATE EXTENSION perfopt VERSION '$previous' CASCADE;
UPDATE perfopt.jobs SET schedule = interval '1 second' WHERE builtin AND schedule IS NOT NULL;
INSERT INTO perfopt.jobs (job_name, command, schedule) VALUES ('rules_report',
    'SELECT count(*) FROM perfopt.automation_rules, pg_sleep(0.8); SELECT count(*) FROM perfopt.live_metrics',
    interval '1 second');
SELECT perfopt.cache_watch('public.leads', 'lead:{id}');
SELECT perfopt.register_instance('self', 'postgresql', \$\$${\ $node->connstr('postgres')}\$\$);});
	$node->poll_query_until('postgres', q{
		SELECT count(DISTINCT job_name) >= 5 FROM perfopt.job_runs WHERE status = 'succeeded'})
	  or die "round $round: the jobs of $previous did not run";
	$node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM perfopt.instances WHERE name = 'self' AND state = 'healthy'})
	  or die "round $round: the health checker did not check";

	# a writer keeps the cache worker busy through the update
	my ($wout, $werr) = ('', '');
	my $writer = IPC::Run::start(
		[ 'pgbench', '-n', '-T', '4', '-c', '2', '-R', '200', '-f', $writes, $node->connstr('postgres') ],
		'>', \$wout, '2>', \$werr);
	usleep(1_500_000);
	my $started = query('SELECT clock_timestamp()');
	my ($ret, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION perfopt UPDATE',
		timeout => $PostgreSQL::Test::Utils::timeout_default);
	is($ret, 0, "round $round: the update from $previous completes while the workers run") or diag($err);
	unlike($err, qr/deadlock/, "round $round: without a deadlock");
	$writer->finish;
	is(query("SELECT extversion FROM pg_extension WHERE extname = 'perfopt'"), $default,
		"round $round: perfopt is at $default");
	my $finished = query('SELECT clock_timestamp()');

	# no job was chosen as the deadlock's victim or failed on a half-updated catalog
	is(query(qq{SELECT string_agg(job_name || ' ' || coalesce(sqlstate, '') || ' ' || coalesce(message, ''), '; ')
				  FROM perfopt.job_runs WHERE coalesce(finished_at, started_at) >= '$started' AND status = 'failed'}),
		'', "round $round: no job failed during or after the update");
	ok($node->poll_query_until('postgres', qq{
		SELECT count(DISTINCT job_name) >= 5 FROM perfopt.job_runs
		 WHERE started_at > '$finished' AND status = 'succeeded'}),
		"round $round: the launcher's jobs succeed in $default");
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) > 0 FROM perfopt.metrics WHERE ts > '$finished' AND metric = 'transactions_per_sec'}),
		"round $round: samples keep arriving");
	ok($node->poll_query_until('postgres', qq{
		SELECT last_check > '$finished' AND state = 'healthy' FROM perfopt.instances WHERE name = 'self'}),
		"round $round: the health checker keeps checking");
	$redis->cli('SET', 'lead:3', 'cached');
	query('UPDATE public.leads SET n = n + 1 WHERE id = 3');
	my $t0 = time;
	usleep(10_000) while $redis->cli('EXISTS', 'lead:3') ne '0' && time - $t0 < 10;
	is($redis->cli('EXISTS', 'lead:3'), '0', "round $round: the cache worker invalidates keys in $default");
}

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal/, 'no process crashed');
unlike($log, qr/deadlock detected/, 'and no deadlock was detected');
$node->stop;
done_testing();
