/*-------------------------------------------------------------------------
 *
 * perfopt.h
 *	  Settings shared by perfopt's subsystems, and its clock.
 *
 * Each subsystem has a header of its own; this one holds only what
 * _PG_init defines for all of them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_H
#define PERFOPT_H

#include "datatype/timestamp.h"
#include "utils/guc.h"

/* what the workers share: the toolkit and the extension lock */
#include "bgw/worker.h"
#include "common/extension_lock.h"

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

/*
 * The time perfopt's jobs take as "now": the real time, unless
 * perfopt.now_override says otherwise, so that jobs can be run on
 * recorded series at full speed in tests.
 */
extern TimestampTz perfopt_now(void);

#endif							/* PERFOPT_H */
