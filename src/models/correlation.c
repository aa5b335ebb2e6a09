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
 * The metrics are read in one pass, in no order (sorting a day of every
 * series costs more than the rest of the call).  Each series' ranks are
 * centered on their mean, unknown changes count as the mean (zero), so a
 * correlation at a lag is one dot product over the overlap, divided by the
 * overlap's sums of squares, which prefix sums give at once.
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
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common/doubles.h"
#include "common/series.h"

PG_FUNCTION_INFO_V1(perfopt_metric_correlations);

/* the longest metric and entity, with a separator */
#define SERIES_KEY_LEN		512

/* the most series one call compares */
#define MAX_SERIES			200
/* the most buckets of the grid */
#define MAX_BUCKETS			20000
/* the largest lag, in steps */
#define MAX_LAG				60
/* the most multiply-adds one call may do (a few seconds on 2 busy cores) */
#define MAX_WORK			1.5e9
/* the most points one call reads (16 bytes each) */
#define MAX_POINTS			8000000
/* changes a series needs to be compared at all */
#define MIN_CHANGES			10
/* family-wise error rate of a call: the chance of reporting any unrelated pair */
#define ALPHA				0.01
/* rows fetched at a time */
#define FETCH_ROWS			10000

/* One series, as read and then on the grid */
typedef struct GridSeries
{
	char		key[SERIES_KEY_LEN];	/* metric, a 0x1f byte, entity */
	char	   *metric;
	char	   *entity;
	int			points;
	int			size;
	double	   *times;			/* seconds since the epoch, as read */
	double	   *values;
	double		first;
	double		last;
	double	   *rank;			/* centered rank of each change; 0 where unknown */
	double	   *squares;		/* prefix sums of rank^2: squares[b] sums 0..b-1 */
	bool	   *known;
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

/* Strongest first; then in the series' order, so that the output is stable */
static int
compare_pairs(const void *x, const void *y)
{
	const Pair *p = (const Pair *) x;
	const Pair *q = (const Pair *) y;
	double		a = fabs(p->rho);
	double		b = fabs(q->rho);

	if (a != b)
		return (a < b) - (a > b);
	if (p->a != q->a)
		return p->a - q->a;
	return p->b - q->b;
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
 * The correlation of the centered ranks of a at t and of b at t + lag, over
 * the overlap; NaN when either does not vary there.  *n gets how many
 * changes of both are known in it, when n is not NULL.
 */
static double
lagged_correlation(const GridSeries *a, const GridSeries *b, int len, int lag, int *n)
{
	int			from = Max(0, -lag);
	int			to = Min(len, len - lag);
	const double *x = a->rank;
	const double *y = b->rank + lag;
	double		sxy = 0;
	double		sxx,
				syy;

	if (to - from < 3)
		return NAN;
	for (int t = from; t < to; t++)
		sxy += x[t] * y[t];
	sxx = a->squares[to] - a->squares[from];
	syy = b->squares[to + lag] - b->squares[from + lag];
	if (n != NULL)
	{
		int			m = 0;

		for (int t = from; t < to; t++)
			m += a->known[t] && b->known[t + lag];
		*n = m;
	}
	if (sxx <= 0 || syy <= 0)
		return NAN;
	return sxy / sqrt(sxx * syy);
}

typedef struct SeriesEntry
{
	char		key[SERIES_KEY_LEN];
	int			index;
} SeriesEntry;

/* Write the key of (metric, entity) into key; false if it does not fit */
static bool
series_key(char *key, const text *metric, const text *entity)
{
	int			m = VARSIZE_ANY_EXHDR(metric);
	int			e = VARSIZE_ANY_EXHDR(entity);

	if (m + e + 2 > SERIES_KEY_LEN)
		return false;
	memcpy(key, VARDATA_ANY(metric), m);
	key[m] = 0x1f;
	memcpy(key + m + 1, VARDATA_ANY(entity), e);
	key[m + 1 + e] = '\0';
	return true;
}

static int
compare_series(const void *x, const void *y)
{
	return strcmp(((const GridSeries *) x)->key, ((const GridSeries *) y)->key);
}

/*
 * Read the finite points of the window, in one pass and in no order; a hash
 * table finds each row's series.  Returns the series in (metric, entity)
 * order.
 */
static int
read_series(Datum since, Datum until, bool until_null, Datum metrics, bool metrics_null,
			GridSeries **result)
{
	Oid			types[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTARRAYOID};
	Datum		args[3] = {since, until, metrics};
	char		nulls[3] = {' ', until_null ? 'n' : ' ', metrics_null ? 'n' : ' '};
	MemoryContext mine = CurrentMemoryContext;
	HASHCTL		ctl;
	HTAB	   *index;
	SPIPlanPtr	plan;
	Portal		portal;
	GridSeries *series = palloc0(MAX_SERIES * sizeof(GridSeries));
	int			nseries = 0;
	int64		total = 0;

	ctl.keysize = SERIES_KEY_LEN;
	ctl.entrysize = sizeof(SeriesEntry);
	ctl.hcxt = mine;
	index = hash_create("perfopt correlated series", MAX_SERIES, &ctl,
						HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

	plan = SPI_prepare("SELECT metric, entity, ts, value"
					   "  FROM perfopt.metrics"
					   " WHERE ts >= $1 AND ($2 IS NULL OR ts < $2)"
					   "   AND ($3 IS NULL OR metric = ANY ($3))"
					   "   AND value IS NOT NULL",
					   3, types);
	if (plan == NULL)
		elog(ERROR, "perfopt could not read perfopt.metrics: %s",
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, nulls, true);
	/* SPI leaves its own context current: what is kept goes into the caller's */
	MemoryContextSwitchTo(mine);
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
			bool		isnull;
			bool		found;
			char		key[SERIES_KEY_LEN];
			SeriesEntry *entry;
			GridSeries *s;
			double		v = DatumGetFloat8(SPI_getbinval(tuple, desc, 4, &isnull));

			if (!isfinite(v) ||
				!series_key(key,
							DatumGetTextPP(SPI_getbinval(tuple, desc, 1, &isnull)),
							DatumGetTextPP(SPI_getbinval(tuple, desc, 2, &isnull))))
				continue;
			entry = hash_search(index, key, HASH_ENTER, &found);
			if (!found)
			{
				if (nseries == MAX_SERIES)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("more than %d series of perfopt.metrics fall in the window, the most metric_correlations compares",
									MAX_SERIES),
							 errhint("Name the metrics to compare (the metrics argument), or shorten the window.")));
				entry->index = nseries++;
				s = &series[entry->index];
				strlcpy(s->key, key, SERIES_KEY_LEN);
				s->size = 64;
				s->times = palloc(s->size * sizeof(double));
				s->values = palloc(s->size * sizeof(double));
				s->first = INFINITY;
				s->last = -INFINITY;
			}
			s = &series[entry->index];
			if (++total > MAX_POINTS)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("more than %d points of perfopt.metrics fall in the window, the most metric_correlations reads",
								MAX_POINTS),
						 errhint("Name the metrics to compare (the metrics argument), or shorten the window.")));
			if (s->points == s->size)
			{
				s->size *= 2;
				s->times = repalloc_huge(s->times, s->size * sizeof(double));
				s->values = repalloc_huge(s->values, s->size * sizeof(double));
			}
			s->times[s->points] = perfopt_timestamptz_to_seconds(DatumGetTimestampTz(SPI_getbinval(tuple, desc, 3, &isnull)));
			s->values[s->points] = v;
			s->first = Min(s->first, s->times[s->points]);
			s->last = Max(s->last, s->times[s->points]);
			s->points++;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	hash_destroy(index);

	/* in (metric, entity) order, each split back into its names */
	qsort(series, nseries, sizeof(GridSeries), compare_series);
	for (int i = 0; i < nseries; i++)
	{
		char	   *sep = strchr(series[i].key, 0x1f);

		series[i].metric = pnstrdup(series[i].key, sep - series[i].key);
		series[i].entity = pstrdup(sep + 1);
	}
	*result = series;
	return nseries;
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
	double		spacings[MAX_SERIES];
	double	   *sum;
	int		   *count;
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
	nseries = read_series(since, until, until_null, metrics, metrics_null, &series);
	SPI_finish();

	/* the grid: the series' own spacing unless a step is given */
	for (int i = 0; i < nseries; i++)
	{
		if (series[i].points <= MIN_CHANGES)
			continue;
		spacings[usable++] = (series[i].last - series[i].first) / (series[i].points - 1);
		first = Min(first, series[i].first);
		last = Max(last, series[i].last);
	}
	if (usable < 2)
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(grid_context);
		return (Datum) 0;
	}
	if (step == 0)
	{
		qsort(spacings, usable, sizeof(double), perfopt_compare_doubles);
		step = Max(spacings[usable / 2], 0.001);
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
	tests = (double) usable * (usable - 1) / 2 * (2 * max_lag + 1);
	if (tests * buckets > MAX_WORK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("comparing %d series over %d steps at %d lags is too much work for one call",
						usable, buckets, 2 * max_lag + 1),
				 errhint("Name fewer metrics, give a larger step or a smaller max_lag, or shorten the window.")));
	sum = palloc(buckets * sizeof(double));
	count = palloc(buckets * sizeof(int));

	/* each series: its changes from bucket to bucket, ranked and centered */
	usable = 0;
	for (int i = 0; i < nseries; i++)
	{
		GridSeries *s = &series[i];
		bool		varies;
		double		mean = 0;

		s->changes = 0;
		if (s->points <= MIN_CHANGES)
			continue;
		memset(sum, 0, buckets * sizeof(double));
		memset(count, 0, buckets * sizeof(int));
		for (int p = 0; p < s->points; p++)
		{
			int			b = (int) floor((s->times[p] - origin) / step);

			if (b >= 0 && b < buckets)
			{
				sum[b] += s->values[p];
				count[b]++;
			}
		}
		pfree(s->times);
		pfree(s->values);
		for (int b = 0; b < buckets; b++)
			sum[b] = count[b] > 0 ? sum[b] / count[b] : NAN;
		s->rank = palloc(buckets * sizeof(double));
		s->rank[0] = NAN;
		for (int b = 1; b < buckets; b++)
			s->rank[b] = sum[b] - sum[b - 1];	/* NaN if either is */
		s->changes = rank_in_place(s->rank, buckets, &varies);
		if (!varies || s->changes < MIN_CHANGES)
		{
			s->changes = 0;
			continue;
		}
		usable++;
		s->known = palloc(buckets * sizeof(bool));
		s->squares = palloc((buckets + 1) * sizeof(double));
		mean = (s->changes + 1) / 2.0;
		s->squares[0] = 0;
		for (int b = 0; b < buckets; b++)
		{
			s->known[b] = !isnan(s->rank[b]);
			s->rank[b] = s->known[b] ? s->rank[b] - mean : 0;
			s->squares[b + 1] = s->squares[b] + s->rank[b] * s->rank[b];
		}
		s->acf = palloc0((max_lag + 1) * sizeof(double));
		for (int k = 1; k <= max_lag; k++)
		{
			double		r = lagged_correlation(s, s, buckets, k, NULL);

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
				double		r = lagged_correlation(&series[i], &series[j], buckets, k, NULL);

				if (!isnan(r) && fabs(r) > fabs(best.rho))
				{
					best.rho = r;
					best.lag = k;
				}
			}
			if (fabs(best.rho) < min_strength)
				continue;
			(void) lagged_correlation(&series[i], &series[j], buckets, best.lag, &best.n);
			if (best.n < MIN_CHANGES)
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
