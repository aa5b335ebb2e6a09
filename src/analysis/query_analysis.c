/*-------------------------------------------------------------------------
 *
 * query_analysis.c
 *	  perfopt.analyze_query and perfopt.slow_queries: what a statement is
 *	  made of, how complex and costly it is, and what to change.
 *
 * A statement is parsed, analyzed and planned generically (statement.c),
 * never executed.  Two walks then collect features and problems:
 *
 * - the analyzed query tree, at every level (subqueries, CTEs, set
 *	 operations), for what the user wrote: tables, joins by type, subqueries
 *	 and whether they are correlated, aggregates, window functions, sorts,
 *	 and problems that are visible in the SQL itself (a WHERE clause that
 *	 wraps a column in a function, LIKE '%...', NOT IN (subquery), OR across
 *	 columns, a join without a condition, a large OFFSET, ...);
 *
 * - the plan tree, for what the planner expects to do: node types,
 *	 sequential scans of large tables, nested loops over big inputs and
 *	 sorts that will not fit in work_mem.
 *
 * slow_queries analyzes the statements of pg_stat_statements that the
 * caller may see (pgss.c), each parsed, analyzed and planned as the role
 * that ran it, restricted, with that role's own search_path (security.c);
 * one whose role is gone or cannot plan it keeps its row, with the reason
 * and no analysis.  analyze_query plans the caller's own text as the
 * caller.
 *
 * complexity.c turns the counts into a score and an impact level.
 * docs/query-analysis.md documents every feature, weight and code.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "common/catalog.h"
#include "advisor/index_advisor.h"
#include "metrics/latency.h"
#include "perfopt.h"
#include "analysis/pgss.h"
#include "analysis/query_analysis.h"
#include "common/security.h"
#include "analysis/statement.h"
#include "common/subxact.h"

PG_FUNCTION_INFO_V1(perfopt_analyze_query);
PG_FUNCTION_INFO_V1(perfopt_slow_queries);

/* A table this big is worth an index (pg_class.reltuples) */
#define LARGE_TABLE_ROWS		10000
/* A filter keeping at most this share of a table's rows is selective */
#define SELECTIVE_FRACTION		0.05
/* OFFSET from which keyset pagination pays */
#define LARGE_OFFSET			1000
/* A result this big is worth a LIMIT before sorting it all */
#define BIG_RESULT_ROWS			10000
/* SELECT * is worth a remark from this many columns or bytes a row */
#define WIDE_COLUMNS			10
#define WIDE_ROW_BYTES			256
/* A nested loop forming this many row pairs is over big inputs */
#define BIG_NESTED_LOOP_PAIRS	1e6

typedef struct PlanNodeCount
{
	const char *name;
	int			count;
} PlanNodeCount;

/* State of the walk over the analyzed query tree */
typedef struct QueryWalk
{
	QueryAnalysis *analysis;
	List	   *levels;			/* Query of each level, outermost first */
	int			min_level_ref;	/* outermost level a Var refers to */
	bool		in_select_list; /* walking a SELECT's target list */
} QueryWalk;

/* State of the walk over a plan tree */
typedef struct PlanWalk
{
	QueryAnalysis *analysis;
	PlannedStmt *stmt;
	int			gather_workers; /* workers of the Gather above, if any */
	double		bounded_sort_rows;	/* largest input of a sort under LIMIT */
} PlanWalk;

static void walk_query(QueryWalk *walk, Query *query);

/* ----------------------------------------------------------------
 * Recommendations
 * ----------------------------------------------------------------
 */

/* Add a recommendation unless the same one is already there */
static void recommend(QueryAnalysis *analysis, const char *code,
					  PerfoptLevel severity, const char *fmt,...) pg_attribute_printf(4, 5);

static void
recommend(QueryAnalysis *analysis, const char *code, PerfoptLevel severity,
		  const char *fmt,...)
{
	StringInfoData buf;
	Recommendation *rec;
	ListCell   *lc;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}

	foreach(lc, analysis->recommendations)
	{
		rec = (Recommendation *) lfirst(lc);
		if (strcmp(rec->code, code) == 0 && strcmp(rec->message, buf.data) == 0)
			return;
	}
	rec = palloc(sizeof(Recommendation));
	rec->code = code;
	rec->severity = severity;
	rec->message = buf.data;
	analysis->recommendations = lappend(analysis->recommendations, rec);
}

static int
recommendation_cmp(const ListCell *a, const ListCell *b)
{
	Recommendation *ra = (Recommendation *) lfirst(a);
	Recommendation *rb = (Recommendation *) lfirst(b);

	return (int) rb->severity - (int) ra->severity;
}

/* ----------------------------------------------------------------
 * Names for messages
 * ----------------------------------------------------------------
 */

/* alias.column of a Var of the given query level, as the user named them */
static char *
column_display_name(Query *query, Var *var)
{
	RangeTblEntry *rte = rt_fetch(var->varno, query->rtable);
	const char *column = "*";

	if (var->varattno > 0 && var->varattno <= list_length(rte->eref->colnames))
		column = strVal(list_nth(rte->eref->colnames, var->varattno - 1));
	return psprintf("%s.%s", quote_identifier(rte->eref->aliasname),
					quote_identifier(column));
}

/*
 * SQL text of an expression over a single table (its Vars have varno
 * varno), deparsed as if that table were alone in FROM.
 */
static char *
deparse_single_table_expression(Node *expr, Index varno, Oid relid)
{
	Node	   *copy = copyObject(expr);

	ChangeVarNodes(copy, varno, 1, 0);
	return deparse_expression(copy, deparse_context_for(get_rel_name(relid), relid),
							  false, false);
}

/* ----------------------------------------------------------------
 * Helpers over expressions
 * ----------------------------------------------------------------
 */

static Node *
strip_relabel(Node *node)
{
	while (node != NULL)
	{
		if (IsA(node, RelabelType))
			node = (Node *) ((RelabelType *) node)->arg;
		else if (IsA(node, CollateExpr))
			node = (Node *) ((CollateExpr *) node)->arg;
		else
			break;
	}
	return node;
}

/* Split an expression into its AND-ed conditions */
static void
collect_conjuncts(Node *node, List **conjuncts)
{
	if (node == NULL)
		return;
	if (IsA(node, List))
	{
		ListCell   *lc;

		foreach(lc, (List *) node)
			collect_conjuncts(lfirst(lc), conjuncts);
	}
	else if (is_andclause(node))
		collect_conjuncts((Node *) ((BoolExpr *) node)->args, conjuncts);
	else
		*conjuncts = lappend(*conjuncts, node);
}

/* Gather every qualification of a query level: WHERE, JOIN ... ON, HAVING */
static void
collect_jointree_quals(Node *jtnode, List **conjuncts)
{
	if (jtnode == NULL)
		return;
	if (IsA(jtnode, FromExpr))
	{
		FromExpr   *from = (FromExpr *) jtnode;
		ListCell   *lc;

		foreach(lc, from->fromlist)
			collect_jointree_quals(lfirst(lc), conjuncts);
		collect_conjuncts(from->quals, conjuncts);
	}
	else if (IsA(jtnode, JoinExpr))
	{
		JoinExpr   *join = (JoinExpr *) jtnode;

		collect_jointree_quals(join->larg, conjuncts);
		collect_jointree_quals(join->rarg, conjuncts);
		collect_conjuncts(join->quals, conjuncts);
	}
}

static bool
level_columns_walker(Node *node, List **columns)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;
		ListCell   *lc;

		if (var->varlevelsup != 0)
			return false;
		foreach(lc, *columns)
		{
			Var		   *other = lfirst_node(Var, lc);

			if (other->varno == var->varno && other->varattno == var->varattno)
				return false;
		}
		*columns = lappend(*columns, var);
		return false;
	}
	if (IsA(node, SubLink))
		return level_columns_walker(((SubLink *) node)->testexpr, columns);
	if (IsA(node, Query))
		return false;
	return expression_tree_walker(node, level_columns_walker, columns);
}

/*
 * Distinct columns of this query level that an expression uses, outside
 * its subqueries, with join alias columns resolved to table columns.
 */
static List *
level_columns(Query *query, Node *node)
{
	List	   *columns = NIL;

	(void) level_columns_walker(flatten_join_alias_vars(query, node), &columns);
	return columns;
}

/*
 * Value of a LIMIT or OFFSET expression when it is a constant (the parser
 * leaves "OFFSET 5000" as a cast of 5000 to bigint, so fold it first).
 * Returns false for a parameter, an expression or NULL (LIMIT ALL).
 */
static bool
constant_limit(Node *expr, int64 *value)
{
	Node	   *folded;

	if (expr == NULL)
		return false;
	folded = eval_const_expressions(NULL, copyObject(expr));
	if (!IsA(folded, Const) || ((Const *) folded)->constisnull)
		return false;
	*value = DatumGetInt64(((Const *) folded)->constvalue);
	return true;
}

/* Has the query a LIMIT, other than LIMIT ALL (a NULL constant)? */
static bool
has_limit(Query *query)
{
	Node	   *folded;

	if (query->limitCount == NULL)
		return false;
	folded = eval_const_expressions(NULL, copyObject(query->limitCount));
	return !(IsA(folded, Const) && ((Const *) folded)->constisnull);
}

/* Does the expression stay the same for every row of this level? */
static bool
is_pseudo_constant(Node *node)
{
	return !contain_vars_of_level(node, 0) && !contain_volatile_functions(node);
}

/* Is the operator a btree ordering or equality comparison (not <>)? */
static bool
is_indexable_comparison(Oid opno)
{
	ListCell   *lc;

	foreach(lc, get_op_btree_interpretation(opno))
	{
		OpBtreeInterpretation *interp = lfirst(lc);

		if (interp->strategy >= BTLessStrategyNumber &&
			interp->strategy <= BTGreaterStrategyNumber)
			return true;
	}
	return false;
}

/* Is the operator LIKE or ILIKE? */
static bool
is_like_operator(Oid opno)
{
	char	   *name = get_opname(opno);

	return name != NULL && (strcmp(name, "~~") == 0 || strcmp(name, "~~*") == 0);
}

/*
 * Has the table an index on exactly this expression?  expr's Vars carry
 * varno; index expressions are stored with varno 1.
 */
static bool
expression_is_indexed(Oid relid, Node *expr, Index varno)
{
	Node	   *target = copyObject(expr);
	Relation	rel;
	ListCell   *lc;
	bool		found = false;

	ChangeVarNodes(target, varno, 1, 0);
	target = strip_relabel(target);

	rel = table_open(relid, AccessShareLock);
	foreach(lc, RelationGetIndexList(rel))
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		ListCell   *lc2;

		foreach(lc2, perfopt_index_expressions(index))
		{
			if (equal(strip_relabel(lfirst(lc2)), target))
				found = true;
		}
		index_close(index, AccessShareLock);
		if (found)
			break;
	}
	table_close(rel, AccessShareLock);
	return found;
}

/* Does node use a column of a query level above its own? */
static bool
outer_references_walker(Node *node, int *sublevels_up)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
		return ((Var *) node)->varlevelsup > *sublevels_up;
	if (IsA(node, Query))
	{
		bool		result;

		(*sublevels_up)++;
		result = query_tree_walker((Query *) node, outer_references_walker, sublevels_up, 0);
		(*sublevels_up)--;
		return result;
	}
	return expression_tree_walker(node, outer_references_walker, sublevels_up);
}

static bool
has_outer_references(Node *node)
{
	int			sublevels_up = 0;

	return outer_references_walker(node, &sublevels_up);
}

/* ----------------------------------------------------------------
 * Problems visible in the SQL
 * ----------------------------------------------------------------
 */

/*
 * side compares a column, wrapped in a function, cast or operator, with a
 * value that is the same for every row: no plain index on the column can
 * serve the comparison.  Say so, unless an expression index matches.
 */
static void
check_wrapped_column(QueryAnalysis *analysis, Query *query, Node *side)
{
	List	   *columns;
	Var		   *var;
	RangeTblEntry *rte;
	char	   *column;
	char	   *expr_sql;
	char	   *table;

	side = strip_relabel(flatten_join_alias_vars(query, side));
	if (side == NULL || IsA(side, Var) || IsA(side, Const) || IsA(side, Param))
		return;
	if (contain_volatile_functions(side) || checkExprHasSubLink(side) ||
		has_outer_references(side))
		return;			/* not an expression an index could hold */
	columns = level_columns(query, side);
	if (list_length(columns) != 1)
		return;
	var = linitial_node(Var, columns);
	rte = rt_fetch(var->varno, query->rtable);
	if (rte->rtekind != RTE_RELATION || var->varattno <= 0)
		return;
	if (expression_is_indexed(rte->relid, side, var->varno))
		return;

	column = column_display_name(query, var);
	expr_sql = deparse_single_table_expression(side, var->varno, rte->relid);
	table = perfopt_relation_name(rte->relid);

	if (IsA(side, FuncExpr) && ((FuncExpr *) side)->funcformat == COERCE_IMPLICIT_CAST)
		recommend(analysis, "function_on_filtered_column", LEVEL_MEDIUM,
				  "%s (%s) is converted to %s to be compared, so an index on the column cannot be used: compare it with a value of type %s",
				  column, format_type_be(var->vartype), format_type_be(exprType(side)),
				  format_type_be(var->vartype));
	else if ((IsA(side, FuncExpr) && ((FuncExpr *) side)->funcformat == COERCE_EXPLICIT_CAST) ||
			 IsA(side, CoerceViaIO) || IsA(side, ArrayCoerceExpr))
		recommend(analysis, "function_on_filtered_column", LEVEL_MEDIUM,
				  "%s is cast to %s before it is compared (%s), so an index on the column cannot be used: compare the column itself with a range of its own type, or index the expression: CREATE INDEX ON %s ((%s))",
				  column, format_type_be(exprType(side)), expr_sql, table, expr_sql);
	else
		recommend(analysis, "function_on_filtered_column", LEVEL_MEDIUM,
				  "the filter computes %s for every row, so an index on %s cannot be used: compare the column itself, or index the expression: CREATE INDEX ON %s ((%s))",
				  expr_sql, column, table, expr_sql);
}

/* LIKE/ILIKE whose pattern starts with a wildcard */
static void
check_like(QueryAnalysis *analysis, Query *query, OpExpr *op)
{
	Node	   *pattern = strip_relabel(lsecond(op->args));
	Node	   *subject = strip_relabel(flatten_join_alias_vars(query, linitial(op->args)));
	Const	   *c;
	Oid			typoutput;
	bool		typisvarlena;
	char	   *text;

	if (!IsA(pattern, Const) || ((Const *) pattern)->constisnull)
		return;
	c = (Const *) pattern;
	getTypeOutputInfo(c->consttype, &typoutput, &typisvarlena);
	text = OidOutputFunctionCall(typoutput, c->constvalue);
	if (text[0] != '%' && text[0] != '_')
		return;

	if (IsA(subject, Var) && ((Var *) subject)->varlevelsup == 0 &&
		rt_fetch(((Var *) subject)->varno, query->rtable)->rtekind == RTE_RELATION &&
		((Var *) subject)->varattno > 0)
	{
		Var		   *var = (Var *) subject;
		RangeTblEntry *rte = rt_fetch(var->varno, query->rtable);

		recommend(analysis, "leading_wildcard_like", LEVEL_MEDIUM,
				  "the pattern '%s' of %s starts with a wildcard, so no btree index on %s can serve it: use a trigram index (CREATE EXTENSION pg_trgm; CREATE INDEX ON %s USING gin (%s gin_trgm_ops)) or full-text search",
				  text, get_opname(op->opno)[2] == '*' ? "ILIKE" : "LIKE",
				  column_display_name(query, var),
				  perfopt_relation_name(rte->relid),
				  quote_identifier(get_attname(rte->relid, var->varattno, false)));
	}
	else
		recommend(analysis, "leading_wildcard_like", LEVEL_MEDIUM,
				  "the pattern '%s' of %s starts with a wildcard, so no btree index can serve it: use a trigram index (pg_trgm) or full-text search",
				  text, get_opname(op->opno)[2] == '*' ? "ILIKE" : "LIKE");
}

/*
 * OR whose arms share no column: no single index serves it, so the planner
 * scans the table or combines one bitmap scan per column.
 */
static void
check_or_across_columns(QueryAnalysis *analysis, Query *query, BoolExpr *or)
{
	List	   *common = NIL;
	List	   *all = NIL;
	bool		first = true;
	ListCell   *lc;
	StringInfoData names;

	foreach(lc, or->args)
	{
		List	   *columns = level_columns(query, lfirst(lc));
		List	   *kept = NIL;
		ListCell   *lc2;

		if (columns == NIL)
			continue;			/* "$1 IS NULL OR ..." arm */
		foreach(lc2, columns)
		{
			Var		   *var = lfirst_node(Var, lc2);
			ListCell   *lc3;
			bool		in_common = first;
			bool		in_all = false;

			foreach(lc3, common)
			{
				Var		   *other = lfirst_node(Var, lc3);

				if (other->varno == var->varno && other->varattno == var->varattno)
					in_common = true;
			}
			if (in_common)
				kept = lappend(kept, var);
			foreach(lc3, all)
			{
				Var		   *other = lfirst_node(Var, lc3);

				if (other->varno == var->varno && other->varattno == var->varattno)
					in_all = true;
			}
			if (!in_all)
				all = lappend(all, var);
		}
		common = kept;
		first = false;
	}
	if (first || common != NIL || list_length(all) < 2)
		return;

	initStringInfo(&names);
	foreach(lc, all)
		appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "",
						 column_display_name(query, lfirst_node(Var, lc)));
	recommend(analysis, "or_across_columns", LEVEL_LOW,
			  "OR across different columns (%s) keeps a single index from serving the filter: give each column an index so that the planner can combine them (BitmapOr), or write one query per column joined with UNION",
			  names.data);
}

/* Look for LIKE and wrapped columns anywhere in a qualification */
static bool
qual_walker(Node *node, void *context)
{
	QueryWalk  *walk = (QueryWalk *) context;
	Query	   *query = llast_node(Query, walk->levels);

	if (node == NULL)
		return false;
	if (IsA(node, Query) || IsA(node, SubLink))
		return false;			/* checked at their own level */
	if (IsA(node, OpExpr) && list_length(((OpExpr *) node)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) node;

		if (is_like_operator(op->opno))
			check_like(walk->analysis, query, op);
		else if (is_indexable_comparison(op->opno))
		{
			if (is_pseudo_constant(lsecond(op->args)))
				check_wrapped_column(walk->analysis, query, linitial(op->args));
			if (is_pseudo_constant(linitial(op->args)))
				check_wrapped_column(walk->analysis, query, lsecond(op->args));
		}
	}
	else if (IsA(node, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) node;

		if (is_indexable_comparison(saop->opno) &&
			is_pseudo_constant(lsecond(saop->args)))
			check_wrapped_column(walk->analysis, query, linitial(saop->args));
	}
	return expression_tree_walker(node, qual_walker, context);
}

static void
check_quals(QueryWalk *walk, Query *query)
{
	List	   *conjuncts = NIL;
	ListCell   *lc;

	collect_jointree_quals((Node *) query->jointree, &conjuncts);
	collect_conjuncts(query->havingQual, &conjuncts);
	foreach(lc, conjuncts)
	{
		Node	   *qual = lfirst(lc);

		if (is_orclause(qual))
			check_or_across_columns(walk->analysis, query, (BoolExpr *) qual);
		(void) qual_walker(qual, walk);
	}
}

/* Range table indexes of the items joined at this level */
static void
collect_join_leaves(Node *jtnode, List **leaves)
{
	if (IsA(jtnode, RangeTblRef))
		*leaves = lappend_int(*leaves, ((RangeTblRef *) jtnode)->rtindex);
	else if (IsA(jtnode, FromExpr))
	{
		ListCell   *lc;

		foreach(lc, ((FromExpr *) jtnode)->fromlist)
			collect_join_leaves(lfirst(lc), leaves);
	}
	else if (IsA(jtnode, JoinExpr))
	{
		collect_join_leaves(((JoinExpr *) jtnode)->larg, leaves);
		collect_join_leaves(((JoinExpr *) jtnode)->rarg, leaves);
	}
}

/* A subquery that returns at most one row joins harmlessly without a condition */
static bool
is_single_row_subquery(Query *subquery)
{
	if (subquery->hasAggs && subquery->groupClause == NIL &&
		subquery->groupingSets == NIL && !subquery->hasTargetSRFs)
		return true;
	if (subquery->limitCount && IsA(subquery->limitCount, Const))
	{
		Const	   *c = (Const *) subquery->limitCount;

		return !c->constisnull && DatumGetInt64(c->constvalue) <= 1;
	}
	return false;
}

/* Does this range table entry take part in the join-condition check? */
static bool
is_checked_join_item(RangeTblEntry *rte)
{
	if (rte->lateral)
		return false;
	switch (rte->rtekind)
	{
		case RTE_RELATION:
		case RTE_CTE:
			return true;
		case RTE_SUBQUERY:
			return !is_single_row_subquery(rte->subquery);
		default:
			return false;		/* functions, VALUES, ... are usually meant */
	}
}

static int
find_root(int *parent, int i)
{
	while (parent[i] != i)
		i = parent[i] = parent[parent[i]];
	return i;
}

/*
 * Every pair of tables joined at this level must be linked, directly or
 * through others, by some condition; otherwise each row of one group is
 * paired with every row of the other.
 */
static void
check_join_conditions(QueryAnalysis *analysis, Query *query)
{
	List	   *leaves = NIL;
	List	   *conjuncts = NIL;
	int			nrtes = list_length(query->rtable);
	int		   *parent;
	int			i;
	ListCell   *lc;
	int			first_root = -1;
	StringInfoData left;
	StringInfoData right;

	collect_join_leaves((Node *) query->jointree, &leaves);
	if (list_length(leaves) < 2)
		return;

	parent = palloc((nrtes + 1) * sizeof(int));
	for (i = 0; i <= nrtes; i++)
		parent[i] = i;

	collect_jointree_quals((Node *) query->jointree, &conjuncts);
	foreach(lc, conjuncts)
	{
		Bitmapset  *relids = pull_varnos(NULL, flatten_join_alias_vars(query, lfirst(lc)));
		int			first = bms_next_member(relids, -1);
		int			other = first;

		while ((other = bms_next_member(relids, other)) >= 0)
		{
			if (first <= nrtes && other <= nrtes)
				parent[find_root(parent, other)] = find_root(parent, first);
		}
	}

	initStringInfo(&left);
	initStringInfo(&right);
	foreach(lc, leaves)
	{
		int			rti = lfirst_int(lc);
		RangeTblEntry *rte = rt_fetch(rti, query->rtable);
		StringInfo	side;

		if (!is_checked_join_item(rte))
			continue;
		if (first_root < 0)
			first_root = find_root(parent, rti);
		side = find_root(parent, rti) == first_root ? &left : &right;
		appendStringInfo(side, "%s%s", side->len > 0 ? ", " : "",
						 quote_identifier(rte->eref->aliasname));
	}
	if (right.len == 0)
		return;
	recommend(analysis, "missing_join_condition", LEVEL_HIGH,
			  "no join condition links %s with %s, so every row of one is paired with every row of the other: add the condition that relates them (ON or WHERE), or write CROSS JOIN with a LIMIT if the product is really wanted",
			  left.data, right.data);
}

/* ----------------------------------------------------------------
 * Walk over the analyzed query
 * ----------------------------------------------------------------
 */

static int
current_level(QueryWalk *walk)
{
	return list_length(walk->levels) - 1;
}

static void
note_level_ref(QueryWalk *walk, Index levelsup)
{
	walk->min_level_ref = Min(walk->min_level_ref,
							  current_level(walk) - (int) levelsup);
}

/*
 * Walk a query one level down; returns whether it refers to a level
 * outside itself (is correlated).
 */
static bool
walk_subquery(QueryWalk *walk, Query *subquery)
{
	int			saved_ref = walk->min_level_ref;
	bool		saved_in_select = walk->in_select_list;
	int			level = list_length(walk->levels);
	bool		correlated;

	walk->min_level_ref = INT_MAX;
	walk->in_select_list = false;
	walk_query(walk, subquery);
	correlated = walk->min_level_ref < level;
	walk->min_level_ref = Min(saved_ref, walk->min_level_ref);
	walk->in_select_list = saved_in_select;
	return correlated;
}

/* Name of the first table a subquery reads, for messages */
static const char *
first_table_of(Query *query)
{
	ListCell   *lc;

	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		if (rte->rtekind == RTE_RELATION)
			return perfopt_relation_name(rte->relid);
	}
	return "a subquery";
}

static bool
expression_walker(Node *node, void *context)
{
	QueryWalk  *walk = (QueryWalk *) context;
	QueryFeatures *features = &walk->analysis->features;

	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
			note_level_ref(walk, ((Var *) node)->varlevelsup);
			return false;
		case T_Aggref:
			features->aggregates++;
			break;
		case T_WindowFunc:
			features->window_functions++;
			break;
		case T_FuncExpr:
			if (((FuncExpr *) node)->funcformat == COERCE_EXPLICIT_CALL ||
				((FuncExpr *) node)->funcformat == COERCE_SQL_SYNTAX)
				features->functions++;
			break;
		case T_BoolExpr:
			if (is_notclause(node))
			{
				Node	   *arg = linitial(((BoolExpr *) node)->args);

				if (IsA(arg, SubLink) && ((SubLink *) arg)->subLinkType == ANY_SUBLINK)
					recommend(walk->analysis, "not_in_subquery", LEVEL_MEDIUM,
							  "NOT IN (SELECT ... FROM %s) cannot be planned as an anti-join and yields no row at all when the subquery returns a NULL: write NOT EXISTS (SELECT 1 FROM ... WHERE ...) instead",
							  first_table_of((Query *) ((SubLink *) arg)->subselect));
			}
			break;
		case T_SubLink:
			{
				SubLink    *sublink = (SubLink *) node;
				bool		in_select = walk->in_select_list;

				features->subqueries++;
				(void) expression_walker(sublink->testexpr, walk);
				if (walk_subquery(walk, (Query *) sublink->subselect))
				{
					features->correlated_subqueries++;
					if (in_select && (sublink->subLinkType == EXPR_SUBLINK ||
									  sublink->subLinkType == ARRAY_SUBLINK))
						recommend(walk->analysis, "correlated_subquery_in_select", LEVEL_MEDIUM,
								  "the subquery on %s in the select list refers to the outer query, so it runs once for every row returned: join the table instead (grouped once if it aggregates), or move the subquery into a LATERAL join",
								  first_table_of((Query *) sublink->subselect));
				}
				return false;
			}
		case T_Query:
			(void) walk_subquery(walk, (Query *) node);
			return false;
		default:
			break;
	}
	return expression_tree_walker(node, expression_walker, context);
}

static void
walk_expression(QueryWalk *walk, Node *node)
{
	(void) expression_walker(node, walk);
}

static void
count_set_operations(QueryFeatures *features, Node *node)
{
	if (node != NULL && IsA(node, SetOperationStmt))
	{
		features->set_operations++;
		count_set_operations(features, ((SetOperationStmt *) node)->larg);
		count_set_operations(features, ((SetOperationStmt *) node)->rarg);
	}
}

/* Count joins by type and walk the conditions of one join tree */
static void
walk_jointree(QueryWalk *walk, Node *jtnode)
{
	QueryFeatures *features = &walk->analysis->features;

	if (jtnode == NULL)
		return;
	if (IsA(jtnode, FromExpr))
	{
		FromExpr   *from = (FromExpr *) jtnode;
		ListCell   *lc;

		/* FROM a, b, c is two implicit inner joins */
		features->inner_joins += Max(list_length(from->fromlist) - 1, 0);
		foreach(lc, from->fromlist)
			walk_jointree(walk, lfirst(lc));
		walk_expression(walk, from->quals);
	}
	else if (IsA(jtnode, JoinExpr))
	{
		JoinExpr   *join = (JoinExpr *) jtnode;

		switch (join->jointype)
		{
			case JOIN_INNER:
				if (join->quals == NULL)
					features->cross_joins++;
				else
					features->inner_joins++;
				break;
			case JOIN_LEFT:
				features->left_joins++;
				break;
			case JOIN_RIGHT:
				features->right_joins++;
				break;
			case JOIN_FULL:
				features->full_joins++;
				break;
			default:
				features->inner_joins++;
				break;
		}
		walk_jointree(walk, join->larg);
		walk_jointree(walk, join->rarg);
		walk_expression(walk, join->quals);
	}
}

static void
note_relation(QueryAnalysis *analysis, Oid relid)
{
	char	   *name = perfopt_relation_name(relid);
	ListCell   *lc;

	foreach(lc, analysis->relations)
	{
		if (strcmp(lfirst(lc), name) == 0)
			return;
	}
	analysis->relations = lappend(analysis->relations, name);
}

/* Features and SQL-level problems of one query level and those below it */
static void
walk_query(QueryWalk *walk, Query *query)
{
	QueryAnalysis *analysis = walk->analysis;
	QueryFeatures *features = &analysis->features;
	ListCell   *lc;
	int64		offset;

	check_stack_depth();
	walk->levels = lappend(walk->levels, query);

	if (query->sortClause)
		features->sorts++;
	if (query->distinctClause)
		features->distinct++;
	if (query->groupClause || query->groupingSets)
		features->group_by++;
	if (query->havingQual)
		features->having++;
	if (has_limit(query))
		features->limit++;
	if (query->limitOffset)
		features->offset++;
	count_set_operations(features, query->setOperations);

	foreach(lc, query->cteList)
	{
		CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

		features->ctes++;
		if (cte->cterecursive)
			features->recursive_ctes++;
		(void) walk_subquery(walk, (Query *) cte->ctequery);
	}

	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

		switch (rte->rtekind)
		{
			case RTE_RELATION:
				features->tables++;
				note_relation(analysis, rte->relid);
				break;
			case RTE_SUBQUERY:
				/*
				 * The arms of a UNION and the SELECT of an INSERT are not
				 * subqueries the user wrote as such.
				 */
				if (query->setOperations == NULL && query->commandType != CMD_INSERT)
					features->subqueries++;
				if (walk_subquery(walk, rte->subquery))
					features->correlated_subqueries++;
				break;
			case RTE_FUNCTION:
				walk_expression(walk, (Node *) rte->functions);
				break;
			case RTE_TABLEFUNC:
				walk_expression(walk, (Node *) rte->tablefunc);
				break;
			case RTE_VALUES:
				walk_expression(walk, (Node *) rte->values_lists);
				break;
			default:
				break;
		}
	}

	walk_jointree(walk, (Node *) query->jointree);

	walk->in_select_list = (query->commandType == CMD_SELECT);
	walk_expression(walk, (Node *) query->targetList);
	walk->in_select_list = false;

	walk_expression(walk, query->havingQual);
	walk_expression(walk, query->limitOffset);
	walk_expression(walk, query->limitCount);
	walk_expression(walk, (Node *) query->returningList);
	walk_expression(walk, (Node *) query->onConflict);
	walk_expression(walk, (Node *) query->mergeActionList);
	walk_expression(walk, (Node *) query->windowClause);

	check_quals(walk, query);

	if ((query->commandType == CMD_SELECT || query->commandType == CMD_UPDATE ||
		 query->commandType == CMD_DELETE) && query->setOperations == NULL)
		check_join_conditions(analysis, query);

	if ((query->commandType == CMD_UPDATE || query->commandType == CMD_DELETE) &&
		query->jointree->quals == NULL)
	{
		RangeTblEntry *target = rt_fetch(query->resultRelation, query->rtable);

		if (query->commandType == CMD_UPDATE)
			recommend(analysis, "update_without_where", LEVEL_HIGH,
					  "UPDATE of %s has no WHERE clause: it changes every row, writes a new version of each and leaves as many dead tuples; add a WHERE clause, or update in batches",
					  perfopt_relation_name(target->relid));
		else
			recommend(analysis, "delete_without_where", LEVEL_HIGH,
					  "DELETE from %s has no WHERE clause: it removes every row one by one and leaves them all as dead tuples; add a WHERE clause, or use TRUNCATE to empty the table",
					  perfopt_relation_name(target->relid));
	}

	if (constant_limit(query->limitOffset, &offset) && offset >= LARGE_OFFSET)
		recommend(analysis, "large_offset", LEVEL_MEDIUM,
				  "OFFSET " INT64_FORMAT " makes the server produce and throw away " INT64_FORMAT " rows before the first one returned, more on every page: paginate by key instead (WHERE (sort columns) > (values of the last row seen) ORDER BY ... LIMIT n)",
				  offset, offset);

	walk->levels = list_delete_last(walk->levels);
}

/* ----------------------------------------------------------------
 * Walk over the plan
 * ----------------------------------------------------------------
 */

static const char *
plan_node_name(Plan *plan)
{
	switch (nodeTag(plan))
	{
		case T_Result:
			return "Result";
		case T_ProjectSet:
			return "ProjectSet";
		case T_ModifyTable:
			switch (((ModifyTable *) plan)->operation)
			{
				case CMD_INSERT:
					return "Insert";
				case CMD_UPDATE:
					return "Update";
				case CMD_DELETE:
					return "Delete";
				case CMD_MERGE:
					return "Merge";
				default:
					return "ModifyTable";
			}
		case T_Append:
			return "Append";
		case T_MergeAppend:
			return "Merge Append";
		case T_RecursiveUnion:
			return "Recursive Union";
		case T_BitmapAnd:
			return "BitmapAnd";
		case T_BitmapOr:
			return "BitmapOr";
		case T_NestLoop:
			return "Nested Loop";
		case T_MergeJoin:
			return "Merge Join";
		case T_HashJoin:
			return "Hash Join";
		case T_SeqScan:
			return "Seq Scan";
		case T_SampleScan:
			return "Sample Scan";
		case T_Gather:
			return "Gather";
		case T_GatherMerge:
			return "Gather Merge";
		case T_IndexScan:
			return "Index Scan";
		case T_IndexOnlyScan:
			return "Index Only Scan";
		case T_BitmapIndexScan:
			return "Bitmap Index Scan";
		case T_BitmapHeapScan:
			return "Bitmap Heap Scan";
		case T_TidScan:
			return "Tid Scan";
		case T_TidRangeScan:
			return "Tid Range Scan";
		case T_SubqueryScan:
			return "Subquery Scan";
		case T_FunctionScan:
			return "Function Scan";
		case T_TableFuncScan:
			return "Table Function Scan";
		case T_ValuesScan:
			return "Values Scan";
		case T_CteScan:
			return "CTE Scan";
		case T_NamedTuplestoreScan:
			return "Named Tuplestore Scan";
		case T_WorkTableScan:
			return "WorkTable Scan";
		case T_ForeignScan:
			return "Foreign Scan";
		case T_CustomScan:
			return "Custom Scan";
		case T_Material:
			return "Materialize";
		case T_Memoize:
			return "Memoize";
		case T_Sort:
			return "Sort";
		case T_IncrementalSort:
			return "Incremental Sort";
		case T_Group:
			return "Group";
		case T_Agg:
			return "Aggregate";
		case T_WindowAgg:
			return "WindowAgg";
		case T_Unique:
			return "Unique";
		case T_SetOp:
			return "SetOp";
		case T_LockRows:
			return "LockRows";
		case T_Limit:
			return "Limit";
		case T_Hash:
			return "Hash";
		default:
			return "Other";
	}
}

static void
count_plan_node(QueryAnalysis *analysis, const char *name)
{
	PlanNodeCount *entry;
	ListCell   *lc;

	foreach(lc, analysis->plan_nodes)
	{
		entry = (PlanNodeCount *) lfirst(lc);
		if (strcmp(entry->name, name) == 0)
		{
			entry->count++;
			return;
		}
	}
	entry = palloc(sizeof(PlanNodeCount));
	entry->name = name;
	entry->count = 1;
	analysis->plan_nodes = lappend(analysis->plan_nodes, entry);
}

/* pg_class.reltuples of a relation; -1 when never analyzed */
static double
relation_tuples(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	double		tuples = -1;

	if (HeapTupleIsValid(tuple))
	{
		tuples = ((Form_pg_class) GETSTRUCT(tuple))->reltuples;
		ReleaseSysCache(tuple);
	}
	return tuples;
}

/*
 * Rows a parallel-aware scan returns in all, from its per-process
 * estimate, as the planner divides them (leader takes part, less so as
 * workers are added).
 */
static double
all_process_rows(Plan *plan, int workers)
{
	double		divisor = workers;
	double		leader = 1.0 - 0.3 * workers;

	if (!plan->parallel_aware || workers <= 0)
		return plan->plan_rows;
	if (leader > 0)
		divisor += leader;
	return plan->plan_rows * divisor;
}

/* A sequential scan of a large table that keeps few of its rows */
static void
check_seq_scan(PlanWalk *walk, SeqScan *scan)
{
	RangeTblEntry *rte = rt_fetch(scan->scan.scanrelid, walk->stmt->rtable);
	double		tuples = relation_tuples(rte->relid);
	double		rows;
	StringInfoData columns;
	ListCell   *lc;

	if (tuples < LARGE_TABLE_ROWS)
		return;
	walk->analysis->features.big_seq_scans++;
	if (scan->scan.plan.qual == NIL)
		return;
	rows = all_process_rows(&scan->scan.plan, walk->gather_workers);
	if (rows > SELECTIVE_FRACTION * tuples)
		return;

	initStringInfo(&columns);
	foreach(lc, pull_var_clause((Node *) scan->scan.plan.qual,
								PVC_RECURSE_AGGREGATES | PVC_RECURSE_WINDOWFUNCS |
								PVC_RECURSE_PLACEHOLDERS))
	{
		Var		   *var = lfirst_node(Var, lc);
		const char *name;

		if (var->varno != scan->scan.scanrelid || var->varattno <= 0)
			continue;
		name = quote_identifier(get_attname(rte->relid, var->varattno, false));
		if (strstr(columns.data, name) == NULL)
			appendStringInfo(&columns, "%s%s", columns.len > 0 ? ", " : "", name);
	}
	recommend(walk->analysis, "seq_scan_large_table", LEVEL_HIGH,
			  "a sequential scan reads all of %s (about %.0f rows) to keep about %.0f (%.2g%%) by a filter on %s: an index on the filtered columns would read only those rows",
			  perfopt_relation_name(rte->relid), tuples, rows,
			  100.0 * rows / tuples, columns.len > 0 ? columns.data : "an expression");
}

/*
 * A sort whose input does not fit in work_mem and so spills to disk.  A
 * sort under a LIMIT (bounded) keeps only the rows it returns.
 */
static void
check_sort(PlanWalk *walk, Sort *sort, bool bounded)
{
	Plan	   *input = outerPlan(&sort->plan);
	double		bytes;

	if (input == NULL)
		return;
	if (bounded)
	{
		walk->bounded_sort_rows = Max(walk->bounded_sort_rows, input->plan_rows);
		return;
	}
	bytes = input->plan_rows * (MAXALIGN(input->plan_width) +
								MAXALIGN(SizeofHeapTupleHeader));
	if (bytes <= (double) work_mem * 1024)
		return;
	walk->analysis->features.spilling_sorts++;
	recommend(walk->analysis, "sort_spills_to_disk", LEVEL_MEDIUM,
			  "a sort of about %.0f rows (%.0f kB) does not fit in work_mem (%d kB) and will spill to disk: an index that returns rows in this order avoids the sort; otherwise sort fewer or narrower rows, or raise work_mem for this query",
			  input->plan_rows, bytes / 1024, work_mem);
}

static void walk_plan(PlanWalk *walk, Plan *plan, bool bounded);

static void
walk_plan_list(PlanWalk *walk, List *plans, bool bounded)
{
	ListCell   *lc;

	foreach(lc, plans)
		walk_plan(walk, (Plan *) lfirst(lc), bounded);
}

/*
 * Count node types and look for heavy nodes.  bounded says whether a LIMIT
 * above passes its bound down to this node, as the executor does through
 * the nodes that pass rows on unchanged (ExecSetTupleBound).
 */
static void
walk_plan(PlanWalk *walk, Plan *plan, bool bounded)
{
	int			saved_workers = walk->gather_workers;
	bool		child_bounded;

	if (plan == NULL)
		return;
	check_stack_depth();
	count_plan_node(walk->analysis, plan_node_name(plan));

	switch (nodeTag(plan))
	{
		case T_Limit:
			child_bounded = true;
			break;
		case T_Gather:
		case T_GatherMerge:
		case T_Result:
		case T_SubqueryScan:
		case T_Append:
		case T_MergeAppend:
			child_bounded = bounded;
			break;
		default:
			child_bounded = false;
			break;
	}

	switch (nodeTag(plan))
	{
		case T_SeqScan:
			check_seq_scan(walk, (SeqScan *) plan);
			break;
		case T_NestLoop:
			if (outerPlan(plan) && innerPlan(plan) &&
				outerPlan(plan)->plan_rows * innerPlan(plan)->plan_rows >= BIG_NESTED_LOOP_PAIRS)
				walk->analysis->features.big_nested_loops++;
			break;
		case T_Sort:
			check_sort(walk, (Sort *) plan, bounded);
			break;
		case T_Gather:
			walk->gather_workers = ((Gather *) plan)->num_workers;
			break;
		case T_GatherMerge:
			walk->gather_workers = ((GatherMerge *) plan)->num_workers;
			break;
		case T_Append:
			walk_plan_list(walk, ((Append *) plan)->appendplans, child_bounded);
			break;
		case T_MergeAppend:
			walk_plan_list(walk, ((MergeAppend *) plan)->mergeplans, child_bounded);
			break;
		case T_BitmapAnd:
			walk_plan_list(walk, ((BitmapAnd *) plan)->bitmapplans, false);
			break;
		case T_BitmapOr:
			walk_plan_list(walk, ((BitmapOr *) plan)->bitmapplans, false);
			break;
		case T_SubqueryScan:
			walk_plan(walk, ((SubqueryScan *) plan)->subplan, child_bounded);
			break;
		case T_CustomScan:
			walk_plan_list(walk, ((CustomScan *) plan)->custom_plans, false);
			break;
		default:
			break;
	}
	walk_plan(walk, outerPlan(plan), child_bounded);
	walk_plan(walk, innerPlan(plan), false);
	walk->gather_workers = saved_workers;
}

/*
 * SELECT * (or t.*) at the top of the statement, flagged when the result
 * is wide.
 */
static bool
has_top_level_star(RawStmt *raw)
{
	SelectStmt *select;
	ListCell   *lc;

	if (!IsA(raw->stmt, SelectStmt))
		return false;
	select = (SelectStmt *) raw->stmt;
	if (select->op != SETOP_NONE)
		return false;
	foreach(lc, select->targetList)
	{
		ResTarget  *target = lfirst_node(ResTarget, lc);

		if (IsA(target->val, ColumnRef) &&
			IsA(llast(((ColumnRef *) target->val)->fields), A_Star))
			return true;
	}
	return false;
}

/*
 * The ORDER BY of a query as an index column list, "(a, b)", or NULL
 * unless every key is a column.  DESC is written only where directions
 * are mixed: an index scans backward as well as forward.
 */
static char *
order_by_columns(Query *query)
{
	StringInfoData buf;
	ListCell   *lc;
	int			ndescending = 0;

	foreach(lc, query->sortClause)
	{
		bool		descending = false;

		(void) get_equality_op_for_ordering_op(lfirst_node(SortGroupClause, lc)->sortop,
											   &descending);
		ndescending += descending;
	}

	initStringInfo(&buf);
	foreach(lc, query->sortClause)
	{
		SortGroupClause *sort = lfirst_node(SortGroupClause, lc);
		Node	   *expr = (Node *) get_sortgroupclause_expr(sort, query->targetList);
		Var		   *var;
		RangeTblEntry *rte;
		bool		descending = false;

		expr = strip_relabel(flatten_join_alias_vars(query, expr));
		if (!IsA(expr, Var) || ((Var *) expr)->varlevelsup != 0)
			return NULL;
		var = (Var *) expr;
		rte = rt_fetch(var->varno, query->rtable);
		if (rte->rtekind != RTE_RELATION || var->varattno <= 0)
			return NULL;
		(void) get_equality_op_for_ordering_op(sort->sortop, &descending);
		appendStringInfo(&buf, "%s%s%s", buf.len > 0 ? ", " : "(",
						 quote_identifier(get_attname(rte->relid, var->varattno, false)),
						 descending && ndescending < list_length(query->sortClause) ? " DESC" : "");
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* Problems of the statement as a whole, once it is planned */
static void
check_top_level(QueryAnalysis *analysis, PerfoptStatement *stmt, Plan *top,
				PlanWalk *plan_walk)
{
	Query	   *query = stmt->query;

	if (top == NULL || query->commandType != CMD_SELECT)
		return;

	if (has_top_level_star(stmt->raw))
	{
		int			columns = 0;
		ListCell   *lc;

		foreach(lc, query->targetList)
		{
			if (!lfirst_node(TargetEntry, lc)->resjunk)
				columns++;
		}
		if (columns >= WIDE_COLUMNS || top->plan_width >= WIDE_ROW_BYTES)
			recommend(analysis, "select_star", LEVEL_LOW,
					  "SELECT * returns all %d columns (about %d bytes a row): name the columns the application reads, so that less is read and sent and an index-only scan becomes possible",
					  columns, top->plan_width);
	}

	if (query->sortClause != NIL && top->plan_rows >= BIG_RESULT_ROWS &&
		!has_limit(query))
		recommend(analysis, "order_without_limit", LEVEL_LOW,
				  "ORDER BY sorts about %.0f rows and returns them all: add a LIMIT if the application reads only the first rows, or leave the ORDER BY out if it does not need them sorted",
				  top->plan_rows);

	if (query->sortClause != NIL && has_limit(query) &&
		plan_walk->bounded_sort_rows >= LARGE_TABLE_ROWS)
	{
		char	   *columns = order_by_columns(query);

		recommend(analysis, "sort_for_limit", LEVEL_MEDIUM,
				  "to return the first rows, ORDER BY ... LIMIT sorts all of about %.0f rows: an index on %s would return them in order and stop at the limit%s",
				  plan_walk->bounded_sort_rows,
				  columns ? columns : "the ORDER BY expressions",
				  query->limitOffset ? "; OFFSET would still make it read and skip every row before the page, so paginate by key (WHERE sort key < the last one seen) instead" : "");
	}
}

/* ----------------------------------------------------------------
 * The analysis
 * ----------------------------------------------------------------
 */

static const char *
command_pattern(CmdType type)
{
	switch (type)
	{
		case CMD_SELECT:
			return "SELECT";
		case CMD_INSERT:
			return "INSERT";
		case CMD_UPDATE:
			return "UPDATE";
		case CMD_DELETE:
			return "DELETE";
		case CMD_MERGE:
			return "MERGE";
		default:
			return "UTILITY";
	}
}

/* Utility statements are not planned; a few are worth a word */
static void
analyze_utility(PerfoptStatement *stmt, QueryAnalysis *analysis)
{
	Node	   *node = stmt->raw->stmt;

	analysis->pattern = "UTILITY";
	analysis->command = GetCommandTagName(CreateCommandTag(node));

	if (IsA(node, IndexStmt) && !((IndexStmt *) node)->concurrent)
		recommend(analysis, "index_without_concurrently", LEVEL_MEDIUM,
				  "CREATE INDEX without CONCURRENTLY blocks every write to the table until the index is built: use CREATE INDEX CONCURRENTLY on a table in use");
	if (IsA(node, VacuumStmt) && ((VacuumStmt *) node)->is_vacuumcmd)
	{
		ListCell   *lc;

		foreach(lc, ((VacuumStmt *) node)->options)
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "full") == 0 && defGetBoolean(opt))
				recommend(analysis, "vacuum_full", LEVEL_HIGH,
						  "VACUUM FULL locks the table against reads and writes while it rewrites it: run plain VACUUM, or rebuild online with pg_repack");
		}
	}
}

/*
 * Analyze one statement without executing it.  known_stats, when given,
 * are the statement's pg_stat_statements figures; otherwise they are
 * looked up.
 */
void
perfopt_analyze_statement(const char *query_text, const WorkloadStats *known_stats,
						  QueryAnalysis *analysis)
{
	PerfoptStatement *stmt;
	PerfoptLevel plan_level = LEVEL_LOW;
	int64		queryid = 0;

	memset(analysis, 0, sizeof(*analysis));
	stmt = perfopt_parse_statement(query_text);

	if (stmt->is_utility)
		analyze_utility(stmt, analysis);
	else
	{
		QueryWalk	walk = {analysis, NIL, INT_MAX, false};
		PlanWalk	plan_walk = {analysis, NULL, 0, 0};
		Plan	   *top = NULL;
		ListCell   *lc;

		analysis->planned = true;
		analysis->pattern = command_pattern(stmt->query->commandType);
		analysis->num_params = stmt->num_params;
		walk_query(&walk, stmt->query);

		foreach(lc, perfopt_plan_statement(stmt))
		{
			PlannedStmt *plan = lfirst_node(PlannedStmt, lc);
			ListCell   *lc2;

			plan_walk.stmt = plan;
			walk_plan(&plan_walk, plan->planTree, false);
			foreach(lc2, plan->subplans)
				walk_plan(&plan_walk, (Plan *) lfirst(lc2), false);
			analysis->total_cost += plan->planTree->total_cost;
			if (plan->canSetTag)
			{
				top = plan->planTree;
				analysis->plan_rows = top->plan_rows;
			}
		}
		check_top_level(analysis, stmt, top, &plan_walk);

		analysis->features.total_cost = analysis->total_cost;
		analysis->points = perfopt_complexity_points(&analysis->features);
		plan_level = perfopt_plan_impact(analysis->total_cost);
		if (!perfopt_text_has_params(query_text))
			queryid = (int64) stmt->query->queryId;
	}
	analysis->complexity = perfopt_complexity_score(analysis->points);

	if (known_stats)
		analysis->stats = *known_stats;
	else
		perfopt_pgss_lookup(queryid, query_text, &analysis->stats);
	analysis->impact = Max(plan_level,
						   perfopt_workload_impact(&analysis->stats, perfopt_slow_query_ms));

	list_sort(analysis->recommendations, recommendation_cmp);
}

/* ----------------------------------------------------------------
 * Output
 * ----------------------------------------------------------------
 */

static void
json_key_int(StringInfo buf, const char *key, int value)
{
	appendStringInfo(buf, "%s\"%s\": %d", buf->data[buf->len - 1] == '{' ? "" : ", ",
					 key, value);
}

static void
json_key_number(StringInfo buf, const char *key, double value)
{
	appendStringInfo(buf, "%s\"%s\": %.15g", buf->data[buf->len - 1] == '{' ? "" : ", ",
					 key, value);
}

static void
json_key_string(StringInfo buf, const char *key, const char *value)
{
	appendStringInfo(buf, "%s\"%s\": ", buf->data[buf->len - 1] == '{' ? "" : ", ", key);
	escape_json(buf, value);
}

/* The features column: every count the score is made of, and more */
char *
perfopt_analysis_features_json(const QueryAnalysis *a)
{
	const QueryFeatures *f = &a->features;
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	if (!a->planned)
		json_key_string(&buf, "command", a->command);
	else
	{
		json_key_int(&buf, "tables", f->tables);
		appendStringInfoString(&buf, ", \"relations\": [");
		foreach(lc, a->relations)
		{
			if (foreach_current_index(lc) > 0)
				appendStringInfoString(&buf, ", ");
			escape_json(&buf, lfirst(lc));
		}
		appendStringInfoString(&buf, "], \"joins\": {");
		json_key_int(&buf, "inner", f->inner_joins);
		json_key_int(&buf, "left", f->left_joins);
		json_key_int(&buf, "right", f->right_joins);
		json_key_int(&buf, "full", f->full_joins);
		json_key_int(&buf, "cross", f->cross_joins);
		appendStringInfoChar(&buf, '}');
		json_key_int(&buf, "subqueries", f->subqueries);
		json_key_int(&buf, "correlated_subqueries", f->correlated_subqueries);
		json_key_int(&buf, "ctes", f->ctes);
		json_key_int(&buf, "recursive_ctes", f->recursive_ctes);
		json_key_int(&buf, "set_operations", f->set_operations);
		json_key_int(&buf, "aggregates", f->aggregates);
		json_key_int(&buf, "window_functions", f->window_functions);
		json_key_int(&buf, "functions", f->functions);
		json_key_int(&buf, "sorts", f->sorts);
		json_key_int(&buf, "distinct", f->distinct);
		json_key_int(&buf, "group_by", f->group_by);
		json_key_int(&buf, "having", f->having);
		json_key_int(&buf, "limit", f->limit);
		json_key_int(&buf, "offset", f->offset);
		json_key_int(&buf, "parameters", a->num_params);
		appendStringInfoString(&buf, ", \"plan\": {\"nodes\": {");
		foreach(lc, a->plan_nodes)
		{
			PlanNodeCount *entry = (PlanNodeCount *) lfirst(lc);

			json_key_int(&buf, entry->name, entry->count);
		}
		appendStringInfoChar(&buf, '}');
		json_key_int(&buf, "big_seq_scans", f->big_seq_scans);
		json_key_int(&buf, "big_nested_loops", f->big_nested_loops);
		json_key_int(&buf, "spilling_sorts", f->spilling_sorts);
		appendStringInfoChar(&buf, '}');
		json_key_number(&buf, "points", rint(a->points * 100) / 100);
	}
	if (a->stats.found)
	{
		appendStringInfoString(&buf, ", \"workload\": {");
		appendStringInfo(&buf, "\"queryid\": " INT64_FORMAT ", \"calls\": " INT64_FORMAT,
						 a->stats.queryid, a->stats.calls);
		json_key_number(&buf, "total_ms", a->stats.total_ms);
		json_key_number(&buf, "mean_ms", a->stats.mean_ms);
		json_key_number(&buf, "time_share_pct", a->stats.time_share_pct);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* The recommendations column: [{"code", "severity", "message"}, ...] */
char *
perfopt_recommendations_json(List *recommendations)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	foreach(lc, recommendations)
	{
		Recommendation *rec = (Recommendation *) lfirst(lc);

		if (foreach_current_index(lc) > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoChar(&buf, '{');
		json_key_string(&buf, "code", rec->code);
		json_key_string(&buf, "severity", perfopt_level_name(rec->severity));
		json_key_string(&buf, "message", rec->message);
		appendStringInfoChar(&buf, '}');
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

static Datum
jsonb_from_text(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/*
 * perfopt.analyze_query(query text): one row describing the statement.
 */
Datum
perfopt_analyze_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	QueryAnalysis analysis;
	Datum		values[7];
	bool		nulls[7] = {false};

	InitMaterializedSRF(fcinfo, 0);

	/* NULL in, NULL out: one row of NULLs, which a LATERAL join keeps */
	if (PG_ARGISNULL(0))
	{
		memset(nulls, true, sizeof(nulls));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		return (Datum) 0;
	}

	perfopt_analyze_statement(text_to_cstring(PG_GETARG_TEXT_PP(0)), NULL, &analysis);

	values[0] = CStringGetTextDatum(analysis.pattern);
	values[1] = Int32GetDatum(analysis.complexity);
	values[2] = CStringGetTextDatum(perfopt_level_name(analysis.impact));
	values[3] = Float8GetDatum(analysis.total_cost);
	values[4] = Float8GetDatum(analysis.plan_rows);
	nulls[3] = nulls[4] = !analysis.planned;
	values[5] = jsonb_from_text(perfopt_analysis_features_json(&analysis));
	values[6] = jsonb_from_text(perfopt_recommendations_json(analysis.recommendations));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);

	return (Datum) 0;
}

/* One statement of slow_queries, analyzed with the figures it comes with */
typedef struct SlowQuery
{
	PgssStatement *statement;
	QueryAnalysis analysis;
	char	   *recommendations;	/* JSON */
} SlowQuery;

/* Analyze a SlowQuery's statement, as whoever runs this */
static void
analyze_statement_of(void *arg)
{
	SlowQuery  *slow = (SlowQuery *) arg;

	perfopt_analyze_statement(slow->statement->query, &slow->statement->stats,
							  &slow->analysis);
}

/*
 * Analyze one statement of pg_stat_statements as the role that ran it,
 * never as the caller: planning runs the functions the planner folds.
 */
static void
analyze_slow_query(void *arg)
{
	SlowQuery  *slow = (SlowQuery *) arg;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(slow->statement->userid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that ran it no longer exists"),
				 errdetail("perfopt plans a statement only as the role that ran it.")));
	perfopt_run_as_role(slow->statement->userid, analyze_statement_of, slow);
	slow->recommendations = perfopt_recommendations_json(slow->analysis.recommendations);
}

/*
 * perfopt.slow_queries(): the statements of pg_stat_statements at or over
 * perfopt.slow_query_ms that the caller may see, each analyzed as the role
 * that ran it.  A statement that cannot be analyzed (its tables are gone,
 * its role is gone or may not read them) still gets its row, with the
 * reason in recommendations.
 */
Datum
perfopt_slow_queries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext rowcxt;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	rowcxt = AllocSetContextCreate(cxt, "perfopt slow query", ALLOCSET_DEFAULT_SIZES);

	foreach(lc, perfopt_pgss_statements(perfopt_slow_query_ms, 0))
	{
		PgssStatement *s = (PgssStatement *) lfirst(lc);
		SlowQuery	slow = {s};
		Datum		values[10];
		bool		nulls[10] = {false};
		ErrorData  *edata;
		LatencyFigures latency;

		MemoryContextSwitchTo(rowcxt);
		edata = perfopt_try_in_subtransaction(analyze_slow_query, &slow);
		if (edata != NULL)
		{
			Recommendation rec = {"not_analyzed", LEVEL_LOW, NULL};

			rec.message = psprintf("the statement could not be analyzed: %s", edata->message);
			slow.recommendations = perfopt_recommendations_json(list_make1(&rec));
			memset(&slow.analysis, 0, sizeof(slow.analysis));
			slow.analysis.impact = perfopt_workload_impact(&s->stats, perfopt_slow_query_ms);
		}

		values[0] = Int64GetDatum(s->stats.queryid);
		values[1] = CStringGetTextDatum(s->query);
		values[2] = Int64GetDatum(s->stats.calls);
		values[3] = Float8GetDatum(s->stats.mean_ms);
		if (perfopt_latency_of_query(MyDatabaseId, (uint64) s->stats.queryid, &latency))
			values[4] = Float8GetDatum(latency.p95_ms);
		else
			nulls[4] = true;
		values[5] = Float8GetDatum(s->stats.total_ms);
		values[6] = Float8GetDatum(s->stats.time_share_pct);
		values[7] = Int32GetDatum(slow.analysis.complexity);
		nulls[7] = (slow.analysis.pattern == NULL);
		values[8] = CStringGetTextDatum(perfopt_level_name(slow.analysis.impact));
		values[9] = jsonb_from_text(slow.recommendations);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);

		MemoryContextSwitchTo(cxt);
		MemoryContextReset(rowcxt);
	}

	return (Datum) 0;
}
