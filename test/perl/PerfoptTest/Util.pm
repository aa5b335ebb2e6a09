# Small helpers shared by perfopt's TAP tests.
#
#   use PerfoptTest::Util qw(http_get perfopt_node wait_for);
#   my $node = perfopt_node('name', "perfopt.sample_interval = 1s\n");
#   my ($status, $body) = http_get("http://127.0.0.1:$port/metrics", '-H', 'X: y');
#   wait_for('the first sample', sub { ... true when done ... });   # 30 s at most
#
# perfopt_node starts a cluster with pg_stat_statements and perfopt preloaded,
# no Redis (perfopt.redis_port = 1) and the extra settings given;
# http_get goes through curl (10 s at most) and gives the HTTP status, 0 when
# nothing answered, with the body; wait_for polls every 100 ms and reports
# (diag) what it timed out on.
package PerfoptTest::Util;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT_OK = qw(http_get perfopt_node wait_for);

sub perfopt_node
{
	my ($name, $settings) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'pg_stat_statements, perfopt'\nperfopt.redis_port = 1\n" . ($settings // ''));
	$node->start;
	return $node;
}

sub http_get
{
	my ($url, @curl) = @_;
	my $body = `curl -s -m 10 -w '\\n%{http_code}' @curl '$url'`;
	my ($content, $status) = $body =~ /^(.*)\n(\d+)$/s;
	return ($status // 0, $content // '');
}

sub wait_for
{
	my ($what, $check) = @_;
	for (1 .. 300)
	{
		return 1 if $check->();
		usleep(100_000);
	}
	diag("timed out waiting for $what");
	return 0;
}

1;
