/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The toolkit every perfopt background worker is built from:
 *	  registering, starting and connecting, reloading the configuration,
 *	  waiting on the latch and sockets, and running a step in a
 *	  transaction of its own.
 *
 * See worker.c and docs/workers.md.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_BGW_WORKER_H
#define PERFOPT_BGW_WORKER_H

#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "utils/elog.h"
#include "utils/palloc.h"

/* ---- registering ---- */

/*
 * Register a worker at _PG_init (while shared_preload_libraries is
 * processed): name is both its bgw_name and its bgw_type, the name
 * pg_stat_activity.backend_type shows; function its entry point in the
 * perfopt library.
 */
extern void perfopt_worker_register(const char *name, const char *function,
									int restart_seconds);

/*
 * Start a worker now, from a backend; false when no slot is free.  The
 * worker gets arg as its Datum and is not restarted; *handle (if not NULL)
 * is the handle to wait on it with.
 */
extern bool perfopt_worker_register_dynamic(const char *name, const char *function,
											Datum arg, BackgroundWorkerHandle **handle);

/* ---- starting ---- */

/*
 * The start of every worker's main function: signals (SIGHUP reloads,
 * SIGTERM stops, SIGINT cancels only a running step), perfopt's own
 * statements kept out of the latency histograms, a connection to
 * perfopt.database with search_path pinned, and name as application_name.
 * Returns the database connected to.
 */
extern const char *perfopt_worker_start(const char *name);

/*
 * Connect to dbname as a perfopt worker: the settings the workers act on
 * are taken from the server's configuration only, search_path is pinned to
 * pg_catalog, pg_temp, and a cancel only cancels a running step.  For a
 * worker that connects late; perfopt_worker_start calls it.
 */
extern void perfopt_worker_connect(const char *dbname);

/* ---- reloading ---- */

/*
 * If a SIGHUP came: reload the configuration and return true (the caller
 * then follows the settings it cares about).  A worker whose
 * perfopt.database changed exits, to be restarted there.
 */
extern bool perfopt_worker_reload(void);

/* ---- waiting ---- */

/*
 * Wait until the latch is set, sock (unless PGINVALID_SOCKET) has one of
 * the socket events of events (WL_SOCKET_READABLE ...), or timeout_ms has
 * passed (-1: no timeout); exit if the postmaster died.  Resets the latch,
 * and handles interrupts (a cancel while waiting is nothing).  Returns the
 * events that occurred, as WaitLatchOrSocket does.
 */
extern int	perfopt_worker_wait(int events, pgsocket sock, long timeout_ms);

/*
 * A WaitEventSet in cxt with the latch and postmaster death already in it,
 * and room for nsockets sockets the caller adds with AddWaitEventToSet.
 */
extern WaitEventSet *perfopt_worker_wait_set(MemoryContext cxt, int nsockets);

/*
 * Wait on set as perfopt_worker_wait waits; returns how many events of
 * occurred[0 .. nevents - 1] were filled (0 on timeout).  The latch is
 * reset and interrupts handled.
 */
extern int	perfopt_worker_wait_set_wait(WaitEventSet *set, long timeout_ms,
										 WaitEvent *occurred, int nevents);

/* ---- a step in a transaction ---- */

/* share-lock the extension first; skip the step when perfopt was dropped */
#define PERFOPT_STEP_LOCK_EXTENSION	0x01
/* connect SPI and push a snapshot (taken after the lock) */
#define PERFOPT_STEP_SPI			0x02
/* run as step->role, restricted, through perfopt_begin_as_role */
#define PERFOPT_STEP_AS_ROLE		0x04
/* copy the error but do not log it: the caller reports it its own way */
#define PERFOPT_STEP_QUIET			0x08

/* How to run one step; set the fields, then call perfopt_run_step */
typedef struct PerfoptStep
{
	int			flags;			/* PERFOPT_STEP_* */
	Oid			role;			/* with PERFOPT_STEP_AS_ROLE; InvalidOid for
								 * the current user with perfopt's own path */
	int			timeout_ms;		/* statement timeout of the step; 0 for none */
	const char *activity;		/* pg_stat_activity.query meanwhile, or NULL */
	MemoryContext cxt;			/* gets the error; current after the step */
	bool		ran;			/* out: false if the extension was missing */
} PerfoptStep;

/* The work of a step, called inside the transaction */
typedef void (*PerfoptStepFunction) (void *arg);

/*
 * Run fn(arg) in a transaction of its own: start it, take the extension's
 * share lock, switch role, connect SPI and take a snapshot (as flags say),
 * arm the statement timeout, run, and commit.  An error is caught, copied
 * into step->cxt, logged (unless PERFOPT_STEP_QUIET), and the transaction
 * aborted; the timeout is always cleared before the commit or the abort,
 * and the user and security context are put back after either.  Returns
 * the error, or NULL when the step succeeded.  Statistics are reported
 * (at most once a second), and a cancel cancels only this step.
 */
extern ErrorData *perfopt_run_step(PerfoptStep *step, PerfoptStepFunction fn, void *arg);

#endif							/* PERFOPT_BGW_WORKER_H */
