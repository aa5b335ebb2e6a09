# A sweep over every function in schema perfopt, found in pg_proc so that
# a new function is swept without a change here: each is called as a login
# role without privileges (alice) and as a superuser, with NULLs and with
# edge values for one argument at a time (empty and huge strings and
# arrays, negative and huge numbers, infinite timestamps, zero and negative
# intervals), the others plain.  An error is an answer; a crash (a backend
# "terminated by signal", or psql losing its connection) fails the sweep.
#
# Then the classes the sweep cannot see: sizes taken from arguments are
# refused with SQLSTATE 54000 before they are allocated; the settings the
# workers act on cannot be set by a database owner who is no superuser,
# and the workers ignore per-database settings; the workers resolve names
# in pg_catalog only, so an object in public cannot capture one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('sweep');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
compute_query_id = on
perfopt.sample_interval = 1s
perfopt.redis_timeout = 200ms
restart_after_crash = on
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

query(q{CREATE EXTENSION pg_stat_statements;
		CREATE EXTENSION hypopg;
		CREATE EXTENSION perfopt CASCADE;
		CREATE ROLE alice LOGIN;
		CREATE TABLE public.t (id int PRIMARY KEY, v text);
		INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 100) g;});

# Plain values, and edge values, per argument type
my %plain = (
	'text' => q{'t'},
	'integer' => '1',
	'bigint' => '1',
	'double precision' => '1',
	'boolean' => 'false',
	'date' => 'current_date',
	'interval' => q{interval '1 hour'},
	'timestamp with time zone' => 'now()',
	'timestamp with time zone[]' => q{ARRAY[now() - interval '1 hour', now()]},
	'double precision[]' => q{ARRAY[1, 2]::float8[]},
	'text[]' => q{ARRAY['t']},
	'regclass' => q{'public.t'::regclass},
	'regrole' => q{'alice'::regrole},
	'jsonb' => q{'{}'::jsonb},
	'perfopt.automation_rules' => 'NULL::perfopt.automation_rules',
);
my $huge_text = q{repeat('x', 1000000)};
my %edges = (
	'text' => [ q{''}, $huge_text, q{'*'}, q('{'), q('}{'), q{'{x}'}, q{E'\\\\'},
		q{'@daily'}, q{'*/0 * * * *'}, q{'61 * * * *'}, q{'; SELECT 1'} ],
	'integer' => [ '0', '-1', '2147483647', '-2147483648' ],
	'bigint' => [ '0', '-1', '9223372036854775807', '-9223372036854775808' ],
	'double precision' => [ '0', '-1', q{'NaN'::float8}, q{'Infinity'::float8},
		q{'-Infinity'::float8}, '1e308', '1e-308' ],
	'boolean' => [ 'true' ],
	'date' => [ q{'infinity'::date}, q{'-infinity'::date}, q{'5874897-12-31'::date} ],
	'interval' => [ q{interval '0'}, q{interval '-1 day'}, q{interval '1 microsecond'},
		q{interval '178000000 years'}, q{interval '-178000000 years'} ],
	'timestamp with time zone' => [ q{'infinity'::timestamptz}, q{'-infinity'::timestamptz},
		q{'294276-12-31 23:59:59+00'::timestamptz}, q{'4713-11-24 00:00:00+00 BC'::timestamptz} ],
	'timestamp with time zone[]' => [ q{'{}'::timestamptz[]}, q{'{NULL}'::timestamptz[]},
		q{'{infinity}'::timestamptz[]},
		q{(SELECT array_agg(timestamptz '2026-01-01' + g * interval '1 s') FROM generate_series(1, 100000) g)},
		q{'{{2026-01-01,2026-01-02}}'::timestamptz[]} ],
	'double precision[]' => [ q{'{}'::float8[]}, q{'{NULL}'::float8[]}, q{'{NaN,Infinity}'::float8[]},
		q{(SELECT array_agg(g::float8) FROM generate_series(1, 100000) g)},
		q{'{{1,2}}'::float8[]} ],
	'text[]' => [ q{'{}'::text[]}, q{'{NULL}'::text[]}, qq{ARRAY[$huge_text]},
		q{(SELECT array_agg(g::text) FROM generate_series(1, 100000) g)} ],
	'regclass' => [ q{0::oid::regclass}, q{4294967295::oid::regclass}, q{'pg_class'::regclass},
		q{'perfopt.automation_rules'::regclass} ],
	'regrole' => [ q{0::oid::regrole}, q{4294967295::oid::regrole}, q{'postgres'::regrole} ],
	'jsonb' => [ q{'null'::jsonb}, q{'[]'::jsonb}, q{'"x"'::jsonb},
		q{(repeat('[', 5000) || repeat(']', 5000))::jsonb}, q{'{"action": null}'::jsonb},
		q{(SELECT jsonb_object_agg(g::text, g) FROM generate_series(1, 100000) g)} ],
	'perfopt.automation_rules' => [],
);

# The functions, with the types of their arguments
my @functions;
foreach my $row (split /\n/, query(q{
	SELECT format('%I.%I', n.nspname, p.proname), p.oid::regprocedure,
	       coalesce(string_agg(format_type(a.t, NULL), ',' ORDER BY a.i), '')
	  FROM pg_proc p
	  JOIN pg_namespace n ON n.oid = p.pronamespace
	  LEFT JOIN LATERAL unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i) ON true
	 WHERE n.nspname = 'perfopt'
	   AND p.prorettype <> 'trigger'::regtype
	 GROUP BY 1, 2
	 ORDER BY 2::text}))
{
	my ($name, $signature, $types) = split /\|/, $row, 3;
	push @functions, { name => $name, signature => $signature,
		types => [ $types eq '' ? () : split(/,/, $types) ] };
}
cmp_ok(scalar(@functions), '>=', 60, 'the sweep found the functions of schema perfopt');

# Nothing is skipped by name: every call is bounded by statement_timeout,
# and this throwaway cluster has no state the calls could spoil for others.

# The calls of one function: all NULL, all plain, then each argument NULL
# and at each of its edges with the others plain
sub calls
{
	my ($f) = @_;
	my @types = @{ $f->{types} };
	# a type this file does not know yet gets NULL as its plain value
	my @plain = map { $plain{$_} // "NULL::$_" } @types;
	my @calls;
	my $call = sub {
		my @args = @_;
		push @calls, "SELECT count(*) FROM (SELECT * FROM $f->{name}(" . join(', ', @args) . ")) s;";
	};
	$call->(map { "NULL::$_" } @types);
	$call->(@plain);
	for my $i (0 .. $#types)
	{
		foreach my $value ("NULL::$types[$i]", @{ $edges{ $types[$i] } // [] })
		{
			my @args = @plain;
			$args[$i] = $value;
			$call->(@args);
		}
	}
	return @calls;
}

my $offset = -s $node->logfile;
foreach my $role ('alice', 'postgres')
{
	foreach my $f (@functions)
	{
		my $script = join("\n", q{SET statement_timeout = '10s';}, calls($f));
		my ($ret, $stdout, $stderr) = $node->psql('postgres', $script,
			on_error_stop => 0, extra_params => [ '-U', $role ]);
		my $log = slurp_file($node->logfile, $offset);
		$offset = -s $node->logfile;
		my $crashed = $ret == 2 || $log =~ /terminated by signal/;
		ok(!$crashed, "$f->{signature} as $role: no crash")
		  or diag("psql exit code $ret\n$stderr\n$log");
		# after a crash, wait for the server to be back before going on
		$node->poll_query_until('postgres', 'SELECT true') if $crashed;
	}
}

# Sizes taken from arguments: refused with 54000, before they are allocated
my @limits = (
	[ 'forecast with a fine explicit step',
	  q{SELECT count(*) FROM perfopt.forecast(ARRAY[timestamptz '2026-01-01', '2027-01-01'],
		ARRAY[1, 2]::float8[], interval '1 day', interval '30 s')} ],
	[ 'forecast of more values than the forecaster takes',
	  q{SELECT count(*) FROM perfopt.forecast(ARRAY[timestamptz '2026-01-01', '2026-04-01'],
		ARRAY[1, 2]::float8[], interval '1 day', interval '1 min')} ],
	[ 'a series of more than a million points',
	  q{SELECT count(*) FROM perfopt.detect_anomalies(
		(SELECT array_agg(timestamptz '2026-01-01' + g * interval '1 s') FROM generate_series(1, 1000001) g),
		(SELECT array_agg(1::float8) FROM generate_series(1, 1000001) g))} ],
	[ 'a cron schedule of a million bytes', q{SELECT perfopt.cron_next(repeat('*', 1000000), now())} ],
	[ 'a key template of a million bytes', q{SELECT perfopt.cache_template_columns(NULL, repeat('x', 1000000))} ],
	[ 'an invalidation pattern of a million bytes', q{SELECT perfopt.cache_invalidate(repeat('x', 1000000))} ],
	[ 'a session key of a million bytes', q{SELECT * FROM perfopt.route(repeat('x', 1000000))} ],
	[ 'a simulation of more than a million requests', q{SELECT count(*) FROM perfopt.simulate_requests(1000001, 'adaptive')} ],
	[ 'pool_recommendation sampling for ten minutes', q{SELECT count(*) FROM perfopt.pool_recommendation(600)} ],
);
foreach my $limit (@limits)
{
	my ($what, $sql) = @$limit;
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"SET statement_timeout = '20s'; \\set VERBOSITY verbose\n$sql",
		on_error_stop => 0);
	like($stderr, qr/ERROR:  54000: .*\n(.*\n)*HINT:  /, "$what: refused with 54000 and a hint");
}

# the valid uses near the bounds still work
is(query(q{SELECT count(*) FROM perfopt.forecast(
		(SELECT array_agg(timestamptz '2026-01-01' + g * interval '1 hour') FROM generate_series(0, 999) g),
		(SELECT array_agg(100 + g % 24)::float8[] FROM generate_series(0, 999) g),
		interval '1 day', interval '1 hour')}), '24', 'a forecast of hourly values still works');
is(query(q{SELECT perfopt.cache_template_columns(NULL, 'lead:{id}')}), '{id}',
	'a template without a table is still checked');

# Settings the workers act on: a database owner who is no superuser
# cannot set them for the database, and the workers ignore such settings
query(q{CREATE ROLE dbo LOGIN; ALTER DATABASE postgres OWNER TO dbo;});
foreach my $setting ('perfopt.anomaly_threshold = 100', 'perfopt.forecast_horizon = 60',
	'perfopt.slow_query_ms = 100000', 'perfopt.advisor_statements = 1',
	'perfopt.metrics_top_statements = 0')
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres', "ALTER DATABASE postgres SET $setting",
		extra_params => [ '-U', 'dbo' ]);
	like($stderr, qr/permission denied to set parameter/,
		"the database owner cannot ALTER DATABASE ... SET $setting");
}

# A per-database setting made by a superuser does not reach the workers
$offset = -s $node->logfile;
query(q{ALTER DATABASE postgres SET perfopt.anomaly_threshold = 100;
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'perfopt launcher'});
my $ignored = 0;
for (1 .. 300)
{
	$ignored = slurp_file($node->logfile, $offset) =~
	  /perfopt\.anomaly_threshold.*\n.*DETAIL:  perfopt's background workers take this setting from the server's configuration only/;
	last if $ignored;
	usleep(100_000);
}
ok($ignored, 'the restarted launcher ignores perfopt.anomaly_threshold set for the database')
  or diag(slurp_file($node->logfile, $offset));
query(q{ALTER DATABASE postgres RESET perfopt.anomaly_threshold});

# The workers resolve names in pg_catalog only, whatever search_path the
# database sets: a job of the launcher records the path it runs with
my $launcher = query(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'perfopt launcher'});
query(q{CREATE TABLE public.paths (path text);
		INSERT INTO perfopt.jobs (job_name, command, schedule)
		VALUES ('probe_path', 'INSERT INTO public.paths SELECT pg_catalog.current_setting(''search_path'')',
				interval '1 s');
		ALTER DATABASE postgres SET search_path = public, pg_catalog;
		SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'perfopt launcher'});
ok($node->poll_query_until('postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'perfopt launcher' AND pid <> $launcher}),
	'a new launcher started');
query(q{TRUNCATE public.paths});
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM public.paths}),
	'and ran again after the launcher restarted with the database search_path');
is(query(q{SELECT string_agg(DISTINCT path, ' | ') FROM public.paths}), 'pg_catalog, pg_temp',
	'the launcher runs with search_path pinned to pg_catalog, pg_temp');
query(q{ALTER DATABASE postgres RESET search_path; DELETE FROM perfopt.jobs WHERE job_name = 'probe_path'});

unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no backend crashed in the whole test');

$node->stop;
done_testing();
