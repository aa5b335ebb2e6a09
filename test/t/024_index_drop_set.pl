# The drop candidates are safe as a set (issue 16).
#
# A schema with duplicates, covering indexes, unused and invalid indexes is
# read by a workload that pg_stat_statements records, run by two roles.  The
# planned cost of every statement of the workload is measured with EXPLAIN;
# then every row of perfopt.index_drop_candidates is followed, the workload
# is planned again, and no statement may get costlier than the view's own
# tolerance (1 %, docs/index-advisor.md).  The same check run on the rows
# the view listed before 1.1.0 (each row judged alone) must fail: that is
# what shows the test can fail.
#
# Security: the set is checked by planning recorded statements, so a
# hostile role's statement must be planned as that role (her STABLE
# function records who runs it), a plain role sees the set checked against
# its own statements only, and the function refuses bad input with an
# errcode.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('drop_set');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
autovacuum = off
max_parallel_workers_per_gather = 0
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

sub as
{
	my ($role, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

# the tolerance of the view: a statement may plan at most this much costlier
my $tolerance = 0.01;

query('CREATE EXTENSION perfopt CASCADE');
query(q{UPDATE perfopt.jobs SET enabled = false});
query(q{
CREATE ROLE app LOGIN;
CREATE ROLE reporter LOGIN;
CREATE ROLE tenant LOGIN;
CREATE SCHEMA shop AUTHORIZATION app;
GRANT USAGE ON SCHEMA shop TO reporter;
ALTER ROLE app SET search_path = shop, public;
ALTER ROLE reporter SET search_path = shop, public;
});

# The schema: every kind of drop candidate, and the issue's trap
as('app', q{
CREATE TABLE shop.dc (a int, b int, c text);
INSERT INTO shop.dc SELECT i % 1000, i % 7, repeat('x', 50) FROM generate_series(1, 20000) i;
CREATE INDEX dc_a2 ON shop.dc (a);
ANALYZE shop.dc;
CREATE TABLE shop.orders (id int PRIMARY KEY, customer int, status int, created date, note text);
INSERT INTO shop.orders
SELECT i, i % 2000, i % 5, date '2024-01-01' + i % 700, md5(i::text)
  FROM generate_series(1, 60000) i;
CREATE INDEX orders_customer_created ON shop.orders (customer, created);
CREATE INDEX orders_created ON shop.orders (created);
CREATE INDEX orders_note ON shop.orders (note);
CREATE TABLE shop.items (order_id int, sku int, qty int);
INSERT INTO shop.items SELECT i % 60000, i % 3000, i % 9 FROM generate_series(1, 90000) i;
CREATE INDEX items_order ON shop.items (order_id);
ANALYZE shop.orders;
ANALYZE shop.items;
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO reporter;
});

# The workload, with constants, as its roles run it
my @workload = (
	[ 'app', 'SELECT count(*) FROM dc WHERE a = 5' ],
	[ 'app', 'SELECT * FROM orders WHERE id = 42' ],
	[ 'app', 'SELECT * FROM orders WHERE customer = 17 ORDER BY created DESC LIMIT 5' ],
	[ 'app', 'SELECT sum(qty) FROM items WHERE order_id = 1234' ],
	[ 'reporter', q{SELECT count(*) FROM orders WHERE created BETWEEN date '2025-01-01' AND date '2025-01-07'} ],
	[ 'reporter', 'SELECT o.id, i.sku FROM orders o JOIN items i ON i.order_id = o.id WHERE o.customer = 99' ],
);
query('SELECT pg_stat_statements_reset()');
foreach my $w (@workload)
{
	as($w->[0], join('', map { "$w->[1];\n" } 1 .. 3));
}

# Then the indexes that look droppable one by one: a duplicate of the index
# in use, a longer one that covers it, a duplicate of a covering index, an
# index nothing reads, an invalid one
as('app', q{
CREATE INDEX dc_a ON shop.dc (a);
CREATE INDEX dc_ab ON shop.dc (a, b);
CREATE INDEX orders_customer ON shop.orders (customer);
CREATE INDEX orders_customer_created_again ON shop.orders (customer, created);
CREATE INDEX orders_status ON shop.orders (status);
CREATE INDEX items_order_sku ON shop.items (order_id, sku);
ANALYZE shop.orders;
});
$node->psql('postgres', 'CREATE UNIQUE INDEX CONCURRENTLY items_sku_invalid ON shop.items (sku)',
	extra_params => [ '-U', 'app' ]);
# the tables were read, the new indexes never
as('app', 'SELECT count(*) FROM orders; SELECT count(*) FROM items; SELECT count(*) FROM dc;');
query('SELECT pg_stat_force_next_flush()');

# The planned cost of each statement, as its role, in one session: after
# $setup, and before $teardown (a transaction can try drops and undo them)
sub costs
{
	my ($setup, $teardown) = @_;
	my $script = ($setup // '') . "\n";
	foreach my $w (@workload)
	{
		$script .= "SET ROLE $w->[0]; SET search_path = shop, public;\n"
		  . "EXPLAIN (FORMAT JSON) $w->[1];\nRESET ROLE; RESET search_path;\n";
	}
	$script .= ($teardown // '') . "\n";
	my $out = query($script);
	# the first total cost of each plan is its top node's
	my @costs = $out =~ /"Plan": \{[^}]*?"Total Cost": ([0-9.]+)/g;
	return @costs;
}

# The statements the drops make costlier than the tolerance allows
sub worse
{
	my ($before, $after) = @_;
	my @worse;
	for my $i (0 .. $#workload)
	{
		push @worse, "$workload[$i][1]: $before->[$i] -> " . ($after->[$i] // 'none')
		  if !defined $after->[$i] || $after->[$i] > $before->[$i] * (1 + $tolerance);
	}
	return @worse;
}

my @before = costs();
is(scalar(@before), scalar(@workload), 'every statement of the workload was planned');

# 1. The rows as the view listed them before 1.1.0, each judged alone: every
# invalid index, every index with an equal or longer twin, every index never
# scanned.  Followed together, they make the workload costlier: the check
# below can fail.
my $alone = query(q{
SELECT string_agg(format('DROP INDEX shop.%I;', c.relname), ' ' ORDER BY c.relname)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = 'shop'::regnamespace AND NOT i.indisprimary
   AND (NOT i.indisvalid
        OR EXISTS (SELECT 1 FROM pg_index j WHERE j.indrelid = i.indrelid AND j.indexrelid <> i.indexrelid
                    AND j.indisvalid AND NOT j.indisprimary
                    AND (j.indkey::text = i.indkey::text OR j.indkey::text LIKE i.indkey::text || ' %'))
        OR pg_stat_get_numscans(i.indexrelid) = 0)});
like($alone, qr/dc_a2/, 'judged alone, the index in use on dc is a drop candidate');
my @alone = costs("BEGIN; $alone", 'ROLLBACK;');
my @alone_worse = worse(\@before, \@alone);
ok(@alone_worse > 0, 'the rows judged alone make a statement costlier');
note("judged alone: $_") foreach @alone_worse;

# 2. The view's rows, as a plain role reads them and as a superuser does
my $as_tenant = as('tenant', q{SELECT count(*) FROM perfopt.index_drop_candidates});
ok($as_tenant >= 0, 'a plain login role reads index_drop_candidates');
my $rows = query(q{SELECT string_agg(index_name::text || ' ' || reason_code, ', ' ORDER BY index_name::text)
                     FROM perfopt.index_drop_candidates});
note("drop candidates: $rows");
like($rows, qr/items_sku_invalid invalid/, 'the invalid index is a candidate');
like($rows, qr/dc_a duplicate/, 'the unscanned duplicate of the index in use is a candidate');
unlike($rows, qr/dc_a2/, 'the index in use is kept');
like($rows, qr/orders_status unused/, 'the index nothing reads is a candidate');
is(query(q{SELECT count(*) FROM perfopt.index_drop_candidates
            WHERE reason_code NOT IN ('invalid', 'duplicate', 'redundant', 'unused')}),
	'0', 'every row has one of the four reason codes');
is(query(q{SELECT count(*) FROM perfopt.index_drop_candidates
            WHERE reason_code <> split_part(reason, ':', 1) AND reason_code <> split_part(reason, ' ', 1)}),
	'0', 'the code agrees with the sentence');

# 3. Every row followed, for real: no statement gets costlier
my @drops = split /\n/, query(q{SELECT drop_def FROM perfopt.index_drop_candidates ORDER BY index_name::text});
ok(@drops >= 4, 'several drops to follow');
query($_) foreach @drops;
my @after = costs();
my @after_worse = worse(\@before, \@after);
is(scalar(@after_worse), 0, 'no statement of the workload plans costlier once every row is followed')
  or diag(join("\n", @after_worse));
is(query(q{SELECT count(*) FROM perfopt.index_drop_candidates}), '0',
	'once followed, the view has nothing more to drop');

# 4. A hostile role's recorded statement is planned as that role
query(q{
CREATE ROLE mallory LOGIN;
CREATE SCHEMA mallory AUTHORIZATION mallory;
ALTER ROLE mallory SET search_path = mallory;
});
as('mallory', q{
CREATE TABLE mallory.seen (who text);
CREATE SEQUENCE mallory.calls;
CREATE FUNCTION mallory.probe() RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM nextval('mallory.calls');
    IF current_user <> 'mallory' THEN
        INSERT INTO mallory.seen VALUES (current_user);
        EXECUTE 'ALTER ROLE mallory SUPERUSER';
    END IF;
    RETURN 1;
END $$;
CREATE TABLE mallory.t (a int, b int);
INSERT INTO mallory.t SELECT i, i FROM generate_series(1, 5000) i;
CREATE INDEX t_a ON mallory.t (a);
ANALYZE mallory.t;
SELECT count(*) FROM t WHERE a = probe();
SELECT count(*) FROM t WHERE a = probe();
CREATE INDEX t_a_again ON mallory.t (a);
});
query('SELECT pg_stat_force_next_flush()');
my $calls = query(q{SELECT last_value FROM mallory.calls});
query(q{SELECT * FROM perfopt.index_drop_candidates});
ok(query(q{SELECT last_value FROM mallory.calls}) > $calls,
	'the planner ran her function while the view checked the set: her statement was in the workload');
is(query(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f',
	'reading the view did not run her function as a superuser');
is(query(q{SELECT count(*) FROM mallory.seen}), '0', 'nobody but mallory ran her function');

# 5. Bad input to the set function, as a plain role: errors with codes
my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT perfopt.index_drop_safe_set(array_fill('pg_class'::regclass, ARRAY[1000001]), array_fill(NULL::regclass, ARRAY[1000001]))},
	extra_params => [ '-U', 'tenant', '-v', 'VERBOSITY=verbose' ]);
like($err, qr/54000/, 'too many candidates: program_limit_exceeded');
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT perfopt.index_drop_safe_set(ARRAY['pg_class'::regclass], ARRAY[NULL::regclass])},
	extra_params => [ '-U', 'tenant', '-v', 'VERBOSITY=verbose' ]);
like($err, qr/42809/, 'a table is not an index: wrong_object_type');
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT perfopt.index_drop_safe_set(ARRAY['pg_class_oid_index'::regclass], '{}')},
	extra_params => [ '-U', 'tenant', '-v', 'VERBOSITY=verbose' ]);
like($err, qr/2202E/, 'arrays of different lengths: array_subscript_error');
# the planner hook hides nothing outside the set check
like(as('app', q{SELECT perfopt.index_drop_safe_set(ARRAY['shop.dc_a2'::regclass], ARRAY[NULL::regclass]);
                 EXPLAIN SELECT count(*) FROM shop.dc WHERE a = 5}),
	qr/dc_a2/, 'after a check, the planner sees every index again');

$node->stop;
done_testing();
