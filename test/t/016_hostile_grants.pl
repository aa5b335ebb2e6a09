# What a tenant may see of perfopt, and what each role is given.
#
# The grants in the catalog are exactly those docs/security.md lists (a
# grant added without its line in the docs, or a line without its grant,
# fails).  Then, as the roles: a plain login role (alice) cannot read the
# cache's queue, whose keys are made of row values, nor the warmers, the
# latency function the monitoring view wraps, or route(); it sees only its
# own statements' texts; a monitoring role sees what the workers measure
# but not the keys; an application role granted perfopt_app may route.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('grants');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.redis_port = 1
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

# Run sql as role; returns (stdout, stderr) without dying on an error
sub as_role
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ]);
	return ($out, $err);
}

query('CREATE EXTENSION perfopt CASCADE');
query(q{CREATE ROLE alice LOGIN; CREATE ROLE mon LOGIN IN ROLE pg_monitor;
		CREATE ROLE app LOGIN IN ROLE perfopt_app; CREATE ROLE mallory LOGIN IN ROLE perfopt_admin});

# 1. The catalog's grants are the documented ones
my $docs = slurp_file('docs/security.md');
my ($table) = $docs =~ /<!-- grants -->\n(.*?)<!-- \/grants -->/s;
ok(defined $table, 'docs/security.md has the table of grants');
my @documented = sort grep { /^\| `/ } split /\n/, ($table // '');
my @granted = sort split /\n/, query(slurp_file('test/fixtures/grants.sql'));
ok(scalar(@granted) > 50, 'perfopt grants privileges on its objects');
my %in_docs = map { $_ => 1 } @documented;
my %in_catalog = map { $_ => 1 } @granted;
is(join("\n", grep { !$in_docs{$_} } @granted), '', 'every grant in the catalog is in docs/security.md');
is(join("\n", grep { !$in_catalog{$_} } @documented), '', 'every grant docs/security.md lists is in the catalog');

# 2. Cache keys are made of row values: only a superuser reads them
query(q{CREATE TABLE users (id int PRIMARY KEY, email text);
		INSERT INTO users VALUES (1, 'ceo@example.com');
		SELECT perfopt.cache_watch('users', 'user:{email}');
		UPDATE users SET email = 'cfo@example.com' WHERE id = 1;});
like(query('SELECT string_agg(key, \',\' ORDER BY key) FROM perfopt.cache_outbox'),
	qr/user:ceo\@example\.com/, 'the outbox holds a key made of a row value (no Redis drains it)');
foreach my $role ('alice', 'mon', 'mallory', 'app')
{
	my ($out, $err) = as_role($role, 'SELECT key FROM perfopt.cache_outbox');
	like($err, qr/42501/, "$role cannot read the cache outbox");
	unlike($out, qr/example\.com/, "and sees no key");
	($out, $err) = as_role($role, 'SELECT query FROM perfopt.cache_warmers');
	like($err, qr/42501/, "$role cannot read the cache warmers");
}

# 3. Latency and routing are not PUBLIC
my ($out, $err) = as_role('alice', 'SELECT count(*) FROM perfopt.query_latency()');
like($err, qr/42501/, 'alice cannot call query_latency()');
($out, $err) = as_role('mon', 'SELECT count(*) >= 0 FROM perfopt.query_latency()');
is($out, 't', 'a pg_monitor member can');
($out, $err) = as_role('alice', 'SELECT * FROM perfopt.route()');
like($err, qr/42501/, 'alice cannot call route()');
# no instance is registered: a member of perfopt_app gets past the privilege
# check to route()'s own answer
($out, $err) = as_role('app', 'SELECT * FROM perfopt.route()');
like($err, qr/55000: no instance can take traffic/, 'a member of perfopt_app may call route()');
foreach my $relation ('metrics', 'live_metrics', 'anomalies', 'jobs', 'instances', 'incidents')
{
	($out, $err) = as_role('alice', "SELECT count(*) FROM perfopt.$relation");
	like($err, qr/42501/, "alice cannot read perfopt.$relation");
}

# 4. Through perfopt, alice sees only her own statements' texts
query('CREATE TABLE secrets (id int, note text); SELECT pg_stat_statements_reset()');
query(q{SELECT count(*) FROM secrets WHERE note = 'the merger with acme'});
as_role('alice', 'SELECT 42 AS alices_own');
($out, $err) = as_role('alice', 'SELECT string_agg(query, E\'\n\') FROM perfopt.statement_texts');
like($out, qr/alices_own/, 'alice sees her own statement in statement_texts');
unlike($out, qr/secrets/, "but not the text of another role's statement");
($out, $err) = as_role('alice', 'SELECT string_agg(query, E\'\n\') FROM perfopt.slow_queries');
unlike($out // '', qr/secrets/, "nor in slow_queries");

ok(!(slurp_file($node->logfile) =~ /terminated by signal/), 'no backend crashed');
$node->stop;
done_testing();
