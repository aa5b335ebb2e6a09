/*-------------------------------------------------------------------------
 *
 * pool_advice.c
 *	  perfopt.pool_recommendation(): connection pool size and mode,
 *	  max_connections and the timeouts that guard a pool, from what the
 *	  server is seen doing.
 *
 * The rule of thumb (connections = cores x 2 + spindles) guesses how much
 * of its time a session spends on the CPU.  perfopt measures it: it
 * samples the client backends of the server (every 20 ms for a few
 * seconds, while the usual load runs) and sorts the sessions inside a
 * transaction into
 *
 *	on the CPU		active, no wait event;
 *	off the CPU		waiting for I/O, another process (IPC), a WAL flush
 *					another backend is doing (LWLock WALWrite), or the
 *					application's next statement (idle in transaction): time
 *					a session holds its connection while the CPU could serve
 *					another;
 *	blocked			waiting for a heavyweight lock another session holds;
 *	contended		waiting for another lightweight lock or a buffer pin.
 *
 * A pool keeps the CPUs busy when
 *
 *		pool = cores / (on the CPU / (on + off the CPU))
 *
 * sessions run, kept between the cores and eight times the cores (past
 * that, more concurrency is better bought from the disks than guessed
 * here); beyond it, sessions queue for the CPU and each statement only
 * takes longer.
 * In transaction mode (below) a server connection's cycle also holds the
 * time it sits idle after each transaction until the pooler hands it the
 * next one, a round trip to the client side: the idle time of connections
 * that ended a transaction while sampling counts in "off the CPU" there.
 * It includes whatever the application thinks between transactions, so it
 * is an upper bound, and the cap of eight times the cores holds it.
 * When sessions are often blocked on locks (a fifth of the samples or
 * more), the workload's locks allow only so many transactions to make
 * progress at once: the pool is then also held to the average number of
 * sessions in a transaction that were not blocked, the lanes the locks
 * leave open, as measured under that load.
 *
 * The other settings follow from the same samples and the server's
 * settings: transaction pooling when most connections sit idle between
 * transactions; max_connections from the peak seen, the pool and the
 * reserved connections; idle_in_transaction_session_timeout when sessions
 * hold transactions open while idle; statement_timeout from
 * pg_stat_statements' slowest means, when it is loaded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "common/catalog.h"

PG_FUNCTION_INFO_V1(perfopt_pool_recommendation);

#define SAMPLE_INTERVAL_MS		20
/* The longest a call samples: it holds a session and a snapshot of pg_stat_activity */
#define MAX_SAMPLE_SECONDS		60
/* Lock waits on this share of busy samples hold the pool to the lanes */
#define CONTENTION_SHARE		0.20
/* The pool is kept at most this many times the cores */
#define MAX_POOL_PER_CORE		8
/* Transaction pooling when this share of connections is idle */
#define IDLE_SHARE_FOR_TRANSACTION_POOLING	0.50

/* What the samples saw, summed over them */
typedef struct Observed
{
	int			samples;
	double		on_cpu;
	double		off_cpu;
	double		blocked;
	double		contended;
	double		other;			/* active, other waits (client, timeout) */
	double		idle;
	double		idle_between;	/* idle, since a transaction ended in the window */
	double		idle_in_transaction;
	int			peak_connections;
	double		longest_idle_in_transaction_s;
	TimestampTz start;			/* when the sampling began */
} Observed;

/* Count the client backends of the server, now */
static void
sample_backends(Observed *o)
{
	int			n;
	int			connections = 0;
	TimestampTz now = GetCurrentTimestamp();

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_backendType != B_BACKEND || be->st_procpid == MyProcPid)
			continue;
		connections++;
		switch (be->st_state)
		{
			case STATE_RUNNING:
				{
					PGPROC	   *proc = BackendPidGetProc(be->st_procpid);
					uint32		wait = proc ? proc->wait_event_info : 0;
					const char *type = wait ? pgstat_get_wait_event_type(wait) : NULL;
					const char *event = wait ? pgstat_get_wait_event(wait) : NULL;

					if (type == NULL)
						o->on_cpu++;
					else if (strcmp(type, "IO") == 0 || strcmp(type, "IPC") == 0 ||
							 (strcmp(type, "LWLock") == 0 && strcmp(event, "WALWrite") == 0))
						o->off_cpu++;
					else if (strcmp(type, "Lock") == 0)
						o->blocked++;
					else if (strcmp(type, "LWLock") == 0 || strcmp(type, "BufferPin") == 0)
						o->contended++;
					else
						o->other++;
					break;
				}
			case STATE_IDLEINTRANSACTION:
			case STATE_IDLEINTRANSACTION_ABORTED:
				o->idle_in_transaction++;
				o->off_cpu++;
				o->longest_idle_in_transaction_s =
					Max(o->longest_idle_in_transaction_s,
						(double) (now - be->st_state_start_timestamp) / USECS_PER_SEC);
				break;
			case STATE_IDLE:
				o->idle++;
				/* between two transactions of a connection that is working */
				if (be->st_state_start_timestamp >= o->start)
					o->idle_between++;
				break;
			default:
				o->idle++;
				break;
		}
	}
	o->peak_connections = Max(o->peak_connections, connections);
	o->samples++;
}

/* Sample for seconds, every SAMPLE_INTERVAL_MS, waiting on the latch */
static void
observe(double seconds, Observed *o)
{
	TimestampTz end = GetCurrentTimestamp() + (TimestampTz) (seconds * USECS_PER_SEC);

	memset(o, 0, sizeof(*o));
	o->start = GetCurrentTimestamp();
	for (;;)
	{
		sample_backends(o);
		if (GetCurrentTimestamp() >= end)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 SAMPLE_INTERVAL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The 95th percentile of pg_stat_statements' mean times, in ms, or -1 */
static double
statement_mean_p95_ms(void)
{
	Oid			schema = perfopt_extension_schema("pg_stat_statements");
	double		p95 = -1;
	char	   *sql;

	if (!OidIsValid(schema) || GetConfigOption("pg_stat_statements.max", true, false) == NULL)
		return -1;
	sql = psprintf("SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY mean_exec_time)"
				   " FROM %s.pg_stat_statements(false)"
				   " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
				   " AND toplevel",
				   quote_identifier(get_namespace_name(schema)));
	SPI_connect();
	if (SPI_execute(sql, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			p95 = DatumGetFloat8(value);
	}
	SPI_finish();
	return p95;
}

static void
put_row(ReturnSetInfo *rsinfo, const char *setting, const char *current,
		const char *recommended, const char *reason)
{
	Datum		values[4];
	bool		nulls[4] = {false};

	values[0] = CStringGetTextDatum(setting);
	values[1] = CStringGetTextDatum(current);
	values[2] = CStringGetTextDatum(recommended);
	values[3] = CStringGetTextDatum(reason);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* A duration setting as PostgreSQL shows it, e.g. "1min" */
static const char *
show(const char *name)
{
	return GetConfigOptionByName(name, NULL, false);
}

/*
 * perfopt.pool_recommendation(sample_seconds): one row per setting.
 */
Datum
perfopt_pool_recommendation(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	double		seconds = PG_ARGISNULL(0) ? 2 : PG_GETARG_FLOAT8(0);
	long		cores = sysconf(_SC_NPROCESSORS_ONLN);
	Observed	o;
	double		busy;
	double		idle_share;
	bool		transaction_mode;
	double		cycle;
	double		cpu_share;
	double		blocked_share;
	int			pool;
	char	   *reason;

	if (!(seconds >= 0.1 && seconds <= MAX_SAMPLE_SECONDS))
		ereport(ERROR,
				(errcode(seconds > MAX_SAMPLE_SECONDS ? ERRCODE_PROGRAM_LIMIT_EXCEEDED :
						 ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sample_seconds must be between 0.1 and %d, not %g", MAX_SAMPLE_SECONDS, seconds),
				 errhint("Sample for a few seconds while the usual load runs.")));
	InitMaterializedSRF(fcinfo, 0);
	cores = Max(cores, 1);
	observe(seconds, &o);

	/*
	 * pool mode: transaction pooling when most connections sit idle between
	 * transactions
	 */
	busy = o.on_cpu + o.off_cpu + o.blocked + o.contended + o.other;
	idle_share = (busy + o.idle) > 0 ? o.idle / (busy + o.idle) : 0;
	transaction_mode = idle_share >= IDLE_SHARE_FOR_TRANSACTION_POOLING;

	/*
	 * pool size: enough sessions to keep the cores busy.  In transaction
	 * mode a server connection's cycle is not only its transaction: after
	 * each one it sits idle until the pooler hands it the next client's
	 * statement, a round trip to the client side like the one a direct
	 * connection waits between its transactions.  The idle time of the
	 * connections that ended a transaction in the window is that round trip
	 * (with whatever the application thinks between transactions, which
	 * makes it an upper bound): it belongs to the cycle, and the pool is the
	 * cores over the share of the whole cycle spent on the CPU.  In session
	 * mode the client holds the connection through that time anyway.
	 */
	cycle = o.on_cpu + o.off_cpu + (transaction_mode ? o.idle_between : 0);
	cpu_share = cycle > 0 ? o.on_cpu / cycle : 1;
	blocked_share = busy > 0 ? o.blocked / busy : 0;
	if (busy == 0)
	{
		pool = cores;
		reason = psprintf("no session was in a transaction in %d samples over %.1f s, so the pool is sized to the %ld cores; sample again under the usual load",
						  o.samples, seconds, cores);
	}
	else
	{
		pool = (int) ceil(cores / Max(cpu_share, 1.0 / MAX_POOL_PER_CORE));
		pool = Min(Max(pool, cores), MAX_POOL_PER_CORE * cores);
		if (transaction_mode)
			reason = psprintf("in transaction mode a server connection's cycle is its transaction and the round trip until the pooler hands it the next one: of that cycle, as the connections that ended a transaction in %d samples over %.1f s spent it, %.0f%% was on the CPU, %.0f%% off it inside transactions (I/O, WAL flushes, the application's next statement) and %.0f%% idle between transactions (the round trip, and any time the application thinks, so an upper bound): %ld cores / %.2f = %d server connections keep the cores busy, more would queue for them",
							  o.samples, seconds, 100 * cpu_share, 100 * o.off_cpu / cycle,
							  100 * o.idle_between / cycle,
							  cores, Max(cpu_share, 1.0 / MAX_POOL_PER_CORE), pool);
		else
			reason = psprintf("sessions in a transaction were on the CPU %.0f%% of the time and off it (I/O, WAL flushes, the application's next statement) %.0f%% (%d samples over %.1f s): %ld cores / %.2f = %d sessions keep the cores busy, more would queue for them",
							  100 * cpu_share, 100 * (1 - cpu_share), o.samples, seconds,
							  cores, Max(cpu_share, 1.0 / MAX_POOL_PER_CORE), pool);
		if (blocked_share >= CONTENTION_SHARE)
		{
			/* connections in their cycle that were not blocked */
			double		lanes = (busy - o.blocked + (transaction_mode ? o.idle_between : 0)) / o.samples;
			int			limit = (int) Min(Max(ceil(lanes), cores), pool);

			if (limit < pool)
				reason = psprintf("%s; but %.0f%% of them waited on locks other sessions held, and only %.1f on average made progress: the pool is held to %d, as more would only wait",
								  reason, 100 * blocked_share, lanes, limit);
			else
				reason = psprintf("%s (%.0f%% waited on locks; the %.1f that made progress on average fit in it)",
								  reason, 100 * blocked_share, lanes);
			pool = limit;
		}
	}
	put_row(rsinfo, "pool_size", psprintf("%.1f in a transaction on average, %d connections at peak",
										  busy / Max(o.samples, 1), o.peak_connections),
			psprintf("%d", pool), reason);

	if (transaction_mode)
		put_row(rsinfo, "pool_mode", "direct connections", "transaction",
				psprintf("%.0f%% of the connections sampled sat idle between transactions: a pooler in transaction mode (PgBouncer pool_mode = transaction) serves them with %d server connections, if the application uses no session state (SET, advisory locks, prepared statements without protocol support)",
						 100 * idle_share, pool));
	else
		put_row(rsinfo, "pool_mode", "direct connections", "session",
				psprintf("only %.0f%% of the connections sampled were idle: an application pool (or PgBouncer in session mode) of %d is enough",
						 100 * idle_share, pool));

	/* max_connections */
	{
		int			max_connections = atoi(GetConfigOption("max_connections", false, false));
		int			reserved = atoi(GetConfigOption("superuser_reserved_connections", false, false));
		int			needed = Max(o.peak_connections, pool) + reserved + 10;

		needed = (int) ceil(needed * 1.2);
		if (max_connections > 4 * needed && max_connections > 200)
			put_row(rsinfo, "max_connections", psprintf("%d", max_connections), psprintf("%d", needed),
					psprintf("at most %d client connections were seen; each allowed connection costs shared memory and snapshot work even when unused: behind a pool of %d, %d (20%% over the peak or the pool, the %d reserved and 10 for maintenance) is plenty",
							 o.peak_connections, pool, needed, reserved));
		else if (max_connections < needed)
			put_row(rsinfo, "max_connections", psprintf("%d", max_connections), psprintf("%d", needed),
					psprintf("%d client connections were seen at once, close to the limit: raise it to %d, or put a pooler in front",
							 o.peak_connections, needed));
		else
			put_row(rsinfo, "max_connections", psprintf("%d", max_connections), psprintf("%d", max_connections),
					psprintf("%d client connections at peak and a pool of %d fit well within it", o.peak_connections, pool));
	}

	/* idle_in_transaction_session_timeout */
	{
		int			timeout_ms = atoi(GetConfigOption("idle_in_transaction_session_timeout", false, false));

		if (o.idle_in_transaction > 0 || timeout_ms == 0)
		{
			double		longest = o.longest_idle_in_transaction_s;
			int			recommended_s = (int) Max(60, ceil(longest * 2 / 60) * 60);

			put_row(rsinfo, "idle_in_transaction_session_timeout", show("idle_in_transaction_session_timeout"),
					psprintf("%ds", recommended_s),
					o.idle_in_transaction > 0 ?
					psprintf("sessions sat idle inside a transaction (the longest %.0f s): they hold locks and keep vacuum from removing dead rows, and in a pool they hold a connection; end them after %d s",
							 longest, recommended_s) :
					psprintf("no timeout is set: one forgotten open transaction holds its locks, a pool connection and vacuum's horizon forever; %d s ends it", recommended_s));
		}
	}

	/* statement_timeout, from what statements take */
	{
		double		p95 = statement_mean_p95_ms();
		int			timeout_ms = atoi(GetConfigOption("statement_timeout", false, false));

		if (p95 > 0)
		{
			int			recommended_s = (int) Max(5, ceil(p95 * 20 / 1000));

			if (timeout_ms == 0 || timeout_ms > recommended_s * 10000)
				put_row(rsinfo, "statement_timeout", show("statement_timeout"),
						psprintf("%ds", recommended_s),
						psprintf("95%% of the statements of pg_stat_statements take %.1f ms or less on average: a runaway one holding a pooled connection for minutes is a fault, and %d s (20 times that, at least 5 s) ends it; set it for the application's role (ALTER ROLE ... SET statement_timeout), not for maintenance",
								 p95, recommended_s));
		}
	}

	return (Datum) 0;
}
