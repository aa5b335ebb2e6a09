/*-------------------------------------------------------------------------
 *
 * query_analysis.h
 *	  Complexity, impact and recommendations for one statement.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_QUERY_ANALYSIS_H
#define PERFOPT_QUERY_ANALYSIS_H

#include "analysis/complexity.h"
#include "nodes/pg_list.h"

typedef struct Recommendation
{
	const char *code;
	PerfoptLevel severity;
	char	   *message;
} Recommendation;

/* Everything analyze_query reports about one statement */
typedef struct QueryAnalysis
{
	const char *pattern;		/* SELECT, INSERT, ..., UTILITY */
	const char *command;		/* command tag of a utility statement */
	bool		planned;		/* false for utility statements */
	int			num_params;
	QueryFeatures features;
	List	   *relations;		/* qualified names of the tables used */
	List	   *plan_nodes;		/* PlanNodeCount *, in first-seen order */
	double		total_cost;
	double		plan_rows;
	double		points;
	int			complexity;
	WorkloadStats stats;
	PerfoptLevel impact;
	List	   *recommendations;	/* Recommendation *, most severe first */
} QueryAnalysis;

extern void perfopt_analyze_statement(const char *query_text,
									  const WorkloadStats *known_stats,
									  QueryAnalysis *analysis);
extern char *perfopt_analysis_features_json(const QueryAnalysis *analysis);
extern char *perfopt_recommendations_json(List *recommendations);

#endif							/* PERFOPT_QUERY_ANALYSIS_H */
