# Lock discipline and the tables exact mode cannot read:
# - table_health(exact => true) works while another session holds a
#   temporary table (it used to fail with "cannot access temporary tables of
#   other sessions"), lists that table from statistics with measured = false,
#   and still reads the caller's own temporary table;
# - a table of another access method (a second table access method with
#   heap's handler, which needs no extra package) is not read as heap pages;
# - views, foreign tables and partitioned tables are not listed, partitions
#   are;
# - latency histograms past perfopt.max_statements: eviction keeps the most
#   used statements, without an error or a crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('locks');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
compute_query_id = on
perfopt.max_statements = 100
autovacuum = off
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

query('CREATE EXTENSION perfopt CASCADE');

# ---------------------------------------------------------------------------
# table_health(exact => true) beside other sessions' temporary tables
# ---------------------------------------------------------------------------

query(q{
	CREATE TABLE plain_table AS SELECT g AS i, repeat('x', 100) AS pad FROM generate_series(1, 2000) g;
	CREATE INDEX ON plain_table (i);
	DELETE FROM plain_table WHERE i % 2 = 0;
	CREATE ACCESS METHOD heap_alias TYPE TABLE HANDLER heap_tableam_handler;
	CREATE TABLE other_am (i int) USING heap_alias;
	INSERT INTO other_am SELECT generate_series(1, 1000);
	CREATE VIEW a_view AS SELECT * FROM plain_table;
	CREATE TABLE parted (i int) PARTITION BY RANGE (i);
	CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
	INSERT INTO parted SELECT generate_series(0, 999);
	CREATE FOREIGN DATA WRAPPER no_handler;
	CREATE SERVER nowhere FOREIGN DATA WRAPPER no_handler;
	CREATE FOREIGN TABLE a_foreign (i int) SERVER nowhere;
	SELECT pg_stat_force_next_flush()});

# another session keeps a temporary table, with an index and dead rows
my $other = $node->background_psql('postgres');
$other->query_safe(q{
	CREATE TEMP TABLE their_temp AS SELECT g AS i, repeat('y', 100) AS pad FROM generate_series(1, 2000) g;
	CREATE INDEX ON their_temp (i);
	DELETE FROM their_temp WHERE i % 3 = 0;
	SELECT pg_stat_force_next_flush()});
$other->query_safe('SELECT 1');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_user_tables WHERE relname = 'their_temp'}),
	"the other session's temporary table is in pg_stat_user_tables");

# the call as a superuser, who may read every table
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SELECT relname, measured, bloat_error_pct IS NOT NULL, est_bloat_pct >= 0
	  FROM perfopt.table_health(exact => true) h JOIN pg_class c ON c.oid = h.table_name
	 ORDER BY relname});
is($ret, 0, "table_health(exact => true) works beside another session's temporary table")
  or diag($stderr);
unlike($stderr, qr/temporary tables of other sessions/, 'no "cannot access temporary tables" error');
my %row = map { my @f = split /\|/; ($f[0] => join('|', @f[1 .. 3])) } split /\n/, $stdout;
is($row{their_temp}, 'f|f|t', "another session's temporary table is listed from statistics, not measured");
is($row{plain_table}, 't|t|t', 'a plain table is measured');
is($row{other_am}, 'f|f|t', 'a table of another access method is listed, not read as heap pages');
is($row{parted_1}, 't|t|t', 'a partition is measured');
ok(exists $row{plain_table} && !exists $row{a_view} && !exists $row{a_foreign} && !exists $row{parted},
	'views, foreign tables and partitioned tables are not listed');

# the same for one table named
is(query(q{SELECT measured FROM perfopt.table_health(true, 'other_am')}), 'f',
	'table_health(true, rel) on a table of another access method');

# the session that owns a temporary table measures it
my $owner = $node->background_psql('postgres');
$owner->query_safe(q{
	CREATE TEMP TABLE my_temp AS SELECT g AS i FROM generate_series(1, 2000) g;
	DELETE FROM my_temp WHERE i % 2 = 0;
	SELECT pg_stat_force_next_flush()});
$owner->query_safe('SELECT 1');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_user_tables WHERE relname = 'my_temp'}),
	'the owner\'s temporary table is in pg_stat_user_tables');
is($owner->query_safe(q{
	SELECT string_agg(c.relname || '=' || h.measured, ',' ORDER BY c.relname)
	  FROM perfopt.table_health(true) h JOIN pg_class c ON c.oid = h.table_name
	 WHERE c.relname IN ('my_temp', 'their_temp')}),
	'my_temp=true,their_temp=false',
	'the owner measures its own temporary table, not the other session\'s');

# a role that may only read its own table: still no error
query(q{
	CREATE ROLE health_reader LOGIN;
	GRANT SELECT ON plain_table TO health_reader;
	GRANT USAGE ON SCHEMA perfopt TO health_reader;
	GRANT EXECUTE ON FUNCTION perfopt.table_health(boolean, regclass) TO health_reader});
($ret, $stdout, $stderr) = $node->psql('postgres', q{
	SELECT string_agg(c.relname || '=' || h.measured, ',' ORDER BY c.relname)
	  FROM perfopt.table_health(true) h JOIN pg_class c ON c.oid = h.table_name
	 WHERE c.relname IN ('plain_table', 'their_temp', 'other_am')},
	extra_params => [ '-U', 'health_reader' ]);
is($ret, 0, 'a role without pg_stat_scan_tables gets no error either') or diag($stderr);
is($stdout, 'other_am=false,plain_table=true,their_temp=false',
	'and measures only what it may read and what is heap');

$owner->quit;
$other->quit;

# ---------------------------------------------------------------------------
# latency eviction past perfopt.max_statements
# ---------------------------------------------------------------------------

# statements that differ in their number of columns differ in queryid
sub statement { return 'SELECT ' . join(', ', ('1') x $_[0]) . ";\n"; }

query('SELECT perfopt.query_latency_reset()');
# 30 statements used 10 times, 20 used 3 times, then 250 used once
query(join('', map { statement($_) x 10 } 1 .. 30)
	  . join('', map { statement($_) x 3 } 31 .. 50));
query(join('', map { statement($_) } 51 .. 300));

my ($entries, $hot, $warm) = split /\|/, query(q{
	SELECT count(*),
	       count(*) FILTER (WHERE calls = 10),
	       count(*) FILTER (WHERE calls = 3)
	  FROM perfopt.query_latency()});
cmp_ok($entries, '<=', 100, "no more entries than perfopt.max_statements ($entries)");
is($hot, 30, 'every statement used 10 times was kept');
is($warm, 20, 'every statement used 3 times was kept');
is(query(q{
	SELECT min(calls) FILTER (WHERE calls > 1) > max(calls) FILTER (WHERE calls = 1)
	   AND count(*) FILTER (WHERE calls = 1) > 0
	  FROM perfopt.query_latency()}), 't',
	'the survivors of eviction are the most used, and new statements still get an entry');

# the exporter's and the sampler's readers still see every entry
is(query(q{SELECT count(*) > 50 FROM perfopt.query_latency}), 't', 'the view reads the entries');

ok($node->safe_psql('postgres', 'SELECT 1') eq '1', 'the server is up');
$node->stop;
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no backend crashed');
done_testing();
