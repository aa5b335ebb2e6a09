/*-------------------------------------------------------------------------
 *
 * perfopt.c
 *	  Module load: settings, shared memory requests and worker registration.
 *
 * perfopt is meant to sit in shared_preload_libraries next to
 * pg_stat_statements.  Functions that need neither shared memory nor
 * workers (query analysis, for one) must also work when the library is
 * only loaded on first use, so the settings are defined in both cases and
 * only what needs the postmaster is skipped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "perfopt.h"

PG_MODULE_MAGIC;

int			perfopt_slow_query_ms = 500;
int			perfopt_advisor_statements = 100;

void		_PG_init(void);

/*
 * Define perfopt's settings; reserve the prefix so that a misspelt
 * perfopt.* setting is reported instead of silently kept.
 */
void
_PG_init(void)
{
	DefineCustomIntVariable("perfopt.slow_query_ms",
							"Mean execution time at or above which a statement is listed in perfopt.slow_queries.",
							NULL,
							&perfopt_slow_query_ms,
							500,
							0,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("perfopt.advisor_statements",
							"Statements of pg_stat_statements, most total time first, that recommend_indexes considers.",
							NULL,
							&perfopt_advisor_statements,
							100,
							1,
							10000,
							PGC_USERSET,
							0,
							NULL,
							NULL,
							NULL);

	MarkGUCPrefixReserved("perfopt");
}
