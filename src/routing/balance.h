/*-------------------------------------------------------------------------
 *
 * balance.h
 *	  Pure load-balancing algorithms: rendezvous hashing, the instance
 *	  scores of the four routing algorithms, the HPA scaling formula and a
 *	  discrete-event simulator of a request stream.
 *
 * Pure C99: no PostgreSQL headers, no allocation, no global state, so that
 * the algorithms are easy to read and to test.  routing.c feeds them from
 * shared memory; simulate_requests() feeds the simulator.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_BALANCE_H
#define PERFOPT_BALANCE_H

#include <stdbool.h>
#include <stdint.h>

/* Routing algorithms */
#define PERFOPT_ALGO_ROUND_ROBIN		0
#define PERFOPT_ALGO_LEAST_CONNECTIONS	1
#define PERFOPT_ALGO_WEIGHTED			2
#define PERFOPT_ALGO_ADAPTIVE			3
#define PERFOPT_ALGO_COUNT				4

/* What an algorithm knows of one candidate instance */
typedef struct BalanceCandidate
{
	double		weight;			/* configured weight, > 0 */
	double		ewma_ms;		/* smoothed response time, 0 if unknown */
	double		load;			/* connections plus requests routed lately */
	double		lag_penalty_ms; /* expected extra latency from replication lag */
	double		samples;		/* health checks behind ewma_ms */
} BalanceCandidate;

extern uint64_t perfopt_balance_hash(const char *data, int len, uint64_t seed);
extern int	perfopt_rendezvous(const char *key, int keylen, const char *const *names,
							   const double *weights, int n);
extern double perfopt_ewma(double previous, double sample, double alpha);
extern double perfopt_adaptive_cost(const BalanceCandidate *c);
extern int	perfopt_balance_pick(int algorithm, const BalanceCandidate *c, int n,
								 uint64_t counter, double *confidence);
extern int	perfopt_hpa_desired(int current, double value, double target,
								double tolerance, int min_replicas, int max_replicas);

/* One instance of a simulated fleet, and what the simulation saw of it */
typedef struct SimInstance
{
	double		capacity;		/* requests per second it serves, first half */
	double		capacity_late;	/* ... second half (a slowdown, if lower) */
	double		weight;			/* the weight an operator configured */
	/* results */
	long		requests;
	long		overloads;		/* arrivals that found QUEUE_LIMIT waiting */
	double		busy_s;			/* time serving */
	double		p95_ms;
} SimInstance;

#define PERFOPT_SIM_QUEUE_LIMIT 8

extern size_t perfopt_simulate_workspace(int n_requests, int n_instances);
extern void perfopt_simulate(SimInstance *fleet, int n_instances, int n_requests,
							 double load_factor, int algorithm, uint64_t seed,
							 void *workspace, double *p95_ms, double *span_s);

#endif							/* PERFOPT_BALANCE_H */
