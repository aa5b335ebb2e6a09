/*-------------------------------------------------------------------------
 *
 * anomaly.h
 *	  Causal anomaly detector for metric time series.
 *
 * Pure computation: no SPI, no catalogs, no allocation, no globals with
 * state.  The caller hands in a workspace of perfopt_anomaly_workspace_size()
 * bytes, aligned like malloc() or palloc() memory, and output arrays.
 *
 * Two ways to use it, which give identical answers for the same points:
 *
 *	- perfopt_anomaly_detect(): the whole series in one call (what
 *	  detect_anomalies() and the anomaly worker use);
 *	- perfopt_anomaly_init() once, then perfopt_anomaly_update() per point:
 *	  the same detector fed incrementally, for a caller that keeps the state.
 *
 * For each point the detector gives:
 *	expected	the value its baseline predicted from earlier points only
 *				(NaN while it has no baseline yet);
 *	score		signed robust deviation, (value - expected) / scale, where
 *				scale is the robust spread of the baseline's recent errors;
 *				positive above the baseline, negative below; 0 for a point
 *				without a baseline, NaN for a NaN or infinite value;
 *	is_anomaly	1 on the first point of an excursion that the detector
 *				reports, 0 elsewhere (one event per excursion).
 *
 * anomaly.c explains the method and every constant.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_ANOMALY_H
#define PERFOPT_ANOMALY_H

/* threshold used when the caller passes one that is not a positive number */
#define PERFOPT_ANOMALY_DEFAULT_THRESHOLD 2.5

/* What made the detector report a point */
typedef enum PerfoptAnomalyKind
{
	PERFOPT_ANOMALY_NONE = 0,
	PERFOPT_ANOMALY_SPIKE,		/* one point far past the series' usual tail */
	PERFOPT_ANOMALY_SHIFT		/* a denser run of deviations than usual */
} PerfoptAnomalyKind;

/* the baselines, in the order of PerfoptAnomalyReason.baseline */
#define PERFOPT_ANOMALY_BASELINE_NAMES \
	{"recent level", "recent trend", "time-of-day profile", "day-of-week profile"}

typedef struct PerfoptAnomalyReason
{
	PerfoptAnomalyKind kind;
	int			baseline;		/* index into PERFOPT_ANOMALY_BASELINE_NAMES */
	double		tail;			/* the score a spike had to reach */
	int			exceedances;	/* points past the threshold among the last window */
	int			window;
	int			usual_exceedances;	/* the most seen before outside excursions */
} PerfoptAnomalyReason;

/* bytes of workspace needed for a series of n points (does not grow with n) */
extern long perfopt_anomaly_workspace_size(long n);

/*
 * Run the detector over a whole series.  times are seconds since the epoch
 * (UTC), in ascending order; values may hold NaN or infinities, which are
 * skipped.  expected, score and is_anomaly receive n entries each.  Returns
 * the number of anomalies flagged, or -1 if an argument is unusable (n < 0,
 * a NULL array when n > 0, a NULL workspace).
 */
extern long perfopt_anomaly_detect(const double *times, const double *values,
								   long n, double threshold, void *workspace,
								   double *expected, double *score,
								   int *is_anomaly);

/* bytes of state for the incremental interface (same as the workspace) */
extern long perfopt_anomaly_state_size(void);

/* Prepare state (perfopt_anomaly_state_size() bytes) for a new series */
extern void perfopt_anomaly_init(void *state, double threshold);

/*
 * Feed the next point of the series; writes the point's expected value,
 * score and verdict.  Feeding points one by one after perfopt_anomaly_init()
 * gives exactly what perfopt_anomaly_detect() gives for the same series.
 */
extern void perfopt_anomaly_update(void *state, double time, double value,
								   double *expected, double *score,
								   int *is_anomaly);

/*
 * 1 while the series is inside an excursion that was reported: from the
 * report until EXCURSION_QUIET points in a row are back under the threshold.
 */
extern int	perfopt_anomaly_in_excursion(const void *state);

/* Why the last reported point was reported (valid after a report) */
extern void perfopt_anomaly_last_reason(const void *state,
										PerfoptAnomalyReason *reason);

/* Stable order of the points by time (order and scratch: n entries each) */
extern void perfopt_anomaly_time_order(const double *times, long n,
									   long *order, long *scratch);

/*
 * Run an initialised state over points in any order: fed in time order,
 * answers written at each point's input position.  order_scratch: 2n.
 */
extern long perfopt_anomaly_detect_ordered(const double *times,
										   const double *values, long n,
										   void *state, double *expected,
										   double *score, int *is_anomaly,
										   long *order_scratch);

/* Set a fitted constant by name (cross-validation only); -1 if unknown */
extern int	perfopt_anomaly_set_param(void *state, const char *name,
									  double value);

#endif							/* PERFOPT_ANOMALY_H */
