# The advisor's workload is the statements of pg_stat_statements with the
# most total time, at most perfopt.advisor_statements of them (under that
# limit perfopt keeps the first ones in a bounded heap instead of sorting
# every statement), and slow_queries lists every statement over the
# threshold, most total time first.  Both are checked against
# pg_stat_statements' own figures, read after the calls they judge.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PerfoptTest::Util qw(perfopt_node);

my $node = perfopt_node('advisor_workload');

sub query { return $node->safe_psql('postgres', $_[0]); }

# Six tables without an index, each read by one statement a different
# number of times: six statements whose total times differ.  The workers'
# jobs are off, so that only these statements and the test's own are in
# pg_stat_statements; the test's own name perfopt (a comment, in the
# queries of pg_stat_statements), which leaves them out of the workload.
query('CREATE EXTENSION perfopt CASCADE');
query('UPDATE perfopt.jobs SET enabled = false');
my @tables = map { "w$_" } 1 .. 6;
query(join('', map { "CREATE TABLE $_ (id int, v int);
	INSERT INTO $_ SELECT g, g % 1000 FROM generate_series(1, 20000) g; ANALYZE $_;" } @tables));
query('SET pg_stat_statements.track = none; SELECT pg_stat_statements_reset()');
my $calls = 1;
foreach my $t (@tables)
{
	query(join('', map { "SELECT count(*) FROM $t WHERE v = $_;\n" } 1 .. $calls));
	$calls *= 2;
}

# The tables of the statements pg_stat_statements ranks first by total
# time, of those that do not name perfopt (their queryid breaks a tie, as
# perfopt's order does)
sub top_tables
{
	my ($n) = @_;
	return query(qq{
		SELECT /* perfopt.test */ coalesce(string_agg(t, ',' ORDER BY t), '') FROM (
			SELECT substring(query FROM '^SELECT count\\(\\*\\) FROM (w[0-9]+) WHERE') AS t
			  FROM pg_stat_statements
			 WHERE query !~ 'perfopt\\.' AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			 ORDER BY total_exec_time DESC, queryid LIMIT $n) s WHERE t IS NOT NULL});
}

# The tables of the indexes the advisor recommends with a workload of n
sub advised_tables
{
	my ($n) = @_;
	return query(qq{
		SET perfopt.advisor_statements = $n;
		SELECT string_agg(DISTINCT table_name::text, ',' ORDER BY table_name::text)
		  FROM perfopt.recommend_indexes()});
}

foreach my $n (1, 2, 4, 6, 100)
{
	# read the ranking first: the advisor's own statements do not change it
	my $expected = top_tables($n);
	is(advised_tables($n), $expected,
		"advisor_statements = $n: the indexes are those of the $n statements with the most time ($expected)");
}

# slow_queries, every statement over the threshold (no limit): the same
# order as pg_stat_statements' total time
my $expected = query(q{
	SELECT /* perfopt.test */ string_agg(substring(query FROM 'FROM (w[0-9]+)'), ',' ORDER BY total_exec_time DESC, queryid)
	  FROM pg_stat_statements WHERE query ~ '^SELECT count\(\*\) FROM w[0-9]+ WHERE'});
my $listed = query(q{
	SET perfopt.slow_query_ms = 0;
	SELECT string_agg(substring(query FROM 'FROM (w[0-9]+)'), ',' ORDER BY ord)
	  FROM perfopt.slow_queries() WITH ORDINALITY
	       s(queryid, query, calls, mean_ms, p95_ms, total_ms, time_share_pct, complexity, impact, recommendations, ord)
	 WHERE query ~ '^SELECT count\(\*\) FROM w[0-9]+ WHERE'});
is($listed, $expected, "slow_queries lists the statements most total time first ($expected)");

# pg_stat_statements() materializes every entry before the first is read:
# in the caller's work_mem they went to a temporary file and back.  The read
# raises work_mem for itself only.  A few hundred statements' rows are more
# than work_mem's least, 64 kB: the calls must write no temporary file, and
# leave the session's work_mem as it was.
query('SET pg_stat_statements.track = none; '
	  . join('', map { "CREATE TABLE s$_ (id int);" } 1 .. 300));
query(join('', map { "SELECT /* padding the text of the entry, padding the text of the entry */ id FROM s$_;\n" } 1 .. 300));
sub temp_files
{
	return query(q{SELECT pg_stat_force_next_flush();
		SELECT temp_files FROM pg_stat_database WHERE datname = current_database()});
}
my $entries = query(q{SELECT count(*) FROM pg_stat_statements});
my $before = temp_files();
# (slow_queries over a threshold no statement reaches: its own rows, a
# result set, are the caller's to spill)
my $after_calls = query(q{
	SET work_mem = '64kB';
	SET perfopt.slow_query_ms = 1000000;
	SELECT count(*) FROM perfopt.slow_queries();
	SELECT count(*) >= 0 FROM perfopt.recommend_indexes();
	SHOW work_mem;});
is($after_calls, "0\nt\n64kB", "slow_queries and recommend_indexes() at work_mem = 64kB, which they leave as it was");
is(temp_files(), $before, "reading $entries entries wrote no temporary file");

$node->stop;
done_testing();
