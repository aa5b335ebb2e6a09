/*-------------------------------------------------------------------------
 *
 * correlation.c
 *	  metric_correlations(): the pairs of series of perfopt.metrics that
 *	  move together over a window, with the lag by which one follows the
 *	  other and the strength.
 *
 * Levels of unrelated series correlate whenever both trend (the database
 * grows while the traffic rises over a morning), so the series are
 * compared by their changes: each series is put on a common grid of
 * buckets one step wide (the mean of its points in each), and its change
 * from one bucket to the next is ranked.  The strength of a pair at a lag
 * k is Spearman's rank correlation of the changes of a with the changes
 * of b k steps later (Pearson's on the ranks, ties sharing the average
 * rank, over the buckets where both are known); ranks make one huge spike
 * count as much as a large change and no more, so a single outage does not
 * make two series look related.  The lag of a pair is the one in
 * [-max_lag, max_lag] with the strongest correlation; a positive lag means
 * a moved first.
 *
 * A pair is reported when its strength reaches min_strength and it is
 * significant: under independence a rank correlation over n changes has a
 * standard error of about 1/sqrt(n), inflated by the changes'
 * autocorrelation (Bartlett: by 1 + 2 sum rho_a(k) rho_b(k)); the p-value
 * is multiplied by the number of pairs and lags tried (Bonferroni), and
 * must stay under ALPHA.  So the more series and lags are compared, the
 * stronger a pair must be to be reported, and an unrelated pair is
 * reported in at most one call in a hundred.
 *
 * The work is pairs x lags x buckets multiply-adds; each of the three is
 * bounded, and so is their product, with an error that says what to narrow.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common/series.h"

PG_FUNCTION_INFO_V1(perfopt_metric_correlations);

/* the most series one call compares */
#define MAX_SERIES			200
/* the most buckets of the grid */
#define MAX_BUCKETS			20000
/* the largest lag, in steps */
#define MAX_LAG				60
/* the most multiply-adds one call may do (about a second here) */
#define MAX_WORK			1.5e9
/* changes a series needs to be compared at all */
#define MIN_CHANGES			10
/* family-wise error rate of a call: the chance of reporting any unrelated pair */
#define ALPHA				0.01
/* rows fetched at a time */
#define FETCH_ROWS			10000

/* One series on the grid */
typedef struct GridSeries
{
	char	   *metric;
	char	   *entity;
	int64		points;
	double		first;			/* seconds since the epoch */
	double		last;
	double	   *sum;			/* per bucket, then the mean */
	int		   *count;
	double	   *rank;			/* rank of each change; NaN where unknown */
	int			changes;
	double	   *acf;			/* autocorrelation of the ranks, lags 1..max_lag */
} GridSeries;

/* A pair found */
typedef struct Pair
{
	int			a;
	int			b;
	int			lag;			/* steps by which b follows a */
	double		rho;
	int			n;
	double		p;
} Pair;

static int
compare_double_index(const void *x, const void *y, void *arg)
{
	const double *v = (const double *) arg;
	double		a = v[*(const int *) x];
	double		b = v[*(const int *) y];

	return (a > b) - (a < b);
}

static int
compare_doubles(const void *x, const void *y)
{
	double		a = *(const double *) x;
	double		b = *(const double *) y;

	return (a > b) - (a < b);
}

static int
compare_pairs(const void *x, const void *y)
{
	double		a = fabs(((const Pair *) x)->rho);
	double		b = fabs(((const Pair *) y)->rho);

	return (a < b) - (a > b);
}

/*
 * Rank the known values of v[0..n-1] in place (ties share their average
 * rank, NaN stays NaN); returns how many were known, and false in *varies
 * when they were all equal.
 */
static int
rank_in_place(double *v, int n, bool *varies)
{
	int		   *order = palloc(n * sizeof(int));
	double	   *copy = palloc(n * sizeof(double));
	int			known = 0;

	for (int i = 0; i < n; i++)
	{
		copy[i] = v[i];
		if (!isnan(v[i]))
			order[known++] = i;
	}
	qsort_arg(order, known, sizeof(int), compare_double_index, copy);
	*varies = known > 0 && copy[order[0]] != copy[order[known - 1]];
	for (int i = 0; i < known;)
	{
		int			j = i;

		while (j + 1 < known && copy[order[j + 1]] == copy[order[i]])
			j++;
		for (int k = i; k <= j; k++)
			v[order[k]] = (i + j) / 2.0 + 1;
		i = j + 1;
	}
	pfree(order);
	pfree(copy);
	return known;
}

/*
 * Pearson's correlation of x[t] and y[t + lag] over the t where both are
 * known; *n gets how many there were.  NaN when either does not vary.
 */
static double
lagged_correlation(const double *x, const double *y, int len, int lag, int *n)
{
	double		sx = 0,
				sy = 0,
				sxx = 0,
				syy = 0,
				sxy = 0;
	int			m = 0;
	int			from = Max(0, -lag);
	int			to = Min(len, len - lag);
	double		vx,
				vy;

	for (int t = from; t < to; t++)
	{
		double		a = x[t];
		double		b = y[t + lag];

		if (isnan(a) || isnan(b))
			continue;
		sx += a;
		sy += b;
		sxx += a * a;
		syy += b * b;
		sxy += a * b;
		m++;
	}
	*n = m;
	if (m < 3)
		return NAN;
	vx = sxx - sx * sx / m;
	vy = syy - sy * sy / m;
	if (vx <= 0 || vy <= 0)
		return NAN;
	return (sxy - sx * sy / m) / sqrt(vx * vy);
}

/* The (metric, entity) pairs in the window, and their spans, into series */
static int
list_series(Datum since, Datum until, bool until_null, Datum metrics, bool metrics_null,
			GridSeries **series)
{
	Oid			types[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTARRAYOID};
	Datum		args[3] = {since, until, metrics};
	char		nulls[3] = {' ', until_null ? 'n' : ' ', metrics_null ? 'n' : ' '};
	MemoryContext mine = CurrentMemoryContext;
	int			ret;
	int			n;

	ret = SPI_execute_with_args("SELECT metric, entity, count(*)::int8,"
								"       extract(epoch FROM min(ts))::float8, extract(epoch FROM max(ts))::float8"
								"  FROM perfopt.metrics"
								" WHERE ts >= $1 AND ($2 IS NULL OR ts < $2)"
								"   AND ($3 IS NULL OR metric = ANY ($3))"
								"   AND value IS NOT NULL AND value <> 'NaN'"
								"   AND value > '-Infinity' AND value < 'Infinity'"
								" GROUP BY metric, entity HAVING count(*) > " CppAsString2(MIN_CHANGES)
								" ORDER BY metric COLLATE \"C\", entity COLLATE \"C\"",
								3, types, args, nulls, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "perfopt could not list the series of perfopt.metrics: %s",
			 SPI_result_code_string(ret));
	/* SPI leaves its own context current: what is kept goes into the caller's */
	MemoryContextSwitchTo(mine);
	n = (int) SPI_processed;
	if (n > MAX_SERIES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%d series of perfopt.metrics fall in the window, more than the %d metric_correlations compares",
						n, MAX_SERIES),
				 errhint("Name the metrics to compare (the metrics argument), or shorten the window.")));
	*series = palloc0(Max(n, 1) * sizeof(GridSeries));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		GridSeries *s = &(*series)[i];

		s->metric = SPI_getvalue(tuple, desc, 1);
		s->entity = SPI_getvalue(tuple, desc, 2);
		s->points = DatumGetInt64(SPI_getbinval(tuple, desc, 3, &isnull));
		s->first = DatumGetFloat8(SPI_getbinval(tuple, desc, 4, &isnull));
		s->last = DatumGetFloat8(SPI_getbinval(tuple, desc, 5, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/* Add the points of the series into their buckets of the grid */
static void
fill_grid(Datum since, Datum until, bool until_null, Datum metrics, bool metrics_null,
		  GridSeries *series, int nseries, double origin, double step, int buckets)
{
	Oid			types[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTARRAYOID};
	Datum		args[3] = {since, until, metrics};
	char		nulls[3] = {' ', until_null ? 'n' : ' ', metrics_null ? 'n' : ' '};
	MemoryContext mine = CurrentMemoryContext;
	SPIPlanPtr	plan;
	Portal		portal;
	int			current = 0;

	plan = SPI_prepare("SELECT metric, entity, extract(epoch FROM ts)::float8, value"
					   "  FROM perfopt.metrics"
					   " WHERE ts >= $1 AND ($2 IS NULL OR ts < $2)"
					   "   AND ($3 IS NULL OR metric = ANY ($3))"
					   "   AND value IS NOT NULL AND value <> 'NaN'"
					   "   AND value > '-Infinity' AND value < 'Infinity'"
					   " ORDER BY metric COLLATE \"C\", entity COLLATE \"C\"",
					   3, types);
	if (plan == NULL)
		elog(ERROR, "perfopt could not read perfopt.metrics: %s",
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, nulls, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		MemoryContextSwitchTo(mine);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *metric = SPI_getvalue(tuple, desc, 1);
			char	   *entity = SPI_getvalue(tuple, desc, 2);
			bool		isnull;
			double		t;
			double		v;
			int			b;

			/* both lists are in (metric, entity) byte order (COLLATE "C", as strcmp): advance to the row's */
			while (current < nseries &&
				   (strcmp(series[current].metric, metric) < 0 ||
					(strcmp(series[current].metric, metric) == 0 &&
					 strcmp(series[current].entity, entity) < 0)))
				current++;
			if (current >= nseries ||
				strcmp(series[current].metric, metric) != 0 ||
				strcmp(series[current].entity, entity) != 0)
			{
				pfree(metric);
				pfree(entity);
				continue;		/* a series too short to compare */
			}
			t = DatumGetFloat8(SPI_getbinval(tuple, desc, 3, &isnull));
			v = DatumGetFloat8(SPI_getbinval(tuple, desc, 4, &isnull));
			b = (int) floor((t - origin) / step);
			if (b < 0 || b >= buckets)
				continue;
			series[current].sum[b] += v;
			series[current].count[b]++;
			pfree(metric);
			pfree(entity);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
}

/*
 * perfopt.metric_correlations(since, until, step, max_lag, min_strength,
 * metrics): one row per pair that moves together.
 */
Datum
perfopt_metric_correlations(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		since;
	Datum		until = PG_GETARG_DATUM(1);
	bool		until_null = PG_ARGISNULL(1);
	Datum		metrics = PG_GETARG_DATUM(5);
	bool		metrics_null = PG_ARGISNULL(5);
	int			max_lag = PG_ARGISNULL(3) ? 10 : PG_GETARG_INT32(3);
	double		min_strength = PG_ARGISNULL(4) ? 0.3 : PG_GETARG_FLOAT8(4);
	double		step;
	GridSeries *series;
	int			nseries;
	int			usable = 0;
	double		first = INFINITY,
				last = -INFINITY;
	double		origin;
	double		span;
	int			buckets;
	double		tests;
	Pair	   *pairs;
	int			npairs = 0;
	MemoryContext grid_context;
	MemoryContext old;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("metric_correlations needs the start of its window"),
				 errhint("Give since, or leave it out for the last day.")));
	since = PG_GETARG_DATUM(0);
	if (!until_null && DatumGetTimestampTz(until) <= DatumGetTimestampTz(since))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the window of metric_correlations ends before it starts"),
				 errhint("Give an until later than since, or NULL for now.")));
	if (max_lag < 0 || max_lag > MAX_LAG)
		ereport(ERROR,
				(errcode(max_lag > MAX_LAG ? ERRCODE_PROGRAM_LIMIT_EXCEEDED :
						 ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_lag must be between 0 and %d steps, not %d", MAX_LAG, max_lag),
				 errhint("Give a larger step to look further apart.")));
	if (!(min_strength >= 0 && min_strength <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_strength must be between 0 and 1, not %g", min_strength),
				 errhint("It is the absolute rank correlation a pair must reach.")));
	if (!metrics_null && array_contains_nulls(DatumGetArrayTypeP(metrics)))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the metrics to compare must not contain NULL"),
				 errhint("Name each metric, or pass NULL for all of them.")));
	if (!PG_ARGISNULL(2))
	{
		step = perfopt_interval_seconds(PG_GETARG_INTERVAL_P(2));
		if (!(step >= 0.001))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("step must be positive"),
					 errhint("Give the sampling interval, or NULL to take the series' own.")));
	}
	else
		step = 0;

	InitMaterializedSRF(fcinfo, 0);
	grid_context = AllocSetContextCreate(CurrentMemoryContext, "perfopt metric correlation grid",
										 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(grid_context);

	/* what SPI reads is kept in grid_context, past SPI_finish */
	SPI_connect();
	MemoryContextSwitchTo(grid_context);
	nseries = list_series(since, until, until_null, metrics, metrics_null, &series);
	if (nseries < 2)
	{
		SPI_finish();
		MemoryContextSwitchTo(old);
		MemoryContextDelete(grid_context);
		return (Datum) 0;
	}

	/* the grid: the series' own spacing unless a step is given */
	if (step == 0)
	{
		double	   *spacing = palloc(nseries * sizeof(double));

		for (int i = 0; i < nseries; i++)
			spacing[i] = (series[i].last - series[i].first) / (series[i].points - 1);
		qsort(spacing, nseries, sizeof(double), compare_doubles);
		step = Max(spacing[nseries / 2], 0.001);
	}
	for (int i = 0; i < nseries; i++)
	{
		first = Min(first, series[i].first);
		last = Max(last, series[i].last);
	}
	/* points sampled every step fall in the middles of the buckets */
	origin = first - step / 2;
	span = floor((last - origin) / step) + 1;
	if (span > MAX_BUCKETS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the window holds %.0f steps of %g s, more than the %d metric_correlations compares",
						span, step, MAX_BUCKETS),
				 errhint("Give a larger step, or shorten the window.")));
	buckets = (int) span;
	tests = (double) nseries * (nseries - 1) / 2 * (2 * max_lag + 1);
	if (tests * buckets > MAX_WORK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("comparing %d series over %d steps at %d lags is too much work for one call",
						nseries, buckets, 2 * max_lag + 1),
				 errhint("Name fewer metrics, give a larger step or a smaller max_lag, or shorten the window.")));
	for (int i = 0; i < nseries; i++)
	{
		series[i].sum = palloc0(buckets * sizeof(double));
		series[i].count = palloc0(buckets * sizeof(int));
	}
	fill_grid(since, until, until_null, metrics, metrics_null, series, nseries,
			  origin, step, buckets);
	SPI_finish();

	/* each series: its changes from bucket to bucket, ranked */
	for (int i = 0; i < nseries; i++)
	{
		GridSeries *s = &series[i];
		bool		varies;

		for (int b = 0; b < buckets; b++)
			s->sum[b] = s->count[b] > 0 ? s->sum[b] / s->count[b] : NAN;
		s->rank = palloc(buckets * sizeof(double));
		s->rank[0] = NAN;
		for (int b = 1; b < buckets; b++)
			s->rank[b] = s->sum[b] - s->sum[b - 1];	/* NaN if either is */
		s->changes = rank_in_place(s->rank, buckets, &varies);
		if (!varies || s->changes < MIN_CHANGES)
		{
			s->changes = 0;
			continue;
		}
		usable++;
		s->acf = palloc0((max_lag + 1) * sizeof(double));
		for (int k = 1; k <= max_lag; k++)
		{
			int			n;
			double		r = lagged_correlation(s->rank, s->rank, buckets, k, &n);

			s->acf[k] = isnan(r) ? 0 : r;
		}
	}

	/* every pair at every lag; the strongest lag of each */
	tests = (double) usable * (usable - 1) / 2 * (2 * max_lag + 1);
	pairs = palloc(Max(usable * (usable - 1) / 2, 1) * sizeof(Pair));
	for (int i = 0; i < nseries; i++)
	{
		if (series[i].changes == 0)
			continue;
		for (int j = i + 1; j < nseries; j++)
		{
			Pair		best = {i, j, 0, 0, 0, 1};
			double		inflation = 1;
			double		z;

			if (series[j].changes == 0)
				continue;
			CHECK_FOR_INTERRUPTS();
			for (int k = -max_lag; k <= max_lag; k++)
			{
				int			n;
				double		r = lagged_correlation(series[i].rank, series[j].rank, buckets, k, &n);

				if (!isnan(r) && fabs(r) > fabs(best.rho))
				{
					best.rho = r;
					best.lag = k;
					best.n = n;
				}
			}
			if (best.n < MIN_CHANGES || fabs(best.rho) < min_strength)
				continue;
			/* Bartlett: autocorrelated changes make a chance correlation larger */
			for (int k = 1; k <= max_lag && k < best.n / 4; k++)
				inflation += 2 * series[i].acf[k] * series[j].acf[k];
			inflation = Max(inflation, 1);
			z = fabs(best.rho) * sqrt((best.n - 1) / inflation);
			best.p = Min(1, erfc(z / M_SQRT2) * tests);
			if (best.p >= ALPHA)
				continue;
			if (best.lag < 0)
			{
				best.a = j;
				best.b = i;
				best.lag = -best.lag;
			}
			pairs[npairs++] = best;
		}
	}
	qsort(pairs, npairs, sizeof(Pair), compare_pairs);

	MemoryContextSwitchTo(old);
	for (int p = 0; p < npairs; p++)
	{
		Datum		values[8];
		bool		nulls[8] = {false};
		GridSeries *a = &series[pairs[p].a];
		GridSeries *b = &series[pairs[p].b];
		Interval   *lag = palloc0(sizeof(Interval));

		lag->time = (int64) llround(pairs[p].lag * step * USECS_PER_SEC);
		values[0] = CStringGetTextDatum(a->metric);
		values[1] = CStringGetTextDatum(a->entity);
		values[2] = CStringGetTextDatum(b->metric);
		values[3] = CStringGetTextDatum(b->entity);
		values[4] = IntervalPGetDatum(lag);
		values[5] = Float8GetDatum(pairs[p].rho);
		values[6] = Int32GetDatum(pairs[p].n);
		values[7] = Float8GetDatum(pairs[p].p);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	MemoryContextDelete(grid_context);
	return (Datum) 0;
}
