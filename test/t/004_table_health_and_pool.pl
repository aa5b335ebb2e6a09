# table_health on tables aged, bloated and big enough for every
# recommendation, and pool_recommendation under the loads it tells apart:
# CPU-bound sessions, lock contention, idle connections, idle transactions.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IPC::Run;
use POSIX qw(ceil);

my $node = PostgreSQL::Test::Cluster->new('health');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
autovacuum = off
synchronous_commit = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION perfopt CASCADE');

# Flush this session's statistics, then read a table's health
sub health
{
	my ($table, $columns, $exact) = @_;
	$exact = $exact ? 'true' : 'false';
	$node->safe_psql('postgres', 'SELECT pg_stat_force_next_flush()');
	return $node->safe_psql('postgres', qq{
		SELECT $columns FROM perfopt.table_health($exact) WHERE table_name = '$table'::regclass});
}

sub actions
{
	my ($table, $exact) = @_;
	return health($table, q{(SELECT string_agg(r->>'action', ',') FROM jsonb_array_elements(recommendations) r)}, $exact);
}

# 1. transaction-ID age: a table whose freeze limit is near
$node->safe_psql('postgres', q{
	CREATE TABLE aging (id int) WITH (autovacuum_freeze_max_age = 100000);
	INSERT INTO aging VALUES (1);
	CREATE PROCEDURE burn_xids(n int) LANGUAGE plpgsql AS $$
	BEGIN
		FOR i IN 1..n LOOP
			PERFORM txid_current();
			COMMIT;
		END LOOP;
	END $$;
	CALL burn_xids(85000);});
my $xid_pct = health('aging', 'round(xid_age_pct)');
cmp_ok($xid_pct, '>=', 80, "xid_age_pct against the table's own freeze limit ($xid_pct%)");
like(actions('aging'), qr/freeze/, 'VACUUM (FREEZE) is recommended');
like(health('aging', q{issues::text}), qr/wraparound/, 'wraparound is an issue');
cmp_ok(health('aging', 'health_score'), '<=', 90, 'and costs the score');

# 2. a big table: autovacuum settings sized from its change rate, only where
# they fix something.  The statistics are read as if they had counted for
# 10 hours (perfopt.now_override).
$node->safe_psql('postgres', q{
	CREATE TABLE big (id int PRIMARY KEY, payload text);
	INSERT INTO big SELECT i, repeat('p', 100) FROM generate_series(1, 500000) i;
	SELECT pg_stat_force_next_flush();});
$node->safe_psql('postgres', 'ANALYZE big');
$node->safe_psql('postgres', 'SELECT pg_stat_force_next_flush()');
sub autovacuum_advice
{
	$node->safe_psql('postgres', 'SELECT pg_stat_force_next_flush()');
	return $node->safe_psql('postgres', q{
		SELECT set_config('perfopt.now_override',
			(SELECT coalesce(stats_reset, pg_postmaster_start_time()) + interval '10 hours'
			   FROM pg_stat_database WHERE datname = current_database())::text, false);
		SELECT coalesce(string_agg(r->>'statement' || ' | ' || (r->>'reason'), E'\n'), '')
		  FROM perfopt.table_health h, jsonb_array_elements(h.recommendations) r
		 WHERE h.table_name = 'big'::regclass AND r->>'action' = 'autovacuum'});
}
unlike(autovacuum_advice(), qr/autovacuum_vacuum_scale_factor/, 'a table only inserted into gets no autovacuum advice');
$node->safe_psql('postgres', 'UPDATE big SET payload = payload WHERE id = 1');
unlike(autovacuum_advice(), qr/autovacuum_vacuum_scale_factor/,
	'nor does one that changed one row in 10 hours (0.01 would still mean a vacuum every 5,000 hours)');
$node->safe_psql('postgres', 'UPDATE big SET payload = payload WHERE id <= 19999');
my $advice = autovacuum_advice();
like($advice, qr/autovacuum_vacuum_scale_factor = 0\.01, autovacuum_analyze_scale_factor = 0\.005/,
	'20,000 changes in 10 hours: a scale factor of 0.01');
# 2,000 changes an hour; the rows as the statistics count them (500,000
# live and 20,000 dead, unless the insert's counts reached them after
# ANALYZE's estimate)
my $rows = $node->safe_psql('postgres', q{SELECT n_live_tup + n_dead_tup FROM pg_stat_user_tables
											 WHERE relid = 'big'::regclass});
like($advice, qr/changes about 2000 rows an hour \(20000 updates and deletes in 10\.0 hours/, 'the rate in the reason');
my $now = sprintf('50 + 0.2 x %d rows = %d dead rows, %.1f hours of changes', $rows, 50 + 0.2 * $rows,
	(50 + 0.2 * $rows) / 2000);
my $with = sprintf('at 0.01 it waits for 50 + 0.01 x %d = %d, %.1f hours', $rows, 50 + 0.01 * $rows,
	(50 + 0.01 * $rows) / 2000);
like($advice, qr/\Q$now\E/, "what autovacuum waits for now ($now)");
like($advice, qr/\Q$with\E/, "and with the advice ($with)");

# 3. 60% deleted and vacuumed: bloat, measured against pgstattuple, and rebuilds
$node->safe_psql('postgres', 'CREATE EXTENSION pgstattuple');
$node->safe_psql('postgres', q{
	DELETE FROM big WHERE id % 5 < 3;
	SELECT pg_stat_force_next_flush();});
$node->safe_psql('postgres', 'VACUUM big');
my $truth = $node->safe_psql('postgres',
	q{SELECT dead_tuple_percent + free_percent FROM pgstattuple('big')});
my ($exact, $error) = split /\|/, health('big', 'est_bloat_pct, bloat_error_pct', 1);
my $fast = health('big', 'est_bloat_pct');
note "pgstattuple $truth, exact $exact (+/- $error), fast $fast";
cmp_ok(abs($exact - $truth), '<=', 2, 'exact mode within 2 points of pgstattuple');
cmp_ok($error, '<=', 1, 'with a 95% interval of at most 1 point');
cmp_ok(abs($fast - $truth), '<=', 10, 'fast mode within 10 points of pgstattuple');
like(actions('big', 1), qr/rebuild/, 'a rebuild is recommended for a table that is mostly empty space');
like(actions('big', 1), qr/reindex/, 'and REINDEX CONCURRENTLY for its half-empty index');
like(health('big', q{recommendations::text}, 1), qr/pg_repack/, 'naming the online tool');

# 3b. A pooled session keeps the tables' columns between calls
# (read_columns); a change to a table's columns, by another session or by
# its own, must reach its next call: what it shows equals what a fresh
# session shows, and differs from what it showed before the change
$node->safe_psql('postgres', q{
	CREATE TABLE kept_cols (id int, v int, note text);
	INSERT INTO kept_cols SELECT g, g, 'n' FROM generate_series(1, 3000) g;
	DELETE FROM kept_cols WHERE id % 2 = 0;
	SELECT pg_stat_force_next_flush();});
# half of it free space, which the row length the columns give measures
$node->safe_psql('postgres', 'VACUUM ANALYZE kept_cols');
$node->safe_psql('postgres', 'SELECT pg_stat_force_next_flush()');
my $kept_sql = q{SELECT est_bloat_pct FROM perfopt.table_health(false, NULL, false)
				  WHERE table_name = 'kept_cols'::regclass;};
my $pooled = $node->background_psql('postgres');
my $kept = sub { my $out = $pooled->query_safe($kept_sql); $out =~ s/\s+$//; return $out; };
my $fresh = sub { return $node->safe_psql('postgres', $kept_sql); };
my $before = $kept->();
is($kept->(), $before, 'a pooled session: the same figure at its second call');
for my $change (
	[ 'another session adds a column', 'ALTER TABLE kept_cols ADD COLUMN wide text DEFAULT \'w\'' ],
	[ 'another session drops a column', 'ALTER TABLE kept_cols DROP COLUMN note' ])
{
	my ($what, $ddl) = @$change;
	$node->safe_psql('postgres', $ddl);
	my $now = $fresh->();
	isnt($now, $before, "$what: a fresh session's figure changes ($before, $now)");
	is($kept->(), $now, "$what: the pooled session's next call shows it");
	$before = $now;
}
my $in_xact = $pooled->query_safe(q{BEGIN; ALTER TABLE kept_cols ADD COLUMN pad bigint DEFAULT 0;}
	. $kept_sql . 'ROLLBACK;');
$in_xact =~ s/\s+$//;
isnt($in_xact, $before, "its own uncommitted change: the figure changes in its transaction ($in_xact)");
is($kept->(), $before, 'and after its rollback is the committed one again');

# The widths and null fractions are kept too, until pg_statistic changes.
# An ANALYZE that changes only pg_statistic must reach the next call: a
# sample of 300 rows of a table of varied widths whose every page the
# sample reads, so that its pages, rows and counters stay the same (its
# pg_class row too: no relation cache invalidation comes); half of it free
# space, which the width measures.  Vacuumed in a session of its own, so
# that the counters of the one that filled it are flushed before
$node->safe_psql('postgres', q{
	CREATE TABLE kept_stats (id int, t text) WITH (autovacuum_enabled = false);
	INSERT INTO kept_stats SELECT g, repeat('x', (g * 7919) % 200 + 1) FROM generate_series(1, 15000) g;
	DELETE FROM kept_stats WHERE id % 2 = 0;});
$node->safe_psql('postgres', 'VACUUM ANALYZE kept_stats');
$node->safe_psql('postgres', 'SELECT pg_stat_force_next_flush()');
my $stats_sql = q{SELECT est_bloat_pct FROM perfopt.table_health(false, NULL, false)
				   WHERE table_name = 'kept_stats'::regclass;};
my $stats_kept = sub { my $out = $pooled->query_safe($stats_sql); $out =~ s/\s+$//; return $out; };
my $stats_before = $stats_kept->();
is($stats_kept->(), $stats_before, 'statistics kept: the same figure at the next call');
# sampled again until the estimate moves (a byte of width more or less can
# leave it where it was)
my ($stats_now, $tries) = ($stats_before, 0);
while ($stats_now eq $stats_before && $tries++ < 50)
{
	$node->safe_psql('postgres', 'SET default_statistics_target = 1; ANALYZE kept_stats');
	$stats_now = $node->safe_psql('postgres', $stats_sql);
}
isnt($stats_now, $stats_before,
	"another session's ANALYZE: a fresh session's figure changes ($stats_before, $stats_now)");
is($stats_kept->(), $stats_now, "the pooled session's next call shows it");
$pooled->quit;

# 4. pool_recommendation under four loads
sub pool
{
	my ($setting) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT recommended || ' | ' || reason FROM perfopt.pool_recommendation(1.5) WHERE setting = '$setting'});
}
my $cores = $node->safe_psql('postgres',
	q{SELECT recommended FROM perfopt.pool_recommendation(0.2) WHERE setting = 'pool_size'});
like(pool('pool_size'), qr/no session was in a transaction/, 'an idle server: the pool is sized to the cores');

my @cpu = map { $node->background_psql('postgres') } 1 .. 2;
$_->query_until(qr/^$/, "SELECT count(*) FROM generate_series(1, 1000000000);\n") foreach @cpu;
usleep(300_000);
like(pool('pool_size'), qr/on the CPU/, 'CPU-bound sessions: the pool from their time on the CPU');
$node->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity
								 WHERE query LIKE 'SELECT count(*) FROM generate_series%'});
eval { $_->quit } foreach @cpu;		# psql has exited on the cancel

$node->safe_psql('postgres', 'CREATE TABLE locked (id int)');
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK TABLE locked;');
my @waiters = map { $node->background_psql('postgres') } 1 .. 3;
$_->query_until(qr/^$/, "SELECT * FROM locked;\n") foreach @waiters;
usleep(300_000);
like(pool('pool_size'), qr/waited on locks/, 'lock waits hold the pool to the sessions that make progress');
like(pool('idle_in_transaction_session_timeout'), qr/idle inside a transaction/,
	'a session idle in a transaction calls for idle_in_transaction_session_timeout');
$holder->query_safe('COMMIT;');
$_->quit foreach @waiters, $holder;

my @idle = map { $node->background_psql('postgres') } 1 .. 6;
like(pool('pool_mode'), qr/^transaction/, 'mostly idle connections: transaction pooling');
$_->quit foreach @idle;

# Connections that work with pauses between short transactions (pgbench,
# throttled): transaction pooling, and the pool counts the idle time between
# transactions in a server connection's cycle.  The pool is checked against
# the formula its own reason states.  The transactions are short and rare
# enough (25 a second of a few ms) that the connections stay mostly idle on a
# loaded machine too.
my $script = $node->basedir . '/cycle.sql';
open(my $fh, '>', $script) or die "$script: $!";
print $fh "SELECT count(*) FROM generate_series(1, 40000);\n";
close $fh;
my $throttled = IPC::Run::start(
	[ 'pgbench', '-n', '-f', $script, '-c', '4', '-R', '25', '-T', '5', '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \my $bench_out, '2>', \my $bench_err);
usleep(500_000);
my $mode = pool('pool_mode');
my $size = pool('pool_size');
$throttled->finish;
like($mode, qr/^transaction/, 'connections idle between short transactions: transaction pooling');
like($size, qr/idle between transactions/, 'the pool counts the idle time between transactions in the cycle');
my ($recommended, $c, $share, $formula) = $size =~ /^(\d+) \|.* (\d+) cores \/ ([\d.]+) = (\d+)/;
ok(defined $formula && $formula == $recommended, "the pool is the formula's ($size)");
ok(defined $share && abs(ceil($c / $share) - $recommended) <= 1,
	'cores over the CPU share of the cycle, kept between the cores and eight times them');
cmp_ok($recommended, '>=', $cores, 'never below the cores');

$node->safe_psql('postgres', 'SELECT count(*) FROM big') for 1 .. 3;
like(pool('statement_timeout'), qr/^\d+s \| 95% of the statements/,
	'statement_timeout from what pg_stat_statements says statements take');

my ($ret, $stdout, $stderr) = $node->psql('postgres',
	'SELECT * FROM perfopt.pool_recommendation(0)');
like($stderr, qr/sample_seconds must be between/, 'a bad sample length is refused');

# Without its drop recommendations (drops false: what health() and the
# cycle use, having read the drop candidates once themselves), for a plain
# login role: the same rows and scores, the same recommendations but those,
# and nothing the view does not show it
$node->safe_psql('postgres', q{
	CREATE TABLE dup (id int, a int);
	CREATE INDEX dup_a ON dup (a);
	CREATE INDEX dup_a2 ON dup (a);
	CREATE ROLE plain_health LOGIN;
});
my $plain = sub {
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql, connstr => $node->connstr('postgres') . ' user=plain_health');
};
like($plain->(q{SELECT recommendations FROM perfopt.table_health WHERE table_name = 'dup'::regclass}),
	qr/"action": "drop_index"/, 'the view recommends dropping the duplicate');
is($plain->(q{SELECT recommendations FROM perfopt.table_health(false, NULL, false) WHERE table_name = 'dup'::regclass}),
	'[]', 'without drops, no drop recommendation');
is($plain->(q{
	SELECT count(*) FROM perfopt.table_health v
	  FULL JOIN perfopt.table_health(false, NULL, false) n USING (table_name)
	 WHERE v.health_score IS DISTINCT FROM n.health_score
	    OR coalesce((SELECT jsonb_agg(r) FROM jsonb_array_elements(v.recommendations) r
	                  WHERE r->>'action' <> 'drop_index'), '[]') IS DISTINCT FROM n.recommendations}),
	'0', 'without drops, the rest is the view\'s');

$node->stop;
done_testing();
