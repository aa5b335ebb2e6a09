/*-------------------------------------------------------------------------
 *
 * workload.c
 *	  The workload the index advisor works on: statements, how often they
 *	  run, and what they write.
 *
 * A workload comes from pg_stat_statements (the statements with the most
 * total time, weighted by their calls) or from a list the caller gives
 * with weights.  Each statement is parsed and analyzed as analyze_query
 * does; one that cannot be is skipped with a NOTICE, never failing the
 * run.  Utility statements are left out: no index changes them.
 *
 * A statement of pg_stat_statements is parsed, analyzed, rewritten and
 * planned as the role that ran it (its userid), restricted, with that
 * role's own default search_path (security.c): planning folds IMMUTABLE
 * and STABLE functions, which runs them, so a tenant's statement must
 * never be planned as the caller.  A trial plan checks that role's
 * privileges as the executor would.  A statement whose role is gone, or
 * that its role cannot plan, is left out and counted as skipped.  The
 * statements a caller gives are the caller's own and are handled as the
 * caller, as they always were.
 *
 * Texts from pg_stat_statements carry $n where their constants were, and a
 * generic plan estimates a range on a parameter with a fixed default
 * selectivity (a third of the rows for one bound, half a percent for two),
 * which can make an index look far better or worse than it is.  A range
 * parameter compared with a column is therefore bound to a value from the
 * column's histogram in pg_stats: a lower bound alone to the 90th
 * percentile, an upper bound alone to the 10th (a tenth of the rows, like
 * a "recent items" or "first items" filter), a pair of bounds on one
 * column to the 45th and 55th percentiles (a window of a tenth).  An
 * interval literal ("interval $2 year") is bound to 1 of its unit ("1
 * day" without one), so that "d < $1 + interval $2 year" plans as a
 * range too.  Equality parameters stay parameters: the generic plan
 * already estimates them from the column's number of distinct values.
 *
 * When the real parameter sets of a statement are known (the sampler's,
 * samples.h, for a statement of pg_stat_statements; the caller's for
 * advise_query(query, params)), it is also planned on custom plans:
 * add_variants binds a few representative sets as constants, one per
 * selectivity class, each weighted by its share of the executions, and the
 * advisor costs the statement as the weighted mean of those plans.  The
 * generic tree above stays for what needs one (the foreign key checks,
 * the drop set).  A value is read by its type's input function as whoever
 * prepares the statement, never run as SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/nbtree.h"
#include "access/stratnum.h"
#include "catalog/catalog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/formatting.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "analysis/pgss.h"
#include "common/catalog.h"
#include "common/security.h"
#include "analysis/statement.h"
#include "common/subxact.h"
#include "advisor/workload.h"
#include "samples/samples.h"

/* Percentiles of a column's histogram that stand in for range parameters */
#define LOWER_BOUND_ALONE	0.90
#define UPPER_BOUND_ALONE	0.10
#define WINDOW_LOWER		0.45
#define WINDOW_UPPER		0.55

/* What a parameter is compared with */
typedef struct ParamRole
{
	Oid			relid;			/* the column's table, or InvalidOid */
	AttrNumber	attnum;
	bool		lower;			/* column > or >= the parameter */
	bool		upper;			/* column < or <= the parameter */
} ParamRole;

typedef struct BindContext
{
	Query	   *query;			/* the level being walked */
	int			nparams;
	ParamRole  *roles;			/* by parameter number - 1 */
	Const	  **values;			/* what each parameter is bound to */
} BindContext;

static bool find_param_roles_walker(Node *node, BindContext *context);

/* Note that parameter param is a bound of the column var of this level */
static void
note_param_role(BindContext *context, Var *var, Param *param, int strategy)
{
	RangeTblEntry *rte;
	ParamRole  *role;

	if (param->paramkind != PARAM_EXTERN || param->paramid < 1 ||
		param->paramid > context->nparams || var->varlevelsup != 0 ||
		var->varattno <= 0)
		return;
	rte = rt_fetch(var->varno, context->query->rtable);
	if (rte->rtekind != RTE_RELATION)
		return;
	role = &context->roles[param->paramid - 1];
	if (OidIsValid(role->relid) &&
		(role->relid != rte->relid || role->attnum != var->varattno))
		return;					/* compared with several columns: leave it */
	role->relid = rte->relid;
	role->attnum = var->varattno;
	if (strategy == BTGreaterStrategyNumber || strategy == BTGreaterEqualStrategyNumber)
		role->lower = true;
	else if (strategy == BTLessStrategyNumber || strategy == BTLessEqualStrategyNumber)
		role->upper = true;
}

/* The btree strategy of an operator, InvalidStrategy if it has none */
static int
operator_strategy(Oid opno)
{
	List	   *interpretations = get_op_btree_interpretation(opno);

	if (interpretations == NIL)
		return InvalidStrategy;
	return ((OpBtreeInterpretation *) linitial(interpretations))->strategy;
}

static Node *
strip_relabel(Node *node)
{
	while (node != NULL && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node;
}

/* Find the comparisons of a column with a parameter, at every level */
static bool
find_param_roles_walker(Node *node, BindContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *saved = context->query;
		bool		result;

		context->query = (Query *) node;
		result = query_tree_walker((Query *) node, find_param_roles_walker, context, 0);
		context->query = saved;
		return result;
	}
	if (IsA(node, OpExpr) && list_length(((OpExpr *) node)->args) == 2)
	{
		OpExpr	   *op = (OpExpr *) node;
		Node	   *left = strip_relabel(linitial(op->args));
		Node	   *right = strip_relabel(lsecond(op->args));
		int			strategy = operator_strategy(op->opno);

		if (strategy != InvalidStrategy)
		{
			if (IsA(left, Var) && IsA(right, Param))
				note_param_role(context, (Var *) left, (Param *) right, strategy);
			else if (IsA(left, Param) && IsA(right, Var))
				note_param_role(context, (Var *) right, (Param *) left,
								BTCommuteStrategyNumber(strategy));
		}
	}
	return expression_tree_walker(node, find_param_roles_walker, context);
}

/*
 * The value at a percentile of a column's histogram, as a constant of the
 * parameter's type; NULL when there is no histogram or the types differ
 * beyond a date/time conversion.
 */
static Const *
histogram_value(Oid relid, AttrNumber attnum, double percentile, Oid type)
{
	HeapTuple	statstuple;
	AttStatsSlot sslot;
	Const	   *result = NULL;

	statstuple = SearchSysCache3(STATRELATTINH, ObjectIdGetDatum(relid),
								 Int16GetDatum(attnum), BoolGetDatum(false));
	if (!HeapTupleIsValid(statstuple))
		return NULL;
	if (get_attstatsslot(&sslot, statstuple, STATISTIC_KIND_HISTOGRAM, InvalidOid,
						 ATTSTATSSLOT_VALUES))
	{
		Datum		value = sslot.values[(int) rint(percentile * (sslot.nvalues - 1))];
		Oid			column_type = sslot.valuetype;
		int16		typlen;
		bool		typbyval;

		if (column_type != type &&
			TypeCategory(column_type) == TYPCATEGORY_DATETIME &&
			TypeCategory(type) == TYPCATEGORY_DATETIME &&
			column_type != INTERVALOID && type != INTERVALOID)
		{
			Oid			output;
			Oid			input;
			Oid			ioparam;
			bool		varlena;

			/* date, timestamp and timestamptz read each other's text */
			getTypeOutputInfo(column_type, &output, &varlena);
			getTypeInputInfo(type, &input, &ioparam);
			value = OidInputFunctionCall(input, OidOutputFunctionCall(output, value),
										 ioparam, -1);
			column_type = type;
		}
		if (column_type == type)
		{
			get_typlenbyval(type, &typlen, &typbyval);
			result = makeConst(type, -1, InvalidOid, typlen,
							   datumCopy(value, typbyval, typlen), false, typbyval);
		}
		free_attstatsslot(&sslot);
	}
	ReleaseSysCache(statstuple);
	return result;
}

/* An interval of 1 of the given unit (typmod), or 1 day */
static Const *
unit_interval(int32 typmod)
{
	Oid			input;
	Oid			ioparam;

	getTypeInputInfo(INTERVALOID, &input, &ioparam);
	return makeConst(INTERVALOID, -1, InvalidOid, 16,
					 OidInputFunctionCall(input, typmod >= 0 ? "1" : "1 day",
										  ioparam, typmod),
					 false, false);
}

static Node *
bind_params_mutator(Node *node, BindContext *context)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Query))
		return (Node *) query_tree_mutator((Query *) node, bind_params_mutator, context, 0);
	if (IsA(node, FuncExpr) && exprTypmod(node) >= 0 &&
		list_length(((FuncExpr *) node)->args) >= 1 &&
		IsA(linitial(((FuncExpr *) node)->args), Param) &&
		((Param *) linitial(((FuncExpr *) node)->args))->paramtype == INTERVALOID)
	{
		/* interval $2 year: the parameter under its unit's length coercion */
		FuncExpr   *func = (FuncExpr *) copyObject(node);

		linitial(func->args) = unit_interval(exprTypmod(node));
		return (Node *) func;
	}
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
	{
		Param	   *param = (Param *) node;

		if (param->paramtype == INTERVALOID)
			return (Node *) unit_interval(-1);
		if (param->paramid >= 1 && param->paramid <= context->nparams &&
			context->values[param->paramid - 1] != NULL)
			return copyObject((Node *) context->values[param->paramid - 1]);
	}
	return expression_tree_mutator(node, bind_params_mutator, context);
}

/*
 * Bind the range parameters of a statement to values from pg_stats, as the
 * header comment says; returns the new tree.
 */
static Query *
bind_range_params(Query *query, Oid *param_types, int nparams)
{
	BindContext context;
	int			i;

	if (nparams == 0)
		return query;
	context.query = query;
	context.nparams = nparams;
	context.roles = palloc0(nparams * sizeof(ParamRole));
	context.values = palloc0(nparams * sizeof(Const *));
	(void) query_tree_walker(query, find_param_roles_walker, &context, 0);

	for (i = 0; i < nparams; i++)
	{
		ParamRole  *role = &context.roles[i];
		bool		window = false;
		double		percentile;
		int			j;

		if (!OidIsValid(role->relid) || role->lower == role->upper)
			continue;			/* not a range bound, or an equality in disguise */
		for (j = 0; j < nparams; j++)
		{
			ParamRole  *other = &context.roles[j];

			if (j != i && other->relid == role->relid && other->attnum == role->attnum &&
				other->lower != role->lower && other->lower != other->upper)
				window = true;
		}
		if (role->lower)
			percentile = window ? WINDOW_LOWER : LOWER_BOUND_ALONE;
		else
			percentile = window ? WINDOW_UPPER : UPPER_BOUND_ALONE;
		context.values[i] = histogram_value(role->relid, role->attnum, percentile,
											param_types[i]);
	}
	return (Query *) bind_params_mutator((Node *) query, &context);
}

/* ----------------------------------------------------------------
 * Parameter sets: custom plans over a few representative ones
 * ----------------------------------------------------------------
 */

/*
 * Sets of one statement planned to find their selectivity classes, and
 * classes costed for each configuration: the advisor plans a statement
 * with sets at most MAX_CLASSES times per configuration instead of once,
 * and MAX_SETS_PLANNED times more to classify, whatever the sample holds.
 */
#define MAX_SETS_PLANNED	16
#define MAX_CLASSES			3

typedef struct BoundSet
{
	int			number;			/* 1-based position among the sets given */
	PerfoptParamSet *set;
	double		weight;			/* share among the sets planned */
	Query	   *query;			/* parameters bound as constants */
	List	   *rewritten;
	Const	  **consts;			/* by parameter number - 1 */
	List	   *signature;		/* per scan: relid, decade of selectivity */
} BoundSet;

typedef struct SelectivityClass
{
	List	   *signature;
	double		weight;
	int			sets;
	BoundSet   *representative; /* its heaviest set */
} SelectivityClass;

typedef struct SetBinding
{
	int			nparams;
	Const	  **consts;
} SetBinding;

/* Replace every parameter by the constant of its set */
static Node *
bind_set_mutator(Node *node, SetBinding *binding)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Query))
		return (Node *) query_tree_mutator((Query *) node, bind_set_mutator, binding, 0);
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN &&
		((Param *) node)->paramid >= 1 && ((Param *) node)->paramid <= binding->nparams)
		return copyObject((Node *) binding->consts[((Param *) node)->paramid - 1]);
	return expression_tree_mutator(node, bind_set_mutator, binding);
}

/* The values of one set through their types' input functions, as a step */
typedef struct InputStep
{
	PerfoptParamSet *set;
	Oid		   *types;
	Const	  **consts;
	int			current;		/* the value being read */
} InputStep;

static void
input_step(void *arg)
{
	InputStep  *step = (InputStep *) arg;

	for (step->current = 0; step->current < step->set->nparams; step->current++)
	{
		Oid			type = step->types[step->current];
		const char *text = step->set->values[step->current];
		int16		typlen;
		bool		typbyval;
		Oid			input;
		Oid			ioparam;

		if (text == NULL)
		{
			step->consts[step->current] = makeNullConst(type, -1, get_typcollation(type));
			continue;
		}
		get_typlenbyval(type, &typlen, &typbyval);
		getTypeInputInfo(type, &input, &ioparam);
		step->consts[step->current] =
			makeConst(type, -1, get_typcollation(type), typlen,
					  OidInputFunctionCall(input, unconstify(char *, text), ioparam, -1),
					  false, typbyval);
	}
}

/*
 * The constants of one set, each value read by the input function of its
 * parameter's type as whoever runs this (the statement's role, or the
 * caller): a value is a literal, never SQL.  NULL when a value is
 * refused and !strict; with strict, the error names the parameter.  One
 * subtransaction per set.
 */
static Const **
set_constants(PerfoptParamSet *set, int number, Oid *types, bool strict)
{
	InputStep	step;
	ErrorData  *edata;

	step.set = set;
	step.types = types;
	step.consts = palloc0(Max(set->nparams, 1) * sizeof(Const *));
	step.current = 0;
	edata = perfopt_try_in_subtransaction(input_step, &step);
	if (edata == NULL)
		return step.consts;
	if (!strict)
		return NULL;
	ereport(ERROR,
			(errcode(edata->sqlerrcode),
			 errmsg("parameter $%d of set %d is not a valid %s: %s",
					step.current + 1, number, format_type_be(types[step.current]),
					edata->message),
			 errhint("Give each value in the text form of its type, as in a literal of that type; values are never run as SQL.")));
	return NULL;				/* keep the compiler quiet */
}

/*
 * The selectivity signature of a plan: for each scan of a table, its OID
 * and the decade of the share of the table's rows the planner expects it
 * to return (floor(log10)).  Sets whose plans have the same signature are
 * one class: within a decade of selectivity the same index serves them.
 */
static void
plan_signature(Plan *plan, List *rtable, List **signature)
{
	ListCell   *lc;

	if (plan == NULL)
		return;
	check_stack_depth();
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
			{
				Index		scanrelid = ((Scan *) plan)->scanrelid;
				RangeTblEntry *rte;

				if (scanrelid < 1 || scanrelid > list_length(rtable))
					break;
				rte = rt_fetch(scanrelid, rtable);
				if (rte->rtekind == RTE_RELATION)
				{
					double		share = plan->plan_rows / perfopt_relation_tuples(rte->relid);

					*signature = lappend_int(*signature, (int) rte->relid);
					*signature = lappend_int(*signature,
											 (int) floor(log10(Max(share, 1e-12))));
				}
				break;
			}
		case T_Append:
			foreach(lc, ((Append *) plan)->appendplans)
				plan_signature(lfirst(lc), rtable, signature);
			break;
		case T_MergeAppend:
			foreach(lc, ((MergeAppend *) plan)->mergeplans)
				plan_signature(lfirst(lc), rtable, signature);
			break;
		case T_SubqueryScan:
			plan_signature(((SubqueryScan *) plan)->subplan, rtable, signature);
			break;
		default:
			break;
	}
	plan_signature(outerPlan(plan), rtable, signature);
	plan_signature(innerPlan(plan), rtable, signature);
}

/* How far apart two signatures are; a different shape is far */
static double
signature_distance(List *a, List *b)
{
	double		distance = 0;
	int			i;

	if (list_length(a) != list_length(b))
		return 1e9;
	for (i = 0; i < list_length(a); i += 2)
	{
		if (list_nth_int(a, i) != list_nth_int(b, i))
			return 1e9;
		distance += abs(list_nth_int(a, i + 1) - list_nth_int(b, i + 1));
	}
	return distance;
}

static int
class_weight_cmp(const ListCell *a, const ListCell *b)
{
	double		wa = ((SelectivityClass *) lfirst(a))->weight;
	double		wb = ((SelectivityClass *) lfirst(b))->weight;

	return wa > wb ? -1 : wa < wb ? 1 : 0;
}

static bool
same_value(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * Plan the statement with its parameter sets: choose at most
 * MAX_SETS_PLANNED of them in proportion to their weights (systematic
 * sampling over the cumulative weights), bind each, plan it with the
 * indexes of today, group them by the selectivity signature of their
 * plans, keep the MAX_CLASSES heaviest classes (a lighter one joins the
 * nearest), and make one variant of each class's heaviest set, weighted
 * by the class's share.  With strict, a set of the wrong length or with a
 * value its type refuses is an error; otherwise it is left out.  Runs as
 * whoever prepares the statement.
 */
static void
add_variants(WorkloadStatement *stmt, PerfoptStatement *parsed, List *sets, bool strict)
{
	List	   *usable = NIL;
	List	   *planned = NIL;
	List	   *classes = NIL;
	double		total = 0;
	double		cumulative = 0;
	double		step;
	double		point;
	ListCell   *lc;
	int			number = 0;
	int			i;

	foreach(lc, sets)
	{
		PerfoptParamSet *set = (PerfoptParamSet *) lfirst(lc);

		number++;
		if (set->nparams != parsed->num_params)
		{
			if (!strict)
				continue;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("parameter set %d has %d value%s, but the statement has %d parameter%s",
							number, set->nparams, set->nparams == 1 ? "" : "s",
							parsed->num_params, parsed->num_params == 1 ? "" : "s"),
					 errhint("Give one value for each of $1 .. $n in order; a two-dimensional array gives one set per row.")));
		}
		if (!(set->weight > 0) || isinf(set->weight))
			continue;
		total += set->weight;
		usable = lappend(usable, set);
	}
	if (usable == NIL || parsed->num_params == 0)
		return;

	/* which sets to plan: one at each step of the cumulative weight */
	step = total / Min(list_length(usable), MAX_SETS_PLANNED);
	point = step / 2;
	number = 0;
	foreach(lc, usable)
	{
		PerfoptParamSet *set = (PerfoptParamSet *) lfirst(lc);
		double		picked = 0;

		number++;
		cumulative += set->weight;
		while (point < cumulative && picked * step < total)
		{
			picked += 1;
			point += step;
		}
		if (picked > 0)
		{
			BoundSet   *bound = palloc0(sizeof(BoundSet));

			bound->number = number;
			bound->set = set;
			bound->weight = picked * step / total;
			planned = lappend(planned, bound);
		}
	}

	foreach(lc, planned)
	{
		BoundSet   *bound = (BoundSet *) lfirst(lc);
		SetBinding	binding;
		ListCell   *lc2;
		SelectivityClass *class = NULL;

		bound->consts = set_constants(bound->set, bound->number, parsed->param_types, strict);
		if (bound->consts == NULL)
			continue;
		binding.nparams = parsed->num_params;
		binding.consts = bound->consts;
		bound->query = (Query *) bind_set_mutator((Node *) copyObject(parsed->query), &binding);
		bound->rewritten = pg_rewrite_query(copyObject(bound->query));
		foreach(lc2, bound->rewritten)
		{
			Query	   *query = lfirst_node(Query, lc2);
			PlannedStmt *plan;
			ListCell   *lc3;

			if (query->commandType == CMD_UTILITY)
				continue;
			plan = pg_plan_query(copyObject(query), stmt->text, CURSOR_OPT_PARALLEL_OK, NULL);
			(void) ExecCheckRTPerms(plan->rtable, true);
			plan_signature(plan->planTree, plan->rtable, &bound->signature);
			foreach(lc3, plan->subplans)
				plan_signature(lfirst(lc3), plan->rtable, &bound->signature);
		}

		foreach(lc2, classes)
		{
			if (equal(((SelectivityClass *) lfirst(lc2))->signature, bound->signature))
				class = lfirst(lc2);
		}
		if (class == NULL)
		{
			class = palloc0(sizeof(SelectivityClass));
			class->signature = bound->signature;
			classes = lappend(classes, class);
		}
		class->weight += bound->weight;
		class->sets++;
		if (class->representative == NULL || bound->weight > class->representative->weight)
			class->representative = bound;
	}
	if (classes == NIL)
		return;

	/* the heaviest classes, the others joining the nearest of them */
	list_sort(classes, class_weight_cmp);
	for (i = MAX_CLASSES; i < list_length(classes); i++)
	{
		SelectivityClass *light = list_nth(classes, i);
		SelectivityClass *nearest = linitial(classes);
		double		best = -1;
		int			j;

		for (j = 0; j < MAX_CLASSES; j++)
		{
			SelectivityClass *kept = list_nth(classes, j);
			double		distance = signature_distance(light->signature, kept->signature);

			if (best < 0 || distance < best)
			{
				best = distance;
				nearest = kept;
			}
		}
		nearest->weight += light->weight;
		nearest->sets += light->sets;
	}
	if (list_length(classes) > MAX_CLASSES)
		classes = list_truncate(classes, MAX_CLASSES);

	total = 0;
	foreach(lc, classes)
		total += ((SelectivityClass *) lfirst(lc))->weight;
	foreach(lc, classes)
	{
		SelectivityClass *class = (SelectivityClass *) lfirst(lc);
		BoundSet   *rep = class->representative;
		WorkloadVariant *variant = palloc0(sizeof(WorkloadVariant));
		double		all = 0;
		ListCell   *lc2;

		variant->query = rep->query;
		variant->rewritten = rep->rewritten;
		variant->share = class->weight / total;
		variant->sets = class->sets;

		/* how often each of its values recurs among all the sets */
		foreach(lc2, usable)
			all += ((PerfoptParamSet *) lfirst(lc2))->weight;
		for (i = 0; i < parsed->num_params; i++)
		{
			WorkloadValue *value = palloc0(sizeof(WorkloadValue));

			value->value = rep->consts[i];
			foreach(lc2, usable)
			{
				PerfoptParamSet *set = (PerfoptParamSet *) lfirst(lc2);

				if (same_value(set->values[i], rep->set->values[i]))
				{
					value->share += set->weight / all;
					value->sets += set->sets;
				}
			}
			variant->values = lappend(variant->values, value);
		}
		stmt->variants = lappend(stmt->variants, variant);
	}
	stmt->param_sets = list_length(usable);
}

static bool
collect_tables_walker(Node *node, List **tables)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, collect_tables_walker, tables,
								 QTW_EXAMINE_RTES_BEFORE);
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION && !IsCatalogRelationOid(rte->relid))
			*tables = list_append_unique_oid(*tables, rte->relid);
		return false;
	}
	return expression_tree_walker(node, collect_tables_walker, tables);
}

/*
 * While perfopt_workload_from_pgss_for reads a workload for some tables
 * only: those tables.  A statement that reads none of them is left out, and
 * no statement gets a trial plan: the caller costs each one as its role,
 * and ExecutorStart checks the role's privileges then, as the trial plan
 * would.
 */
static List *workload_tables = NIL;

/* Does the list of tables hold one of workload_tables? */
static bool
reads_workload_table(List *tables)
{
	ListCell   *lc;

	foreach(lc, tables)
	{
		if (list_member_oid(workload_tables, lfirst_oid(lc)))
			return true;
	}
	return false;
}

/* The work of perfopt_workload_statement, as whoever runs it */
static WorkloadStatement *
prepare_statement(const char *text, double weight, bool check_plan, List *sets, bool strict)
{
	PerfoptStatement *parsed = perfopt_parse_statement(text);
	WorkloadStatement *stmt;
	Query	   *query;
	ListCell   *lc;

	if (parsed->is_utility || parsed->query->commandType == CMD_UTILITY)
		return NULL;
	if (check_plan && workload_tables == NIL)
		(void) perfopt_plan_statement(parsed);

	stmt = palloc0(sizeof(WorkloadStatement));
	stmt->text = pstrdup(text);
	stmt->weight = weight;
	stmt->rows = -1;
	query = parsed->query;
	stmt->command = query->commandType;
	stmt->num_params = parsed->num_params;
	stmt->query = bind_range_params(query, parsed->param_types, parsed->num_params);
	stmt->rewritten = pg_rewrite_query(copyObject(stmt->query));
	foreach(lc, stmt->rewritten)
		(void) collect_tables_walker(lfirst(lc), &stmt->tables);
	if (stmt->tables == NIL)
		return NULL;			/* no table: no index changes it */
	if (workload_tables != NIL && !reads_workload_table(stmt->tables))
		return NULL;
	if (sets != NIL)
	{
		if (parsed->num_params == 0 && strict)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the statement has no parameters, but parameter sets were given"),
					 errhint("Write the statement with $1 .. $n where the values go, as pg_stat_statements shows it, or call advise_query(query) without params.")));
		add_variants(stmt, parsed, sets, strict);
	}

	if (query->resultRelation > 0)
	{
		stmt->target = rt_fetch(query->resultRelation, query->rtable)->relid;
		if (query->commandType == CMD_UPDATE)
		{
			foreach(lc, query->targetList)
			{
				TargetEntry *tle = lfirst_node(TargetEntry, lc);

				if (!tle->resjunk)
					stmt->updated_columns = bms_add_member(stmt->updated_columns, tle->resno);
			}
		}
	}
	return stmt;
}

/*
 * Parse, analyze and prepare one statement of a workload.  With a valid
 * role it is done as that role, restricted, with its own search_path, and
 * a trial plan checks the role's privileges; InvalidOid means the caller's
 * own statement.  Returns NULL for a utility statement and for one that
 * reads no table.  Errors are the caller's to catch.
 */
WorkloadStatement *
perfopt_workload_statement(const char *text, double weight, Oid role)
{
	return perfopt_workload_statement_sets(text, weight, role, NIL, false);
}

/*
 * perfopt_workload_statement, planning the statement with parameter sets
 * (PerfoptParamSet *) when it has parameters and sets are given: see
 * add_variants.  With strict, a bad set is an error, else it is left out.
 */
WorkloadStatement *
perfopt_workload_statement_sets(const char *text, double weight, Oid role, List *sets,
								bool strict)
{
	WorkloadStatement *volatile stmt = NULL;
	PerfoptRoleSwitch sw;

	if (!OidIsValid(role))
		return prepare_statement(text, weight, false, sets, strict);

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that ran the statement no longer exists"),
				 errdetail("perfopt plans a statement only as the role that ran it.")));
	perfopt_begin_as_role(role, &sw);
	PG_TRY();
	{
		stmt = prepare_statement(text, weight, true, sets, strict);
	}
	PG_CATCH();
	{
		perfopt_end_as_role(&sw);
		PG_RE_THROW();
	}
	PG_END_TRY();
	perfopt_end_as_role(&sw);
	if (stmt != NULL)
		stmt->role = role;
	return stmt;
}

/* One statement to add to a workload, and what became of it */
typedef struct WorkloadItem
{
	const char *text;
	double		weight;
	Oid			role;
	List	   *sets;			/* PerfoptParamSet *, or NIL */
	WorkloadStatement *result;
} WorkloadItem;

static void
workload_item_step(void *arg)
{
	WorkloadItem *item = (WorkloadItem *) arg;

	item->result = perfopt_workload_statement_sets(item->text, item->weight, item->role,
												   item->sets, false);
}

/*
 * Add a statement to the workload list, or report why it cannot be used
 * (unless quiet) and go on; one of a role that cannot be used counts in
 * *skipped.
 */
static List *
add_statement(List *workload, const char *text, double weight, Oid role,
			  int64 queryid, int number, int *skipped, bool quiet, List *sets)
{
	WorkloadItem item = {text, weight, role, sets, NULL};
	ErrorData  *edata;

	edata = perfopt_try_in_subtransaction(workload_item_step, &item);
	if (edata != NULL && sets != NIL)
	{
		/* a set its plan fails on: plan the statement as it was planned before */
		ereport(DEBUG1,
				(errmsg("statement %d planned without its parameter sets: %s", number, edata->message)));
		item.sets = NIL;
		edata = perfopt_try_in_subtransaction(workload_item_step, &item);
	}
	if (edata != NULL)
	{
		if (OidIsValid(role) && skipped != NULL)
			(*skipped)++;
		ereport(quiet ? DEBUG1 : NOTICE,
				(errmsg("statement %d of the workload is left out: %s", number, edata->message),
				 queryid != 0 ? errdetail("queryid " INT64_FORMAT ": %.200s", queryid, text)
				 : errdetail("%.200s", text)));
		return workload;
	}
	if (item.result == NULL)
		return workload;
	item.result->number = number;
	item.result->queryid = queryid;
	return lappend(workload, item.result);
}

/*
 * The statements of pg_stat_statements that the caller may see with the
 * most total time, at most limit of them, each weighted by its calls and
 * prepared as its own role.  A write's rows per execution are
 * pg_stat_statements' own count.  *skipped counts the statements left out
 * because their role could not prepare them.  quiet turns the NOTICE about
 * each of them into a DEBUG1 message, for callers that are views.
 */
List *
perfopt_workload_from_pgss(int limit, int *skipped, bool quiet)
{
	return perfopt_workload_from_pgss_for(limit, skipped, quiet, NIL, NIL);
}

/* Does the text hold one of the names (lower case), in any case? */
static bool
text_names_one(const char *text, List *names)
{
	char	   *lower = asc_tolower(text, strlen(text));
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strstr(lower, (const char *) lfirst(lc)) != NULL)
			return true;
	}
	return false;
}

/*
 * perfopt_workload_from_pgss, keeping only the statements that read one of
 * tables (NIL: all), the others left out and not counted as skipped.  With
 * tables, no statement gets a trial plan: the caller must cost each one
 * with perfopt_whatif_cost, as its role, which checks its privileges.
 * Without tables, a statement with parameters gets its sampled parameter
 * sets (samples.h), as private as its text: the caller sees only the
 * statements pgss.c lets it see.
 * names (lower case), when given, are the names a statement's text must
 * hold one of to be parsed at all: the tables' and those of the views
 * that read them.
 */
List *
perfopt_workload_from_pgss_for(int limit, int *skipped, bool quiet, List *tables, List *names)
{
	List	   *volatile workload = NIL;
	ListCell   *lc;
	int			number = 0;

	workload_tables = tables;
	PG_TRY();
	{
		foreach(lc, perfopt_pgss_statements(0, limit))
		{
			PgssStatement *s = (PgssStatement *) lfirst(lc);
			int			before = list_length(workload);

			++number;
			if (names != NIL && !text_names_one(s->query, names))
				continue;		/* cannot read one of the tables */

			workload = add_statement(workload, s->query, s->stats.calls, s->userid,
									 s->stats.queryid, number, skipped, quiet,
									 tables == NIL && perfopt_text_has_params(s->query) ?
									 perfopt_statement_param_sets(s->userid, MyDatabaseId,
																  s->stats.queryid) : NIL);
			if (list_length(workload) > before && s->stats.calls > 0)
			{
				WorkloadStatement *stmt = llast(workload);

				if (stmt->command != CMD_SELECT)
					stmt->rows = s->rows / s->stats.calls;
			}
		}
	}
	PG_FINALLY();
	{
		workload_tables = NIL;
	}
	PG_END_TRY();
	return workload;
}

/*
 * A workload given as statements and weights (1 each when weights is
 * NULL).  Bad arrays are errors; a bad statement is left out with a NOTICE.
 */
List *
perfopt_workload_from_list(ArrayType *queries, ArrayType *weights)
{
	Datum	   *texts;
	bool	   *text_nulls;
	int			ntexts;
	Datum	   *weight_values = NULL;
	bool	   *weight_nulls = NULL;
	int			nweights = 0;
	List	   *workload = NIL;
	int			i;

	if (ARR_NDIM(queries) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("queries must be a one-dimensional array")));
	deconstruct_array(queries, TEXTOID, -1, false, TYPALIGN_INT, &texts, &text_nulls, &ntexts);
	if (weights != NULL)
	{
		if (ARR_NDIM(weights) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("weights must be a one-dimensional array")));
		deconstruct_array(weights, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &weight_values, &weight_nulls, &nweights);
		if (nweights != ntexts)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("queries and weights have different lengths (%d and %d)", ntexts, nweights),
					 errhint("Give one weight for each statement, or no weights at all.")));
	}
	if (ntexts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the workload has no statements"),
				 errhint("Pass at least one statement in queries.")));

	for (i = 0; i < ntexts; i++)
	{
		double		weight = 1;

		if (weights != NULL)
		{
			if (weight_nulls[i] || DatumGetFloat8(weight_values[i]) < 0 ||
				isnan(DatumGetFloat8(weight_values[i])) || isinf(DatumGetFloat8(weight_values[i])))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("weight %d is not a finite number of zero or more", i + 1),
						 errhint("A weight is how many times the statement runs.")));
			weight = DatumGetFloat8(weight_values[i]);
		}
		if (text_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("statement %d of the workload is NULL", i + 1),
					 errhint("Remove the NULL element from queries.")));
		workload = add_statement(workload, TextDatumGetCString(texts[i]), weight, InvalidOid,
								 0, i + 1, NULL, false, NIL);
	}
	return workload;
}
