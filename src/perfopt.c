/*-------------------------------------------------------------------------
 *
 * perfopt.c
 *	  Module load: settings, shared memory requests and worker registration.
 *
 * perfopt is meant to sit in shared_preload_libraries next to
 * pg_stat_statements: then it reserves shared memory for its latency
 * histograms, installs its executor hooks and registers its launcher.
 * Functions that need neither shared memory nor workers (query analysis,
 * for one) must also work when the library is only loaded on first use, so
 * the settings are defined in both cases and only what needs the
 * postmaster is skipped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/queryjumble.h"
#include "utils/timestamp.h"

#include "cache.h"
#include "cache_worker.h"
#include "latency.h"
#include "launcher.h"
#include "perfopt.h"

PG_MODULE_MAGIC;

int			perfopt_slow_query_ms = 500;
int			perfopt_advisor_statements = 100;
int			perfopt_retention = 30 * 24 * 60;
int			perfopt_job_history_retention = 7 * 24 * 60;
static char *perfopt_now_override = NULL;

static const struct config_enum_entry track_latency_options[] = {
	{"none", TRACK_LATENCY_NONE, false},
	{"top", TRACK_LATENCY_TOP, false},
	{"all", TRACK_LATENCY_ALL, false},
	{NULL, 0, false}
};

void		_PG_init(void);

PG_FUNCTION_INFO_V1(perfopt_now_sql);

/* The time perfopt's jobs take as now; see perfopt.h */
TimestampTz
perfopt_now(void)
{
	if (perfopt_now_override == NULL || perfopt_now_override[0] == '\0')
		return GetCurrentTimestamp();

	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												   CStringGetDatum(perfopt_now_override),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

/* now(): perfopt_now() for SQL */
Datum
perfopt_now_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(perfopt_now());
}

/*
 * Define perfopt's settings; reserve the prefix so that a misspelt
 * perfopt.* setting is reported instead of silently kept.  When preloaded,
 * also set up latency tracking and the launcher.
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

	DefineCustomStringVariable("perfopt.database",
							   "Database the perfopt launcher connects to and runs its jobs in.",
							   NULL,
							   &perfopt_database,
							   "postgres",
							   PGC_SIGHUP,
							   0,
							   NULL,
							   NULL,
							   NULL);

	DefineCustomIntVariable("perfopt.sample_interval",
							"Time between two samples of the metrics sampler.",
							"Also the schedule of every job whose schedule is NULL.",
							&perfopt_sample_interval,
							10,
							1,
							24 * 60 * 60,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("perfopt.retention",
							"How long perfopt.metrics keeps samples.",
							"Samples are removed by whole days.",
							&perfopt_retention,
							30 * 24 * 60,
							24 * 60,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("perfopt.job_history_retention",
							"How long perfopt.job_runs keeps the runs of jobs.",
							NULL,
							&perfopt_job_history_retention,
							7 * 24 * 60,
							60,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL,
							NULL,
							NULL);

	DefineCustomEnumVariable("perfopt.track_latency",
							 "Which statements perfopt times: none, top (top level only) or all.",
							 NULL,
							 &perfopt_track_latency,
							 TRACK_LATENCY_ALL,
							 track_latency_options,
							 PGC_SUSET,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomStringVariable("perfopt.now_override",
							   "The time perfopt's jobs take as now; empty for the real time.",
							   "For testing jobs on recorded series.",
							   &perfopt_now_override,
							   "",
							   PGC_SUSET,
							   GUC_NOT_IN_SAMPLE,
							   NULL,
							   NULL,
							   NULL);

	perfopt_cache_define_settings();

	/* shared memory is sized once, at start-up: only a preload defines this */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("perfopt.max_statements",
								"Statements whose latency histograms perfopt keeps in shared memory.",
								"Each takes about 19 kB.",
								&perfopt_max_statements,
								1000,
								100,
								100000,
								PGC_POSTMASTER,
								0,
								NULL,
								NULL,
								NULL);

		EnableQueryId();
		perfopt_latency_init();
		perfopt_launcher_register();
		perfopt_cache_worker_init();
	}

	/* after the last definition: it drops unknown perfopt.* settings */
	MarkGUCPrefixReserved("perfopt");
}
