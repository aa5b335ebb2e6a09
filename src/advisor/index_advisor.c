/*-------------------------------------------------------------------------
 *
 * index_advisor.c
 *	  perfopt.recommend_indexes, recommend_indexes_for and advise_query:
 *	  the best set of indexes for a workload, proven by the planner.
 *
 * A run:
 *
 * 1. takes the workload (workload.c) and costs every statement with the
 *	  indexes of today (whatif.c), which also gives the rows each write
 *	  statement writes when pg_stat_statements did not say;
 * 2. adds the lookups that foreign keys without an index cost the writes
 *	  of their referenced tables (index_candidates.c);
 * 3. reads the candidates from the statements (index_candidates.c);
 * 4. chooses a set under the budget (index_selection.c), where the cost of
 *	  a configuration is the sum over statements of weight times the
 *	  planner's estimate with those hypothetical indexes, plus what
 *	  maintaining them costs on the workload's writes;
 * 5. ranks the chosen indexes by what each adds to those ranked before,
 *	  and says which statements each speeds up and by how much.
 *
 * Every statement of pg_stat_statements is prepared and planned as the role
 * that ran it (workload.c, whatif.c), never as the caller; one that its
 * role cannot plan (the role is gone, has lost a privilege, or planning
 * fails) is left out and counted in last_advisor_run()'s skipped_as_role.
 * A caller who is not a superuser sees only the statements of the roles
 * whose privileges it has, or all with pg_read_all_stats (pgss.c).  The
 * statements a caller passes to recommend_indexes_for and advise_query are
 * the caller's own, and are planned as the caller.
 *
 * A statement with parameter sets (workload.c) is costed as the weighted
 * mean of its variants' custom plans, at most three planner calls per
 * configuration; one without keeps its generic plan, and each reason says
 * which of the two a statement it names was costed on.
 *
 * Each statement is planned once per configuration of the candidates on
 * its own tables: costs are cached by (statement, that subset), so that a
 * step that adds an index on one table replans only the statements that
 * use it.  The hypothetical indexes that exist in HypoPG are kept in step
 * with the configuration being costed, lazily, table by table.
 *
 * Index maintenance: every row a statement inserts adds an entry to every
 * index of its table, and an update adds one to every index unless it is
 * a HOT update, which needs that no index covers a column it changes.  A
 * new index on a changed column therefore costs an entry in every index of
 * the table for each updated row, not just its own.  One entry is counted
 * as INDEX_ENTRY_COST planner cost units.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "common/catalog.h"
#include "advisor/index_advisor.h"
#include "common/subxact.h"
#include "perfopt.h"
#include "advisor/whatif.h"
#include "advisor/workload.h"
#include "samples/samples.h"

/* Most values advise_query(query, params) takes, over all its sets */
#define MAX_PARAM_VALUES	54000

PG_FUNCTION_INFO_V1(perfopt_recommend_indexes);
PG_FUNCTION_INFO_V1(perfopt_recommend_indexes_for);
PG_FUNCTION_INFO_V1(perfopt_advise_query);
PG_FUNCTION_INFO_V1(perfopt_advise_query_params);
PG_FUNCTION_INFO_V1(perfopt_last_advisor_run);

/*
 * Planner cost units one index entry costs to write: about a page of I/O,
 * for its WAL record and its share of writing back the leaf page it
 * dirties, beside the descent of the tree.
 */
#define INDEX_ENTRY_COST	1.0

/* A statement's share of a step's saving below this is not worth naming */
#define HELPED_STATEMENT_MIN_SHARE	0.005
#define HELPED_STATEMENTS_NAMED		5

typedef struct CachedCost
{
	Bitmapset  *config;			/* the candidates on the statement's tables */
	double		cost;
} CachedCost;

/* What a write statement costs each new index */
typedef struct WriteEffect
{
	int			existing_indexes;	/* indexes of the table written */
	bool		hot_blocked;	/* an existing index covers an updated column */
} WriteEffect;

typedef struct Advisor
{
	List	   *workload;		/* WorkloadStatement * */
	List	   *usages;			/* TableUsage * */
	List	   *candidates;		/* IndexCandidate * */
	List	  **cache;			/* by statement: CachedCost * */
	WriteEffect *writes;		/* by statement */
	int			nstatements;
	Bitmapset  *materialized;	/* candidates that exist in HypoPG now */
	WhatIf		whatif;
	double		baseline;		/* the workload's cost with no new index */
	int			given_up;		/* statements their role failed to plan */
	int64		lookups;
	int64		hits;
} Advisor;

/* One recommendation, ready for output */
typedef struct AdvisorResult
{
	int			rank;
	Oid			relid;
	char	   *index_def;
	const char *kind;
	int64		size;
	double		benefit_pct;
	double		cost_before;
	double		cost_after;
	List	   *queryids;		/* int64 *, of the statements it helps */
	char	   *reason;
} AdvisorResult;

/* Figures of the last run in this session, for perfopt.last_advisor_run() */
static struct
{
	bool		valid;
	int			statements;
	int			skipped_as_role;	/* left out: their role could not plan them */
	int			candidates;
	int64		planner_calls;
	int64		lookups;
	int64		hits;
	double		seconds;
	double		baseline;
	double		final_cost;
} last_run;

static IndexCandidate *
candidate_of(Advisor *advisor, int id)
{
	return (IndexCandidate *) list_nth(advisor->candidates, id);
}

static WorkloadStatement *
statement_of(Advisor *advisor, int number)
{
	return (WorkloadStatement *) list_nth(advisor->workload, number);
}

/* The candidates of config that stand on the statement's tables */
static Bitmapset *
relevant_config(Advisor *advisor, WorkloadStatement *stmt, Bitmapset *config)
{
	Bitmapset  *relevant = NULL;
	int			id = -1;

	while ((id = bms_next_member(config, id)) >= 0)
	{
		if (list_member_oid(stmt->tables, candidate_of(advisor, id)->relid))
			relevant = bms_add_member(relevant, id);
	}
	return relevant;
}

typedef struct CreateStep
{
	Advisor    *advisor;
	IndexCandidate *candidate;
} CreateStep;

static void
create_step(void *arg)
{
	CreateStep *step = (CreateStep *) arg;

	step->candidate->hypothetical =
		perfopt_whatif_create(&step->advisor->whatif, step->candidate->definition);
}

/*
 * Make candidate id exist in HypoPG, learning its size the first time.
 * A candidate HypoPG refuses is marked unusable (size -1), not fatal.
 */
static bool
materialize(Advisor *advisor, int id)
{
	IndexCandidate *candidate = candidate_of(advisor, id);
	CreateStep	step = {advisor, candidate};
	ErrorData  *edata;

	if (bms_is_member(id, advisor->materialized))
		return true;
	if (candidate->size < 0)
		return false;
	edata = perfopt_try_in_subtransaction(create_step, &step);
	if (edata != NULL)
	{
		ereport(DEBUG1,
				(errmsg("perfopt: hypothetical index refused: %s", edata->message),
				 errdetail("%s", candidate->definition)));
		candidate->size = -1;
		return false;
	}
	advisor->materialized = bms_add_member(advisor->materialized, id);
	if (candidate->hypopg_size <= 0)
	{
		candidate->hypopg_size = perfopt_whatif_size(&advisor->whatif, candidate->hypothetical);
		candidate->size = Min(candidate->hypopg_size, perfopt_estimate_index_bytes(candidate));
	}
	return true;
}

static void
dematerialize(Advisor *advisor, int id)
{
	IndexCandidate *candidate = candidate_of(advisor, id);

	perfopt_whatif_drop(&advisor->whatif, candidate->hypothetical);
	candidate->hypothetical = InvalidOid;
	advisor->materialized = bms_del_member(advisor->materialized, id);
}

static char *statement_label(WorkloadStatement *stmt);

/* One what-if costing, as a step of its own subtransaction */
typedef struct CostStep
{
	Advisor    *advisor;
	WorkloadStatement *stmt;
	double		cost;
	double		rows;
} CostStep;

/*
 * A statement's cost with the hypothetical indexes of now: its generic
 * plan's, or with parameter sets the weighted mean of its variants' custom
 * plans (a partial index serves only the variants whose values imply its
 * predicate, as the planner decides).
 */
static double
whatif_statement_cost(WhatIf *whatif, WorkloadStatement *stmt, double *rows)
{
	double		cost = 0;
	double		total_rows = 0;
	ListCell   *lc;

	if (stmt->variants == NIL)
		return perfopt_whatif_cost(whatif, stmt->query, stmt->text, rows, stmt->role);
	foreach(lc, stmt->variants)
	{
		WorkloadVariant *variant = (WorkloadVariant *) lfirst(lc);
		double		variant_rows = 0;

		cost += variant->share * perfopt_whatif_cost(whatif, variant->query, stmt->text,
													 &variant_rows, stmt->role);
		total_rows += variant->share * variant_rows;
	}
	if (rows)
		*rows = total_rows;
	return cost;
}

static void
cost_step(void *arg)
{
	CostStep   *step = (CostStep *) arg;

	step->cost = whatif_statement_cost(&step->advisor->whatif, step->stmt, &step->rows);
}

/*
 * The planner's cost of a statement with the hypothetical indexes of now.
 * A statement planned as its role runs that role's code, which may fail
 * at any planning: the statement is then given up (it costs nothing from
 * then on, so it advises nothing), counted, and the run goes on for the
 * others.  Returns false when it was given up.
 */
static bool
plan_cost(Advisor *advisor, WorkloadStatement *stmt, double *cost, double *rows)
{
	CostStep	step = {advisor, stmt, 0, 0};
	ErrorData  *edata;

	if (!OidIsValid(stmt->role))
	{
		*cost = whatif_statement_cost(&advisor->whatif, stmt, rows);
		return true;
	}
	edata = perfopt_try_in_subtransaction(cost_step, &step);
	if (edata != NULL)
	{
		ereport(NOTICE,
				(errmsg("%s of the workload is left out: %s", statement_label(stmt), edata->message),
				 errdetail("%.200s", stmt->text)));
		stmt->given_up = true;
		advisor->given_up++;
		return false;
	}
	*cost = step.cost;
	if (rows)
		*rows = step.rows;
	return true;
}

/*
 * The planner's cost of one execution of a statement with the candidates
 * of config: from the cache, or planned with exactly those hypothetical
 * indexes on its tables.  A statement given up costs what it cost with no
 * new index (0 if even that failed).
 */
static double
statement_cost(Advisor *advisor, int number, Bitmapset *config)
{
	WorkloadStatement *stmt = statement_of(advisor, number);
	Bitmapset  *relevant = relevant_config(advisor, stmt, config);
	CachedCost *entry;
	ListCell   *lc;
	int			id;

	advisor->lookups++;
	if (stmt->given_up)
		return ((CachedCost *) linitial(advisor->cache[number]))->cost;
	foreach(lc, advisor->cache[number])
	{
		entry = (CachedCost *) lfirst(lc);
		if (bms_equal(entry->config, relevant))
		{
			advisor->hits++;
			return entry->cost;
		}
	}

	/* make HypoPG hold exactly the relevant candidates on these tables */
	id = -1;
	while ((id = bms_next_member(advisor->materialized, id)) >= 0)
	{
		if (!bms_is_member(id, relevant) &&
			list_member_oid(stmt->tables, candidate_of(advisor, id)->relid))
			dematerialize(advisor, id);
	}
	id = -1;
	while ((id = bms_next_member(relevant, id)) >= 0)
	{
		if (!materialize(advisor, id))
			elog(ERROR, "perfopt: a candidate HypoPG refused was chosen");
	}

	entry = palloc(sizeof(CachedCost));
	entry->config = relevant;
	if (!plan_cost(advisor, stmt, &entry->cost, NULL))
		return ((CachedCost *) linitial(advisor->cache[number]))->cost;
	advisor->cache[number] = lappend(advisor->cache[number], entry);
	return entry->cost;
}

/* What maintaining the new indexes of config costs on the workload's writes */
static double
write_cost(Advisor *advisor, Bitmapset *config)
{
	double		cost = 0;
	int			number;

	for (number = 0; number < advisor->nstatements; number++)
	{
		WorkloadStatement *stmt = statement_of(advisor, number);
		WriteEffect *effect = &advisor->writes[number];
		int			new_indexes = 0;
		bool		breaks_hot = false;
		int			id = -1;

		if (!OidIsValid(stmt->target) || stmt->rows <= 0 ||
			(stmt->command != CMD_INSERT && stmt->command != CMD_UPDATE &&
			 stmt->command != CMD_MERGE))
			continue;
		while ((id = bms_next_member(config, id)) >= 0)
		{
			IndexCandidate *candidate = candidate_of(advisor, id);

			if (candidate->relid != stmt->target)
				continue;
			new_indexes++;
			if (bms_overlap(candidate->columns, stmt->updated_columns))
				breaks_hot = true;
		}
		if (new_indexes == 0)
			continue;
		if (stmt->command != CMD_UPDATE || effect->hot_blocked)
			cost += stmt->weight * stmt->rows * new_indexes * INDEX_ENTRY_COST;
		else if (breaks_hot)
			cost += stmt->weight * stmt->rows *
				(effect->existing_indexes + new_indexes) * INDEX_ENTRY_COST;
	}
	return cost;
}

/* The workload's reads under config, without the writes' index upkeep */
static double
read_cost(Advisor *advisor, Bitmapset *config)
{
	double		cost = 0;
	int			number;

	for (number = 0; number < advisor->nstatements; number++)
		cost += statement_of(advisor, number)->weight * statement_cost(advisor, number, config);
	return cost;
}

/* Callbacks of the selection */
static double
objective_callback(void *arg, Bitmapset *config)
{
	CHECK_FOR_INTERRUPTS();
	return read_cost((Advisor *) arg, config) + write_cost((Advisor *) arg, config);
}

/* A candidate's size in bytes, or -1 if HypoPG cannot make it */
static double
size_callback(void *arg, int id)
{
	Advisor    *advisor = (Advisor *) arg;

	if (!materialize(advisor, id))
		return -1;
	return candidate_of(advisor, id)->size;
}

static List *
extensions_callback(void *arg, int id)
{
	Advisor    *advisor = (Advisor *) arg;

	return perfopt_extend_candidate(candidate_of(advisor, id), advisor->usages,
									&advisor->candidates);
}

/* Is the candidate the same as, or the prefix of, one chosen already? */
static bool
redundant_callback(void *arg, int id, Bitmapset *config)
{
	Advisor    *advisor = (Advisor *) arg;
	IndexCandidate *candidate = candidate_of(advisor, id);
	int			other = -1;

	while ((other = bms_next_member(config, other)) >= 0)
	{
		IndexCandidate *chosen = candidate_of(advisor, other);
		ListCell   *lc;
		bool		prefix = chosen->relid == candidate->relid &&
		equal(chosen->predicate, candidate->predicate) &&
		candidate->include == NIL &&
		list_length(candidate->key) <= list_length(chosen->key);

		foreach(lc, candidate->key)
		{
			IndexKeyPart *a = lfirst(lc);
			IndexKeyPart *b;

			if (!prefix)
				break;
			b = list_nth(chosen->key, foreach_current_index(lc));
			prefix = a->attnum == b->attnum && equal(a->expression, b->expression) &&
				((a->opclass == NULL && b->opclass == NULL) ||
				 (a->opclass && b->opclass && strcmp(a->opclass, b->opclass) == 0));
		}
		if (prefix)
			return true;
	}
	return false;
}

/* Indexes of the tables written, and whether they already stop HOT */
static void
read_write_effects(Advisor *advisor)
{
	int			number;

	advisor->writes = palloc0(advisor->nstatements * sizeof(WriteEffect));
	for (number = 0; number < advisor->nstatements; number++)
	{
		WorkloadStatement *stmt = statement_of(advisor, number);
		WriteEffect *effect = &advisor->writes[number];
		Relation	rel;
		Bitmapset  *indexed;

		if (!OidIsValid(stmt->target))
			continue;
		rel = table_open(stmt->target, AccessShareLock);
		effect->existing_indexes = list_length(RelationGetIndexList(rel));
		indexed = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_ALL);
		effect->hot_blocked = false;
		{
			int			attnum = -1;

			/* the bitmap is offset by FirstLowInvalidHeapAttributeNumber */
			while ((attnum = bms_next_member(indexed, attnum)) >= 0)
			{
				if (bms_is_member(attnum + FirstLowInvalidHeapAttributeNumber,
								  stmt->updated_columns))
					effect->hot_blocked = true;
			}
		}
		table_close(rel, AccessShareLock);
	}
}

/* Cost every statement with the indexes of today; learn the rows of writes */
static void
cost_baseline(Advisor *advisor, int from)
{
	int			number;

	for (number = from; number < advisor->nstatements; number++)
	{
		WorkloadStatement *stmt = statement_of(advisor, number);
		CachedCost *entry = palloc(sizeof(CachedCost));
		double		rows;

		entry->config = NULL;
		entry->cost = 0;
		rows = 0;
		if (!plan_cost(advisor, stmt, &entry->cost, &rows))
			entry->cost = 0;
		advisor->cache[number] = list_make1(entry);
		if (stmt->rows < 0 && stmt->command != CMD_SELECT)
			stmt->rows = rows;
		advisor->baseline += stmt->weight * entry->cost;
	}
}

/* "queryid 123", "statement 4" or the foreign key a check stands for */
static char *
statement_label(WorkloadStatement *stmt)
{
	if (OidIsValid(stmt->checked_foreign_key))
		return psprintf("the checks of foreign key %s", quote_identifier(get_constraint_name(stmt->checked_foreign_key)));
	if (stmt->queryid != 0)
		return psprintf("queryid " INT64_FORMAT, stmt->queryid);
	return psprintf("statement %d", stmt->number);
}

/*
 * How a statement with parameters was costed, for the reason: custom plans
 * over its parameter sets, or the generic plan.
 */
static void
append_plan_kind(StringInfo buf, WorkloadStatement *stmt)
{
	int			sets = 0;
	ListCell   *lc;

	if (stmt->num_params == 0 || OidIsValid(stmt->checked_foreign_key))
		return;
	if (stmt->variants == NIL)
	{
		appendStringInfoString(buf, " (generic plan: no parameter samples)");
		return;
	}
	foreach(lc, stmt->variants)
		sets += ((WorkloadVariant *) lfirst(lc))->sets;
	appendStringInfo(buf, " (custom plans: %d parameter set%s, %d planned, in %d selectivity class%s)",
					 stmt->param_sets, stmt->param_sets == 1 ? "" : "s", sets,
					 list_length(stmt->variants), list_length(stmt->variants) == 1 ? "" : "es");
}

/* Helped statements of a step, most saving first, for the reason */
typedef struct Helped
{
	WorkloadStatement *stmt;
	double		saving;			/* weighted */
	double		percent;		/* of the statement's cost */
} Helped;

static int
helped_cmp(const ListCell *a, const ListCell *b)
{
	double		sa = ((Helped *) lfirst(a))->saving;
	double		sb = ((Helped *) lfirst(b))->saving;

	return sa > sb ? -1 : sa < sb ? 1 : 0;
}

/*
 * Rank the chosen indexes, each by what it adds to those ranked before it,
 * and describe each.
 */
static List *
rank_results(Advisor *advisor, Bitmapset *chosen, double min_gain_share)
{
	List	   *results = NIL;
	Bitmapset  *placed = NULL;
	double		current = objective_callback(advisor, NULL);
	int			rank = 0;

	while (!bms_is_empty(chosen))
	{
		int			best = -1;
		double		best_cost = 0;
		int			id = -1;
		Bitmapset  *next;
		AdvisorResult *result;
		IndexCandidate *candidate;
		List	   *helped = NIL;
		StringInfoData reason;
		double		writes;
		int			number;
		ListCell   *lc;

		while ((id = bms_next_member(chosen, id)) >= 0)
		{
			double		cost = objective_callback(advisor, bms_add_member(bms_copy(placed), id));

			if (best < 0 || cost < best_cost)
			{
				best = id;
				best_cost = cost;
			}
		}
		chosen = bms_del_member(chosen, best);
		if (current - best_cost < min_gain_share * current || current - best_cost <= 0)
			continue;			/* made useless by wider ones chosen later */
		next = bms_add_member(bms_copy(placed), best);
		candidate = candidate_of(advisor, best);

		for (number = 0; number < advisor->nstatements; number++)
		{
			WorkloadStatement *stmt = statement_of(advisor, number);
			double		before = statement_cost(advisor, number, placed);
			double		after = statement_cost(advisor, number, next);
			double		saving = stmt->weight * (before - after);

			if (saving > HELPED_STATEMENT_MIN_SHARE * Max(current - best_cost, 0) && saving > 0)
			{
				Helped	   *h = palloc(sizeof(Helped));

				h->stmt = stmt;
				h->saving = saving;
				h->percent = before > 0 ? 100 * (before - after) / before : 0;
				helped = lappend(helped, h);
			}
		}
		list_sort(helped, helped_cmp);

		result = palloc0(sizeof(AdvisorResult));
		result->rank = ++rank;
		result->relid = candidate->relid;
		/* a partitioned table's: ON ONLY the parent, each partition concurrently */
		if (get_rel_relkind(candidate->relid) == RELKIND_PARTITIONED_TABLE)
			result->index_def = perfopt_index_build_statements(candidate->relid, candidate->definition, NULL);
		else
			result->index_def = psprintf("CREATE INDEX CONCURRENTLY%s", candidate->definition + strlen("CREATE INDEX"));
		result->kind = perfopt_candidate_kind(candidate);
		result->size = (int64) candidate->size;
		result->cost_before = current;
		result->cost_after = best_cost;
		result->benefit_pct = advisor->baseline > 0 ? 100 * (current - best_cost) / advisor->baseline : 0;

		initStringInfo(&reason);
		appendStringInfo(&reason, "%s; it speeds up %d statement%s",
						 perfopt_candidate_description(candidate),
						 list_length(helped), list_length(helped) == 1 ? "" : "s");
		foreach(lc, helped)
		{
			Helped	   *h = lfirst(lc);

			if (h->stmt->queryid != 0)
				result->queryids = lappend(result->queryids, &h->stmt->queryid);
			if (foreach_current_index(lc) < HELPED_STATEMENTS_NAMED)
			{
				appendStringInfo(&reason, "%s%s by %.0f%%", foreach_current_index(lc) == 0 ? ": " : ", ",
								 statement_label(h->stmt), h->percent);
				append_plan_kind(&reason, h->stmt);
			}
		}
		if (list_length(helped) > HELPED_STATEMENTS_NAMED)
			appendStringInfo(&reason, " and %d more", list_length(helped) - HELPED_STATEMENTS_NAMED);
		writes = write_cost(advisor, next) - write_cost(advisor, placed);
		if (writes > 0 && advisor->baseline > 0)
			appendStringInfo(&reason, "; keeping it up on writes costs %.2g%% of the workload",
							 100 * writes / advisor->baseline);
		result->reason = reason.data;
		results = lappend(results, result);

		placed = next;
		current = best_cost;
	}
	return results;
}

/*
 * Run the advisor on a workload: the recommendations, best first.  The
 * hypothetical indexes it makes are gone when it returns, or fails.
 */
static List *
run_advisor(List *workload, double budget_bytes, double min_benefit_pct,
			int skipped_as_role)
{
	Advisor		advisor;
	List	   *results = NIL;
	instr_time	start;
	instr_time	duration;

	INSTR_TIME_SET_CURRENT(start);
	if (workload == NIL)
	{
		/* nothing to plan; still say what was left out */
		memset(&last_run, 0, sizeof(last_run));
		last_run.valid = true;
		last_run.skipped_as_role = skipped_as_role;
		return NIL;
	}
	memset(&advisor, 0, sizeof(advisor));
	advisor.workload = workload;
	perfopt_whatif_begin(&advisor.whatif);
	PG_TRY();
	{
		SelectionProblem problem;
		List	   *seeds;
		List	   *checks;
		Bitmapset  *chosen;

		advisor.nstatements = list_length(workload);
		advisor.cache = palloc0(Max(advisor.nstatements, 1) * sizeof(List *));
		cost_baseline(&advisor, 0);

		/* foreign keys: seeds, and lookups that stand for referenced writes */
		seeds = NIL;
		checks = perfopt_foreign_key_checks(advisor.workload, &advisor.candidates, &seeds);
		if (checks != NIL)
		{
			int			from = advisor.nstatements;

			advisor.workload = list_concat(advisor.workload, checks);
			advisor.nstatements = list_length(advisor.workload);
			advisor.cache = repalloc(advisor.cache, advisor.nstatements * sizeof(List *));
			memset(advisor.cache + from, 0, (advisor.nstatements - from) * sizeof(List *));
			cost_baseline(&advisor, from);
		}
		read_write_effects(&advisor);

		advisor.usages = perfopt_table_usages(advisor.workload);
		seeds = list_concat_unique_int(seeds, perfopt_seed_candidates(advisor.workload,
																	  advisor.usages,
																	  &advisor.candidates));

		problem.seeds = seeds;
		problem.budget_bytes = budget_bytes;
		problem.min_gain_share = Max(min_benefit_pct, 0) / 100.0;
		problem.objective = objective_callback;
		problem.size = size_callback;
		problem.extensions = extensions_callback;
		problem.redundant = redundant_callback;
		problem.arg = &advisor;
		chosen = perfopt_select_indexes(&problem);
		last_run.final_cost = objective_callback(&advisor, chosen);
		results = rank_results(&advisor, chosen, problem.min_gain_share);

		INSTR_TIME_SET_CURRENT(duration);
		INSTR_TIME_SUBTRACT(duration, start);
		last_run.valid = true;
		last_run.statements = advisor.nstatements;
		last_run.skipped_as_role = skipped_as_role + advisor.given_up;
		last_run.candidates = list_length(advisor.candidates);
		last_run.planner_calls = advisor.whatif.planner_calls;
		last_run.lookups = advisor.lookups;
		last_run.hits = advisor.hits;
		last_run.seconds = INSTR_TIME_GET_DOUBLE(duration);
		last_run.baseline = advisor.baseline;
	}
	PG_CATCH();
	{
		perfopt_whatif_end(&advisor.whatif);
		PG_RE_THROW();
	}
	PG_END_TRY();
	perfopt_whatif_end(&advisor.whatif);
	return results;
}

/* Budget in bytes from budget_mb (NULL: none), refusing nonsense */
static double
budget_bytes_arg(FunctionCallInfo fcinfo, int argno)
{
	double		budget_mb;

	if (PG_ARGISNULL(argno))
		return 0;
	budget_mb = PG_GETARG_FLOAT8(argno);
	if (!(budget_mb > 0) || isinf(budget_mb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("budget_mb must be a positive number of megabytes, not %g", budget_mb),
				 errhint("Pass NULL for no budget.")));
	return budget_mb * 1024 * 1024;
}

static double
min_benefit_arg(FunctionCallInfo fcinfo, int argno)
{
	double		pct;

	if (PG_ARGISNULL(argno))
		return 0;
	pct = PG_GETARG_FLOAT8(argno);
	if (!(pct >= 0 && pct <= 100))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_benefit_pct must be between 0 and 100, not %g", pct)));
	return pct;
}

/* Return the recommendations as rows of the API's columns */
static void
output_results(FunctionCallInfo fcinfo, List *results)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	foreach(lc, results)
	{
		AdvisorResult *r = lfirst(lc);
		Datum		values[10];
		bool		nulls[10] = {false};

		values[0] = Int32GetDatum(r->rank);
		values[1] = ObjectIdGetDatum(r->relid);
		values[2] = CStringGetTextDatum(r->index_def);
		values[3] = CStringGetTextDatum(r->kind);
		values[4] = Int64GetDatum(r->size);
		values[5] = Float8GetDatum(r->benefit_pct);
		values[6] = Float8GetDatum(r->cost_before);
		values[7] = Float8GetDatum(r->cost_after);
		if (r->queryids == NIL)
			nulls[8] = true;
		else
		{
			Datum	   *ids = palloc(list_length(r->queryids) * sizeof(Datum));
			ListCell   *lc2;

			foreach(lc2, r->queryids)
				ids[foreach_current_index(lc2)] = Int64GetDatum(*(int64 *) lfirst(lc2));
			values[8] = PointerGetDatum(construct_array(ids, list_length(r->queryids), INT8OID,
														8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		}
		values[9] = CStringGetTextDatum(r->reason);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * perfopt.recommend_indexes(budget_mb, min_benefit_pct): for the workload
 * of pg_stat_statements.
 */
Datum
perfopt_recommend_indexes(PG_FUNCTION_ARGS)
{
	double		budget = budget_bytes_arg(fcinfo, 0);
	double		min_benefit = min_benefit_arg(fcinfo, 1);
	List	   *workload;
	int			skipped = 0;

	InitMaterializedSRF(fcinfo, 0);
	workload = perfopt_workload_from_pgss(perfopt_advisor_statements, &skipped, false);
	output_results(fcinfo, run_advisor(workload, budget, min_benefit, skipped));
	return (Datum) 0;
}

/*
 * perfopt.recommend_indexes_for(queries, weights, budget_mb,
 * min_benefit_pct): for a workload given explicitly.
 */
Datum
perfopt_recommend_indexes_for(PG_FUNCTION_ARGS)
{
	double		budget = budget_bytes_arg(fcinfo, 2);
	double		min_benefit = min_benefit_arg(fcinfo, 3);
	List	   *workload;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queries must not be NULL"),
				 errhint("Pass an array of statements.")));
	InitMaterializedSRF(fcinfo, 0);
	workload = perfopt_workload_from_list(PG_GETARG_ARRAYTYPE_P(0),
										  PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1));
	output_results(fcinfo, run_advisor(workload, budget, min_benefit, 0));
	return (Datum) 0;
}

/*
 * perfopt.advise_query(query, min_benefit_pct): the indexes for one
 * statement, its cost before and after each.
 */
Datum
perfopt_advise_query(PG_FUNCTION_ARGS)
{
	double		min_benefit = min_benefit_arg(fcinfo, 1);
	ArrayType  *queries;
	Datum		text;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	InitMaterializedSRF(fcinfo, 0);
	text = PG_GETARG_DATUM(0);
	queries = construct_array(&text, 1, TEXTOID, -1, false, TYPALIGN_INT);
	output_results(fcinfo, run_advisor(perfopt_workload_from_list(queries, NULL), 0, min_benefit, 0));
	return (Datum) 0;
}

/*
 * The parameter sets of a text[]: one set for a one-dimensional array, one
 * per row of a two-dimensional one, with equal weights.
 */
static List *
param_sets_arg(ArrayType *params)
{
	int			ndim = ARR_NDIM(params);
	int			nsets;
	int			nvalues;
	Datum	   *values;
	bool	   *nulls;
	int			count;
	List	   *sets = NIL;
	int			i;

	if (ndim > 2)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("params must be a one- or two-dimensional array, not %d-dimensional", ndim),
				 errhint("Pass one set of values as ARRAY['v1', 'v2'], or one set per row as ARRAY[['v1', 'v2'], ['w1', 'w2']].")));
	count = ArrayGetNItems(ndim, ARR_DIMS(params));
	if (ndim == 0 || count == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("params is empty"),
				 errhint("Give the values of $1 .. $n, or call advise_query(query) for the generic plan.")));
	if (count > MAX_PARAM_VALUES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("params holds %d values, more than the %d advise_query takes", count, MAX_PARAM_VALUES),
				 errhint("A few sets that stand for the executions are enough: the advisor plans at most a handful of them.")));
	nsets = ndim == 1 ? 1 : ARR_DIMS(params)[0];
	nvalues = ndim == 1 ? count : ARR_DIMS(params)[1];
	deconstruct_array(params, TEXTOID, -1, false, TYPALIGN_INT, &values, &nulls, &count);
	for (i = 0; i < nsets; i++)
	{
		PerfoptParamSet *set = palloc0(sizeof(PerfoptParamSet));
		int			j;

		set->nparams = nvalues;
		set->values = palloc0(Max(nvalues, 1) * sizeof(char *));
		set->weight = 1.0 / nsets;
		set->sets = 1;
		for (j = 0; j < nvalues; j++)
			set->values[j] = nulls[i * nvalues + j] ? NULL
				: TextDatumGetCString(values[i * nvalues + j]);
		sets = lappend(sets, set);
	}
	return sets;
}

/*
 * perfopt.advise_query(query, params, min_benefit_pct): the indexes for
 * one statement, costed on custom plans with the parameter sets given.
 * The values are literals, read by their types' input functions as the
 * caller; a bad set is an error.
 */
Datum
perfopt_advise_query_params(PG_FUNCTION_ARGS)
{
	double		min_benefit = min_benefit_arg(fcinfo, 2);
	List	   *sets;
	List	   *workload = NIL;
	WorkloadStatement *stmt;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("params must not be NULL"),
				 errhint("Give the values of $1 .. $n as a text array (a NULL element is an SQL NULL), or call advise_query(query) for the generic plan.")));
	sets = param_sets_arg(PG_GETARG_ARRAYTYPE_P(1));
	InitMaterializedSRF(fcinfo, 0);
	stmt = perfopt_workload_statement_sets(text_to_cstring(PG_GETARG_TEXT_PP(0)), 1,
										   InvalidOid, sets, true);
	if (stmt != NULL)
	{
		stmt->number = 1;
		workload = list_make1(stmt);
	}
	output_results(fcinfo, run_advisor(workload, 0, min_benefit, 0));
	return (Datum) 0;
}

/*
 * perfopt.last_advisor_run(): what the last run of the advisor in this
 * session did: statements, statements skipped because their role could not
 * plan them, candidates, planner calls, cache hits, time.
 */
Datum
perfopt_last_advisor_run(PG_FUNCTION_ARGS)
{
	char	   *json;

	if (!last_run.valid)
		PG_RETURN_NULL();
	json = psprintf("{\"statements\": %d, \"skipped_as_role\": %d, \"candidates\": %d, \"planner_calls\": " INT64_FORMAT
					", \"cost_lookups\": " INT64_FORMAT ", \"cache_hits\": " INT64_FORMAT
					", \"cache_hit_pct\": %.1f, \"seconds\": %.3f, \"workload_cost_before\": %.15g"
					", \"workload_cost_after\": %.15g}",
					last_run.statements, last_run.skipped_as_role, last_run.candidates,
					last_run.planner_calls,
					last_run.lookups, last_run.hits,
					last_run.lookups > 0 ? 100.0 * last_run.hits / last_run.lookups : 0,
					last_run.seconds, last_run.baseline, last_run.final_cost);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}
