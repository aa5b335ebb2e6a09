/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  The variables of the settings that belong to no single subsystem;
 *	  guc.c defines the settings.  See settings.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/settings.h"
#include "models/anomaly.h"

int			perfopt_slow_query_ms = 500;
int			perfopt_advisor_statements = 100;
int			perfopt_retention = 30 * 24 * 60;
int			perfopt_job_history_retention = 7 * 24 * 60;
double		perfopt_anomaly_threshold = PERFOPT_ANOMALY_DEFAULT_THRESHOLD;
int			perfopt_forecast_horizon = 90 * 24 * 60;
char	   *perfopt_now_override = NULL;
char	   *perfopt_database = NULL;
int			perfopt_sample_interval = 10;

bool		perfopt_settings_server_only = false;
