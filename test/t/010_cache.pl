# The Redis cache layer against a real Redis: committed changes invalidate
# exactly their keys, within milliseconds, rolled-back ones nothing; the
# channel, patterns, warming and metrics (the application's hit rate, not
# perfopt's own lookups); and the faults: Redis stopped
# while writes go on, the worker killed with kill -9 while it drains, a
# wrong password and an unreachable Redis.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);
use PerfoptTest::Redis;

# keys survive a Redis restart, so that the outage test can tell
my $redis = PerfoptTest::Redis->new('cache', persist => 1);
my $port = $redis->port;

my $node = PostgreSQL::Test::Cluster->new('cache');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.redis_host = '127.0.0.1'
perfopt.redis_port = $port
restart_after_crash = on
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

sub worker_pid
{
	return query(q{SELECT pid FROM pg_stat_activity
				   WHERE backend_type = 'perfopt cache invalidator'});
}

# Wait until the outbox is empty: every committed invalidation confirmed
sub settle
{
	return $node->poll_query_until('postgres',
		'SELECT count(*) = 0 FROM perfopt.cache_invalidations');
}

my @seeded = ((map { "lead:$_" } 1 .. 32), (map { "agent:$_:leads" } 0 .. 4));

# Set every seeded key again
sub seed { $redis->cli('MSET', map { ($_, 'cached') } @seeded); }

# The seeded keys that are gone, sorted
sub gone
{
	my @values = split /\n/, $redis->cli('MGET', @seeded), -1;
	return join(' ', sort map { $values[$_] eq '' ? $seeded[$_] : () } 0 .. $#seeded);
}

ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE backend_type = 'perfopt cache invalidator'}),
	'the cache invalidator runs, with its own backend_type');

query(q{CREATE EXTENSION perfopt CASCADE;
		CREATE TABLE leads (id int PRIMARY KEY, agent_id int, name text);
		INSERT INTO leads SELECT i, i % 4, 'lead ' || i FROM generate_series(1, 20) i;
		SELECT perfopt.cache_watch('leads', 'lead:{id}', 'user_data');
		SELECT perfopt.cache_watch('leads', 'agent:{agent_id}:leads');});

# 1. Each kind of change invalidates exactly the keys of its old and new row
my @cases = (
	[ 'insert', q{INSERT INTO leads VALUES (21, 1, 'new')}, 'agent:1:leads lead:21' ],
	[ 'update, no key column changed', q{UPDATE leads SET name = 'x' WHERE id = 2},
	  'agent:2:leads lead:2' ],
	[ 'update of agent_id', q{UPDATE leads SET agent_id = 3 WHERE id = 2},
	  'agent:2:leads agent:3:leads lead:2' ],
	[ 'update of id', q{UPDATE leads SET id = 30 WHERE id = 5},
	  'agent:1:leads lead:30 lead:5' ],
	[ 'delete', q{DELETE FROM leads WHERE id = 6}, 'agent:2:leads lead:6' ],
	[ 'rollback, then a committed update',
	  q{BEGIN; UPDATE leads SET name = 'y' WHERE id = 7; DELETE FROM leads WHERE id = 9; ROLLBACK;
		UPDATE leads SET name = 'y' WHERE id = 8}, 'agent:0:leads lead:8' ],
	[ 'savepoints',
	  q{BEGIN; UPDATE leads SET name = 'z' WHERE id = 13;
		SAVEPOINT a; UPDATE leads SET name = 'z' WHERE id = 10; ROLLBACK TO a;
		SAVEPOINT b; UPDATE leads SET name = 'z' WHERE id = 11; RELEASE b; COMMIT},
	  'agent:1:leads agent:3:leads lead:11 lead:13' ],
	[ 'a statement over several rows', q{UPDATE leads SET name = 'w' WHERE agent_id = 0},
	  'agent:0:leads lead:12 lead:16 lead:20 lead:4 lead:8' ]);
foreach my $case (@cases)
{
	my ($name, $sql, $expected) = @$case;
	seed();
	query($sql);
	settle();
	is(gone(), $expected, "$name: exactly the expected keys are invalidated");
}

# A transaction that commits after a later one was drained is not skipped:
# the worker deletes by id range, and must leave the rows it cannot see yet
seed();
my $slow = $node->background_psql('postgres');
$slow->query_safe(q{BEGIN; UPDATE leads SET name = 'slow' WHERE id = 18});
query(q{UPDATE leads SET name = 'fast' WHERE id = 19});
settle();
is(gone(), 'agent:3:leads lead:19', 'a later transaction commits first: only its keys go');
$slow->query_safe('COMMIT');
$slow->quit;
settle();
is(gone(), 'agent:2:leads agent:3:leads lead:18 lead:19',
	'then the earlier one commits: its keys, queued with lower ids, go too');

# The commit queue carries a transaction's row up to 8 kB of keys; a larger
# one (1,000 keys of 9-10 bytes) is left to the worker's table batch, and is
# invalidated all the same; so is a small one committed after it
query(q{CREATE TABLE wide (id int PRIMARY KEY);
		SELECT perfopt.cache_watch('wide', 'wide:{id}')});
$redis->cli('EVAL', q{for i = 1, 1001 do redis.call('SET', 'wide:' .. i, 'x') end}, '0');
query(q{INSERT INTO wide SELECT generate_series(1, 1000)});
query(q{INSERT INTO wide VALUES (1001)});
settle();
is($redis->cli('EVAL', q{return #redis.call('keys', 'wide:*')}, '0'), '0',
	'a transaction of 1,000 keys, over the commit queue\'s 8 kB, and a small one after it: every key invalidated');
query(q{SELECT perfopt.cache_unwatch('wide'); DROP TABLE wide});

# 2. Latency: the key is gone within milliseconds of the commit, not at the
# next poll (the worker polls every second when nobody wakes it)
my @latencies;
for my $i (1 .. 5)
{
	$redis->cli('SET', 'lead:14', 'cached');
	my $t0;
	$node->safe_psql('postgres', q{UPDATE leads SET name = name || '.' WHERE id = 14});
	$t0 = time();
	usleep(1000) while $redis->cli('EXISTS', 'lead:14') ne '0' && time() - $t0 < 5;
	push @latencies, 1000 * (time() - $t0);
}
@latencies = sort { $a <=> $b } @latencies;
# the median: one slow round on a loaded machine is not a missed wake-up,
# which leaves most keys to the next poll, a second later
ok($latencies[2] < 300,
	sprintf('the commit wakes the worker: keys gone %.0f-%.0f ms after COMMIT returned, median %.0f '
		  . '(each includes a redis-cli start)', $latencies[0], $latencies[-1], $latencies[2]));

# 3. The channel: each batch is published for memory caches and CDN purgers
my ($sub_out, $sub_err) = ('', '');
my $sub = IPC::Run::start(
	[ 'redis-cli', '-h', '127.0.0.1', '-p', $port, 'SUBSCRIBE', 'perfopt:invalidate' ],
	'<', \undef, '>', \$sub_out, '2>', \$sub_err);
my $deadline = time() + 5;
$sub->pump_nb while $sub_out !~ /subscribe/ && time() < $deadline;
usleep(100_000);
query(q{UPDATE leads SET name = 'p' WHERE id = 15});
settle();
$deadline = time() + 5;
$sub->pump_nb while $sub_out !~ /lead:15/ && time() < $deadline;
like($sub_out, qr/\{"keys":\["agent:3:leads","lead:15"\]\}/,
	'the batch is published on perfopt:invalidate as JSON');
$sub->kill_kill;

# 4. Duplicates within a batch are sent once
my $sent_before = query('SELECT invalidations_sent FROM perfopt.cache_metrics');
query(q{BEGIN; UPDATE leads SET name = 'd1' WHERE id = 17; UPDATE leads SET name = 'd2' WHERE id = 17;
		UPDATE leads SET name = 'd3' WHERE id = 17; COMMIT});
settle();
is(query('SELECT invalidations_sent FROM perfopt.cache_metrics') - $sent_before, 2,
	'six queued keys, two of them distinct: two invalidations sent');

# 5. Pattern invalidation with SCAN, transactional
seed();
query(q{BEGIN; SELECT perfopt.cache_invalidate('lead:*'); ROLLBACK});
query(q{SELECT perfopt.cache_invalidate('agent:*:leads')});
settle();
is(gone(), join(' ', sort map { "agent:$_:leads" } 0 .. 4),
	'cache_invalidate(pattern) removes the matching keys, a rolled-back one nothing');
query('TRUNCATE leads');
settle();
is($redis->cli('EVAL', q{return #redis.call('keys', 'lead:*')}, '0'), '0',
	'TRUNCATE invalidates every key of the watched templates');
query(q{INSERT INTO leads SELECT i, i % 4, 'lead ' || i FROM generate_series(1, 20) i});

# 6. Warming: one key per row, the row as JSON, the strategy's TTL
is(query(q{SELECT perfopt.cache_warm('user_data', 'lead:{id}',
			'SELECT id, name FROM leads WHERE id <= 3 ORDER BY id')}),
	'3', 'cache_warm sets one key per row');
is($redis->cli('GET', 'lead:2'), '{"id":2,"name":"lead 2"}', 'the value is the row as JSON');
my $ttl = $redis->cli('TTL', 'lead:2');
ok($ttl > 3500 && $ttl <= 3600, "with user_data's Redis TTL of 1 hour ($ttl s)");
settle();

# Re-warming: the launcher's cache_rewarm job sets again the keys Redis
# counts as read most (OBJECT FREQ, under an LFU policy) before they expire
$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lfu');
query(q{INSERT INTO perfopt.cache_strategies (name, memory_ttl, redis_ttl)
		VALUES ('short', '10 s', '40 s');
		UPDATE perfopt.jobs SET schedule = '1 s' WHERE job_name = 'cache_rewarm'});
is(query(q{SELECT perfopt.cache_warm('short', 'hot:{id}', 'SELECT id, name FROM leads WHERE id <= 3',
			keep_warm => true)}), '3', 'cache_warm with keep_warm sets the keys and registers the query');
# only keys read more than the others count; set before the keys come due, so
# that the job (every second) cannot re-warm them all in between
query(q{UPDATE perfopt.cache_warmers SET min_freq = 8});
# EXPIRE counts as an access too: every key's LFU counter goes from 5 to 6
$redis->cli('EXPIRE', "hot:$_", '6') for 1 .. 3;
$redis->cli('EVAL', q{for i = 1, 300 do redis.call('GET', 'hot:1') end}, '0');
my ($freq1, $freq2) = map { $redis->cli('OBJECT', 'FREQ', "hot:$_") } 1, 2;
note "LFU counters: hot:1 $freq1, hot:2 $freq2";
ok($node->poll_query_until('postgres',
		q{SELECT last_rewarmed = 1 FROM perfopt.cache_warmers WHERE key_template = 'hot:{id}'}),
	'the job re-warms one key');
ok($redis->cli('TTL', 'hot:1') > 30, 'the key read most, with its full TTL again');
ok($redis->cli('TTL', 'hot:2') <= 6, 'a key nobody read is left to expire');
query(q{UPDATE perfopt.jobs SET enabled = false WHERE job_name = 'cache_rewarm'});
$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
my ($rewarm_err) = ('');
$node->psql('postgres', 'SELECT perfopt.cache_rewarm()', stderr => \$rewarm_err);
like($rewarm_err, qr/refused OBJECT FREQ.*\n.*HINT:  Re-warming needs an LFU policy/,
	'without an LFU policy in Redis, cache_rewarm says what to set');
# the query runs as the role that registered it, which must still be a
# superuser: a warmer whose owner is not is skipped, never run as another
query(q{CREATE ROLE not_super; UPDATE perfopt.cache_warmers SET owner = 'not_super'});
$rewarm_err = '';
my $rewarmed = $node->psql('postgres', 'SELECT perfopt.cache_rewarm()', stderr => \$rewarm_err);
like($rewarm_err, qr/WARNING:  cache warmer \d+ is skipped: its owner is no longer a superuser/,
	'a warmer whose owner is no longer a superuser is skipped, with a warning');
query(q{DELETE FROM perfopt.cache_warmers; DROP ROLE not_super});

# 7. Metrics: Redis's hit and miss counters, less perfopt's own lookups
# (the re-warming above asked OBJECT FREQ and TTL, which Redis counts)
sub redis_stats
{
	return map { /(\d+)/ ? $1 : -1 }
	  map { my $f = $_; (grep { /^$f:/ } split /\r?\n/, $redis->cli('INFO', 'stats'))[0] }
	  qw(keyspace_hits keyspace_misses);
}
$redis->cli('GET', 'lead:1') for 1 .. 3;
$redis->cli('GET', 'no:such:key');
my ($hits, $misses) = redis_stats();
my $metrics = query(q{SELECT hits, misses, hit_rate_pct, keys > 0, invalidations_sent > 0,
						  outbox_depth, last_error IS NULL, worker_connected, own_hits, own_misses
						FROM perfopt.cache_metrics});
my @m = split /\|/, $metrics;
cmp_ok($m[8], '>', 0, "perfopt's own lookups are counted ($m[8] hits, $m[9] misses)");
ok($m[0] + $m[8] >= $hits && $m[1] + $m[9] >= $misses && $m[0] + $m[8] <= $hits + 2 && $m[1] + $m[9] <= $misses + 2,
	"cache_metrics reports Redis's hits and misses less those ($m[0] + $m[8], $m[1] + $m[9]; INFO said $hits, $misses)");
ok(abs($m[2] - 100 * $m[0] / ($m[0] + $m[1])) < 0.01, "and the hit rate ($m[2]%)");
is(join('|', @m[3 .. 7]), 't|t|0|t|t', 'keys, invalidations sent, an empty outbox, no error');

# An idle, warmed cache keeps the application's hit rate.  The application
# reads 30 times a key that is there and 10 times one that is not (75%);
# then only the cache_rewarm job runs, every second, and asks OBJECT FREQ
# and TTL of each warmed key: hits for Redis, which drift its own rate up.
$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lfu');
my $warmed = query(q{SELECT perfopt.cache_warm('user_data', 'idle:{id}', 'SELECT id, name FROM leads', keep_warm => true)});
cmp_ok($warmed, '>=', 10, "$warmed keys warmed and kept warm");
$redis->cli('CONFIG', 'RESETSTAT');
$redis->cli('EVAL', q{for i = 1, 30 do redis.call('GET', 'idle:1') end
					  for i = 1, 10 do redis.call('GET', 'idle:none') end}, '0');
is(query('SELECT hits, misses, hit_rate_pct FROM perfopt.cache_metrics'), '30|10|75',
	"the application's 30 hits and 10 misses: 75%");
query(q{UPDATE perfopt.jobs SET enabled = true, schedule = '1 s' WHERE job_name = 'cache_rewarm'});
# five rounds of the job: two lookups of each key each
my $rounds_done = 0;
for (1 .. 300)
{
	my ($h) = redis_stats();
	if ($h >= 30 + 5 * 2 * $warmed) { $rounds_done = 1; last; }
	usleep(100_000);
}
ok($rounds_done, 'the job ran five rounds');
query(q{UPDATE perfopt.jobs SET enabled = false WHERE job_name = 'cache_rewarm'});
# let a round under way finish: Redis's counters stop moving
my @last = (-1);
for (1 .. 50)
{
	my @now = redis_stats();
	last if "@now" eq "@last";
	@last = @now;
	usleep(500_000);
}
my ($raw_hits, $raw_misses) = @last;
my $raw_rate = 100 * $raw_hits / ($raw_hits + $raw_misses);
cmp_ok($raw_rate, '>', 90, sprintf("Redis's own counters drifted: %d hits, %d misses, %.1f%%",
		$raw_hits, $raw_misses, $raw_rate));
is(query('SELECT hits, misses, hit_rate_pct FROM perfopt.cache_metrics'), '30|10|75',
	"cache_metrics still says the application's 30 hits, 10 misses, 75%");
is(query('SELECT own_hits, own_misses FROM perfopt.cache_metrics'), ($raw_hits - 30) . '|' . ($raw_misses - 10),
	"and counts the rest as perfopt's own lookups");
query(q{DELETE FROM perfopt.cache_warmers});
$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');

# 8. Redis stopped while writes go on, then restarted: nothing lost
my $pid = worker_pid();
seed();
$redis->cli('SET', 'untouched', 'kept');
$redis->stop;
query(qq{UPDATE leads SET name = 'outage $_' WHERE id = $_}) for 1 .. 20;
ok($node->poll_query_until('postgres',
		q{SELECT last_error LIKE 'could not connect to Redis at 127.0.0.1:%' AND outbox_depth = 40
			FROM perfopt.cache_metrics}),
	'Redis down: the error is in cache_metrics and all 40 invalidations stay queued');
usleep(1_500_000);
is(worker_pid(), $pid, 'the worker retries without dying');
$redis->start;
settle();
is(gone(), join(' ', sort((map { "lead:$_" } 1 .. 20), map { "agent:$_:leads" } 0 .. 3)),
	'Redis back: every key written during the outage is invalidated');
is($redis->cli('GET', 'untouched'), 'kept', '(the keys that were in Redis survived its restart)');
my $log = slurp_file($node->logfile);
my $logged = () = $log =~ /perfopt cache invalidator: could not connect to Redis/g;
is($logged, 1, 'the outage is logged once, not once per retry');
like($log, qr/reached Redis at 127\.0\.0\.1:$port again/, 'and the recovery is logged');

# 9. kill -9 of the worker while it drains: after the restart, nothing lost.
# 1,000 transactions of 10 rows, one outbox row each; batches of 10 keys
# (one row) at most every 5 ms, so that the drain takes seconds
query(q{CREATE TABLE big (id int PRIMARY KEY);
		SELECT perfopt.cache_watch('big', 'big:{id}')});
$node->append_conf('postgresql.conf', "perfopt.cache_batch_size = 10\nperfopt.cache_batch_delay = 5");
$node->reload;
$redis->cli('EVAL', q{for i = 1, 10000 do redis.call('SET', 'big:' .. i, 'x') end}, '0');
$pid = worker_pid();
query(q{DO $$ BEGIN
		  FOR i IN 0..999 LOOP
			INSERT INTO big SELECT generate_series(10 * i + 1, 10 * i + 10); COMMIT;
		  END LOOP;
		END $$});
is(query('SELECT count(*) FROM perfopt.cache_invalidations WHERE cardinality(keys) <> 10'), '0',
	'each transaction queued one outbox row with its 10 keys');
my $depth;
$deadline = time() + 10;
do { $depth = query('SELECT sum(cardinality(keys)) FROM perfopt.cache_invalidations') // 0 }
  while $depth == 10000 && time() < $deadline;
kill 'KILL', $pid;
ok($depth > 0 && $depth < 10000, "kill -9 of the worker with $depth of 10000 invalidations left");
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE backend_type = 'perfopt cache invalidator'}),
	'the server restarts, and the worker with it');
settle();
is($redis->cli('EVAL', q{return #redis.call('keys', 'big:*')}, '0'), '0',
	'after the restart every one of the 10000 keys is invalidated');
$node->append_conf('postgresql.conf', "perfopt.cache_batch_size = 1000\nperfopt.cache_batch_delay = 2");
$node->reload;

# 9b. A server crash (kill -9 of a backend: every process is reset and the
# WAL replayed) after transactions committed and before their keys went out
# (Redis is down): after crash recovery the outbox still holds them, and
# they go once Redis is back
seed();
$redis->stop;
query(q{BEGIN; UPDATE leads SET name = 'crash' WHERE id IN (1, 2, 3);
		INSERT INTO big VALUES (10001); COMMIT});
query(q{UPDATE leads SET agent_id = 4 WHERE id = 5});
is(query(q{SELECT count(*) || ' ' || sum(cardinality(keys)) FROM perfopt.cache_invalidations}), '2 10',
	'two transactions queued: two outbox rows, 10 keys');
my $victim = $node->background_psql('postgres');
my $victim_pid = $victim->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $victim_pid;
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE backend_type = 'perfopt cache invalidator'}),
	'kill -9 of a backend: the server resets every process and recovers');
like(slurp_file($node->logfile), qr/\(PID $victim_pid\) was terminated by signal 9/,
	'(the crash is in the log)');
eval { $victim->quit };
is(query('SELECT count(*) FROM perfopt.cache_invalidations'), '2',
	'after kill -9 of the server and crash recovery, both rows are still queued');
$redis->start;
settle();
is(gone(), 'agent:1:leads agent:2:leads agent:3:leads agent:4:leads lead:1 lead:2 lead:3 lead:5',
	'Redis back: every key of the committed transactions is invalidated');
query(q{UPDATE leads SET agent_id = 1 WHERE id = 5});
settle();

# 10. A wrong password: a clear error, in cache_metrics and the log, no
# crash loop, and never the password
my $locked = PerfoptTest::Redis->new('locked', password => 'Right-s3cret');
my $lport = $locked->port;
$node->append_conf('postgresql.conf', qq{
perfopt.redis_port = $lport
perfopt.redis_password = 'Wr0ng-s3cret'
});
$node->reload;
$pid = worker_pid();
my $starts = () = slurp_file($node->logfile) =~ /perfopt cache invalidator started/g;
$locked->cli('SET', 'lead:3', 'cached');
query(q{UPDATE leads SET name = 'auth' WHERE id = 3});
ok($node->poll_query_until('postgres',
		q{SELECT last_error LIKE 'could not log in to Redis at 127.0.0.1:%WRONGPASS%'
			FROM perfopt.cache_metrics}),
	'a wrong password: cache_metrics says the login was refused');
usleep(2_500_000);
is(worker_pid(), $pid, 'the worker keeps its pid: no crash loop');
$log = slurp_file($node->logfile);
is(scalar(() = $log =~ /perfopt cache invalidator started/g), $starts, 'and was not restarted');
like($log, qr/perfopt cache invalidator: could not log in to Redis at 127\.0\.0\.1:$lport: WRONGPASS/,
	'the log says why');
unlike($log, qr/Wr0ng-s3cret|Right-s3cret/, 'the log never shows a password');
unlike(query('SELECT last_error FROM perfopt.cache_metrics'), qr/s3cret/,
	'nor does cache_metrics');
is(query('SHOW perfopt.redis_password'), '********', 'SHOW masks the password, even for a superuser');
is($locked->cli('GET', 'lead:3'), 'cached', 'nothing was invalidated without logging in');

$node->append_conf('postgresql.conf', "perfopt.redis_password = 'Right-s3cret'");
$node->reload;
settle();
is($locked->cli('EXISTS', 'lead:3'), '0', 'the right password: the queued key is invalidated');

# 11. An unreachable Redis: a clear error, quickly
my $nobody = PostgreSQL::Test::Cluster::get_free_port();
$node->append_conf('postgresql.conf', "perfopt.redis_port = $nobody");
$node->reload;
query(q{UPDATE leads SET name = 'gone' WHERE id = 4});
ok($node->poll_query_until('postgres',
		qq{SELECT last_error = 'could not connect to Redis at 127.0.0.1:$nobody: Connection refused'
			FROM perfopt.cache_metrics}),
	'an unreachable Redis: cache_metrics says connection refused');
my $t0 = time();
my ($stderr) = ('');
$node->psql('postgres', q{SELECT perfopt.cache_warm('user_data', 'lead:{id}', 'SELECT 1 AS id')},
	stderr => \$stderr);
like($stderr, qr/ERROR:  could not connect to Redis at 127\.0\.0\.1:\d+: Connection refused/,
	'cache_warm fails with a clear error');
is(worker_pid(), $pid, 'the worker is still the same process');

# 12. DROP and CREATE EXTENSION: the worker follows
$node->append_conf('postgresql.conf', "perfopt.redis_port = $port\nperfopt.redis_password = ''");
$node->reload;
query(q{DROP EXTENSION perfopt CASCADE; CREATE EXTENSION perfopt;
		SELECT perfopt.cache_watch('leads', 'lead:{id}')});
$redis->cli('SET', 'lead:5', 'cached');
query(q{UPDATE leads SET name = 'again' WHERE id = 5});
settle();
is($redis->cli('EXISTS', 'lead:5'), '0', 'after DROP and CREATE EXTENSION invalidations flow again');

# 13. An update from 1.0.0 with a watched table.  Between the new library's
# install and ALTER EXTENSION UPDATE the 1.0.0 outbox gets one row per key;
# the update converts them and re-creates the table's triggers
query(q{DROP EXTENSION perfopt CASCADE; CREATE EXTENSION perfopt VERSION '1.0.0';
		SELECT perfopt.cache_watch('leads', 'lead:{id}')});
$redis->cli('MSET', 'lead:6', 'cached', 'lead:7', 'cached', 'lead:8', 'cached');
query(q{BEGIN; UPDATE leads SET name = 'v1' WHERE id IN (6, 7); COMMIT});
is(query(q{SELECT string_agg(key, ' ' ORDER BY key) FROM perfopt.cache_invalidations}), 'lead:6 lead:7',
	'under the 1.0.0 schema this library queues one row per key in the old outbox');
query('ALTER EXTENSION perfopt UPDATE');
is(query(q{SELECT string_agg(tgname, ' ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'leads'::regclass}),
	'perfopt_cache_invalidate perfopt_cache_truncate',
	'the update re-creates the watched table\'s triggers');
query(q{UPDATE leads SET name = 'v2' WHERE id = 8});
settle();
is(join(' ', map { $redis->cli('EXISTS', "lead:$_") } 6 .. 8), '0 0 0',
	'the keys queued before the update and after it are all invalidated');

done_testing();
