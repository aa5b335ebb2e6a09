# Indexes of a partitioned table, end to end (issue 16): PostgreSQL 15
# refuses CREATE and DROP INDEX CONCURRENTLY on a partitioned table.  The
# advisor proposes statements that run (the parent ON ONLY, each partition
# concurrently, then ATTACH), a DBA can paste them into psql, the
# orchestrator builds them as the table's owner and undoes them, and a
# partitioned drop candidate is dropped and rebuilt.  A two-level tree
# (one partition partitioned in turn) is used throughout.
#
# Security: the several statements of such an action are accepted only when
# each one is a CREATE INDEX or an ALTER INDEX ... ATTACH PARTITION on
# tables of the action's owner, and the statement builder is not PUBLIC's.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('partitioned');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.optimization_interval = 1d
autovacuum = off
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

sub as
{
	my ($role, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

sub actions_done
{
	return $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM perfopt.action_log WHERE outcome IN ('queued', 'running')});
}

# The indexes of the tree under a partitioned index: "leaves valid/total"
sub tree
{
	my ($index) = @_;
	return query(qq{
SELECT count(*) FILTER (WHERE p.isleaf AND i.indisvalid) || '/' || count(*) FILTER (WHERE p.isleaf)
       || CASE WHEN bool_and(i.indisvalid) THEN ' all valid' ELSE ' not all valid' END
  FROM pg_partition_tree('$index'::regclass) p JOIN pg_index i ON i.indexrelid = p.relid});
}

query('CREATE EXTENSION perfopt CASCADE');
query(q{UPDATE perfopt.jobs SET enabled = false
		 WHERE job_name IN ('sample_metrics', 'analyze_anomalies', 'forecast_capacity', 'optimization_cycle')});
query(q{CREATE ROLE dba LOGIN; GRANT perfopt_admin TO dba; GRANT CREATE ON SCHEMA public TO dba;
		CREATE ROLE tenant LOGIN; GRANT CREATE ON SCHEMA public TO tenant;});

as('dba', q{
CREATE TABLE events (id int, k int, payload text) PARTITION BY RANGE (id);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (50000);
CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (50000) TO (100000);
CREATE TABLE events_3 PARTITION OF events FOR VALUES FROM (100000) TO (200000) PARTITION BY RANGE (id);
CREATE TABLE events_3a PARTITION OF events_3 FOR VALUES FROM (100000) TO (150000);
CREATE TABLE events_3b PARTITION OF events_3 FOR VALUES FROM (150000) TO (200000);
INSERT INTO events SELECT i, i % 5000, 'x' FROM generate_series(0, 199999) i;
ANALYZE events;});
query('SELECT pg_stat_statements_reset()');
as('dba', join('', map { "SELECT count(*) FROM events WHERE k = $_;\n" } 1 .. 20));

# 1. What PostgreSQL refuses, and what the advisor proposes instead
my ($ret, $out, $err) = $node->psql('postgres', 'CREATE INDEX CONCURRENTLY ON events (k)',
	extra_params => [ '-U', 'dba' ]);
like($err, qr/cannot create index on partitioned table "events" concurrently/,
	'PostgreSQL 15 refuses CREATE INDEX CONCURRENTLY on a partitioned table');
my $advice = as('dba', q{SELECT index_def FROM perfopt.recommend_indexes()
                          WHERE table_name = 'events'::regclass ORDER BY rank LIMIT 1});
like($advice, qr/^CREATE INDEX \S+ ON ONLY public\.events /, 'the advice builds the parent ON ONLY');
is(scalar(() = $advice =~ /CREATE INDEX CONCURRENTLY \S+ ON public\.events_(1|2|3a|3b) /g), 4,
	'and each of the four leaf partitions concurrently');
like($advice, qr/CREATE INDEX \S+ ON ONLY public\.events_3 /, 'the partitioned partition ON ONLY too');
is(scalar(() = $advice =~ /ALTER INDEX \S+ ATTACH PARTITION /g), 5, 'and attaches all five partitions');
unlike($advice, qr/CONCURRENTLY \S+ ON ONLY/, 'never CONCURRENTLY on a partitioned table');

# 2. The advice runs as it is, pasted into psql by the table's owner
as('dba', $advice);
my ($advised) = $advice =~ /^CREATE INDEX (\S+) ON ONLY/;
is(tree($advised), '4/4 all valid', 'the advised index is valid on every partition');
as('dba', "DROP INDEX $advised");

# 3. The orchestrator builds it, as the owner
my $id = as('dba', q{SELECT id FROM perfopt.optimize('create_index', 'public.events', false)});
ok(actions_done(), 'the launcher ran the action');
is(query(qq{SELECT outcome || coalesce(' ' || error, '') FROM perfopt.action_log WHERE id = $id}), 'succeeded',
	'the create_index action succeeded');
my $index = query(qq{SELECT details->>'index' FROM perfopt.action_log WHERE id = $id});
is(tree($index), '4/4 all valid', "the orchestrator's index is valid on every partition");
is(query(qq{SELECT relowner::regrole FROM pg_class WHERE oid = '$index'::regclass}), 'dba',
	'built as the owner');
like(query(q{EXPLAIN SELECT count(*) FROM events WHERE k = 3}), qr/Index Only Scan|Index Scan|Bitmap Index Scan/,
	'and the statement uses it');
like(query(qq{SELECT rollback_statement FROM perfopt.action_log WHERE id = $id}), qr/^DROP INDEX IF EXISTS /,
	'its undo drops the parent without CONCURRENTLY');

# 4. Undone: the parent goes, with every partition's index
my $undo = as('dba', qq{SELECT id FROM perfopt.rollback_action($id)});
ok(actions_done(), 'the launcher ran the undo');
is(query(qq{SELECT outcome FROM perfopt.action_log WHERE id = $undo}), 'succeeded', 'the undo succeeded');
is(query(q{SELECT count(*) FROM pg_index i JOIN pg_partition_tree('events') p ON p.relid = i.indrelid}), '0',
	'no index is left on any partition');

# 5. A partitioned duplicate: dropped without CONCURRENTLY, rebuilt by the undo
as('dba', q{CREATE INDEX events_k ON events (k); CREATE INDEX events_k_again ON events (k);});
is(query(q{SELECT drop_def || ' ' || reason_code FROM perfopt.index_drop_candidates}),
	'DROP INDEX public.events_k_again; duplicate',
	'the duplicate partitioned index is the one candidate, dropped without CONCURRENTLY');
$id = as('dba', q{SELECT id FROM perfopt.optimize('drop_index', 'public.events_k_again', false)});
ok(actions_done(), 'the launcher ran the drop');
is(query(qq{SELECT outcome || coalesce(' ' || error, '') FROM perfopt.action_log WHERE id = $id}), 'succeeded',
	'the drop_index action succeeded');
is(query(q{SELECT to_regclass('public.events_k_again') IS NULL}), 't', 'the duplicate is gone');
is(tree('events_k'), '4/4 all valid', 'the index kept still serves every partition');
$undo = as('dba', qq{SELECT id FROM perfopt.rollback_action($id)});
ok(actions_done(), 'the launcher ran the undo of the drop');
is(query(qq{SELECT outcome || coalesce(' ' || error, '') FROM perfopt.action_log WHERE id = $undo}), 'succeeded',
	'the undo succeeded');
is(tree('events_k_again'), '4/4 all valid', 'the undo rebuilt it, valid on every partition');

# 6. Security: several statements only when each builds an index of the owner
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT perfopt.index_build_statements('events', 'CREATE INDEX ON events (k)', 'x')},
	extra_params => [ '-U', 'tenant' ]);
like($err, qr/permission denied for function index_build_statements/, 'the statement builder is not PUBLIC\'s');
as('tenant', q{CREATE TABLE tenant_t (id int, k int) PARTITION BY RANGE (id);
               CREATE TABLE tenant_t1 PARTITION OF tenant_t FOR VALUES FROM (0) TO (10);
               CREATE INDEX tenant_k ON ONLY tenant_t (k); CREATE INDEX tenant_k1 ON tenant_t1 (k);});
query(q{
INSERT INTO perfopt.action_log (action, target, statement, dry_run, outcome, owner) VALUES
    ('create_index', 'public.events', 'CREATE INDEX sneak_k ON ONLY public.events (k); DROP TABLE public.events_1',
     false, 'queued', 'dba'),
    ('create_index', 'public.tenant_t', 'CREATE INDEX sneak_k2 ON ONLY public.events (k); ALTER INDEX public.tenant_k ATTACH PARTITION public.tenant_k1',
     false, 'queued', 'dba');});
ok(actions_done(), 'the launcher went through the crafted actions');
like(query(q{SELECT error FROM perfopt.action_log WHERE statement LIKE '%DROP TABLE public.events_1'}),
	qr/an action must be one statement, not 2/, 'another statement after a CREATE INDEX is refused');
is(query(q{SELECT to_regclass('public.events_1') IS NOT NULL AND to_regclass('public.sneak_k') IS NULL}), 't',
	'nothing of it ran');
like(query(q{SELECT error FROM perfopt.action_log WHERE statement LIKE '%tenant_k1'}),
	qr/role dba may not act on tenant_k, which role tenant owns/, "an ATTACH of another's index is refused");
is(query(q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'tenant_k'::regclass}), '0',
	"the tenant's index was not attached");

$node->stop;
done_testing();
