# The sizes the metrics sampler keeps in shared memory (issue 18, scale).
#
# table_health and index_drop_candidates take a relation's size from the
# sampler's state when the relation's file and statistics have not changed
# since the sample, and from its files otherwise (docs/table-health.md,
# "At 10,000 tables").  Checked here:
#
# - the sampler measures only what changed: a second sample does not read
#   the files of a table nobody touched, and reads them again once it is
#   written to (the per-relation DEBUG2 lines of the refresh);
# - every size shown is the size pg_relation_size() gives right then, after
#   each change that can move it: inserts, a vacuum that truncates, TRUNCATE,
#   an index built, a table created after the sample.  A state used without
#   the freshness rule shows the size of the sample and fails these;
# - the state is per database and holds no list of tables: a role with no
#   privilege sees in table_health exactly the tables pg_stat_user_tables
#   shows it, never another database's table the sampler measured;
# - beyond perfopt.table_state_max the sampler says so, and sizes stay right.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('table_state');
$node->init;
# the launcher samples its own database (postgres); the tables are in
# another, so that what a sample measured there is what this test did
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
autovacuum = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE bench');
$node->safe_psql('bench', 'CREATE EXTENSION perfopt CASCADE');

sub query { return $node->safe_psql($_[1] // 'bench', $_[0]); }

# a change, its statistics reported before it returns
sub change { return query($_[0] . '; SELECT pg_stat_force_next_flush()', $_[1]); }

# the relations one sample measured, by name
sub sample
{
	my ($db) = @_;
	my ($stdout, $stderr);
	$node->psql($db // 'bench', q{
		SELECT pg_stat_force_next_flush();
		SET client_min_messages = debug2;
		SELECT perfopt.sample_metrics();},
		stdout => \$stdout, stderr => \$stderr, on_error_die => 1);
	my %measured;
	$measured{$1} = 1 while $stderr =~ /measured relation (\d+):/g;
	my $relids = join(',', keys %measured);
	my %names = map { $_ => 1 } split /,/,
	  query("SELECT string_agg(oid::regclass::text, ',') FROM pg_class WHERE oid = ANY ('{$relids}'::oid[])", $db);
	return \%names;
}

# size_bytes of table_health against pg_relation_size, and the same for
# the table's indexes through perfopt.relation_bytes
sub sizes_right
{
	my ($table, $what) = @_;
	my $check = query(qq{
		SELECT (SELECT size_bytes FROM perfopt.table_health WHERE table_name = '$table'::regclass)
		       || ' ' || pg_relation_size('$table'),
		       (SELECT string_agg(perfopt.relation_bytes(indexrelid) || ' ' || pg_relation_size(indexrelid), ',')
		          FROM pg_index WHERE indrelid = '$table'::regclass)});
	my ($heap, $indexes) = split /\|/, $check;
	my ($shown, $real) = split / /, $heap;
	is($shown, $real, "$what: table_health shows the table's size ($real bytes)");
	for my $pair (split /,/, $indexes // '')
	{
		my ($a, $b) = split / /, $pair;
		is($a, $b, "$what: relation_bytes shows its index's size ($b bytes)");
	}
}

change(q{
	CREATE TABLE grows (id int PRIMARY KEY, v text);
	INSERT INTO grows SELECT i, repeat('x', 100) FROM generate_series(1, 1000) i;
	CREATE TABLE quiet (id int PRIMARY KEY);
	INSERT INTO quiet SELECT generate_series(1, 1000);});

# 1. a sample measures what changed
my $first = sample();
ok($first->{grows} && $first->{quiet} && $first->{quiet_pkey},
	'the first sample measures every table and index');
my $second = sample();
ok(!$second->{quiet} && !$second->{quiet_pkey} && !$second->{grows},
	'the next one measures none that nobody touched');
sizes_right('quiet', 'unchanged since the sample');
change(q{INSERT INTO grows SELECT i, repeat('y', 100) FROM generate_series(1001, 5000) i});
sizes_right('grows', 'rows inserted after the sample');
my $third = sample();
ok($third->{grows} && $third->{grows_pkey} && !$third->{quiet},
	'a sample after the inserts measures that table and its index again, not the others');

# 2. every change that moves a size is seen without a new sample
change(q{DELETE FROM grows WHERE id > 100});
sizes_right('grows', 'rows deleted (the file keeps its size)');
sample();
change(q{VACUUM grows});
sizes_right('grows', 'a vacuum that truncated the table');
sample();
change(q{TRUNCATE grows});
sizes_right('grows', 'TRUNCATE (a new file)');
sample();
change(q{INSERT INTO grows SELECT i, 'z' FROM generate_series(1, 3000) i; CREATE INDEX grows_v ON grows (v)});
sizes_right('grows', 'an index built after the sample');
change(q{CREATE TABLE late (id int PRIMARY KEY); INSERT INTO late SELECT generate_series(1, 2000)});
sizes_right('late', 'a table created after the sample');
# an UPDATE in a transaction that rolls back still grows the file
sample();
change(q{BEGIN; UPDATE quiet SET id = id + 100000; ROLLBACK;});
sizes_right('quiet', 'an update rolled back');

# 3. what a role with no privilege sees: the tables pg_stat_user_tables shows
# it, not the other database's table the sampler measured there
query('CREATE DATABASE other');
query('CREATE EXTENSION perfopt CASCADE', 'other');
change('CREATE TABLE other_secret (id int); INSERT INTO other_secret VALUES (1)', 'other');
my $other = sample('other');
ok($other->{other_secret}, "the other database's table is in the state");
sample();
change(q{
	CREATE ROLE tenant LOGIN;
	CREATE TABLE private (id int, secret text);
	INSERT INTO private VALUES (1, 'x');
	REVOKE ALL ON private FROM PUBLIC;});
sample();
my $as_tenant = sub {
	return $node->safe_psql('bench', $_[0], extra_params => [ '-U', 'tenant' ]);
};
my $health = $as_tenant->(q{
	SELECT string_agg(table_name::text, ',' ORDER BY table_name::text) FROM perfopt.table_health});
my $catalog = $as_tenant->(q{
	SELECT string_agg(relid::regclass::text, ',' ORDER BY relid::regclass::text)
	  FROM pg_stat_user_tables WHERE schemaname <> 'perfopt'});
is($health, $catalog, 'a role with no privilege sees in table_health the tables of pg_stat_user_tables');
unlike($health, qr/other_secret/, "and never the other database's table");
is($as_tenant->(q{SELECT count(*) FROM perfopt.table_health WHERE table_name::text LIKE '%other_secret%'}),
	'0', "not by name either");

# 4. a state too small: the sampler says so, and the sizes are measured
$node->append_conf('postgresql.conf', 'perfopt.table_state_max = 3');
$node->restart;
my $log_offset = -s $node->logfile;
my $user_relations = query(q{SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'm', 'i')
	AND relnamespace NOT IN ('pg_catalog'::regnamespace, 'pg_toast'::regnamespace)});
cmp_ok($user_relations, '>', 3, "the database has more relations than the state's room");
for my $round (1, 2)
{
	# the files of only as many relations as the state keeps are read: those
	# it cannot keep each reader measures, so the sampler does not
	my $measured = scalar keys %{ sample() };
	cmp_ok($measured, '<=', 3,
		"sample $round reads the sizes of at most the 3 relations the state keeps ($measured of $user_relations)");
}
ok($node->log_contains(qr/perfopt.table_state_max \(3\) is too small/, $log_offset),
	'a state too small for the database is logged');
change(q{INSERT INTO quiet SELECT generate_series(200001, 205000)});
sizes_right('quiet', 'with a state too small');

$node->stop;
done_testing();
