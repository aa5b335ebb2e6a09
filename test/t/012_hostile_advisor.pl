# The index advisor and slow_queries as a hostile tenant meets them.
#
# alice, a login role with a schema of her own and nothing else, writes
# IMMUTABLE and STABLE functions that make her superuser when a superuser
# runs them, and calls them in statements that pg_stat_statements records.
# The planner folds such functions when it plans her statements, so every
# path of perfopt that plans a recorded statement must plan it as alice:
# recommend_indexes(), index_recommendations, slow_queries, an
# optimization cycle (its report asks the advisor), and the launcher
# running that cycle on its own.  Her statements must be resolved with her
# own search_path, never the caller's; her functions must never go into an
# index on someone else's table; a non-superuser (bob) sees only his own
# statements; a statement whose role is gone or lost its privilege is
# skipped and counted; and statement_timeout still stops the advisor.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hostile_advisor');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.slow_query_ms = 0
perfopt.optimization_interval = 1min
autovacuum = off
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

sub as
{
	my ($role, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

# alice is not superuser, and no superuser ran her functions
sub alice_unharmed
{
	my ($path) = @_;
	is(query(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}), 'f',
		"$path: alice is not superuser");
	is(query(q{SELECT coalesce(string_agg(DISTINCT who, ','), '') FROM alice.seen}),
		'', "$path: no superuser ran her functions");
	query(q{ALTER ROLE alice NOSUPERUSER; DELETE FROM alice.seen});
}

query('CREATE EXTENSION perfopt CASCADE');
# no worker job but the cycle this test starts
query(q{UPDATE perfopt.jobs SET enabled = false});

query(q{
CREATE ROLE alice LOGIN;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE ROLE bob LOGIN;
CREATE SCHEMA bob AUTHORIZATION bob;
CREATE ROLE erin LOGIN;
CREATE ROLE frank LOGIN;
-- a superuser's schema with the same names as alice's
CREATE SCHEMA admin;
CREATE TABLE admin.u (code int);
INSERT INTO admin.u SELECT g FROM generate_series(1, 20000) g;
ANALYZE admin.u;
CREATE FUNCTION admin.k2() RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN 1; END';
});

as('alice', q{
CREATE TABLE alice.seen (who text);
CREATE TABLE alice.flags (name text);
CREATE TABLE alice.t (id int, v int);
INSERT INTO alice.t SELECT g, g FROM generate_series(1, 20000) g;
ANALYZE alice.t;
CREATE TABLE alice.u (code int);
INSERT INTO alice.u SELECT g FROM generate_series(1, 20000) g;
ANALYZE alice.u;
-- the payload: superuser for alice whenever a superuser runs it.  The
-- functions the planner folds run no SQL unless a superuser calls them (a
-- simple expression does not go through the executor, whose end would
-- make HypoPG hide its hypothetical indexes), so that advice still works.
CREATE FUNCTION alice.escalate() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO alice.seen VALUES (current_user);
    EXECUTE 'ALTER ROLE alice SUPERUSER';
    RETURN 1;
END $$;
CREATE FUNCTION alice.k() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF pg_catalog.pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') THEN
        RETURN alice.escalate();
    END IF;
    RETURN 1;
END $$;
CREATE FUNCTION alice.s() RETURNS int LANGUAGE plpgsql STABLE AS 'BEGIN RETURN alice.k(); END';
CREATE FUNCTION alice.k2() RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN alice.k(); END';
-- sleeps while alice.flags has a row
CREATE FUNCTION alice.nap() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF pg_catalog.pg_relation_size('alice.flags'::regclass) > 0 THEN
        PERFORM pg_catalog.pg_sleep(2);
    END IF;
    RETURN alice.k();
END $$;
-- a harmless function of hers, for expression indexes
CREATE FUNCTION alice.f(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN $1 % 1000; END';
ALTER ROLE alice SET search_path = alice, public;
});

as('bob', q{
CREATE TABLE bob.b (v int, w int, e int, fcol int);
INSERT INTO bob.b SELECT g, g, g, g FROM generate_series(1, 20000) g;
ANALYZE bob.b;
GRANT USAGE ON SCHEMA bob TO alice, erin, frank;
GRANT SELECT ON bob.b TO alice, erin, frank;
});

# the workload: each statement a few times, by its own role
query('SELECT pg_stat_statements_reset()');
as('alice', join('', map { "SELECT count(*) FROM alice.t WHERE id = alice.k();\n"
						   . "SELECT count(*) FROM alice.t WHERE v = alice.s();\n"
						   . "SELECT count(*) FROM u WHERE code = k2();\n"
						   . "SELECT count(*) FROM alice.t WHERE id + 0 = alice.nap();\n"
						   . "SELECT count(*) FROM bob.b WHERE alice.f(v) = 5;\n" } 1 .. 5));
as('bob', join('', map { "SELECT count(*) FROM bob.b WHERE w = $_;\n" } 1 .. 5));
as('erin', join('', map { "SELECT count(*) FROM bob.b WHERE e = $_;\n" } 1 .. 5));
as('frank', join('', map { "SELECT count(*) FROM bob.b WHERE fcol = $_;\n" } 1 .. 5));
# erin loses her privilege, frank is gone
as('bob', 'REVOKE SELECT ON bob.b FROM erin');
query(q{DROP OWNED BY frank; DROP ROLE frank});

# 1. A superuser asks the advisor, with a search_path of its own
my $recs = query(q{
SET search_path = admin, public;
SELECT table_name::text || ' ' || index_def FROM perfopt.recommend_indexes() ORDER BY 1;
SELECT 'hypothetical ' || count(*) FROM hypopg();
SELECT 'skipped ' || (perfopt.last_advisor_run()->>'skipped_as_role');});
note($recs);
alice_unharmed('recommend_indexes()');
like($recs, qr/^alice\.t .*\("id"\)/m, 'her IMMUTABLE statement is advised, planned as alice');
like($recs, qr/^alice\.t .*\("v"\)/m, 'her STABLE statement is advised, planned as alice');
like($recs, qr/^alice\.u .*\("code"\)/m, 'her unqualified statement is resolved with her own search_path');
unlike($recs, qr/"admin"\."u"/, 'and never with the caller\'s');
unlike($recs, qr/^bob\.b .*"alice"\."f"/m, 'her function is never proposed in an index on bob\'s table');
unlike($recs, qr/\("e"\)|\("fcol"\)/, 'the statements of a role gone or without privilege are not planned');
like($recs, qr/^skipped 2$/m, 'and are counted in last_advisor_run()');
like($recs, qr/^hypothetical 0$/m, 'no hypothetical index is left behind');

# her own function on her own table may go into an index on it
as('alice', join('', map { "SELECT count(*) FROM alice.t WHERE alice.f(v) = 5;\n" } 1 .. 5));
$recs = query(q{SELECT table_name::text || ' ' || index_def FROM perfopt.recommend_indexes() ORDER BY 1});
note($recs);
like($recs, qr/^alice\.t .*\(\("alice"\."f"\("v"\)\)\)/m,
	'the owner\'s function may go into an index on the owner\'s table');
unlike($recs, qr/^bob\.b .*"alice"\."f"/m, 'and still not on bob\'s');
alice_unharmed('recommend_indexes() again');

# 2. The views
query(q{SELECT count(*) FROM perfopt.index_recommendations});
alice_unharmed('index_recommendations');
my $slow = query(q{
SET search_path = admin, public;
SELECT query || ' | ' || (recommendations->0->>'code') FROM perfopt.slow_queries ORDER BY 1});
note($slow);
alice_unharmed('slow_queries');
unlike($slow, qr/^SELECT count\(\*\) FROM alice\.t WHERE id = alice\.k\(\) \| not_analyzed/m,
	'slow_queries analyzes her statement as alice');
like($slow, qr/fcol = \$1 \| not_analyzed/, 'but not the statement of a role that is gone');

# 3. The launcher runs an optimization cycle on its own: its report asks
# the advisor
query(q{DELETE FROM perfopt.optimization_reports;
		 UPDATE perfopt.jobs SET enabled = true, schedule = interval '1 second', next_run = now()
		 WHERE job_name = 'optimization_cycle'});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) >= 1 FROM perfopt.optimization_reports}), 'the launcher ran a cycle');
query(q{UPDATE perfopt.jobs SET enabled = false WHERE job_name = 'optimization_cycle'});
alice_unharmed('the launcher\'s cycle');

# 4. A cycle run by a superuser
query(q{SELECT perfopt.run_optimization_cycle()});
alice_unharmed('run_optimization_cycle()');

# 5. bob sees his own statements only
my ($ret, $out, $err) = $node->psql('postgres', q{
SELECT table_name::text || ' ' || index_def FROM perfopt.recommend_indexes();
SELECT 'statements ' || (perfopt.last_advisor_run()->>'statements');},
	extra_params => [ '-U', 'bob' ]);
note($out, $err);
is($ret, 0, 'bob may ask the advisor');
like($out, qr/^(bob\.)?b .*\("w"\)/m, 'and is advised on his own statement');
unlike($out, qr/alice|"e"|"fcol"/, 'and on nobody else\'s');
unlike($err, qr/left out/, 'the statements of others are not even tried');
is(as('bob', q{SELECT count(*) FROM perfopt.slow_queries WHERE query !~ 'bob\.b'}), '0',
	'slow_queries shows bob his own statements only');
alice_unharmed('bob\'s calls');

# 6. statement_timeout stops the advisor, whether it waits for a tenant's
# lock or runs a tenant's function
my $holder = $node->background_psql('postgres', extra_params => [ '-U', 'alice' ]);
$holder->query_safe('BEGIN; LOCK TABLE alice.t IN ACCESS EXCLUSIVE MODE;');
my $timed_out;
($ret, $out, $err) = $node->psql('postgres', q{
SET statement_timeout = '500ms';
SELECT count(*) FROM perfopt.recommend_indexes();}, timeout => 20, timed_out => \$timed_out);
like($err, qr/ERROR:  canceling statement due to statement timeout/,
	'statement_timeout stops recommend_indexes() waiting for a tenant\'s lock');
$holder->query_safe('COMMIT');
$holder->quit;
as('alice', q{INSERT INTO alice.flags VALUES ('sleep')});
($ret, $out, $err) = $node->psql('postgres', q{
SET statement_timeout = '500ms';
SELECT count(*) FROM perfopt.recommend_indexes();});
like($err, qr/ERROR:  canceling statement due to statement timeout/,
	'statement_timeout stops recommend_indexes() in a tenant\'s function');
($ret, $out, $err) = $node->psql('postgres', q{
SET statement_timeout = '500ms';
SELECT count(*) FROM perfopt.slow_queries;});
like($err, qr/ERROR:  canceling statement due to statement timeout/, 'and slow_queries');
as('alice', q{TRUNCATE alice.flags});
alice_unharmed('the cancelled calls');

# 7. A tenant's function that fails once hypothetical indexes exist does not
# stop the advice for everyone: her statement is given up and counted
as('alice', q{
CREATE FUNCTION alice.boom() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF EXISTS (SELECT FROM public.hypopg()) THEN
        RAISE EXCEPTION 'no advice for anyone';
    END IF;
    RETURN alice.k();
END $$;
SELECT count(*) FROM alice.t WHERE id = alice.boom();});
($ret, $out, $err) = $node->psql('postgres', q{
SELECT table_name::text || ' ' || index_def FROM perfopt.recommend_indexes() ORDER BY 1;
SELECT 'skipped ' || (perfopt.last_advisor_run()->>'skipped_as_role');});
note($out, $err);
is($ret, 0, 'a tenant\'s function that fails while costed does not stop the advisor');
like($out, qr/^bob\.b .*\("w"\)/m, 'the others are still advised');
like($err, qr/queryid -?\d+ of the workload is left out: no advice for anyone/,
	'her statement is left out with a NOTICE');
my ($skipped) = $out =~ /^skipped (\d+)$/m;
cmp_ok($skipped // 0, '>=', 3, 'and counted as skipped, with the two of roles gone or without privilege');
alice_unharmed('a failing function');

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no backend crashed');

$node->stop;
done_testing();
