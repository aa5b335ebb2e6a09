/*-------------------------------------------------------------------------
 *
 * complexity.h
 *	  What a statement's complexity score and impact are made of, and the
 *	  formulas that turn them into a score (1..10) and a level.
 *
 * Nothing here reads catalogs or runs queries: the counts come from
 * query_analysis.c, the workload figures from pgss.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_COMPLEXITY_H
#define PERFOPT_COMPLEXITY_H

/* What the score is made of; see docs/query-analysis.md */
typedef struct QueryFeatures
{
	/* from the analyzed query, at every level */
	int			tables;
	int			inner_joins;
	int			left_joins;
	int			right_joins;
	int			full_joins;
	int			cross_joins;
	int			subqueries;
	int			correlated_subqueries;
	int			ctes;
	int			recursive_ctes;
	int			set_operations;
	int			aggregates;
	int			window_functions;
	int			functions;
	int			sorts;
	int			distinct;
	int			group_by;
	int			having;
	int			limit;
	int			offset;

	/* from the generic plan */
	int			big_seq_scans;
	int			big_nested_loops;
	int			spilling_sorts;
	double		total_cost;
} QueryFeatures;

/* What pg_stat_statements knows of a statement in this database */
typedef struct WorkloadStats
{
	bool		found;
	int64		queryid;
	int64		calls;
	double		total_ms;
	double		mean_ms;
	double		time_share_pct; /* of all top-level time in this database */
} WorkloadStats;

/* The scale of impact levels and recommendation severities */
typedef enum PerfoptLevel
{
	LEVEL_LOW,
	LEVEL_MEDIUM,
	LEVEL_HIGH,
	LEVEL_CRITICAL
} PerfoptLevel;

extern double perfopt_complexity_points(const QueryFeatures *features);
extern int	perfopt_complexity_score(double points);
extern PerfoptLevel perfopt_plan_impact(double total_cost);
extern PerfoptLevel perfopt_workload_impact(const WorkloadStats *stats,
										   double slow_query_ms);
extern const char *perfopt_level_name(PerfoptLevel level);

#endif							/* PERFOPT_COMPLEXITY_H */
