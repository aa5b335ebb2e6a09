# What a tenant may see of perfopt, and what each role is given.
#
# The grants in the catalog are exactly those docs/security.md lists (a
# grant added without its line in the docs, or a line without its grant,
# fails).  Then, as the roles: a plain login role (alice) cannot read the
# cache's queue, whose keys are made of row values, nor the warmers, the
# latency function the monitoring view wraps, or route(); it sees only its
# own statements' texts; a monitoring role sees what the workers measure
# but not the keys; an application role granted perfopt_app may route.
# Every function PUBLIC may execute works for a fresh login role, and none
# of the internal ones is PUBLIC's; a login role that is a member of
# perfopt_reader only runs every dashboard query of docs/grafana, every
# view and every function granted to it, and can write nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

my $node = PostgreSQL::Test::Cluster->new('grants');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.redis_port = 1
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

query('CREATE EXTENSION perfopt CASCADE');
query(q{CREATE ROLE alice LOGIN; CREATE ROLE mon LOGIN IN ROLE pg_monitor;
		CREATE ROLE app LOGIN IN ROLE perfopt_app; CREATE ROLE mallory LOGIN IN ROLE perfopt_admin});

# 1. The catalog's grants are the documented ones
my $docs = slurp_file('docs/security.md');
my ($table) = $docs =~ /<!-- grants -->\n(.*?)<!-- \/grants -->/s;
ok(defined $table, 'docs/security.md has the table of grants');
my @documented = sort grep { /^\| `/ } split /\n/, ($table // '');
my @granted = sort split /\n/, query(slurp_file('test/fixtures/grants.sql'));
ok(scalar(@granted) > 50, 'perfopt grants privileges on its objects');
my %in_docs = map { $_ => 1 } @documented;
my %in_catalog = map { $_ => 1 } @granted;
is(join("\n", grep { !$in_docs{$_} } @granted), '', 'every grant in the catalog is in docs/security.md');
is(join("\n", grep { !$in_catalog{$_} } @documented), '', 'every grant docs/security.md lists is in the catalog');

# 2. Cache keys are made of row values: only a superuser reads them
query(q{CREATE TABLE users (id int PRIMARY KEY, email text);
		INSERT INTO users VALUES (1, 'ceo@example.com');
		SELECT perfopt.cache_watch('users', 'user:{email}');
		UPDATE users SET email = 'cfo@example.com' WHERE id = 1;});
like(query('SELECT string_agg(key, \',\' ORDER BY key) FROM perfopt.cache_outbox'),
	qr/user:ceo\@example\.com/, 'the outbox holds a key made of a row value (no Redis drains it)');
foreach my $role ('alice', 'mon', 'mallory', 'app')
{
	my ($out, $err) = as_role($role, 'SELECT key FROM perfopt.cache_outbox');
	like($err, qr/42501/, "$role cannot read the cache outbox");
	unlike($out, qr/example\.com/, "and sees no key");
	($out, $err) = as_role($role, 'SELECT query FROM perfopt.cache_warmers');
	like($err, qr/42501/, "$role cannot read the cache warmers");
}

# 3. Latency and routing are not PUBLIC
my ($out, $err) = as_role('alice', 'SELECT count(*) FROM perfopt.query_latency()');
like($err, qr/42501/, 'alice cannot call query_latency()');
($out, $err) = as_role('mon', 'SELECT count(*) >= 0 FROM perfopt.query_latency()');
is($out, 't', 'a pg_monitor member can');
($out, $err) = as_role('alice', 'SELECT * FROM perfopt.route()');
like($err, qr/42501/, 'alice cannot call route()');
# no instance is registered: a member of perfopt_app gets past the privilege
# check to route()'s own answer
($out, $err) = as_role('app', 'SELECT * FROM perfopt.route()');
like($err, qr/55000: no instance can take traffic/, 'a member of perfopt_app may call route()');
foreach my $relation ('metrics', 'live_metrics', 'anomalies', 'jobs', 'instances', 'incidents')
{
	($out, $err) = as_role('alice', "SELECT count(*) FROM perfopt.$relation");
	like($err, qr/42501/, "alice cannot read perfopt.$relation");
}

# 4. Through perfopt, alice sees only her own statements' texts
query('CREATE TABLE secrets (id int, note text); SELECT pg_stat_statements_reset()');
query(q{SELECT count(*) FROM secrets WHERE note = 'the merger with acme'});
as_role('alice', 'SELECT 42 AS alices_own');
($out, $err) = as_role('alice', 'SELECT string_agg(query, E\'\n\') FROM perfopt.statement_texts');
like($out, qr/alices_own/, 'alice sees her own statement in statement_texts');
unlike($out, qr/secrets/, "but not the text of another role's statement");
($out, $err) = as_role('alice', 'SELECT string_agg(query, E\'\n\') FROM perfopt.slow_queries');
unlike($out // '', qr/secrets/, "nor in slow_queries");

# 5. Every function PUBLIC may execute works for a plain login role: each is
# called by a fresh role with no other privilege, on a database with data.
# The functions come from the catalog: one whose arguments all have
# defaults is called with none, the others need a sample call here, so a
# function newly granted to PUBLIC is tested or fails this test.
query(slurp_file('test/sample/leads.sql'));
query(q{CREATE TABLE public.probe (a int, b text);
		INSERT INTO public.probe SELECT i, 'b' || i FROM generate_series(1, 20000) i;
		GRANT SELECT ON public.probe TO PUBLIC; ANALYZE public.probe;
		CREATE INDEX probe_a ON public.probe (a); CREATE INDEX probe_a2 ON public.probe (a);
		SELECT perfopt.sample_metrics(); SELECT perfopt.forecast_capacity();
		SELECT perfopt.run_optimization_cycle();
		CREATE TABLE public.probe_part (a int) PARTITION BY RANGE (a);
		CREATE TABLE public.probe_part_1 PARTITION OF public.probe_part FOR VALUES FROM (0) TO (100);
		CREATE TABLE public.probe_part_2 PARTITION OF public.probe_part FOR VALUES FROM (100) TO (200);
		INSERT INTO public.probe_part SELECT i FROM generate_series(0, 199) i;
		CREATE INDEX probe_part_a ON public.probe_part (a);
		SELECT count(*) FROM public.probe_part;
		CREATE ROLE probe NOLOGIN});
my $series = q{ARRAY(SELECT timestamptz '2026-01-01' + i * interval '1 hour' FROM generate_series(1, 200) i),
	ARRAY(SELECT 100 + i % 24 + (i / 10)::float8 FROM generate_series(1, 200) i)};
my %calls = (
	'perfopt.statement_samples()' => q{SELECT count(*) FROM perfopt.statement_samples()},
	'perfopt.analyze_query(text)' => q{SELECT count(*) FROM perfopt.analyze_query('SELECT * FROM public.probe WHERE a = 5')},
	'perfopt.advise_query(text,double precision)' =>
	  q{SELECT count(*) FROM perfopt.advise_query('SELECT * FROM public.probe WHERE a = 5')},
	'perfopt.advise_query(text,text[],double precision)' =>
	  q{SELECT count(*) FROM perfopt.advise_query('SELECT * FROM public.probe WHERE a = $1', ARRAY['5'])},
	'perfopt.recommend_indexes_for(text[],double precision[],double precision,double precision)' =>
	  q{SELECT count(*) FROM perfopt.recommend_indexes_for(ARRAY['SELECT * FROM public.probe WHERE a = 5'])},
	'perfopt.index_drop_safe_set(regclass[],regclass[])' =>
	  q{SELECT count(*) FROM perfopt.index_drop_safe_set(ARRAY['public.probe_a2'::regclass], ARRAY['public.probe_a'::regclass])},
	'perfopt.table_health(boolean,regclass,boolean)' => 'SELECT count(*) FROM perfopt.table_health(false, NULL, false)',
	'perfopt.pool_recommendation(double precision)' => 'SELECT count(*) FROM perfopt.pool_recommendation(0.1)',
	'perfopt.pgbouncer_config(double precision)' => 'SELECT perfopt.pgbouncer_config(0.1)',
	'perfopt.anomaly_group_first_mover(bigint)' =>
	  'SELECT perfopt.anomaly_group_first_mover(group_id) FROM perfopt.anomaly_groups',
	'perfopt.metric_correlations(timestamp with time zone,timestamp with time zone,interval,integer,double precision,text[])' =>
	  q{SELECT count(*) FROM perfopt.metric_correlations(now() - interval '1 hour', metrics => ARRAY['connections', 'latency_p95_ms'])},

	'perfopt.relation_bytes(regclass)' => q{SELECT perfopt.relation_bytes('public.probe') = pg_relation_size('public.probe')},
	'perfopt.relation_scans(oid)' =>
	  q{SELECT perfopt.relation_scans('public.probe'::regclass) = pg_stat_get_numscans('public.probe'::regclass)},
	# every table with two indexes that start with the same column is one
	# (what pg_index, PUBLIC's, says already); an error if not
	'perfopt.index_drop_suspects()' =>
	  q{SELECT CASE WHEN NOT EXISTS (SELECT i.indrelid FROM pg_index i GROUP BY i.indrelid, i.indkey[0] HAVING count(*) > 1
	                                 EXCEPT SELECT perfopt.index_drop_suspects())
	           THEN 1 ELSE (SELECT 1 / count(*)::int FROM pg_class WHERE false) END},
	# the suspects' indexes, as pg_index (PUBLIC's) lists them, and a
	# partitioned index's sums as PUBLIC's statistics views and
	# pg_relation_size() give them; an error if not
	'perfopt.index_drop_suspect_indexes()' =>
	  q{SELECT CASE WHEN (SELECT array_agg(indexrelid ORDER BY indexrelid) FROM perfopt.index_drop_suspect_indexes())
	                     IS NOT DISTINCT FROM
	                     (SELECT array_agg(indexrelid ORDER BY indexrelid) FROM pg_index
	                       WHERE indrelid IN (SELECT perfopt.index_drop_suspects()))
	                AND (SELECT coalesce(bool_and(
	                       i.tree_scans = (SELECT sum(s.idx_scan) FROM pg_partition_tree(i.indexrelid) p
	                                         JOIN pg_stat_user_indexes s ON s.indexrelid = p.relid)
	                       AND i.tree_bytes = (SELECT sum(pg_relation_size(p.relid)) FROM pg_partition_tree(i.indexrelid) p)
	                       AND i.tree_reads = (SELECT sum(t.seq_scan + coalesce(t.idx_scan, 0))
	                                             FROM pg_partition_tree(i.indrelid) p
	                                             JOIN pg_stat_user_tables t ON t.relid = p.relid)), false)
	                       FROM perfopt.index_drop_suspect_indexes() i WHERE i.relkind = 'I')
	           THEN 1 ELSE (SELECT 1 / count(*)::int FROM pg_class WHERE false) END},
	'perfopt.detect_anomalies(timestamp with time zone[],double precision[],double precision)' =>
	  "SELECT count(*) FROM perfopt.detect_anomalies($series)",
	'perfopt.forecast(timestamp with time zone[],double precision[],interval,interval)' =>
	  "SELECT count(*) FROM perfopt.forecast($series, interval '1 day')",
	'perfopt.cron_next(text,timestamp with time zone)' => q{SELECT perfopt.cron_next('*/5 * * * *', now())},
	'perfopt.simulate_requests(integer,text,double precision,bigint)' =>
	  q{SELECT count(*) FROM perfopt.simulate_requests(1000, 'round_robin')},
	'perfopt.hpa_desired_replicas(integer,double precision,double precision,double precision,integer,integer)' =>
	  'SELECT perfopt.hpa_desired_replicas(2, 80, 50)',
	'perfopt.capacity_recommendation(text,text,double precision,double precision,double precision,timestamp with time zone)' =>
	  q{SELECT count(*) FROM perfopt.capacity_recommendation('disk', '', 80, 100, 95, now() + interval '30 days')},
	'perfopt.capacity_cost(text,text,double precision,double precision,double precision,timestamp with time zone,timestamp with time zone,double precision)' =>
	  q{SELECT count(*) FROM perfopt.capacity_cost('disk', '', 80, 100, 95, now() + interval '30 days', now(), 0.9)},
	'perfopt.action_risk(text,double precision,double precision)' =>
	  q{SELECT count(*) FROM perfopt.action_risk('VACUUM public.probe', 8192, 1)});

# The functions of perfopt that role may execute and a plain role may not
# (with $plain true: those a plain role may), as regprocedure text
sub executable
{
	my ($role, $plain) = @_;
	return split /\n/, query(qq{
		SELECT p.oid::regprocedure FROM pg_proc p
		  JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
		  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'perfopt'
		 WHERE p.prorettype <> 'trigger'::regtype
		   AND has_function_privilege('$role', p.oid, 'EXECUTE')
		   AND has_function_privilege('probe', p.oid, 'EXECUTE') = $plain
		 ORDER BY 1});
}

# A call of the function, from %calls or with no arguments
sub call_of
{
	my ($function) = @_;
	return $calls{$function} if $calls{$function};
	my $all_default = query(qq{SELECT pronargs = pronargdefaults FROM pg_proc WHERE oid = '$function'::regprocedure});
	return undef unless $all_default eq 't';
	my ($name) = $function =~ /^([^(]+)/;
	return "SELECT count(*) FROM $name()";
}

my @public = executable('probe', 'true');
cmp_ok(scalar(@public), '>=', 10, scalar(@public) . ' functions of perfopt are PUBLIC\'s');
my $n = 0;
foreach my $function (@public)
{
	my $sql = call_of($function);
	ok(defined $sql, "$function has a call in this test") or next;
	$n++;
	query("CREATE ROLE fresh$n LOGIN");
	my ($out, $err) = as_role("fresh$n", $sql);
	unlike($err, qr/ERROR/, "a fresh login role calls $function") or diag($err);
	query("DROP ROLE fresh$n");
}

# 6. Nothing internal is PUBLIC's: no function docs/orchestrator.md lists as
# internal may be executed by a plain role
my ($internal) = slurp_file('docs/orchestrator.md') =~ /## Internal functions\n(.*?)\n## /s;
my @internal = map { /`([a-z_]+)\(/g } grep { /^\| `/ } split /\n/, ($internal // '');
cmp_ok(scalar(@internal), '>=', 15, scalar(@internal) . ' internal functions in docs/orchestrator.md');
my $names = join(',', @internal);
is(query(qq{SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
			WHERE p.pronamespace = 'perfopt'::regnamespace AND p.proname = ANY ('{$names}')
			  AND has_function_privilege('probe', p.oid, 'EXECUTE')}),
	'', 'none of them is granted to PUBLIC');

# 7. A dashboard's login role needs perfopt_reader only: every SQL query of
# the dashboards runs (Grafana's macros expanded as Grafana does for the
# last six hours), as do every view but the cache's outbox (its keys are row
# values, for superusers only) and every function granted to it; it may
# write nothing.  pg_monitor alone and perfopt_admin alone do the same.
query(q{CREATE ROLE grafana LOGIN IN ROLE perfopt_reader});
my $json = JSON::PP->new;
my @dashboard;
foreach my $file (glob('docs/grafana/*.json'))
{
	foreach my $panel (@{ $json->decode(slurp_file($file))->{panels} })
	{
		foreach my $target (@{ $panel->{targets} || [] })
		{
			next unless $target->{rawSql};
			my $sql = $target->{rawSql};
			$sql =~ s/\$__timeFilter\(([^)]+)\)/$1 BETWEEN now() - interval '6 hours' AND now()/g;
			$sql =~ s/\$__timeFrom\(\)/(now() - interval '6 hours')/g;
			$sql =~ s/\$__timeTo\(\)/now()/g;
			push @dashboard, [ "$file, panel \"$panel->{title}\"", $sql ];
		}
	}
}
cmp_ok(scalar(@dashboard), '>=', 30, scalar(@dashboard) . ' SQL queries in the dashboards');

# The dashboard queries that fail as role, with their errors
sub dashboard_failures
{
	my ($role) = @_;
	my @failed;
	foreach my $q (@dashboard)
	{
		my ($out, $err) = as_role($role, $q->[1]);
		push @failed, "$q->[0]: $err" if $err =~ /ERROR/;
	}
	return @failed;
}

foreach my $role ('grafana', 'mon', 'mallory')
{
	my @failed = dashboard_failures($role);
	is(scalar(@failed), 0, "every dashboard query runs as $role") or diag(join("\n", @failed));
}
# the check can fail: without one of perfopt_reader's grants, a panel fails
query('REVOKE SELECT ON perfopt.metrics FROM perfopt_reader');
my @without = dashboard_failures('grafana');
cmp_ok(scalar(@without), '>=', 1, 'without SELECT on perfopt.metrics, ' . scalar(@without) . ' dashboard queries fail');
like(join("\n", @without), qr/permission denied for table metrics/, 'with permission denied');
query('GRANT SELECT ON perfopt.metrics TO perfopt_reader');

my @views = split /\n/, query(q{
	SELECT c.oid::regclass FROM pg_class c
	  JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'perfopt'
	 WHERE c.relkind IN ('v', 'm') ORDER BY 1});
# cache_template_changes: internal, behind cache_advice (docs/cache.md)
my %private = ('perfopt.cache_outbox' => 1, 'perfopt.cache_template_changes' => 1);
cmp_ok(scalar(@views), '>=', 15, scalar(@views) . ' views');
foreach my $view (@views)
{
	my ($out, $err) = as_role('grafana', "SELECT count(*) FROM (SELECT * FROM $view) v");
	if ($private{$view}) { like($err, qr/42501/, "perfopt_reader may not read $view"); }
	else { unlike($err, qr/ERROR/, "perfopt_reader reads $view") or diag($err); }
}
my @reader = executable('grafana', 'false');
cmp_ok(scalar(@reader), '>=', 10, scalar(@reader) . ' functions granted to perfopt_reader and not to PUBLIC');
foreach my $function (@reader)
{
	my $sql = call_of($function);
	ok(defined $sql, "$function has a call in this test") or next;
	my ($out, $err) = as_role('grafana', $sql);
	unlike($err, qr/ERROR/, "perfopt_reader calls $function") or diag($err);
}
is(query(q{SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c
			WHERE c.relnamespace = 'perfopt'::regnamespace
			  AND has_table_privilege('grafana', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')}),
	'', 'perfopt_reader may write no table of perfopt');
($out, $err) = as_role('grafana', 'SELECT perfopt.run_optimization_cycle()');
like($err, qr/42501/, 'nor run an optimization cycle');

ok(!(slurp_file($node->logfile) =~ /terminated by signal/), 'no backend crashed');
$node->stop;
done_testing();
