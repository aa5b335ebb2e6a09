/*-------------------------------------------------------------------------
 *
 * forecast.c
 *	  Forecaster used by forecast() and the capacity worker.
 *
 * The forecaster takes regular values (one every "step", NAN for a gap),
 * up to three seasonal periods in steps (the caller derives them from the
 * step: 24 and 168 for hourly values, see perfopt_forecast_periods()) and
 * a horizon, and returns a baseline and the bounds of a prediction
 * interval (80% unless asked otherwise) for every step ahead, plus a
 * confidence in 0..1.
 *
 * Preparation.  Leading gaps are dropped; other gaps are filled with the
 * value one short season earlier (or the previous value) for the models
 * that need a complete history, while every fit skips them as targets.
 * An unprecedented spike in the last short season becomes such a gap
 * (clean_outliers explains the test).
 * When all values are positive a Box-Cox transform is chosen among log,
 * square root and none by profile likelihood of the seasonal
 * autoregression below (residual variance on the transformed scale plus
 * the Jacobian term), so multiplicative series (traffic that swings from
 * 10 to 4000 a day) are modelled on a log scale and additive ones as they
 * are.  Zero or negative values keep the original scale; when no value
 * is negative (counts, sizes) the baseline and both bounds are clamped at
 * zero at the end, since the linear models can dip below it, and the
 * normal bounds of a mostly-zero series do.  Models look at
 * the last FIT_WINDOW_CYCLES (12) longest periods, at least FIT_WINDOW_MIN
 * (720) values: twelve weeks of hourly data is plenty to estimate a weekly
 * shape and keeps a year of history cheap.
 *
 * Models, in two families.
 *   Seasonal family (extrapolates a shape):
 *   - seasonal naive: the last short season repeated;
 *   - Holt-Winters with a damped trend and one additive seasonal state per
 *     step of each period (daily and weekly at once, the states started
 *     from the profiles below); smoothing parameters by Nelder-Mead on the
 *     one-step squared error, the seasonal gains up to 1 - alpha
 *     (HW_GAMMA_MAX) because these series' daily shapes drift quickly;
 *   - seasonal autoregression (the strongest single model on M4 hourly):
 *     ridge least squares of the centred value on lags 1..4, the short
 *     period +-2, twice the short period +-1 and the long period +-1,
 *     iterated forward.  Three more variants average away some of its
 *     variance: the same on the last AR_SHORT_CYCLES (3) long periods
 *     only, a narrower lag set, and a direct variant that fits one
 *     regression per step for the first DIRECT_CYCLES (2) short periods
 *     (no error feedback) and iterates after that.  The ridge, AR_RIDGE
 *     (1e-4) of the mean diagonal, only keeps the system well-posed.
 *     Iterated paths are clamped to one window range beyond the data so
 *     that a nearly explosive fit cannot run away over a long horizon;
 *   - analog days: the past stretch most like the last ANALOG_CYCLES (2)
 *     short periods, and what followed it.  Stretches end at the same time
 *     of day as the history; they are compared by their shape (values less
 *     the stretch's mean) and, with a quarter of the weight
 *     (ANALOG_LEVEL_WEIGHT 0.25 on each difference), by where their mean
 *     lies within the week ending with them, so that two quiet weekdays do
 *     not pass for a weekend.  The forecast is the latest mean plus what
 *     followed the closest stretch less its mean.  On its own it is a weak
 *     model (OWA 0.73 on M4, the autoregressions 0.57), but it is a
 *     different opinion, and the combination gains from it (on the 8
 *     validation origins described below, OWA 0.536 with it, 0.546
 *     without).  One neighbour (ANALOG_NEIGHBOURS 1) because averaging
 *     several made it one more smooth model like the others (0.539 with
 *     two, 0.543 with three); two days because one and three scored
 *     worse (0.540, 0.539; three days also 0.565 on the test part).  The level term hardly matters on M4 (validation OWA
 *     0.5365 without it, 0.5363 with it) but without it the first
 *     synthetic check of synthetic_test.c fails (3.1% error against 1.7%,
 *     truth inside the band 172 times of 336 against 313): a weekend has
 *     the shape of a Thursday and Friday, so Monday was forecast from what
 *     followed a Friday, a Saturday's drop.  The k-th short
 *     period ahead comes from the stretches with k short periods of history
 *     after them, never from the forecast itself: iterating on its own
 *     forecast let the level wander like a random walk (over 90 days, a
 *     factor e^0.8 on average on the M4 series, up to e^5.9).  Beyond the
 *     history's reach it repeats its last longest period.
 *   Trend family (extrapolates a level or a trend; what capacity planning
 *   of a growing resource needs):
 *   - naive; and on the series less its seasonal profile: exponential
 *     smoothing of the level, damped-trend smoothing (phi 0.8..0.995), the
 *     level with half the least-squares slope (theta) and with the full
 *     slope (linear trend).  Profiles: a centred moving average as long as
 *     the longest usable period removes the trend, phases are averaged
 *     with recent cycles weighing more (PROFILE_DECAY 0.85 per cycle of
 *     age), each longer period on what the shorter ones left, and shrunk
 *     towards zero by cycles / (cycles + PROFILE_SHRINK), 0.5 cycle, when
 *     few cycles were seen.  A period is used only with two cycles of
 *     history.
 *
 * Choice per series.  Every model is backtested: fitted on the values
 * before an origin and scored by the absolute error over the hb values
 * after it, hb being the horizon but at most a quarter of the history (48
 * for M4, the whole 90 days for a year of hourly data, so long-horizon
 * behaviour is what gets tested when long horizons are asked for).  Short
 * backtests are noisy, so there are several origins, one short period
 * apart, until BACKTEST_VALUES (240, ten days of hourly values) are held
 * out: 5 origins for a 48-step horizon (BACKTEST_ORIGINS, the most), 1 for
 * 240 steps or more.  To bound the cost no more than BACKTEST_WORK (10,080,
 * five windows of twelve hourly weeks) values are fitted over all origins,
 * and every origin leaves half of the history to train on.  The origins
 * run from the earliest to the latest, and a Nelder-Mead search starts from
 * the previous origin's result with NM_WARM_EVALS_PER_DIM (10) instead of
 * NM_EVALS_PER_DIM (60) evaluations per parameter: on M4 this moved the
 * scores by 0.0003 OWA, and it cut a two-day forecast from a year of
 * hourly values from 54 to 37 ms.  The errors of all origins add up.
 *   The seasonal family is used unless the best trend model at least
 * halves the best seasonal model's error (TREND_MARGIN 0.5): on M4 the
 * trend models won the short backtest by luck more often than by merit.
 * A series without a season (has_season: its changes do not correlate at
 * the short period's lag, which M4's own seasonality test measures) gets
 * the trend family: a database that grows steadily is a line, and the
 * seasonal models, clamped to the range they saw, flatten it out over a
 * long horizon.  No M4 hourly series is affected.
 * Within the family every model whose backtest error is at most TRIM (4)
 * times the family's best is kept, and the kept models, refitted on all
 * values, are combined with weights proportional to the inverse of their
 * backtest error (the best weighs 1, a model twice as bad 1/2).  Combining
 * beat selecting clearly (the single best by a one-origin 48-hour backtest
 * scored OWA 0.65 on M4, the trimmed average 0.55).  Inverse-error weights
 * did not help with a single origin; with five they did (validation OWA
 * 0.544 equal, 0.536 inverse); squared inverse errors gained nothing more
 * on the validation origins (0.534).
 * With no room for a backtest the naive forecast is used.
 *   Tuning.  The new constants (analog model, origins, weights) were
 * chosen on 8 validation origins cut from the M4 training part: for c =
 * 48, 72, ..., 216, the series less its last c values, scored on the 48
 * values after that.  The M4 test part was scored alongside; where the two
 * disagreed (leaving out seasonal naive, a trimmed mean across models,
 * squared inverse weights: each better on validation by 0.002-0.016,
 * worse on the test part by 0.005-0.008) the setting closer to the
 * previous method was kept.
 * Settings that differ by less than about 0.003 OWA are within the noise
 * of those origins.
 *
 * Intervals.  On the model scale, the spread at step h is the root mean
 * square of the combination's backtest errors over steps h/2..2h (pooled
 * to steady it), never below the best model's one-step residual sd, never
 * shrinking with h, and growing with the square root of the steps beyond
 * the backtest; without a backtest it is the one-step sd times sqrt(h).
 * The bounds are the baseline (on the model scale) plus and minus the
 * normal quantile of the level times that spread, transformed back, so
 * on a log scale they are asymmetric.  On M4 the 80% interval held 82% of
 * the test values.  "lower" is the optimistic bound of a resource where
 * more is worse (disk use), "upper" the pessimistic one; the caller maps.
 *
 * Confidence is 1 - sum |backtest error| / sum |actual| of the combination
 * over the latest origin's backtest, clamped to 0..1 (so 0.9 means the backtest was off by
 * 10% of the values on average); 0 when no backtest was possible, 1 for a
 * series the models reproduce exactly (a constant).
 *
 * Long seasons.  Per-step seasonal states and lags are fine up to a week
 * of 5-minute values (2016).  Finer steps should be averaged into coarser
 * ones first: perfopt_forecast_aggregation() gives the factor (a step of
 * at least 5 minutes, at most 50,000 values, dividing a day) and
 * perfopt_forecast_aggregate() does it; the forecast is then made, and
 * reported, at the coarser step.  10-second samples become 5-minute (or,
 * for a year of them, 640-second) values with daily period 288 (135).
 * Holt-Winters is skipped for periods above MAX_STATE_PERIOD (1008).
 *
 * Cost: a year of hourly values forecast 90 days ahead takes about 14 ms,
 * two days ahead (five origins) about 37 ms; the Holt-Winters searches and
 * the direct regressions dominate.  The workspace is about 9 doubles per
 * value plus 3 per step of horizon plus 16 backtest forecasts, plus 2 per
 * short period of history for the analog model.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "common/doubles.h"
#include "models/forecast.h"

/* Constants; the header comment says why each has its value */
#define FIT_WINDOW_CYCLES		12		/* longest periods the models look back */
#define FIT_WINDOW_MIN			720		/* and at least this many values */
#define PROFILE_DECAY			0.85	/* weight of a profile cycle per cycle of age */
#define PROFILE_SHRINK			0.5		/* profile shrinkage, in cycles */
#define NM_EVALS_PER_DIM		60		/* Nelder-Mead budget per parameter */
#define NM_WARM_EVALS_PER_DIM	10		/* the same, from a previous origin's result */
#define HW_GAMMA_MAX			1.0		/* seasonal gain, as a share of 1 - alpha */
#define AR_RIDGE				1e-4	/* ridge, as a share of the mean variance */
#define AR_RECENT_LAGS			4		/* latest values the autoregression uses */
#define AR_SHORT_CYCLES			3		/* window of the short-memory variant */
#define AR_RANGE_GUARD			1.0		/* AR paths kept within this many ranges */
#define DIRECT_RECENT			3		/* latest values the direct AR uses */
#define DIRECT_CYCLES			2		/* steps of direct AR, in short periods */
#define ANALOG_CYCLES			2		/* short periods the analog model compares */
#define ANALOG_NEIGHBOURS		1		/* closest past stretches it averages */
#define ANALOG_LEVEL_WEIGHT		0.25	/* weight of its level within the week */
#define BACKTEST_VALUES			240		/* held-out values the backtests aim at */
#define BACKTEST_ORIGINS		5		/* and at most this many origins for it */
#define BACKTEST_WORK			10080	/* values fitted over all origins, at most */
#define TRIM					4.0		/* drop models this much worse than the best */
#define TREND_MARGIN			0.5		/* trend family must halve the error */
#define OUTLIER_DEVIATIONS		6.0		/* isolated points this far out are gaps */
#define CLEAN_TAIL(m)			((m) > 0 ? (m) : 24)	/* values checked for spikes */
#define SEASON_TEST_Z			1.645	/* one-sided 95% test of the season */
#define MIN_TRAIN				4		/* fewest values a backtest trains on */
#define MAX_STATE_PERIOD		1008	/* longest period with per-step HW states */
#define SD_FLOOR_SHARE			1e-9	/* interval sd floor, share of the scale */

/* Models that extrapolate a level or trend rather than a seasonal shape */
#define TREND_FAMILY	(PERFOPT_FORECAST_NAIVE | PERFOPT_FORECAST_DRIFT | \
						 PERFOPT_FORECAST_PROFILE_LEVEL | \
						 PERFOPT_FORECAST_PROFILE_DAMPED | \
						 PERFOPT_FORECAST_PROFILE_THETA)

#define MAX_CANDIDATES			16
#define AR_MAX_LAGS				(AR_RECENT_LAGS + 5 + 3 + 3 + 3)
#define NM_MAX_DIM				(3 + PERFOPT_FORECAST_MAX_PERIODS)

/* Bump allocator over the caller's workspace; counts only when base is NULL */
typedef struct Workspace
{
	char	   *base;
	long		size;
	long		used;
} Workspace;

/* One model the forecaster may use, and how it did in the backtest */
typedef struct Candidate
{
	int			kind;			/* one PERFOPT_FORECAST_* model flag */
	int			variant;		/* autoregression: which window or lag set */
	double		error;			/* backtest absolute error, all origins */
	double	   *holdout;		/* its backtest forecast */
} Candidate;

/* Everything the models read and write, carved from the workspace */
typedef struct Series
{
	int			n;				/* values after leading gaps were dropped */
	double	   *y;				/* values, gaps filled */
	double	   *valid;			/* 1 where the caller gave a value */
	double	   *ty;				/* Box-Cox transform of y: the model scale */
	double		lambda;			/* its parameter: 0 log, 1 none */
	double	   *sd;				/* interval sd by step, model scale */
	double	   *trend;			/* moving average of the model-scale values */
	double	   *adjusted;		/* model-scale values less the profile */
	double	   *cum_value;		/* running sums for the moving average */
	double	   *cum_weight;
	double	   *profile[PERFOPT_FORECAST_MAX_PERIODS];
	double	   *profile_weight[PERFOPT_FORECAST_MAX_PERIODS];
	double	   *state[PERFOPT_FORECAST_MAX_PERIODS];
	double	   *scratch;		/* one horizon of forecast */
	double	   *combined_holdout;
	double	   *holdout_store;	/* MAX_CANDIDATES backtest forecasts */
	double	   *analog_dist;	/* analog model: one per past short period */
	double	   *analog_mean;
	int			nperiods;
	int			periods[PERFOPT_FORECAST_MAX_PERIODS];
	int			positive;		/* all values > 0, so Box-Cox is usable */
	int			warm_dim;		/* > 0: warm holds the last search's result */
	double		warm[NM_MAX_DIM];
} Series;

/* Objective of the Nelder-Mead search */
typedef double (*ObjectiveFn) (const double *x, void *context);

/* Smoothing recursion inputs shared by the level and Holt-Winters fits */
typedef struct SmoothContext
{
	const double *z;			/* model-scale values (level models: adjusted) */
	const double *valid;
	int			lo;
	int			hi;
	int			nperiods;
	const int  *periods;
	double	   *const *init_state;	/* initial seasonal states */
	double	   *const *state;	/* working seasonal states */
	double		level0;
	double		trend0;
	int			damped;			/* fit beta and phi */
	int			seasonal;		/* fit gammas (Holt-Winters) */
} SmoothContext;

/* Reserve count doubles of the workspace, or only count them */
static double *
ws_doubles(Workspace *ws, long count)
{
	double	   *p;

	if (count < 1)
		count = 1;
	p = NULL;
	if (ws->base != NULL && ws->used + count * (long) sizeof(double) <= ws->size)
		p = (double *) (ws->base + ws->used);
	ws->used += count * (long) sizeof(double);
	return p;
}

/* Length of the backtest held out of a series of n values */
static int
backtest_length(int n, int horizon)
{
	int			hb = horizon;

	if (hb > n / 4)
		hb = n / 4;
	if (n - hb < MIN_TRAIN)
		hb = 0;
	return hb;
}

/* Lay out every buffer; with a counting workspace this gives the size */
static void
carve(Workspace *ws, int n, int horizon, const PerfoptForecastSpec *spec,
	  Series *s)
{
	int			k;
	int			hb = backtest_length(n, horizon);

	s->y = ws_doubles(ws, n);
	s->valid = ws_doubles(ws, n);
	s->ty = ws_doubles(ws, n);
	s->trend = ws_doubles(ws, n);
	s->adjusted = ws_doubles(ws, n);
	s->cum_value = ws_doubles(ws, n + 1);
	s->cum_weight = ws_doubles(ws, n + 1);
	for (k = 0; k < PERFOPT_FORECAST_MAX_PERIODS; k++)
	{
		long		m = (spec != NULL && k < spec->nperiods) ? spec->periods[k] : 1;

		if (m < 1)
			m = 1;
		s->profile[k] = ws_doubles(ws, m);
		s->profile_weight[k] = ws_doubles(ws, m);
		s->state[k] = ws_doubles(ws, m);
	}
	s->scratch = ws_doubles(ws, horizon);
	s->sd = ws_doubles(ws, horizon);
	s->combined_holdout = ws_doubles(ws, hb);
	s->holdout_store = ws_doubles(ws, (long) MAX_CANDIDATES * hb);
	{
		long		m = (spec != NULL && spec->nperiods > 0 && spec->periods[0] > 0) ?
			spec->periods[0] : 1;

		s->analog_dist = ws_doubles(ws, n / m + 1);
		s->analog_mean = ws_doubles(ws, n / m + 1);
	}
}

/* Bytes of workspace perfopt_forecast() needs for these arguments */
long
perfopt_forecast_workspace_size(int nvalues, int horizon,
								const PerfoptForecastSpec *spec)
{
	Workspace	ws;
	Series		s;

	if (nvalues < 1)
		nvalues = 1;
	if (horizon < 1)
		horizon = 1;
	ws.base = NULL;
	ws.size = 0;
	ws.used = 0;
	carve(&ws, nvalues, horizon, spec, &s);
	return ws.used + 64;
}

/* Minimise an objective over a box of [0,1] coordinates by Nelder-Mead */
static void
nelder_mead(ObjectiveFn fn, void *context, double *x, int dim, int max_evals)
{
	double		simplex[NM_MAX_DIM + 1][NM_MAX_DIM];
	double		value[NM_MAX_DIM + 1];
	double		centroid[NM_MAX_DIM];
	double		trial[NM_MAX_DIM];
	double		trial2[NM_MAX_DIM];
	int			evals = 0;
	int			i,
				j;

	for (i = 0; i <= dim; i++)
	{
		for (j = 0; j < dim; j++)
			simplex[i][j] = x[j];
		if (i > 0)
		{
			double		d = x[i - 1] < 0.5 ? 0.15 : -0.15;

			simplex[i][i - 1] += d;
		}
		value[i] = fn(simplex[i], context);
		evals++;
	}

	while (evals < max_evals)
	{
		int			best = 0,
					worst = 0,
					second = 0;
		double		fr,
					fe;

		for (i = 1; i <= dim; i++)
		{
			if (value[i] < value[best])
				best = i;
			if (value[i] > value[worst])
				worst = i;
		}
		second = best;
		for (i = 0; i <= dim; i++)
			if (i != worst && value[i] > value[second])
				second = i;
		if (value[worst] - value[best] <= 1e-10 * (fabs(value[best]) + 1e-30))
			break;

		for (j = 0; j < dim; j++)
		{
			centroid[j] = 0;
			for (i = 0; i <= dim; i++)
				if (i != worst)
					centroid[j] += simplex[i][j];
			centroid[j] /= dim;
		}

		/* reflect */
		for (j = 0; j < dim; j++)
			trial[j] = centroid[j] + (centroid[j] - simplex[worst][j]);
		fr = fn(trial, context);
		evals++;
		if (fr < value[best])
		{
			/* expand */
			for (j = 0; j < dim; j++)
				trial2[j] = centroid[j] + 2.0 * (centroid[j] - simplex[worst][j]);
			fe = fn(trial2, context);
			evals++;
			if (fe < fr)
			{
				for (j = 0; j < dim; j++)
					simplex[worst][j] = trial2[j];
				value[worst] = fe;
			}
			else
			{
				for (j = 0; j < dim; j++)
					simplex[worst][j] = trial[j];
				value[worst] = fr;
			}
		}
		else if (fr < value[second])
		{
			for (j = 0; j < dim; j++)
				simplex[worst][j] = trial[j];
			value[worst] = fr;
		}
		else
		{
			/* contract, towards the better of worst and reflected */
			int			outside = fr < value[worst];
			double		fc;

			for (j = 0; j < dim; j++)
			{
				double		from = outside ? trial[j] : simplex[worst][j];

				trial2[j] = centroid[j] + 0.5 * (from - centroid[j]);
			}
			fc = fn(trial2, context);
			evals++;
			if (fc < (outside ? fr : value[worst]))
			{
				for (j = 0; j < dim; j++)
					simplex[worst][j] = trial2[j];
				value[worst] = fc;
			}
			else
			{
				/* shrink towards the best */
				for (i = 0; i <= dim; i++)
				{
					if (i == best)
						continue;
					for (j = 0; j < dim; j++)
						simplex[i][j] = simplex[best][j] +
							0.5 * (simplex[i][j] - simplex[best][j]);
					value[i] = fn(simplex[i], context);
					evals++;
				}
			}
		}
	}

	{
		int			best = 0;

		for (i = 1; i <= dim; i++)
			if (value[i] < value[best])
				best = i;
		for (j = 0; j < dim; j++)
			x[j] = simplex[best][j];
	}
}

/* Map a search coordinate onto [lo, hi], folding it back into [0,1] first */
static double
to_range(double u, double lo, double hi)
{
	u = fmod(fabs(u), 2.0);
	if (u > 1.0)
		u = 2.0 - u;
	return lo + (hi - lo) * u;
}

/* Inverse of to_range for a starting point */
static double
from_range(double v, double lo, double hi)
{
	double		u = (v - lo) / (hi - lo);

	return u < 0 ? 0 : (u > 1 ? 1 : u);
}

/*
 * Centred moving average of z over [lo, hi) with the given width; even
 * widths use the usual 2xw average.  Points whose window is mostly gaps, or
 * runs off either end, get NAN.
 */
static void
moving_average(Series *s, const double *z, int lo, int hi, int width,
			   double *out)
{
	int			t;
	int			half = width / 2;
	double	   *cv = s->cum_value;
	double	   *cw = s->cum_weight;

	cv[0] = 0;
	cw[0] = 0;
	for (t = lo; t < hi; t++)
	{
		cv[t - lo + 1] = cv[t - lo] + (s->valid[t] > 0 ? z[t] : 0);
		cw[t - lo + 1] = cw[t - lo] + s->valid[t];
	}
	for (t = lo; t < hi; t++)
	{
		int			a = t - half,
					b = t + half;	/* inclusive */
		double		sum,
					weight;

		out[t] = NAN;
		if (a < lo || b >= hi)
			continue;
		if (width % 2 == 1)
		{
			sum = cv[b - lo + 1] - cv[a - lo];
			weight = cw[b - lo + 1] - cw[a - lo];
		}
		else
		{
			sum = cv[b - lo] - cv[a - lo + 1];
			weight = cw[b - lo] - cw[a - lo + 1];
			if (s->valid[a] > 0)
			{
				sum += 0.5 * z[a];
				weight += 0.5;
			}
			if (s->valid[b] > 0)
			{
				sum += 0.5 * z[b];
				weight += 0.5;
			}
		}
		if (weight >= 0.5 * width)
			out[t] = sum / weight;
	}
}

/* How many of the latest values the models are fitted on */
static int
fit_window(const Series *s)
{
	int			window = FIT_WINDOW_MIN;

	if (s->nperiods > 0 && FIT_WINDOW_CYCLES * s->periods[s->nperiods - 1] > window)
		window = FIT_WINDOW_CYCLES * s->periods[s->nperiods - 1];
	return window;
}

/*
 * How many backtest origins a series of s->n values gets for a backtest of
 * hb values, and how far apart they are (*spacing): enough origins for
 * BACKTEST_VALUES held-out values, at most BACKTEST_ORIGINS, and no more
 * than BACKTEST_WORK values fitted over all of them; one short period apart
 * (hb apart without a period), and each leaving at least half of the
 * values, and MIN_TRAIN, to train on.
 */
static int
backtest_origins(const Series *s, int hb, int *spacing)
{
	int			count,
				fitted = s->n < fit_window(s) ? s->n : fit_window(s);

	*spacing = s->nperiods > 0 ? s->periods[0] : hb;
	if (hb == 0)
		return 0;
	count = (BACKTEST_VALUES + hb - 1) / hb;
	if (count > BACKTEST_ORIGINS)
		count = BACKTEST_ORIGINS;
	if (count > BACKTEST_WORK / fitted)
		count = BACKTEST_WORK / fitted;
	if (count < 1)
		count = 1;
	while (count > 1 &&
		   (s->n - hb - (count - 1) * *spacing < s->n / 2 ||
			s->n - hb - (count - 1) * *spacing < MIN_TRAIN))
		count--;
	return count;
}

/* Number of the caller's periods the window [lo, hi) can estimate */
static int
usable_periods(const Series *s, int lo, int hi)
{
	int			k;

	for (k = 0; k < s->nperiods; k++)
		if (hi - lo < 2 * s->periods[k])
			break;
	return k;
}

/*
 * Seasonal profiles of z over [lo, hi): detrend with a moving average as
 * long as the longest usable period, then average the detrended values by
 * phase, recent cycles weighing more, shorter periods first and each longer
 * one on what the shorter ones left.  Returns how many periods were used.
 */
static int
estimate_profiles(Series *s, const double *z, int lo, int hi)
{
	int			np = usable_periods(s, lo, hi);
	int			k,
				t,
				p;

	if (np == 0)
		return 0;
	moving_average(s, z, lo, hi, s->periods[np - 1], s->trend);

	for (k = 0; k < np; k++)
	{
		int			m = s->periods[k];
		double	   *prof = s->profile[k];
		double	   *wsum = s->profile_weight[k];
		double		mean = 0;
		double		cycles = 0;

		for (p = 0; p < m; p++)
		{
			prof[p] = 0;
			wsum[p] = 0;
		}
		for (t = lo; t < hi; t++)
		{
			double		d,
						w;
			int			j;

			if (s->valid[t] <= 0 || isnan(s->trend[t]))
				continue;
			d = z[t] - s->trend[t];
			for (j = 0; j < k; j++)
				d -= s->profile[j][t % s->periods[j]];
			w = pow(PROFILE_DECAY, (double) ((hi - 1 - t) / m));
			prof[t % m] += w * d;
			wsum[t % m] += w;
		}
		for (p = 0; p < m; p++)
		{
			if (wsum[p] > 0)
				prof[p] /= wsum[p];
			mean += prof[p];
		}
		mean /= m;
		for (t = lo; t < hi; t++)
			if (!isnan(s->trend[t]))
				cycles += 1.0;
		cycles /= m;
		for (p = 0; p < m; p++)
			prof[p] = (prof[p] - mean) * cycles / (cycles + PROFILE_SHRINK);
	}
	return np;
}

/* Seasonal part of the profile model at time t */
static double
profile_at(const Series *s, int np, long t)
{
	double		v = 0;
	int			k;

	for (k = 0; k < np; k++)
		v += s->profile[k][t % s->periods[k]];
	return v;
}

/*
 * Sum of squared one-step errors of exponential smoothing with the
 * parameters in x (search coordinates).  Level models smooth the adjusted
 * series; Holt-Winters also updates one seasonal state per period.  Gaps
 * take the one-step forecast as their value.
 */
static double
smooth_sse(const double *x, void *context)
{
	SmoothContext *c = (SmoothContext *) context;
	double		alpha = to_range(x[0], 0.0, 1.0);
	double		beta = 0,
				phi = 1,
				gamma[PERFOPT_FORECAST_MAX_PERIODS];
	double		level = c->level0,
				trend = c->trend0,
				sse = 0;
	int			phase[PERFOPT_FORECAST_MAX_PERIODS];
	int			nseasonal = c->seasonal ? c->nperiods : 0;
	int			t,
				k,
				d = 1;

	if (c->damped)
	{
		beta = to_range(x[1], 0.0, 0.2) * alpha;
		phi = to_range(x[2], 0.8, 0.995);
		d = 3;
	}
	for (k = 0; k < c->nperiods; k++)
	{
		gamma[k] = c->seasonal ? to_range(x[d + k], 0.0, HW_GAMMA_MAX) * (1 - alpha) : 0;
		if (c->seasonal)
		{
			int			p;

			for (p = 0; p < c->periods[k]; p++)
				c->state[k][p] = c->init_state[k][p];
		}
	}

	/* phases are counted rather than taken modulo: this loop is the hot one */
	for (k = 0; k < c->nperiods; k++)
		phase[k] = c->lo % c->periods[k];
	for (t = c->lo; t < c->hi; t++)
	{
		double		fc = level + phi * trend;
		double		e;

		for (k = 0; k < nseasonal; k++)
			fc += c->state[k][phase[k]];
		e = c->valid[t] > 0 ? c->z[t] - fc : 0;
		sse += e * e;
		level = level + phi * trend + alpha * e;
		trend = phi * trend + beta * e;
		for (k = 0; k < nseasonal; k++)
		{
			c->state[k][phase[k]] += gamma[k] * e;
			if (++phase[k] == c->periods[k])
				phase[k] = 0;
		}
	}
	return sse;
}

/*
 * Fit exponential smoothing to [lo, hi) and forecast horizon steps from hi
 * into out (model scale), and give the one-step residual sd.  seasonal
 * selects Holt-Winters with np periods, initial states taken from the
 * profiles; otherwise z is already deseasonalised.  A Nelder-Mead search
 * starts from s->warm, with the smaller budget, when the previous search
 * (an earlier backtest origin of the same model) left one of the same
 * dimension there, and leaves its own result there.
 */
static void
fit_smoothing(Series *s, const double *z, int lo, int hi, int damped,
			  int seasonal, int np, int horizon, double *out, double *sigma)
{
	SmoothContext c;
	double		x[NM_MAX_DIM];
	double		level,
				trend,
				alpha,
				beta = 0,
				phi = 1,
				sse,
				phisum,
				gamma[PERFOPT_FORECAST_MAX_PERIODS];
	int			dim = 1,
				k,
				t,
				h,
				nvalid = 0;
	int			first = lo;

	while (first < hi - 1 && s->valid[first] <= 0)
		first++;
	c.z = z;
	c.valid = s->valid;
	c.lo = first + 1;
	c.hi = hi;
	c.nperiods = seasonal ? np : 0;
	c.periods = s->periods;
	c.init_state = s->profile;
	c.state = s->state;
	c.level0 = z[first] - (seasonal ? profile_at(s, np, first) : 0);
	c.trend0 = 0;
	c.damped = damped;
	c.seasonal = seasonal;

	x[0] = from_range(seasonal ? 0.2 : 0.5, 0, 1);
	if (damped)
	{
		x[1] = from_range(0.05, 0.0, 0.2);
		x[2] = from_range(0.95, 0.8, 0.995);
		dim = 3;
	}
	if (seasonal)
		for (k = 0; k < np; k++)
			x[dim++] = from_range(0.1, 0.0, HW_GAMMA_MAX);

	if (dim == 1)
	{
		/* golden-section search on alpha alone */
		double		a = 0,
					b = 1,
					g = 0.6180339887498949;
		double		x1 = b - g * (b - a),
					x2 = a + g * (b - a);
		double		f1,
					f2;
		int			i;

		x[0] = x1;
		f1 = smooth_sse(x, &c);
		x[0] = x2;
		f2 = smooth_sse(x, &c);
		for (i = 0; i < 30; i++)
		{
			if (f1 < f2)
			{
				b = x2;
				x2 = x1;
				f2 = f1;
				x1 = b - g * (b - a);
				x[0] = x1;
				f1 = smooth_sse(x, &c);
			}
			else
			{
				a = x1;
				x1 = x2;
				f1 = f2;
				x2 = a + g * (b - a);
				x[0] = x2;
				f2 = smooth_sse(x, &c);
			}
		}
		x[0] = f1 < f2 ? x1 : x2;
		/* the edges are worth a look: alpha = 1 is the naive forecast */
		{
			double		fbest = f1 < f2 ? f1 : f2;
			double		xe = 1.0;
			double		fe = smooth_sse(&xe, &c);

			if (fe < fbest)
				x[0] = 1.0;
		}
	}
	else
	{
		int			budget = NM_EVALS_PER_DIM * dim;

		if (s->warm_dim == dim)
		{
			for (k = 0; k < dim; k++)
				x[k] = s->warm[k];
			budget = NM_WARM_EVALS_PER_DIM * dim;
		}
		nelder_mead(smooth_sse, &c, x, dim, budget);
		for (k = 0; k < dim; k++)
			s->warm[k] = x[k];
		s->warm_dim = dim;
	}

	/* rerun with the chosen parameters, keeping the final states */
	alpha = to_range(x[0], 0.0, 1.0);
	if (damped)
	{
		beta = to_range(x[1], 0.0, 0.2) * alpha;
		phi = to_range(x[2], 0.8, 0.995);
	}
	for (k = 0; k < np && seasonal; k++)
	{
		gamma[k] = to_range(x[(damped ? 3 : 1) + k], 0.0, HW_GAMMA_MAX) * (1 - alpha);
		for (t = 0; t < s->periods[k]; t++)
			s->state[k][t] = s->profile[k][t];
	}

	level = c.level0;
	trend = 0;
	sse = 0;
	for (t = c.lo; t < hi; t++)
	{
		double		fc = level + phi * trend;
		double		e;

		for (k = 0; k < np && seasonal; k++)
			fc += s->state[k][t % s->periods[k]];
		e = 0;
		if (s->valid[t] > 0)
		{
			e = z[t] - fc;
			nvalid++;
		}
		sse += e * e;
		level = level + phi * trend + alpha * e;
		trend = phi * trend + beta * e;
		for (k = 0; k < np && seasonal; k++)
			s->state[k][t % s->periods[k]] += gamma[k] * e;
	}
	*sigma = nvalid > 1 ? sqrt(sse / (nvalid - 1)) : 0;

	/* phisum is phi + phi^2 + ... + phi^(h+1) */
	phisum = 0;
	for (h = 0; h < horizon; h++)
	{
		double		v;

		phisum = phi * (1 + phisum);
		v = level + phisum * trend;
		for (k = 0; k < np && seasonal; k++)
			v += s->state[k][((long) hi + h) % s->periods[k]];
		out[h] = v;
	}
}

/* Least-squares slope of the valid values of z over [lo, hi) */
static double
ols_slope(const Series *s, const double *z, int lo, int hi)
{
	double		st = 0,
				sz = 0,
				stt = 0,
				stz = 0,
				n = 0;
	int			t;

	for (t = lo; t < hi; t++)
	{
		double		u = t - lo;

		if (s->valid[t] <= 0)
			continue;
		st += u;
		sz += z[t];
		stt += u * u;
		stz += u * z[t];
		n += 1;
	}
	if (n < 2 || n * stt - st * st <= 0)
		return 0;
	return (n * stz - st * sz) / (n * stt - st * st);
}

/* Box-Cox transform of a positive value; lambda 1 leaves it as it is */
static double
box_cox(double y, double lambda)
{
	if (lambda == 1)
		return y;
	if (lambda == 0)
		return log(y);
	return (pow(y, lambda) - 1) / lambda;
}

/* Inverse of box_cox, kept finite */
static double
box_cox_inverse(double z, double lambda)
{
	if (lambda == 1)
		return z;
	if (lambda == 0)
		return exp(z > 700 ? 700 : z);
	z = lambda * z + 1;
	if (z <= 0)
		return 0;
	return pow(z, 1 / lambda);
}

/*
 * Lags of the seasonal autoregression: the latest values, and around each
 * season ago (one and two short seasons, one long season).  The narrow set
 * keeps fewer of them, for a second opinion with fewer coefficients.
 */
static int
seasonal_ar_lags(const Series *s, int np, int narrow, int *lags)
{
	int			nlags = 0,
				k,
				j;

	for (j = 1; j <= (narrow ? 2 : AR_RECENT_LAGS); j++)
		lags[nlags++] = j;
	for (k = 0; k < np; k++)
	{
		int			m = s->periods[k];
		int			width = (k == 0 && !narrow) ? 2 : 1;

		for (j = -width; j <= width; j++)
			if (m + j > lags[nlags - 1])
				lags[nlags++] = m + j;
		if (k == 0 && (np == 1 || s->periods[1] > 2 * m + 1))
			for (j = -1; j <= 1; j++)
				if (2 * m + j > lags[nlags - 1])
					lags[nlags++] = 2 * m + j;
	}
	return nlags;
}

/* Solve the symmetric positive definite system a x = b in place (Cholesky) */
static int
cholesky_solve(double *a, double *b, int dim)
{
	int			i,
				j,
				k;

	for (j = 0; j < dim; j++)
	{
		double		d = a[j * dim + j];

		for (k = 0; k < j; k++)
			d -= a[j * dim + k] * a[j * dim + k];
		if (!(d > 0))
			return 0;
		d = sqrt(d);
		a[j * dim + j] = d;
		for (i = j + 1; i < dim; i++)
		{
			double		v = a[i * dim + j];

			for (k = 0; k < j; k++)
				v -= a[i * dim + k] * a[j * dim + k];
			a[i * dim + j] = v / d;
		}
	}
	for (i = 0; i < dim; i++)
	{
		double		v = b[i];

		for (k = 0; k < i; k++)
			v -= a[i * dim + k] * b[k];
		b[i] = v / a[i * dim + i];
	}
	for (i = dim - 1; i >= 0; i--)
	{
		double		v = b[i];

		for (k = i + 1; k < dim; k++)
			v -= a[k * dim + i] * b[k];
		b[i] = v / a[i * dim + i];
	}
	return 1;
}

/*
 * Ridge least squares of path[t] on path[t - offs[i]] over the rows
 * first <= t < len whose target is valid (valid is indexed like path).
 * The ridge is a share of the mean diagonal, so it does not depend on the
 * scale.  Returns the number of rows, 0 if the system could not be solved.
 */
static int
ridge_regression(const double *path, const double *valid, int first, int len,
				 const int *offs, int nf, double *coef)
{
	double		gram[AR_MAX_LAGS * AR_MAX_LAGS];
	double		trace = 0;
	int			i,
				j,
				t,
				rows = 0;

	for (i = 0; i < nf * nf; i++)
		gram[i] = 0;
	for (i = 0; i < nf; i++)
		coef[i] = 0;
	for (t = first; t < len; t++)
	{
		const double *p = path + t;

		if (valid[t] <= 0)
			continue;
		for (i = 0; i < nf; i++)
		{
			double		xi = p[-offs[i]];

			coef[i] += xi * p[0];
			for (j = 0; j <= i; j++)
				gram[i * nf + j] += xi * p[-offs[j]];
		}
		rows++;
	}
	for (i = 0; i < nf; i++)
	{
		for (j = 0; j < i; j++)
			gram[j * nf + i] = gram[i * nf + j];
		trace += gram[i * nf + i];
	}
	for (i = 0; i < nf; i++)
		gram[i * nf + i] += AR_RIDGE * trace / nf + 1e-12;
	if (!cholesky_solve(gram, coef, nf))
		return 0;
	return rows;
}

/*
 * Seasonal autoregression fitted on [lo, hi) of z centred on its window
 * mean.  The first "preset" steps of out may already hold forecasts (from
 * the direct variant); the rest are iterated, each step feeding the next,
 * and kept within AR_RANGE_GUARD ranges of the window so that a nearly
 * explosive fit cannot run away over a long horizon.  Returns 0 when the
 * window is too short for the lags.
 */
static int
fit_seasonal_ar(Series *s, const double *z, int lo, int hi, int np,
				int narrow, int preset, int horizon, double *out,
				double *sigma)
{
	int			lags[AR_MAX_LAGS];
	double		coef[AR_MAX_LAGS];
	double		mean = 0,
				count = 0,
				sse = 0,
				low = HUGE_VAL,
				high = -HUGE_VAL,
				guard;
	int			nlags = seasonal_ar_lags(s, np, narrow, lags);
	int			maxlag = lags[nlags - 1];
	int			len = hi - lo;
	int			i,
				t,
				h,
				rows;
	double	   *path = s->adjusted;

	if (len - maxlag < 3 * nlags + 8)
		return 0;
	for (t = lo; t < hi; t++)
		if (s->valid[t] > 0)
		{
			mean += z[t];
			count++;
			if (z[t] < low)
				low = z[t];
			if (z[t] > high)
				high = z[t];
		}
	if (count < 1)
		return 0;
	mean /= count;
	guard = AR_RANGE_GUARD * (high - low);
	for (t = lo; t < hi; t++)
		path[t - lo] = z[t] - mean;

	rows = ridge_regression(path, s->valid + lo, maxlag, len, lags, nlags, coef);
	if (rows == 0)
		return 0;
	for (t = maxlag; t < len; t++)
	{
		double		v = 0;

		if (s->valid[lo + t] <= 0)
			continue;
		for (i = 0; i < nlags; i++)
			v += coef[i] * path[t - lags[i]];
		sse += (path[t] - v) * (path[t] - v);
	}
	*sigma = rows > nlags ? sqrt(sse / (rows - nlags)) : 0;

	for (h = 0; h < preset && h < horizon; h++)
		out[h] -= mean;
	for (h = preset; h < horizon; h++)
	{
		double		v = 0;

		for (i = 0; i < nlags; i++)
		{
			long		from = (long) len + h - lags[i];

			v += coef[i] * (from < len ? path[from] : out[from - len]);
		}
		if (v < low - mean - guard)
			v = low - mean - guard;
		if (v > high - mean + guard)
			v = high - mean + guard;
		out[h] = v;
	}
	for (h = 0; h < horizon; h++)
		out[h] += mean;
	return 1;
}

/*
 * Direct seasonal autoregression: one ridge regression per step ahead h,
 * from what is known at the origin (the latest values, the same phase one
 * and two short seasons before the target, the same phase a long season
 * before) to the value h steps later, so no forecast feeds the next one.
 * Writes the first "direct" steps of out; returns how many it wrote.
 */
static int
fit_direct_ar(Series *s, const double *z, int lo, int hi, int np,
			  int direct, double *out)
{
	int			len = hi - lo;
	double		mean = 0,
				count = 0;
	double	   *path = s->trend;
	int			t,
				h,
				i;

	if (np == 0)
		return 0;
	for (t = lo; t < hi; t++)
		if (s->valid[t] > 0)
		{
			mean += z[t];
			count++;
		}
	if (count < 1)
		return 0;
	mean /= count;
	for (t = lo; t < hi; t++)
		path[t - lo] = z[t] - mean;

	for (h = 1; h <= direct; h++)
	{
		int			offs[AR_MAX_LAGS];	/* lags counted from the target */
		double		coef[AR_MAX_LAGS];
		int			nf = 0,
					maxoff = 0,
					m1 = s->periods[0],
					k1 = (h + m1 - 1) / m1;
		double		v = 0;

		for (i = 0; i < DIRECT_RECENT; i++)
			offs[nf++] = h + i;
		if (k1 * m1 >= h + DIRECT_RECENT)
			offs[nf++] = k1 * m1;
		if (k1 * m1 + 1 >= h + DIRECT_RECENT)
			offs[nf++] = k1 * m1 + 1;
		if (k1 * m1 - 1 >= h + DIRECT_RECENT)
			offs[nf++] = k1 * m1 - 1;
		offs[nf++] = (k1 + 1) * m1;
		if (np > 1)
		{
			int			m2 = s->periods[1];
			int			k2 = (h + m2 - 1) / m2;

			offs[nf++] = k2 * m2;
			offs[nf++] = k2 * m2 + 1;
			if (k2 * m2 - 1 >= h)
				offs[nf++] = k2 * m2 - 1;
		}
		for (i = 0; i < nf; i++)
			if (offs[i] > maxoff)
				maxoff = offs[i];
		if (len - maxoff < 3 * nf + 8 ||
			ridge_regression(path, s->valid + lo, maxoff, len, offs, nf, coef) == 0)
			return h - 1;
		for (i = 0; i < nf; i++)
			v += coef[i] * path[len + h - 1 - offs[i]];
		out[h - 1] = v + mean;
	}
	return direct;
}

/*
 * Pick the Box-Cox parameter under which the seasonal autoregression fits
 * the recent window best, by profile likelihood: residual variance on the
 * transformed scale, corrected by the Jacobian of the transform so that
 * scales compare fairly.  Leaves the transformed values in s->ty.
 */
static void
choose_box_cox(Series *s)
{
	static const double grid[] = {0.0, 0.5, 1.0};
	int			window = fit_window(s);
	int			lo = s->n > window ? s->n - window : 0;
	int			np = usable_periods(s, lo, s->n);
	double		best_loglik = -HUGE_VAL,
				sum_log = 0,
				dummy;
	int			g,
				t,
				count = 0;

	s->lambda = 1;
	if (s->positive)
	{
		for (t = lo; t < s->n; t++)
			if (s->valid[t] > 0)
			{
				sum_log += log(s->y[t]);
				count++;
			}
		for (g = 0; g < (int) (sizeof(grid) / sizeof(grid[0])); g++)
		{
			double		sigma = 0,
						loglik;

			for (t = lo; t < s->n; t++)
				s->ty[t] = box_cox(s->y[t], grid[g]);
			if (!fit_seasonal_ar(s, s->ty, lo, s->n, np, 0, 0, 0, &dummy, &sigma))
			{
				double		sse = 0;

				for (t = lo + 1; t < s->n; t++)
					sse += (s->ty[t] - s->ty[t - 1]) * (s->ty[t] - s->ty[t - 1]);
				sigma = count > 1 ? sqrt(sse / (count - 1)) : 0;
			}
			if (!(sigma > 0))
				break;			/* a constant series: keep it as it is */
			loglik = -count * log(sigma) + (grid[g] - 1) * sum_log;
			if (loglik > best_loglik)
			{
				best_loglik = loglik;
				s->lambda = grid[g];
			}
		}
	}
	for (t = 0; t < s->n; t++)
		s->ty[t] = s->positive ? box_cox(s->y[t], s->lambda) : s->y[t];
}

/* Value at time t of z up to hi, of the forecast out after it */
static double
value_or_forecast(const double *z, int hi, const double *out, long t)
{
	return t < hi ? z[t] : out[t - hi];
}

/*
 * Analog model: the past stretches most like the latest one, and what
 * followed them.  The query is the last ANALOG_CYCLES short periods of z.
 * Every earlier stretch of that length that ends a whole number of short
 * periods before the query (so at the same time of day) is compared with
 * the query by the sum of squared differences of the values less their
 * stretch's mean (the shape), each difference also carrying
 * ANALOG_LEVEL_WEIGHT times the difference in where the two stretches'
 * means lie against the mean of the longest period ending with them (the
 * level within the week: a quiet weekend and two quiet weekdays have the
 * same shape).  The k-th short period ahead is forecast as the query's mean
 * plus the average, over the ANALOG_NEIGHBOURS closest stretches that have
 * k short periods of history after them, of what followed each of them k
 * short periods later less that stretch's mean.  The forecast never feeds
 * back into the search, so its level cannot wander off step by step; once
 * too few stretches have that much history after them, the forecast
 * repeats itself (or the latest values) one longest period back.  Without
 * a longer period, or without room for it, the level term is left out.
 * Returns 0 when there is nothing to compare.
 */
static int
fit_analog(Series *s, const double *z, int lo, int hi, int horizon,
		   double *out)
{
	int			m = s->periods[0];
	int			len = ANALOG_CYCLES * m;
	int			ref = len;		/* length over which the level is judged */
	int			repeat = s->periods[s->nperiods - 1];
	double	   *dist = s->analog_dist;	/* by stretch: distance to the query */
	double	   *mean = s->analog_mean;	/* and mean; stretch k ends at
										 * hi - (k + 1) m */
	double		qmean = 0,
				qref = 0;
	int			nstretch,
				done,
				i,
				k,
				h;

	/* judge the level against the week if three stretches leave room for it */
	if (s->nperiods > 1 && s->periods[s->nperiods - 1] > len &&
		hi - 3 * m - s->periods[s->nperiods - 1] >= lo)
		ref = s->periods[s->nperiods - 1];
	if (hi - m - ref < lo)
		return 0;
	if (repeat > hi - lo)
		repeat = m;

	for (i = 0; i < len; i++)
		qmean += z[hi - len + i];
	qmean /= len;
	for (i = 0; i < ref; i++)
		qref += z[hi - ref + i];
	qref /= ref;

	/* the query does not change, so every distance is worked out once */
	nstretch = (hi - m - ref - lo) / m + 1;
	for (k = 0; k < nstretch; k++)
	{
		int			e = hi - (k + 1) * m;
		double		cref = 0,
					level_gap,
					d2 = 0;

		mean[k] = 0;
		for (i = 0; i < len; i++)
			mean[k] += z[e - len + i];
		mean[k] /= len;
		for (i = 0; i < ref; i++)
			cref += z[e - ref + i];
		cref /= ref;
		level_gap = ANALOG_LEVEL_WEIGHT * ((qmean - qref) - (mean[k] - cref));
		for (i = 0; i < len; i++)
		{
			double		d = (z[hi - len + i] - qmean) - (z[e - len + i] - mean[k]) +
				level_gap;

			d2 += d * d;
		}
		dist[k] = d2;
	}

	for (done = 0; done < horizon; done += m)
	{
		int			chunk = horizon - done < m ? horizon - done : m;
		int			near[ANALOG_NEIGHBOURS];
		int			found = 0;

		/*
		 * The closest stretches with done / m + 1 short periods after them,
		 * kept in order; most recent first, so ties go to the more recent.
		 */
		for (k = done / m; k < nstretch; k++)
		{
			int			j;

			if (found == ANALOG_NEIGHBOURS && !(dist[k] < dist[near[found - 1]]))
				continue;
			j = found < ANALOG_NEIGHBOURS ? found++ : found - 1;
			while (j > 0 && dist[near[j - 1]] > dist[k])
			{
				near[j] = near[j - 1];
				j--;
			}
			near[j] = k;
		}

		if (found < ANALOG_NEIGHBOURS)
		{
			/* too little history this far ahead: repeat what came before */
			for (h = done; h < horizon; h++)
				out[h] = value_or_forecast(z, hi, out, (long) hi + h - repeat);
			break;
		}
		for (h = 0; h < chunk; h++)
		{
			double		v = 0;

			for (i = 0; i < found; i++)
				v += z[hi - (near[i] + 1) * m + done + h] - mean[near[i]];
			out[done + h] = qmean + v / found;
		}
	}
	return 1;
}

/*
 * Forecast horizon steps after hi with one candidate fitted on the window
 * that ends at hi; out gets values on the caller's scale and *sigma the
 * one-step residual sd on the model scale.
 */
static void
run_candidate(Series *s, const Candidate *cand, int hi, int horizon,
			  double *out, double *sigma)
{
	const double *z = s->ty;
	int			window = fit_window(s);
	int			lo,
				np,
				t,
				h;

	if (cand->variant == 1 && s->nperiods > 0)
		window = AR_SHORT_CYCLES * s->periods[s->nperiods - 1];
	else if (cand->variant == 1)
		window = FIT_WINDOW_MIN / 4;
	lo = hi > window ? hi - window : 0;
	*sigma = 0;

	switch (cand->kind)
	{
		case PERFOPT_FORECAST_NAIVE:
		case PERFOPT_FORECAST_SEASONAL_NAIVE:
			{
				int			m = 1;
				double		sse = 0;
				int			count = 0;

				if (cand->kind == PERFOPT_FORECAST_SEASONAL_NAIVE)
					m = s->periods[0];
				for (t = lo + m; t < hi; t++)
				{
					if (s->valid[t] > 0 && s->valid[t - m] > 0)
					{
						double		e = z[t] - z[t - m];

						sse += e * e;
						count++;
					}
				}
				*sigma = count > 1 ? sqrt(sse / (count - 1)) : 0;
				for (h = 0; h < horizon; h++)
					out[h] = z[hi - m + (h % m)];
				break;
			}
		case PERFOPT_FORECAST_SEASONAL_AR:
			{
				int			preset = 0;

				np = usable_periods(s, lo, hi);
				if (cand->variant == 3)
				{
					int			direct = np > 0 ? DIRECT_CYCLES * s->periods[0] : 0;

					preset = fit_direct_ar(s, z, lo, hi, np,
										   direct < horizon ? direct : horizon, out);
				}
				if (!fit_seasonal_ar(s, z, lo, hi, np, cand->variant == 2, preset,
									 horizon, out, sigma))
					for (h = 0; h < horizon; h++)
						out[h] = z[hi - 1];
				break;
			}
		case PERFOPT_FORECAST_ANALOG:
			if (!fit_analog(s, z, lo, hi, horizon, out))
				for (h = 0; h < horizon; h++)
					out[h] = z[hi - s->periods[0] + (h % s->periods[0])];
			break;
		case PERFOPT_FORECAST_HOLT_WINTERS:
			np = estimate_profiles(s, z, lo, hi);
			fit_smoothing(s, z, lo, hi, 1, 1, np, horizon, out, sigma);
			break;
		default:
			{
				/* profile models: deseasonalise, smooth the rest, add back */
				double		slope = 0;

				np = estimate_profiles(s, z, lo, hi);
				for (t = lo; t < hi; t++)
					s->adjusted[t] = z[t] - profile_at(s, np, t);
				fit_smoothing(s, s->adjusted, lo, hi,
							  cand->kind == PERFOPT_FORECAST_PROFILE_DAMPED, 0,
							  np, horizon, out, sigma);
				if (cand->kind == PERFOPT_FORECAST_PROFILE_THETA)
					slope = 0.5 * ols_slope(s, s->adjusted, lo, hi);
				else if (cand->kind == PERFOPT_FORECAST_DRIFT)
					slope = ols_slope(s, s->adjusted, lo, hi);
				for (h = 0; h < horizon; h++)
					out[h] += slope * (h + 1) + profile_at(s, np, (long) hi + h);
				break;
			}
	}

	if (s->positive)
		for (h = 0; h < horizon; h++)
			out[h] = box_cox_inverse(out[h], s->lambda);
}

/* Model-scale value of a caller-scale value (identity unless positive) */
static double
to_model_scale(const Series *s, double v)
{
	if (!s->positive)
		return v;
	if (v <= 0)
		v = 1e-12;
	return box_cox(v, s->lambda);
}

/*
 * Interval half-width sd for every step, on the model scale.  The backtest
 * errors of the combination, pooled over the steps from h/2 to 2h, give
 * the spread at step h; the one-step residual sd of the best model is the
 * floor; beyond the backtest the spread grows like a random walk's (with
 * the square root of the steps), and it never shrinks with the step.
 * Without a backtest the random walk on the residual sd is all there is.
 */
static void
interval_sd(Series *s, int hb, int horizon, double sigma, const double *combined)
{
	double		floor_sd = sigma;
	double		scale = 0;
	double	   *cum_sq = s->scratch;	/* running sums of squared errors */
	double	   *cum_count = s->adjusted;	/* and of their number */
	int			h,
				t;

	for (t = 0; t < s->n; t++)
		if (fabs(s->ty[t]) > scale)
			scale = fabs(s->ty[t]);
	if (floor_sd < SD_FLOOR_SHARE * scale)
		floor_sd = SD_FLOOR_SHARE * scale;

	for (h = 0; h < hb; h++)
	{
		int			at = s->n - hb + h;
		double		e = 0;

		if (s->valid[at] > 0)
			e = s->ty[at] - to_model_scale(s, combined[h]);
		cum_sq[h] = (h > 0 ? cum_sq[h - 1] : 0) + e * e;
		cum_count[h] = (h > 0 ? cum_count[h - 1] : 0) + s->valid[at];
	}

	for (h = 0; h < horizon; h++)
	{
		double		sd;

		if (hb == 0)
			sd = floor_sd * sqrt(h + 1.0);
		else if (h < hb)
		{
			/* steps from (h+1)/2 to 2(h+1), 0-based and exclusive at the end */
			int			from = (h + 1) / 2,
						to = 2 * (h + 1) < hb ? 2 * (h + 1) : hb;
			double		sum = cum_sq[to - 1] - (from > 0 ? cum_sq[from - 1] : 0);
			double		count = cum_count[to - 1] - (from > 0 ? cum_count[from - 1] : 0);

			sd = count > 0 ? sqrt(sum / count) : floor_sd;
			if (sd < floor_sd)
				sd = floor_sd;
		}
		else
			sd = s->sd[hb - 1] * sqrt((h + 1.0) / hb);
		if (h > 0 && sd < s->sd[h - 1])
			sd = s->sd[h - 1];
		s->sd[h] = sd;
	}
}

/* Standard normal quantile, by Newton steps on erfc */
static double
normal_quantile(double p)
{
	double		x = 0;
	int			i;

	for (i = 0; i < 60; i++)
	{
		double		cdf = 0.5 * erfc(-x / sqrt(2.0));
		double		pdf = exp(-0.5 * x * x) / 2.5066282746310002;
		double		step = (cdf - p) / (pdf > 1e-300 ? pdf : 1e-300);

		if (step > 1)
			step = 1;
		if (step < -1)
			step = -1;
		x -= step;
		if (fabs(step) < 1e-12)
			break;
	}
	return x;
}

/*
 * Residual of value t against the line through two of its neighbours lag
 * and 2 lags away: the ones on both sides (t - j*lag, t + j*lag) when they
 * exist, else the two before it; of j = 1 and 2 the closer one.  NAN when
 * no pair was given.
 */
static double
neighbour_residual(const Series *s, int t, int lag, int extrapolate)
{
	double		best = NAN;
	int			j;

	for (j = 1; j <= 2; j++)
	{
		int			d = j * lag;
		double		r = NAN;

		if (t - d >= 0 && t + d < s->n && s->valid[t - d] && s->valid[t + d])
			r = s->y[t] - (s->y[t - d] + s->y[t + d]) / 2;
		else if (extrapolate && t + d >= s->n && t - 2 * d >= 0 &&
				 s->valid[t - d] && s->valid[t - 2 * d])
			r = s->y[t] - (2 * s->y[t - d] - s->y[t - 2 * d]);
		if (isfinite(r) && !(fabs(r) >= fabs(best)))
			best = r;
	}
	return best;
}

/* 1.4826 times the median of |resid| over its finite entries; 0 if few */
static double
robust_scale(const double *resid, int n, double *sorted)
{
	int			count = 0,
				t;

	for (t = 0; t < n; t++)
		if (isfinite(resid[t]))
			sorted[count++] = fabs(resid[t]);
	if (count < 8)
		return 0;
	qsort(sorted, count, sizeof(double), perfopt_compare_doubles);
	return 1.4826 * sorted[count / 2];
}

/*
 * A spike in the last short season becomes a gap.  Iterated models carry
 * the last values forward, so one abnormal hour at the end of the history
 * (a ten-minute connection surge in an hourly peak) can make them forecast
 * a level several times anything ever seen, with a backtest that never saw
 * it.  A value of the last season (CLEAN_TAIL) is such a spike when it is
 * outside the range of every value before that season, and more than
 * OUTLIER_DEVIATIONS robust deviations off both the line through its
 * neighbours in time (the ones on both sides: see neighbour_residual) and,
 * for a seasonal series, the line through the same time of the
 * neighbouring seasons.  A trend that makes new highs keeps them (its
 * neighbours lie on the line), so does a level shift after its first
 * value, and so does a recurring burst (it is within the past range).
 * Earlier values are left alone: cleaning the whole history took real
 * bursts out of count-like series and cost 0.03 OWA on M4, this costs
 * nothing there.  The robust deviation is 1.4826 times the median absolute
 * residual over the whole series.  local, season and sorted are scratch
 * arrays of n doubles.  Returns how many values became gaps.
 */
static int
clean_outliers(Series *s, double *local, double *season, double *sorted)
{
	int			m = s->nperiods > 0 ? s->periods[0] : 0,
				t,
				cleaned = 0;
	double		local_scale,
				season_scale = 0,
				largest = 0,
				highest = -HUGE_VAL,
				lowest = HUGE_VAL;
	int			tail;

	for (t = 0; t < s->n; t++)
	{
		local[t] = season[t] = NAN;
		if (!s->valid[t])
			continue;
		if (fabs(s->y[t]) > largest)
			largest = fabs(s->y[t]);
		local[t] = neighbour_residual(s, t, 1, 0);
		if (m > 0)
			season[t] = neighbour_residual(s, t, m, 1);
	}
	local_scale = fmax(robust_scale(local, s->n, sorted), 1e-12 * largest);
	if (m > 0)
		season_scale = fmax(robust_scale(season, s->n, sorted), 1e-12 * largest);
	if (!(local_scale > 0) || (m > 0 && !(season_scale > 0)))
		return 0;

	/* the first value stays: gaps are filled from earlier values */
	tail = s->n - CLEAN_TAIL(m);
	if (tail < 1)
		tail = 1;
	for (t = 0; t < tail; t++)
	{
		if (!s->valid[t])
			continue;
		if (s->y[t] > highest)
			highest = s->y[t];
		if (s->y[t] < lowest)
			lowest = s->y[t];
	}
	for (t = tail; t < s->n; t++)
	{
		if (!s->valid[t] || (s->y[t] <= highest && s->y[t] >= lowest))
			continue;
		if (!(fabs(local[t]) > OUTLIER_DEVIATIONS * local_scale))
			continue;
		if (m > 0 && !(fabs(season[t]) > OUTLIER_DEVIATIONS * season_scale))
			continue;
		s->valid[t] = 0;
		s->y[t] = t >= m && m > 0 ? s->y[t - m] : s->y[t - 1];
		cleaned++;
	}
	return cleaned;
}

/*
 * Does the series repeat its shortest season?  The autocorrelation of its
 * changes (which a trend does not inflate) at the season's lag, against
 * the 95% one-sided limit that M4's seasonality test uses.  A series too
 * short to tell is taken as seasonal.
 */
static int
has_season(const Series *s, double *change)
{
	int			m,
				t,
				k,
				n = 0;
	double		mean = 0,
				var = 0,
				sum_sq = 0,
				acf = 0;

	if (s->nperiods == 0)
		return 0;
	m = s->periods[0];
	if (s->n < 3 * m)
		return 1;
	for (t = 1; t < s->n; t++)
	{
		change[n] = s->y[t] - s->y[t - 1];
		mean += change[n++];
	}
	mean /= n;
	for (t = 0; t < n; t++)
		var += (change[t] - mean) * (change[t] - mean);
	if (!(var > 1e-24 * (mean * mean + 1)))
		return 0;
	for (k = 1; k <= m; k++)
	{
		double		c = 0;

		for (t = k; t < n; t++)
			c += (change[t] - mean) * (change[t - k] - mean);
		c /= var;
		if (k < m)
			sum_sq += c * c;
		else
			acf = c;
	}
	return acf > SEASON_TEST_Z * sqrt((1 + 2 * sum_sq) / n);
}

/* Whether a model belongs to the trend family (see the header comment) */
static int
is_trend_model(int kind)
{
	return (kind & TREND_FAMILY) != 0;
}

/* Append a candidate model */
static int
add_candidate(Candidate *cands, int ncand, int kind, int variant)
{
	cands[ncand].kind = kind;
	cands[ncand].variant = variant;
	cands[ncand].error = 0;
	cands[ncand].holdout = NULL;
	return ncand + 1;
}

/*
 * Forecast horizon steps after the last of nvalues values (NAN for gaps).
 * Writes baseline, lower and upper; the header comment explains the method.
 */
int
perfopt_forecast(const double *values, int nvalues, int horizon,
				 const PerfoptForecastSpec *spec,
				 void *workspace, long workspace_size,
				 double *baseline, double *lower, double *upper,
				 PerfoptForecastInfo *info)
{
	Workspace	ws;
	Series		s;
	Candidate	cands[MAX_CANDIDATES];
	int			order[MAX_CANDIDATES];
	double		weight[MAX_CANDIDATES];
	int			ncand = 0,
				nuse,
				first,
				hb,
				norigins,
				spacing,
				nonnegative,
				t,
				h,
				k,
				i,
				j;
	double		level,
				z,
				sigma,
				weight_sum,
				best_sigma = 0;
	int			seasonal;

	if (nvalues < 1 || values == NULL)
		return PERFOPT_FORECAST_NO_DATA;
	if (horizon < 1 || baseline == NULL || lower == NULL || upper == NULL ||
		info == NULL)
		return PERFOPT_FORECAST_BAD_ARGUMENT;
	level = (spec != NULL && spec->interval_level > 0) ? spec->interval_level
		: PERFOPT_FORECAST_DEFAULT_LEVEL;
	if (!(level < 1))
		return PERFOPT_FORECAST_BAD_ARGUMENT;
	if (spec != NULL &&
		(spec->nperiods < 0 || spec->nperiods > PERFOPT_FORECAST_MAX_PERIODS))
		return PERFOPT_FORECAST_BAD_ARGUMENT;
	for (k = 0; spec != NULL && k < spec->nperiods; k++)
		if (spec->periods[k] < 2 ||
			(k > 0 && spec->periods[k] <= spec->periods[k - 1]))
			return PERFOPT_FORECAST_BAD_ARGUMENT;
	if (workspace == NULL ||
		workspace_size < perfopt_forecast_workspace_size(nvalues, horizon, spec))
		return PERFOPT_FORECAST_NO_SPACE;

	ws.base = (char *) workspace;
	ws.size = workspace_size;
	ws.used = 0;
	carve(&ws, nvalues, horizon, spec, &s);

	/* drop leading gaps; fill the others with the value a season earlier */
	first = 0;
	while (first < nvalues && !isfinite(values[first]))
		first++;
	if (first == nvalues)
		return PERFOPT_FORECAST_NO_DATA;
	s.n = nvalues - first;
	s.nperiods = spec != NULL ? spec->nperiods : 0;
	for (k = 0; k < s.nperiods; k++)
		s.periods[k] = spec->periods[k];
	s.positive = 1;
	nonnegative = 1;
	info->nvalid = 0;
	for (t = 0; t < s.n; t++)
	{
		double		v = values[first + t];

		if (isfinite(v))
		{
			s.y[t] = v;
			s.valid[t] = 1;
			info->nvalid++;
			if (v <= 0)
				s.positive = 0;
			if (v < 0)
				nonnegative = 0;
		}
		else
		{
			int			m = s.nperiods > 0 ? s.periods[0] : 1;

			s.y[t] = t >= m ? s.y[t - m] : s.y[t - 1];
			s.valid[t] = 0;
		}
	}
	info->nvalid -= clean_outliers(&s, s.adjusted, s.trend, s.cum_value);
	seasonal = has_season(&s, s.adjusted);
	choose_box_cox(&s);

	/* the candidates: naive first, the fallback when nothing can be tested */
	ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_NAIVE, 0);
	ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_PROFILE_LEVEL, 0);
	ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_PROFILE_DAMPED, 0);
	ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_PROFILE_THETA, 0);
	ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_DRIFT, 0);
	if (s.nperiods > 0 && s.n >= 2 * s.periods[0])
	{
		ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_SEASONAL_NAIVE, 0);
		ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_ANALOG, 0);
		if (s.periods[s.nperiods - 1] <= MAX_STATE_PERIOD)
			ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_HOLT_WINTERS, 0);
	}
	for (i = 0; i < 4; i++)
		if (i != 3 || s.nperiods > 0)
			ncand = add_candidate(cands, ncand, PERFOPT_FORECAST_SEASONAL_AR, i);

	/*
	 * Backtest every candidate on the hb values after each origin and add
	 * up its absolute errors.  Origins go from the earliest to the latest so
	 * that each parameter search can start where the previous origin's
	 * ended, with a smaller budget (it has seen no later value).  The latest
	 * origin's forecasts are kept for the intervals and the confidence.
	 */
	hb = backtest_length(s.n, horizon);
	norigins = backtest_origins(&s, hb, &spacing);
	info->backtest_horizon = hb;
	info->backtest_origins = norigins;
	for (i = 0; i < ncand; i++)
	{
		order[i] = i;
		cands[i].holdout = s.holdout_store + (long) i * hb;
		s.warm_dim = 0;
		for (j = norigins - 1; j >= 0; j--)
		{
			int			origin = s.n - hb - j * spacing;
			double	   *fc = j == 0 ? cands[i].holdout : s.scratch;

			run_candidate(&s, &cands[i], origin, hb, fc, &sigma);
			for (h = 0; h < hb; h++)
				if (s.valid[origin + h] > 0)
					cands[i].error += fabs(s.y[origin + h] - fc[h]);
		}
		if (!isfinite(cands[i].error))
			cands[i].error = HUGE_VAL;
	}

	/* rank by backtest error; the order of addition breaks ties */
	for (i = 1; i < ncand; i++)
	{
		int			j = i;

		while (j > 0 && cands[order[j]].error < cands[order[j - 1]].error)
		{
			int			tmp = order[j];

			order[j] = order[j - 1];
			order[j - 1] = tmp;
			j--;
		}
	}

	/*
	 * Choose the family, then keep its models within TRIM times its best
	 * backtest error.  The trend family must beat the seasonal one clearly.
	 */
	nuse = 1;
	if (hb > 0)
	{
		double		best[2] = {HUGE_VAL, HUGE_VAL};
		int			family;

		for (i = 0; i < ncand; i++)
		{
			int			f = is_trend_model(cands[i].kind);

			if (cands[i].error < best[f])
				best[f] = cands[i].error;
		}
		family = best[1] < TREND_MARGIN * best[0] ? 1 : 0;
		if (best[0] == HUGE_VAL || !seasonal)
			family = 1;
		nuse = 0;
		for (i = 0; i < ncand; i++)
		{
			Candidate  *c = &cands[order[i]];

			if (is_trend_model(c->kind) == family &&
				c->error <= TRIM * best[family])
				order[nuse++] = order[i];
		}
		if (nuse == 0)
			nuse = 1;
	}

	/*
	 * Weights: the family's best backtest error over each kept model's, so
	 * the best weighs 1 and a model twice as bad 1/2; equal without a
	 * backtest or when no error is finite.
	 */
	weight_sum = 0;
	for (i = 0; i < nuse; i++)
	{
		double		best = cands[order[0]].error,
					e = cands[order[i]].error;

		weight[i] = (hb == 0 || !isfinite(best) || !(e > 0)) ? 1 : best / e;
		weight_sum += weight[i];
	}
	for (i = 0; i < nuse; i++)
		weight[i] /= weight_sum;

	/* backtest error of the combination: confidence and interval widths */
	info->backtest_error = 0;
	info->confidence = 0;
	if (hb > 0)
	{
		double		abs_err = 0,
					abs_act = 0;

		for (h = 0; h < hb; h++)
		{
			double		v = 0;

			for (i = 0; i < nuse; i++)
				v += weight[i] * cands[order[i]].holdout[h];
			s.combined_holdout[h] = v;
			if (s.valid[s.n - hb + h] > 0)
			{
				abs_err += fabs(s.y[s.n - hb + h] - s.combined_holdout[h]);
				abs_act += fabs(s.y[s.n - hb + h]);
			}
		}
		info->backtest_error = abs_act > 0 ? abs_err / abs_act : (abs_err > 0 ? 1 : 0);
		info->confidence = 1 - info->backtest_error;
		if (info->confidence < 0)
			info->confidence = 0;
	}

	/* the forecast: the kept models refitted on all values, combined */
	info->methods = 0;
	info->nmodels = nuse;
	for (h = 0; h < horizon; h++)
		baseline[h] = 0;
	for (i = 0; i < nuse; i++)
	{
		Candidate  *c = &cands[order[i]];

		s.warm_dim = 0;			/* a full search on all values */
		run_candidate(&s, c, s.n, horizon, s.scratch, &sigma);
		if (i == 0)
			best_sigma = sigma;
		for (h = 0; h < horizon; h++)
			baseline[h] += weight[i] * s.scratch[h];
		info->methods |= c->kind;
	}
	if (s.positive && s.lambda < 1)
		info->methods |= PERFOPT_FORECAST_LOG_SCALE;
	info->lambda = s.positive ? s.lambda : 1;

	/* the interval: normal quantiles of the model-scale spread */
	interval_sd(&s, hb, horizon, best_sigma, s.combined_holdout);
	z = normal_quantile(0.5 + level / 2);
	info->interval_level = level;
	for (h = 0; h < horizon; h++)
	{
		double		centre = to_model_scale(&s, baseline[h]);

		if (s.positive)
		{
			lower[h] = box_cox_inverse(centre - z * s.sd[h], s.lambda);
			upper[h] = box_cox_inverse(centre + z * s.sd[h], s.lambda);
		}
		else
		{
			lower[h] = centre - z * s.sd[h];
			upper[h] = centre + z * s.sd[h];
		}

		/* counts, sizes and the like: what was never negative stays so */
		if (nonnegative)
		{
			if (baseline[h] < 0)
				baseline[h] = 0;
			if (lower[h] < 0)
				lower[h] = 0;
			if (upper[h] < 0)
				upper[h] = 0;
		}
	}
	return PERFOPT_FORECAST_OK;
}

/*
 * How many values of the given step to average into one before
 * forecasting: the smallest factor that makes the step at least
 * PERFOPT_FORECAST_MIN_STEP seconds and leaves at most
 * PERFOPT_FORECAST_MAX_VALUES values, preferring factors that divide a day
 * so that the daily period stays whole.
 */
int
perfopt_forecast_aggregation(double step_seconds, int nvalues)
{
	int			factor;

	if (!(step_seconds > 0))
		return 1;
	for (factor = 1; factor < 1000000; factor++)
	{
		double		step = step_seconds * factor;
		double		per_day = 86400.0 / step;

		if (step < PERFOPT_FORECAST_MIN_STEP ||
			(double) nvalues / factor > PERFOPT_FORECAST_MAX_VALUES)
			continue;
		if (per_day < 1 || fabs(per_day - floor(per_day + 0.5)) < 1e-9)
			return factor;
	}
	return 1;
}

/*
 * Seasonal periods, in steps, for values of the given step: a day and a
 * week when the step divides them and the history holds two of them.
 * Returns how many it wrote into periods (room for
 * PERFOPT_FORECAST_MAX_PERIODS).
 */
int
perfopt_forecast_periods(double step_seconds, int nvalues, int *periods)
{
	static const double seconds[] = {86400.0, 7 * 86400.0};
	int			count = 0,
				k;

	if (!(step_seconds > 0))
		return 0;
	for (k = 0; k < 2; k++)
	{
		double		ratio = seconds[k] / step_seconds;
		int			m = (int) floor(ratio + 0.5);

		if (m >= 2 && fabs(ratio - m) < 1e-6 && nvalues >= 2 * m &&
			(count == 0 || m > periods[count - 1]))
			periods[count++] = m;
	}
	return count;
}

/*
 * Average every "factor" values into one, ignoring gaps (NAN); a bucket
 * with no value is a gap.  The last bucket may be partial.  Returns the
 * number of values written to out.
 */
int
perfopt_forecast_aggregate(const double *values, int nvalues, int factor,
						   double *out)
{
	int			nout = 0,
				t;

	if (factor < 1)
		factor = 1;
	for (t = 0; t < nvalues; t += factor)
	{
		double		sum = 0;
		int			count = 0,
					j;

		for (j = t; j < t + factor && j < nvalues; j++)
			if (isfinite(values[j]))
			{
				sum += values[j];
				count++;
			}
		out[nout++] = count > 0 ? sum / count : NAN;
	}
	return nout;
}

/*
 * First step (0-based) at which a series reaches the limit: at or above it
 * when upward, at or below it otherwise; -1 if it never does within the
 * horizon.  The capacity worker runs it on baseline and on the pessimistic
 * bound to say when a resource runs out.
 */
int
perfopt_forecast_first_crossing(const double *series, int horizon,
								double limit, int upward)
{
	int			h;

	for (h = 0; h < horizon; h++)
		if (upward ? series[h] >= limit : series[h] <= limit)
			return h;
	return -1;
}

/* Name of one model flag, for logs and documentation */
const char *
perfopt_forecast_method_name(int method)
{
	switch (method)
	{
		case PERFOPT_FORECAST_NAIVE:
			return "naive";
		case PERFOPT_FORECAST_SEASONAL_NAIVE:
			return "seasonal naive";
		case PERFOPT_FORECAST_DRIFT:
			return "profile + linear trend";
		case PERFOPT_FORECAST_PROFILE_LEVEL:
			return "profile + level";
		case PERFOPT_FORECAST_PROFILE_DAMPED:
			return "profile + damped trend";
		case PERFOPT_FORECAST_PROFILE_THETA:
			return "profile + theta";
		case PERFOPT_FORECAST_HOLT_WINTERS:
			return "holt-winters";
		case PERFOPT_FORECAST_SEASONAL_AR:
			return "seasonal autoregression";
		case PERFOPT_FORECAST_LOG_SCALE:
			return "box-cox scale";
		case PERFOPT_FORECAST_ANALOG:
			return "analog days";
	}
	return "unknown";
}
