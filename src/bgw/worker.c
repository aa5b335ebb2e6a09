/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The toolkit every perfopt background worker is built from.
 *
 * perfopt's workers (the launcher, the cache invalidator, the health
 * checker, the exporter) and the orchestrator's actions all do the same
 * few things, and each used to do them its own way: register with the
 * postmaster, connect with search_path pinned, reload the configuration
 * on SIGHUP, sleep on the latch (and sockets), and run a piece of work in
 * a transaction of its own whose error is caught and kept, so that one
 * failure never stops the loop.  They are written once, here.
 *
 * A step runs in this order, always: start the transaction; share-lock the
 * extension (so that it waits for DROP EXTENSION and ALTER EXTENSION
 * UPDATE, and they for it) and skip the step if perfopt is gone; become
 * the step's role (perfopt_begin_as_role, docs/security.md); connect SPI
 * and take the snapshot, after the lock, so that the step sees what a
 * concurrent update committed; arm the statement timeout; run.  On success
 * the timeout is cleared, SPI finished, the role switched back and the
 * transaction committed; on error the timeout is cleared first, then the
 * role, then the error is copied into the caller's context and logged, the
 * transaction aborted, and the user the step started with put back (an
 * abort restores the user its transaction started with, which after a
 * commit inside the step is not the worker's).
 *
 * Cancels: pg_cancel_backend() sends SIGINT.  PostgreSQL's handler would
 * raise "canceling statement" at the next CHECK_FOR_INTERRUPTS, wherever
 * that is; between steps no PG_TRY catches it, a worker turns the ERROR
 * into FATAL and dies.  So a perfopt worker's SIGINT handler honours a
 * cancel only while a step runs (or when the statement or lock timeout
 * sent it), and the step clears what is left when it ends: a cancel of an
 * idle worker is nothing, a cancel during a step fails that step only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "executor/spi.h"
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
#include "utils/timeout.h"

#include "bgw/worker.h"
#include "common/extension_lock.h"
#include "common/security.h"
#include "common/settings.h"
#include "metrics/latency.h"

/* the database this worker connected to, for perfopt_worker_reload */
static char *connected_to = NULL;

/* whether a step runs: only then is a cancel honoured */
static volatile sig_atomic_t step_running = false;

/* Fill in a worker of perfopt's library for the postmaster */
static void
worker_define(BackgroundWorker *worker, const char *name, const char *function)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "perfopt");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", name);
}

/* Register a worker started with the server; see worker.h */
void
perfopt_worker_register(const char *name, const char *function, int restart_seconds)
{
	BackgroundWorker worker;

	worker_define(&worker, name, function);
	worker.bgw_restart_time = restart_seconds;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);
}

/* Start a worker from a backend, once; see worker.h */
bool
perfopt_worker_register_dynamic(const char *name, const char *function,
								Datum arg, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	worker_define(&worker, name, function);
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = arg;
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/*
 * SIGINT: a cancel counts only while a step runs, or when the statement
 * or lock timeout sent it (they signal the process itself); otherwise it
 * is dropped, so that an idle worker is not killed by it.
 */
static void
worker_cancel_handler(SIGNAL_ARGS)
{
	if (step_running ||
		get_timeout_indicator(STATEMENT_TIMEOUT, false) ||
		get_timeout_indicator(LOCK_TIMEOUT, false))
		StatementCancelHandler(postgres_signal_arg);
}

/*
 * Connect a perfopt background worker to dbname: first mark the process
 * as a worker, so that the per-database and per-role settings applied at
 * connection cannot steer it, then pin search_path to pg_catalog, pg_temp,
 * so that no object a tenant creates can capture a name in perfopt's own
 * statements.  Every worker connects through here.
 */
void
perfopt_worker_connect(const char *dbname)
{
	perfopt_settings_server_only = true;
	pqsignal(SIGINT, worker_cancel_handler);
	connected_to = MemoryContextStrdup(TopMemoryContext, dbname);
	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	perfopt_pin_search_path();
	QueryCancelPending = false;
}

/* The start of a worker's main function; see worker.h */
const char *
perfopt_worker_start(const char *name)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* perfopt's own statements are not the application's latency */
	perfopt_latency_skip_this_process();

	perfopt_worker_connect(perfopt_database);
	pgstat_report_appname(name);
	ereport(LOG,
			(errmsg("%s started in database \"%s\"", name, connected_to)));
	return connected_to;
}

/* Reload the configuration after a SIGHUP; see worker.h */
bool
perfopt_worker_reload(void)
{
	if (!ConfigReloadPending)
		return false;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);

	if (connected_to != NULL && strcmp(connected_to, perfopt_database) != 0)
	{
		ereport(LOG,
				(errmsg("%s restarts to connect to database \"%s\"",
						MyBgworkerEntry->bgw_type, perfopt_database)));
		proc_exit(1);
	}
	return true;
}

/*
 * Before a worker sleeps: send its statistics, as a backend does when it
 * goes idle; at most once a second unless the sleep is that long.  Not
 * inside a transaction (a step that waits on a socket): the step reports
 * when it ends.
 */
static void
before_wait(long timeout_ms)
{
	if (!IsTransactionOrTransactionBlock())
		pgstat_report_stat(timeout_ms < 0 || timeout_ms >= 1000);
}

/* After a worker woke: reset the latch if it was set, take interrupts */
static void
after_wait(bool latch_set)
{
	if (latch_set)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* Wait on the latch, a socket and a timeout; see worker.h */
int
perfopt_worker_wait(int events, pgsocket sock, long timeout_ms)
{
	int			rc;

	events |= WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
	if (timeout_ms >= 0)
		events |= WL_TIMEOUT;
	else
		events &= ~WL_TIMEOUT;
	if (sock == PGINVALID_SOCKET)
		events &= ~WL_SOCKET_MASK;

	before_wait(timeout_ms);
	/*
	 * Without a socket, WaitLatch's wait set, made once per process:
	 * WaitLatchOrSocket makes one (an epoll descriptor, registered, closed)
	 * at every call, a fifth of the cache worker's time when commits wake
	 * it one by one
	 */
	if (sock == PGINVALID_SOCKET)
		rc = WaitLatch(MyLatch, events, timeout_ms, PG_WAIT_EXTENSION);
	else
		rc = WaitLatchOrSocket(MyLatch, events, sock, timeout_ms, PG_WAIT_EXTENSION);
	after_wait((rc & WL_LATCH_SET) != 0);
	return rc;
}

/* A WaitEventSet with the latch and postmaster death; see worker.h */
WaitEventSet *
perfopt_worker_wait_set(MemoryContext cxt, int nsockets)
{
	WaitEventSet *set = CreateWaitEventSet(cxt, nsockets + 2);

	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	return set;
}

/* Wait on a set made by perfopt_worker_wait_set; see worker.h */
int
perfopt_worker_wait_set_wait(WaitEventSet *set, long timeout_ms,
							 WaitEvent *occurred, int nevents)
{
	int			n;
	bool		latch_set = false;

	before_wait(timeout_ms);
	n = WaitEventSetWait(set, timeout_ms, occurred, nevents, PG_WAIT_EXTENSION);
	for (int i = 0; i < n; i++)
		if (occurred[i].events & WL_LATCH_SET)
			latch_set = true;
	after_wait(latch_set);
	return n;
}

/* Run a step in a transaction of its own; see the top of the file */
ErrorData *
perfopt_run_step(PerfoptStep *step, PerfoptStepFunction fn, void *arg)
{
	volatile ErrorData *error = NULL;
	volatile bool switched = false;
	PerfoptRoleSwitch sw;
	MemoryContext cxt = step->cxt != NULL ? step->cxt : CurrentMemoryContext;
	Oid			saved_user;
	int			saved_context;

	step->ran = false;
	GetUserIdAndSecContext(&saved_user, &saved_context);

	/* a cancel that came before the step is not for it */
	QueryCancelPending = false;
	step_running = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		if ((step->flags & PERFOPT_STEP_LOCK_EXTENSION) == 0 || perfopt_lock_extension())
		{
			if (step->flags & PERFOPT_STEP_AS_ROLE)
			{
				perfopt_begin_as_role(step->role, &sw);
				switched = true;
			}
			if (step->flags & PERFOPT_STEP_SPI)
			{
				SPI_connect();
				PushActiveSnapshot(GetTransactionSnapshot());
			}
			if (step->activity != NULL)
				pgstat_report_activity(STATE_RUNNING, step->activity);
			/* only a client backend's main loop arms statement_timeout by itself */
			if (step->timeout_ms > 0)
				enable_timeout_after(STATEMENT_TIMEOUT, step->timeout_ms);
			step->ran = true;

			fn(arg);

			disable_timeout(STATEMENT_TIMEOUT, false);
			if (step->flags & PERFOPT_STEP_SPI)
			{
				SPI_finish();
				PopActiveSnapshot();
			}
			if (switched)
			{
				perfopt_end_as_role(&sw);
				switched = false;
			}
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		if (switched)
			perfopt_end_as_role(&sw);
		MemoryContextSwitchTo(cxt);
		error = CopyErrorData();
		if ((step->flags & PERFOPT_STEP_QUIET) == 0)
			EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();

	/* a cancel that came too late to stop the step ends with it */
	step_running = false;
	QueryCancelPending = false;

	MemoryContextSwitchTo(cxt);
	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
	return (ErrorData *) error;
}
