/*-------------------------------------------------------------------------
 *
 * actions.c
 *	  Running the orchestrator's queued actions, each outside any
 *	  transaction block, as the owner of the rule that asked for it.
 *
 * run_optimization_cycle() (SQL) decides what to do and queues each
 * statement in perfopt.action_log.  Many of them cannot run inside the
 * cycle's transaction: VACUUM, CREATE INDEX CONCURRENTLY, REINDEX
 * CONCURRENTLY refuse a transaction block and a function.  So the launcher,
 * between jobs, takes the oldest queued action and runs it the way a
 * client's simple query runs, at top level in a transaction of its own:
 * parse, plan, and a portal run with isTopLevel set.  Each run is three
 * transactions, like a job: one that marks the action running, the action
 * itself under the identity of the rule's owner, and one that records the
 * outcome through perfopt.record_action_outcome(), which also keeps the
 * rule's failure budget.  An action that was running when the launcher
 * died is marked failed when it comes back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "pgstat.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"

#include "actions.h"
#include "perfopt.h"

/* an action runs at most this long */
#define ACTION_TIMEOUT_MS	(60 * 60 * 1000)

/* One queued action, as claimed */
typedef struct QueuedAction
{
	int64		id;
	char	   *statement;
	Oid			owner;
} QueuedAction;

/* whether this process already failed the actions a dead launcher left */
static bool interrupted_marked = false;

/* Run one SQL command through SPI; errors propagate */
static void
execute(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

/*
 * In a transaction of its own: fail what a dead launcher left running, then
 * claim the oldest queued action.  Returns false when there is none (or no
 * action_log: the extension is older than the library).
 */
static bool
claim_action(QueuedAction *action, MemoryContext cxt)
{
	bool		claimed = false;
	Oid			namespace;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		namespace = get_namespace_oid("perfopt", true);
		if (perfopt_lock_extension() && OidIsValid(namespace) &&
			OidIsValid(get_relname_relid("action_log", namespace)))
		{
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			if (!interrupted_marked)
			{
				execute("SELECT perfopt.record_action_outcome(id, false,"
						" 'interrupted: the perfopt launcher stopped before the action finished')"
						"  FROM perfopt.action_log WHERE outcome = 'running'",
						0, NULL, NULL, NULL);
				interrupted_marked = true;
			}
			execute("UPDATE perfopt.action_log SET outcome = 'running', started_at = clock_timestamp()"
					" WHERE id = (SELECT id FROM perfopt.action_log WHERE outcome = 'queued'"
					"              ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
					" RETURNING id, statement, owner::oid",
					0, NULL, NULL, NULL);
			if (SPI_processed == 1)
			{
				HeapTuple	tuple = SPI_tuptable->vals[0];
				TupleDesc	desc = SPI_tuptable->tupdesc;
				bool		isnull;
				MemoryContext old = MemoryContextSwitchTo(cxt);

				action->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
				action->statement = SPI_getvalue(tuple, desc, 2);
				action->owner = DatumGetObjectId(SPI_getbinval(tuple, desc, 3, &isnull));
				MemoryContextSwitchTo(old);
				claimed = action->statement != NULL;
			}
			SPI_finish();
			PopActiveSnapshot();
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		claimed = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return claimed;
}

/*
 * Run one statement the way a client's simple query runs, at top level, so
 * that VACUUM and CONCURRENTLY work; the caller has started a transaction.
 * The parse and plan trees go to cxt, not to the transaction: VACUUM and
 * CONCURRENTLY commit it and start new ones while the portal runs.
 */
static void
execute_toplevel(const char *sql, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	List	   *parsetrees = pg_parse_query(sql);
	RawStmt    *parsetree;
	bool		snapshot_set = false;
	List	   *querytrees;
	List	   *plantrees;
	Portal		portal;
	DestReceiver *receiver;
	QueryCompletion qc;

	if (list_length(parsetrees) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an action must be one statement, not %d", list_length(parsetrees)),
				 errhint("Give each statement an action of its own.")));
	parsetree = linitial_node(RawStmt, parsetrees);

	if (analyze_requires_snapshot(parsetree))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		snapshot_set = true;
	}
	querytrees = pg_analyze_and_rewrite_fixedparams(parsetree, sql, NULL, 0, NULL);
	plantrees = pg_plan_queries(querytrees, sql, CURSOR_OPT_PARALLEL_OK, NULL);
	if (snapshot_set)
		PopActiveSnapshot();
	MemoryContextSwitchTo(old);

	portal = CreatePortal("", true, true);
	portal->visible = false;
	PortalDefineQuery(portal, NULL, sql, CreateCommandTag(parsetree->stmt), plantrees, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	receiver = CreateDestReceiver(DestNone);
	(void) PortalRun(portal, FETCH_ALL, true, true, receiver, receiver, &qc);
	receiver->rDestroy(receiver);
	PortalDrop(portal, false);
}

/* Run the action as its owner; returns the error, or NULL */
static ErrorData *
run_action(const QueuedAction *action, MemoryContext cxt)
{
	volatile ErrorData *error = NULL;
	Oid			saved_user;
	int			saved_context;

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		SetUserIdAndSecContext(action->owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
		debug_query_string = action->statement;
		pgstat_report_activity(STATE_RUNNING, action->statement);
		enable_timeout_after(STATEMENT_TIMEOUT, ACTION_TIMEOUT_MS);
		execute_toplevel(action->statement, cxt);
		disable_timeout(STATEMENT_TIMEOUT, false);
		SetUserIdAndSecContext(saved_user, saved_context);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(cxt);
		error = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		/* an aborted transaction restores the user it started with */
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
	return (ErrorData *) error;
}

/* Record how the action ended, in a transaction of its own */
static void
record_outcome(const QueuedAction *action, ErrorData *error, MemoryContext cxt)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		Oid			types[3] = {INT8OID, BOOLOID, TEXTOID};
		Datum		values[3];
		char		nulls[3] = {' ', ' ', ' '};

		values[0] = Int64GetDatum(action->id);
		values[1] = BoolGetDatum(error == NULL);
		if (error != NULL)
			values[2] = CStringGetTextDatum(psprintf("%s: %s", unpack_sql_state(error->sqlerrcode),
													 error->message ? error->message : ""));
		else
			nulls[2] = 'n';
		(void) perfopt_lock_extension();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		execute("SELECT perfopt.record_action_outcome($1, $2, $3)", 3, types, values, nulls);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
}

/*
 * Run the oldest queued action, if there is one; returns whether one ran.
 * Allocations go to cxt, which the caller resets.
 */
bool
perfopt_run_next_action(MemoryContext cxt)
{
	QueuedAction action;
	ErrorData  *error;

	if (!claim_action(&action, cxt))
		return false;
	error = run_action(&action, cxt);
	record_outcome(&action, error, cxt);
	return true;
}
