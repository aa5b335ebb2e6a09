/*-------------------------------------------------------------------------
 *
 * whatif.c
 *	  Costing statements with hypothetical indexes (HypoPG).
 *
 * HypoPG 1.3 shows its hypothetical indexes to the planner only while its
 * ProcessUtility hook has seen a plain EXPLAIN start, and forgets that at
 * the next ExecutorEnd.  So a statement is costed by running an EXPLAIN
 * of its analyzed tree through ProcessUtility, as a nested utility
 * statement, with perfopt's ExplainOneQuery_hook in place: the hook plans
 * the statement (the planner then sees the hypothetical indexes), keeps
 * the plan's total cost, and takes the plan through ExecutorStart and
 * ExecutorEnd with EXEC_FLAG_EXPLAIN_ONLY, as EXPLAIN itself does (index
 * scans do not open their index then), so that HypoPG resets its flag.
 * What EXPLAIN would spend on formatting its output is never spent.
 *
 * A statement is costed as the role it belongs to (a pg_stat_statements
 * entry's userid, a foreign key's table owner), restricted and with that
 * role's own search_path (security.c), for exactly the time it takes to
 * plan it: the planner folds IMMUTABLE and STABLE functions, which runs
 * them.  Hypothetical indexes are backend-local in HypoPG, whoever is the
 * current user, so those made as the caller are seen under the switch.
 * perfopt makes them as the caller with search_path pg_catalog, pg_temp,
 * which is also the path their definitions were written for.
 *
 * HypoPG 1.3 cannot hide a real index, and the drop candidates must be
 * costed without theirs.  So a what-if session may name real indexes in
 * whatif->hidden: perfopt's get_relation_info_hook, chained after any
 * other (HypoPG's adds its hypothetical indexes there), takes them out of
 * the relation's index list, and only while perfopt_whatif_cost plans a
 * statement of that session; every other planning sees every index.
 *
 * Every hypothetical index perfopt makes is remembered and dropped at the
 * end, also when the run fails: hypopg_drop_index only frees memory, so it
 * is called directly, which is safe while an error is being handled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/plancat.h"
#include "parser/parse_func.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "common/catalog.h"
#include "common/security.h"
#include "advisor/whatif.h"

/* What the hook found, summed over the statements a rule makes */
static double whatif_total_cost;
static double whatif_rows;
static int	whatif_plans;

/* The real indexes hidden from the planner while a statement is costed */
static List *whatif_hidden = NIL;
static bool whatif_costing = false;

static get_relation_info_hook_type prev_get_relation_info_hook = NULL;

/* The indexes the plans of the statement being costed scan, and their context */
static List *whatif_used = NIL;
static MemoryContext whatif_used_cxt = NULL;

/* Note the indexes a plan tree scans in whatif_used */
static void
note_used_indexes(Plan *plan)
{
	ListCell   *lc;
	List	   *children = NIL;

	if (plan == NULL)
		return;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_IndexScan:
			whatif_used = list_append_unique_oid(whatif_used, ((IndexScan *) plan)->indexid);
			break;
		case T_IndexOnlyScan:
			whatif_used = list_append_unique_oid(whatif_used, ((IndexOnlyScan *) plan)->indexid);
			break;
		case T_BitmapIndexScan:
			whatif_used = list_append_unique_oid(whatif_used, ((BitmapIndexScan *) plan)->indexid);
			break;
		case T_Append:
			children = ((Append *) plan)->appendplans;
			break;
		case T_MergeAppend:
			children = ((MergeAppend *) plan)->mergeplans;
			break;
		case T_BitmapAnd:
			children = ((BitmapAnd *) plan)->bitmapplans;
			break;
		case T_BitmapOr:
			children = ((BitmapOr *) plan)->bitmapplans;
			break;
		case T_SubqueryScan:
			note_used_indexes(((SubqueryScan *) plan)->subplan);
			break;
		case T_CustomScan:
			children = ((CustomScan *) plan)->custom_plans;
			break;
		default:
			break;
	}
	foreach(lc, children)
		note_used_indexes((Plan *) lfirst(lc));
	note_used_indexes(plan->lefttree);
	note_used_indexes(plan->righttree);
}

/*
 * Take the hidden indexes out of a relation's index list while perfopt
 * costs a statement, as if they had been dropped.
 */
static void
whatif_relation_info_hook(PlannerInfo *root, Oid relationObjectId, bool inhparent,
						  RelOptInfo *rel)
{
	ListCell   *lc;

	if (prev_get_relation_info_hook)
		prev_get_relation_info_hook(root, relationObjectId, inhparent, rel);
	if (!whatif_costing || whatif_hidden == NIL)
		return;
	foreach(lc, rel->indexlist)
	{
		IndexOptInfo *index = (IndexOptInfo *) lfirst(lc);

		if (list_member_oid(whatif_hidden, index->indexoid))
			rel->indexlist = foreach_delete_current(rel->indexlist, lc);
	}
}

/* Install the planner hook that hides indexes; from _PG_init */
void
perfopt_whatif_init(void)
{
	prev_get_relation_info_hook = get_relation_info_hook;
	get_relation_info_hook = whatif_relation_info_hook;
}

/* Look up a HypoPG function taking one oid, for a direct call */
static void
lookup_hypopg_function(const char *name, FmgrInfo *finfo)
{
	Oid			argtypes[1] = {OIDOID};
	Oid			schema = perfopt_extension_schema("hypopg");
	List	   *qualified;

	qualified = list_make2(makeString(get_namespace_name(schema)), makeString(pstrdup(name)));
	fmgr_info_cxt(LookupFuncName(qualified, 1, argtypes, false), finfo, TopMemoryContext);
}

/* Start a what-if session; HypoPG must be installed in this database */
void
perfopt_whatif_begin(WhatIf *whatif)
{
	Oid			argtypes[1] = {TEXTOID};
	char	   *sql;

	memset(whatif, 0, sizeof(*whatif));
	sql = psprintf("SELECT indexrelid FROM %s($1)",
				   perfopt_qualified_function("hypopg", "hypopg_create_index"));
	lookup_hypopg_function("hypopg_drop_index", &whatif->drop_fn);
	lookup_hypopg_function("hypopg_relation_size", &whatif->size_fn);

	SPI_connect();
	whatif->create_plan = SPI_prepare(sql, 1, argtypes);
	if (whatif->create_plan == NULL)
		elog(ERROR, "could not prepare hypopg_create_index: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(whatif->create_plan);
	SPI_finish();
}

/*
 * Make a hypothetical index from a CREATE INDEX statement (without a name
 * or CONCURRENTLY), with perfopt's own search_path; returns its OID.
 */
Oid
perfopt_whatif_create(WhatIf *whatif, const char *index_def)
{
	Datum		args[1] = {CStringGetTextDatum(index_def)};
	bool		isnull;
	volatile Oid index = InvalidOid;
	MemoryContext cxt = CurrentMemoryContext;
	PerfoptRoleSwitch sw;

	perfopt_begin_as_role(InvalidOid, &sw);
	PG_TRY();
	{
		SPI_connect();
		if (SPI_execute_plan(whatif->create_plan, args, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "hypopg_create_index returned no index for \"%s\"", index_def);
		index = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
	}
	PG_CATCH();
	{
		perfopt_end_as_role(&sw);
		PG_RE_THROW();
	}
	PG_END_TRY();
	perfopt_end_as_role(&sw);

	MemoryContextSwitchTo(cxt);
	whatif->created = lappend_oid(whatif->created, index);
	return index;
}

void
perfopt_whatif_drop(WhatIf *whatif, Oid index)
{
	(void) FunctionCall1(&whatif->drop_fn, ObjectIdGetDatum(index));
	whatif->created = list_delete_oid(whatif->created, index);
}

/* HypoPG's estimate of the index's size, in bytes */
int64
perfopt_whatif_size(WhatIf *whatif, Oid index)
{
	return DatumGetInt64(FunctionCall1(&whatif->size_fn, ObjectIdGetDatum(index)));
}

/*
 * Plan the statement EXPLAIN hands over, keep its cost, and go through
 * executor start and end as EXPLAIN does.
 */
static void
whatif_explain_hook(Query *query, int cursorOptions, IntoClause *into,
					ExplainState *es, const char *queryString,
					ParamListInfo params, QueryEnvironment *queryEnv)
{
	PlannedStmt *plan;
	QueryDesc  *desc;

	plan = pg_plan_query(query, queryString, cursorOptions, params);
	whatif_total_cost += plan->planTree->total_cost;
	if (whatif_used_cxt != NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(whatif_used_cxt);
		ListCell   *lc;

		note_used_indexes(plan->planTree);
		foreach(lc, plan->subplans)
			note_used_indexes((Plan *) lfirst(lc));
		MemoryContextSwitchTo(old);
	}
	if (IsA(plan->planTree, ModifyTable) && outerPlan(plan->planTree))
		whatif_rows += outerPlan(plan->planTree)->plan_rows;
	else
		whatif_rows += plan->planTree->plan_rows;
	whatif_plans++;

	desc = CreateQueryDesc(plan, queryString, GetActiveSnapshot(), InvalidSnapshot,
						   None_Receiver, params, queryEnv, 0);
	ExecutorStart(desc, EXEC_FLAG_EXPLAIN_ONLY);
	ExecutorEnd(desc);
	FreeQueryDesc(desc);
}

/*
 * The planner's total cost for an analyzed statement with the hypothetical
 * indexes that exist now and without whatif->hidden, in whatif->used the
 * indexes its plan scans (if whatif->collect_used), and in *rows the rows it returns or, for a
 * write, the rows it writes.  The statement is copied, not changed.  It is
 * planned as role (InvalidOid: as the caller, for the caller's own text).
 */
double
perfopt_whatif_cost(WhatIf *whatif, Query *query, const char *query_text, double *rows,
					Oid role)
{
	PerfoptRoleSwitch sw;
	ExplainOneQuery_hook_type prev_hook = ExplainOneQuery_hook;
	ExplainStmt *explain = makeNode(ExplainStmt);
	PlannedStmt *wrapper = makeNode(PlannedStmt);
	Query	   *copy = copyObject(query);

	copy->queryId = 0;			/* keep pg_stat_statements out of it */
	explain->query = (Node *) copy;
	wrapper->commandType = CMD_UTILITY;
	wrapper->canSetTag = false;
	wrapper->utilityStmt = (Node *) explain;
	wrapper->stmt_location = -1;
	wrapper->stmt_len = 0;

	whatif_total_cost = 0;
	whatif_rows = 0;
	whatif_plans = 0;
	if (OidIsValid(role))
		perfopt_begin_as_role(role, &sw);
	ExplainOneQuery_hook = whatif_explain_hook;
	whatif_hidden = whatif->hidden;
	whatif_costing = true;
	whatif_used = NIL;
	whatif_used_cxt = whatif->collect_used ? CurrentMemoryContext : NULL;
	PG_TRY();
	{
		ProcessUtility(wrapper, query_text, false, PROCESS_UTILITY_QUERY,
					   NULL, NULL, None_Receiver, NULL);
	}
	PG_FINALLY();
	{
		whatif_costing = false;
		whatif_hidden = NIL;
		whatif->used = whatif_used;
		whatif_used = NIL;
		whatif_used_cxt = NULL;
		ExplainOneQuery_hook = prev_hook;
		if (OidIsValid(role))
			perfopt_end_as_role(&sw);
	}
	PG_END_TRY();

	whatif->planner_calls += whatif_plans;
	if (rows)
		*rows = whatif_rows;
	return whatif_total_cost;
}

/*
 * Drop every hypothetical index of the session.  Called at the end of a
 * run and from error cleanup: it calls HypoPG directly, never SPI.
 */
void
perfopt_whatif_end(WhatIf *whatif)
{
	while (whatif->created != NIL)
	{
		Oid			index = linitial_oid(whatif->created);

		whatif->created = list_delete_first(whatif->created);
		(void) FunctionCall1(&whatif->drop_fn, ObjectIdGetDatum(index));
	}
	if (whatif->create_plan)
	{
		SPI_freeplan(whatif->create_plan);
		whatif->create_plan = NULL;
	}
}
