/*-------------------------------------------------------------------------
 *
 * anomaly.h
 *	  Causal anomaly detector for metric time series.
 *
 * Pure computation: no SPI, no catalogs, no allocation, no globals with
 * state.  The caller hands in a state of perfopt_anomaly_state_size()
 * bytes, aligned like malloc() or palloc() memory, and output arrays.
 *
 * perfopt_anomaly_init() once, then perfopt_anomaly_update() per point, in
 * time order: detect_anomalies() feeds a whole series that way (after
 * perfopt_anomaly_time_order(), a stable sort by time), and the anomaly job
 * feeds each series as its points arrive, keeping the state between runs.
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
#define PERFOPT_ANOMALY_DEFAULT_THRESHOLD 3.5

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

/* bytes of state of one series' detector (fixed, whatever its length) */
extern long perfopt_anomaly_state_size(void);

/* Prepare state (perfopt_anomaly_state_size() bytes) for a new series */
extern void perfopt_anomaly_init(void *state, double threshold);

/*
 * Feed the next point of the series, in time order; writes the point's
 * expected value, score and verdict.  A point whose time is not finite gets
 * no verdict and changes nothing; a NaN or infinite value is a gap.
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
 * Set a constant by name after perfopt_anomaly_init(), for the
 * cross-validation driver only (test/bench/anomaly_driver.c): threshold,
 * tail_extrapolate, far_extrapolate (the fitted ones), density_min,
 * excursion_quiet.  Returns -1 for an unknown name.
 */
extern int	perfopt_anomaly_set_param(void *state, const char *name,
									  double value);

#endif							/* PERFOPT_ANOMALY_H */
