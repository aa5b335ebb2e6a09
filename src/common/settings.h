/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  The settings that belong to no single subsystem, as variables; and
 *	  whether this process is a worker that takes them from the server's
 *	  configuration only.
 *
 * guc.c defines the settings; this module only holds them, so that a
 * subsystem can read a setting without depending on guc.c, which depends
 * on every subsystem.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_SETTINGS_H
#define PERFOPT_SETTINGS_H

/* GUC perfopt.slow_query_ms: mean execution time that makes a query slow */
extern int	perfopt_slow_query_ms;

/* GUC perfopt.advisor_statements: statements recommend_indexes considers */
extern int	perfopt_advisor_statements;

/* GUC perfopt.retention, in minutes: how long metrics are kept */
extern int	perfopt_retention;

/* GUC perfopt.job_history_retention, in minutes: how long job runs are kept */
extern int	perfopt_job_history_retention;

/* GUC perfopt.anomaly_threshold: robust deviations that make an anomaly */
extern double perfopt_anomaly_threshold;

/* GUC perfopt.forecast_horizon, in minutes: how far the capacity job looks */
extern int	perfopt_forecast_horizon;

/* GUC perfopt.now_override: the time jobs take as now; empty for real time */
extern char *perfopt_now_override;

/* GUC perfopt.database: where the workers connect */
extern char *perfopt_database;

/* GUC perfopt.sample_interval, in seconds: the schedule of jobs without one */
extern int	perfopt_sample_interval;

/*
 * In a perfopt worker, before it connects: the settings the workers act on
 * are then taken from the server's configuration only, never from ALTER
 * DATABASE or ALTER ROLE ... SET (guc.c's check hooks read this).
 */
extern bool perfopt_settings_server_only;

#endif							/* PERFOPT_SETTINGS_H */
