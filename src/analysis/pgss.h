/*-------------------------------------------------------------------------
 *
 * pgss.h
 *	  Reading pg_stat_statements: perfopt's view of the workload.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_PGSS_H
#define PERFOPT_PGSS_H

#include "analysis/complexity.h"

/* One statement of the workload with its figures */
typedef struct PgssStatement
{
	char	   *query;
	Oid			userid;			/* the role that ran it: plan it as this role */
	WorkloadStats stats;
	double		rows;			/* rows returned or affected, all calls */
} PgssStatement;

extern void perfopt_pgss_require(void);
extern void perfopt_pgss_lookup(int64 queryid, const char *query_text,
								WorkloadStats *stats);
extern List *perfopt_pgss_statements(double min_mean_ms, int limit);

#endif							/* PERFOPT_PGSS_H */
