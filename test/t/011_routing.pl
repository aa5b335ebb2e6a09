# Health-checked routing with a primary and two streaming standbys on
# loopback: all three become healthy and share round robin evenly; a
# standby whose replay is paused falls behind, is degraded, and the adaptive
# algorithm avoids it while round robin does not; a stopped standby is down
# after the failure threshold and receives nothing from any algorithm or
# session key; adding an instance moves only the keys the new one wins
# (about 1/N) and removing it puts them back; a drained instance takes no
# new requests; route() works from a session of another database.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $failures = 3;
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.health_check_interval = 1s
perfopt.health_check_failures = $failures
perfopt.health_check_successes = 2
perfopt.health_check_timeout = 1s
perfopt.routing_max_lag = 256kB
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION perfopt CASCADE');
$primary->backup('base');

my @standbys;
foreach my $name ('standby1', 'standby2')
{
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, 'base', has_streaming => 1);
	$standby->start;
	push @standbys, $standby;
}
my ($standby1, $standby2) = @standbys;
$primary->wait_for_catchup($_->name, 'replay') foreach @standbys;

sub query { return $primary->safe_psql('postgres', $_[0]); }

sub conninfo { return 'host=127.0.0.1 port=' . $_[0]->port . ' dbname=postgres'; }

# how many of n calls of route() with the algorithm went to each instance
# (its argument depends on g, so that it is called once per row)
sub spread
{
	my ($n, $algorithm) = @_;
	my %count = map { $_ => 0 } ('primary', 'standby1', 'standby2');
	foreach my $row (split /\n/, query(qq{
		SELECT r.instance, count(*) FROM generate_series(1, $n) g,
		       LATERAL perfopt.route(NULL, CASE WHEN g > 0 THEN '$algorithm' END) r
		 GROUP BY 1}))
	{
		my ($instance, $count) = split /\|/, $row;
		$count{$instance} = $count;
	}
	return \%count;
}

# the instance each of n session keys is routed to
sub affinity
{
	my ($n) = @_;
	my %map;
	foreach my $row (split /\n/, query(qq{
		SELECT g, r.instance FROM generate_series(1, $n) g,
		       LATERAL perfopt.route('session-' || g) r}))
	{
		my ($key, $instance) = split /\|/, $row;
		$map{$key} = $instance;
	}
	return \%map;
}

# 1. Registered instances become healthy; standbys report a lag, the primary none
query("SELECT perfopt.register_instance('primary', 'postgresql', '${\ conninfo($primary)}')");
query("SELECT perfopt.register_instance('${\ $_->name}', 'postgresql', '${\ conninfo($_)}')")
  foreach @standbys;
is(query(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'perfopt health checker'}),
	'1', 'the health checker runs, with its own backend_type');
ok($primary->poll_query_until('postgres',
		q{SELECT count(*) = 3 FROM perfopt.instances WHERE state = 'healthy'}),
	'primary and both standbys become healthy');
is(query(q{SELECT string_agg(name || ':' || (lag_bytes IS NOT NULL), ',' ORDER BY name)
			 FROM perfopt.instances}),
	'primary:false,standby1:true,standby2:true', 'standbys report their replication lag');
ok(query(q{SELECT bool_and(response_ms > 0 AND connections >= 0) FROM perfopt.instances}) eq 't',
	'response time and connections are measured');

# round robin over three instances: 30 calls, 10 each
my $rr = spread(30, 'round_robin');
is(join(',', map { $rr->{$_} } sort keys %$rr), '10,10,10', 'round robin shares evenly');
my $conf = query(q{SELECT confidence FROM perfopt.route(NULL, 'adaptive')});
ok($conf > 0 && $conf <= 1, "adaptive reports a confidence in (0, 1] ($conf)");

# 2. Affinity: adding a fourth instance moves only the keys it wins
my $keys = 3000;
my $before = affinity($keys);
query("SELECT perfopt.register_instance('extra', 'tcp', '127.0.0.1:${\ $primary->port}')");
ok($primary->poll_query_until('postgres',
		q{SELECT state = 'healthy' FROM perfopt.instances WHERE name = 'extra'}),
	'a TCP instance becomes healthy');
my $after = affinity($keys);
my @moved = grep { $before->{$_} ne $after->{$_} } keys %$before;
is(scalar(grep { $after->{$_} ne 'extra' } @moved), 0,
	'every key that moved went to the new instance');
my $share = @moved / $keys;
# 1/4 of the keys, within 6 binomial standard deviations (0.008 each)
ok(abs($share - 0.25) < 0.05, sprintf('%.3f of the keys moved, about 1/4', $share));
query("SELECT perfopt.deregister_instance('extra')");
my $back = affinity($keys);
is(scalar(grep { $before->{$_} ne $back->{$_} } keys %$before), 0,
	'removing it puts every key back where it was');

# 3. A lagging standby is avoided by adaptive routing
$standby2->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
query(q{CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g});
ok($primary->poll_query_until('postgres',
		q{SELECT state = 'degraded' AND lag_bytes > 262144 FROM perfopt.instances WHERE name = 'standby2'}),
	'the paused standby falls behind and is degraded');
# The requests routed since the last health check count as load, and the
# lagging standby's penalty is 1 s: 300 requests in one go would outweigh it
# on a loaded machine, where a check's response time reaches 10 ms; 60 stay
# below it up to checks of 30 ms
my $adaptive = spread(60, 'adaptive');
is($adaptive->{standby2}, 0, 'adaptive sends nothing to the lagging standby');
cmp_ok($adaptive->{primary} + $adaptive->{standby1}, '==', 60, 'the others take the requests');
my $rr_lag = spread(30, 'round_robin');
is($rr_lag->{standby2}, 10, 'round robin, blind to lag, still sends it a third');
$standby2->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
ok($primary->poll_query_until('postgres',
		q{SELECT state = 'healthy' FROM perfopt.instances WHERE name = 'standby2'}),
	'once it catches up it is healthy again');

# 4. A stopped standby is down after the failure threshold and gets nothing
my $stopped_at = time();
$standby1->stop('immediate');
ok($primary->poll_query_until('postgres',
		q{SELECT state = 'down' FROM perfopt.instances WHERE name = 'standby1'}),
	'the stopped standby is marked down');
my $took = time() - $stopped_at;
is(query(q{SELECT failures FROM perfopt.instances WHERE name = 'standby1'}), $failures,
	"after $failures failed checks");
# failures checks one interval (1 s) apart, plus one interval to the first
cmp_ok($took, '<=', $failures + 2, sprintf('within the threshold: %.1f s', $took));
foreach my $algorithm ('round_robin', 'least_connections', 'weighted', 'adaptive')
{
	is(spread(200, $algorithm)->{standby1}, 0, "$algorithm sends nothing to the down standby");
}
is(scalar(grep { $_ eq 'standby1' } values %{ affinity(1000) }), 0,
	'no session key is routed to it');

# 5. Draining: no new requests, and the state says so
query(q{SELECT perfopt.drain_instance('standby2')});
is(query(q{SELECT state FROM perfopt.instances WHERE name = 'standby2'}), 'draining', 'drained');
is(spread(100, 'round_robin')->{standby2}, 0, 'a draining instance takes no new requests');
is(query(q{SELECT instance FROM perfopt.route()}), 'primary', 'the primary takes them all');

# 6. route() reads shared memory: it answers in another database too
$primary->safe_psql('postgres', 'CREATE DATABASE app');
$primary->safe_psql('app', 'CREATE EXTENSION perfopt CASCADE');
is($primary->safe_psql('app', q{SELECT instance FROM perfopt.route()}), 'primary',
	'a session of another database gets the same answer');

$_->stop foreach ($standby2, $primary);
done_testing();
