/*-------------------------------------------------------------------------
 *
 * series.h
 *	  Time series passed to SQL functions as two arrays.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_SERIES_H
#define PERFOPT_SERIES_H

#include "datatype/timestamp.h"
#include "utils/array.h"

/* the most points a series passed as arrays may have */
#define PERFOPT_SERIES_MAX_POINTS	1000000

/* A series: n points, times in seconds since the Unix epoch (UTC) */
typedef struct Series
{
	int			n;
	double	   *times;
	TimestampTz *stamps;		/* the same times as given */
	double	   *values;			/* NaN where the value was NULL */
} Series;

extern int	perfopt_series_check_arrays(ArrayType *times, ArrayType *vals, const char *hint);
extern Series *perfopt_series_from_arrays(ArrayType *times, ArrayType *vals);
extern double perfopt_timestamptz_to_seconds(TimestampTz t);
extern TimestampTz perfopt_seconds_to_timestamptz(double seconds);
extern double perfopt_interval_seconds(const Interval *span);

#endif							/* PERFOPT_SERIES_H */
