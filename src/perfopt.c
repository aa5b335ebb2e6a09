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

#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/queryjumble.h"
#include "utils/timestamp.h"

#include "models/anomaly.h"
#include "cache/cache.h"
#include "cache/cache_worker.h"
#include "observability/exporter.h"
#include "routing/instance_check.h"
#include "metrics/latency.h"
#include "bgw/launcher.h"
#include "perfopt.h"
#include "observability/prometheus.h"
#include "routing/routing.h"
#include "common/security.h"

PG_MODULE_MAGIC;

int			perfopt_slow_query_ms = 500;
int			perfopt_advisor_statements = 100;
int			perfopt_retention = 30 * 24 * 60;
int			perfopt_job_history_retention = 7 * 24 * 60;
double		perfopt_anomaly_threshold = PERFOPT_ANOMALY_DEFAULT_THRESHOLD;
int			perfopt_forecast_horizon = 90 * 24 * 60;
static int	perfopt_optimization_interval = 15;
static int	perfopt_max_actions_per_cycle = 10;
static int	perfopt_incident_hold = 600;
static int	perfopt_index_rollback_window = 24 * 60;
static char *perfopt_now_override = NULL;

static const struct config_enum_entry track_latency_options[] = {
	{"none", TRACK_LATENCY_NONE, false},
	{"top", TRACK_LATENCY_TOP, false},
	{"all", TRACK_LATENCY_ALL, false},
	{NULL, 0, false}
};

void		_PG_init(void);

PG_FUNCTION_INFO_V1(perfopt_now_sql);

/* Check hooks of the settings the workers act on */
static bool
check_worker_int(int *newval, void **extra, GucSource source)
{
	return perfopt_worker_setting_allowed(source);
}

static bool
check_worker_real(double *newval, void **extra, GucSource source)
{
	return perfopt_worker_setting_allowed(source);
}

static bool
check_worker_enum(int *newval, void **extra, GucSource source)
{
	return perfopt_worker_setting_allowed(source);
}

static bool
check_worker_string(char **newval, void **extra, GucSource source)
{
	return perfopt_worker_setting_allowed(source);
}

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
							PGC_SUSET,
							GUC_UNIT_MS,
							check_worker_int,
							NULL,
							NULL);

	DefineCustomIntVariable("perfopt.advisor_statements",
							"Statements of pg_stat_statements, most total time first, that recommend_indexes considers.",
							NULL,
							&perfopt_advisor_statements,
							100,
							1,
							10000,
							PGC_SUSET,
							0,
							check_worker_int,
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

	DefineCustomRealVariable("perfopt.anomaly_threshold",
							 "How many robust deviations from its baseline make a point anomalous.",
							 "Used by detect_anomalies() when it is given no threshold, and by the anomaly job.",
							 &perfopt_anomaly_threshold,
							 PERFOPT_ANOMALY_DEFAULT_THRESHOLD,
							 0.5,
							 100.0,
							 PGC_SUSET,
							 0,
							 check_worker_real,
							 NULL,
							 NULL);

	DefineCustomIntVariable("perfopt.forecast_horizon",
							"How far ahead the capacity job forecasts.",
							NULL,
							&perfopt_forecast_horizon,
							90 * 24 * 60,
							60,
							3650 * 24 * 60,
							PGC_SUSET,
							GUC_UNIT_MIN,
							check_worker_int,
							NULL,
							NULL);

	DefineCustomIntVariable("perfopt.optimization_interval",
							"Time between the orchestrator's optimization cycles.",
							NULL,
							&perfopt_optimization_interval,
							15,
							1,
							7 * 24 * 60,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("perfopt.max_actions_per_cycle",
							"Actions an optimization cycle may queue; the rest are logged as skipped.",
							NULL,
							&perfopt_max_actions_per_cycle,
							10,
							0,
							1000,
							PGC_SIGHUP,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("perfopt.incident_hold",
							"How long the cause of an incident must stay clear before it is resolved.",
							NULL,
							&perfopt_incident_hold,
							600,
							0,
							7 * 24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("perfopt.index_rollback_window",
							"How long an index a rule created may stay unused before it is dropped.",
							NULL,
							&perfopt_index_rollback_window,
							24 * 60,
							1,
							365 * 24 * 60,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL,
							NULL,
							NULL);

	DefineCustomStringVariable("perfopt.metrics_listen",
							   "Where the exporter serves /metrics: host:port, or a port for loopback; empty for off.",
							   NULL,
							   &perfopt_metrics_listen,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL,
							   NULL,
							   NULL);

	DefineCustomStringVariable("perfopt.metrics_user",
							   "User name /metrics asks for with basic authentication; empty for none.",
							   NULL,
							   &perfopt_metrics_user,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL,
							   NULL,
							   NULL);

	DefineCustomStringVariable("perfopt.metrics_password_file",
							   "File whose first line is the password /metrics asks for with basic authentication.",
							   "A file, so that the password is never in a setting the server logs on reload.",
							   &perfopt_metrics_password_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL,
							   NULL,
							   NULL);

	DefineCustomStringVariable("perfopt.alertmanager_url",
							   "Alertmanager that incidents and capacity alerts are posted to, such as http://127.0.0.1:9093; empty for none.",
							   NULL,
							   &perfopt_alertmanager_url,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL,
							   NULL,
							   NULL);

	DefineCustomIntVariable("perfopt.metrics_top_statements",
							"Statements, by total time, that get a latency histogram of their own in the metrics.",
							NULL,
							&perfopt_metrics_top_statements,
							50,
							0,
							10000,
							PGC_SUSET,
							0,
							check_worker_int,
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
							 check_worker_enum,
							 NULL,
							 NULL);

	DefineCustomStringVariable("perfopt.now_override",
							   "The time perfopt's jobs take as now; empty for the real time.",
							   "For testing jobs on recorded series.",
							   &perfopt_now_override,
							   "",
							   PGC_SUSET,
							   GUC_NOT_IN_SAMPLE,
							   check_worker_string,
							   NULL,
							   NULL);

	perfopt_cache_define_settings();
	perfopt_routing_define_settings();

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
		perfopt_exporter_register();
		perfopt_cache_worker_init();
		perfopt_routing_init();
		perfopt_health_check_register();
	}

	/* after the last definition: it drops unknown perfopt.* settings */
	MarkGUCPrefixReserved("perfopt");
}
