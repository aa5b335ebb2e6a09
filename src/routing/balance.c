/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  Pure load-balancing algorithms (see balance.h).
 *
 * Routing.  route() hands one of four algorithms the instances that may
 * take traffic (not down, not draining):
 *   round_robin        the next one in turn;
 *   least_connections  the fewest connections plus requests routed since the
 *                      last health check, per unit of weight;
 *   weighted           in turn, each as often as its weight;
 *   adaptive           the lowest expected latency: the exponentially
 *                      weighted response time times (load + 1), plus a
 *                      penalty for replication lag.  This is the "peak EWMA"
 *                      idea of Finagle and Linkerd: the response time it
 *                      measures already includes the queue it found, and
 *                      the load term steers the next requests away from a
 *                      queue before it shows in the response time.
 * The confidence of a choice grows with the health checks behind it
 * (samples / (samples + 5)) and, for adaptive, with the gap between the best
 * and the second best expected latency.
 *
 * Affinity.  With a session key, rendezvous (highest random weight) hashing
 * picks the instance whose hash of (key, instance) scores highest, weighted
 * as in Resch's logarithmic method: -weight / ln(u).  Adding an instance
 * moves only the keys the new one now wins (about 1/N); removing one moves
 * only its own keys.
 *
 * Scaling.  The Kubernetes Horizontal Pod Autoscaler's rule: desired =
 * ceil(current * value / target), unchanged while value / target is within
 * the tolerance of 1.
 *
 * Simulation.  A Poisson request stream at load_factor times the fleet's
 * capacity goes through a router to single-server FIFO queues with
 * exponential service times; halfway through, each instance's capacity
 * becomes capacity_late (a slowdown nobody reconfigured the weights for).
 * The router sees what a real one sees: the requests it has outstanding on
 * each instance and the response times of those that completed.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/doubles.h"
#include "routing/balance.h"

/* splitmix64's finalizer: spreads every input bit over the output */
static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* FNV-1a over the bytes, seeded and finalized: a stable 64-bit hash */
uint64_t
perfopt_balance_hash(const char *data, int len, uint64_t seed)
{
	uint64_t	h = UINT64_C(0xcbf29ce484222325) ^ mix64(seed);

	for (int i = 0; i < len; i++)
	{
		h ^= (unsigned char) data[i];
		h *= UINT64_C(0x100000001b3);
	}
	return mix64(h);
}

/* Index of the instance that wins the key by weighted rendezvous hashing */
int
perfopt_rendezvous(const char *key, int keylen, const char *const *names,
				   const double *weights, int n)
{
	int			best = -1;
	double		best_score = -1.0;

	for (int i = 0; i < n; i++)
	{
		uint64_t	h = perfopt_balance_hash(key, keylen,
											 perfopt_balance_hash(names[i], (int) strlen(names[i]), 0));
		/* u in (0, 1) from the top 53 bits */
		double		u = ((double) (h >> 11) + 0.5) / 9007199254740992.0;
		double		score = -weights[i] / log(u);

		if (score > best_score)
		{
			best_score = score;
			best = i;
		}
	}
	return best;
}

/* Exponentially weighted moving average; a first sample is taken as is */
double
perfopt_ewma(double previous, double sample, double alpha)
{
	if (previous <= 0.0)
		return sample;
	return previous + alpha * (sample - previous);
}

/* Expected latency of sending one more request to the candidate */
double
perfopt_adaptive_cost(const BalanceCandidate *c)
{
	double		rt = c->ewma_ms > 0.0 ? c->ewma_ms : 1.0 / c->weight;

	return rt * (c->load + 1.0) + c->lag_penalty_ms;
}

/* How sure the health checks make us of one candidate */
static double
sample_confidence(const BalanceCandidate *c)
{
	return c->samples / (c->samples + 5.0);
}

/*
 * Pick one of n candidates with the algorithm; counter is a number that
 * grows by one per call (for the algorithms that take turns and to break
 * ties fairly).  Returns the index and sets *confidence in [0, 1].
 */
int
perfopt_balance_pick(int algorithm, const BalanceCandidate *c, int n,
					 uint64_t counter, double *confidence)
{
	int			best = 0;

	if (n <= 0)
		return -1;

	switch (algorithm)
	{
		case PERFOPT_ALGO_ROUND_ROBIN:
			best = (int) (counter % (uint64_t) n);
			break;

		case PERFOPT_ALGO_LEAST_CONNECTIONS:
			{
				double		best_load = INFINITY;

				for (int k = 0; k < n; k++)
				{
					int			i = (int) ((counter + k) % (uint64_t) n);
					double		load = c[i].load / c[i].weight;

					if (load < best_load)
					{
						best_load = load;
						best = i;
					}
				}
				break;
			}

		case PERFOPT_ALGO_WEIGHTED:
			{
				/* stride scheduling without state: slot s of the total */
				double		total = 0.0,
							slot;

				for (int i = 0; i < n; i++)
					total += c[i].weight;
				/* a golden-ratio sequence spreads one instance's turns */
				slot = fmod((double) counter * 0.6180339887498949, 1.0) * total;
				for (best = 0; best < n - 1; best++)
				{
					slot -= c[best].weight;
					if (slot < 0.0)
						break;
				}
				break;
			}

		case PERFOPT_ALGO_ADAPTIVE:
		default:
			{
				double		best_cost = INFINITY,
							second = INFINITY;

				for (int k = 0; k < n; k++)
				{
					int			i = (int) ((counter + k) % (uint64_t) n);
					double		cost = perfopt_adaptive_cost(&c[i]);

					if (cost < best_cost)
					{
						second = best_cost;
						best_cost = cost;
						best = i;
					}
					else if (cost < second)
						second = cost;
				}
				if (confidence)
				{
					double		gap = (n > 1 && isfinite(second) && second > 0.0)
						? (second - best_cost) / second : 1.0;

					*confidence = sample_confidence(&c[best]) * (0.5 + 0.5 * gap);
				}
				return best;
			}
	}

	if (confidence)
		*confidence = sample_confidence(&c[best]);
	return best;
}

/*
 * The HPA rule: replicas for the value to come back to the target, or the
 * current count while within the tolerance; clamped to [min, max].
 */
int
perfopt_hpa_desired(int current, double value, double target,
					double tolerance, int min_replicas, int max_replicas)
{
	double		ratio;
	int			desired;

	if (current < 1 || target <= 0.0 || !isfinite(value))
		desired = current < min_replicas ? min_replicas : current;
	else
	{
		ratio = value / target;
		if (fabs(ratio - 1.0) <= tolerance)
			desired = current;
		else
			desired = (int) ceil((double) current * ratio - 1e-9);
	}
	if (desired < min_replicas)
		desired = min_replicas;
	if (desired > max_replicas)
		desired = max_replicas;
	return desired;
}

/* xorshift64*: a small, seedable generator for the simulator */
static double
sim_uniform(uint64_t *state)
{
	uint64_t	x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return ((double) ((x * UINT64_C(2685821657736338717)) >> 11) + 0.5) / 9007199254740992.0;
}

/* The 95th percentile (nearest rank) of n values; sorts them */
static double
p95(double *v, long n)
{
	long		rank;

	if (n <= 0)
		return 0.0;
	qsort(v, (size_t) n, sizeof(double), perfopt_compare_doubles);
	rank = (long) ceil(0.95 * (double) n) - 1;
	return v[rank < 0 ? 0 : rank];
}

/* Bytes perfopt_simulate() needs as workspace */
size_t
perfopt_simulate_workspace(int n_requests, int n_instances)
{
	return (size_t) n_requests * (3 * sizeof(double) + 2 * sizeof(int))
		+ (size_t) n_instances * (2 * sizeof(int) + 2 * sizeof(double) + sizeof(BalanceCandidate)
								  + sizeof(long) + sizeof(double));
}

/*
 * Run n_requests through the fleet with the algorithm.  Fills each
 * instance's requests, overloads, busy time and p95, and returns the p95
 * response time of all requests and the time span simulated.
 */
void
perfopt_simulate(SimInstance *fleet, int k, int n, double load_factor,
				 int algorithm, uint64_t seed, void *workspace,
				 double *p95_ms, double *span_s)
{
	char	   *w = workspace;
	double	   *completion = (double *) w;
	double	   *response = completion + n;
	double	   *scratch = response + n;
	int		   *where = (int *) (scratch + n);
	int		   *next = where + n;
	int		   *head = next + n;
	int		   *tail = head + k;
	double	   *last_done = (double *) (tail + k);
	double	   *ewma = last_done + k;
	BalanceCandidate *cand = (BalanceCandidate *) (ewma + k);
	long	   *outstanding = (long *) (cand + k);
	double	   *seen = (double *) (outstanding + k);
	double		rate = 0.0,
				t = 0.0,
				half,
				span = 0.0;
	uint64_t	state = seed ? seed : 1;

	for (int i = 0; i < k; i++)
	{
		rate += fleet[i].capacity;
		fleet[i].requests = fleet[i].overloads = 0;
		fleet[i].busy_s = fleet[i].p95_ms = 0.0;
		head[i] = tail[i] = -1;
		last_done[i] = ewma[i] = seen[i] = 0.0;
		outstanding[i] = 0;
	}
	rate *= load_factor;
	half = (double) n / rate / 2.0;

	for (int r = 0; r < n; r++)
	{
		int			i;
		double		service,
					capacity;

		t += -log(sim_uniform(&state)) / rate;

		/* what the router has learnt by now: completed requests */
		for (i = 0; i < k; i++)
		{
			while (head[i] >= 0 && completion[head[i]] <= t)
			{
				ewma[i] = perfopt_ewma(ewma[i], response[head[i]] * 1000.0, 0.1);
				seen[i] += 1.0;
				outstanding[i]--;
				head[i] = next[head[i]];
			}
			if (head[i] < 0)
				tail[i] = -1;
			cand[i].weight = fleet[i].weight;
			cand[i].ewma_ms = ewma[i];
			cand[i].load = (double) outstanding[i];
			cand[i].lag_penalty_ms = 0.0;
			cand[i].samples = seen[i];
		}
		i = perfopt_balance_pick(algorithm, cand, k, (uint64_t) r, NULL);

		if (outstanding[i] >= PERFOPT_SIM_QUEUE_LIMIT)
			fleet[i].overloads++;
		capacity = t < half ? fleet[i].capacity : fleet[i].capacity_late;
		service = -log(sim_uniform(&state)) / capacity;
		completion[r] = (last_done[i] > t ? last_done[i] : t) + service;
		last_done[i] = completion[r];
		response[r] = completion[r] - t;
		where[r] = i;
		next[r] = -1;
		if (tail[i] >= 0)
			next[tail[i]] = r;
		else
			head[i] = r;
		tail[i] = r;
		outstanding[i]++;
		fleet[i].requests++;
		fleet[i].busy_s += service;
		if (completion[r] > span)
			span = completion[r];
	}

	for (int i = 0; i < k; i++)
	{
		long		m = 0;

		for (int r = 0; r < n; r++)
			if (where[r] == i)
				scratch[m++] = response[r] * 1000.0;
		fleet[i].p95_ms = p95(scratch, m);
	}
	memcpy(scratch, response, sizeof(double) * (size_t) n);
	*p95_ms = p95(scratch, n) * 1000.0;
	*span_s = span;
}
