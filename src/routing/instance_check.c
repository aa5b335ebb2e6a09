/*-------------------------------------------------------------------------
 *
 * instance_check.c
 *	  The perfopt health checker: a background worker that checks every
 *	  registered instance each perfopt.health_check_interval.
 *
 * Before each round it reloads the registry from perfopt.instance_registry
 * in perfopt.database (share-locking the extension first, as every worker
 * does).  A PostgreSQL instance is checked through libpq: connect with
 * connect_timeout and a statement_timeout, then one query that returns
 * whether it is in recovery, its WAL position (current on a primary, last
 * replayed on a standby) and its active connections; the response time is
 * that query's round trip.  A standby's lag is the highest primary position
 * seen in the round minus its replay position.  Any other kind is checked
 * by a TCP connect bounded by perfopt.health_check_timeout.  A dead
 * instance thus costs the round at most the timeout, never the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libpq-fe.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "routing/instance_check.h"
#include "metrics/latency.h"
#include "bgw/launcher.h"
#include "perfopt.h"
#include "routing/routing.h"

PGDLLEXPORT void perfopt_health_check_main(Datum main_arg);

/* What one check found */
typedef struct CheckResult
{
	bool		ok;
	bool		in_recovery;
	double		ms;
	double		connections;
	int64		lsn;
} CheckResult;

/* Register the worker; from _PG_init while preloading */
void
perfopt_health_check_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "perfopt");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "perfopt_health_check_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "perfopt health checker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "perfopt health checker");
	RegisterBackgroundWorker(&worker);
}

/* Check a PostgreSQL instance through libpq */
static void
check_postgresql(const char *address, CheckResult *r)
{
	char		timeout[16],
				options[64];
	const char *keys[] = {"dbname", "connect_timeout", "options", "application_name", NULL};
	const char *values[5];
	PGconn	   *conn;
	PGresult   *res;
	instr_time	start,
				elapsed;

	snprintf(timeout, sizeof(timeout), "%d", Max(1, (perfopt_health_check_timeout + 999) / 1000));
	snprintf(options, sizeof(options), "-c statement_timeout=%d", perfopt_health_check_timeout);
	values[0] = address;
	values[1] = timeout;
	values[2] = options;
	values[3] = "perfopt health checker";
	values[4] = NULL;

	conn = PQconnectdbParams(keys, values, 1);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		PQfinish(conn);
		return;
	}
	INSTR_TIME_SET_CURRENT(start);
	res = PQexec(conn,
				 "SELECT pg_is_in_recovery(),"
				 " (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
				 "  ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::int8,"
				 " (SELECT count(*) FROM pg_stat_activity"
				 "   WHERE state = 'active' AND backend_type = 'client backend'"
				 "     AND pid <> pg_backend_pid())");
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
	{
		r->ok = true;
		r->ms = INSTR_TIME_GET_MILLISEC(elapsed);
		r->in_recovery = (PQgetvalue(res, 0, 0)[0] == 't');
		r->lsn = PQgetisnull(res, 0, 1) ? -1 : strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		r->connections = strtod(PQgetvalue(res, 0, 2), NULL);
	}
	PQclear(res);
	PQfinish(conn);
}

/* Check any other instance by a TCP connect to host:port */
static void
check_tcp(const char *address, CheckResult *r)
{
	char		host[PERFOPT_ADDRESS_LEN];
	char	   *colon;
	struct addrinfo hints = {0},
			   *ai = NULL;
	int			fd;
	instr_time	start,
				elapsed;

	strlcpy(host, address, sizeof(host));
	colon = strrchr(host, ':');
	if (colon == NULL)
		return;
	*colon = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL)
		return;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0)
	{
		INSTR_TIME_SET_CURRENT(start);
		fcntl(fd, F_SETFL, O_NONBLOCK);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			r->ok = true;
		else if (errno == EINPROGRESS)
		{
			struct pollfd p = {fd, POLLOUT, 0};
			int			err = 0;
			socklen_t	len = sizeof(err);

			if (poll(&p, 1, perfopt_health_check_timeout) == 1 &&
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
				r->ok = true;
		}
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		r->ms = INSTR_TIME_GET_MILLISEC(elapsed);
		close(fd);
	}
	freeaddrinfo(ai);
}

/* Reload the registry from the table, in a transaction of its own */
static void
reload_registry(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		if (perfopt_lock_extension())
			(void) perfopt_routing_sync();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
}

/* One round: check every instance, then report with the lags */
static void
check_round(void)
{
	RoutingTarget targets[PERFOPT_MAX_INSTANCES];
	CheckResult results[PERFOPT_MAX_INSTANCES];
	int			n = perfopt_routing_targets(targets, PERFOPT_MAX_INSTANCES);
	int64		primary_lsn = -1;

	for (int i = 0; i < n; i++)
	{
		memset(&results[i], 0, sizeof(CheckResult));
		results[i].lsn = -1;
		CHECK_FOR_INTERRUPTS();
		if (strcmp(targets[i].kind, "postgresql") == 0)
			check_postgresql(targets[i].address, &results[i]);
		else
			check_tcp(targets[i].address, &results[i]);
		if (results[i].ok && !results[i].in_recovery &&
			strcmp(targets[i].kind, "postgresql") == 0 && results[i].lsn > primary_lsn)
			primary_lsn = results[i].lsn;
	}
	for (int i = 0; i < n; i++)
	{
		int64		lag = -1;

		if (results[i].ok && results[i].in_recovery && results[i].lsn >= 0 && primary_lsn >= 0)
			lag = Max(0, primary_lsn - results[i].lsn);
		perfopt_routing_report(targets[i].slot, targets[i].name, results[i].ok,
							   results[i].ms, results[i].connections, lag);
	}
}

/* Entry point of the health checker */
void
perfopt_health_check_main(Datum main_arg)
{
	MemoryContext round_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	perfopt_latency_skip_this_process();
	perfopt_worker_connect(perfopt_database);
	pgstat_report_appname("perfopt health checker");
	round_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt health checker",
									  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		TimestampTz started = GetCurrentTimestamp();
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(round_cxt);
		reload_registry();
		MemoryContextSwitchTo(round_cxt);
		pgstat_report_activity(STATE_RUNNING, "checking instances");
		check_round();
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(TopMemoryContext);

		wait_ms = (long) perfopt_health_check_interval * 1000 -
			TimestampDifferenceMilliseconds(started, GetCurrentTimestamp());
		if (wait_ms > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 wait_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
