/*-------------------------------------------------------------------------
 *
 * latency.h
 *	  Per-statement latency histograms in shared memory.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_LATENCY_H
#define PERFOPT_LATENCY_H

#include "postgres.h"

/* perfopt.track_latency */
typedef enum
{
	TRACK_LATENCY_NONE,
	TRACK_LATENCY_TOP,
	TRACK_LATENCY_ALL
} TrackLatency;

extern int	perfopt_track_latency;
extern int	perfopt_max_statements;

/* Figures of one statement over some span of time */
typedef struct LatencyFigures
{
	Oid			dbid;
	uint64		queryid;
	bool		toplevel;
	uint64		calls;
	double		total_ms;
	double		p50_ms;
	double		p95_ms;
	double		p99_ms;
} LatencyFigures;

/* A cumulative histogram for Prometheus: calls at or under each bound */
#define PERFOPT_LATENCY_BOUNDS 16
extern const double perfopt_latency_bounds[PERFOPT_LATENCY_BOUNDS];

typedef struct LatencyHistogram
{
	Oid			dbid;
	uint64		queryid;
	bool		toplevel;
	uint64		calls;
	double		sum_seconds;
	uint64		cumulative[PERFOPT_LATENCY_BOUNDS];
} LatencyHistogram;

extern void perfopt_latency_init(void);
extern void perfopt_latency_shmem_request(void);
extern void perfopt_latency_shmem_startup(void);
extern void perfopt_latency_skip_this_process(void);
extern bool perfopt_latency_available(void);
extern uint64 perfopt_latency_total_ns(Oid dbid, uint64 queryid);
extern bool perfopt_latency_of_query(Oid dbid, uint64 queryid,
									 LatencyFigures *figures);
extern List *perfopt_latency_since_last_call(int top_n, LatencyFigures *all);
extern List *perfopt_latency_histograms(int top_n, LatencyHistogram *all);

#endif							/* PERFOPT_LATENCY_H */
