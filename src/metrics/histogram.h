/*-------------------------------------------------------------------------
 *
 * histogram.h
 *	  Log-linear latency histograms with at most 1% relative error.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_HISTOGRAM_H
#define PERFOPT_HISTOGRAM_H

#include "c.h"

#include "port/pg_bitutils.h"

/*
 * Durations are recorded in nanoseconds.  Below 2^SUB_BUCKET_BITS ns every
 * value has a bucket of its own; above, each power of two is cut into
 * 2^SUB_BUCKET_BITS equal buckets, so a bucket is never wider than 1/64 of
 * its lower bound and its midpoint is within 0.8% of any value in it.
 * Durations of 2^HISTOGRAM_MAX_EXPONENT ns (about 2.4 hours) and more share
 * the last bucket.
 */
#define HISTOGRAM_SUB_BUCKET_BITS	6
#define HISTOGRAM_SUB_BUCKETS		(1 << HISTOGRAM_SUB_BUCKET_BITS)
#define HISTOGRAM_MAX_EXPONENT		43
#define HISTOGRAM_BUCKETS \
	(HISTOGRAM_SUB_BUCKETS * (HISTOGRAM_MAX_EXPONENT - HISTOGRAM_SUB_BUCKET_BITS + 1))

/*
 * The bucket a duration of value_ns nanoseconds falls into: inline, since
 * it runs for every statement perfopt times
 */
static inline int
histogram_bucket(uint64 value_ns)
{
	int			exponent;

	if (value_ns < HISTOGRAM_SUB_BUCKETS)
		return (int) value_ns;

	exponent = pg_leftmost_one_pos64(value_ns);
	if (exponent >= HISTOGRAM_MAX_EXPONENT)
		return HISTOGRAM_BUCKETS - 1;

	return HISTOGRAM_SUB_BUCKETS * (exponent - HISTOGRAM_SUB_BUCKET_BITS + 1) +
		(int) ((value_ns >> (exponent - HISTOGRAM_SUB_BUCKET_BITS)) - HISTOGRAM_SUB_BUCKETS);
}

extern uint64 histogram_bucket_low(int bucket);
extern uint64 histogram_bucket_high(int bucket);

/*
 * The value at quantile q (0..1) of counts[HISTOGRAM_BUCKETS] holding
 * total values, in nanoseconds, kept within [min_ns, max_ns]; -1 if empty.
 */
extern double histogram_quantile(const uint64 *counts, uint64 total,
								 double q, uint64 min_ns, uint64 max_ns);

#endif							/* PERFOPT_HISTOGRAM_H */
