/*-------------------------------------------------------------------------
 *
 * forecast_sql.c
 *	  forecast(): the forecaster of forecast.c over a series given as arrays.
 *
 * The forecaster works on values one step apart.  This file puts the
 * points on such a grid: the step is the one asked for, or else the median
 * interval between the points, and then, when that is finer than five
 * minutes, a multiple of it that divides a day (10-second samples become
 * 5-minute means).  A grid cell holds the mean of the points that fall into
 * it, or a gap.  Row h of the answer is for the time of the last cell plus
 * h steps.  The capacity job (perfopt.forecast_capacity, in SQL) calls the
 * same function on hourly means.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "models/forecast.h"
#include "common/doubles.h"
#include "common/series.h"

/*
 * At most this many forecast rows, this many grid cells of history before
 * the aggregation of an inferred step, and this many values forecast from.
 * The forecaster's workspace is about 9 doubles per value and it cannot be
 * interrupted, so these bound one call to some 50 MB and a few seconds.
 */
#define MAX_HORIZON_STEPS	100000
#define MAX_GRID_CELLS		1000000
#define MAX_FORECAST_VALUES	(2 * PERFOPT_FORECAST_MAX_VALUES)

PG_FUNCTION_INFO_V1(perfopt_forecast_sql);

/* The median of the positive intervals between points; 0 if there is none */
static double
median_interval(const Series *series)
{
	double	   *gaps = palloc(sizeof(double) * Max(series->n, 1));
	int			ngaps = 0;
	double		median;

	for (int i = 1; i < series->n; i++)
		if (series->times[i] > series->times[i - 1])
			gaps[ngaps++] = series->times[i] - series->times[i - 1];
	if (ngaps == 0)
		return 0;
	qsort(gaps, ngaps, sizeof(double), perfopt_compare_doubles);
	median = gaps[ngaps / 2];
	pfree(gaps);
	return median;
}

/*
 * forecast(times, vals, horizon, step): baseline and the bounds of an 80%
 * interval, one row per step over the horizon, with the confidence (0-100)
 * the series' backtest earned
 */
Datum
perfopt_forecast_sql(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Series	   *series;
	Interval   *horizon_arg;
	double		horizon_seconds,
				step;
	double		start,
				last_time;
	long		ncells;
	int			horizon,
				factor = 1;
	double	   *sums,
			   *cells;
	int		   *counts;
	PerfoptForecastSpec spec;
	PerfoptForecastInfo info;
	double	   *baseline,
			   *lower,
			   *upper;
	long		workspace_size;
	void	   *workspace;
	int			ret;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	series = perfopt_series_from_arrays(PG_GETARG_ARRAYTYPE_P(0),
										PG_GETARG_ARRAYTYPE_P(1));
	horizon_arg = PG_GETARG_INTERVAL_P(2);
	horizon_seconds = perfopt_interval_seconds(horizon_arg);
	if (!(horizon_seconds > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("horizon must be a positive interval"),
				 errhint("Pass how far ahead to forecast, such as interval '90 days'.")));

	if (series->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot forecast an empty series"),
				 errhint("Pass at least two points.")));

	if (!PG_ARGISNULL(3))
	{
		step = perfopt_interval_seconds(PG_GETARG_INTERVAL_P(3));
		if (!(step > 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("step must be a positive interval"),
					 errhint("Pass the spacing of the forecast, such as interval '1 hour', or leave it out.")));
	}
	else
	{
		step = median_interval(series);
		if (step == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot tell the step of a series whose points all have the same time"),
					 errhint("Pass points at two times at least, or pass step.")));
	}

	/* the grid: cell k holds the points nearest to start + k * step */
	start = series->times[0];
	last_time = series->times[series->n - 1];
	if ((last_time - start) / step + 1 > MAX_GRID_CELLS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the series spans more than %d steps of %g seconds",
						MAX_GRID_CELLS, step),
				 errhint("Pass a coarser step.")));
	ncells = (long) floor((last_time - start) / step + 0.5) + 1;
	sums = palloc0(sizeof(double) * ncells);
	counts = palloc0(sizeof(int) * ncells);
	cells = palloc(sizeof(double) * ncells);
	for (int i = 0; i < series->n; i++)
	{
		long		k = (long) floor((series->times[i] - start) / step + 0.5);

		if (isfinite(series->values[i]))
		{
			sums[k] += series->values[i];
			counts[k]++;
		}
	}
	for (long k = 0; k < ncells; k++)
		cells[k] = counts[k] > 0 ? sums[k] / counts[k] : NAN;

	/* fine samples of an inferred step: five-minute means or coarser */
	if (PG_ARGISNULL(3))
	{
		factor = perfopt_forecast_aggregation(step, (int) ncells);
		if (factor > 1)
		{
			ncells = perfopt_forecast_aggregate(cells, (int) ncells, factor, cells);
			step *= factor;
		}
	}

	if (ncells > MAX_FORECAST_VALUES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the series spans %ld steps of %g seconds, more than the %d perfopt forecasts from",
						ncells, step, MAX_FORECAST_VALUES),
				 errhint("Pass a coarser step, or leave it out to let perfopt choose one.")));

	if (horizon_seconds / step > MAX_HORIZON_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a horizon of %.0f steps of %g seconds is too long",
						ceil(horizon_seconds / step), step),
				 errhint("Forecast at most %d steps ahead: pass a coarser step or a shorter horizon.",
						 MAX_HORIZON_STEPS)));
	horizon = Max(1, (int) ceil(horizon_seconds / step - 1e-9));

	memset(&spec, 0, sizeof(spec));
	spec.nperiods = perfopt_forecast_periods(step, (int) ncells, spec.periods);
	workspace_size = perfopt_forecast_workspace_size((int) ncells, horizon, &spec);
	workspace = palloc_extended(workspace_size, MCXT_ALLOC_HUGE);
	baseline = palloc(sizeof(double) * horizon);
	lower = palloc(sizeof(double) * horizon);
	upper = palloc(sizeof(double) * horizon);

	ret = perfopt_forecast(cells, (int) ncells, horizon, &spec, workspace,
						   workspace_size, baseline, lower, upper, &info);
	if (ret == PERFOPT_FORECAST_NO_DATA)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot forecast a series without a finite value"),
				 errhint("Pass values that are not all null, NaN or infinite.")));
	if (ret != PERFOPT_FORECAST_OK)
		elog(ERROR, "forecaster refused its arguments (code %d)", ret);

	InitMaterializedSRF(fcinfo, 0);
	for (int h = 0; h < horizon; h++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		double		ts = start + (ncells - 1 + h + 1) * step;

		values[0] = TimestampTzGetDatum(perfopt_seconds_to_timestamptz(ts));
		values[1] = Float8GetDatum(baseline[h]);
		values[2] = Float8GetDatum(lower[h]);
		values[3] = Float8GetDatum(upper[h]);
		values[4] = Float8GetDatum(100.0 * info.confidence);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
