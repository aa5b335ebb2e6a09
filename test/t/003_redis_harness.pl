# The harness's Redis server, which later tests use: it starts on loopback,
# answers, survives a stop and a start, and honours a password.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PerfoptTest::Redis;

my $redis = PerfoptTest::Redis->new('harness');
is($redis->cli('PING'), 'PONG', 'redis-server started and answers on 127.0.0.1');
is($redis->cli('SET', 'lead:1', 'x'), 'OK', 'it stores a key');
is($redis->cli('GET', 'lead:1'), 'x', 'and returns it');

$redis->stop;
isnt($redis->cli('PING'), 'PONG', 'a stopped server does not answer');
$redis->start;
is($redis->cli('PING'), 'PONG', 'a restarted server answers again');
is($redis->cli('EXISTS', 'lead:1'), '0', 'keeping nothing across restarts');

my $locked = PerfoptTest::Redis->new('locked', password => 's3cret');
is($locked->cli('PING'), 'PONG', 'a server with a password answers the right one');
isnt($redis->port, $locked->port, 'each server has its own port');

done_testing();
