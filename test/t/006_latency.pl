# Latency percentiles under pgbench: query_latency against
# pg_stat_statements' own figures for the same calls, the sampler's
# interval percentiles, slow_queries.p95_ms, and eviction when the
# histograms outnumber perfopt.max_statements.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('latency');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.sample_interval = 1s
perfopt.max_statements = 100
pg_stat_statements.track = all
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

query('CREATE EXTENSION perfopt CASCADE');
$node->command_ok([ 'pgbench', '-i', '-s', '1', '-q', 'postgres' ], 'pgbench -i');
query('SELECT pg_stat_statements_reset(), perfopt.query_latency_reset()');
$node->command_ok(
	[ 'pgbench', '-n', '-S', '-M', 'prepared', '-c', '2', '-T', '3', 'postgres' ],
	'pgbench select-only, 2 clients, 3 s');

# The same calls as pg_stat_statements counts; each at least as long as
# its executor time, which is all pg_stat_statements counts
my $select = q{SELECT abalance FROM pgbench_accounts WHERE aid = $1};
my ($calls, $pgss_calls, $total_ratio, $ordered, $extremes) = split /\|/, query(qq{
	SELECT l.calls, s.calls,
	       round((l.mean_ms * l.calls / s.total_exec_time)::numeric, 4),
	       l.min_ms <= l.p50_ms AND l.p50_ms <= l.p95_ms AND l.p95_ms <= l.p99_ms
	         AND l.p99_ms <= l.max_ms,
	       l.min_ms >= s.min_exec_time - 0.001 AND l.max_ms >= s.max_exec_time - 0.001
	  FROM perfopt.query_latency l
	  JOIN pg_stat_statements s ON s.queryid = l.queryid AND s.toplevel = l.toplevel
	 WHERE s.query = '$select' AND l.toplevel});
cmp_ok($calls, '>', 1000, "pgbench's select was timed ($calls calls)");
is($calls, $pgss_calls, 'every call pg_stat_statements saw');
ok($total_ratio >= 0.999 && $total_ratio < 10,
	"total latency covers pg_stat_statements' execution time ($total_ratio times it)");
is($ordered, 't', 'min <= p50 <= p95 <= p99 <= max');
is($extremes, 't', 'the extremes cover pg_stat_statements\' execution-time extremes');

# the percentiles against the mean: p50 of a PK lookup is close to it
my ($p50, $mean) = split /\|/, query(qq{
	SELECT p50_ms, mean_ms FROM perfopt.query_latency
	 WHERE query = '$select' AND toplevel});
ok($p50 > 0.2 * $mean && $p50 < 2 * $mean, "p50 ($p50 ms) is near the mean ($mean ms)");

# nested statements are timed as pg_stat_statements times them, to the ns
query(q{
	SELECT pg_stat_statements_reset(), perfopt.query_latency_reset();
	CREATE FUNCTION lookups(n int) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE x int;
	BEGIN
		FOR i IN 1..n LOOP
			SELECT abalance INTO x FROM pgbench_accounts WHERE aid = i;
		END LOOP;
	END $$;
	SELECT lookups(2000)});
my ($nested_calls, $nested_ratio) = split /\|/, query(q{
	SELECT l.calls, round((l.mean_ms * l.calls / s.total_exec_time)::numeric, 4)
	  FROM perfopt.query_latency l
	  JOIN pg_stat_statements s ON s.queryid = l.queryid AND NOT s.toplevel
	 WHERE NOT l.toplevel AND s.query LIKE 'SELECT abalance%'});
is($nested_calls, '2000', 'nested statements are counted as nested');
ok($nested_ratio > 0.999 && $nested_ratio < 1.001,
	"and their time is pg_stat_statements' ($nested_ratio)");

# nested statements pg_stat_statements does not time (its default, track =
# top) perfopt times with its own clock: after 100 aborted statements
# (whose clocks their aborts give back), 20 sleeps of 20 ms each; and a query
# read by a FOR loop in steps, between which the loop's body sleeps: only
# the steps count, not the 50 sleeps of 2 ms between them
query('SELECT perfopt.query_latency_reset()');
my ($sleeps, $sleep_min, $sleep_p50, $steps, $steps_max) = split /\|/, query(q{
	SET pg_stat_statements.track = 'top';
	DO $$ BEGIN
		FOR i IN 1..100 LOOP
			BEGIN PERFORM 1 / (i - i); EXCEPTION WHEN division_by_zero THEN NULL; END;
		END LOOP;
		FOR i IN 1..20 LOOP PERFORM pg_sleep(0.02); END LOOP;
	END $$;
	DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT g FROM generate_series(1, 50) g LOOP PERFORM pg_sleep(0.002 + 0 * r.g); END LOOP;
	END $$;
	SELECT s.calls, round(s.min_ms::numeric, 1), round(s.p50_ms::numeric, 1), f.calls, f.max_ms
	  FROM perfopt.query_latency() s, perfopt.query_latency() f
	 WHERE NOT s.toplevel AND s.calls = 20 AND s.min_ms > 10
	   AND NOT f.toplevel AND f.calls = 1});
is($sleeps, '20', 'nested statements pg_stat_statements does not time are timed');
ok($sleep_min >= 20 && $sleep_p50 < 100, "a 20 ms sleep takes $sleep_min ms at least, $sleep_p50 ms at p50");
is($steps, '1', 'a query read in steps is one call');
ok($steps_max < 50, "of its steps only ($steps_max ms, the sleeps between them 100 ms)");

# perfopt's clocks are given back at ExecutorEnd, or, for a statement an
# error ended, by the abort of the subtransaction it started in: a cursor
# opened in a subtransaction that committed (its clock passed to the
# parent) is still timed after a later subtransaction aborts, and after 40
# aborted statements (more than the pool's 32 clocks) in one transaction
query('SELECT perfopt.query_latency_reset()');
my ($cursor_calls, $cursor_min) = split /\|/, query(q{
	SET pg_stat_statements.track = 'top';
	DO $$ DECLARE c refcursor; r record; BEGIN
		BEGIN
			OPEN c FOR SELECT g, pg_sleep(0.01) FROM generate_series(1, 3) g;
		EXCEPTION WHEN division_by_zero THEN NULL;
		END;
		FOR i IN 1..40 LOOP
			BEGIN PERFORM 1 / (i - i); EXCEPTION WHEN division_by_zero THEN NULL; END;
		END LOOP;
		LOOP FETCH c INTO r; EXIT WHEN NOT FOUND; END LOOP;
		CLOSE c;
	END $$;
	SELECT calls, min_ms FROM perfopt.query_latency WHERE NOT toplevel});
is($cursor_calls, '1', 'a cursor opened in a committed subtransaction is timed after a later one aborts');
ok($cursor_min >= 30 && $cursor_min < 1000, "its three 10 ms rows take $cursor_min ms");

# the sampler records interval percentiles for all statements and the busiest
ok($node->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM perfopt.metrics
	 WHERE metric = 'latency_p95_ms' AND entity = ''}),
	'the sampler records latency_p95_ms');
my $before = query('SELECT clock_timestamp()');
my ($out) = run_command([ 'pgbench', '-h', $node->host, '-p', $node->port, '-n', '-S',
	'-M', 'prepared', '-c', '2', '-T', '4', 'postgres' ]);
my $after = query('SELECT clock_timestamp()');
my ($processed) = ($out =~ /number of transactions actually processed: ([0-9]+)/);
my $queryid = query(qq{SELECT queryid FROM perfopt.query_latency WHERE query = '$select' AND toplevel});
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM perfopt.metrics
	 WHERE metric = 'latency_p50_ms' AND entity = '$queryid'}),
	'and the percentiles of the busiest statements');
$node->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM perfopt.metrics WHERE ts > '$after'::timestamptz + interval '1.5 s'})
  or die 'no sample after the run';

# one select per transaction: the rate, times the time between samples,
# summed over the samples that cover the run, counts pgbench's transactions
my $counted = query(qq{
	WITH samples AS (
	  SELECT ts, extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS gap
	    FROM (SELECT DISTINCT ts FROM perfopt.metrics) d)
	SELECT round(sum(m.value * s.gap)) FROM perfopt.metrics m JOIN samples s USING (ts)
	 WHERE m.metric = 'statements_per_sec' AND m.entity = '$queryid'
	   AND m.ts > '$before' AND m.ts <= '$after'::timestamptz + interval '3 s'});
ok($counted > 0.9 * $processed && $counted < 1.1 * $processed,
	"statements_per_sec of the select adds up to $counted statements (pgbench ran $processed)");

# slow_queries takes p95_ms from the histograms
my $p95 = query(qq{
	SET perfopt.slow_query_ms = 0;
	SELECT round(s.p95_ms::numeric, 6) = round(l.p95_ms::numeric, 6)
	  FROM perfopt.slow_queries s JOIN perfopt.query_latency l USING (queryid)
	 WHERE l.query = '$select' AND l.toplevel});
is($p95, 't', 'slow_queries.p95_ms is filled from the histograms');

# 150 different statements into 100 entries: the busiest survive eviction
query(join('', map { "CREATE TABLE evict_$_ (i int); SELECT * FROM evict_$_;\n" } 1 .. 150));
cmp_ok(query('SELECT count(*) FROM perfopt.query_latency()'), '<=', 100,
	'no more entries than perfopt.max_statements');
is(query(qq{SELECT count(*) FROM perfopt.query_latency WHERE query = '$select'}),
	'1', 'the busiest statement was kept');

# reset
query('SELECT perfopt.query_latency_reset()');
is(query(q{SELECT count(*) FROM perfopt.query_latency WHERE query NOT LIKE '%query_latency%'}),
	'0', 'query_latency_reset() forgets every histogram');

$node->stop;
done_testing();
