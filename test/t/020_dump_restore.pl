# A database with perfopt goes through pg_dump -Fc and pg_restore into a
# fresh database of the same cluster (roles are cluster-wide), as a user
# moves or restores one: what users wrote (rules, jobs, strategies, watches,
# registered instances, warmers) comes back once, the seeded rows are not
# doubled, ids go on where they were, the trigger of a watch still queues
# invalidations, and the row-level security of rules is in force.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump_restore');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
});
$node->start;

sub query { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); }

# Run sql in db connected as role; returns (stdout, stderr)
sub as
{
	my ($db, $role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, $sql, extra_params => ['-U', $role]);
	return ($out, $err);
}

query('postgres', 'CREATE DATABASE src');
query('src', q{
CREATE EXTENSION perfopt CASCADE;
CREATE ROLE mallory LOGIN IN ROLE perfopt_admin;
CREATE ROLE carol LOGIN IN ROLE perfopt_admin;
CREATE TABLE public.leads (id int PRIMARY KEY, email text);
INSERT INTO public.leads VALUES (1, 'a@example.com'), (2, 'b@example.com');
GRANT SELECT ON public.leads TO carol;});

# what users write, each the way they write it (a rule on a metric the
# application records, too: the restore loads it before any such record)
my ($out, $err) = as('src', 'mallory', q{
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, entity, condition, threshold, actions)
VALUES ('mallory_cpu', 'threshold', 'cpu_usage_pct', '', 'greater_than', 90,
        '[{"type": "notify", "event": "mallory_cpu"}]');});
is($err, '', 'a perfopt_admin member writes a rule') or diag($err);
($out, $err) = as('src', 'carol', q{
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, entity, condition, threshold, actions)
VALUES ('carol_memory', 'threshold', 'memory_used_pct', '', 'greater_than', 95,
        '[{"type": "notify", "event": "carol_memory"}]');});
is($err, '', 'and so does another') or diag($err);
query('src', q{
SELECT perfopt.record_metrics(now(), ARRAY['queue_depth'], ARRAY[''], ARRAY[3]);
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, entity, condition, threshold, actions)
VALUES ('queue_depth', 'threshold', 'queue_depth', '', 'greater_than', 90, '[]');
INSERT INTO perfopt.jobs (job_name, command, schedule) VALUES ('analyze_leads', 'ANALYZE public.leads', '1 day');
INSERT INTO perfopt.cache_strategies (name, memory_ttl, redis_ttl, priority, description)
VALUES ('lead_pages', '1 minute', '5 minutes', 40, 'rendered lead pages');
SELECT perfopt.cache_watch('public.leads', 'lead:{id}', 'lead_pages');
SELECT perfopt.cache_watch('public.leads', 'lead_email:{email}', 'lead_pages');
SELECT perfopt.register_instance('replica1', 'tcp', '127.0.0.1:1', 2);
INSERT INTO perfopt.cache_warmers (strategy, key_template, query, owner)
VALUES ('lead_pages', 'lead:{id}', 'SELECT id, email FROM public.leads', 'carol');
DELETE FROM perfopt.cache_invalidations;});

# One line per row users wrote, and the seeded rows counted
my $users_rows = q{
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
    SELECT 'rule ' || id || ' ' || name || ' ' || owner || ' ' || metric || ' ' || actions::text AS line
      FROM perfopt.automation_rules WHERE NOT builtin
    UNION ALL SELECT 'job ' || job_name || ' ' || command || ' ' || schedule FROM perfopt.jobs WHERE NOT builtin
    UNION ALL SELECT 'strategy ' || name || ' ' || memory_ttl || ' ' || redis_ttl || ' ' || priority
      FROM perfopt.cache_strategies WHERE NOT builtin
    UNION ALL SELECT 'watch ' || rel::regclass::text || ' ' || key_template || ' ' || strategy || ' ' || columns::text
      FROM perfopt.cache_watches
    UNION ALL SELECT 'instance ' || name || ' ' || kind || ' ' || address || ' ' || weight
      FROM perfopt.instance_registry
    UNION ALL SELECT 'warmer ' || id || ' ' || key_template || ' ' || query || ' ' || owner
      FROM perfopt.cache_warmers
    UNION ALL SELECT 'seeded rules ' || count(*) FROM perfopt.automation_rules WHERE builtin
    UNION ALL SELECT 'seeded jobs ' || count(*) FROM perfopt.jobs WHERE builtin
    UNION ALL SELECT 'seeded strategies ' || count(*) FROM perfopt.cache_strategies WHERE builtin) l};
my $before = query('src', $users_rows);
like($before, qr/rule \d+ mallory_cpu mallory.*\n.*rule \d+ carol_memory carol/s, 'the source holds the rows');

my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ], 'pg_dump -Fc');
query('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ],
	'pg_restore into a fresh database, without an error');

is(query('dst', $users_rows), $before,
	'what users wrote comes back, once, with its ids and owners, and the seeded rows are not doubled');
is(query('dst', "SELECT extversion FROM pg_extension WHERE extname = 'perfopt'"),
	query('src', "SELECT extversion FROM pg_extension WHERE extname = 'perfopt'"), 'at the same version');

# the day's partition of perfopt.metrics (pg_dump keeps it: perfopt made it
# after CREATE EXTENSION) comes back with its rows and one index
is(query('dst', q{SELECT count(*) || ' ' || (SELECT count(*) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid
												WHERE h.inhparent = 'perfopt.metrics'::regclass
												  AND i.indrelid <> 'perfopt.metrics_default'::regclass)
				  FROM perfopt.metrics WHERE metric = 'queue_depth'}),
	'1 1', 'the daily partition of metrics comes back with its rows and one index');

# ids go on after the restored ones (their sequences are dumped too)
($out, $err) = as('dst', 'mallory', q{
INSERT INTO perfopt.automation_rules (name, trigger_type, metric, entity, condition, threshold, actions)
VALUES ('mallory_cpu_2', 'threshold', 'cpu_usage_pct', '', 'greater_than', 95, '[]');});
is($err, '', 'a new rule after the restore gets a new id') or diag($err);
(undef, $out, $err) = $node->psql('dst', q{
INSERT INTO perfopt.cache_warmers (strategy, key_template, query, owner)
VALUES ('lead_pages', 'lead_email:{email}', 'SELECT id, email FROM public.leads', 'carol');});
is($err, '', 'and so does a new warmer') or diag($err);

# the watch's triggers came back once, and still queue the keys
is(query('dst', q{SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger
				  WHERE tgrelid = 'public.leads'::regclass}),
	'perfopt_cache_invalidate,perfopt_cache_truncate',
	'the watched table has its two triggers, once');
query('dst', "UPDATE public.leads SET email = 'c\@example.com' WHERE id = 1");
is(query('dst', 'SELECT string_agg(k, \',\' ORDER BY k) FROM perfopt.cache_invalidations, unnest(keys) k'),
	'lead:1,lead_email:a@example.com,lead_email:c@example.com',
	'a change to the watched table queues its keys after the restore');
query('dst', "SELECT perfopt.cache_unwatch('public.leads', 'lead_email:{email}')");
like(query('dst', q{SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'public.leads'::regclass
					AND tgname = 'perfopt_cache_invalidate'}),
	qr/EXECUTE FUNCTION perfopt\.cache_trigger\('lead:\{id\}'\)$/,
	'and cache_unwatch manages the restored triggers');

# row-level security of rules is in force in the restored database
is(query('dst', "SELECT relrowsecurity FROM pg_class WHERE oid = 'perfopt.automation_rules'::regclass"),
	't', 'rules have row-level security after the restore');
($out, $err) = as('dst', 'mallory', 'SELECT string_agg(name, \',\' ORDER BY name) FROM perfopt.automation_rules WHERE NOT builtin');
is($out, 'mallory_cpu,mallory_cpu_2', 'a perfopt_admin member sees its own rules, not another member\'s');
($out, $err) = as('dst', 'mallory', q{UPDATE perfopt.automation_rules SET enabled = false WHERE name = 'carol_memory' RETURNING name});
is($out, '', 'and cannot change another member\'s rule');
($out, $err) = as('dst', 'mallory', q{UPDATE perfopt.automation_rules SET owner = 'carol' WHERE name = 'mallory_cpu'});
like($err, qr/row-level security|may not/, 'nor give its rule to another member');
($out, $err) = as('dst', 'carol', q{UPDATE perfopt.automation_rules SET threshold = 97 WHERE name = 'carol_memory' RETURNING name});
is($out, 'carol_memory', 'while that member changes its own');
is(query('dst', q{SELECT count(*) FROM perfopt.automation_rules WHERE name = 'carol_memory' AND enabled AND threshold = 97}),
	'1', 'and only its own change took');

ok(slurp_file($node->logfile) !~ /terminated by signal/, 'no backend crashed');
$node->stop;
done_testing();
