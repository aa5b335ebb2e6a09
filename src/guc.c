/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Every perfopt.* setting, defined in one place.
 *
 * Each setting is defined here with its unit, its context (PGC_POSTMASTER
 * only where shared memory is sized by it) and its check hook.  The
 * settings the background workers act on have a check hook that refuses
 * per-database and per-role values in the workers (see
 * worker_setting_allowed); perfopt.redis_password has one that
 * keeps the password out of sight.  The variables of a subsystem's own
 * settings live in that subsystem, as PostgreSQL's do; the settings that
 * belong to no single subsystem in common/settings.c.
 *
 * perfopt_define_settings runs whether or not perfopt is preloaded, so
 * that functions loaded on first use see their settings too; only
 * perfopt.max_statements, which sizes shared memory, needs the preload.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "cache/cache_worker.h"
#include "cache/redis.h"
#include "common/settings.h"
#include "guc.h"
#include "metrics/latency.h"
#include "metrics/table_state.h"
#include "models/anomaly.h"
#include "observability/exporter.h"
#include "observability/prometheus.h"
#include "routing/balance.h"
#include "routing/routing.h"
#include "samples/samples.h"

/* read by the orchestrator's SQL only, through current_setting() */
static int	perfopt_optimization_interval = 15;
static int	perfopt_max_actions_per_cycle = 10;
static int	perfopt_incident_hold = 600;
static int	perfopt_index_rollback_window = 24 * 60;
static int	perfopt_outcome_window = 60;
static double perfopt_outcome_harm_pct = 5.0;
static double perfopt_outcome_min_confidence = 0.9;
static double perfopt_price_storage_gb_month = 0.10;
static double perfopt_price_core_hour = 0.05;
static double perfopt_price_replica_month = 150.0;
static double perfopt_price_outage = 0.0;

static const struct config_enum_entry track_latency_options[] = {
	{"none", TRACK_LATENCY_NONE, false},
	{"top", TRACK_LATENCY_TOP, false},
	{"all", TRACK_LATENCY_ALL, false},
	{NULL, 0, false}
};

/*
 * Whether a setting the workers act on may come from source in this
 * process.  A database owner who is no superuser can ALTER DATABASE ...
 * SET a USERSET setting, and such settings reach the workers' sessions
 * when they connect; so the workers take these settings from the server's
 * configuration (postgresql.conf, ALTER SYSTEM) only, and ignore the
 * per-database and per-role ones with a warning.
 */
static bool
worker_setting_allowed(GucSource source)
{
	if (!perfopt_settings_server_only)
		return true;
	if (source == PGC_S_GLOBAL || source == PGC_S_DATABASE ||
		source == PGC_S_USER || source == PGC_S_DATABASE_USER)
	{
		GUC_check_errdetail("perfopt's background workers take this setting from the server's configuration only.");
		GUC_check_errhint("Set it in postgresql.conf or with ALTER SYSTEM.");
		return false;
	}
	return true;
}

/* Check hooks of the settings the workers act on */
static bool
check_worker_int(int *newval, void **extra, GucSource source)
{
	return worker_setting_allowed(source);
}

static bool
check_worker_real(double *newval, void **extra, GucSource source)
{
	return worker_setting_allowed(source);
}

static bool
check_worker_enum(int *newval, void **extra, GucSource source)
{
	return worker_setting_allowed(source);
}

static bool
check_worker_string(char **newval, void **extra, GucSource source)
{
	return worker_setting_allowed(source);
}

/* What perfopt.redis_password shows, whatever it is set to */
#define PASSWORD_MASK	"********"

/* The variable of perfopt.redis_password: always PASSWORD_MASK */
static char *redis_password_shown = NULL;

/*
 * Check hook of perfopt.redis_password: keep the password as the setting's
 * "extra" and let the setting itself always read PASSWORD_MASK.  The
 * postmaster logs a reloaded setting with its new value when the value it
 * reads changes; with a constant mask it never does, so the password
 * cannot reach the log that way.
 */
static bool
check_redis_password(char **newval, void **extra, GucSource source)
{
	char	   *password;
	char	   *mask;

	if (!worker_setting_allowed(source))
		return false;
	password = strdup(*newval ? *newval : "");
	mask = strdup(PASSWORD_MASK);
	if (password == NULL || mask == NULL)
	{
		free(password);
		free(mask);
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		return false;
	}
	free(*newval);
	*newval = mask;
	*extra = password;
	return true;
}

/* Assign hook of perfopt.redis_password: the password is the extra */
static void
assign_redis_password(const char *newval, void *extra)
{
	perfopt_redis_password = extra ? (const char *) extra : "";
}

/* Define every perfopt.* setting; see the top of the file */
void
perfopt_define_settings(void)
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

	DefineCustomIntVariable("perfopt.outcome_window",
							"How long the windows before and after an action last in which its effect is measured.",
							"A later optimization cycle closes the window after the action.",
							&perfopt_outcome_window,
							60,
							1,
							30 * 24 * 60,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL,
							NULL,
							NULL);

	DefineCustomRealVariable("perfopt.outcome_harm_pct",
							 "Measured harm, in percent of the target's time, beyond which an action is rolled back.",
							 NULL,
							 &perfopt_outcome_harm_pct,
							 5.0,
							 0.0,
							 100.0,
							 PGC_SIGHUP,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomRealVariable("perfopt.outcome_min_confidence",
							 "Confidence a measured effect needs to count as help or harm, and a trial index to be kept.",
							 NULL,
							 &perfopt_outcome_min_confidence,
							 0.9,
							 0.5,
							 0.9999,
							 PGC_SIGHUP,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomRealVariable("perfopt.price_storage_gb_month",
							 "What one GB of storage costs per month, for the costs of plans and outcomes.",
							 NULL,
							 &perfopt_price_storage_gb_month,
							 0.10,
							 0.0,
							 1e6,
							 PGC_SIGHUP,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomRealVariable("perfopt.price_core_hour",
							 "What one CPU core costs per hour, for the costs of plans and outcomes.",
							 NULL,
							 &perfopt_price_core_hour,
							 0.05,
							 0.0,
							 1e6,
							 PGC_SIGHUP,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomRealVariable("perfopt.price_replica_month",
							 "What one more replica (or instance) costs per month.",
							 NULL,
							 &perfopt_price_replica_month,
							 150.0,
							 0.0,
							 1e9,
							 PGC_SIGHUP,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomRealVariable("perfopt.price_outage",
							 "What running out of a resource costs once (the outage and its fix); 0 when unknown.",
							 NULL,
							 &perfopt_price_outage,
							 0.0,
							 0.0,
							 1e12,
							 PGC_SIGHUP,
							 0,
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

	/* the cache: Redis and the invalidator */
	DefineCustomStringVariable("perfopt.redis_host",
							   "Host name or IP address of Redis (a path: its unix socket).",
							   NULL,
							   &perfopt_redis_host,
							   "127.0.0.1",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.redis_port",
							"TCP port of Redis.",
							NULL,
							&perfopt_redis_port,
							6379,
							1,
							65535,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	/* never shown, and never put in a message */
	DefineCustomStringVariable("perfopt.redis_password",
							   "Password for Redis's AUTH; empty for none.",
							   "It always reads " PASSWORD_MASK ".",
							   &redis_password_shown,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   check_redis_password, assign_redis_password, NULL);

	DefineCustomIntVariable("perfopt.redis_db",
							"Redis database number the cache lives in.",
							NULL,
							&perfopt_redis_db,
							0,
							0,
							INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.redis_timeout",
							"Time allowed to connect to Redis and for each reply.",
							NULL,
							&perfopt_redis_timeout,
							1000,
							10,
							60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("perfopt.cache_channel",
							   "Redis channel on which each batch of invalidated keys is published.",
							   "Empty: publish nothing.",
							   &perfopt_cache_channel,
							   "perfopt:invalidate",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.cache_batch_delay",
							"Shortest time between two batches of the cache worker.",
							"A commit that comes sooner waits for the rest of it, so that a stream of commits is sent in fewer batches.",
							&perfopt_cache_batch_delay,
							2,
							0,
							1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("perfopt.cache_batch_size",
							"Invalidations the cache worker sends to Redis in one pipelined batch.",
							NULL,
							&perfopt_cache_batch_size,
							1000,
							1,
							100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	/* routing and the health checker */
	DefineCustomIntVariable("perfopt.health_check_interval",
							"Time between two health checks of every registered instance.",
							NULL, &perfopt_health_check_interval, 5, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("perfopt.health_check_failures",
							"Health checks in a row that must fail before an instance is down.",
							NULL, &perfopt_health_check_failures, 3, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("perfopt.health_check_successes",
							"Health checks in a row that must succeed before a down instance is healthy.",
							NULL, &perfopt_health_check_successes, 2, 1, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("perfopt.health_check_timeout",
							"How long one health check may take: connect, then query.",
							NULL, &perfopt_health_check_timeout, 2000, 100, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("perfopt.routing_algorithm",
							 "Algorithm route() uses when it is given none.",
							 NULL, &perfopt_routing_algorithm, PERFOPT_ALGO_ADAPTIVE,
							 perfopt_routing_algorithms, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("perfopt.routing_max_lag",
							"Replication lag beyond which a standby is degraded and avoided by adaptive routing.",
							NULL, &perfopt_routing_max_lag, 16 * 1024 * 1024, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);

	DefineCustomBoolVariable("perfopt.param_sampling",
							 "Whether perfopt samples the parameters of statements for the index advisor.",
							 "The samples are kept in shared memory only; see perfopt.statement_samples.",
							 &perfopt_param_sampling, true, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("perfopt.param_sample_every",
							"One statement in this many, on average, has its parameters sampled.",
							NULL, &perfopt_param_sample_every, 100, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);

	/* shared memory is sized once, at start-up: only a preload defines this */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("perfopt.param_samples_memory",
								"Shared memory for the parameter samples of statements.",
								"Each statement's 8 sets take about 8.4 kB.",
								&perfopt_param_samples_memory,
								8192,
								64,
								1024 * 1024,
								PGC_POSTMASTER,
								GUC_UNIT_KB,
								NULL,
								NULL,
								NULL);

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


		DefineCustomIntVariable("perfopt.table_state_max",
								"Tables and indexes whose sizes the metrics sampler keeps in shared memory.",
								"Each takes about 70 bytes; 0 keeps none. Relations beyond it are measured by each reader.",
								&perfopt_table_state_max,
								50000,
								0,
								10000000,
								PGC_POSTMASTER,
								0,
								NULL,
								NULL,
								NULL);
	}

	/* after the last definition: it drops unknown perfopt.* settings */
	MarkGUCPrefixReserved("perfopt");
}
