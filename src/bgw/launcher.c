/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The perfopt launcher: one background worker that runs the jobs of
 *	  table perfopt.jobs, each on its own schedule.
 *
 * The launcher connects to perfopt.database and waits there until
 * CREATE EXTENSION perfopt has been run.  Then, in a loop, it reads the
 * enabled jobs, runs the one whose turn is most overdue, and sleeps on its
 * latch until the next one is due (at most a second, so that new or
 * changed jobs are seen at once).  Each run is three transactions: one
 * that records the start in perfopt.job_runs, one that runs the job's SQL
 * under the job's timeout, and one that records how it ended.  An error in
 * the job is caught and recorded with its SQLSTATE, and the job is retried
 * after a jittered, doubling delay (never longer than its schedule) while
 * the other jobs go on.  A run that was going on when the launcher died
 * (a crash, kill -9) is marked failed when the launcher comes back.
 *
 * One worker runs every job, one after the other, so perfopt takes a
 * single slot of max_worker_processes, which parallel query shares.  Jobs
 * are meant to be short: the sampler takes milliseconds.
 *
 * Between jobs the launcher also runs the actions the orchestrator queued
 * in perfopt.action_log, one at a time, outside any transaction block
 * (actions.c).
 *
 * The launcher starts only once recovery has finished, so a standby runs
 * nothing; it still checks RecoveryInProgress() before each round.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "bgw/launcher.h"
#include "bgw/worker.h"
#include "common/settings.h"
#include "orchestrator/actions.h"

/* How long the launcher sleeps at most, and while the extension is missing */
#define LAUNCHER_MAX_SLEEP_MS	1000
#define LAUNCHER_IDLE_SLEEP_MS	5000

/* Seconds before the postmaster restarts a launcher that died */
#define LAUNCHER_RESTART_SECONDS 10

/* The first retry of a failed job; each further failure doubles it */
#define RETRY_BASE_MS			1000

PGDLLEXPORT void perfopt_launcher_main(Datum main_arg);

/* A job as the launcher read it from perfopt.jobs */
typedef struct Job
{
	char	   *name;
	char	   *command;
	int64		schedule_ms;
	int64		timeout_ms;
	int			failures;		/* consecutive, before this run */
	TimestampTz due;
} Job;

/* The end of one run */
typedef struct JobRun
{
	Job		   *job;
	int64		run_id;
	TimestampTz started;
	TimestampTz finished;
	ErrorData  *error;			/* NULL if it succeeded */
	const char *failure;		/* why it failed, when it left no error */
} JobRun;

/* What one round of the loop found in perfopt.jobs */
typedef struct JobTable
{
	Oid			extension;		/* InvalidOid while perfopt is not created */
	List	   *jobs;			/* enabled jobs, most overdue first */
} JobTable;

/* The extension whose interrupted runs were already marked failed */
static Oid	interrupted_marked_for = InvalidOid;

/* Whether the launcher said it waits for ALTER EXTENSION UPDATE */
static bool update_awaited = false;

/* Long-lived memory of the launcher, and the memory of one round */
static MemoryContext round_cxt = NULL;

/*
 * Register the launcher; called from _PG_init while shared_preload_libraries
 * is processed.
 */
void
perfopt_launcher_register(void)
{
	perfopt_worker_register("perfopt launcher", "perfopt_launcher_main",
							LAUNCHER_RESTART_SECONDS);
}

/*
 * Run step(arg) in a transaction of its own, the extension locked, SPI
 * connected and a snapshot set; timeout_ms > 0 arms the statement timeout.
 * Returns the error (in round_cxt), NULL when the step succeeded.
 */
static ErrorData *
run_in_transaction(PerfoptStepFunction step, void *arg, int timeout_ms)
{
	PerfoptStep how = {
		.flags = PERFOPT_STEP_LOCK_EXTENSION | PERFOPT_STEP_SPI,
		.timeout_ms = timeout_ms,
		.cxt = round_cxt,
	};

	return perfopt_run_step(&how, step, arg);
}

/* Run one SQL statement through SPI with arguments; errors propagate */
static int
execute(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	return ret;
}

/*
 * Mark the runs a dead launcher left behind as failed: nothing else runs
 * perfopt's jobs, so a run still marked running was interrupted.
 */
static void
mark_interrupted_runs(void)
{
	const char *message = "interrupted: the perfopt launcher stopped before the run finished";
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(message)};
	int			marked;

	execute("UPDATE perfopt.job_runs"
			"   SET status = 'failed', message = $1, finished_at = now(),"
			"       duration_ms = 1000 * extract(epoch FROM now() - started_at)"
			" WHERE status = 'running'",
			1, types, values, NULL);
	marked = SPI_processed;
	execute("UPDATE perfopt.jobs"
			"   SET last_status = 'failed', last_error = $1, last_finish = now(),"
			"       failures = failures + 1, next_run = now()"
			" WHERE last_status = 'running'",
			1, types, values, NULL);
	if (marked > 0)
		ereport(LOG,
				(errmsg("perfopt launcher marked %d interrupted job run(s) as failed", marked)));
}

/* Step: read the enabled jobs into a JobTable, most overdue first */
static void
read_jobs(void *arg)
{
	JobTable   *table = (JobTable *) arg;
	Oid			namespace;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(perfopt_sample_interval)};

	table->extension = get_extension_oid("perfopt", true);
	table->jobs = NIL;
	if (!OidIsValid(table->extension))
		return;

	/* an extension older than its library has no jobs table until updated */
	namespace = get_namespace_oid("perfopt", true);
	if (!OidIsValid(namespace) || !OidIsValid(get_relname_relid("jobs", namespace)))
	{
		if (!update_awaited)
			ereport(LOG,
					(errmsg("perfopt launcher waits for table perfopt.jobs"),
					 errhint("Run ALTER EXTENSION perfopt UPDATE in database \"%s\".",
							 perfopt_database)));
		update_awaited = true;
		table->extension = InvalidOid;
		return;
	}
	update_awaited = false;

	if (table->extension != interrupted_marked_for)
	{
		mark_interrupted_runs();
		interrupted_marked_for = table->extension;
	}

	execute("SELECT job_name, command,"
			"       (1000 * extract(epoch FROM s.schedule))::int8,"
			"       (1000 * extract(epoch FROM timeout))::int8,"
			"       failures,"
			"       CASE WHEN last_start IS NULL THEN now()"
			"            WHEN failures > 0 AND next_run IS NOT NULL THEN next_run"
			"            ELSE last_start + s.schedule END AS due"
			"  FROM perfopt.jobs,"
			"       LATERAL (SELECT coalesce(schedule, make_interval(secs => $1))) s(schedule)"
			" WHERE enabled"
			" ORDER BY due, job_name",
			1, types, values, NULL);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext oldcxt = MemoryContextSwitchTo(round_cxt);
		Job		   *job = palloc0(sizeof(Job));
		bool		isnull;

		job->name = SPI_getvalue(tuple, desc, 1);
		job->command = SPI_getvalue(tuple, desc, 2);
		job->schedule_ms = DatumGetInt64(SPI_getbinval(tuple, desc, 3, &isnull));
		job->timeout_ms = DatumGetInt64(SPI_getbinval(tuple, desc, 4, &isnull));
		job->failures = DatumGetInt32(SPI_getbinval(tuple, desc, 5, &isnull));
		job->due = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 6, &isnull));
		table->jobs = lappend(table->jobs, job);
		MemoryContextSwitchTo(oldcxt);
	}
}

/* Step: record that a run starts */
static void
record_start(void *arg)
{
	JobRun	   *run = (JobRun *) arg;
	Oid			types[2] = {TEXTOID, TIMESTAMPTZOID};
	Datum		values[2] = {CStringGetTextDatum(run->job->name),
	TimestampTzGetDatum(run->started)};
	bool		isnull;

	execute("INSERT INTO perfopt.job_runs (job_name, started_at, status)"
			" VALUES ($1, $2, 'running') RETURNING run_id",
			2, types, values, NULL);
	run->run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
	execute("UPDATE perfopt.jobs SET last_start = $2, last_status = 'running'"
			" WHERE job_name = $1",
			2, types, values, NULL);
}

/* Error context: name the job in messages its command raises */
static void
job_error_callback(void *arg)
{
	errcontext("perfopt job \"%s\"", (const char *) arg);
}

/* Step: the job's own work (run_job arms its timeout) */
static void
run_command(void *arg)
{
	JobRun	   *run = (JobRun *) arg;
	ErrorContextCallback callback;

	callback.callback = job_error_callback;
	callback.arg = run->job->name;
	callback.previous = error_context_stack;
	error_context_stack = &callback;

	debug_query_string = run->job->command;
	pgstat_report_activity(STATE_RUNNING, run->job->command);

	execute(run->job->command, 0, NULL, NULL, NULL);
	debug_query_string = NULL;

	error_context_stack = callback.previous;
}

/*
 * The delay before retrying a job after its failures-th consecutive
 * failure: doubling from a second, at most the job's schedule, and jittered
 * by a quarter either way so that failing jobs do not retry in step.
 */
static int64
retry_delay_ms(int failures, int64 schedule_ms)
{
	double		delay = RETRY_BASE_MS * pow(2.0, Min(failures - 1, 30));

	delay = Min(delay, (double) schedule_ms);
	delay *= 0.75 + 0.5 * pg_prng_double(&pg_global_prng_state);
	return (int64) delay;
}

/* Step: record how a run ended, and when the job runs next */
static void
record_finish(void *arg)
{
	JobRun	   *run = (JobRun *) arg;
	bool		failed = (run->error != NULL || run->failure != NULL);
	double		duration_ms = (run->finished - run->started) / 1000.0;
	TimestampTz next_run;
	Oid			types[8] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID,
	FLOAT8OID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = "        ";

	if (failed)
		next_run = TimestampTzPlusMilliseconds(run->finished,
											   retry_delay_ms(run->job->failures + 1,
															  run->job->schedule_ms));
	else
		next_run = TimestampTzPlusMilliseconds(run->started, run->job->schedule_ms);

	values[0] = Int64GetDatum(run->run_id);
	values[1] = TimestampTzGetDatum(run->finished);
	values[2] = CStringGetTextDatum(failed ? "failed" : "succeeded");
	if (run->error != NULL)
	{
		values[3] = CStringGetTextDatum(unpack_sql_state(run->error->sqlerrcode));
		values[4] = CStringGetTextDatum(run->error->message);
	}
	else if (run->failure != NULL)
	{
		nulls[3] = 'n';
		values[4] = CStringGetTextDatum(run->failure);
	}
	else
	{
		nulls[3] = 'n';
		nulls[4] = 'n';
	}
	values[5] = Float8GetDatum(duration_ms);
	values[6] = TimestampTzGetDatum(next_run);
	values[7] = CStringGetTextDatum(run->job->name);

	execute("UPDATE perfopt.job_runs"
			"   SET finished_at = $2, status = $3, sqlstate = $4, message = $5, duration_ms = $6"
			" WHERE run_id = $1",
			8, types, values, nulls);
	execute("UPDATE perfopt.jobs"
			"   SET last_finish = $2, last_status = $3, last_error = $5,"
			"       last_duration_ms = $6, next_run = $7,"
			"       failures = CASE WHEN $3 = 'failed' THEN failures + 1 ELSE 0 END"
			" WHERE job_name = $8",
			8, types, values, nulls);
}

/* Run one job and record it in perfopt.job_runs and perfopt.jobs */
static void
run_job(Job *job)
{
	JobRun		run;
	ErrorData  *error;

	memset(&run, 0, sizeof(run));
	run.job = job;
	run.started = GetCurrentTimestamp();

	if (run_in_transaction(record_start, &run, 0) != NULL)
		return;					/* the error is in the server log */

	run.error = run_in_transaction(run_command, &run,
								   (int) Min(job->timeout_ms, INT_MAX));
	run.finished = GetCurrentTimestamp();

	error = run_in_transaction(record_finish, &run, 0);
	if (error != NULL)
		ereport(LOG,
				(errmsg("perfopt launcher could not record the end of job \"%s\"", job->name)));
}

/*
 * One round: run the most overdue job, if one is due; return how long to
 * sleep before the next round.
 */
static long
launcher_round(void)
{
	JobTable	table;
	Job		   *job;
	TimestampTz now;
	long		secs;
	int			usecs;
	long		sleep_ms;

	if (RecoveryInProgress())
		return LAUNCHER_IDLE_SLEEP_MS;

	table.extension = InvalidOid;
	table.jobs = NIL;
	if (run_in_transaction(read_jobs, &table, 0) != NULL ||
		!OidIsValid(table.extension))
		return LAUNCHER_IDLE_SLEEP_MS;

	/* actions the orchestrator queued come before jobs */
	if (perfopt_run_next_action(round_cxt))
		return 0;

	if (table.jobs == NIL)
		return LAUNCHER_MAX_SLEEP_MS;

	job = (Job *) linitial(table.jobs);
	now = GetCurrentTimestamp();
	if (job->due <= now)
	{
		run_job(job);
		return 0;
	}

	TimestampDifference(now, job->due, &secs, &usecs);
	sleep_ms = secs * 1000 + (usecs + 999) / 1000;
	return Min(sleep_ms, LAUNCHER_MAX_SLEEP_MS);
}

/* Entry point of the launcher worker */
void
perfopt_launcher_main(Datum main_arg)
{
	(void) perfopt_worker_start("perfopt launcher");
	round_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt launcher round",
									  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		(void) perfopt_worker_reload();

		MemoryContextSwitchTo(round_cxt);
		sleep_ms = launcher_round();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_cxt);

		if (sleep_ms > 0)
			(void) perfopt_worker_wait(0, PGINVALID_SOCKET, sleep_ms);
	}
}
