# Cache advice against a real Redis: the worker counts invalidations per key
# template; a template whose rows change often gets a shorter recommended
# TTL than one whose rows rarely change, and an adaptive strategy warms with
# it; reads per template come from an LFU sample (NULL and a reason without
# an LFU policy), without counting as the application's hits; and a plain
# login role reads none of it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PerfoptTest::Redis;

my $redis = PerfoptTest::Redis->new('advice');
my $port = $redis->port;

my $node = PostgreSQL::Test::Cluster->new('advice');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.redis_host = '127.0.0.1'
perfopt.redis_port = $port
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }

sub settle
{
	return $node->poll_query_until('postgres',
		'SELECT count(*) = 0 FROM perfopt.cache_invalidations');
}

my $rows = 50;
my $often_txns = 10;
query(qq{CREATE EXTENSION perfopt CASCADE;
		INSERT INTO perfopt.cache_strategies (name, memory_ttl, redis_ttl, adaptive, min_ttl, max_ttl)
		VALUES ('adapt', '1 minute', '1 hour', true, '100 milliseconds', '1 hour');
		CREATE TABLE often (id int PRIMARY KEY, v int);
		CREATE TABLE rarely (id int PRIMARY KEY, v int);
		INSERT INTO often SELECT i, 0 FROM generate_series(1, $rows) i;
		INSERT INTO rarely SELECT i, 0 FROM generate_series(1, $rows) i;
		ANALYZE often, rarely;
		SELECT perfopt.cache_watch('often', 'often:{id}', 'adapt');
		SELECT perfopt.cache_watch('rarely', 'rarely:{id}', 'adapt');});

# both change once, in one transaction; then only "often", again and again
query(q{BEGIN; UPDATE often SET v = v + 1; UPDATE rarely SET v = v + 1; COMMIT;});
query(q{UPDATE often SET v = v + 1}) for 2 .. $often_txns;
ok(settle(), 'the outbox drains');

is(query(q{SELECT string_agg(key_template || '=' || invalidations, ' ' ORDER BY key_template)
			  FROM (SELECT key_template, sum(invalidations) AS invalidations
					  FROM perfopt.cache_template_stats GROUP BY 1) s}),
	'often:{id}=' . ($rows * $often_txns) . " rarely:{id}=$rows",
	'the worker counts the invalidated keys of each template');

# the estimate is keys * span / invalidations: let the span grow
sleep 4;
my ($often_s, $rarely_s, $often_ttl, $rarely_ttl, $shorter) = split /\|/, query(q{
	SELECT o.s, r.s, o.t, r.t, o.ttl < r.ttl FROM
	  (SELECT extract(epoch FROM mean_change_interval) s, extract(epoch FROM recommended_ttl) t,
			  recommended_ttl ttl FROM perfopt.cache_advice WHERE key_template = 'often:{id}') o,
	  (SELECT extract(epoch FROM mean_change_interval) s, extract(epoch FROM recommended_ttl) t,
			  recommended_ttl ttl FROM perfopt.cache_advice WHERE key_template = 'rarely:{id}') r});
is($shorter, 't', "the often changed template gets the shorter TTL ($often_ttl s < $rarely_ttl s)");
my $ratio = $rarely_s / ($often_s || 1e-9);
ok(abs($ratio - $often_txns) <= 0.2 * $often_txns,
	"mean change intervals in the ratio of the invalidations per key ($ratio, expected $often_txns)");

# an adaptive strategy warms with that TTL (ceil to whole seconds)
query(q{SELECT perfopt.cache_warm('adapt', 'often:{id}', 'SELECT id FROM often');
		SELECT perfopt.cache_warm('adapt', 'rarely:{id}', 'SELECT id FROM rarely');});
my $expect = query(q{SELECT ceil(extract(epoch FROM perfopt.cache_strategy_ttl('adapt', 'often:{id}')))
					|| ' ' || ceil(extract(epoch FROM perfopt.cache_strategy_ttl('adapt', 'rarely:{id}')))});
my ($e_often, $e_rarely) = split / /, $expect;
my $pttl_often = $redis->cli('PTTL', 'often:1');
my $pttl_rarely = $redis->cli('PTTL', 'rarely:1');
ok($pttl_often > 0 && $pttl_often <= $e_often * 1000 && $pttl_rarely > $e_often * 1000
	  && $pttl_rarely <= $e_rarely * 1000,
	"cache_warm sets the adaptive TTLs ($pttl_often ms, $pttl_rarely ms; at most $e_often s, $e_rarely s)");
isnt($e_rarely, '3600', 'not the strategy\'s redis_ttl');

# without an LFU policy: NULL and why
my ($sampled, $reason) = split /\|/, query(q{SELECT sampled_keys, reason FROM perfopt.cache_advice
											 WHERE key_template = 'rarely:{id}'});
is($sampled, '', 'no read count without an LFU policy');
like($reason, qr/maxmemory-policy is noeviction/, 'and the reason says so');

# with LFU: a sample, reads from the LFU counter, and none of it counted as
# the application's hits
# (keys set before hold an LRU clock, which Redis would read as a counter)
$redis->cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lfu');
$redis->cli('FLUSHALL');
# (not adaptive now: keys that live an hour, whatever the machine's pace)
query(q{UPDATE perfopt.cache_strategies SET adaptive = false WHERE name = 'adapt';
		SELECT perfopt.cache_warm('adapt', 'rarely:{id}', 'SELECT id FROM rarely')});
$redis->cli('MGET', map { "rarely:$_" } 1 .. 5) for 1 .. 20;
my $hits_before = query('SELECT hits FROM perfopt.cache_metrics');
my ($sampled2, $reads, $freq) = split /\|/, query(q{SELECT sampled_keys, reads_per_key,
	(SELECT avg_lfu_freq FROM perfopt.cache_template_reads(100) WHERE key_template = 'rarely:{id}')
	FROM perfopt.cache_advice WHERE key_template = 'rarely:{id}'});
is($sampled2, $rows, 'the sample finds the warmed keys');
ok($reads > 0 && $freq > 5, "reads per key from the LFU counter ($reads, freq $freq)");
is(query('SELECT hits FROM perfopt.cache_metrics'), $hits_before,
	'the sample\'s OBJECT FREQ lookups are not the application\'s hits');

# a plain login role reads none of it; a reader the counts, never a key
query(q{CREATE ROLE plain LOGIN; CREATE ROLE dash LOGIN IN ROLE perfopt_reader;});
for my $what ('SELECT * FROM perfopt.cache_advice', 'SELECT * FROM perfopt.cache_template_reads(10)',
	'SELECT * FROM perfopt.cache_template_stats', 'SELECT * FROM perfopt.cache_template_changes',
	q{SELECT perfopt.cache_strategy_ttl('adapt', 'often:{id}')})
{
	my ($ret, $out, $err) = $node->psql('postgres', $what, extra_params => [ '-U', 'plain' ]);
	like($err, qr/permission denied/, "plain role: $what is refused");
}
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM perfopt.cache_advice',
	extra_params => [ '-U', 'dash' ]);
is($ret, 0, 'a perfopt_reader member reads cache_advice');
unlike($out, qr/(often|rarely):\d/, 'and sees no key');
($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM perfopt.cache_template_changes',
	extra_params => [ '-U', 'dash' ]);
like($err, qr/permission denied/, 'but not the internal view');

$node->stop;
$redis->stop;
done_testing();
