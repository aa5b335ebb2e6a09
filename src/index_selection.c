/*-------------------------------------------------------------------------
 *
 * index_selection.c
 *	  Choosing a set of indexes for a workload under a storage budget.
 *
 * The method is "Extend" (Schlosser, Kossmann and Boissier, 2019; the best
 * of the index selection algorithms compared by Kossmann et al., PVLDB
 * 2020), generalized to kinds of indexes other than plain columns.  It
 * grows one configuration step by step.  Each step either adds a new
 * index from the seeds (single columns, expressions, partial indexes,
 * foreign keys) or widens an index already chosen by one more key column
 * or by covering columns.  Of all possible steps it takes the one that
 * lowers the workload's cost the most per byte it adds, where the cost is
 * the planner's estimate of every statement under the whole configuration
 * (so that two indexes that serve the same statement are not both counted,
 * and an index that makes another useless pushes it out of the way) plus
 * the cost of maintaining the indexes on the workload's writes.  It stops
 * when no step fits in the budget or none gains at least min_gain.
 *
 * Nothing here reads catalogs or plans: the caller's callbacks give the
 * objective (with its own cache of what-if costs), the sizes and the
 * extensions of each candidate.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "index_advisor.h"

/* No step is worth less than a page of storage */
#define MIN_STEP_BYTES	8192.0

/* The best step found so far in a round */
typedef struct Step
{
	int			add;			/* candidate to add */
	int			replace;		/* candidate it replaces, or -1 */
	double		objective;		/* the workload's cost after the step */
	double		bytes;			/* storage it adds */
	double		ratio;			/* gain per byte */
} Step;

/* Consider a step; keep it if it gains enough and more per byte than best */
static void
consider_step(SelectionProblem *problem, Bitmapset *config, double current,
			  double used, int add, int replace, Step *best)
{
	Bitmapset  *next = bms_copy(config);
	double		bytes = problem->size(problem->arg, add);
	double		objective;
	double		gain;
	double		ratio;

	if (bytes < 0)
		return;					/* a candidate that cannot be made */
	if (replace >= 0)
	{
		next = bms_del_member(next, replace);
		bytes -= problem->size(problem->arg, replace);
	}
	if (problem->budget_bytes > 0 && used + bytes > problem->budget_bytes)
		return;
	if (problem->redundant(problem->arg, add, next))
		return;
	next = bms_add_member(next, add);
	objective = problem->objective(problem->arg, next);
	gain = current - objective;
	if (gain <= 0 || gain < problem->min_gain)
		return;
	ratio = gain / Max(bytes, MIN_STEP_BYTES);
	if (ratio > best->ratio)
	{
		best->add = add;
		best->replace = replace;
		best->objective = objective;
		best->bytes = bytes;
		best->ratio = ratio;
	}
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

	for (;;)
	{
		Step		best = {-1, -1, current, 0, 0};
		ListCell   *lc;
		int			chosen = -1;

		CHECK_FOR_INTERRUPTS();

		foreach(lc, problem->seeds)
		{
			int			seed = lfirst_int(lc);

			if (!bms_is_member(seed, config))
				consider_step(problem, config, current, used, seed, -1, &best);
		}
		while ((chosen = bms_next_member(config, chosen)) >= 0)
		{
			foreach(lc, problem->extensions(problem->arg, chosen))
			{
				int			wider = lfirst_int(lc);

				if (!bms_is_member(wider, config))
					consider_step(problem, config, current, used, wider, chosen, &best);
			}
		}

		if (best.add < 0)
			break;
		if (best.replace >= 0)
			config = bms_del_member(config, best.replace);
		config = bms_add_member(config, best.add);
		used += best.bytes;
		current = best.objective;
	}
	return config;
}
