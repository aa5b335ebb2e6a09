# perfopt as a user installs it: preloaded or not, settings, upgrades.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Preloaded next to pg_stat_statements, as recommended
my $node = PostgreSQL::Test::Cluster->new('preloaded');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.slow_query_ms = 250
perfopt.slow_querry_ms = 10
});
$node->start;

is($node->safe_psql('postgres', 'CREATE EXTENSION perfopt CASCADE; SELECT 1'),
	'1', 'CREATE EXTENSION perfopt CASCADE installs it');
is($node->safe_psql('postgres',
		"SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'"),
	'hypopg,perfopt,pg_stat_statements', 'and brings pg_stat_statements and hypopg with it');
is($node->safe_psql('postgres', 'SHOW perfopt.slow_query_ms'),
	'250ms', 'a perfopt setting from postgresql.conf is in effect');
like(slurp_file($node->logfile),
	qr/invalid configuration parameter name "perfopt\.slow_querry_ms"/,
	'a misspelt perfopt setting is reported at start, not silently kept');
is($node->safe_psql('postgres', "SELECT pattern FROM perfopt.analyze_query('SELECT 1')"),
	'SELECT', 'analyze_query works');
is($node->safe_psql('postgres', 'SELECT count(*) >= 0 FROM perfopt.slow_queries'),
	't', 'slow_queries works');

# Every version that has an install script or an update path installs, and
# updating from any of them to the default gives what a fresh install of the
# default gives: the same functions with the same definitions and settings,
# views, tables, columns, constraints, indexes, policies, grants, comments,
# seeds (test/fixtures/catalog_snapshot.sql lists them)
my $snapshot = slurp_file('test/fixtures/catalog_snapshot.sql');
my $fresh = $node->safe_psql('postgres', $snapshot);
ok(length($fresh) > 10000, 'a fresh install has a catalog snapshot');
my $default = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'perfopt'");
# versions sort as versions: 0.10.0 comes after 0.9.0
my @versions = split /\n/, $node->safe_psql('postgres',
	"SELECT version FROM pg_available_extension_versions WHERE name = 'perfopt'
	  ORDER BY string_to_array(version, '.')::int[]");
is($versions[-1], $default, 'versions sort as versions, the default last: ' . join(', ', @versions));

# the lines of two snapshots that differ, for a readable failure
sub snapshot_diff
{
	my ($a, $b) = @_;
	my %in_a = map { $_ => 1 } split /\n/, $a;
	my %in_b = map { $_ => 1 } split /\n/, $b;
	my @only_a = grep { !$in_b{$_} } sort keys %in_a;
	my @only_b = grep { !$in_a{$_} } sort keys %in_b;
	return join("\n", (map { "- $_" } @only_a), (map { "+ $_" } @only_b));
}

foreach my $version (@versions)
{
	$node->safe_psql('postgres', qq{
		DROP EXTENSION perfopt;
		CREATE EXTENSION perfopt VERSION '$version';
		ALTER EXTENSION perfopt UPDATE;});
	is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'perfopt'"),
		$default, "from $version, ALTER EXTENSION UPDATE reaches $default");
	is(snapshot_diff($fresh, $node->safe_psql('postgres', $snapshot)), '',
		"from $version, the same catalog as a fresh install");
}

# The comparison can fail: a definition changed in one place only shows
$node->safe_psql('postgres', q{
	CREATE OR REPLACE FUNCTION perfopt.condition_holds(condition text, value float8, threshold float8)
	RETURNS boolean LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
	AS $$ SELECT value > threshold $$});
like(snapshot_diff($fresh, $node->safe_psql('postgres', $snapshot)), qr/condition_holds/,
	'a function changed in one install only makes the snapshots differ');
$node->safe_psql('postgres', 'DROP EXTENSION perfopt; CREATE EXTENSION perfopt');
$node->safe_psql('postgres', 'GRANT SELECT ON perfopt.job_runs TO PUBLIC');
like(snapshot_diff($fresh, $node->safe_psql('postgres', $snapshot)), qr/job_runs/,
	'and so does a grant');
$node->safe_psql('postgres', 'DROP EXTENSION perfopt; CREATE EXTENSION perfopt');

# Installing into a database whose public schema holds overloads of the
# functions and operators perfopt uses (anyone could have made them there):
# CREATE EXTENSION, and the update from the release before, succeed, and no
# perfopt object is bound to anything in public
my $hostile = slurp_file('test/fixtures/hostile_public.sql');
my $bound = q{
	SELECT string_agg(pg_describe_object(d.classid, d.objid, d.objsubid) || ' -> '
	                  || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), E'\n')
	  FROM pg_depend d
	 WHERE (pg_identify_object(d.refclassid, d.refobjid, 0)).schema = 'public'
	   AND d.deptype <> 'e'
	   AND pg_describe_object(d.classid, d.objid, d.objsubid) ~ 'perfopt'
	   AND NOT EXISTS (SELECT FROM pg_depend x
	                    WHERE x.classid = d.refclassid AND x.objid = d.refobjid AND x.deptype = 'e')};
$node->safe_psql('postgres', 'CREATE DATABASE hostile_fresh; CREATE DATABASE hostile_update');
$node->safe_psql('hostile_fresh', $hostile);
my ($hret, $hout, $herr) = $node->psql('hostile_fresh', 'CREATE EXTENSION perfopt CASCADE');
is($hret, 0, 'CREATE EXTENSION succeeds beside overloads in public') or diag($herr);
is($node->safe_psql('hostile_fresh', $bound), '', 'and binds nothing in public');
is(snapshot_diff($fresh, $node->safe_psql('hostile_fresh', $snapshot)), '',
	'and makes the same catalog as anywhere else');
my $previous = $versions[-2];
$node->safe_psql('hostile_update', "CREATE EXTENSION perfopt VERSION '$previous' CASCADE");
$node->safe_psql('hostile_update', $hostile);
($hret, $hout, $herr) = $node->psql('hostile_update', 'ALTER EXTENSION perfopt UPDATE');
is($hret, 0, "the update from $previous succeeds beside overloads in public") or diag($herr);
is($node->safe_psql('hostile_update', $bound), '', 'and leaves nothing bound in public');

# A role named like perfopt's that can log in (made beforehand by someone, or
# changed since) is not adopted: the install stops and says why
$node->safe_psql('postgres', 'DROP EXTENSION perfopt; ALTER ROLE perfopt_app LOGIN');
my ($rret, $rout, $rerr) = $node->psql('postgres', 'CREATE EXTENSION perfopt');
isnt($rret, 0, 'a pre-existing perfopt_app that can log in stops CREATE EXTENSION');
like($rerr, qr/role "perfopt_app" already exists and is not a plain group role/, 'with a clear error');
like($rerr, qr/HINT:  Check who made it/, 'and a hint');
$node->safe_psql('postgres', 'ALTER ROLE perfopt_app NOLOGIN; CREATE EXTENSION perfopt');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'perfopt'"),
	'1', 'once it is a plain group role, the install adopts it');
# the same for the dashboards' read-only role, with an attribute this time
$node->safe_psql('postgres', 'DROP EXTENSION perfopt; ALTER ROLE perfopt_reader CREATEDB');
($rret, $rout, $rerr) = $node->psql('postgres', 'CREATE EXTENSION perfopt');
isnt($rret, 0, 'a pre-existing perfopt_reader with an attribute (CREATEDB) stops CREATE EXTENSION');
like($rerr, qr/role "perfopt_reader" already exists and is not a plain group role/, 'with the same error');
$node->safe_psql('postgres', 'ALTER ROLE perfopt_reader NOCREATEDB; CREATE EXTENSION perfopt');
is($node->safe_psql('postgres', "SELECT pg_has_role('perfopt_reader', 'perfopt_reader', 'USAGE')
		AND has_function_privilege('perfopt_reader', 'perfopt.health()', 'EXECUTE')"),
	't', 'once it is a plain group role, the install adopts it and grants it its rights');

# DROP EXTENSION leaves nothing behind
$node->safe_psql('postgres', 'DROP EXTENSION perfopt');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_namespace WHERE nspname = 'perfopt'"),
	'0', 'DROP EXTENSION removes the perfopt schema');
$node->stop;

# Not preloaded: what needs neither shared memory nor pg_stat_statements'
# figures still works; what needs them says how to get them
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION perfopt CASCADE');
is($plain->safe_psql('postgres',
		"SELECT pattern || ' ' || complexity FROM perfopt.analyze_query('SELECT relname FROM pg_class WHERE oid = 1259')"),
	'SELECT 1', 'analyze_query works without preloading');
is($plain->safe_psql('postgres', q{
		CREATE TABLE t (a int, b int);
		INSERT INTO t SELECT i, i FROM generate_series(1, 10000) i;
		ANALYZE t;
		SELECT kind FROM perfopt.advise_query('SELECT b FROM t WHERE a = 5')}),
	'single', 'the index advisor works without preloading');
is($plain->safe_psql('postgres', "SELECT FROM perfopt.analyze_query('SELECT 1'); SET perfopt.slow_query_ms = 100; SHOW perfopt.slow_query_ms"),
	'100ms', 'settings are defined once a function has loaded the library');
my ($ret, $stdout, $stderr) = $plain->psql('postgres',
	'SELECT * FROM perfopt.slow_queries', extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($ret, 0, 'slow_queries fails without pg_stat_statements preloaded');
like($stderr, qr/ERROR:  55000: pg_stat_statements is not loaded/, 'with SQLSTATE 55000');
like($stderr, qr/HINT:  Add pg_stat_statements to shared_preload_libraries/, 'and a hint that says what to do');
$plain->stop;

done_testing();
