/*-------------------------------------------------------------------------
 *
 * complexity.c
 *	  Complexity score and impact level of a statement.
 *
 * The score adds points for what makes a statement hard to write, plan and
 * run, then maps the sum onto 1..10 with a curve that is nearly linear for
 * small sums and saturates for large ones, so that one more join matters
 * in a simple query and hardly at all in a monster:
 *
 *		score = 1 + round(9 * (1 - exp(-points / 10)))
 *
 * Impact says how much the statement costs the database.  The planner's
 * estimate gives one level, pg_stat_statements (share of the database's
 * time, mean time) another; the higher of the two is reported, so that a
 * statement whose plan is dangerous stays visible before it has run much.
 * docs/query-analysis.md lists every weight and threshold with examples.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "analysis/complexity.h"

/* Points a feature adds to a statement's complexity */
double
perfopt_complexity_points(const QueryFeatures *f)
{
	double		points = 0;

	points += 0.5 * Max(f->tables - 1, 0);
	points += 1.0 * f->inner_joins;
	points += 1.5 * (f->left_joins + f->right_joins);
	points += 2.0 * (f->full_joins + f->cross_joins);
	points += 1.0 * f->subqueries;
	points += 1.5 * f->correlated_subqueries;
	points += 1.0 * f->ctes;
	points += 2.0 * f->recursive_ctes;
	points += 1.0 * f->set_operations;
	points += 0.5 * f->aggregates;
	points += 1.5 * f->window_functions;
	points += 0.25 * f->functions;
	points += 0.5 * f->sorts;
	points += 1.0 * (f->distinct + f->group_by + f->having);
	points += 1.0 * f->big_seq_scans;
	points += 2.0 * f->big_nested_loops;
	points += 1.5 * f->spilling_sorts;

	/* one point per tenfold of estimated cost above 1000 */
	if (f->total_cost > 1000)
		points += log10(f->total_cost) - 3;

	return points;
}

/* Map points onto 1..10 */
int
perfopt_complexity_score(double points)
{
	int			score;

	score = 1 + (int) rint(9 * (1 - exp(-Max(points, 0) / 10)));
	return Min(Max(score, 1), 10);
}

/*
 * Level from the planner's estimate alone.  A sequential read of 1 GB costs
 * about 131,000 (seq_page_cost 1 per 8 kB page), so "high" starts near a
 * full read of the better part of a gigabyte.
 */
PerfoptLevel
perfopt_plan_impact(double total_cost)
{
	if (total_cost >= 1e6)
		return LEVEL_CRITICAL;
	if (total_cost >= 1e5)
		return LEVEL_HIGH;
	if (total_cost >= 1e4)
		return LEVEL_MEDIUM;
	return LEVEL_LOW;
}

/*
 * Level from what the statement has cost so far: its share of the
 * database's execution time, or its mean time against the slow-query
 * threshold, whichever is higher.
 */
PerfoptLevel
perfopt_workload_impact(const WorkloadStats *stats, double slow_query_ms)
{
	PerfoptLevel by_share;
	PerfoptLevel by_mean;

	if (!stats->found || stats->calls <= 0)
		return LEVEL_LOW;

	if (stats->time_share_pct >= 25)
		by_share = LEVEL_CRITICAL;
	else if (stats->time_share_pct >= 10)
		by_share = LEVEL_HIGH;
	else if (stats->time_share_pct >= 1)
		by_share = LEVEL_MEDIUM;
	else
		by_share = LEVEL_LOW;

	if (slow_query_ms > 0 && stats->mean_ms >= 10 * slow_query_ms)
		by_mean = LEVEL_HIGH;
	else if (slow_query_ms > 0 && stats->mean_ms >= slow_query_ms)
		by_mean = LEVEL_MEDIUM;
	else
		by_mean = LEVEL_LOW;

	return Max(by_share, by_mean);
}

const char *
perfopt_level_name(PerfoptLevel level)
{
	switch (level)
	{
		case LEVEL_LOW:
			return "low";
		case LEVEL_MEDIUM:
			return "medium";
		case LEVEL_HIGH:
			return "high";
		case LEVEL_CRITICAL:
			return "critical";
	}
	return "low";				/* keep compiler quiet */
}
