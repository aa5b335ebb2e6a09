# The exporter and the Redis client under a hostile peer: an empty password
# is no password; one address cannot take every connection, and another
# address is still served meanwhile; a client that trickles its request is
# dropped after the request timeout however slowly it keeps sending;
# credentials in perfopt.alertmanager_url never reach the log; a Redis reply
# over perfopt's bound is an error, not a crash nor a huge allocation.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PerfoptTest::Util qw(http_get wait_for);
use Time::HiRes qw(time usleep);
use PerfoptTest::Redis;

BAIL_OUT('curl is not installed') unless system('command -v curl >/dev/null 2>&1') == 0;

my $redis = PerfoptTest::Redis->new('limits');
my $redis_port = $redis->port;
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $url = "http://127.0.0.1:$port/metrics";
my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;

# the first line of the password file is empty
open(my $fh, '>', "$dir/password") or die;
print $fh "\nsecond-line\n";
close $fh;
chmod 0644, "$dir/password";

my $node = PostgreSQL::Test::Cluster->new('limits');
$node->init;
# in postgresql.conf from the start: the server logs the new value of a
# setting changed by a reload, which perfopt cannot help
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.metrics_listen = '127.0.0.1:$port'
perfopt.metrics_user = 'prometheus'
perfopt.metrics_password_file = '$dir/password'
perfopt.alertmanager_url = 'http://alice:s3cret-in-url\@127.0.0.1:1'
perfopt.redis_host = '127.0.0.1'
perfopt.redis_port = $redis_port
restart_after_crash = on
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

# Whether the server closed a client socket (EOF or reset), within $wait seconds
sub closed_by_server
{
	my ($socket, $wait) = @_;
	my $select = IO::Select->new($socket);
	return 0 unless $select->can_read($wait);
	my $n = sysread($socket, my $buffer, 4096);
	return !defined($n) || $n == 0;
}

query('CREATE EXTENSION perfopt CASCADE');
ok(wait_for('the endpoint', sub { (http_get($url))[0] eq '401' }), 'the exporter asks for credentials');

# 1. An empty first line is no password
is((http_get($url, '-u', 'prometheus:'))[0], '401', 'an empty password is refused');
is((http_get($url, '-u', 'prometheus:second-line'))[0], '401', 'only the first line is the password');
like(slurp_file($node->logfile), qr/first line of perfopt\.metrics_password_file .* is empty/,
	'the empty password line is logged');
open($fh, '>', "$dir/password") or die;
print $fh "right\n";
close $fh;
query('SELECT pg_reload_conf()');
ok(wait_for('the new password', sub { (http_get($url, '-u', 'prometheus:right'))[0] eq '200' }),
	'a password in the file is taken after a reload');

# 2. Sixteen slow clients from one address: the address gets its share,
# the rest are refused, and another address is still served
my @slow = map {
	IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
	  or die "connect: $!"
} 1 .. 16;
syswrite($_, "GET /metrics HTTP/1.1\r\n") foreach @slow;
my $started = time;
my ($status) = http_get($url, '--interface', '127.0.0.2', '-u', 'prometheus:right');
is($status, '200', 'sixteen slow clients from 127.0.0.1: a client from 127.0.0.2 is still served');
my @refused = grep { closed_by_server($_, 0.5) } @slow;
my @held = grep { my $s = $_; !grep { $_ == $s } @refused } @slow;
cmp_ok(scalar(@refused), '>=', 8, 'the clients over the per-address cap were refused at once')
  or diag(scalar(@refused) . ' refused');
cmp_ok(scalar(@held), '>=', 1, 'the address keeps its share of connections');

# 3. The held clients trickle a header line every half second: they are
# dropped once the request timeout has passed, not kept alive by the lines
my %dropped_at;
while (time - $started < 15 && keys(%dropped_at) < @held)
{
	foreach my $i (0 .. $#held)
	{
		next if exists $dropped_at{$i};
		local $SIG{PIPE} = 'IGNORE';
		my $wrote = syswrite($held[$i], "X-Slow: $i\r\n");
		$dropped_at{$i} = time - $started
		  if !defined($wrote) || closed_by_server($held[$i], 0);
	}
	usleep(500_000);
}
is(scalar(keys %dropped_at), scalar(@held), 'every trickling client was dropped');
my ($latest) = sort { $b <=> $a } values %dropped_at;
cmp_ok($latest // 99, '<', 10, 'within the request timeout and a margin');
close($_) foreach @slow;

# 4. Credentials in perfopt.alertmanager_url stay out of the log: an open
# incident makes the exporter post, fail (port 1) and log the failure
query(q{INSERT INTO perfopt.incidents (opened_at, severity, title)
		VALUES (now(), 'critical', 'limits test')});
query('SELECT pg_reload_conf()');	# a reload posts at once
ok(wait_for('the failed post in the log',
		sub { slurp_file($node->logfile) =~ /could not post alerts to/ }),
	'the exporter logged that Alertmanager could not be reached');
my $log = slurp_file($node->logfile);
like($log, qr{could not post alerts to http://127\.0\.0\.1:1/api/v2/alerts}, 'the log names Alertmanager by host');
unlike($log, qr/alice|s3cret-in-url/, 'neither the user name nor the password of the URL is in the log');

# 5. A Redis reply over the bound: a key name of 5 MB, matched by the SCAN
# of a pattern invalidation
$redis->cli('EVAL', q{return redis.call('SET', 'huge:' .. string.rep('x', 5000000), '1')}, '0');
is($redis->cli('DBSIZE'), '1', 'Redis holds a key with a 5 MB name');
query(q{SELECT perfopt.cache_invalidate('huge:*')});
ok($node->poll_query_until('postgres',
		q{SELECT last_error LIKE '%sent SCAN a reply larger than 4194304 bytes%'
		    FROM perfopt.cache_worker_state()}),
	'the cache worker refuses the oversized SCAN reply with a clear error');
is(query(q{SELECT count(*) FROM perfopt.cache_invalidations}), '1',
	'the invalidation stays queued');
is($redis->cli('DBSIZE'), '1', 'and the key was not removed by a half-read reply');
# a small key that matches is set first: while the huge key is there the
# worker cannot finish, so it cannot drain the pattern before this key exists
$redis->cli('SET', 'huge:small', '1');
$redis->cli('EVAL', q{return redis.call('DEL', 'huge:' .. string.rep('x', 5000000))}, '0');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM perfopt.cache_invalidations}),
	'once the key is gone the worker sends the invalidation');
is($redis->cli('EXISTS', 'huge:small'), '0', 'and Redis removed what matched');

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'nothing crashed');

$node->stop;
done_testing();
