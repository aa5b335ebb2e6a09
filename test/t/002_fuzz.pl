# Fuzzing analyze_query: thousands of random statements from sqlsmith, the
# same statements normalized by pg_stat_statements, and mutations of a
# workload's statements.  Each must give a row or a clean error; the server
# must never crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $queries = $ENV{PERFOPT_FUZZ_QUERIES} || 1500;
my $seed = $ENV{PERFOPT_FUZZ_SEED} || 20261127;
note "seed $seed, $queries queries";

my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
pg_stat_statements.track = all
pg_stat_statements.max = 10000
statement_timeout = '10s'
max_parallel_workers_per_gather = 0
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION perfopt CASCADE');
$node->safe_psql('postgres', "\\set leads 2000\n\\i test/sample/leads.sql");

# Statements go through a table, and a PL/pgSQL loop analyzes each one,
# catching errors: a crash kills the loop and is seen in the log.  The loop
# also records what a plain EXPLAIN of the statement gives, which analyze
# must match: both plan without executing.
$node->safe_psql('postgres', q{
CREATE TABLE fuzz (id serial, source text, query text, outcome text, explain_outcome text);
CREATE PROCEDURE analyze_fuzz(which text, with_explain boolean) LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT id, query FROM fuzz WHERE source = which AND outcome IS NULL ORDER BY id LOOP
        BEGIN
            PERFORM * FROM perfopt.analyze_query(r.query);
            UPDATE fuzz SET outcome = 'ok' WHERE id = r.id;
        EXCEPTION WHEN OTHERS THEN
            UPDATE fuzz SET outcome = SQLSTATE WHERE id = r.id;
        END;
        IF with_explain THEN
            BEGIN
                -- the empty statements a text starts with are no
                -- statement to PostgreSQL (";SELECT" runs the SELECT),
                -- but would leave EXPLAIN without one
                EXECUTE 'EXPLAIN ' || regexp_replace(r.query, '^[[:space:];]+', '');
                UPDATE fuzz SET explain_outcome = 'ok' WHERE id = r.id;
            EXCEPTION WHEN OTHERS THEN
                UPDATE fuzz SET explain_outcome = SQLSTATE WHERE id = r.id;
            END;
        END IF;
        COMMIT;
    END LOOP;
END $$;});

sub load_queries
{
	my ($source, @texts) = @_;
	my $sql = '';
	foreach my $text (@texts)
	{
		next if $text =~ /\$fuzz\$/;
		$sql .= "INSERT INTO fuzz (source, query) VALUES ('$source', \$fuzz\$$text\$fuzz\$);\n";
	}
	$node->safe_psql('postgres', $sql);
}

sub outcomes
{
	my ($source) = @_;
	return split /\|/, $node->safe_psql('postgres', qq{
		SELECT count(*), count(*) FILTER (WHERE outcome = 'ok'),
		       count(*) FILTER (WHERE outcome IS NULL),
		       count(*) FILTER (WHERE outcome LIKE 'XX%'
		                          AND outcome IS DISTINCT FROM explain_outcome)
		  FROM fuzz WHERE source = '$source'});
}

sub check_source
{
	my ($source, $min_ok_share, $with_explain) = @_;
	# statement_timeout covers a CALL as a whole, COMMITs inside it
	# included: the 10 s meant for one statement would end a loop of
	# 1,500 on a loaded machine, so the loop gets its own bound
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"SET statement_timeout = '150s'; CALL analyze_fuzz('$source', "
		  . ($with_explain ? 'true' : 'false') . ")");
	is($ret, 0, "$source: the analysis loop ran to its end") or diag $stderr;
	my ($total, $ok, $left, $internal) = outcomes($source);
	note "$source: $total statements, $ok analyzed";
	is($left, 0, "$source: every statement got a row or an error");
	# an internal error that EXPLAIN raises as well is PostgreSQL's own
	is($internal, 0, "$source: no internal error (SQLSTATE XX...) that EXPLAIN does not raise")
	  or diag $node->safe_psql('postgres', qq{
		SELECT string_agg(outcome || ': ' || left(query, 500), E'\n')
		  FROM fuzz WHERE source = '$source' AND outcome LIKE 'XX%'});
	cmp_ok($ok, '>=', $min_ok_share * $total,
		"$source: at least " . ($min_ok_share * 100) . "% analyzed ($ok of $total)");
	if ($with_explain)
	{
		my $sql = q{
			SELECT string_agg(outcome || ' / EXPLAIN ' || explain_outcome || ': ' || left(query, 300), E'\n')
			  FROM fuzz WHERE source = 'SOURCE' AND outcome <> explain_outcome
			   AND query !~ '[$][0-9]' AND query ~ '[^[:space:];]'};
		$sql =~ s/SOURCE/$source/;
		my $differ = $node->safe_psql('postgres', $sql);
		is($differ, '',
			"$source: without parameters, analyze_query succeeds and fails where EXPLAIN does");
	}
}

# 1. sqlsmith's random statements over the sample schema and the catalogs
my ($sqlsmith_out, $sqlsmith_err);
IPC::Run::run([ 'sqlsmith', '--target=' . $node->connstr('postgres'), '--dry-run',
		"--max-queries=$queries", "--seed=$seed" ],
	'>', \$sqlsmith_out, '2>', \$sqlsmith_err)
  or die "sqlsmith failed: $sqlsmith_err";
my @random = grep { /\S/ } split /;\n/, $sqlsmith_out;
cmp_ok(scalar(@random), '>=', $queries * 0.9, 'sqlsmith generated the statements');
load_queries('sqlsmith', @random);
check_source('sqlsmith', 0.3, 1);

# 2. the same statements as pg_stat_statements normalizes them, constants
# turned into $n.  pg_stat_statements shows a normalized text only once the
# statement has run, so run those that analyzed, as a role that cannot harm
# the server, each bounded by a timeout and its changes rolled back.  Only
# the top-level statements count: what perfopt's functions run inside them
# is not sqlsmith's.  A normalized text may be unanalyzable where the
# original was not ($1[s]: the type of $1 is lost), hence 95%, not 100%.
$node->safe_psql('postgres', q{
CREATE ROLE fuzzer;
GRANT ALL ON ALL TABLES IN SCHEMA public TO fuzzer;
GRANT USAGE ON SCHEMA perfopt TO fuzzer;
SELECT pg_stat_statements_reset();
});
$node->psql('postgres', q{
SET ROLE fuzzer;
SET statement_timeout = '300ms';
\set ON_ERROR_ROLLBACK on
BEGIN;
SELECT query FROM fuzz WHERE source = 'sqlsmith' AND outcome = 'ok' ORDER BY id \gexec
ROLLBACK;}, on_error_stop => 0);
$node->safe_psql('postgres', q{
INSERT INTO fuzz (source, query)
SELECT 'normalized', query FROM pg_stat_statements
 WHERE query ~ '\$[0-9]' AND userid = 'fuzzer'::regrole AND toplevel;});
check_source('normalized', 0.95, 0);
note "normalized statements not analyzed:\n" . $node->safe_psql('postgres', q{
	SELECT string_agg(outcome || ': ' || left(query, 400), E'\n') FROM fuzz
	 WHERE source = 'normalized' AND outcome <> 'ok'});
cmp_ok((outcomes('normalized'))[0], '>=', 50, 'enough normalized statements were recorded');

# The same statements, fifty at a time, as workloads for the index advisor,
# which reads its candidates from their trees: no crash, no internal error,
# no hypothetical index left behind.
my ($advised_ok, $advised_failed) = (0, 0);
my @ids = split /\n/, $node->safe_psql('postgres',
	"SELECT id FROM fuzz WHERE source = 'sqlsmith' AND outcome = 'ok' ORDER BY id");
for (my $i = 0; $i < @ids; $i += 50)
{
	my $last = $i + 49 < $#ids ? $i + 49 : $#ids;
	my ($ret, $stdout, $stderr) = $node->psql('postgres', qq{
		SET statement_timeout = '60s';
		SET client_min_messages = warning;
		SELECT count(*) FROM perfopt.recommend_indexes_for(
			ARRAY(SELECT query FROM fuzz WHERE id BETWEEN $ids[$i] AND $ids[$last]
			        AND source = 'sqlsmith' AND outcome = 'ok'), NULL, NULL, 0)});
	if ($ret == 0) { $advised_ok++; }
	else
	{
		$advised_failed++;
		diag "advisor run failed: $stderr";
	}
}
is($advised_failed, 0, "index advisor: $advised_ok workloads of sqlsmith statements advised without an error");
is($node->safe_psql('postgres', 'SELECT count(*) FROM hypopg_list_indexes'), '0',
	'index advisor: no hypothetical index left');

# 3. mutations of a workload's statements: cut, doubled, deleted and
# swapped characters, a $n put in place of a word
my @workload = (
	q{SELECT l.id, l.email, a.name FROM leads l JOIN agents a ON a.id = l.agent_id WHERE l.state = 'TX' AND l.created_at > date '2025-02-01' ORDER BY l.created_at DESC LIMIT 20},
	q{SELECT status, count(*), avg(score) FROM leads WHERE created_at >= $1 GROUP BY status HAVING count(*) > $2},
	q{UPDATE leads SET status = 'contacted', updated_at = now() WHERE id = $1 AND status = 'new'},
	q{WITH recent AS (SELECT * FROM lead_events WHERE created_at > now() - interval '1 day') SELECT kind, count(*) FROM recent GROUP BY kind},
	q{SELECT q.* FROM quotes q WHERE q.lead_id IN (SELECT id FROM leads WHERE email ILIKE '%@gmail.com') AND q.premium BETWEEN $1 - $2 AND $1 + $2},
	q{DELETE FROM lead_events e USING leads l WHERE e.lead_id = l.id AND l.status = 'disqualified'},
	q{INSERT INTO quotes (id, lead_id, carrier, premium, status, created_at) SELECT 1000000 + id, id, 'Evergreen', 500, 'open', now() FROM leads WHERE score > 95 ON CONFLICT (id) DO NOTHING},
	q{SELECT a.id, (SELECT max(q.premium) FROM quotes q JOIN leads l ON l.id = q.lead_id WHERE l.agent_id = a.id) FROM agents a WHERE a.id NOT IN (SELECT agent_id FROM leads WHERE agent_id IS NOT NULL) OR a.state = $1},
);
srand($seed);
my @mutated;
my @pieces = ('(', ')', ',', "'", '$1', '$', ' date $2 ', ' interval $3 year ', 'SELECT ', ' OR ', ';', '::', '*', ' WHERE ', '"');
for (my $i = 0; $i < $queries; $i++)
{
	my $text = $workload[ int(rand(@workload)) ];
	for (my $n = 1 + int(rand(4)); $n > 0; $n--)
	{
		my $at = int(rand(length($text)));
		my $kind = int(rand(4));
		if ($kind == 0) { substr($text, $at, 1 + int(rand(8)), ''); }
		elsif ($kind == 1) { substr($text, $at, 0, $pieces[ int(rand(@pieces)) ]); }
		elsif ($kind == 2) { $text = substr($text, 0, $at); }
		else { substr($text, $at, 0, substr($text, int(rand(length($text))), 1 + int(rand(12)))); }
	}
	push @mutated, $text;
}
load_queries('mutated', @mutated);
check_source('mutated', 0.0, 1);

# detect_anomalies() and forecast() on random series: every length up to
# 3000, times with repeats and the odd step back, values that are NULL,
# NaN, infinite, huge or constant, random thresholds, horizons and steps.
# Each call gives rows or a clean error with one of the SQLSTATEs of bad
# input; never an internal error.
my $series_seed = ($seed % 1000) / 1000.0;
$node->safe_psql('postgres', qq{
CREATE TABLE series_fuzz (id int, fn text, outcome text);
CREATE PROCEDURE fuzz_series(n int) LANGUAGE plpgsql AS \$\$
DECLARE
    len int; times timestamptz[]; vals float8[]; t timestamptz; fn text; back int;
    thr float8; got bigint;
BEGIN
    PERFORM setseed($series_seed);
    FOR i IN 1..n LOOP
        len := CASE WHEN random() < 0.1 THEN floor(random() * 4)::int
                    ELSE floor(random() * 3000)::int END;
        t := timestamptz '2026-01-01' + random() * interval '3000 days';
        times := '{}'; vals := '{}';
        back := CASE WHEN random() < 0.05 THEN floor(random() * len)::int END;
        FOR j IN 1..len LOOP
            t := t + CASE WHEN j = back THEN -interval '1 minute'
                          WHEN random() < 0.02 THEN interval '0'
                          WHEN random() < 0.5 THEN interval '1 minute'
                          ELSE random() * interval '2 hours' END;
            times := times || t;
            vals := vals || CASE floor(random() * 12)::int
                              WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::float8
                              WHEN 2 THEN 'Infinity'::float8 WHEN 3 THEN 1e308
                              WHEN 4 THEN -1e308 WHEN 5 THEN 0
                              ELSE sin(j / 50.0) * 100 + random() END;
        END LOOP;
        fn := CASE WHEN random() < 0.5 THEN 'detect_anomalies' ELSE 'forecast' END;
        BEGIN
            IF fn = 'detect_anomalies' THEN
                -- real timestamps: a NULL time, the points in any order
                IF len > 0 AND random() < 0.1 THEN
                    times[1 + floor(random() * len)::int] := NULL;
                END IF;
                IF random() < 0.2 THEN
                    SELECT array_agg(x.t ORDER BY x.r), array_agg(x.v ORDER BY x.r)
                      INTO times, vals
                      FROM (SELECT unnest(times) AS t, unnest(vals) AS v, random() AS r) x;
                END IF;
                thr := CASE WHEN random() < 0.3 THEN NULL ELSE (random() * 20 - 2)::float8 END;
                SELECT count(*) INTO got FROM perfopt.detect_anomalies(times, vals, thr);
                -- a usable threshold: one row per point, whatever the times
                IF got <> coalesce(array_length(times, 1), 0) THEN
                    fn := 'detect_anomalies rows';
                END IF;
                IF thr IS NULL OR thr > 0 THEN
                    fn := fn || ' (valid)';
                END IF;
            ELSE
                PERFORM count(*) FROM perfopt.forecast(times, vals,
                    random() * interval '400 days' - interval '5 days',
                    CASE WHEN random() < 0.5 THEN NULL
                         ELSE random() * interval '1 day' - interval '1 hour' END);
            END IF;
            INSERT INTO series_fuzz VALUES (i, fn, 'ok');
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO series_fuzz VALUES (i, fn, SQLSTATE);
        END;
        COMMIT;
    END LOOP;
END \$\$;});
$node->safe_psql('postgres', 'CALL fuzz_series(600)');
my $series_outcomes = $node->safe_psql('postgres', q{
	SELECT string_agg(fn || ' ' || outcome || ': ' || n, ', ' ORDER BY fn, outcome)
	  FROM (SELECT fn, outcome, count(*) AS n FROM series_fuzz GROUP BY 1, 2) o});
note "series: $series_outcomes";
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM series_fuzz
	 WHERE outcome NOT IN ('ok', '22023', '22004', '22008', '2202E', '54000')}),
	'0', 'random series: rows or a clean bad-input error, never an internal one');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM series_fuzz
	 WHERE fn LIKE 'detect_anomalies%' AND (fn LIKE '%rows%' OR (fn LIKE '%(valid)' AND outcome <> 'ok'))}),
	'0', 'detect_anomalies() with a usable threshold: one row per point, never an error, for any times');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM series_fuzz WHERE outcome = 'ok'}),
	'>=', 100, 'and many gave rows');

# cron_next() on random schedules: pieces of valid ones, junk, extremes
$node->safe_psql('postgres', q{
CREATE TABLE cron_fuzz (schedule text, outcome text);
DO $$
DECLARE
    pieces text[] := ARRAY['*', '*/', '0', '59', '60', '-1', '1-5', '5-1', '/2', ',', ' ', '  ', 'mon',
                           'sun-sat', 'jan', 'dec', 'feb', '31', '30', '29', '7', '8', '@daily', '@',
                           'x', '2147483648', '00', '*/1000', '1,2,3', '\t', '?', 'L', '#'];
    s text;
BEGIN
    PERFORM setseed(0.25);
    FOR i IN 1..3000 LOOP
        s := '';
        IF random() < 0.5 THEN
            -- five fields, each a piece, a range or a list of them
            FOR j IN 1..5 LOOP
                s := s || CASE WHEN j > 1 THEN ' ' ELSE '' END
                       || (ARRAY['*', '*/5', '0', '1-4', '2,3', 'mon-fri', '1-31/7', '12', '59', '0-23'])
                              [1 + floor(random() * 10)::int];
            END LOOP;
        ELSE
            FOR j IN 1..floor(random() * 14)::int LOOP
                s := s || pieces[1 + floor(random() * array_length(pieces, 1))::int];
                IF random() < 0.4 THEN s := s || ' '; END IF;
            END LOOP;
        END IF;
        BEGIN
            PERFORM perfopt.cron_next(s, timestamptz '2026-01-01' + random() * interval '3650 days');
            INSERT INTO cron_fuzz VALUES (s, 'ok');
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO cron_fuzz VALUES (s, SQLSTATE);
        END;
    END LOOP;
END $$;});
note 'cron: ' . $node->safe_psql('postgres',
	q{SELECT string_agg(outcome || ': ' || n, ', ') FROM (SELECT outcome, count(*) AS n FROM cron_fuzz GROUP BY 1) o});
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron_fuzz WHERE outcome NOT IN ('ok', '22023')}),
	'0', 'random cron schedules: a time or a clean bad-input error');

# the server never went down
unlike(slurp_file($node->logfile), qr/terminated by signal|server process .* was terminated/,
	'no backend crashed');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');
$node->stop;

done_testing();
