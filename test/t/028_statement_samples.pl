# Parameter samples per statement (issue 17): the sets of real values
# perfopt keeps for the index advisor.
#
# Under the simple protocol a set is the constants pg_stat_statements
# replaces by $n, in its numbering (checked against its normalized text,
# several statements in one string too); under the extended protocol
# (pgbench -M extended, PREPARE/EXECUTE) the bound parameters, NULL and
# bytea included.  Another login role cannot read them; its own user and a
# member of pg_read_all_stats can.  perfopt.param_sampling = off takes no
# new sample.  Odd inputs (huge values, U&'' strings, utility statements,
# parallel workers, recursion under track = all) break nothing.  Then, with
# 64 kB of memory, 10,000 distinct statements leave at most the capacity,
# shared memory does not grow, and the statement that cost the most stays.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('samples');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
pg_stat_statements.track = all
perfopt.redis_port = 1
perfopt.param_sample_every = 1
perfopt.param_samples_memory = 1024
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

# The samples of the statements whose normalized text matches a pattern,
# as "params|weight|sampled" lines, ordered
sub samples_of
{
	my ($pattern, $role) = @_;
	my $sql = qq{SELECT s.params, s.weight, s.sampled
		FROM perfopt.statement_samples s
		JOIN pg_stat_statements p USING (userid, dbid, queryid)
		WHERE p.query LIKE '$pattern' ORDER BY s.params::text COLLATE "C", s.weight};
	return $role ? (as_role($role, $sql))[0] : query($sql);
}

query('CREATE EXTENSION perfopt CASCADE');
query(q{CREATE TABLE leads (id int PRIMARY KEY, status text, email text, score numeric,
		created_at timestamptz, photo bytea);
		INSERT INTO leads SELECT g, CASE WHEN g % 10 = 0 THEN 'new' ELSE 'old' END,
		  'u' || g || '@example.com', g % 97, now() - g * interval '1 hour', '\x00'
		  FROM generate_series(1, 1000) g;
		GRANT SELECT ON leads TO PUBLIC;});

# 1. Simple protocol: the constants, numbered as pg_stat_statements numbers
#    them in its normalized text
query(q{SELECT id FROM leads WHERE status = 'new' AND score > -2.5 AND email LIKE E'a\\'b%' LIMIT 10});
is(query(q{SELECT query FROM pg_stat_statements WHERE query LIKE 'SELECT id FROM leads WHERE status%'}),
	'SELECT id FROM leads WHERE status = $1 AND score > $2 AND email LIKE $3 LIMIT $4',
	'pg_stat_statements numbers the four constants $1 .. $4');
is(samples_of('SELECT id FROM leads WHERE status%'), q[{new,-2.5,a'b%,10}|1|1],
	'their values in that order: the string without quotes and escapes, the sign kept');

query(q{SELECT count(*) FROM leads WHERE created_at >= timestamptz '2024-01-05 10:00+00' + 3 * interval '1 day' AND email <> NULL AND true});
is(query(q{SELECT query FROM pg_stat_statements WHERE query LIKE '%created_at >= timestamptz%'}),
	'SELECT count(*) FROM leads WHERE created_at >= timestamptz $1 + $2 * interval $3 AND email <> $4 AND $5',
	'a typed literal, NULL and true are constants too');
is(samples_of('%created_at >= timestamptz%'), q[{"2024-01-05 10:00+00",3,"1 day",NULL,true}|1|1],
	'the typed literals as their input functions take them, NULL as an SQL NULL');

# several statements in one string: each its own constants
query(q{SELECT 11 AS eleven WHERE 12 = 12; SELECT 'x' || 'y' AS xy, 13 AS thirteen});
is(samples_of('SELECT $1 AS eleven%'), '{11,12,12}|1|1', 'first statement of a string: its three constants');
is(samples_of('SELECT $1 || $2 AS xy%'), '{x,y,13}|1|1',
	'second statement of the string: its own constants, not the first one\'s');

# 2. Extended protocol: bound parameters, NULL, bytea; pgbench -M extended
$node->safe_psql('postgres', q{PREPARE q(text, int) AS SELECT count(*) FROM leads WHERE status = $1 AND id > $2;
	EXECUTE q('new', 5); EXECUTE q(NULL, 7); EXECUTE q('new', 5)});
is(samples_of('PREPARE q(text, int) AS SELECT count(*) FROM leads WHERE status = $1 AND id > $2'),
	"{NULL,7}|0.3333333333333333|3\n{new,5}|0.3333333333333333|3\n{new,5}|0.3333333333333333|3",
	'EXECUTE: the bound parameters, a NULL one as NULL; one row a set, weights 1/3');
$node->safe_psql('postgres', q{PREPARE b(bytea) AS SELECT count(*) FROM leads WHERE photo = $1;
	EXECUTE b('\xdeadbeef')});
is(samples_of('PREPARE b(bytea) AS SELECT count(*) FROM leads WHERE photo = $1'), '{"\\\\xdeadbeef"}|1|1',
	'a bytea parameter in its hex text form');

# a prepared text with constants too: the bound values, then the constants
$node->safe_psql('postgres', q{PREPARE m(int) AS SELECT count(*) FROM leads WHERE id > $1 AND status = 'new' LIMIT 5;
	EXECUTE m(3);});
is(query(q{SELECT query FROM pg_stat_statements WHERE query LIKE 'PREPARE m(int)%'}),
	'PREPARE m(int) AS SELECT count(*) FROM leads WHERE id > $1 AND status = $2 LIMIT $3',
	'pg_stat_statements numbers the constants of a prepared text after its own $1');
is(samples_of('PREPARE m(int)%'), '{3,new,5}|1|1', 'its set: the bound $1, then the constants $2 and $3');

my $script = $node->basedir . '/extended.sql';
open my $fh, '>', $script or die;
print $fh "\\set id random(1, 1000)\nSELECT score FROM leads WHERE id = :id AND status <> 'gone';\n";
close $fh;
$node->command_ok([ 'pgbench', '-n', '-M', 'extended', '-f', $script, '-t', '40', 'postgres' ],
	'pgbench -M extended, 40 executions');
my $ext = query(q{SELECT count(*), sum(weight), min(sampled), bool_and(params[1]::int BETWEEN 1 AND 1000 AND cardinality(params) = 2)
	FROM perfopt.statement_samples s JOIN pg_stat_statements p USING (userid, dbid, queryid)
	WHERE p.query = 'SELECT score FROM leads WHERE id = $1 AND status <> $2'
	  AND params[2] = 'go' || 'ne'});
is($ext, '8|1|40|t', 'pgbench: a reservoir of 8 of the 40 executions, weights summing to 1, values from the script\'s range');

# perfopt's own planning is not the application's: the advisor plans these
# statements with their sampled values, nested, as the role that ran them;
# under track = all, pg_stat_statements would keep each as a nested entry
# (one more row for the statement, a slot of pg_stat_statements.max)
query(q{SELECT count(*) FROM perfopt.recommend_indexes()});
is(query(q{SELECT count(*) FROM pg_stat_statements WHERE NOT toplevel AND query LIKE '%FROM leads WHERE%'}), '0',
	'the advisor planning the sampled statements leaves no nested entry in pg_stat_statements');

# 3. Privacy: another login role sees none of them; the statement's own
#    user and pg_read_all_stats do
query(q{CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE auditor LOGIN IN ROLE pg_read_all_stats});
as_role('alice', q{SELECT email FROM leads WHERE email = 'ceo@secret.example'});
# (a check spells the value it looks for in two pieces: its own constants are sampled too)
my $alice_sql = q{SELECT count(*) FROM perfopt.statement_samples WHERE 'ceo@' || 'secret.example' = ANY (params)};
is(query($alice_sql), '1', 'the superuser sees alice\'s sample');
is((as_role('alice', $alice_sql))[0], '1', 'alice sees her own sample');
is((as_role('auditor', $alice_sql))[0], '1', 'a member of pg_read_all_stats sees it');
is((as_role('bob', $alice_sql))[0], '0', 'bob, another login role, does not');
is((as_role('bob', q{SELECT count(*) FROM perfopt.statement_samples() WHERE 'ceo@' || 'secret.example' = ANY (params)}))[0],
	'0', 'nor through the function');
is((as_role('bob', q{SELECT count(*) FROM perfopt.statement_samples WHERE userid <> 'bob'::regrole}))[0],
	'0', 'bob sees no statement but his own');
my (undef, $err) = as_role('bob', q{SELECT perfopt.statement_samples_reset()});
like($err, qr/42501/, 'bob cannot reset the samples');
($ext, $err) = as_role('bob', q{SELECT capacity FROM perfopt.statement_samples_info()});
like($err, qr/42501/, 'nor read the counts (for monitoring roles)');

# 4. perfopt.param_sampling = off: no new sample
$node->safe_psql('postgres', q{SET perfopt.param_sampling = off;
	PREPARE q(text, int) AS SELECT count(*) FROM leads WHERE status = $1 AND id > $2;
	SELECT id FROM leads WHERE email = 'off@example.com';
	EXECUTE q('offline', 1);});
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE 'off@' || 'example.com' = ANY (params) OR 'off' || 'line' = ANY (params)}),
	'0', 'off in a session: neither protocol samples');
query(q{ALTER SYSTEM SET perfopt.param_sampling = off; SELECT pg_reload_conf()});
as_role('alice', q{SELECT id FROM leads WHERE email = 'off2@example.com'});
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE 'off2@' || 'example.com' = ANY (params)}),
	'0', 'off in the configuration: alice\'s statements are not sampled');
query(q{ALTER SYSTEM RESET perfopt.param_sampling; SELECT pg_reload_conf()});
as_role('alice', q{SELECT id FROM leads WHERE email = 'on2@example.com'});
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE 'on2@' || 'example.com' = ANY (params)}),
	'1', 'back on: sampled again');

# 5. Odd inputs break nothing
my $skipped = query(q{SELECT skipped FROM perfopt.statement_samples_info()});
$node->safe_psql('postgres', q{PREPARE q(text, int) AS SELECT count(*) FROM leads WHERE status = $1 AND id > $2;
	EXECUTE q(repeat('x', 100000), 1);});
is(query(q{SELECT skipped FROM perfopt.statement_samples_info()}), $skipped + 1,
	'a 100 kB value: the set is skipped and counted');
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE length(array_to_string(params, '')) > 1024}),
	'0', 'no kept set is bigger than 1 kB');
query(q{SELECT count(*) FROM leads WHERE email = '} . ('y' x 5000) . q{'});
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE length(params[1]) > 1000}), '0',
	'a 5,000-byte literal: not kept');
query(q{SELECT count(*) FROM leads WHERE email = U&'d\0061t\+000061'});
is(query(q{SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%email = $1%'}) > 0 ? 1 : 0, 1,
	'a U&\'\' string: the statement runs');
query(q{SELECT count(*) FROM leads WHERE id IN (} . join(',', 1 .. 300) . q{)});
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE cardinality(params) > 100}), '0',
	'an IN list of 300 constants: more than 100 values are not kept');
query(q{CREATE TABLE made (a text DEFAULT 'util'); EXPLAIN SELECT * FROM leads WHERE email = 'explained'});
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE 'ut' || 'il' = ANY (params)}), '0',
	'a utility statement: no sample');
is(samples_of('EXPLAIN SELECT * FROM leads WHERE email = $1'), '{explained}|1|1',
	'EXPLAIN: the constant pg_stat_statements puts $1 at, as for any statement');
query(q{SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
		SET min_parallel_table_scan_size = 0; SET force_parallel_mode = on;
		PREPARE pq(text) AS SELECT count(*) FROM leads WHERE status = $1;
		EXECUTE pq('parallel'); SELECT count(*) FROM leads WHERE status = 'parallel2'});
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE 'paral' || 'lel' = ANY (params) OR 'paral' || 'lel2' = ANY (params)}), '2',
	'a parallel plan: sampled once by the leader, workers take none');
query(q{CREATE FUNCTION rec(n int) RETURNS int LANGUAGE plpgsql AS $$
		DECLARE c int;
		BEGIN
		  IF n = 0 THEN RETURN 0; END IF;
		  EXECUTE 'SELECT count(*) FROM leads WHERE id = ' || n INTO c;
		  EXECUTE 'SELECT count(*) FROM leads WHERE id = $1' INTO c USING n;
		  RETURN c + rec(n - 1);
		END $$;
		SELECT rec(20)});
is(query(q{SELECT count(*), max(sampled) FROM perfopt.statement_samples s JOIN pg_stat_statements p USING (userid, dbid, queryid)
	WHERE p.query = 'SELECT count(*) FROM leads WHERE id = $1' AND p.toplevel = false}), '16|20',
	'recursion under track = all: the nested statements of both protocols (two queryids, one text) are sampled');
is(query('SELECT 1'), '1', 'the server is up after all of it');

# 6. The memory bound under 10,000 distinct statements
$node->append_conf('postgresql.conf', "perfopt.param_samples_memory = 64\n");
$node->restart;
my $capacity = query(q{SELECT capacity FROM perfopt.statement_samples_info()});
ok($capacity >= 5 && $capacity < 20, "64 kB holds a few statements ($capacity)");
my $shmem = query(q{SELECT sum(allocated_size) FROM pg_shmem_allocations});
query(q{CREATE TABLE wide AS SELECT } . join(', ', map { "1 AS c$_" } 1 .. 100));
for (1 .. 3) { query(q{SELECT pg_sleep(0.05) WHERE 42 = 42}); }
query(q{DO $$ BEGIN
		  FOR i IN 1..100 LOOP
		    FOR j IN 1..100 LOOP
		      EXECUTE format('SELECT c%s FROM wide WHERE c%s = 1', i, j);
		    END LOOP;
		  END LOOP;
		END $$});
my ($stmts, $evicted) = split /\|/, query(q{SELECT statements, evicted FROM perfopt.statement_samples_info()});
ok($stmts <= $capacity, "10,000 distinct statements leave $stmts, at most the capacity $capacity");
is(query(q{SELECT count(DISTINCT (userid, dbid, queryid)) <= } . $capacity . q{ FROM perfopt.statement_samples}), 't',
	'the view shows no more');
ok($evicted >= 10000 - $capacity, "the others were evicted ($evicted)");
is(query(q{SELECT sum(allocated_size) FROM pg_shmem_allocations}), $shmem, 'shared memory did not grow');
is(query(q{SELECT count(*) FROM perfopt.statement_samples WHERE params = '{0.05,42,42}'}), '3',
	'the statement that cost the most time is kept');

$node->stop;
done_testing();
