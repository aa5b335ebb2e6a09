# pgbouncer_config() in front of a real PgBouncer: the fragment it writes,
# included as it is into a pgbouncer.ini that adds only where to listen and
# who may log in, starts PgBouncer; clients connect through it on loopback
# (the server listens on a unix socket only), more clients than the pool
# run transactions, and the server never sees more connections than
# default_pool_size.  A plain login role gets a fragment too, without the
# server's socket directory it may not read.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);

my $pgbouncer = '/usr/sbin/pgbouncer';
plan skip_all => 'pgbouncer is not installed (Debian package pgbouncer)' unless -x $pgbouncer;

my $node = PostgreSQL::Test::Cluster->new('bouncer');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
listen_addresses = ''
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION perfopt CASCADE');
$node->safe_psql('postgres', 'CREATE ROLE alice LOGIN');
$node->command_ok([ 'pgbench', '-i', '-q', '-s', '1', '-h', $node->host, '-p', $node->port, 'postgres' ],
	'pgbench tables');

# 1. The fragment, as a superuser and as a plain role
my $fragment = $node->safe_psql('postgres', 'SELECT perfopt.pgbouncer_config(0.5)');
my ($pool) = $fragment =~ /^default_pool_size = (\d+)$/m;
ok(defined $pool && $pool >= 1, "the fragment sets default_pool_size ($pool)");
like($fragment, qr/^\[databases\]\npostgres = host=\Q${\$node->host}\E port=${\$node->port} dbname=postgres$/m,
	'and names this server\'s socket and database');
like($fragment, qr/^pool_mode = (session|transaction)$/m, 'and a pool mode');
my $advice = $node->safe_psql('postgres',
	q{SELECT recommended FROM perfopt.pool_recommendation(0.5) WHERE setting = 'pool_size'});
is($pool, $advice, 'the pool size is pool_recommendation()\'s');
my ($ret, $plain, $err) = $node->psql('postgres', 'SELECT perfopt.pgbouncer_config(0.2)',
	extra_params => [ '-U', 'alice' ]);
is($err, '', 'a plain login role gets a fragment');
like($plain, qr/^postgres = port=\d+ dbname=postgres$/m, 'without the socket directory it may not read');
($ret, $plain, $err) = $node->psql('postgres', 'SELECT perfopt.pgbouncer_config(-1)',
	extra_params => [ '-U', 'alice', '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22023: sample_seconds must be between/, 'a bad sample time is an error with its SQLSTATE');

# 2. A real PgBouncer with it, on loopback only
my $dir = $node->basedir;
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $user = $node->safe_psql('postgres', 'SELECT current_user');
open(my $fh, '>', "$dir/userlist.txt") or die $!;
print $fh qq{"$user" ""\n};
close $fh;
# the fragment as it is, and where to listen and whom to let in appended to
# its [pgbouncer] section
open($fh, '>', "$dir/pgbouncer.ini") or die $!;
print $fh $fragment . qq{
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = $user
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
};
close $fh;
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ], '<', \undef, '>', "$dir/pgbouncer.out",
	'2>&1');
my $up = 0;
for (1 .. 100)
{
	my ($out, $e) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-At', '-h', '127.0.0.1', '-p', $port, '-d', 'postgres', '-c', 'SELECT 1' ],
		'>', \$out, '2>', \$e);
	if ($out =~ /^1$/m) { $up = 1; last; }
	usleep(100_000);
}
ok($up, 'PgBouncer started with the fragment, and a client connects through it')
  or diag(slurp_file("$dir/pgbouncer.out") . (-f "$dir/pgbouncer.log" ? slurp_file("$dir/pgbouncer.log") : ''));

sub admin
{
	my ($command) = @_;
	my ($out, $e) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-At', '-h', '127.0.0.1', '-p', $port, '-d', 'pgbouncer', '-c', $command ],
		'>', \$out, '2>', \$e);
	return $out;
}
my ($config_pool) = admin('SHOW CONFIG') =~ /^default_pool_size\|(\d+)\|/m;
is($config_pool, $pool, 'PgBouncer runs with the fragment\'s pool size');

# 3. More clients than the pool: all their transactions go through, and the
# server never has more connections than the pool
my $clients = 4 * $pool;
my ($bench_out, $bench_err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-S', '-c', $clients, '-T', '4', '-h', '127.0.0.1', '-p', $port, 'postgres' ],
	'>', \$bench_out, '2>', \$bench_err);
# The server's count can include a backend PgBouncer already closed that is
# still exiting (a loaded machine shows it), so the bound is checked on the
# connections PgBouncer holds open to the server (SHOW SERVERS), and the
# server's own count must see them
my ($peak, $peak_servers) = (0, 0);
for (1 .. 30)
{
	my $n = $node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = 'postgres'});
	$peak = $n if $n > $peak;
	my $servers = () = admin('SHOW SERVERS') =~ /^\S+\|\S+\|postgres\|/mg;
	$peak_servers = $servers if $servers > $peak_servers;
	usleep(100_000);
}
$bench->finish;
my ($tx) = $bench_out =~ /number of transactions actually processed: (\d+)/;
cmp_ok($tx // 0, '>', 0, "$clients pgbench clients ran $tx transactions through PgBouncer") or diag($bench_err);
cmp_ok($peak, '>=', 1, "the server saw PgBouncer's connections ($peak)");
cmp_ok($peak_servers, '<=', $pool, "never more than the pool of $pool server connections ($peak_servers)");
cmp_ok($peak_servers, '>=', 1, 'PgBouncer held server connections while the clients ran');
my ($xacts) = admin('SHOW STATS') =~ /^postgres\|(\d+)\|/m;
cmp_ok($xacts // 0, '>=', $tx // 1, "PgBouncer counted the transactions ($xacts)");

$bouncer->kill_kill;
$node->stop;
done_testing();
