/*-------------------------------------------------------------------------
 *
 * actions.c
 *	  Running the orchestrator's queued actions, each outside any
 *	  transaction block, as the owner of the rule that asked for it; and
 *	  the entry points that queue actions for their caller.
 *
 * run_optimization_cycle() (SQL) decides what to do and queues each
 * statement in perfopt.action_log.  Many of them cannot run inside the
 * cycle's transaction: VACUUM, CREATE INDEX CONCURRENTLY, REINDEX
 * CONCURRENTLY refuse a transaction block and a function.  So the launcher,
 * between jobs, takes the oldest queued action and runs it the way a
 * client's simple query runs, at top level in a transaction of its own:
 * parse, plan, and a portal run with isTopLevel set.  Each run is three
 * transactions, like a job: one that claims the action and checks it
 * again (perfopt.recheck_action: is its owner still allowed, does its rule
 * still run as that owner), the action itself, and one that records the
 * outcome through perfopt.record_action_outcome(), which also keeps the
 * rule's failure budget.  An action that was running when the launcher
 * died is marked failed when it comes back.
 *
 * The launcher's session is a superuser's, so an action runs the way
 * PostgreSQL's maintenance commands run a table owner's code: as the
 * rule's owner, under SECURITY_RESTRICTED_OPERATION (no SET ROLE, no
 * temporary objects), in a GUC nest level (nothing it sets survives it),
 * with the owner's own search_path (perfopt_begin_as_role).  Before it
 * runs, its statement must be of the kind its action makes (a VACUUM for
 * vacuum_analyze, a CREATE INDEX for create_index ...), name only tables
 * whose owner's privileges the action's owner has, and an index it creates
 * may call only built-in functions and operators or ones the table's owner
 * owns.  Transaction control is refused, and prepared statements and
 * session advisory locks an action leaves are dropped, so that the next
 * job finds the session as it was.
 *
 * VACUUM and CONCURRENTLY commit and start transactions while the portal
 * runs.  A security context must not outlive a transaction (StartTransaction
 * asserts so), and the commit pops the GUC nest level.  So at such a commit
 * the action drops to the owner without restrictions, as a client session
 * of the owner running the same VACUUM would be; only PostgreSQL's own code
 * runs there, and it restricts itself again around the table owner's code
 * (vacuum_rel, index_concurrently_build, validate_index).  At the end the
 * launcher's user, security context and settings are put back, on success
 * and on error, after the abort, since an abort restores the user that the
 * last transaction started with.
 *
 * Whoever calls perfopt.optimize(), perfopt.rollback_action() or
 * perfopt.run_optimization_cycle() is taken from GetUserId(), never from
 * session_user or an argument: these are C functions that note the caller,
 * then do their work as the extension's owner, as a SECURITY DEFINER
 * function would, passing the caller to the SQL that checks it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/prepare.h"
#include "commands/tablecmds.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "parser/parse_utilcmd.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "bgw/worker.h"
#include "common/security.h"
#include "orchestrator/actions.h"

PG_FUNCTION_INFO_V1(perfopt_optimize);
PG_FUNCTION_INFO_V1(perfopt_rollback_action);
PG_FUNCTION_INFO_V1(perfopt_run_optimization_cycle);
PG_FUNCTION_INFO_V1(perfopt_resolve_relation);
PG_FUNCTION_INFO_V1(perfopt_role_search_path_sql);

/* an action runs at most this long */
#define ACTION_TIMEOUT_MS	(60 * 60 * 1000)

/* One queued action, as claimed */
typedef struct QueuedAction
{
	int64		id;
	char	   *kind;			/* action_log.action */
	char	   *statement;
	Oid			owner;
	char	   *refused;		/* why recheck_action refused it, or NULL */
} QueuedAction;

/* whether this process already failed the actions a dead launcher left */
static bool interrupted_marked = false;

/* The owner an action runs as while its portal runs, for the commit callback */
static Oid	running_owner = InvalidOid;
static int	running_context = 0;
static bool callback_registered = false;

/* Run one SQL command through SPI; errors propagate */
static void
execute(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

/*
 * A transaction that an action's command commits while its portal runs
 * (VACUUM, CONCURRENTLY): leave it as the owner without restrictions, since
 * no security context may outlive a transaction; see the top of the file.
 */
static void
action_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && OidIsValid(running_owner))
		SetUserIdAndSecContext(running_owner, running_context);
}

/* What claim_step works on */
typedef struct Claim
{
	QueuedAction *action;
	MemoryContext cxt;			/* where the action is copied to */
	bool		claimed;
} Claim;

/*
 * Step: fail what a dead launcher left running, then claim the oldest
 * queued action and check it again.
 */
static void
claim_step(void *arg)
{
	Claim	   *claim = (Claim *) arg;
	QueuedAction *action = claim->action;
	Oid			namespace = get_namespace_oid("perfopt", true);

	/* an extension older than the library has no action_log */
	if (!OidIsValid(namespace) ||
		!OidIsValid(get_relname_relid("action_log", namespace)))
		return;

	if (!interrupted_marked)
	{
		execute("SELECT perfopt.record_action_outcome(id, false,"
				" 'interrupted: the perfopt launcher stopped before the action finished')"
				"  FROM perfopt.action_log WHERE outcome OPERATOR(pg_catalog.=) 'running'",
				0, NULL, NULL, NULL);
		interrupted_marked = true;
	}
	execute("UPDATE perfopt.action_log SET outcome = 'running', started_at = pg_catalog.clock_timestamp()"
			" WHERE id OPERATOR(pg_catalog.=)"
			"       (SELECT id FROM perfopt.action_log WHERE outcome OPERATOR(pg_catalog.=) 'queued'"
			"         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
			" RETURNING id, action, statement, owner::pg_catalog.oid",
			0, NULL, NULL, NULL);
	if (SPI_processed == 1)
	{
		HeapTuple	tuple = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(claim->cxt);

		action->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		action->kind = SPI_getvalue(tuple, desc, 2);
		action->statement = SPI_getvalue(tuple, desc, 3);
		action->owner = DatumGetObjectId(SPI_getbinval(tuple, desc, 4, &isnull));
		action->refused = NULL;
		MemoryContextSwitchTo(old);
		claim->claimed = true;

		/* checked again now, not only when it was written */
		if (!OidIsValid(LookupFuncName(list_make2(makeString("perfopt"),
												  makeString("recheck_action")),
									   1, (Oid[]) {INT8OID}, true)))
			action->refused = "perfopt.recheck_action() is missing: run ALTER EXTENSION perfopt UPDATE";
		else
		{
			Oid			types[1] = {INT8OID};
			Datum		values[1] = {Int64GetDatum(action->id)};

			execute("SELECT perfopt.recheck_action($1)", 1, types, values, NULL);
			if (SPI_processed == 1)
			{
				old = MemoryContextSwitchTo(claim->cxt);
				action->refused = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
				MemoryContextSwitchTo(old);
			}
		}
		if (action->statement == NULL && action->refused == NULL)
			action->refused = "the action has no statement";
	}
}

/*
 * Run step(arg) as one of perfopt's own steps: the extension locked, as
 * the launcher's user with perfopt's own search_path, SPI connected; the
 * error is logged and returned (in cxt).
 */
static ErrorData *
own_step(PerfoptStepFunction step, void *arg, MemoryContext cxt)
{
	PerfoptStep how = {
		.flags = PERFOPT_STEP_LOCK_EXTENSION | PERFOPT_STEP_AS_ROLE | PERFOPT_STEP_SPI,
		.role = InvalidOid,
		.cxt = cxt,
	};

	return perfopt_run_step(&how, step, arg);
}

/*
 * In a transaction of its own: claim the oldest queued action (claim_step).
 * Returns false when there is none, or no action_log (the extension is
 * older than the library), or on an error.
 */
static bool
claim_action(QueuedAction *action, MemoryContext cxt)
{
	Claim		claim = {.action = action, .cxt = cxt, .claimed = false};

	if (own_step(claim_step, &claim, cxt) != NULL)
		return false;
	return claim.claimed;
}

/* The owner of a relation, function, operator, type or operator class */
static Oid
object_owner(int cacheid, Oid objectid)
{
	HeapTuple	tuple = SearchSysCache1(cacheid, ObjectIdGetDatum(objectid));
	Oid			owner = InvalidOid;

	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	switch (cacheid)
	{
		case RELOID:
			owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
			break;
		case PROCOID:
			owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
			break;
		case OPEROID:
			owner = ((Form_pg_operator) GETSTRUCT(tuple))->oprowner;
			break;
		case TYPEOID:
			owner = ((Form_pg_type) GETSTRUCT(tuple))->typowner;
			break;
		case CLAOID:
			owner = ((Form_pg_opclass) GETSTRUCT(tuple))->opcowner;
			break;
	}
	ReleaseSysCache(tuple);
	return owner;
}

/* What an index's code may be: built in, or the table owner's own */
typedef struct IndexCodeCheck
{
	Oid			table_owner;
	const char *table;
} IndexCodeCheck;

/* Refuse an object of an index definition that is neither built in nor the table owner's */
static void
check_index_object(IndexCodeCheck *check, int cacheid, Oid objectid, const char *what)
{
	Oid			owner;

	if (objectid < FirstNormalObjectId)
		return;
	owner = object_owner(cacheid, objectid);
	if (owner == check->table_owner)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("the index on %s would run %s %u, which role %s owns, not the table's owner",
					check->table, what, objectid,
					OidIsValid(owner) ? GetUserNameFromId(owner, true) : "?"),
			 errdetail("Every write to the table would run it."),
			 errhint("An index perfopt creates may use only built-in functions and operators, "
					 "or ones the table's owner owns.")));
}

/* check_functions_in_node callback: refuse a function not allowed */
static bool
index_function_refused(Oid funcid, void *context)
{
	check_index_object((IndexCodeCheck *) context, PROCOID, funcid, "function");
	return false;
}

/* Walk an index expression or predicate: functions, operators, domains */
static bool
index_code_walker(Node *node, void *context)
{
	IndexCodeCheck *check = (IndexCodeCheck *) context;

	if (node == NULL)
		return false;
	(void) check_functions_in_node(node, index_function_refused, context);
	switch (nodeTag(node))
	{
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
			check_index_object(check, OPEROID, ((OpExpr *) node)->opno, "operator");
			break;
		case T_ScalarArrayOpExpr:
			check_index_object(check, OPEROID, ((ScalarArrayOpExpr *) node)->opno, "operator");
			break;
		case T_RowCompareExpr:
			{
				ListCell   *lc;

				foreach(lc, ((RowCompareExpr *) node)->opnos)
					check_index_object(check, OPEROID, lfirst_oid(lc), "operator");
			}
			break;
		case T_CoerceToDomain:
			check_index_object(check, TYPEOID, ((CoerceToDomain *) node)->resulttype, "domain");
			break;
		default:
			break;
	}
	return expression_tree_walker(node, index_code_walker, context);
}

/*
 * Parse analysis of a CREATE INDEX, then the check that every function,
 * operator, domain and operator class it names is built in or owned by the
 * table's owner.  The table is locked as CREATE INDEX locks it, by its
 * owner only; the analyzed statement is what runs (a transformed
 * IndexStmt is not analyzed again), so what was checked is what is built.
 */
static IndexStmt *
checked_index_stmt(IndexStmt *stmt, const char *sql)
{
	LOCKMODE	lockmode = stmt->concurrent ? ShareUpdateExclusiveLock : ShareLock;
	Oid			relid = RangeVarGetRelidExtended(stmt->relation, lockmode, 0,
												 RangeVarCallbackOwnsRelation, NULL);
	IndexCodeCheck check;
	Oid			am;
	ListCell   *lc;

	check.table_owner = object_owner(RELOID, relid);
	check.table = get_rel_name(relid);
	stmt = transformIndexStmt(relid, stmt, sql);
	am = get_index_am_oid(stmt->accessMethod, false);
	foreach(lc, stmt->indexParams)
	{
		IndexElem  *elem = lfirst_node(IndexElem, lc);

		if (elem->expr != NULL)
			(void) index_code_walker(elem->expr, &check);
		if (elem->opclass != NIL)
			check_index_object(&check, CLAOID, get_opclass_oid(am, elem->opclass, false),
							   "operator class");
	}
	(void) index_code_walker(stmt->whereClause, &check);
	return stmt;
}

/* Refuse a table the action's owner has not the privileges of the owner of */
static void
check_target(RangeVar *relation)
{
	Oid			relid = RangeVarGetRelid(relation, NoLock, true);
	Oid			owner;

	if (!OidIsValid(relid))
		return;					/* the command itself reports it */
	owner = object_owner(RELOID, relid);
	if (OidIsValid(owner) && !has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role %s may not act on %s, which role %s owns",
						GetUserNameFromId(GetUserId(), false), relation->relname,
						GetUserNameFromId(owner, true)),
				 errhint("An action runs as its owner, on that owner's tables only.")));
}

/* Is stmt ALTER INDEX ... ATTACH PARTITION, and nothing else? */
static bool
is_index_attach(Node *stmt)
{
	AlterTableStmt *alter = (AlterTableStmt *) stmt;

	return IsA(stmt, AlterTableStmt) && alter->objtype == OBJECT_INDEX &&
		list_length(alter->cmds) == 1 &&
		lfirst_node(AlterTableCmd, list_head(alter->cmds))->subtype == AT_AttachPartition;
}

/* Whether kind makes statements of this node type */
static bool
kind_makes(const char *kind, Node *stmt)
{
	NodeTag		tag = nodeTag(stmt);

	if (strcmp(kind, "vacuum_analyze") == 0 || strcmp(kind, "analyze") == 0)
		return tag == T_VacuumStmt && ((VacuumStmt *) stmt)->rels != NIL;
	if (strcmp(kind, "reindex") == 0)
		return tag == T_ReindexStmt && ((ReindexStmt *) stmt)->relation != NULL;
	/* an index of a partitioned table is built ON ONLY, then attached */
	if (strcmp(kind, "create_index") == 0)
		return tag == T_IndexStmt || is_index_attach(stmt);
	if (strcmp(kind, "drop_index") == 0)
		return tag == T_DropStmt && ((DropStmt *) stmt)->removeType == OBJECT_INDEX;
	if (strcmp(kind, "set_table_option") == 0)
		return tag == T_AlterTableStmt;
	if (strcmp(kind, "rollback") == 0)
		return tag == T_IndexStmt || tag == T_AlterTableStmt || is_index_attach(stmt) ||
			(tag == T_DropStmt && ((DropStmt *) stmt)->removeType == OBJECT_INDEX);
	if (strcmp(kind, "cancel_query") == 0 || strcmp(kind, "terminate_backend") == 0 ||
		strcmp(kind, "notify") == 0 || strcmp(kind, "cache_invalidate") == 0 ||
		strcmp(kind, "cache_warm") == 0)
		return tag == T_SelectStmt;
	return false;
}

/*
 * Check an action's statement before it runs, as its owner: one statement,
 * no transaction control, of the kind its action makes (any for sql, which
 * only a superuser's rule has), on tables its owner may act on, and an
 * index whose code is built in or the table owner's.  Returns the
 * statement to run.
 */
static Node *
checked_statement(const QueuedAction *action, Node *stmt)
{
	ListCell   *lc;

	if (IsA(stmt, TransactionStmt))
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("an action may not control transactions"),
				 errhint("Each action runs in a transaction of its own.")));
	if (strcmp(action->kind, "sql") == 0)
		return stmt;
	if (!kind_makes(action->kind, stmt))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the statement of a %s action is a %s", action->kind,
						GetCommandTagName(CreateCommandTag(stmt))),
				 errhint("Only a sql action, in a rule a superuser owns, may run any statement.")));
	switch (nodeTag(stmt))
	{
		case T_VacuumStmt:
			foreach(lc, ((VacuumStmt *) stmt)->rels)
			{
				VacuumRelation *rel = lfirst_node(VacuumRelation, lc);

				if (rel->relation == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("a %s action names its tables", action->kind)));
				check_target(rel->relation);
			}
			break;
		case T_ReindexStmt:
			check_target(((ReindexStmt *) stmt)->relation);
			break;
		case T_AlterTableStmt:
			check_target(((AlterTableStmt *) stmt)->relation);
			if (is_index_attach(stmt))
			{
				AlterTableCmd *cmd = linitial_node(AlterTableCmd, ((AlterTableStmt *) stmt)->cmds);

				check_target(castNode(PartitionCmd, cmd->def)->name);
			}
			break;
		case T_DropStmt:
			foreach(lc, ((DropStmt *) stmt)->objects)
				check_target(makeRangeVarFromNameList((List *) lfirst(lc)));
			break;
		case T_IndexStmt:
			return (Node *) checked_index_stmt((IndexStmt *) stmt, action->statement);
		default:
			break;
	}
	return stmt;
}

/*
 * Run one statement of an action the way a client's simple query runs, at
 * top level, so that VACUUM and CONCURRENTLY work.  The parse and plan
 * trees go to cxt, not to the transaction: VACUUM and CONCURRENTLY commit
 * it and start new ones while the portal runs.
 */
static void
execute_one(const QueuedAction *action, RawStmt *parsetree, const char *sql, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	bool		snapshot_set = false;
	List	   *querytrees;
	List	   *plantrees;
	Portal		portal;
	DestReceiver *receiver;
	QueryCompletion qc;

	if (analyze_requires_snapshot(parsetree))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		snapshot_set = true;
	}
	parsetree->stmt = checked_statement(action, parsetree->stmt);
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

	/* a commit inside the portal leaves as the owner, unrestricted */
	running_owner = action->owner;
	(void) PortalRun(portal, FETCH_ALL, true, true, receiver, receiver, &qc);
	running_owner = InvalidOid;
	receiver->rDestroy(receiver);
	PortalDrop(portal, false);

	if (IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("an action may not leave a transaction block open")));
}

/*
 * Run an action's statement; the caller has started a transaction and
 * become the action's owner.  An action is one statement, but for the
 * index of a partitioned table, which PostgreSQL builds only as several
 * (CREATE INDEX ... ON ONLY the parent, CREATE INDEX CONCURRENTLY on each
 * partition, ALTER INDEX ... ATTACH PARTITION): those run one after the
 * other, each at top level as psql would send them.  A CONCURRENTLY commits
 * and leaves the owner unrestricted (see the top of the file), so each
 * statement after the first is restricted again before it runs; the
 * statements name every object with its schema, since the commit also
 * ends the owner's search_path.
 */
static void
execute_toplevel(const QueuedAction *action, MemoryContext cxt)
{
	const char *sql = action->statement;
	MemoryContext old = MemoryContextSwitchTo(cxt);
	List	   *parsetrees = pg_parse_query(sql);
	ListCell   *lc;

	MemoryContextSwitchTo(old);
	if (list_length(parsetrees) > 1)
	{
		bool		index_build = strcmp(action->kind, "create_index") == 0 ||
			strcmp(action->kind, "rollback") == 0;

		foreach(lc, parsetrees)
		{
			Node	   *stmt = lfirst_node(RawStmt, lc)->stmt;

			if (!index_build || !(IsA(stmt, IndexStmt) || is_index_attach(stmt)))
				index_build = false;
		}
		if (!index_build)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("an action must be one statement, not %d", list_length(parsetrees)),
					 errhint("Only the index of a partitioned table is built with several: "
							 "CREATE INDEX and ALTER INDEX ... ATTACH PARTITION.")));
	}
	else if (list_length(parsetrees) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an action must be one statement, not %d", list_length(parsetrees)),
				 errhint("Give each statement an action of its own.")));

	foreach(lc, parsetrees)
	{
		RawStmt    *parsetree = lfirst_node(RawStmt, lc);

		if (foreach_current_index(lc) > 0)
		{
			SetUserIdAndSecContext(action->owner, running_context | SECURITY_RESTRICTED_OPERATION);
			debug_query_string = sql;
		}
		execute_one(action, parsetree, sql, cxt);
	}
}

/*
 * Put back what an action may have left in the launcher's session beyond
 * its transaction: prepared statements and session advisory locks.
 * (Temporary objects, SET ROLE and LISTEN are refused to a restricted
 * operation; settings go with the GUC nest level.)
 */
static void
forget_session_state(void)
{
	DropAllPreparedStatements();
	LockReleaseAll(USER_LOCKMETHOD, true);
}

/* What action_step works on */
typedef struct ActionRun
{
	const QueuedAction *action;
	MemoryContext cxt;
} ActionRun;

/* Step: the action's statement, at top level, as its owner */
static void
action_step(void *arg)
{
	ActionRun  *run = (ActionRun *) arg;

	debug_query_string = run->action->statement;
	execute_toplevel(run->action, run->cxt);
}

/* Run the action as its owner, restricted; returns the error, or NULL */
static ErrorData *
run_action(const QueuedAction *action, MemoryContext cxt)
{
	ActionRun	run = {.action = action, .cxt = cxt};
	PerfoptStep how = {
		.flags = PERFOPT_STEP_AS_ROLE,
		.role = action->owner,
		.timeout_ms = ACTION_TIMEOUT_MS,
		.activity = action->statement,
		.cxt = cxt,
	};
	Oid			launcher_user;
	ErrorData  *error;

	/* a commit inside the portal drops to the owner with the launcher's context */
	GetUserIdAndSecContext(&launcher_user, &running_context);
	if (!callback_registered)
	{
		RegisterXactCallback(action_xact_callback, NULL);
		callback_registered = true;
	}

	error = perfopt_run_step(&how, action_step, &run);
	running_owner = InvalidOid;
	return error;
}

/* What outcome_step records */
typedef struct Outcome
{
	const QueuedAction *action;
	bool		succeeded;
	const char *message;
} Outcome;

/* Step: forget the action's session state, record how it ended */
static void
outcome_step(void *arg)
{
	Outcome    *outcome = (Outcome *) arg;
	Oid			types[3] = {INT8OID, BOOLOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = Int64GetDatum(outcome->action->id);
	values[1] = BoolGetDatum(outcome->succeeded);
	if (outcome->message != NULL)
		values[2] = CStringGetTextDatum(outcome->message);
	else
		nulls[2] = 'n';
	forget_session_state();
	execute("SELECT perfopt.record_action_outcome($1, $2, $3)", 3, types, values, nulls);
}

/* Record how the action ended, in a transaction of its own */
static void
record_outcome(const QueuedAction *action, bool succeeded, const char *message, MemoryContext cxt)
{
	Outcome		outcome = {.action = action, .succeeded = succeeded, .message = message};

	(void) own_step(outcome_step, &outcome, cxt);
}

/*
 * Run the oldest queued action, if there is one; returns whether one was
 * taken.  Allocations go to cxt, which the caller resets.
 */
bool
perfopt_run_next_action(MemoryContext cxt)
{
	QueuedAction action;
	ErrorData  *error;

	if (!claim_action(&action, cxt))
		return false;
	if (action.refused != NULL)
	{
		ereport(LOG,
				(errmsg("perfopt launcher refused action %lld: %s",
						(long long) action.id, action.refused)));
		record_outcome(&action, false, psprintf("refused: %s", action.refused), cxt);
		return true;
	}
	error = run_action(&action, cxt);
	if (error == NULL)
		record_outcome(&action, true, NULL, cxt);
	else
		record_outcome(&action, false,
					   psprintf("%s: %s", unpack_sql_state(error->sqlerrcode),
								error->message ? error->message : ""), cxt);
	return true;
}

/* ------------------------------------------------------------------------
 * Entry points that act for their caller
 */

/* The role that owns extension perfopt */
static Oid
extension_owner(void)
{
	Oid			extension = get_extension_oid("perfopt", false);
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extension));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		elog(ERROR, "extension perfopt has no owner");
	return owner;
}

/*
 * Run sql (one SELECT of one value) as the extension's owner, as a SECURITY
 * DEFINER function runs, with $1 the caller: GetUserId() before the
 * switch.  The value is copied out to the caller's memory.  An error needs
 * no cleanup here: the (sub)transaction's abort restores user and settings.
 */
static Datum
call_for_caller(const char *sql, int nargs, Oid *types, Datum *values, char *nulls,
				bool *isnull)
{
	Oid			saved_user;
	int			saved_context;
	int			nest_level;
	Datum		result = (Datum) 0;
	int			ret;

	values[0] = ObjectIdGetDatum(GetUserId());
	types[0] = REGROLEOID;
	nulls[0] = ' ';

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(extension_owner(), saved_context | SECURITY_LOCAL_USERID_CHANGE);
	nest_level = NewGUCNestLevel();
	(void) set_config_option("search_path", PERFOPT_OWN_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	SPI_connect();
	ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "%s returned no row", sql);
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	if (!*isnull)
	{
		int16		typlen;
		bool		typbyval;

		get_typlenbyval(SPI_gettypeid(SPI_tuptable->tupdesc, 1), &typlen, &typbyval);
		result = SPI_datumTransfer(result, typbyval, typlen);
	}
	SPI_finish();

	AtEOXact_GUC(true, nest_level);
	SetUserIdAndSecContext(saved_user, saved_context);
	return result;
}

/* the most arguments an entry point passes on, after the caller */
#define CALLER_MAX_ARGS 4

/*
 * An entry point that acts for its caller: check that fcinfo holds nargs
 * arguments, pass them, of argtypes, after $1 (the caller) to sql, and
 * return its value (NULL through fcinfo->isnull).
 */
static Datum
act_for_caller(FunctionCallInfo fcinfo, const char *name, const char *sql,
			   int nargs, const Oid *argtypes)
{
	Oid			types[CALLER_MAX_ARGS + 1];
	Datum		values[CALLER_MAX_ARGS + 1];
	char		nulls[CALLER_MAX_ARGS + 1];
	bool		isnull;
	Datum		result;

	Assert(nargs <= CALLER_MAX_ARGS);
	if (PG_NARGS() != nargs)
		elog(ERROR, "%s takes %d argument%s", name, nargs, nargs == 1 ? "" : "s");
	for (int i = 0; i < nargs; i++)
	{
		values[i + 1] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i + 1] = PG_ARGISNULL(i) ? 'n' : ' ';
		types[i + 1] = argtypes[i];
	}
	result = call_for_caller(sql, nargs + 1, types, values, nulls, &isnull);
	fcinfo->isnull = isnull;
	return result;
}

/* perfopt.optimize(action, target, dry_run, params): one action by hand, for the caller */
Datum
perfopt_optimize(PG_FUNCTION_ARGS)
{
	return act_for_caller(fcinfo, "perfopt.optimize",
						  "SELECT perfopt.optimize_as($1, $2, $3, $4, $5)",
						  4, (Oid[]) {TEXTOID, TEXTOID, BOOLOID, JSONBOID});
}

/* perfopt.rollback_action(action_id): queue an undo, for the caller */
Datum
perfopt_rollback_action(PG_FUNCTION_ARGS)
{
	return act_for_caller(fcinfo, "perfopt.rollback_action",
						  "SELECT perfopt.rollback_action_as($1, $2)",
						  1, (Oid[]) {INT8OID});
}

/* perfopt.run_optimization_cycle(at): one cycle, for the caller */
Datum
perfopt_run_optimization_cycle(PG_FUNCTION_ARGS)
{
	return act_for_caller(fcinfo, "perfopt.run_optimization_cycle",
						  "SELECT perfopt.optimization_cycle($1, $2)",
						  1, (Oid[]) {TIMESTAMPTZOID});
}

/*
 * perfopt.resolve_relation(name, role): the relation a role's text names,
 * looked up with that role's own default search_path, not the caller's;
 * NULL when there is none.  Only catalogs are read: no code runs.
 */
Datum
perfopt_resolve_relation(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	Oid			role = PG_GETARG_OID(1);
	PerfoptRoleSwitch sw;
	Oid			relid;
	List	   *names;

	if (VARSIZE_ANY_EXHDR(name) > 3 * NAMEDATALEN + 8)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a relation name is at most %d bytes", 3 * NAMEDATALEN + 8),
				 errhint("Name the table as schema.table.")));
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		PG_RETURN_NULL();
	names = stringToQualifiedNameList(text_to_cstring(name));
	/* as the role: "$user" and the schemas it may use are its own */
	perfopt_begin_as_role(role, &sw);
	relid = RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true);
	perfopt_end_as_role(&sw);
	if (!OidIsValid(relid))
		PG_RETURN_NULL();
	PG_RETURN_OID(relid);
}

/* perfopt.role_search_path(role): the search_path a role's sessions start with here */
Datum
perfopt_role_search_path_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(perfopt_role_search_path(PG_GETARG_OID(0))));
}
