/*-------------------------------------------------------------------------
 *
 * histogram.c
 *	  Log-linear latency histograms in the manner of HdrHistogram.
 *
 * A bucket index is computed with one bit scan and two shifts (inline, in
 * histogram.h), so adding a duration costs a few instructions.  Quantiles
 * walk the cumulative counts and answer the midpoint of the bucket that
 * holds the wanted rank: with 64 buckets per power of two, that midpoint is
 * within 0.8% of every duration the bucket holds.  pg_stat_monitor's twenty
 * fixed buckets, by contrast, can only say in which of twenty ranges a
 * percentile falls.
 *
 * This file touches neither catalogs nor shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "port/pg_bitutils.h"

#include "metrics/histogram.h"

/* The smallest duration in a bucket, in nanoseconds */
uint64
histogram_bucket_low(int bucket)
{
	int			octave = bucket / HISTOGRAM_SUB_BUCKETS;
	int			sub = bucket % HISTOGRAM_SUB_BUCKETS;

	if (octave == 0)
		return (uint64) bucket;
	return (uint64) (HISTOGRAM_SUB_BUCKETS + sub) << (octave - 1);
}

/* One past the largest duration in a bucket, in nanoseconds */
uint64
histogram_bucket_high(int bucket)
{
	int			octave = bucket / HISTOGRAM_SUB_BUCKETS;

	if (octave == 0)
		return (uint64) bucket + 1;
	return histogram_bucket_low(bucket) + ((uint64) 1 << (octave - 1));
}

/*
 * The duration at quantile q: the midpoint of the bucket holding the value
 * of rank ceil(q * total), kept within the exact extremes seen.
 */
double
histogram_quantile(const uint64 *counts, uint64 total, double q,
				   uint64 min_ns, uint64 max_ns)
{
	uint64		rank;
	uint64		seen = 0;
	int			bucket;
	double		value;

	if (total == 0)
		return -1;

	rank = (uint64) ceil(q * (double) total);
	rank = Max(rank, 1);
	rank = Min(rank, total);

	for (bucket = 0; bucket < HISTOGRAM_BUCKETS; bucket++)
	{
		seen += counts[bucket];
		if (seen >= rank)
			break;
	}
	if (bucket == HISTOGRAM_BUCKETS)
		return (double) max_ns;	/* counts and total read at different times */

	if (bucket == HISTOGRAM_BUCKETS - 1)
		value = (double) max_ns;
	else
		value = ((double) histogram_bucket_low(bucket) +
				 (double) histogram_bucket_high(bucket) - 1) / 2.0;
	value = Max(value, (double) min_ns);
	value = Min(value, (double) max_ns);
	return value;
}
