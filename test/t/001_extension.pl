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

# Every version that has an install script or an upgrade path installs,
# and updating from any of them to the default gives what a fresh install
# of the default gives
my $members = q{
	SELECT string_agg(pg_describe_object(classid, objid, 0), E'\n' ORDER BY 1)
	  FROM pg_depend
	 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'perfopt')};
my $definitions = q{
	SELECT string_agg(pg_get_functiondef(p.oid), E'\n' ORDER BY p.proname)
	  FROM pg_proc p WHERE p.pronamespace = 'perfopt'::regnamespace}
  . q{ UNION ALL SELECT string_agg(c.relname || ': ' || pg_get_viewdef(c.oid), E'\n' ORDER BY c.relname)
	  FROM pg_class c WHERE c.relnamespace = 'perfopt'::regnamespace AND c.relkind = 'v'};
my $fresh_members = $node->safe_psql('postgres', $members);
my $fresh_definitions = $node->safe_psql('postgres', $definitions);
my $default = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'perfopt'");
my @versions = split /\n/, $node->safe_psql('postgres',
	"SELECT version FROM pg_available_extension_versions WHERE name = 'perfopt' ORDER BY version");
ok(scalar(@versions) >= 1, 'perfopt versions: ' . join(', ', @versions));
foreach my $version (@versions)
{
	$node->safe_psql('postgres', qq{
		DROP EXTENSION perfopt;
		CREATE EXTENSION perfopt VERSION '$version';
		ALTER EXTENSION perfopt UPDATE;});
	is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'perfopt'"),
		$default, "from $version, ALTER EXTENSION UPDATE reaches $default");
	is($node->safe_psql('postgres', $members), $fresh_members,
		"from $version, the same objects as a fresh install");
	is($node->safe_psql('postgres', $definitions), $fresh_definitions,
		"from $version, the same function and view definitions as a fresh install");
}

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
