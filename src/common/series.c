/*-------------------------------------------------------------------------
 *
 * series.c
 *	  Time series passed to SQL functions as two arrays.
 *
 * detect_anomalies() and forecast() take a series as an array of times and
 * an array of values of the same length, times in ascending order (what
 * array_agg(value ORDER BY ts) gives).  This file checks them and turns them
 * into the plain C arrays the detector and the forecaster read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/timestamp.h"

#include "common/series.h"

/* seconds from the Unix epoch to PostgreSQL's (2000-01-01) */
#define UNIX_TO_POSTGRES_SECONDS \
	((double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/* A timestamptz as seconds since the Unix epoch */
double
perfopt_timestamptz_to_seconds(TimestampTz t)
{
	return (double) t / USECS_PER_SEC + UNIX_TO_POSTGRES_SECONDS;
}

/* Seconds since the Unix epoch as a timestamptz, to the microsecond */
TimestampTz
perfopt_seconds_to_timestamptz(double seconds)
{
	return (TimestampTz) llround((seconds - UNIX_TO_POSTGRES_SECONDS) * USECS_PER_SEC);
}

/* Length of an interval in seconds, a month counting as 30 days */
double
perfopt_interval_seconds(const Interval *span)
{
	return (double) span->time / USECS_PER_SEC +
		(double) span->day * SECS_PER_DAY +
		(double) span->month * DAYS_PER_MONTH * SECS_PER_DAY;
}

/*
 * Check the arrays of a series function: one dimension each (hint says how
 * to build them), within the size limit, as many times as values.
 * Returns the number of points.
 */
int
perfopt_series_check_arrays(ArrayType *times, ArrayType *vals, const char *hint)
{
	int			ntimes,
				nvalues;

	if (ARR_NDIM(times) > 1 || ARR_NDIM(vals) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("times and vals must be one-dimensional arrays"),
				 errhint("%s", hint)));
	ntimes = ArrayGetNItems(ARR_NDIM(times), ARR_DIMS(times));
	nvalues = ArrayGetNItems(ARR_NDIM(vals), ARR_DIMS(vals));
	if (ntimes > PERFOPT_SERIES_MAX_POINTS || nvalues > PERFOPT_SERIES_MAX_POINTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a series may have at most %d points", PERFOPT_SERIES_MAX_POINTS),
				 errhint("Aggregate the points first, such as to minute or hourly means.")));
	if (ntimes != nvalues)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("times has %d elements but vals has %d", ntimes, nvalues),
				 errhint("Pass one time per value.")));
	return ntimes;
}

/*
 * Check times and vals and copy them out.  Times must be non-null, finite
 * and in ascending order; a null value becomes NaN (a gap).
 */
Series *
perfopt_series_from_arrays(ArrayType *times, ArrayType *vals)
{
	Series	   *series = palloc0(sizeof(Series));
	Datum	   *time_datums,
			   *value_datums;
	bool	   *time_nulls,
			   *value_nulls;
	int			ntimes,
				nvalues;

	(void) perfopt_series_check_arrays(times, vals,
									   "Build them with array_agg(ts ORDER BY ts) and array_agg(value ORDER BY ts).");

	deconstruct_array(times, TIMESTAMPTZOID, sizeof(TimestampTz), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &time_datums, &time_nulls, &ntimes);
	deconstruct_array(vals, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &value_datums, &value_nulls, &nvalues);

	Assert(ntimes == nvalues);
	series->n = ntimes;
	series->times = palloc(sizeof(double) * Max(ntimes, 1));
	series->stamps = palloc(sizeof(TimestampTz) * Max(ntimes, 1));
	series->values = palloc(sizeof(double) * Max(ntimes, 1));

	for (int i = 0; i < ntimes; i++)
	{
		TimestampTz t;

		if (time_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("times[%d] is null", i + 1),
					 errhint("Every value needs the time it was measured at.")));
		t = DatumGetTimestampTz(time_datums[i]);
		if (TIMESTAMP_NOT_FINITE(t))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("times[%d] is infinite", i + 1),
					 errhint("Pass finite times.")));
		if (i > 0 && t < series->stamps[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("times must be in ascending order, but times[%d] comes before times[%d]",
							i + 1, i),
					 errhint("Aggregate in time order: array_agg(ts ORDER BY ts), array_agg(value ORDER BY ts).")));
		series->stamps[i] = t;
		series->times[i] = perfopt_timestamptz_to_seconds(t);
		series->values[i] = value_nulls[i] ? NAN : DatumGetFloat8(value_datums[i]);
	}
	return series;
}
