/*-------------------------------------------------------------------------
 *
 * index_selection.c
 *	  Choosing a set of indexes for a workload under a storage budget.
 *
 * The method is "Extend" (Schlosser, Kossmann and Boissier, 2019; the best
 * of the index selection algorithms compared by Kossmann et al., PVLDB
 * 2020), generalized to kinds of indexes other than plain columns.  It
 * grows one configuration step by step.  Each step either adds a new
 * index from the seeds (single columns, composites, expressions, partial
 * indexes, foreign keys) or widens an index already chosen by one more key
 * column or by covering columns.  Of all possible steps it takes the one
 * that lowers the workload's cost the most per byte it adds, where the
 * cost is the planner's estimate of every statement under the whole
 * configuration (so that two indexes that serve the same statement are not
 * both counted, and an index that makes another useless pushes it out of
 * the way) plus the cost of maintaining the indexes on the workload's
 * writes.  It stops when no step fits in the budget or none gains at least
 * min_gain_share of the cost that the configuration so far leaves: a share
 * of what is left, not of the cost with no index, so that once the first
 * indexes have removed most of the cost, an index that halves the rest
 * still counts.
 *
 * Steps are evaluated lazily: what a step gained when last evaluated is
 * kept, and since adding indexes seldom makes another index worth more,
 * a round evaluates steps in the order of those stale gains per byte and
 * stops once the best fresh one beats every stale one left.  Most steps
 * are then evaluated once or twice in a run instead of every round.
 *
 * Nothing here reads catalogs or plans: the caller's callbacks give the
 * objective (with its own cache of what-if costs), the sizes and the
 * extensions of each candidate.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "advisor/index_advisor.h"

/* No step is worth less than a page of storage */
#define MIN_STEP_BYTES	8192.0

/* A step that can be taken: add a candidate, maybe in place of another */
typedef struct Step
{
	int			add;
	int			replace;		/* or -1 */
	double		ratio;			/* gain per byte when last evaluated */
	double		objective;		/* the workload's cost after it, then */
	double		bytes;			/* storage it adds */
	bool		dead;			/* can never be taken again */
} Step;

static int
step_cmp(const ListCell *a, const ListCell *b)
{
	double		ra = ((Step *) lfirst(a))->ratio;
	double		rb = ((Step *) lfirst(b))->ratio;

	return ra > rb ? -1 : ra < rb ? 1 : 0;
}

static Step *
new_step(int add, int replace)
{
	Step	   *step = palloc(sizeof(Step));

	step->add = add;
	step->replace = replace;
	step->ratio = INFINITY;		/* not evaluated yet: try it first */
	step->objective = 0;
	step->bytes = 0;
	step->dead = false;
	return step;
}

/*
 * Evaluate a step against the configuration: its gain per byte, or 0 when
 * it does not fit, gains too little, or is redundant.
 */
static void
evaluate_step(SelectionProblem *problem, Bitmapset *config, double current,
			  double used, Step *step)
{
	Bitmapset  *next;
	double		bytes = problem->size(problem->arg, step->add);
	double		gain;

	step->ratio = 0;
	if (bytes < 0)
	{
		step->dead = true;		/* a candidate that cannot be made */
		return;
	}
	next = bms_copy(config);
	if (step->replace >= 0)
	{
		next = bms_del_member(next, step->replace);
		bytes -= problem->size(problem->arg, step->replace);
	}
	step->bytes = bytes;
	if (problem->budget_bytes > 0 && used + bytes > problem->budget_bytes)
		return;
	if (problem->redundant(problem->arg, step->add, next))
		return;
	next = bms_add_member(next, step->add);
	step->objective = problem->objective(problem->arg, next);
	gain = current - step->objective;
	if (gain <= 0 || gain < problem->min_gain_share * current)
		return;
	step->ratio = gain / Max(bytes, MIN_STEP_BYTES);
}

/*
 * Choose the indexes: returns the set of candidate ids.
 */
Bitmapset *
perfopt_select_indexes(SelectionProblem *problem)
{
	Bitmapset  *config = NULL;
	double		current = problem->objective(problem->arg, NULL);
	double		used = 0;
	List	   *steps = NIL;
	ListCell   *lc;

	foreach(lc, problem->seeds)
		steps = lappend(steps, new_step(lfirst_int(lc), -1));

	for (;;)
	{
		Step	   *best = NULL;

		CHECK_FOR_INTERRUPTS();
		list_sort(steps, step_cmp);
		foreach(lc, steps)
		{
			Step	   *step = lfirst(lc);

			if (step->dead || bms_is_member(step->add, config) ||
				(step->replace >= 0 && !bms_is_member(step->replace, config)))
				continue;
			if (best != NULL && step->ratio <= best->ratio)
				break;			/* no stale step can beat the best fresh one */
			evaluate_step(problem, config, current, used, step);
			if (step->ratio > 0 && (best == NULL || step->ratio > best->ratio))
				best = step;
		}
		if (best == NULL)
			break;

		/* take it */
		if (best->replace >= 0)
			config = bms_del_member(config, best->replace);
		config = bms_add_member(config, best->add);
		used += best->bytes;
		current = best->objective;
		best->dead = true;

		/* the steps it opens: widening the index just added */
		foreach(lc, problem->extensions(problem->arg, best->add))
			steps = lappend(steps, new_step(lfirst_int(lc), best->add));
	}
	return config;
}
