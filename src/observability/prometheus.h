/*-------------------------------------------------------------------------
 *
 * prometheus.h
 *	  The Prometheus text exposition of what perfopt knows.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_PROMETHEUS_H
#define PERFOPT_PROMETHEUS_H

/* GUC perfopt.metrics_top_statements: statements with a histogram of their own */
extern int	perfopt_metrics_top_statements;

extern char *perfopt_prometheus_text(void);

#endif							/* PERFOPT_PROMETHEUS_H */
