/*-------------------------------------------------------------------------
 *
 * index_candidates.c
 *	  The indexes the advisor considers, read from the workload's parsed
 *	  statements.
 *
 * Every level of every statement (after the rewriter, so that views are
 * seen through) is read for what an index on each of its tables could
 * serve: columns or expressions compared for equality (=, IN, IS NULL,
 * join keys), ranges (<, <=, >, >=, LIKE 'prefix%', also a pattern that
 * built-in immutable functions fold to a constant prefix once a parameter
 * set is bound: "LIKE $1::text || '%'"), the ORDER BY (or
 * GROUP BY) keys when they are all of one table, the columns the level
 * needs (for covering indexes), and conditions that keep a rare value of
 * a column with few distinct values (from pg_stats: partial indexes).
 *
 * Seeds are one-column (or one-expression) indexes on each of those, a
 * partial index for each rare condition, and one index for each foreign
 * key whose referencing columns no index serves.  Extensions widen an
 * index as a statement that can use it allows: equality columns first,
 * then one range or ORDER BY column; or covering columns for an
 * index-only scan.  A candidate that an existing index already serves
 * (the same leading key, a compatible predicate) is never made.
 *
 * An index runs its expressions and predicate for every writer of its
 * table.  So a candidate uses only built-in functions and operators, or
 * ones that the table's owner owns: a statement that calls a tenant's
 * function never puts that function into an index on someone else's
 * table.  perfopt itself only ever calls built-in code here (a statement's
 * equality operator to read pg_stats), and reads the expressions of
 * existing indexes from pg_index as stored, without const-folding them,
 * which would run the table owner's functions as the caller.  Index
 * definitions are written with search_path pg_catalog, pg_temp, so every
 * name outside pg_catalog is schema-qualified.  A foreign key's check is
 * planned as the owner of the referencing table, as PostgreSQL runs it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "common/catalog.h"
#include "advisor/index_advisor.h"
#include "common/security.h"
#include "common/subxact.h"
#include "advisor/workload.h"

/* A value of at most this share of rows, of a column with at most this
 * many distinct values, makes a partial index worth trying */
#define RARE_FRACTION			0.05
#define RARE_MAX_DISTINCT		1000

/*
 * A partial index for a value that comes from a statement's parameter sets
 * (not its text) is tried only when the value is one of the column's most
 * common values, whose share pg_stats measures rather than guesses (a
 * steady share, at most RARE_FRACTION), and it recurs in more than half of
 * the sets: otherwise most executions could not use it.  A value seen once
 * does not recur: one sampled execution says nothing of the next ones.
 */
#define RECURRING_SHARE			0.5

/* While reading a variant of a statement: the values bound, with their shares */
static List *variant_values = NIL;
static bool reading_variant = false;

/* ----------------------------------------------------------------
 * Key parts
 * ----------------------------------------------------------------
 */

static IndexKeyPart *
column_part(AttrNumber attnum, const char *opclass)
{
	IndexKeyPart *part = palloc0(sizeof(IndexKeyPart));

	part->attnum = attnum;
	part->opclass = opclass;
	return part;
}

static bool
parts_equal(IndexKeyPart *a, IndexKeyPart *b)
{
	if (a->attnum != b->attnum)
		return false;
	if (a->attnum == 0 && !equal(a->expression, b->expression))
		return false;
	if ((a->opclass == NULL) != (b->opclass == NULL))
		return false;
	return a->opclass == NULL || strcmp(a->opclass, b->opclass) == 0;
}

static bool
part_in_list(IndexKeyPart *part, List *parts)
{
	ListCell   *lc;

	foreach(lc, parts)
	{
		if (parts_equal(part, lfirst(lc)))
			return true;
	}
	return false;
}

static List *
add_part(List *parts, IndexKeyPart *part)
{
	return part_in_list(part, parts) ? parts : lappend(parts, part);
}

/* ----------------------------------------------------------------
 * Statistics
 * ----------------------------------------------------------------
 */

/* Distinct values of a column (pg_stats.n_distinct as a count), or -1 */
static double
column_distinct(Oid relid, AttrNumber attnum)
{
	HeapTuple	tuple;
	double		distinct = -1;

	tuple = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
							Int16GetDatum(attnum), BoolGetDatum(false));
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_statistic stats = (Form_pg_statistic) GETSTRUCT(tuple);

		distinct = stats->stadistinct >= 0 ? stats->stadistinct
			: -stats->stadistinct * perfopt_relation_tuples(relid);
		ReleaseSysCache(tuple);
	}
	return distinct;
}

/* pg_stats.avg_width of a column, or the type's guess */
static int
column_width(Oid relid, AttrNumber attnum)
{
	int32		width = get_attavgwidth(relid, attnum);

	return width > 0 ? width : get_typavgwidth(get_atttype(relid, attnum), -1);
}

/*
 * Share of rows where column = value by pg_stats (an MCV's frequency, or
 * what the MCVs leave spread over the other values), and the column's
 * number of distinct values; -1 when there are no statistics.
 */
static double
value_frequency(Oid relid, AttrNumber attnum, Oid eqop, Const *value, double *distinct,
				bool *in_mcv)
{
	HeapTuple	tuple;
	AttStatsSlot sslot;
	double		frequency = -1;

	*distinct = column_distinct(relid, attnum);
	tuple = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
							Int16GetDatum(attnum), BoolGetDatum(false));
	if (!HeapTupleIsValid(tuple))
		return -1;
	if (get_opcode(eqop) >= FirstNormalObjectId)
	{
		/* perfopt runs only built-in code as the caller */
		ReleaseSysCache(tuple);
		return -1;
	}
	if (get_attstatsslot(&sslot, tuple, STATISTIC_KIND_MCV, InvalidOid,
						 ATTSTATSSLOT_VALUES | ATTSTATSSLOT_NUMBERS))
	{
		RegProcedure eqproc = get_opcode(eqop);
		double		mcv_total = 0;
		int			i;

		for (i = 0; i < sslot.nvalues && frequency < 0; i++)
		{
			mcv_total += sslot.numbers[i];
			if (DatumGetBool(OidFunctionCall2Coll(eqproc, value->constcollid,
												  sslot.values[i], value->constvalue)))
			{
				frequency = sslot.numbers[i];
				if (in_mcv)
					*in_mcv = true;
			}
		}
		if (frequency < 0)
		{
			double		nullfrac = ((Form_pg_statistic) GETSTRUCT(tuple))->stanullfrac;
			double		others = Max(*distinct - sslot.nvalues, 1);

			for (; i < sslot.nvalues; i++)
				mcv_total += sslot.numbers[i];
			frequency = Max(1.0 - mcv_total - nullfrac, 0) / others;
		}
		free_attstatsslot(&sslot);
	}
	else if (*distinct > 0)
		frequency = 1.0 / *distinct;
	ReleaseSysCache(tuple);
	return frequency;
}

/* pg_stats.null_frac of a column, or -1 */
static double
column_null_fraction(Oid relid, AttrNumber attnum)
{
	HeapTuple	tuple;
	double		nullfrac = -1;

	tuple = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
							Int16GetDatum(attnum), BoolGetDatum(false));
	if (HeapTupleIsValid(tuple))
	{
		nullfrac = ((Form_pg_statistic) GETSTRUCT(tuple))->stanullfrac;
		ReleaseSysCache(tuple);
	}
	return nullfrac;
}

/* ----------------------------------------------------------------
 * Reading the statements
 * ----------------------------------------------------------------
 */

typedef struct VarsContext
{
	Index		varno;
	int			sublevels_up;
	Bitmapset  *attnums;
	bool		other_tables;	/* a Var of another table of the level */
	bool		unsafe;			/* volatile, aggregate, window, sublink */
} VarsContext;

/* Which columns of table varno (at this level) an expression uses */
static bool
vars_walker(Node *node, VarsContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varlevelsup == context->sublevels_up)
		{
			if (var->varno == context->varno && var->varattno > 0)
				context->attnums = bms_add_member(context->attnums, var->varattno);
			else if (var->varno == context->varno)
				context->unsafe = true; /* whole-row or system column */
			else
				context->other_tables = true;
		}
		else if (var->varlevelsup > context->sublevels_up)
			context->unsafe = true; /* a column of an outer query */
		return false;
	}
	if (IsA(node, Query))
	{
		bool		result;

		context->sublevels_up++;
		result = query_tree_walker((Query *) node, vars_walker, context, 0);
		context->sublevels_up--;
		return result;
	}
	if (IsA(node, Aggref) || IsA(node, WindowFunc) || IsA(node, SubLink) ||
		IsA(node, GroupingFunc))
		context->unsafe = true;
	return expression_tree_walker(node, vars_walker, context);
}

static VarsContext
expression_vars(Node *node, Index varno)
{
	VarsContext context = {varno, 0, NULL, false, false};

	(void) vars_walker(node, &context);
	if (node != NULL && contain_volatile_functions(node))
		context.unsafe = true;
	return context;
}

/* Every column of table varno that a query level uses, anywhere in it */
static Bitmapset *
level_columns(Query *query, Index varno)
{
	VarsContext context = {varno, 0, NULL, false, false};

	(void) query_tree_walker(query, vars_walker, &context, QTW_IGNORE_JOINALIASES);
	return context.attnums;
}

/*
 * The key part an index of table varno would need to serve this side of a
 * comparison: its column, or the expression (varno 1) over its columns.
 * NULL if the side is not over that table alone.
 */
static IndexKeyPart *
key_part_for(Node *side, Index varno)
{
	VarsContext vars;
	IndexKeyPart *part;

	while (side != NULL && IsA(side, RelabelType))
		side = (Node *) ((RelabelType *) side)->arg;
	if (side == NULL)
		return NULL;
	if (IsA(side, Var))
	{
		Var		   *var = (Var *) side;

		if (var->varno == varno && var->varlevelsup == 0 && var->varattno > 0)
			return column_part(var->varattno, NULL);
		return NULL;
	}
	vars = expression_vars(side, varno);
	if (vars.unsafe || vars.other_tables || bms_is_empty(vars.attnums) ||
		IsA(side, Const) || IsA(side, Param) || contain_mutable_functions(side))
		return NULL;			/* an index expression must be immutable */
	part = column_part(0, NULL);
	part->expression = copyObject(side);
	ChangeVarNodes(part->expression, varno, 1, 0);
	return part;
}

/* Does the expression stay the same for every row of table varno? */
static bool
independent_of(Node *node, Index varno)
{
	VarsContext vars = expression_vars(node, varno);

	return bms_is_empty(vars.attnums) && !vars.unsafe;
}

/* A condition on one column, moved to varno 1 for an index predicate */
static Node *
predicate_for(Node *condition, Index varno)
{
	Node	   *copy = copyObject(condition);

	ChangeVarNodes(copy, varno, 1, 0);
	return copy;
}

/*
 * Share of rows a one-column condition keeps ("column = constant", IS
 * [NOT] NULL) by pg_stats, and the column's distinct values; -1 when it
 * cannot be told.
 */
static double
condition_fraction(Oid relid, Node *condition, double *distinct, bool *in_mcv)
{
	*distinct = -1;
	*in_mcv = false;
	if (IsA(condition, OpExpr) && list_length(((OpExpr *) condition)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) condition;
		Node	   *left = linitial(op->args);
		Node	   *right = lsecond(op->args);

		while (IsA(left, RelabelType))
			left = (Node *) ((RelabelType *) left)->arg;
		if (!IsA(left, Var) || !IsA(right, Const) || ((Const *) right)->constisnull)
			return -1;
		return value_frequency(relid, ((Var *) left)->varattno, op->opno,
							   (Const *) right, distinct, in_mcv);
	}
	if (IsA(condition, NullTest) && IsA(((NullTest *) condition)->arg, Var))
	{
		NullTest   *test = (NullTest *) condition;
		double		nullfrac = column_null_fraction(relid, ((Var *) test->arg)->varattno);

		if (nullfrac < 0)
			return -1;
		return test->nulltesttype == IS_NULL ? nullfrac : 1 - nullfrac;
	}
	return -1;
}

/*
 * Is this "column = constant" (or IS [NOT] NULL) selective enough, on a
 * column with few enough values, to try a partial index?
 */
static bool
is_rare_condition(Oid relid, Node *condition)
{
	double		distinct;
	bool		in_mcv;
	double		fraction = condition_fraction(relid, condition, &distinct, &in_mcv);

	if (fraction < 0 || fraction > RARE_FRACTION)
		return false;
	if (reading_variant && IsA(condition, OpExpr))
	{
		Node	   *value = lsecond(((OpExpr *) condition)->args);
		ListCell   *lc;

		/* a value of the parameter sets: steady, and in most of them */
		foreach(lc, variant_values)
		{
			WorkloadValue *bound = (WorkloadValue *) lfirst(lc);

			if (equal(bound->value, value) &&
				(!in_mcv || bound->share <= RECURRING_SHARE || bound->sets < 2))
				return false;
		}
	}
	return IsA(condition, NullTest) || (distinct > 0 && distinct <= RARE_MAX_DISTINCT);
}

static bool not_builtin_immutable(Oid funcid, void *context);

/* Does the expression call anything but built-in immutable functions? */
static bool
calls_other_than_builtin_immutable(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, not_builtin_immutable, NULL))
		return true;
	return expression_tree_walker(node, calls_other_than_builtin_immutable, context);
}

/*
 * The pattern of a LIKE as a constant: a constant, or an expression of
 * constants (a bound parameter: "$1::text || '%'" with a sampled value)
 * that only built-in immutable functions fold to one.  NULL otherwise.
 */
static Const *
like_pattern(Node *pattern, Index varno)
{
	if (IsA(pattern, Const))
		return (Const *) pattern;
	if (!independent_of(pattern, varno) || contain_var_clause(pattern) ||
		calls_other_than_builtin_immutable(pattern, NULL))
		return NULL;
	pattern = eval_const_expressions(NULL, copyObject(pattern));
	return IsA(pattern, Const) ? (Const *) pattern : NULL;
}

/* Read one condition of a level into the usage of table varno */
static void
read_condition(TableUsage *usage, Node *condition, Index varno, bool alternative)
{
	if (IsA(condition, OpExpr) && list_length(((OpExpr *) condition)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) condition;
		List	   *interpretation = get_op_btree_interpretation(op->opno);
		char	   *opname = get_opname(op->opno);
		int			strategy;
		int			i;

		if (interpretation == NIL)
		{
			/* LIKE 'prefix%': a range over a pattern opclass */
			IndexKeyPart *part = key_part_for(linitial(op->args), varno);
			Const	   *pattern = NULL;

			if (opname && strcmp(opname, "~~") == 0 && part && part->attnum > 0)
				pattern = like_pattern(lsecond(op->args), varno);
			if (pattern && !pattern->constisnull && pattern->consttype == TEXTOID &&
				get_atttype(usage->relid, part->attnum) == TEXTOID)
			{
				char	   *prefix = TextDatumGetCString(pattern->constvalue);

				if (prefix[0] != '%' && prefix[0] != '_')
				{
					part->opclass = "text_pattern_ops";
					usage->range = add_part(usage->range, part);
				}
			}
			return;
		}
		strategy = ((OpBtreeInterpretation *) linitial(interpretation))->strategy;
		for (i = 0; i < 2; i++)
		{
			Node	   *side = list_nth(op->args, i);
			Node	   *other = list_nth(op->args, 1 - i);
			IndexKeyPart *part = key_part_for(side, varno);

			if (part == NULL || !independent_of(other, varno))
				continue;
			if (alternative)
				usage->range = add_part(usage->range, part);
			else if (strategy == BTEqualStrategyNumber)
			{
				usage->equality = add_part(usage->equality, part);
				if (part->attnum > 0 && i == 0 && is_rare_condition(usage->relid, condition))
					usage->rare_conditions = lappend(usage->rare_conditions,
													 predicate_for(condition, varno));
			}
			else
				usage->range = add_part(usage->range, part);
		}
	}
	else if (IsA(condition, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) condition;
		List	   *interpretation = get_op_btree_interpretation(saop->opno);
		IndexKeyPart *part = key_part_for(linitial(saop->args), varno);

		if (saop->useOr && part && interpretation != NIL &&
			((OpBtreeInterpretation *) linitial(interpretation))->strategy == BTEqualStrategyNumber &&
			independent_of(lsecond(saop->args), varno))
			usage->equality = add_part(usage->equality, part);
	}
	else if (IsA(condition, NullTest))
	{
		NullTest   *test = (NullTest *) condition;
		IndexKeyPart *part = key_part_for((Node *) test->arg, varno);

		if (part == NULL || part->attnum <= 0)
			return;
		if (test->nulltesttype == IS_NULL)
			usage->equality = add_part(usage->equality, part);
		if (is_rare_condition(usage->relid, condition))
			usage->rare_conditions = lappend(usage->rare_conditions,
											 predicate_for(condition, varno));
	}
	else if (IsA(condition, Var) || is_notclause(condition))
	{
		/* a boolean column: WHERE active, WHERE NOT active */
		Node	   *arg = IsA(condition, Var) ? condition
		: linitial(((BoolExpr *) condition)->args);
		IndexKeyPart *part = key_part_for(arg, varno);

		if (part && part->attnum > 0 && exprType(arg) == BOOLOID)
			usage->equality = add_part(usage->equality, part);
	}
	else if (is_orclause(condition))
	{
		ListCell   *lc;

		/* each arm may use an index of its own (BitmapOr) */
		foreach(lc, ((BoolExpr *) condition)->args)
		{
			if (!is_andclause(lfirst(lc)) && !is_orclause(lfirst(lc)))
				read_condition(usage, lfirst(lc), varno, true);
		}
	}
}

static void
collect_conditions(Node *node, List **conditions)
{
	if (node == NULL)
		return;
	if (IsA(node, List))
	{
		ListCell   *lc;

		foreach(lc, (List *) node)
			collect_conditions(lfirst(lc), conditions);
	}
	else if (IsA(node, FromExpr))
	{
		collect_conditions((Node *) ((FromExpr *) node)->fromlist, conditions);
		collect_conditions(((FromExpr *) node)->quals, conditions);
	}
	else if (IsA(node, JoinExpr))
	{
		collect_conditions(((JoinExpr *) node)->larg, conditions);
		collect_conditions(((JoinExpr *) node)->rarg, conditions);
		collect_conditions(((JoinExpr *) node)->quals, conditions);
	}
	else if (is_andclause(node))
		collect_conditions((Node *) ((BoolExpr *) node)->args, conditions);
	else if (!IsA(node, RangeTblRef))
		*conditions = lappend(*conditions, node);
}

/* ORDER BY (else GROUP BY) keys of the level, if all are columns of varno */
static List *
order_parts(Query *query, Index varno)
{
	List	   *clauses = query->sortClause ? query->sortClause : query->groupClause;
	List	   *parts = NIL;
	ListCell   *lc;
	int			descending = 0;

	foreach(lc, clauses)
	{
		SortGroupClause *clause = lfirst_node(SortGroupClause, lc);
		Node	   *expr = strip_implicit_coercions((Node *) get_sortgroupclause_expr(clause, query->targetList));
		bool		reverse = false;

		if (!IsA(expr, Var) || ((Var *) expr)->varno != varno ||
			((Var *) expr)->varlevelsup != 0 || ((Var *) expr)->varattno <= 0)
			return NIL;
		if (OidIsValid(clause->sortop))
			(void) get_equality_op_for_ordering_op(clause->sortop, &reverse);
		descending += reverse;
		parts = add_part(parts, column_part(((Var *) expr)->varattno, NULL));
	}
	/* a btree scans one way: mixed directions would need DESC columns */
	if (descending > 0 && descending < list_length(clauses))
		return NIL;
	return parts;
}

/* Read what each table of one level of a statement could use */
static void
read_level(Query *query, int statement, List **usages)
{
	List	   *conditions = NIL;
	ListCell   *lc;
	Index		varno = 0;

	collect_conditions((Node *) query->jointree, &conditions);
	conditions = (List *) flatten_join_alias_vars(query, (Node *) conditions);

	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		TableUsage *usage;
		ListCell   *lc2;
		char		relkind;

		varno++;
		if (rte->rtekind != RTE_RELATION)
			continue;
		relkind = get_rel_relkind(rte->relid);
		if ((relkind != RELKIND_RELATION && relkind != RELKIND_MATVIEW &&
			 relkind != RELKIND_PARTITIONED_TABLE) ||
			IsCatalogRelationOid(rte->relid))
			continue;

		usage = palloc0(sizeof(TableUsage));
		usage->relid = rte->relid;
		usage->statement = statement;
		foreach(lc2, conditions)
			read_condition(usage, lfirst(lc2), varno, false);
		usage->order = order_parts(query, varno);
		usage->needed = level_columns(query, varno);
		if (usage->equality || usage->range || usage->order || usage->rare_conditions)
			*usages = lappend(*usages, usage);
	}
}

typedef struct UsageContext
{
	int			statement;
	List	  **usages;
} UsageContext;

/* Read every level: the statement, its subqueries, CTEs and sublinks */
static bool
usage_walker(Node *node, UsageContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		check_stack_depth();
		read_level((Query *) node, context->statement, context->usages);
		return query_tree_walker((Query *) node, usage_walker, context, 0);
	}
	return expression_tree_walker(node, usage_walker, context);
}

/*
 * What an index could serve, for every level of every statement of the
 * workload (TableUsage list).
 */
List *
perfopt_table_usages(List *workload)
{
	List	   *usages = NIL;
	ListCell   *lc;

	foreach(lc, workload)
	{
		WorkloadStatement *stmt = (WorkloadStatement *) lfirst(lc);
		UsageContext context = {foreach_current_index(lc), &usages};
		ListCell   *lc2;

		if (stmt->variants == NIL)
		{
			foreach(lc2, stmt->rewritten)
				(void) usage_walker(lfirst(lc2), &context);
			continue;
		}
		/* with parameter sets: each variant, its values bound */
		PG_TRY();
		{
			foreach(lc2, stmt->variants)
			{
				WorkloadVariant *variant = (WorkloadVariant *) lfirst(lc2);
				ListCell   *lc3;

				reading_variant = true;
				variant_values = variant->values;
				foreach(lc3, variant->rewritten)
					(void) usage_walker(lfirst(lc3), &context);
			}
		}
		PG_FINALLY();
		{
			reading_variant = false;
			variant_values = NIL;
		}
		PG_END_TRY();
	}
	return usages;
}

/* ----------------------------------------------------------------
 * Candidates
 * ----------------------------------------------------------------
 */

/*
 * SQL of an expression over the table (varno 1), written with search_path
 * pg_catalog, pg_temp so that any function, operator or type outside
 * pg_catalog is schema-qualified, whatever the caller's path.
 */
static char *
deparse_for_table(Node *expr, Oid relid)
{
	int			level = NewGUCNestLevel();
	char	   *sql;

	(void) set_config_option("search_path", PERFOPT_OWN_SEARCH_PATH, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	sql = deparse_expression(expr, deparse_context_for(get_rel_name(relid), relid),
							 false, false);
	AtEOXact_GUC(false, level);
	return sql;
}

/* Append the key list of a candidate: (a, (lower(b)), c text_pattern_ops) */
static void
append_key_list(StringInfo buf, IndexCandidate *candidate)
{
	ListCell   *lc;

	appendStringInfoChar(buf, '(');
	foreach(lc, candidate->key)
	{
		IndexKeyPart *part = lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(buf, ", ");
		if (part->attnum > 0)
			appendStringInfoString(buf, quote_identifier(get_attname(candidate->relid, part->attnum, false)));
		else
			appendStringInfo(buf, "(%s)", deparse_for_table(part->expression, candidate->relid));
		if (part->opclass)
			appendStringInfo(buf, " %s", part->opclass);
	}
	appendStringInfoChar(buf, ')');
}

/*
 * The CREATE INDEX statement of a candidate, every identifier quoted, as
 * HypoPG takes it (no name, no CONCURRENTLY).
 */
static char *
candidate_definition(IndexCandidate *candidate)
{
	bool		saved_quote_all = quote_all_identifiers;
	StringInfoData buf;
	ListCell   *lc;

	quote_all_identifiers = true;
	PG_TRY();
	{
		initStringInfo(&buf);
		appendStringInfo(&buf, "CREATE INDEX ON %s ", perfopt_relation_name(candidate->relid));
		append_key_list(&buf, candidate);
		if (candidate->include)
		{
			appendStringInfoString(&buf, " INCLUDE (");
			foreach(lc, candidate->include)
				appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
								 quote_identifier(get_attname(candidate->relid, lfirst_int(lc), false)));
			appendStringInfoChar(&buf, ')');
		}
		if (candidate->predicate)
			appendStringInfo(&buf, " WHERE %s", deparse_for_table(candidate->predicate, candidate->relid));
	}
	PG_FINALLY();
	{
		quote_all_identifiers = saved_quote_all;
	}
	PG_END_TRY();
	return buf.data;
}

/* Columns of an expression over the table (varno 1) */
static Bitmapset *
expression_columns(Node *expr)
{
	return expression_vars(expr, 1).attnums;
}

/* Is the function built in, or owned by owner? */
static bool
function_trusted(Oid funcid, Oid owner)
{
	HeapTuple	tuple;
	bool		trusted;

	if (funcid < FirstNormalObjectId)
		return true;
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tuple))
		return false;
	trusted = ((Form_pg_proc) GETSTRUCT(tuple))->proowner == owner;
	ReleaseSysCache(tuple);
	return trusted;
}

/* Is the operator built in, or owned by owner? */
static bool
operator_trusted(Oid opno, Oid owner)
{
	HeapTuple	tuple;
	bool		trusted;

	if (opno < FirstNormalObjectId)
		return true;
	tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	if (!HeapTupleIsValid(tuple))
		return false;
	trusted = ((Form_pg_operator) GETSTRUCT(tuple))->oprowner == owner;
	ReleaseSysCache(tuple);
	return trusted;
}

/* Is the type built in, or owned by owner (a domain's checks run code)? */
static bool
type_trusted(Oid type, Oid owner)
{
	HeapTuple	tuple;
	bool		trusted;

	if (type < FirstNormalObjectId)
		return true;
	tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	if (!HeapTupleIsValid(tuple))
		return false;
	trusted = ((Form_pg_type) GETSTRUCT(tuple))->typowner == owner;
	ReleaseSysCache(tuple);
	return trusted;
}

static bool
untrusted_function(Oid funcid, void *context)
{
	return !function_trusted(funcid, *(Oid *) context);
}

/*
 * Does the expression call a function or operator, or coerce to a domain,
 * that is neither built in nor owned by *owner?
 */
static bool
untrusted_walker(Node *node, Oid *owner)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, untrusted_function, owner))
		return true;
	if (IsA(node, OpExpr) || IsA(node, DistinctExpr) || IsA(node, NullIfExpr))
	{
		if (!operator_trusted(((OpExpr *) node)->opno, *owner))
			return true;
	}
	else if (IsA(node, ScalarArrayOpExpr))
	{
		if (!operator_trusted(((ScalarArrayOpExpr *) node)->opno, *owner))
			return true;
	}
	else if (IsA(node, RowCompareExpr))
	{
		ListCell   *lc;

		foreach(lc, ((RowCompareExpr *) node)->opnos)
		{
			if (!operator_trusted(lfirst_oid(lc), *owner))
				return true;
		}
	}
	else if (IsA(node, CoerceToDomain))
	{
		if (!type_trusted(((CoerceToDomain *) node)->resulttype, *owner))
			return true;
	}
	return expression_tree_walker(node, untrusted_walker, owner);
}

/*
 * May an index on relid hold these key parts and this predicate: does
 * everything they call come with PostgreSQL or from the table's owner?
 */
static bool
candidate_is_trusted(Oid relid, List *key, Node *predicate)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;
	ListCell   *lc;

	if (!HeapTupleIsValid(tuple))
		return false;
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	foreach(lc, key)
	{
		IndexKeyPart *part = lfirst(lc);

		if (part->attnum == 0 && untrusted_walker(part->expression, &owner))
			return false;
	}
	return predicate == NULL || !untrusted_walker(predicate, &owner);
}

/*
 * Make a candidate, or find the same one made before; returns its id, or
 * -1 when an existing index already serves it, or when it would call a
 * function or operator that neither comes with PostgreSQL nor belongs to
 * the table's owner.
 */
static int
make_candidate(List **candidates, Oid relid, List *key, List *include,
			   Node *predicate, int parent)
{
	IndexCandidate *candidate;
	ListCell   *lc;

	if (!candidate_is_trusted(relid, key, predicate))
		return -1;
	candidate = palloc0(sizeof(IndexCandidate));

	candidate->relid = relid;
	candidate->key = key;
	candidate->include = include;
	candidate->predicate = predicate;
	candidate->parent = parent;
	candidate->fraction = 1;
	if (predicate)
	{
		double		distinct;
		bool		in_mcv;
		double		fraction = condition_fraction(relid, predicate, &distinct, &in_mcv);

		candidate->fraction = fraction >= 0 ? Max(fraction, 1e-6) : RARE_FRACTION;
	}
	candidate->definition = candidate_definition(candidate);

	foreach(lc, *candidates)
	{
		IndexCandidate *other = (IndexCandidate *) lfirst(lc);

		if (strcmp(other->definition, candidate->definition) == 0)
			return other->id;
	}
	if (perfopt_candidate_is_served(candidate))
		return -1;

	foreach(lc, key)
	{
		IndexKeyPart *part = lfirst(lc);

		if (part->attnum > 0)
			candidate->columns = bms_add_member(candidate->columns, part->attnum);
		else
			candidate->columns = bms_add_members(candidate->columns, expression_columns(part->expression));
	}
	foreach(lc, include)
		candidate->columns = bms_add_member(candidate->columns, lfirst_int(lc));
	if (predicate)
		candidate->columns = bms_add_members(candidate->columns, expression_columns(predicate));

	candidate->id = list_length(*candidates);
	*candidates = lappend(*candidates, candidate);
	return candidate->id;
}

/* A column of the index's pg_index row, read back into a node tree */
static Node *
index_node_column(Relation index, AttrNumber column)
{
	HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(RelationGetRelid(index)));
	Node	   *node = NULL;
	bool		isnull;
	Datum		datum;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for index %u", RelationGetRelid(index));
	datum = SysCacheGetAttr(INDEXRELID, tuple, column, &isnull);
	if (!isnull)
	{
		node = (Node *) stringToNode(TextDatumGetCString(datum));
		fix_opfuncids(node);
	}
	ReleaseSysCache(tuple);
	return node;
}

/*
 * The expressions of an index, as pg_index stores them.  Unlike
 * RelationGetIndexExpressions, this does not const-fold them, which would
 * run the IMMUTABLE functions of the table's owner as the caller.
 */
List *
perfopt_index_expressions(Relation index)
{
	return (List *) index_node_column(index, Anum_pg_index_indexprs);
}

/* The predicate of a partial index as pg_index stores it, or NULL */
Node *
perfopt_index_predicate(Relation index)
{
	return index_node_column(index, Anum_pg_index_indpred);
}

/*
 * Does an existing valid index serve the candidate: a btree whose leading
 * key is the candidate's key (same columns or expressions, same operator
 * classes), storing its covering columns, with no predicate or the same?
 */
bool
perfopt_candidate_is_served(IndexCandidate *candidate)
{
	Relation	rel = table_open(candidate->relid, AccessShareLock);
	ListCell   *lc;
	bool		served = false;

	foreach(lc, RelationGetIndexList(rel))
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;
		List	   *expressions = perfopt_index_expressions(index);
		Node	   *predicate = perfopt_index_predicate(index);
		ListCell   *expr_cell = list_head(expressions);
		ListCell   *lc2;
		int			i = 0;
		bool		matches = form->indisvalid && index->rd_rel->relam == BTREE_AM_OID &&
		list_length(candidate->key) <= form->indnkeyatts;

		if (matches && predicate != NULL)
			matches = candidate->predicate != NULL && equal(predicate, candidate->predicate);
		foreach(lc2, candidate->key)
		{
			IndexKeyPart *part = lfirst(lc2);
			AttrNumber	attnum;
			Oid			opclass;	/* the index column's operator family */

			if (!matches)
				break;
			attnum = form->indkey.values[i];
			opclass = index->rd_opfamily[i];
			if (part->attnum != attnum)
				matches = false;
			else if (attnum == 0)
			{
				matches = expr_cell != NULL && equal(lfirst(expr_cell), part->expression);
			}
			if (matches)
			{
				Oid			type = attnum > 0 ? get_atttype(candidate->relid, attnum)
				: exprType(part->expression);
				Oid			wanted = part->opclass
				? get_opclass_family(get_opclass_oid(BTREE_AM_OID,
													 list_make1(makeString(pstrdup(part->opclass))), false))
				: get_opclass_family(GetDefaultOpClass(type, BTREE_AM_OID));

				matches = (opclass == wanted);
			}
			if (attnum == 0 && expr_cell != NULL)
				expr_cell = lnext(expressions, expr_cell);
			i++;
		}
		foreach(lc2, candidate->include)
		{
			bool		stored = false;
			int			j;

			for (j = 0; j < form->indnatts; j++)
			{
				if (form->indkey.values[j] == lfirst_int(lc2))
					stored = true;
			}
			matches = matches && stored;
		}
		index_close(index, AccessShareLock);
		if (matches)
		{
			served = true;
			break;
		}
	}
	table_close(rel, AccessShareLock);
	return served;
}

/* The key part of a usage that a partial index on condition should lead with */
static IndexKeyPart *
partial_key(TableUsage *usage, Node *condition)
{
	Bitmapset  *condition_columns = expression_columns(condition);
	List	   *choices = list_concat(list_copy(usage->equality), usage->range);
	ListCell   *lc;

	choices = list_concat(choices, usage->order);
	foreach(lc, choices)
	{
		IndexKeyPart *part = lfirst(lc);

		if (part->attnum == 0 || !bms_is_member(part->attnum, condition_columns))
			return part;
	}
	return column_part(bms_singleton_member(condition_columns), NULL);
}

static int
distinct_cmp(const ListCell *a, const ListCell *b)
{
	double		da = ((IndexKeyPart *) lfirst(a))->distinct;
	double		db = ((IndexKeyPart *) lfirst(b))->distinct;

	return da > db ? -1 : da < db ? 1 : 0;
}

/*
 * The key a level would use best: its equality columns, most distinct
 * values first, then its first range column, or else its ORDER BY keys.
 */
static List *
composite_key(TableUsage *usage)
{
	List	   *key = NIL;
	ListCell   *lc;

	foreach(lc, usage->equality)
	{
		IndexKeyPart *part = lfirst(lc);

		part->distinct = part->attnum > 0 ? column_distinct(usage->relid, part->attnum) : 0;
		key = lappend(key, part);
	}
	list_sort(key, distinct_cmp);
	if (usage->range)
		key = lappend(key, linitial(usage->range));
	else
	{
		foreach(lc, usage->order)
		{
			if (!part_in_list(lfirst(lc), key))
				key = lappend(key, lfirst(lc));
		}
	}
	if (list_length(key) > ADVISOR_MAX_KEY_COLUMNS)
		key = list_truncate(key, ADVISOR_MAX_KEY_COLUMNS);
	return key;
}

/*
 * The seeds: an index on each column or expression a statement compares,
 * on the first ORDER BY column, and a partial index for each rare
 * condition.  Returns their ids; the candidates are added to *candidates.
 */
List *
perfopt_seed_candidates(List *workload, List *usages, List **candidates)
{
	List	   *seeds = NIL;
	ListCell   *lc;

	foreach(lc, usages)
	{
		TableUsage *usage = lfirst(lc);
		List	   *parts = list_concat(list_copy(usage->equality), usage->range);
		ListCell   *lc2;

		if (usage->order)
			parts = lappend(parts, linitial(usage->order));
		foreach(lc2, parts)
		{
			int			id = make_candidate(candidates, usage->relid,
											list_make1(lfirst(lc2)), NIL, NULL, -1);

			if (id >= 0)
				seeds = list_append_unique_int(seeds, id);
		}
		/* the composite this level would use best */
		{
			List	   *key = composite_key(usage);
			int			id;

			if (list_length(key) > 1)
			{
				id = make_candidate(candidates, usage->relid, key, NIL, NULL, -1);
				if (id >= 0)
					seeds = list_append_unique_int(seeds, id);
			}
		}
		foreach(lc2, usage->rare_conditions)
		{
			Node	   *condition = lfirst(lc2);
			int			id = make_candidate(candidates, usage->relid,
											list_make1(partial_key(usage, condition)), NIL,
											condition, -1);

			if (id >= 0)
				seeds = list_append_unique_int(seeds, id);
		}
	}
	return seeds;
}

/*
 * Can a statement level with this usage use the candidate's whole key:
 * equality columns, then either a range column last or the ORDER BY keys
 * in order?  *order_matched tells how many ORDER BY keys it covers.
 */
static bool
usage_fits(TableUsage *usage, IndexCandidate *candidate, int *order_matched)
{
	ListCell   *lc;

	*order_matched = 0;
	if (usage->relid != candidate->relid)
		return false;
	if (candidate->predicate)
	{
		bool		implied = false;

		foreach(lc, usage->rare_conditions)
		{
			if (equal(lfirst(lc), candidate->predicate))
				implied = true;
		}
		if (!implied)
			return false;
	}
	foreach(lc, candidate->key)
	{
		IndexKeyPart *part = lfirst(lc);
		bool		last = (foreach_current_index(lc) == list_length(candidate->key) - 1);

		if (*order_matched == 0 && part_in_list(part, usage->equality))
			continue;
		if (*order_matched < list_length(usage->order) &&
			parts_equal(part, list_nth(usage->order, *order_matched)))
			(*order_matched)++;
		else if (!(last && *order_matched == 0 && part_in_list(part, usage->range)))
			return false;
	}
	return true;
}

/*
 * The candidates one step wider than this one, for some statement that
 * can use them: one more key column (an equality column, a range column
 * last, or the next ORDER BY column), or the covering columns of an
 * index-only scan.  Made once; returns their ids.
 */
List *
perfopt_extend_candidate(IndexCandidate *candidate, List *usages, List **candidates)
{
	ListCell   *lc;

	if (candidate->extended)
		return candidate->extensions;
	candidate->extended = true;

	foreach(lc, usages)
	{
		TableUsage *usage = lfirst(lc);
		List	   *next_parts = NIL;
		IndexKeyPart *last = llast(candidate->key);
		int			order_matched;
		ListCell   *lc2;

		if (!usage_fits(usage, candidate, &order_matched))
			continue;
		/* may not go on past a range column */
		if (order_matched == 0 && !part_in_list(last, usage->equality) &&
			part_in_list(last, usage->range))
			next_parts = NIL;
		else if (order_matched > 0)
		{
			if (order_matched < list_length(usage->order))
				next_parts = list_make1(list_nth(usage->order, order_matched));
		}
		else
		{
			next_parts = list_concat(list_copy(usage->equality), usage->range);
			if (usage->order)
				next_parts = lappend(next_parts, linitial(usage->order));
		}

		if (candidate->include == NIL && list_length(candidate->key) < ADVISOR_MAX_KEY_COLUMNS)
		{
			foreach(lc2, next_parts)
			{
				IndexKeyPart *part = lfirst(lc2);
				int			wider;

				if (part_in_list(part, candidate->key))
					continue;
				wider = make_candidate(candidates, candidate->relid,
									   lappend(list_copy(candidate->key), part),
									   NIL, candidate->predicate, candidate->id);
				if (wider >= 0 && wider != candidate->id)
					candidate->extensions = list_append_unique_int(candidate->extensions, wider);
			}
		}

		/* covering: the other columns the level needs, if they are few */
		if (candidate->include == NIL)
		{
			Bitmapset  *rest = bms_copy(usage->needed);
			List	   *include = NIL;
			int			attnum = -1;
			bool		plain = true;
			int			wider;

			foreach(lc2, candidate->key)
			{
				IndexKeyPart *part = lfirst(lc2);

				if (part->attnum > 0)
					rest = bms_del_member(rest, part->attnum);
				else
					plain = false;
			}
			while ((attnum = bms_next_member(rest, attnum)) >= 0)
				include = lappend_int(include, attnum);
			if (!plain || include == NIL ||
				list_length(include) + list_length(candidate->key) > ADVISOR_MAX_INDEX_COLUMNS)
				continue;
			wider = make_candidate(candidates, candidate->relid, list_copy(candidate->key),
								   include, candidate->predicate, candidate->id);
			if (wider >= 0 && wider != candidate->id)
				candidate->extensions = list_append_unique_int(candidate->extensions, wider);
		}
	}
	return candidate->extensions;
}

/* ----------------------------------------------------------------
 * Foreign keys
 * ----------------------------------------------------------------
 */

/* Rows per workload run that write the referenced key of a foreign key */
static double
referenced_key_writes(List *workload, Oid referenced, Bitmapset *key)
{
	double		rows = 0;
	ListCell   *lc;

	foreach(lc, workload)
	{
		WorkloadStatement *stmt = lfirst(lc);

		if (stmt->target != referenced || stmt->rows <= 0)
			continue;
		if (stmt->command == CMD_DELETE ||
			(stmt->command == CMD_UPDATE && bms_overlap(stmt->updated_columns, key)))
			rows += stmt->weight * stmt->rows;
	}
	return rows;
}

/* OPERATOR(schema.name) of an operator, for a text no search_path changes */
static char *
qualified_operator(Oid opno)
{
	HeapTuple	tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator form;
	char	   *result;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	form = (Form_pg_operator) GETSTRUCT(tuple);
	result = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(form->oprnamespace)),
					  NameStr(form->oprname));
	ReleaseSysCache(tuple);
	return result;
}

/* The owner of a relation */
static Oid
get_rel_owner(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* A foreign key's check, prepared as the referencing table's owner */
typedef struct ForeignKeyCheck
{
	const char *text;
	double		rows;
	Oid			owner;
	WorkloadStatement *result;
} ForeignKeyCheck;

static void
foreign_key_check_step(void *arg)
{
	ForeignKeyCheck *check = (ForeignKeyCheck *) arg;

	check->result = perfopt_workload_statement(check->text, check->rows, check->owner);
}

/*
 * Every foreign key of the workload's tables whose referencing columns no
 * index serves becomes a seed.  When the workload deletes or re-keys rows
 * of the referenced table, each such row makes PostgreSQL look up the
 * referencing rows: that lookup is added to the workload as a statement
 * of its own, weighted by those rows, so that the index is costed by what
 * it saves there too.  That lookup is planned as the referencing table's
 * owner, as PostgreSQL runs it; one that cannot be planned is left out with
 * a NOTICE.  Returns the statements to add.
 */
List *
perfopt_foreign_key_checks(List *workload, List **candidates, List **seeds)
{
	List	   *tables = NIL;
	List	   *checks = NIL;
	ListCell   *lc;
	Relation	constraints;
	SysScanDesc scan;
	HeapTuple	tuple;

	foreach(lc, workload)
		tables = list_concat_unique_oid(tables, ((WorkloadStatement *) lfirst(lc))->tables);

	constraints = table_open(ConstraintRelationId, AccessShareLock);
	scan = systable_beginscan(constraints, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tuple);
		int			nkeys;
		AttrNumber	conkey[INDEX_MAX_KEYS];
		AttrNumber	confkey[INDEX_MAX_KEYS];
		Oid			pf_eq_oprs[INDEX_MAX_KEYS];
		Oid			pp_eq_oprs[INDEX_MAX_KEYS];
		Oid			ff_eq_oprs[INDEX_MAX_KEYS];
		List	   *key = NIL;
		Bitmapset  *referenced_key = NULL;
		IndexCandidate *candidate;
		double		rows;
		int			id;
		int			i;

		if (con->contype != CONSTRAINT_FOREIGN ||
			(!list_member_oid(tables, con->conrelid) && !list_member_oid(tables, con->confrelid)))
			continue;
		DeconstructFkConstraintRow(tuple, &nkeys, conkey, confkey, pf_eq_oprs,
								   pp_eq_oprs, ff_eq_oprs, NULL, NULL);
		if (nkeys > ADVISOR_MAX_KEY_COLUMNS)
			continue;
		for (i = 0; i < nkeys; i++)
		{
			key = lappend(key, column_part(conkey[i], NULL));
			referenced_key = bms_add_member(referenced_key, confkey[i]);
		}
		id = make_candidate(candidates, con->conrelid, key, NIL, NULL, -1);
		if (id < 0)
			continue;			/* an index serves it */
		candidate = list_nth(*candidates, id);
		candidate->foreign_key = true;
		candidate->foreign_key_name = pstrdup(NameStr(con->conname));
		*seeds = list_append_unique_int(*seeds, id);

		rows = referenced_key_writes(workload, con->confrelid, referenced_key);
		if (rows > 0)
		{
			StringInfoData sql;
			ForeignKeyCheck check;
			ErrorData  *edata;

			/* every name qualified: nothing depends on a search_path */
			initStringInfo(&sql);
			appendStringInfo(&sql, "SELECT 1 FROM ONLY %s x WHERE ",
							 perfopt_relation_name(con->conrelid));
			for (i = 0; i < nkeys; i++)
				appendStringInfo(&sql, "%sx.%s %s $%d", i > 0 ? " AND " : "",
								 quote_identifier(get_attname(con->conrelid, conkey[i], false)),
								 qualified_operator(ff_eq_oprs[i]), i + 1);
			appendStringInfoString(&sql, " FOR KEY SHARE OF x");
			check.text = sql.data;
			check.rows = rows;
			check.owner = get_rel_owner(con->conrelid);
			check.result = NULL;
			edata = perfopt_try_in_subtransaction(foreign_key_check_step, &check);
			if (edata != NULL)
				ereport(NOTICE,
						(errmsg("the checks of foreign key %s are left out: %s",
								quote_identifier(NameStr(con->conname)), edata->message)));
			else if (check.result != NULL)
			{
				check.result->checked_foreign_key = con->oid;
				checks = lappend(checks, check.result);
			}
		}
	}
	systable_endscan(scan);
	table_close(constraints, AccessShareLock);
	return checks;
}

/* ----------------------------------------------------------------
 * Size, kind and description
 * ----------------------------------------------------------------
 */

/*
 * What the statistics of a table say of an expression over one of its
 * columns (an expression index's key): its average width and number of
 * distinct values.  pg_stats has nothing on an expression no index or
 * extended statistics has, but the column's own statistics are a sample
 * of its values: the most common values with their frequencies, and the
 * histogram's bounds for the rest, each standing for an equal share.  The
 * expression is evaluated over those values (only when every function in
 * it is built-in and immutable: nothing a tenant wrote runs here): the
 * width is the weighted mean of the results' sizes; when the results
 * repeat (fewer distinct results than half the values), the sample has
 * seen the expression's values and their count is its distinct count
 * (substring(phone from 1 for 2): a few prefixes); otherwise the column's
 * distinct count stands, as an expression has at most as many values as
 * its column.  False when there is nothing to evaluate it on.
 */
typedef struct ExpressionStats
{
	Oid			relid;
	AttrNumber	attnum;
	Node	   *expression;
	double		width;
	double		distinct;
	bool		found;
} ExpressionStats;

typedef struct ReplaceVar
{
	AttrNumber	attnum;
	Const	   *value;
} ReplaceVar;

static Node *
replace_var_mutator(Node *node, ReplaceVar *context)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var) && ((Var *) node)->varattno == context->attnum)
		return (Node *) copyObject(context->value);
	return expression_tree_mutator(node, replace_var_mutator, context);
}

static bool
not_builtin_immutable(Oid funcid, void *context)
{
	return funcid >= FirstNormalObjectId || func_volatile(funcid) != PROVOLATILE_IMMUTABLE;
}

static void
expression_stats_step(void *arg)
{
	ExpressionStats *stats = (ExpressionStats *) arg;
	HeapTuple	tuple;
	AttStatsSlot mcv;
	AttStatsSlot hist;
	bool		have_mcv;
	bool		have_hist;
	Oid			type = get_atttype(stats->relid, stats->attnum);
	Oid			result_type = exprType(stats->expression);
	int16		typlen;
	bool		typbyval;
	int16		result_len;
	bool		result_byval;
	List	   *results = NIL;
	double		weight_sum = 0;
	double		width_sum = 0;
	double		mcv_total = 0;
	double		nullfrac;
	int			nvalues = 0;
	int			i;

	tuple = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(stats->relid),
							Int16GetDatum(stats->attnum), BoolGetDatum(false));
	if (!HeapTupleIsValid(tuple))
		return;
	nullfrac = ((Form_pg_statistic) GETSTRUCT(tuple))->stanullfrac;
	get_typlenbyval(type, &typlen, &typbyval);
	get_typlenbyval(result_type, &result_len, &result_byval);
	have_mcv = get_attstatsslot(&mcv, tuple, STATISTIC_KIND_MCV, InvalidOid,
								ATTSTATSSLOT_VALUES | ATTSTATSSLOT_NUMBERS);
	have_hist = get_attstatsslot(&hist, tuple, STATISTIC_KIND_HISTOGRAM, InvalidOid,
								 ATTSTATSSLOT_VALUES);
	if (have_mcv)
	{
		for (i = 0; i < mcv.nvalues; i++)
			mcv_total += mcv.numbers[i];
	}
	for (i = 0; i < (have_mcv ? mcv.nvalues : 0) + (have_hist ? hist.nvalues : 0); i++)
	{
		bool		from_mcv = have_mcv && i < mcv.nvalues;
		Datum		value = from_mcv ? mcv.values[i] : hist.values[i - (have_mcv ? mcv.nvalues : 0)];
		double		weight = from_mcv ? mcv.numbers[i]
		: Max(1.0 - mcv_total - nullfrac, 0) / hist.nvalues;
		ReplaceVar	replace;
		Node	   *folded;
		Const	   *result;
		ListCell   *lc;
		bool		seen = false;

		replace.attnum = stats->attnum;
		replace.value = makeConst(type, -1, get_typcollation(type), typlen, value, false, typbyval);
		folded = eval_const_expressions(NULL, replace_var_mutator(copyObject(stats->expression),
																  &replace));
		if (!IsA(folded, Const))
			break;
		result = (Const *) folded;
		nvalues++;
		weight_sum += weight;
		if (!result->constisnull)
			width_sum += weight * (result_len > 0 ? result_len
								   : (double) VARSIZE_ANY(DatumGetPointer(result->constvalue)));
		foreach(lc, results)
		{
			Const	   *other = (Const *) lfirst(lc);

			if (other->constisnull == result->constisnull &&
				(result->constisnull ||
				 datumIsEqual(other->constvalue, result->constvalue, result_byval, result_len)))
				seen = true;
		}
		if (!seen)
			results = lappend(results, result);
	}
	if (have_mcv)
		free_attstatsslot(&mcv);
	if (have_hist)
		free_attstatsslot(&hist);
	ReleaseSysCache(tuple);
	if (nvalues == 0 || weight_sum <= 0)
		return;
	stats->width = width_sum / weight_sum;
	stats->distinct = list_length(results) * 2 <= nvalues ? list_length(results)
		: column_distinct(stats->relid, stats->attnum);
	stats->found = true;
}

static bool
expression_stats(Oid relid, Node *expression, double *width, double *distinct)
{
	Bitmapset  *columns = expression_columns(expression);
	ExpressionStats stats;
	ErrorData  *edata;

	if (bms_num_members(columns) != 1 || contain_volatile_functions(expression) ||
		check_functions_in_node(expression, not_builtin_immutable, NULL))
		return false;
	memset(&stats, 0, sizeof(stats));
	stats.relid = relid;
	stats.attnum = bms_singleton_member(columns);
	stats.expression = expression;
	/* an error says nothing the caller may see: no estimate, then */
	edata = perfopt_try_in_subtransaction(expression_stats_step, &stats);
	if (edata != NULL || !stats.found)
		return false;
	*width = stats.width;
	*distinct = stats.distinct;
	return true;
}

/* Can btree deduplicate this key column (its opclass has equalimage)? */
static bool
column_deduplicates(Oid type)
{
	Oid			opclass = GetDefaultOpClass(type, BTREE_AM_OID);
	Oid			family;
	Oid			proc;

	if (!OidIsValid(opclass))
		return false;
	family = get_opclass_family(opclass);
	proc = get_opfamily_proc(family, get_opclass_input_type(opclass),
							 get_opclass_input_type(opclass), BTEQUALIMAGE_PROC);
	if (!OidIsValid(proc))
		return false;
	/* called as btree's own check calls it: with the opclass's input type */
	return DatumGetBool(OidFunctionCall1Coll(proc, get_typcollation(type),
											 ObjectIdGetDatum(get_opclass_input_type(opclass))));
}

/* Average width of a key part or covering column, and its alignment */
static double
part_width(Oid relid, AttrNumber attnum, Node *expression, char *align)
{
	Oid			type = attnum > 0 ? get_atttype(relid, attnum) : exprType(expression);
	int16		typlen;
	bool		typbyval;

	double		width;
	double		distinct;

	get_typlenbyvalalign(type, &typlen, &typbyval, align);
	if (attnum > 0)
		return column_width(relid, attnum);
	if (expression_stats(relid, expression, &width, &distinct))
		return width;
	return get_typavgwidth(type, exprTypmod(expression));
}

/*
 * The size a btree will have: its leaf entries (an 8-byte header, a null
 * bitmap if a column has nulls, the key and covering columns aligned as
 * index tuples align them, padded to MAXALIGN, and a 4-byte line pointer)
 * on leaf pages filled to 90%, plus the pages above them.  With btree
 * deduplication (PostgreSQL 13 and later; plain columns whose operator
 * class allows it, no INCLUDE), each distinct key is stored once with a
 * 6-byte pointer per row.  HypoPG's estimate, one full entry per row with
 * widths it guesses, is an upper bound that can be several times too big
 * on repetitive columns; the advisor takes the smaller of the two.
 */
double
perfopt_estimate_index_bytes(IndexCandidate *candidate)
{
	double		rows = perfopt_relation_tuples(candidate->relid) * candidate->fraction;
	double		distinct = 1;
	double		data = 0;
	bool		deduplicates = (candidate->include == NIL);
	bool		nulls = false;
	double		entry;
	double		leaf_bytes;
	double		usable = BLCKSZ - SizeOfPageHeaderData - sizeof(BTPageOpaqueData);
	double		leaf_pages;
	ListCell   *lc;
	List	   *columns = list_concat(list_copy(candidate->key), NIL);

	foreach(lc, candidate->include)
		columns = lappend(columns, column_part(lfirst_int(lc), NULL));
	foreach(lc, columns)
	{
		IndexKeyPart *part = lfirst(lc);
		char		align;
		double		width = part_width(candidate->relid, part->attnum, part->expression, &align);
		double		values = -1;
		double		expression_width;
		Oid			type = part->attnum > 0 ? get_atttype(candidate->relid, part->attnum)
		: exprType(part->expression);

		if (part->attnum > 0)
			values = column_distinct(candidate->relid, part->attnum);
		else if (!expression_stats(candidate->relid, part->expression, &expression_width, &values))
			values = -1;

		/* short varlenas are not aligned; everything else is */
		if (width > 127 || get_typlen(type) > 0)
			data = att_align_nominal(data, align);
		data += width;
		if (part->attnum > 0 && column_null_fraction(candidate->relid, part->attnum) > 0)
			nulls = true;
		if (part->opclass != NULL || values <= 0 || !column_deduplicates(type))
			deduplicates = false;
		else if (foreach_current_index(lc) < list_length(candidate->key))
			distinct *= values;
	}
	entry = MAXALIGN((uintptr_t) ceil((nulls ? MAXALIGN(sizeof(IndexTupleData) + sizeof(IndexAttributeBitMapData))
									   : sizeof(IndexTupleData)) + data));
	distinct = Min(distinct, rows);
	if (deduplicates && distinct < rows)
		leaf_bytes = distinct * (entry + sizeof(ItemIdData)) + rows * sizeof(ItemPointerData);
	else
		leaf_bytes = rows * (entry + sizeof(ItemIdData));
	leaf_pages = ceil(leaf_bytes / (BTREE_DEFAULT_FILLFACTOR / 100.0 * usable));
	/* the levels above: one downlink per page of the level below */
	return (leaf_pages + ceil(leaf_pages * (entry + sizeof(ItemIdData)) / usable) + 1) * BLCKSZ;
}

/* single, composite, partial, expression or foreign_key */
const char *
perfopt_candidate_kind(IndexCandidate *candidate)
{
	ListCell   *lc;

	if (candidate->predicate)
		return "partial";
	foreach(lc, candidate->key)
	{
		if (((IndexKeyPart *) lfirst(lc))->attnum == 0)
			return "expression";
	}
	if (candidate->foreign_key)
		return "foreign_key";
	return list_length(candidate->key) > 1 ? "composite" : "single";
}

/* What the index is, in words, for the reason column */
char *
perfopt_candidate_description(IndexCandidate *candidate)
{
	const char *kind = perfopt_candidate_kind(candidate);
	StringInfoData buf;

	initStringInfo(&buf);
	if (strcmp(kind, "partial") == 0)
		appendStringInfoString(&buf, "a partial index on ");
	else if (strcmp(kind, "expression") == 0)
		appendStringInfoString(&buf, "an expression index on ");
	else if (strcmp(kind, "composite") == 0)
		appendStringInfoString(&buf, "a composite index on ");
	else
		appendStringInfoString(&buf, "an index on ");
	appendStringInfo(&buf, "%s ", perfopt_relation_name(candidate->relid));
	append_key_list(&buf, candidate);
	if (strcmp(kind, "partial") == 0)
		appendStringInfo(&buf, " for the rows where %s",
						 deparse_for_table(candidate->predicate, candidate->relid));
	if (strcmp(kind, "composite") == 0)
		appendStringInfoString(&buf, ", equality columns first");
	if (candidate->foreign_key_name)
		appendStringInfo(&buf, ", the referencing side of foreign key %s, which has no index",
						 quote_identifier(candidate->foreign_key_name));
	if (candidate->include)
		appendStringInfoString(&buf, ", covering the other columns read for an index-only scan");
	return buf.data;
}
