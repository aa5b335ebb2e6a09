# Workers that never hang.  On loopback, a black-holed instance (a socket
# that listens and never accepts: the kernel completes the handshake and
# nothing ever answers) and a mute one (accepts, reads, never answers) are
# registered next to a healthy one (this test's own server): the healthy
# one stays healthy and is checked at the check interval; the other two go
# down; a reload is taken at once and a fast shutdown completes in under
# 2 s while their checks are in flight.  The exporter: a client that
# connects and sends nothing, and an Alertmanager that is a black hole,
# neither block another client's scrape nor delay a reload or a fast
# shutdown.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PerfoptTest::Util qw(http_get);
use Time::HiRes qw(time usleep);

BAIL_OUT('curl is not installed') unless system('command -v curl >/dev/null 2>&1') == 0;

# The deadline of a check is four times the interval: a worker that waits
# for a dead instance misses the healthy one's checks
my $interval = 1;
my $timeout = 4;
my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my $url = "http://127.0.0.1:$metrics_port/metrics";

# The black hole: listens, never accepts (room for every check in the queue)
my $black = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 1024, Proto => 'tcp', ReuseAddr => 1) or die "black hole: $!";

# The mute server: accepts and reads everything, answers nothing
my $mute = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	Listen => 64, Proto => 'tcp', ReuseAddr => 1) or die "mute server: $!";
my $mute_pid = fork();
die "fork: $!" unless defined $mute_pid;
if ($mute_pid == 0)
{
	alarm(600);
	my $select = IO::Select->new($mute);
	for (;;)
	{
		foreach my $s ($select->can_read(1))
		{
			if ($s == $mute)
			{
				my $client = $mute->accept;
				$select->add($client) if $client;
			}
			elsif (!sysread($s, my $buffer, 4096))
			{
				$select->remove($s);
				close($s);
			}
		}
	}
	POSIX::_exit(0);
}
close($mute);

my $node = PostgreSQL::Test::Cluster->new('never_hang');
$node->init;
$node->append_conf('postgresql.conf', qq{
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.health_check_interval = ${interval}s
perfopt.health_check_timeout = ${timeout}s
perfopt.health_check_failures = 2
perfopt.health_check_successes = 1
perfopt.metrics_listen = '127.0.0.1:$metrics_port'
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

# How long a fast shutdown takes
sub timed_fast_stop
{
	my $started = time;
	$node->stop('fast', fail_ok => 1);
	return time - $started;
}

# Whether the worker of backend_type $type takes a reload within $wait
# seconds: application_name's assign hook reports a new value to
# pg_stat_activity when the process reads the configuration again
sub reload_seen_by
{
	my ($type, $wait) = @_;
	my $name = "reloaded-" . int(rand(1_000_000));
	query(qq{ALTER SYSTEM SET application_name = '$name'});
	query(q{SELECT pg_reload_conf()});
	my $seen = 0;
	my $started = time;
	while (time - $started < $wait)
	{
		if (query(qq{SELECT count(*) FROM pg_stat_activity
					  WHERE backend_type = '$type' AND application_name = '$name'}) eq '1')
		{
			$seen = 1;
			last;
		}
		usleep(50_000);
	}
	diag(sprintf('%s took the reload after %.2f s', $type, time - $started)) if $seen;
	query(q{ALTER SYSTEM RESET application_name});
	query(q{SELECT pg_reload_conf()});
	return $seen;
}

query('CREATE EXTENSION perfopt CASCADE');
query("SELECT perfopt.register_instance('healthy', 'postgresql',"
	  . " 'host=127.0.0.1 port=${\ $node->port} dbname=postgres')");
query("SELECT perfopt.register_instance('blackhole', 'postgresql',"
	  . " 'host=127.0.0.1 port=${\ $black->sockport} dbname=postgres')");
query("SELECT perfopt.register_instance('mute', 'postgresql',"
	  . " 'host=127.0.0.1 port=${\ $mute->sockport} dbname=postgres')");

# 1. The healthy one is healthy, the two others go down
ok($node->poll_query_until('postgres',
		q{SELECT string_agg(name || ':' || state, ',' ORDER BY name) FROM perfopt.instances},
		'blackhole:down,healthy:healthy,mute:down'),
	'the healthy instance is healthy, the black-holed and the mute ones are down');

# 2. Meanwhile the healthy one is checked every interval: over 8 seconds,
# no gap between two of its checks is much longer than the interval
my ($last, $max_gap, $checks) = (undef, 0, 0);
my $started = time;
while (time - $started < 8)
{
	my $t = query(q{SELECT extract(epoch FROM last_check) FROM perfopt.instances
					 WHERE name = 'healthy'});
	if (defined $last && $t ne $last)
	{
		$checks++;
		$max_gap = $t - $last if $t - $last > $max_gap;
	}
	$last = $t;
	usleep(100_000);
}
cmp_ok($max_gap, '<', $interval + 1,
	sprintf('the healthy instance is checked every interval (longest gap %.1f s, %d checks)',
		$max_gap, $checks));
is(query(q{SELECT state FROM perfopt.instances WHERE name = 'healthy'}), 'healthy',
	'and it stayed healthy all along');

# 3. A reload reaches the health checker at once, checks in flight or not
is(query(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'perfopt health checker'}),
	'1', 'the health checker runs');
ok(reload_seen_by('perfopt health checker', 1), 'the health checker takes a reload within a second');

# 4. A fast shutdown is not held by the checks in flight: stop just after a
# check of the healthy instance, when the others' are surely under way
$last = query(q{SELECT last_check FROM perfopt.instances WHERE name = 'healthy'});
$node->poll_query_until('postgres',
	qq{SELECT last_check <> '$last' FROM perfopt.instances WHERE name = 'healthy'});
my $took = timed_fast_stop();
cmp_ok($took, '<', 2, sprintf('a fast shutdown with checks in flight takes %.2f s', $took));

# 5. The exporter: a client that connects and sends nothing (the dead
# instances go, so that only the exporter can hold the shutdown)
$node->start;
query(q{SELECT perfopt.deregister_instance(name) FROM perfopt.instances
		 WHERE name <> 'healthy'});
sleep(2 * $timeout + 1);	# for any check begun before to be over
my ($status) = http_get($url);
is($status, '200', 'the exporter serves /metrics');
my $silent = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $metrics_port,
	Proto => 'tcp') or die "connect: $!";
$started = time;
($status) = http_get($url);
my $scrape = time - $started;
is($status, '200', 'another client is served beside a silent one');
cmp_ok($scrape, '<', 1, sprintf('at once (%.2f s)', $scrape));

# 6. A black-holed Alertmanager: the alert push waits for it, the worker
# does not.  A reload pushes at once.
query(qq{ALTER SYSTEM SET perfopt.alertmanager_url = 'http://127.0.0.1:${\ $black->sockport}'});
query(q{INSERT INTO perfopt.incidents (opened_at, severity, title)
		VALUES (now(), 'critical', 'never hang')});
query(q{SELECT pg_reload_conf()});
usleep(300_000);
$started = time;
($status) = http_get($url);
$scrape = time - $started;
is($status, '200', 'a scrape is served while an alert push waits for a black hole');
cmp_ok($scrape, '<', 1, sprintf('at once (%.2f s)', $scrape));
ok(reload_seen_by('perfopt exporter', 1), 'the exporter takes a reload within a second');

# 7. A fast shutdown with a silent client and an alert push in flight (the
# reload above started a new push)
$silent = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $metrics_port,
	Proto => 'tcp') or die "connect: $!";
$took = timed_fast_stop();
cmp_ok($took, '<', 2,
	sprintf('a fast shutdown with a silent client and a push in flight takes %.2f s', $took));
close($silent);

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'nothing crashed');

kill 'KILL', $mute_pid;
waitpid($mute_pid, 0);
done_testing();
