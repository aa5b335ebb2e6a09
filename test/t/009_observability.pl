# Observability with real servers on loopback: the exporter is off by
# default; once on, promtool accepts its exposition, a real Prometheus
# scrapes it (with basic authentication) and its API returns perfopt's
# series; wrong credentials are refused and the password never logged;
# idle clients do not stall it; a real Alertmanager receives an incident as
# an alert and sees it resolved; every SQL query of the Grafana dashboards
# runs against a live perfopt database.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IPC::Run qw(start);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PerfoptTest::Util qw(http_get wait_for);
use Time::HiRes qw(usleep);

# scripts/test.sh installs them: a missing one is a broken set-up, not a reason to skip
foreach my $tool ('prometheus', 'promtool', 'prometheus-alertmanager', 'curl')
{
	BAIL_OUT("$tool is not installed (Debian packages prometheus, prometheus-alertmanager, curl)")
	  unless system("command -v $tool >/dev/null 2>&1") == 0;
}

my $node = PostgreSQL::Test::Cluster->new('observability');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_stat_statements, perfopt'
perfopt.sample_interval = 1s
perfopt.incident_hold = 0
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION perfopt CASCADE');

sub query { return $node->safe_psql('postgres', $_[0]); }

sub reload
{
	my ($setting, $value) = @_;
	query("ALTER SYSTEM SET $setting = '$value'");
	query('SELECT pg_reload_conf()');
}

# GET a URL: (HTTP status, body)

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $url = "http://127.0.0.1:$port/metrics";
my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;

# 1. Off by default
is(query('SHOW perfopt.metrics_listen'), '', 'perfopt.metrics_listen is empty by default');
my ($status) = http_get($url);
is($status, '000', 'nothing is served');
unlike(slurp_file($node->logfile), qr/serves \/metrics/, 'nothing listens');

# 2. On: the exposition is valid and full
reload('perfopt.metrics_listen', "127.0.0.1:$port");
ok(wait_for('the endpoint', sub { (http_get($url))[0] eq '200' }), 'after a reload it serves /metrics');
my $body;
wait_for('a sample in the metrics', sub {
	$body = (http_get($url))[1];
	$body =~ /^perfopt_connections\{state="active"\} \d/m });
like($body, qr/^perfopt_up 1$/m, 'perfopt_up');
like($body, qr/^perfopt_statement_latency_seconds_bucket\{le="\+Inf"\} \d+$/m, 'a latency histogram');
like($body, qr/^perfopt_connections\{state="active"\} \d/m, 'the sampler\'s metrics, labelled');
open(my $fh, '>', "$dir/scrape.txt") or die;
print $fh $body;
close $fh;
my $lint = `promtool check metrics < $dir/scrape.txt 2>&1`;
is($? >> 8, 0, 'promtool check metrics accepts the exposition') or diag($lint);
is((http_get("http://127.0.0.1:$port/other"))[0], '404', 'other paths are not found');

# 3. Credentials
open(my $secret, '>', "$dir/password") or die;
print $secret "n0t-in-the-log\n";
close $secret;
reload('perfopt.metrics_user', 'prometheus');
reload('perfopt.metrics_password_file', "$dir/password");
ok(wait_for('authentication', sub { (http_get($url))[0] eq '401' }), 'without credentials: 401');
is((http_get($url, '-u', 'prometheus:wrong'))[0], '401', 'wrong credentials: 401');
is((http_get($url, '-u', 'prometheus:n0t-in-the-log'))[0], '200', 'right credentials: 200');
is($node->safe_psql('postgres', q{CREATE ROLE reader LOGIN; SET ROLE reader;
	SELECT count(*) FROM pg_settings WHERE name = 'perfopt.metrics_password_file'}), '0',
	'only superusers see the password file setting');

# 4. Idle clients do not stall it
my @idle = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp') } 1 .. 5;
is((http_get($url, '-u', 'prometheus:n0t-in-the-log'))[0], '200', 'five silent clients: a scrape still succeeds');
push @idle, map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp') } 1 .. 20;
is(query('SELECT 1'), '1', 'with 25 silent clients the database answers');
ok(wait_for('the silent clients to be dropped',
		sub { (http_get($url, '-u', 'prometheus:n0t-in-the-log'))[0] eq '200' }),
	'and scrapes succeed again once they are dropped');
close($_) foreach grep { defined } @idle;

# 5. A real Prometheus scrapes it
my $prometheus_port = PostgreSQL::Test::Cluster::get_free_port();
open($fh, '>', "$dir/prometheus.yml") or die;
print $fh <<"YAML";
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: perfopt
    basic_auth:
      username: prometheus
      password: n0t-in-the-log
    static_configs:
      - targets: ['127.0.0.1:$port']
YAML
close $fh;
my $prometheus = start([ 'prometheus', "--config.file=$dir/prometheus.yml",
		"--storage.tsdb.path=$dir/tsdb", "--web.listen-address=127.0.0.1:$prometheus_port" ],
	'>', "$dir/prometheus.log", '2>&1');
my $api = "http://127.0.0.1:$prometheus_port/api/v1/query?query=";
ok(wait_for('Prometheus to scrape perfopt',
		sub { (http_get($api . 'perfopt_up'))[1] =~ /"value":\[[0-9.]+,"1"\]/ }),
	'Prometheus scraped perfopt_up');
like((http_get($api . 'perfopt_statement_latency_seconds_count'))[1], qr/"result":\[\{"metric"/,
	'and stores the latency histograms');
like((http_get($api . 'up%7Bjob%3D%22perfopt%22%7D'))[1], qr/"value":\[[0-9.]+,"1"\]/,
	'its target is up');
$prometheus->kill_kill;
unlike(slurp_file($node->logfile), qr/n0t-in-the-log/, 'the password never reached the server log');

# 6. A real Alertmanager receives an incident and sees it resolved
my $alertmanager_port = PostgreSQL::Test::Cluster::get_free_port();
open($fh, '>', "$dir/alertmanager.yml") or die;
print $fh "route:\n  receiver: none\nreceivers:\n  - name: none\n";
close $fh;
my $alertmanager = start([ 'prometheus-alertmanager', "--config.file=$dir/alertmanager.yml",
		"--storage.path=$dir/alertmanager", "--web.listen-address=127.0.0.1:$alertmanager_port",
		'--cluster.listen-address=' ],
	'>', "$dir/alertmanager.log", '2>&1');
my $alerts = "http://127.0.0.1:$alertmanager_port/api/v2/alerts";
ok(wait_for('Alertmanager', sub { (http_get($alerts))[0] eq '200' }), 'Alertmanager runs');

query(q{SELECT perfopt.record_metrics(now() - g * interval '10 s', '{queue_depth}', '{""}', '{500}')
		  FROM generate_series(6, 0, -1) g});
query(q{INSERT INTO perfopt.automation_rules (name, trigger_type, metric, entity, condition, threshold,
                                                duration, severity)
		VALUES ('deep_queue', 'threshold', 'queue_depth', '', 'greater_than', 100, interval '30 s', 'critical')});
query('SELECT perfopt.run_optimization_cycle()');
is(query(q{SELECT count(*) FROM perfopt.incidents WHERE resolved_at IS NULL}), '1', 'the rule opened an incident');
reload('perfopt.alertmanager_url', "http://127.0.0.1:$alertmanager_port");
ok(wait_for('the alert', sub {
	my $list = (http_get($alerts))[1];
	$list =~ /"alertname":"PerfoptIncident"/ && $list =~ /"severity":"critical"/ && $list =~ /"state":"active"/
}), 'Alertmanager received the incident as a firing alert');

query(q{SELECT perfopt.record_metrics(now(), '{queue_depth}', '{""}', '{3}')});
query('SELECT perfopt.run_optimization_cycle()');
is(query(q{SELECT count(*) FROM perfopt.incidents WHERE resolved_at IS NULL}), '0', 'the incident resolved');
query('SELECT pg_reload_conf()');		# a reload pushes the alerts at once
ok(wait_for('the alert to resolve', sub { (http_get($alerts))[1] !~ /PerfoptIncident/ }),
	'and Alertmanager sees the alert resolved');

# Alertmanager down: the exporter keeps serving and logs the failure once
$alertmanager->kill_kill;
query('SELECT pg_reload_conf()');
ok(wait_for('the failure to be logged',
		sub { slurp_file($node->logfile) =~ /could not post alerts/ }), 'a dead Alertmanager is logged');
is((http_get($url, '-u', 'prometheus:n0t-in-the-log'))[0], '200', 'and /metrics is still served');

# 7. Every SQL query of the Grafana dashboards runs
my $json = JSON::PP->new;
my @queries;
foreach my $file (glob('docs/grafana/*.json'))
{
	my $dashboard = $json->decode(slurp_file($file));
	foreach my $panel (@{ $dashboard->{panels} })
	{
		foreach my $target (@{ $panel->{targets} || [] })
		{
			push @queries, [ $file, $panel->{title}, $target->{rawSql} ] if $target->{rawSql};
		}
	}
}
cmp_ok(scalar(@queries), '>=', 20, scalar(@queries) . ' SQL queries in the dashboards');
query('SELECT perfopt.forecast_capacity()');
my $failed = 0;
foreach my $q (@queries)
{
	my ($file, $title, $sql) = @$q;
	# Grafana's macros, as Grafana expands them for the last six hours
	$sql =~ s/\$__timeFilter\(([^)]+)\)/$1 BETWEEN now() - interval '6 hours' AND now()/g;
	$sql =~ s/\$__timeFrom\(\)/(now() - interval '6 hours')/g;
	$sql =~ s/\$__timeTo\(\)/now()/g;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	if ($ret != 0)
	{
		$failed++;
		diag("$file, panel \"$title\": $err");
	}
}
is($failed, 0, 'every dashboard query runs against a live perfopt database');

done_testing();
