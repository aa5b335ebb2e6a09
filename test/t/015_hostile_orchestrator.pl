# The orchestrator tried as hostile tenants would (issue 14): alice (a login
# role), mallory (a member of perfopt_admin) and dbo (a non-superuser that
# owns the database) try every route to more privileges through rules,
# actions and the launcher.  Each assertion checks that nothing was gained:
# no role became superuser, no one else's rule changed, no injected or
# unchecked statement ran, and the launcher's session was left as found.
# Each one fails on the main branch of before issue 14.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('hostile_orchestrator');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.sample_interval = 1s
perfopt.optimization_interval = 1d
autovacuum = off
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

# Run sql connected as role (so that session_user is that role); returns stderr
sub as
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => ['-U', $role]);
	return $err;
}

# Wait until the launcher has taken every queued action (a setup step, not
# an assertion: the assertions are what came of them)
sub actions_done
{
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM perfopt.action_log WHERE outcome IN ('queued', 'running')})
	  or die 'the launcher did not take the queued actions';
}

# Wait until a query returns true, or die
sub wait_for
{
	my ($sql, $what) = @_;
	$node->poll_query_until('postgres', $sql) or die "timed out waiting until $what";
}

sub superusers
{
	return query(q{SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles
				   WHERE rolsuper AND rolname IN ('alice', 'mallory', 'carol', 'dbo')}) // '';
}

query('CREATE EXTENSION perfopt CASCADE');
# the launcher runs only the queued actions and what the test enables
query('UPDATE perfopt.jobs SET enabled = false');
query(q{
CREATE ROLE alice LOGIN;
CREATE ROLE mallory LOGIN IN ROLE perfopt_admin;
CREATE ROLE carol LOGIN IN ROLE perfopt_admin;
CREATE ROLE dbo LOGIN;
ALTER DATABASE postgres OWNER TO dbo;
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA mallory AUTHORIZATION mallory;
CREATE SCHEMA carol AUTHORIZATION carol;
CREATE SCHEMA dbo AUTHORIZATION dbo;
CREATE TABLE public.probe (at timestamptz, path text, usr text, temp_schema oid, prepared bigint, advisory bigint);
GRANT ALL ON public.probe TO PUBLIC;});

# 1. Rule validation resolves nothing through the writer's search_path
my $err = as('mallory', q{
CREATE FUNCTION mallory.pg_has_role(name, regrole, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
SET search_path = mallory, pg_catalog, public;
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions, owner, dry_run)
VALUES ('m_overload', 'schedule', '* * * * *',
        '[{"type": "sql", "statement": "ALTER ROLE mallory SUPERUSER"}]', 'postgres', false);});
like($err, qr/may not make rules that run as postgres/,
	'an overload of pg_has_role does not pass a rule owned by postgres');

$err = as('mallory', q{
CREATE TEMP TABLE pg_roles AS SELECT oid, rolname, true AS rolsuper FROM pg_catalog.pg_roles;
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions, dry_run)
VALUES ('m_temp', 'schedule', '* * * * *',
        '[{"type": "sql", "statement": "SELECT perfopt.optimize_as(''postgres'', ''sql'', NULL, false, ''{\"statement\": \"ALTER ROLE mallory SUPERUSER\"}'')"}]',
        false);});
like($err, qr/only rules owned by a superuser may run sql actions/,
	'a temporary table named pg_roles does not make mallory a superuser to the check');

# 2. Rules are protected row by row: mallory sees and changes her own only
as('carol', q{
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions)
VALUES ('carol_rule', 'schedule', '0 3 * * *', '[{"type": "notify", "event": "carol"}]');});
query(q{
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions, owner)
VALUES ('su_rule', 'schedule', '0 3 * * *', '[{"type": "sql", "statement": "CHECKPOINT"}]', 'postgres');});
as('mallory', q{
INSERT INTO perfopt.automation_rules (name, trigger_type, schedule, actions)
VALUES ('m_own', 'schedule', '0 3 * * *', '[{"type": "notify", "event": "mallory"}]');});
$node->psql('postgres', q{SELECT count(*) FROM perfopt.automation_rules WHERE name IN ('carol_rule', 'su_rule')},
	extra_params => ['-U', 'mallory'], stdout => \my $seen);
is($seen, '0', "mallory does not see carol's or the superuser's rules");
as('mallory', q{UPDATE perfopt.automation_rules SET enabled = false WHERE name IN ('carol_rule', 'su_rule')});
as('mallory', q{UPDATE perfopt.automation_rules SET actions = '[]' WHERE name = 'carol_rule'});
as('mallory', q{DELETE FROM perfopt.automation_rules WHERE name IN ('carol_rule', 'su_rule')});
is(query(q{SELECT string_agg(name || ' ' || enabled || ' ' || owner || ' ' || actions::text, ', ' ORDER BY name)
			 FROM perfopt.automation_rules WHERE name IN ('carol_rule', 'su_rule')}),
	'carol_rule true carol [{"type": "notify", "event": "carol"}], su_rule true postgres [{"type": "sql", "statement": "CHECKPOINT"}]',
	"mallory can neither disable, change nor delete others' rules");
$err = as('mallory', q{
UPDATE perfopt.automation_rules
   SET enabled = false, owner = 'postgres',
       actions = '[{"type": "sql", "statement": "ALTER ROLE mallory SUPERUSER"}]'
 WHERE name = 'm_own';});
is(query(q{SELECT owner || ' ' || actions::text FROM perfopt.automation_rules WHERE name = 'm_own'}),
	'mallory [{"type": "notify", "event": "mallory"}]',
	'disabling a rule does not let its owner and actions change unchecked');

# 3. Code that an action reaches cannot claim another identity: mallory's
# index expression, run by the launcher's ANALYZE, asks for a superuser's sql
as('mallory', q{
CREATE TABLE mallory.log (msg text);
CREATE TABLE mallory.t (id int);
INSERT INTO mallory.t SELECT generate_series(1, 200);
CREATE FUNCTION mallory.grab() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM perfopt.optimize_as('postgres', 'sql', NULL, false, '{"statement": "ALTER ROLE mallory SUPERUSER"}');
EXCEPTION WHEN OTHERS THEN
    INSERT INTO mallory.log VALUES (SQLERRM);
END $$;
CREATE FUNCTION mallory.k(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM mallory.grab();
    RETURN $1;
END $$;
CREATE INDEX ON mallory.t (mallory.k(id));
SELECT perfopt.optimize('analyze', 'mallory.t', false);});
actions_done();
actions_done();    # and what its ANALYZE queued, if anything
is(query(q{SELECT count(*) FROM perfopt.action_log WHERE action = 'sql' AND owner = 'postgres'::regrole}), '0',
	"mallory's index function could not queue a superuser's sql from inside the launcher");
like(as('mallory', q{SELECT perfopt.optimize_as('postgres', 'sql', NULL, false, '{"statement": "SELECT 1"}')}),
	qr/permission denied for function optimize_as/, 'optimize_as takes no caller from anyone');

# rollback with another identity, and of another's action
as('carol', q{GRANT USAGE ON SCHEMA carol TO PUBLIC; CREATE TABLE carol.t (id int); SELECT perfopt.optimize('set_table_option', 'carol.t', false,
	'{"options": {"autovacuum_vacuum_scale_factor": 0.05}}');});
actions_done();
my $carol_action = query(q{SELECT id FROM perfopt.action_log WHERE owner = 'carol'::regrole AND outcome = 'succeeded'});
like(as('mallory', qq{SELECT perfopt.rollback_action_as('postgres', $carol_action)}),
	qr/permission denied for function rollback_action_as/, 'rollback_action_as takes no caller from anyone');
like(as('mallory', qq{SELECT perfopt.rollback_action($carol_action)}),
	qr/may not undo an action of carol/, "mallory cannot undo carol's action");

# 4. Time travel is for superusers
like(as('mallory', q{SELECT perfopt.run_optimization_cycle(now() + interval '1 day')}),
	qr/only a superuser may run an optimization cycle at another time than now/,
	'mallory cannot run a cycle in the future (schedules, cooldowns)');
like(as('mallory', q{SELECT perfopt.run_optimization_cycle(now() - interval '1 day')}),
	qr/only a superuser may run an optimization cycle at another time than now/,
	'nor in the past (schedules fired again)');

# 5. set_table_option: no injection through values, option names from a list
as('mallory', q{CREATE TABLE mallory.opts (id int);});
$err = as('mallory', q{SELECT perfopt.optimize('set_table_option', 'mallory.opts', false,
	'{"options": {"autovacuum_vacuum_scale_factor": "0.2), ENABLE ROW LEVEL SECURITY, SET (autovacuum_enabled = false"}}')});
like($err, qr/the value of autovacuum_vacuum_scale_factor must be a real/, 'an injected option value is refused');
$err = as('mallory', q{SELECT perfopt.optimize('set_table_option', 'mallory.opts', false,
	'{"options": {"autovacuum_enabled = false, fillfactor": 10}}')});
like($err, qr/autovacuum storage parameters only/, 'an injected option name is refused');
$err = as('mallory', q{SELECT perfopt.optimize('set_table_option', 'mallory.opts', false,
	'{"options": {"autovacuum_bogus": 1}}')});
like($err, qr/autovacuum storage parameters only/, 'only real autovacuum storage parameters are taken');
actions_done();
is(query(q{SELECT relrowsecurity::text || ' ' || coalesce(array_to_string(reloptions, ','), '')
			 FROM pg_class WHERE oid = 'mallory.opts'::regclass}), 'false ',
	'and nothing reached the table');

# 6. Actions are checked again when they are about to run.  The rows are
# what the cycle or optimize() queued before things changed (or what they
# would queue if fooled): the launcher must refuse them now
as('alice', q{CREATE TABLE alice.t (id int);});
query(q{
INSERT INTO perfopt.action_log (action, target, statement, dry_run, outcome, owner) VALUES
    ('analyze', 'alice.t', 'ANALYZE alice.t', false, 'queued', 'alice'),
    ('sql', NULL, 'CREATE TABLE mallory.sql_ran ()', false, 'queued', 'mallory'),
    ('analyze', 'mallory.t', 'CREATE TABLE mallory.kind_ran ()', false, 'queued', 'mallory'),
    ('vacuum_analyze', 'carol.t', 'VACUUM (ANALYZE) carol.t', false, 'queued', 'mallory');});
actions_done();
like(query(q{SELECT error FROM perfopt.action_log WHERE owner = 'alice'::regrole}),
	qr/refused: role alice may no longer run perfopt actions/, 'an owner no longer in perfopt_admin is refused');
like(query(q{SELECT error FROM perfopt.action_log WHERE statement = 'CREATE TABLE mallory.sql_ran ()'}),
	qr/refused: role mallory is no longer a superuser/, 'a sql action of a non-superuser is refused');
like(query(q{SELECT error FROM perfopt.action_log WHERE statement = 'CREATE TABLE mallory.kind_ran ()'}),
	qr/the statement of a analyze action is a CREATE TABLE/, 'a statement of another kind than its action is refused');
like(query(q{SELECT error FROM perfopt.action_log WHERE statement = 'VACUUM (ANALYZE) carol.t'}),
	qr/role mallory may not act on t, which role carol owns/, "an action on another's table is refused");
is(query(q{SELECT count(*) FROM pg_class WHERE relname IN ('sql_ran', 'kind_ran')}), '0',
	'none of their statements ran');

# 7. An index perfopt creates runs only built-in code or the table owner's:
# the statement the advisor used to make for dbo's table with alice's function
query(q{GRANT perfopt_admin TO dbo});
as('alice', q{
GRANT USAGE ON SCHEMA alice TO PUBLIC;
CREATE FUNCTION alice.k(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE alice SUPERUSER';
    END IF;
    RETURN $1;
END $$;});
as('dbo', q{CREATE TABLE dbo.orders (id int); INSERT INTO dbo.orders SELECT generate_series(1, 100);});
query(q{
INSERT INTO perfopt.action_log (action, target, statement, dry_run, outcome, owner) VALUES
    ('create_index', 'dbo.orders', 'CREATE INDEX CONCURRENTLY perfopt_orders_k ON dbo.orders (alice.k(id))',
     false, 'queued', 'dbo');});
actions_done();
like(query(q{SELECT error FROM perfopt.action_log WHERE target = 'dbo.orders'}),
	qr/the index on orders would run function \d+, which role alice owns/,
	"an index with alice's function on dbo's table is refused");
is(query(q{SELECT to_regclass('dbo.perfopt_orders_k') IS NULL}), 't', 'and not built');

# 8. An action leaves nothing behind in the launcher's session: a probe job
# records the session's state after superuser's actions that try
query(q{INSERT INTO perfopt.jobs (job_name, command, schedule) VALUES ('probe',
	'INSERT INTO public.probe SELECT pg_catalog.now(), pg_catalog.current_setting(''search_path''), current_user,
	        pg_catalog.pg_my_temp_schema(),
	        (SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_statements),
	        (SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks
	          WHERE locktype = ''advisory'' AND pid = pg_catalog.pg_backend_pid())',
	interval '1 second')});
for my $statement (q{SELECT pg_catalog.set_config('search_path', 'mallory, public', false)},
	q{CREATE TEMP TABLE leak (x int)}, q{SELECT pg_catalog.pg_advisory_lock(4242)},
	q{PREPARE leak AS SELECT 1})
{
	(my $literal = $statement) =~ s/'/''/g;
	query(qq{SELECT perfopt.optimize('sql', NULL, false, jsonb_build_object('statement', '$literal'))});
}
actions_done();
like(query(q{SELECT error FROM perfopt.action_log WHERE statement = 'CREATE TEMP TABLE leak (x int)'}),
	qr/cannot create temporary table within security-restricted operation/,
	'an action runs restricted: no temporary table');
my $after = query('SELECT now()');
wait_for(qq{SELECT count(*) > 0 FROM public.probe WHERE at > '$after'}, 'the probe ran after them');
is(query(qq{SELECT path !~ 'mallory' AND temp_schema = 0 AND prepared = 0 AND advisory = 0
			  FROM public.probe WHERE at > '$after' ORDER BY at LIMIT 1}), 't',
	"the launcher's session kept its search_path, and holds no temporary schema, prepared statement or advisory lock");

# 9. dbo owns the database: ALTER DATABASE ... SET search_path reaches the
# launcher; what perfopt's cycle calls must not resolve through it
as('dbo', q{
CREATE FUNCTION dbo.current_setting(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE dbo SUPERUSER';
    END IF;
    RETURN pg_catalog.current_setting($1);
END $$;
ALTER DATABASE postgres SET search_path = dbo, pg_catalog, public;});
query(q{UPDATE perfopt.jobs SET enabled = true, schedule = interval '1 second' WHERE job_name = 'optimization_cycle'});
my $launcher = query(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'perfopt launcher'});
query(qq{SELECT pg_terminate_backend($launcher)});
my $restart = query('SELECT now()');
wait_for(qq{SELECT count(*) >= 2 FROM perfopt.job_runs WHERE job_name = 'optimization_cycle'
	           AND started_at > '$restart' AND status <> 'running'},
	"the restarted launcher, in dbo's search_path, ran the cycle job");
query(q{ALTER DATABASE postgres RESET search_path});
is(query(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbo'}), 'f',
	"dbo's current_setting() did not run in the launcher's cycle");

# 10. No transaction block left open: the launcher goes on after an action
# that tries, and nothing was gained or crashed along the way
query(q{SELECT perfopt.optimize('sql', NULL, false, '{"statement": "BEGIN"}')});
actions_done();
like(query(q{SELECT error FROM perfopt.action_log WHERE statement = 'BEGIN'}),
	qr/an action may not control transactions/, 'transaction control is refused');
$after = query('SELECT now()');
ok($node->poll_query_until('postgres', qq{SELECT count(*) > 1 FROM public.probe WHERE at > '$after'}),
	'and the next jobs run in transactions of their own');
my $log = slurp_file($node->logfile);
is(superusers() . ($log =~ /terminated by signal/ ? ' and a crash' : ''), '',
	'no one became a superuser, nothing crashed');

done_testing();
