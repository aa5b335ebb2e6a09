# A throwaway Redis server for perfopt's TAP tests.
#
#   use PerfoptTest::Redis;
#   my $redis = PerfoptTest::Redis->new('cache');   # started on a free loopback port
#   $redis->cli('SET', 'k', 'v');                    # redis-cli's answer, chomped
#   $redis->stop; $redis->start;                     # outages for fault tests
#   PerfoptTest::Redis->new('aof', persist => 1);    # keys survive a restart
#
# It listens on 127.0.0.1 only, keeps its data in memory (no RDB, and an
# append-only file fsynced at every write only with persist) under the
# test's own directory, and is stopped when the test ends.
package PerfoptTest::Redis;

use strict;
use warnings;
use PostgreSQL::Test::Utils;
use PostgreSQL::Test::Cluster;
use IPC::Run;
use Time::HiRes qw(usleep);

my @servers;

sub new
{
	my ($class, $name, %opts) = @_;
	my $self = bless {
		name => $name,
		port => PostgreSQL::Test::Cluster::get_free_port(),
		dir => "$PostgreSQL::Test::Utils::tmp_check/redis_$name",
		password => $opts{password},
		persist => $opts{persist},
	}, $class;
	mkdir $self->{dir};
	push @servers, $self;
	$self->start;
	return $self;
}

sub port { return $_[0]->{port}; }
sub host { return '127.0.0.1'; }
sub logfile { return "$_[0]->{dir}/redis.log"; }

# Start the server and wait until it answers PING
sub start
{
	my ($self) = @_;
	my @cmd = ('redis-server', '--port', $self->{port}, '--bind', '127.0.0.1',
		'--save', '', '--appendonly', 'no', '--dir', $self->{dir},
		'--logfile', $self->logfile, '--daemonize', 'no');
	push @cmd, '--requirepass', $self->{password} if defined $self->{password};
	push @cmd, '--appendonly', 'yes', '--appendfsync', 'always' if $self->{persist};
	$self->{handle} = IPC::Run::start(\@cmd, '<', \undef, '>', '/dev/null', '2>', '/dev/null');
	for (my $i = 0; $i < 100; $i++)
	{
		return if ($self->cli('PING') // '') eq 'PONG';
		usleep(50_000);
	}
	die "redis-server $self->{name} did not start; see " . $self->logfile;
}

# Stop the server (SIGTERM) and wait for it to exit
sub stop
{
	my ($self) = @_;
	return unless $self->{handle};
	$self->{handle}->signal('TERM');
	$self->{handle}->finish;
	delete $self->{handle};
}

# Run redis-cli against the server; returns its output, chomped
sub cli
{
	my ($self, @args) = @_;
	my @cmd = ('redis-cli', '-h', '127.0.0.1', '-p', $self->{port});
	push @cmd, '--no-auth-warning', '-a', $self->{password} if defined $self->{password};
	my ($out, $err) = ('', '');
	IPC::Run::run([ @cmd, @args ], '<', \undef, '>', \$out, '2>', \$err);
	chomp $out;
	return $out;
}

END
{
	$_->stop foreach @servers;
}

1;
