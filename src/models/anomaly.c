/*-------------------------------------------------------------------------
 *
 * anomaly.c
 *	  Causal anomaly detector for metric time series.
 *
 * The detector reads a series point by point and never looks ahead: what it
 * says about the point at time t depends only on the points up to t.  For
 * every point it predicts a value (the baseline, "expected"), measures how
 * far the point is from it in robust deviations ("score"), and decides
 * whether the point opens a new excursion worth reporting ("is_anomaly").
 *
 * Baselines.  Four competing predictions are kept up to date:
 *
 *	level	the median of the last LOCAL_WINDOW (16) values: a level that
 *			follows slow drift and level shifts (after 8 points) and that
 *			a single spike cannot move;
 *	trend	the level plus a slope: the median of the newest 8 values, moved
 *			forward by the slope between the medians of the newest 8 and the
 *			8 before (a robust two-point estimate), clamped into the range of
 *			the last 16 values so that it never extrapolates past what was
 *			seen (bursts would otherwise make it overshoot);
 *	daily	a time-of-day profile plus an offset: the median over earlier
 *			days of what the same time-of-day bin held, plus the median of the
 *			last OFFSET_WINDOW (12) differences between the values and that
 *			profile, which carries level shifts across the profile;
 *	weekly	the same with day-of-week x time-of-day bins, for series whose
 *			weekends differ from their weekdays.
 *
 * Bins are as fine as the sampling step, but no finer than five minutes
 * (288 a day; fifteen minutes, 96 a day, for the weekly profile): a finer
 * bin would hold one noisy point a day, and coarser bins keep the state
 * small enough for the anomaly worker to hold one per series.  The daily
 * profile needs at least 12 bins a day.  Each bin keeps the mean of its
 * values for each of its last 7 days (4 weeks).  A daily bin is used only once it has values
 * from MIN_DAYS (3) earlier days, so that the median can overrule one
 * abnormal day; a weekly bin needs MIN_WEEKS (2) earlier weeks, because
 * waiting for a third would leave most month-long histories without a weekly
 * profile (and the selection below drops a weekly profile that predicts
 * badly).  A bin seen on too few days borrows the cells of its two
 * neighbours (sparse or irregular sampling), but still needs that many
 * distinct earlier days or weeks.  Seasons come from the timestamps (UTC);
 * the sampling step is the median of the first STEP_SAMPLES (32) positive
 * intervals, fixed from then on so that the answer stays causal.
 *
 * Choice of baseline.  For every baseline the detector keeps an exponential
 * moving average of its absolute errors with a memory of about one day of
 * points (at least 64, at most 8192), so that a baseline is judged over a
 * whole daily cycle: a seasonal baseline earns its place by predicting the
 * rises and falls of the day that a level cannot, even if those are a small
 * share of the points.  The baseline with the smallest average wins; the
 * trend must beat the others by TREND_PENALTY (10%), because extrapolation
 * turns noise into false alarms, and a tiny floor (below) breaks ties in
 * favour of the simpler baseline.  A baseline competes only after its error
 * window is half full.
 *
 * Score.  scale = 1.4826 * median(|error|) over the chosen baseline's last
 * ERROR_WINDOW (256) errors, the MAD-style robust standard deviation (for
 * normal noise it equals the standard deviation, and outliers cannot inflate
 * it).  The scale is also at least MEAN_ERROR_FLOOR (sqrt(pi / 2), 1.2533)
 * times the baseline's mean absolute error over about a day (the average
 * that chooses the baseline, below): the other estimate of the standard
 * deviation, exact for normal noise, where the two agree.  Where they do
 * not, the errors are heavy-tailed (counts of tweets or requests, bursty
 * latencies: a narrow core and many large errors), and the median alone
 * would measure only the core, so that every routine burst scored tens of
 * deviations; the larger of the two keeps scores comparable from series
 * to series.  It also covers series that mostly repeat one value, whose
 * median error is zero.  (This floor was 0.5 times the mean error, for the
 * repeating series only; cross-validated as below, 1.25 was chosen in every
 * fold among 0.5, 1.0, 1.25 and 1.5, and the normal-noise factor 1.2533 is
 * shipped: held-out mean 75.96 against 74.21; 77.61 with TAIL_START.)  The scale is at least
 * RELATIVE_FLOOR (1e-4) times the level (so a flat line does not turn
 * rounding noise into deviations) and 1e-12.
 *
 *		score = (value - expected) / scale
 *
 * is signed: positive above the baseline, negative below.  Its magnitude is
 * what `threshold` (default 3.5) is compared with.
 *
 * Events.  Many points of ordinary series lie 2.5 robust deviations out (1.2%
 * of normal noise, far more for heavy-tailed latencies), and a report per
 * such point buries the real events.  So a point is reported only if
 *
 *	1. |score| >= threshold, and
 *	2. it is surprising for this series, by one of two tests:
 *	   a. size: |score| is beyond the tail of the chosen baseline's own
 *		  recent scores.  The 90th and 99th percentiles q90, q99 of |score|
 *		  over the last TAIL_HISTORY (4096) points give the reference
 *		  q99 + TAIL_EXTRAPOLATE (1.5) * (q99 - q90): an exponential tail
 *		  extrapolated past the 99th percentile.  For normal noise this is
 *		  4.0 deviations (about one false alarm in 10^4 points).  Once the
 *		  history holds 2,000 points (enough for a 99.9th percentile q999
 *		  to be measured rather than guessed), the reference is also at
 *		  least q999 + FAR_EXTRAPOLATE (1.0) * (q999 - q99): the same
 *		  extrapolation one decade further out.  For an exponential tail
 *		  the two agree; for a heavy tail (counts of tweets, requests,
 *		  latencies whose spikes follow a power law) the far one is much
 *		  higher, and it is what keeps such a series from reporting its
 *		  routine daily spikes.  A heavy-tailed series raises its own
 *		  bar; a series whose spikes are routine reports only spikes
 *		  clearly larger than the routine ones.
 *	   b. density: at least DENSITY_MIN (5) of the last DENSITY_WINDOW (16)
 *		  points are at or beyond the threshold, and more than at any point
 *		  of the last TAIL_HISTORY points outside excursions: a sustained
 *		  shift, a burst of
 *		  spikes or a rise in variance, none of whose points need be large.
 *	3. the detector is not already inside an excursion.  An excursion opens
 *	   with a report and closes after EXCURSION_QUIET (12) consecutive points
 *	   below the threshold, so one incident gives one event.
 *
 * The tail histories learn from the points outside excursions and from the
 * first point of each: an incident does not teach the detector that
 * incidents are normal, while deviations that recur without being reported
 * do raise the bar.  A reported first point is learned at the bar it
 * cleared, not at its score: that scores up to the bar occur is what the
 * report shows, while one incident of 200 deviations would lift the 99.9th
 * percentile, and the bar with it, above the next incident for thousands of
 * points (cross-validated like the fitted constants: held-out mean 74.2
 * against 73.7).  Scores are counted in logarithmic bins 8% wide, so the
 * percentiles cost a fixed small amount per point.
 *
 * Warm-up: nothing is reported before WARMUP (256) finite points, the fewest
 * that make a 99th percentile mean something, and the tail histories learn
 * only from TAIL_START (ERROR_WINDOW / 2, 128) finite points on: before
 * that, the scales are measured over fewer than 128 errors and no baseline
 * but the level competes, so the scores say more about the detector's
 * start than about the series.  Learned, a few of them were the whole 99th
 * percentile of a short history (a series of 1,500 points has a tail of
 * 1,300 at most) and raised the bar over its first real incidents.  NaN and infinite values are
 * skipped: they get the current baseline as expected value, a NaN score and
 * no verdict, and teach the baselines nothing (their timestamps still count
 * for the sampling step).
 *
 * Cost: O(1) per point (windows of fixed size), about 0.25 microseconds;
 * the state is a fixed block of 160 kB, whatever the series' length.  What
 * keeps it cheap, without changing a single result: the medians of the
 * error windows come from two heaps (below), the short windows know where
 * each of their values sits in sorted order, medians of eight or fewer
 * values come from a sorting network (no branch to mispredict), a seasonal
 * profile value is computed once per bin and period rather than once per
 * point, and a score's logarithmic bin is looked up, not computed with a
 * logarithm.
 *
 * Fitted constants.  Three constants were chosen by leave-one-category-out
 * cross-validation on NAB's labelled categories (test/bench/anomaly_cv.py:
 * each fold chooses on three categories plus artificialNoAnomaly and scores
 * the fourth): the default threshold (3.5, PERFOPT_ANOMALY_DEFAULT_THRESHOLD
 * in anomaly.h), TAIL_EXTRAPOLATE (1.5) and FAR_EXTRAPOLATE (1.0).  The
 * values shipped are those chosen on all categories (three folds of four
 * chose the same three; the fold that held realAdExchange out chose 2.5,
 * 2.5 and 1.0).  The other constants come from the
 * reasoning above and were not fitted.  docs/anomaly-capacity.md has the
 * held-out and the fitted scores, and what was tried and dropped.
 *
 * Time order.  The detector must see the points in time order (seasons,
 * the sampling step); perfopt_anomaly_time_order() gives callers a stable
 * sort by time (repeated times keep their input order, a NaN time goes
 * last), so that detect_anomalies() and the anomaly job feed a series the
 * same way.  A point without a finite time gets no verdict.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "models/anomaly.h"

/* baselines */
#define LOCAL_WINDOW		16
#define OFFSET_WINDOW		12
#define TREND_PENALTY		1.1
#define MIN_DAYS			3
#define MIN_WEEKS			2
#define DAY_DEPTH			7
#define WEEK_DEPTH			4
#define DAY_BINS_MAX		288
#define WEEK_DAY_BINS_MAX	96
#define WEEK_BINS_MAX		(7 * WEEK_DAY_BINS_MAX)
#define MIN_DAY_BINS		12
#define STEP_SAMPLES		32
#define SELECTION_MIN		64.0
#define SELECTION_MAX		8192.0

/* scale */
#define ERROR_WINDOW		256
#define HEAP_ARITY			3
#define MAD_TO_SIGMA		1.4826
#define MEAN_ERROR_FLOOR	1.2533141373155003	/* sqrt(pi / 2) */
#define RELATIVE_FLOOR		1e-4
#define ABSOLUTE_FLOOR		1e-12
#define SCORE_LIMIT			1e9

/* events */
#define WARMUP				256
#define TAIL_START			(ERROR_WINDOW / 2)
#define TAIL_HISTORY		4096
#define TAIL_QUANTILE		0.99
#define TAIL_LOW_QUANTILE	0.90
#define TAIL_EXTRAPOLATE	1.5
#define FAR_EXTRAPOLATE		1.0
#define TAIL_BINS			128
#define TAIL_FIRST_EDGE		0.25
#define TAIL_RATIO			1.08
/* a table of guesses of the bin, per 1/32 of a factor of two */
#define TAIL_GUESS_BITS		5
#define TAIL_GUESS_FIRST_OCTAVE (-2)	/* 2^-2 = TAIL_FIRST_EDGE */
#define TAIL_GUESS_OCTAVES	14		/* up to 2^12, past the last bin's edge */
#define TAIL_GUESS_CELLS	(TAIL_GUESS_OCTAVES << TAIL_GUESS_BITS)
#define DENSITY_WINDOW		16
#define DENSITY_MIN			5
#define EXCURSION_QUIET		12

#define FAR_QUANTILE		0.999
#define SECONDS_PER_DAY		86400.0
#define SCRATCH_SIZE		(3 * DAY_DEPTH)

enum
{
	BASELINE_LEVEL,
	BASELINE_TREND,
	BASELINE_DAILY,
	BASELINE_WEEKLY,
	N_BASELINES
};

/*
 * A short window of recent values (at most LOCAL_WINDOW) kept both in
 * arrival order and sorted: its median, minimum and maximum are read
 * directly.
 */
typedef struct SortedWindow
{
	int			capacity;
	int			count;
	int			oldest;
	double		ring[LOCAL_WINDOW];
	double		sorted[LOCAL_WINDOW];
	unsigned char slot_of[LOCAL_WINDOW];	/* ring slot of sorted[i] */
	unsigned char rank_of[LOCAL_WINDOW];	/* where ring[j] is in sorted */
} SortedWindow;

/*
 * One half of a MedianWindow: a max-heap of values (each node has
 * HEAP_ARITY children: six levels for 128 values, against eight in a
 * binary heap, and measured faster than two or four), each with the ring slot
 * it came from.  The upper half stores its values negated, so
 * that one max-heap serves both halves (negation is exact).
 */
typedef struct HalfHeap
{
	int			count;
	short		tag;			/* added to positions in MedianWindow.where */
	double		value[ERROR_WINDOW / 2 + HEAP_ARITY];
	short		slot[ERROR_WINDOW / 2 + HEAP_ARITY];
} HalfHeap;

/*
 * A window of the last ERROR_WINDOW values whose median is read at every
 * point: the lower half in a max-heap, the upper half in a min-heap, each
 * value findable by its ring slot.  A new value takes the oldest one's
 * place in its heap and moves up or down a few levels, and at most one
 * value changes halves, so a point costs a few comparisons instead of
 * keeping 256 values sorted.
 */
typedef struct MedianWindow
{
	int			count;
	int			oldest;
	double		ring[ERROR_WINDOW];
	short		where[ERROR_WINDOW];	/* heap position of each slot, plus
										 * the heap's tag */
	HalfHeap	low;			/* the count / 2 smallest values */
	HalfHeap	high;			/* the others, negated */
} MedianWindow;

/* What one season bin saw during one day (or week) */
typedef struct SeasonCell
{
	long		period;
	long		count;
	double		sum;
} SeasonCell;

/*
 * The last profile value computed, for the next point in the same bin and
 * period (a bin covers several points when the sampling is finer than the
 * bin); season_add() forgets it when it changes a cell the value came from.
 */
typedef struct SeasonCache
{
	int			valid;
	int			bin;
	long		period;
	int			have;
	double		value;
} SeasonCache;

/* Counts of recent values in bins, over a sliding window of points */
typedef struct TailHistory
{
	int			count;
	int			next;
	int			bins[TAIL_BINS];
	unsigned char ring[TAIL_HISTORY];
} TailHistory;

typedef struct AnomalyState
{
	double		threshold;
	double		tail_extrapolate;
	double		density_min;
	double		excursion_quiet;
	double		far_extrapolate;
	double		mean_error_floor;
	double		tail_start;
	long		finite_points;

	/* sampling step, inferred from the first intervals */
	int			step_count;
	double		step_samples[STEP_SAMPLES];
	double		last_time;
	int			day_bins;		/* 0 until the step is known */
	int			week_day_bins;
	double		selection_rate;
	double		selection_points;	/* 1 / selection_rate */

	/* baselines */
	SortedWindow recent;
	SortedWindow day_offsets;
	SortedWindow week_offsets;
	SeasonCell	day_cells[DAY_BINS_MAX * DAY_DEPTH];
	int			day_newest[DAY_BINS_MAX];
	SeasonCell	week_cells[WEEK_BINS_MAX * WEEK_DEPTH];
	int			week_newest[WEEK_BINS_MAX];
	SeasonCache day_cache;
	SeasonCache week_cache;

	/* how well each baseline has been doing */
	MedianWindow errors[N_BASELINES];
	double		mean_error[N_BASELINES];
	long		error_samples[N_BASELINES];

	/* what is usual for this series */
	double		tail_thresholds[TAIL_BINS];	/* see tail_thresholds_init() */
	unsigned char tail_guess[TAIL_GUESS_CELLS];	/* see tail_bin() */
	TailHistory score_tail[N_BASELINES];
	TailHistory density_tail;
	unsigned char exceed_ring[DENSITY_WINDOW];
	int			exceed_next;
	int			exceed_count;

	int			in_excursion;
	int			quiet_run;
	PerfoptAnomalyReason reason;	/* why the last report was made */

	double		scratch[SCRATCH_SIZE];
	long		scratch_periods[SCRATCH_SIZE];
} AnomalyState;

/* What the baselines say about the current point */
typedef struct Prediction
{
	int			have[N_BASELINES];
	double		value[N_BASELINES];
	int			have_day;
	int			have_week;
	double		day_profile;
	double		week_profile;
	int			day_bin;
	int			week_bin;
	long		day;
	long		week;
} Prediction;


/*
 * k-th smallest of n values, reordering them (Wirth's selection: a partial
 * quicksort that only follows the side holding k; linear on average).
 */
static double
select_kth(double *v, int n, int k)
{
	int			lo = 0;
	int			hi = n - 1;

	while (lo < hi)
	{
		double		pivot = v[k];
		int			i = lo;
		int			j = hi;

		do
		{
			while (v[i] < pivot)
				i++;
			while (pivot < v[j])
				j--;
			if (i <= j)
			{
				double		t = v[i];

				v[i] = v[j];
				v[j] = t;
				i++;
				j--;
			}
		} while (i <= j);
		if (j < k)
			lo = i;
		if (k < i)
			hi = j;
	}
	return v[k];
}

/*
 * Order two values (a compare-exchange of a sorting network).  Written as a
 * minimum and a maximum, not as a swap, so that it compiles to minsd and
 * maxsd rather than to a branch that mispredicts half the time.  (Of two
 * equal values of opposite zero signs both come out as a; nothing reads
 * the sign of a zero.)
 */
#define SORT2(a, b) \
	do { \
		double		lo_ = (b) < (a) ? (b) : (a); \
		double		hi_ = (a) < (b) ? (b) : (a); \
		(a) = lo_; \
		(b) = hi_; \
	} while (0)

/* Sort 8 values: Batcher's network of 19 compare-exchanges, no branch */
static inline void
sort8(double *v)
{
	SORT2(v[0], v[1]); SORT2(v[2], v[3]); SORT2(v[4], v[5]); SORT2(v[6], v[7]);
	SORT2(v[0], v[2]); SORT2(v[1], v[3]); SORT2(v[4], v[6]); SORT2(v[5], v[7]);
	SORT2(v[1], v[2]); SORT2(v[5], v[6]);
	SORT2(v[0], v[4]); SORT2(v[1], v[5]); SORT2(v[2], v[6]); SORT2(v[3], v[7]);
	SORT2(v[2], v[4]); SORT2(v[3], v[5]);
	SORT2(v[1], v[2]); SORT2(v[3], v[4]); SORT2(v[5], v[6]);
}

/* Median of n > 0 values, reordering them */
static double
median_in_place(double *v, int n)
{
	int			k = n / 2;
	double		upper;
	double		lower;
	int			i;

	if (n <= 8)
	{
		/* the usual profile: a few days; sorted by the network, padded */
		double		u[8];

		for (i = 0; i < 8; i++)
			u[i] = i < n ? v[i] : INFINITY;
		sort8(u);
		if (n % 2 == 1)
			return u[k];
		return 0.5 * (u[k - 1] + u[k]);
	}
	upper = select_kth(v, n, k);
	if (n % 2 == 1)
		return upper;
	/* even count: the largest value left of position k is the other middle */
	lower = v[0];
	for (i = 1; i < k; i++)
		if (v[i] > lower)
			lower = v[i];
	return 0.5 * (lower + upper);
}

/* Prepare a sorted window holding at most capacity values */
static void
window_init(SortedWindow *w, int capacity)
{
	w->capacity = capacity;
	w->count = 0;
	w->oldest = 0;
}

/* Put value x, of ring slot j, at position i of the sorted values */
static inline void
window_place(SortedWindow *w, int i, double x, int j)
{
	w->sorted[i] = x;
	w->slot_of[i] = (unsigned char) j;
	w->rank_of[j] = (unsigned char) i;
}

/*
 * Add a value, dropping the oldest one when the window is full.  The new
 * value takes the dropped one's place, found by its ring slot, and moves
 * past the values it is greater than (or not greater than, going down): it
 * ends before the values equal to it.  The windows are short, so moving
 * values one by one costs less than a search and a call of memmove.
 */
static void
window_push(SortedWindow *w, double x)
{
	double	   *sorted = w->sorted;
	int			i,
				j;

	if (w->count == w->capacity)
	{
		double		old = w->ring[w->oldest];

		j = w->oldest;
		w->ring[j] = x;
		if (++w->oldest == w->capacity)
			w->oldest = 0;
		i = w->rank_of[j];
		if (x > old)
		{
			while (i + 1 < w->count && sorted[i + 1] < x)
			{
				window_place(w, i, sorted[i + 1], w->slot_of[i + 1]);
				i++;
			}
		}
		else
		{
			while (i > 0 && sorted[i - 1] >= x)
			{
				window_place(w, i, sorted[i - 1], w->slot_of[i - 1]);
				i--;
			}
		}
		window_place(w, i, x, j);
		return;
	}

	j = w->count;				/* oldest is 0 until the window is full */
	w->ring[j] = x;
	i = w->count++;
	while (i > 0 && sorted[i - 1] >= x)
	{
		window_place(w, i, sorted[i - 1], w->slot_of[i - 1]);
		i--;
	}
	window_place(w, i, x, j);
}

/* Median of a non-empty sorted window */
static double
window_median(const SortedWindow *w)
{
	int			k = w->count / 2;

	if (w->count % 2 == 1)
		return w->sorted[k];
	return 0.5 * (w->sorted[k - 1] + w->sorted[k]);
}

/*
 * Median of half of a full window of LOCAL_WINDOW values in arrival order:
 * the older half (from = 0) or the newer one (from = LOCAL_WINDOW / 2).
 * sort8() sorts the 8 values without a branch.
 */
static double
ring_half_median(const SortedWindow *w, int from)
{
	double		v[LOCAL_WINDOW / 2];
	int			i;

	for (i = 0; i < LOCAL_WINDOW / 2; i++)
		v[i] = w->ring[(unsigned) (w->oldest + from + i) % LOCAL_WINDOW];
	sort8(v);
	return 0.5 * (v[3] + v[4]);
}

/* Put an entry at position i of a heap, and note where its slot went */
static inline void
heap_place(MedianWindow *w, HalfHeap *h, int i, double v, short slot)
{
	h->value[i] = v;
	h->slot[i] = slot;
	w->where[slot] = (short) (h->tag + i);
}

/* Move the entry at position i up to where it belongs (a max-heap) */
static void
heap_sift_up(MedianWindow *w, HalfHeap *h, int i)
{
	double		v = h->value[i];
	short		slot = h->slot[i];

	while (i > 0)
	{
		int			parent = (i - 1) / HEAP_ARITY;

		if (!(h->value[parent] < v))
			break;
		heap_place(w, h, i, h->value[parent], h->slot[parent]);
		i = parent;
	}
	heap_place(w, h, i, v, slot);
}

/* Move the entry at position i down to where it belongs (a max-heap) */
static void
heap_sift_down(MedianWindow *w, HalfHeap *h, int i)
{
	double		v = h->value[i];
	short		slot = h->slot[i];

	for (;;)
	{
		int			first = HEAP_ARITY * i + 1;
		int			child = first;
		int			k;

		if (first >= h->count)
			break;
		/* the largest child (past count: -infinity) */
		for (k = 1; k < HEAP_ARITY; k++)
			child = h->value[first + k] > h->value[child] ? first + k : child;
		if (!(h->value[child] > v))
			break;
		heap_place(w, h, i, h->value[child], h->slot[child]);
		i = child;
	}
	heap_place(w, h, i, v, slot);
}

/* Add an entry to a heap */
static void
heap_insert(MedianWindow *w, HalfHeap *h, double v, short slot)
{
	int			i = h->count++;

	heap_place(w, h, i, v, slot);
	heap_sift_up(w, h, i);
}

/*
 * Replace the top of a heap by a new entry; the old top is returned in
 * *v and *slot.
 */
static void
heap_replace_top(MedianWindow *w, HalfHeap *h, double nv, short nslot,
				 double *v, short *slot)
{
	*v = h->value[0];
	*slot = h->slot[0];
	heap_place(w, h, 0, nv, nslot);
	heap_sift_down(w, h, 0);
}

/* Empty a median window */
static void
median_window_init(MedianWindow *w)
{
	int			i;

	w->count = 0;
	w->oldest = 0;
	w->low.count = 0;
	w->low.tag = 0;
	w->high.count = 0;
	w->high.tag = ERROR_WINDOW;
	for (i = 0; i < ERROR_WINDOW / 2 + HEAP_ARITY; i++)
		w->low.value[i] = w->high.value[i] = -INFINITY;
	memset(w->low.slot, 0, sizeof(w->low.slot));
	memset(w->high.slot, 0, sizeof(w->high.slot));
}

/*
 * Add a value to a median window, dropping the oldest one when it is full.
 * The lower heap keeps count / 2 values, the upper one the rest, and no
 * value of the lower is greater than one of the upper.
 */
static void
median_window_push(MedianWindow *w, double x)
{
	HalfHeap   *low = &w->low;
	HalfHeap   *high = &w->high;
	double		moved;
	short		moved_slot;

	if (w->count < ERROR_WINDOW)
	{
		short		slot = (short) w->count++;

		w->ring[slot] = x;
		if (low->count == high->count)
		{
			/* the upper half grows: by x, or by the lower half's largest */
			if (low->count > 0 && x < low->value[0])
			{
				heap_replace_top(w, low, x, slot, &moved, &moved_slot);
				heap_insert(w, high, -moved, moved_slot);
			}
			else
				heap_insert(w, high, -x, slot);
		}
		else
		{
			/* the lower half grows: by x, or by the upper half's smallest */
			if (x > -high->value[0])
			{
				heap_replace_top(w, high, -x, slot, &moved, &moved_slot);
				heap_insert(w, low, -moved, moved_slot);
			}
			else
				heap_insert(w, low, x, slot);
		}
		return;
	}

	/*
	 * Full: x takes the place of the oldest value.  If x belongs to the same
	 * half, it stays in that heap; otherwise the other half's top takes the
	 * old value's place (it is the new extreme of this half) and x replaces
	 * that top.
	 */
	{
		short		slot = (short) w->oldest;
		int			pos = w->where[slot];
		double		old = w->ring[slot];

		if (++w->oldest == ERROR_WINDOW)
			w->oldest = 0;
		w->ring[slot] = x;
		if (pos < high->tag)
		{
			if (x > -high->value[0])
			{
				heap_replace_top(w, high, -x, slot, &moved, &moved_slot);
				heap_place(w, low, pos, -moved, moved_slot);
				heap_sift_up(w, low, pos);
			}
			else
			{
				low->value[pos] = x;
				if (x > old)
					heap_sift_up(w, low, pos);
				else
					heap_sift_down(w, low, pos);
			}
		}
		else
		{
			pos -= high->tag;
			if (x < low->value[0])
			{
				heap_replace_top(w, low, x, slot, &moved, &moved_slot);
				heap_place(w, high, pos, -moved, moved_slot);
				heap_sift_up(w, high, pos);
			}
			else
			{
				high->value[pos] = -x;
				if (x < old)
					heap_sift_up(w, high, pos);
				else
					heap_sift_down(w, high, pos);
			}
		}
	}
}

/* Median of a non-empty median window */
static double
median_window_median(const MedianWindow *w)
{
	if (w->count % 2 == 1)
		return -w->high.value[0];
	return 0.5 * (w->low.value[0] + -w->high.value[0]);
}

/* Empty a tail history */
static void
tail_init(TailHistory *h)
{
	h->count = 0;
	h->next = 0;
	memset(h->bins, 0, sizeof(h->bins));
}

/*
 * Logarithmic bin of a score magnitude: bin b ends at 0.25 * 1.08^b.  This
 * is the definition; the detector reads the bins from tail_thresholds
 * (below), which give the same bins without a logarithm a point.
 */
static int
tail_bin_by_log(double x)
{
	int			b;

	if (!(x >= TAIL_FIRST_EDGE))
		return 0;
	b = 1 + (int) (log(x / TAIL_FIRST_EDGE) / log(TAIL_RATIO));
	return b < TAIL_BINS ? b : TAIL_BINS - 1;
}

/*
 * For b = 1 .. TAIL_BINS - 1, thresholds[b - 1] = the smallest value that
 * tail_bin_by_log() puts in bin b or above: the edge 0.25 * 1.08^(b-1),
 * moved by a few units in the last place to where the logarithm's rounding
 * puts the boundary.
 */
static void
tail_thresholds_init(double *thresholds)
{
	int			b;

	for (b = 1; b < TAIL_BINS; b++)
	{
		double		x = TAIL_FIRST_EDGE * pow(TAIL_RATIO, b - 1);

		while (x > TAIL_FIRST_EDGE && tail_bin_by_log(nextafter(x, 0.0)) >= b)
			x = nextafter(x, 0.0);
		while (tail_bin_by_log(x) < b)
			x = nextafter(x, INFINITY);
		thresholds[b - 1] = x;
	}
	thresholds[TAIL_BINS - 1] = INFINITY;
}

/*
 * Logarithmic bin of a score magnitude, as tail_bin_by_log() gives it: the
 * number of thresholds at or below x, by a binary search.
 */
static int
tail_bin_search(const double *thresholds, double x)
{
	int			pos = 0;
	int			step;

	for (step = TAIL_BINS / 2; step > 0; step /= 2)
		pos += (thresholds[pos + step - 1] <= x) ? step : 0;
	return pos;
}

/*
 * The cell of the guess table that holds x >= TAIL_FIRST_EDGE: its binary
 * exponent (from that of TAIL_FIRST_EDGE) and the first TAIL_GUESS_BITS
 * bits of its mantissa.  A cell spans 1/32 of a factor of two, less than a
 * bin (a factor of 1.08), so it meets at most two bins.
 */
static inline int
tail_guess_cell(double x)
{
	uint64_t	bits;
	int			octave;

	memcpy(&bits, &x, sizeof(bits));
	octave = (int) ((bits >> 52) & 0x7ff) - 1023 - TAIL_GUESS_FIRST_OCTAVE;
	if (octave >= TAIL_GUESS_OCTAVES)
		return -1;
	return (octave << TAIL_GUESS_BITS) +
		(int) ((bits >> (52 - TAIL_GUESS_BITS)) & ((1 << TAIL_GUESS_BITS) - 1));
}

/* Fill the guess table: the bin of each cell's smallest value */
static void
tail_guess_init(const double *thresholds, unsigned char *guess)
{
	int			cell;

	for (cell = 0; cell < TAIL_GUESS_CELLS; cell++)
	{
		double		lowest = ldexp(1.0 + (double) (cell & ((1 << TAIL_GUESS_BITS) - 1)) /
								   (1 << TAIL_GUESS_BITS),
								   TAIL_GUESS_FIRST_OCTAVE + (cell >> TAIL_GUESS_BITS));

		guess[cell] = (unsigned char) tail_bin_search(thresholds, lowest);
	}
}

/*
 * Logarithmic bin of a score magnitude, as tail_bin_by_log() gives it: the
 * bin of x's cell in the guess table, or the next one if x is past that
 * one's threshold.
 */
static inline int
tail_bin(const double *thresholds, const unsigned char *guess, double x)
{
	int			cell,
				b;

	if (!(x >= TAIL_FIRST_EDGE))
		return 0;
	cell = tail_guess_cell(x);
	if (cell < 0)
		return TAIL_BINS - 1;
	b = guess[cell];
	return b + (thresholds[b] <= x);
}

/* Upper edge of a logarithmic bin */
static double
tail_edge(int b)
{
	return TAIL_FIRST_EDGE * pow(TAIL_RATIO, b);
}

/* Record a bin, forgetting the oldest record when the history is full */
static void
tail_push(TailHistory *h, int b)
{
	if (h->count == TAIL_HISTORY)
		h->bins[h->ring[h->next]]--;
	else
		h->count++;
	h->ring[h->next] = (unsigned char) b;
	h->bins[b]++;
	h->next = (h->next + 1) % TAIL_HISTORY;
}

/* Bin holding the q-quantile of the history (q = 1: the largest value) */
static int
tail_quantile_bin(const TailHistory *h, double q)
{
	int			above = (int) floor((1.0 - q) * h->count);
	int			seen = 0;
	int			b;

	for (b = TAIL_BINS - 1; b > 0; b--)
	{
		seen += h->bins[b];
		if (seen > above)
			return b;
	}
	return 0;
}

/* Empty the cells of a seasonal profile */
static void
season_init(SeasonCell *cells, int *newest, int nbins, int depth)
{
	int			i;

	for (i = 0; i < nbins * depth; i++)
	{
		cells[i].period = 0;
		cells[i].count = 0;
		cells[i].sum = 0.0;
	}
	for (i = 0; i < nbins; i++)
		newest[i] = 0;
}

/*
 * Add a value to its bin's cell for the current day (or week).  The cached
 * profile value is forgotten if the cell is one it may have read: in its
 * bin or a neighbour (of nbins), of an earlier period, or a cell reused.
 */
static void
season_add(SeasonCell *cells, int *newest, int depth, int nbins, int bin,
		   long period, double x, SeasonCache *cache)
{
	SeasonCell *c = &cells[bin * depth + newest[bin]];
	int			reused = 0;

	if (c->count > 0 && c->period != period)
	{
		newest[bin] = (newest[bin] + 1) % depth;
		c = &cells[bin * depth + newest[bin]];
		c->count = 0;
		c->sum = 0.0;
		reused = 1;
	}
	c->period = period;
	c->count++;
	c->sum += x;

	if (cache->valid && (reused || period < cache->period))
	{
		int			distance = (bin - cache->bin + nbins) % nbins;

		if (distance <= 1 || distance == nbins - 1)
			cache->valid = 0;
	}
}

/*
 * Append the bin's means of earlier periods to values and their periods to
 * periods; returns how many.
 */
static int
season_collect(const SeasonCell *cells, int depth, int bin, long period,
			   double *values, long *periods)
{
	int			n = 0;
	int			i;

	for (i = 0; i < depth; i++)
	{
		const SeasonCell *c = &cells[bin * depth + i];

		if (c->count > 0 && c->period < period)
		{
			values[n] = c->sum / c->count;
			periods[n] = c->period;
			n++;
		}
	}
	return n;
}

/* Number of distinct values among n periods (n is small) */
static int
distinct_periods(const long *periods, int n)
{
	int			distinct = 0;
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		for (j = 0; j < i; j++)
			if (periods[j] == periods[i])
				break;
		if (j == i)
			distinct++;
	}
	return distinct;
}

/*
 * Profile value of a bin: the median, over earlier periods, of the bin's
 * means.  A bin seen in too few periods
 * borrows its neighbours' cells instead (sparse or irregular sampling), but
 * the profile still needs min_periods distinct earlier periods.  Returns 0
 * when there are not enough.
 */
static int
season_expect(const SeasonCell *cells, int depth, int nbins, int bin,
			  long period, int min_periods, double *values,
			  long *periods, double *result)
{
	int			before = (bin + nbins - 1) % nbins;
	int			after = (bin + 1) % nbins;
	int			n = season_collect(cells, depth, bin, period, values, periods);

	if (n < min_periods)
	{
		n += season_collect(cells, depth, before, period, values + n,
							periods + n);
		n += season_collect(cells, depth, after, period, values + n,
							periods + n);
		if (distinct_periods(periods, n) < min_periods)
			return 0;
	}
	*result = median_in_place(values, n);
	return 1;
}

/* season_expect(), or its value for the previous point if still valid */
static int
season_expect_cached(SeasonCache *cache, const SeasonCell *cells, int depth,
					 int nbins, int bin, long period, int min_periods,
					 double *values, long *periods, double *result)
{
	if (!cache->valid || cache->bin != bin || cache->period != period)
	{
		cache->have = season_expect(cells, depth, nbins, bin, period,
									min_periods, values, periods,
									&cache->value);
		cache->valid = 1;
		cache->bin = bin;
		cache->period = period;
	}
	if (cache->have)
		*result = cache->value;
	return cache->have;
}

/* Size of the state block; it holds every window, so it is fixed */
long
perfopt_anomaly_state_size(void)
{
	return (long) sizeof(AnomalyState);
}

/* Reset the state for a new series; a threshold that is not > 0 means the default (3.5) */
void
perfopt_anomaly_init(void *state, double threshold)
{
	AnomalyState *s = (AnomalyState *) state;
	int			m;

	s->threshold = (threshold > 0 && isfinite(threshold)) ?
		threshold : PERFOPT_ANOMALY_DEFAULT_THRESHOLD;
	s->tail_extrapolate = TAIL_EXTRAPOLATE;
	s->density_min = DENSITY_MIN;
	s->excursion_quiet = EXCURSION_QUIET;
	s->far_extrapolate = FAR_EXTRAPOLATE;
	s->mean_error_floor = MEAN_ERROR_FLOOR;
	s->tail_start = TAIL_START;
	s->finite_points = 0;
	s->step_count = 0;
	s->last_time = NAN;
	s->day_bins = 0;
	s->week_day_bins = 0;
	s->selection_rate = 1.0 / ERROR_WINDOW;
	s->selection_points = ERROR_WINDOW;

	window_init(&s->recent, LOCAL_WINDOW);
	window_init(&s->day_offsets, OFFSET_WINDOW);
	window_init(&s->week_offsets, OFFSET_WINDOW);
	season_init(s->day_cells, s->day_newest, DAY_BINS_MAX, DAY_DEPTH);
	season_init(s->week_cells, s->week_newest, WEEK_BINS_MAX, WEEK_DEPTH);
	s->day_cache.valid = 0;
	s->week_cache.valid = 0;

	for (m = 0; m < N_BASELINES; m++)
	{
		median_window_init(&s->errors[m]);
		s->mean_error[m] = 0.0;
		s->error_samples[m] = 0;
		tail_init(&s->score_tail[m]);
	}
	tail_init(&s->density_tail);
	tail_thresholds_init(s->tail_thresholds);
	tail_guess_init(s->tail_thresholds, s->tail_guess);
	memset(s->exceed_ring, 0, sizeof(s->exceed_ring));
	s->exceed_next = 0;
	s->exceed_count = 0;
	s->in_excursion = 0;
	s->quiet_run = 0;
	memset(&s->reason, 0, sizeof(s->reason));
}

/*
 * Fix the sampling step (median of the first intervals) and what follows
 * from it: bins per day and the memory of the baseline selection.
 */
static void
infer_step(AnomalyState *s)
{
	double		intervals[STEP_SAMPLES];
	double		step,
				bins,
				per_day;

	memcpy(intervals, s->step_samples, sizeof(intervals));
	step = median_in_place(intervals, STEP_SAMPLES);
	per_day = SECONDS_PER_DAY / step;

	bins = floor(per_day + 0.5);
	if (bins > DAY_BINS_MAX)
		bins = DAY_BINS_MAX;
	if (bins < 1)
		bins = 1;
	s->day_bins = (int) bins;
	s->week_day_bins = bins > WEEK_DAY_BINS_MAX ? WEEK_DAY_BINS_MAX : (int) bins;

	if (per_day < SELECTION_MIN)
		per_day = SELECTION_MIN;
	if (per_day > SELECTION_MAX)
		per_day = SELECTION_MAX;
	s->selection_rate = 1.0 / per_day;
	s->selection_points = per_day;
}

/* Every baseline's prediction for a point at the given time */
static void
predict(AnomalyState *s, double time, Prediction *p)
{
	int			m;

	for (m = 0; m < N_BASELINES; m++)
		p->have[m] = 0;
	p->have_day = p->have_week = 0;
	p->day_bin = p->week_bin = 0;
	p->day = p->week = 0;

	if (s->recent.count > 0)
	{
		p->value[BASELINE_LEVEL] = window_median(&s->recent);
		p->have[BASELINE_LEVEL] = 1;
	}
	if (s->recent.count == LOCAL_WINDOW)
	{
		int			half = LOCAL_WINDOW / 2;
		double		newer = ring_half_median(&s->recent, half);
		double		older = ring_half_median(&s->recent, 0);
		double		slope = (newer - older) / half;
		double		lowest = s->recent.sorted[0];
		double		highest = s->recent.sorted[s->recent.count - 1];
		double		v;

		/* the newest half's median stands (half + 1) / 2 points back */
		v = newer + slope * (half + 1) * 0.5;
		p->value[BASELINE_TREND] = v < lowest ? lowest : (v > highest ? highest : v);
		p->have[BASELINE_TREND] = 1;
	}

	if (s->day_bins > 0)
	{
		double		dayf = floor(time / SECONDS_PER_DAY);
		double		second_of_day = time - dayf * SECONDS_PER_DAY;
		long		dow;
		int			slot;

		p->day = (long) dayf;
		/* multiply first, so whole seconds fall into the right bin exactly */
		p->day_bin = (int) (second_of_day * s->day_bins / SECONDS_PER_DAY);
		if (p->day_bin >= s->day_bins)
			p->day_bin = s->day_bins - 1;

		/* 1970-01-01 was a Thursday; weeks start on Monday */
		dow = ((p->day + 3) % 7 + 7) % 7;
		p->week = (p->day + 3 - dow) / 7;
		slot = (int) (second_of_day * s->week_day_bins / SECONDS_PER_DAY);
		if (slot >= s->week_day_bins)
			slot = s->week_day_bins - 1;
		p->week_bin = (int) dow * s->week_day_bins + slot;

		if (s->day_bins >= MIN_DAY_BINS)
			p->have_day = season_expect_cached(&s->day_cache, s->day_cells,
											   DAY_DEPTH, s->day_bins,
											   p->day_bin, p->day, MIN_DAYS,
											   s->scratch, s->scratch_periods,
											   &p->day_profile);
		p->have_week = season_expect_cached(&s->week_cache, s->week_cells,
											WEEK_DEPTH, 7 * s->week_day_bins,
											p->week_bin, p->week, MIN_WEEKS,
											s->scratch, s->scratch_periods,
											&p->week_profile);
		if (p->have_day && s->day_offsets.count > 0)
		{
			p->value[BASELINE_DAILY] = p->day_profile +
				window_median(&s->day_offsets);
			p->have[BASELINE_DAILY] = 1;
		}
		if (p->have_week && s->week_offsets.count > 0)
		{
			p->value[BASELINE_WEEKLY] = p->week_profile +
				window_median(&s->week_offsets);
			p->have[BASELINE_WEEKLY] = 1;
		}
	}
}

/* Smallest meaningful scale around the current level */
static double
scale_floor(const Prediction *p)
{
	double		f = 0.0;

	if (p->have[BASELINE_LEVEL])
		f = RELATIVE_FLOOR * fabs(p->value[BASELINE_LEVEL]);
	return f > ABSOLUTE_FLOOR ? f : ABSOLUTE_FLOOR;
}

/*
 * The baseline that has predicted best over about the last day (smallest
 * mean absolute error), among those with enough errors to judge; the level
 * when none qualifies yet, -1 before the first value.
 */
static int
choose_baseline(const AnomalyState *s, const Prediction *p, double scale_min)
{
	int			best = -1;
	double		best_error = 0.0;
	int			m;

	for (m = 0; m < N_BASELINES; m++)
	{
		double		error;

		if (!p->have[m] || s->errors[m].count < ERROR_WINDOW / 2)
			continue;
		error = s->mean_error[m] * (m == BASELINE_TREND ? TREND_PENALTY : 1.0) +
			scale_min;
		if (best < 0 || error < best_error)
		{
			best = m;
			best_error = error;
		}
	}
	if (best < 0 && p->have[BASELINE_LEVEL])
		best = BASELINE_LEVEL;
	return best;
}

/* Robust scale of a baseline's recent errors, with its floors */
static double
baseline_scale(const AnomalyState *s, int m, double scale_min)
{
	const MedianWindow *w = &s->errors[m];
	double		scale = 0.0;

	if (w->count > 0)
	{
		double		mean_floor = s->mean_error_floor * s->mean_error[m];

		scale = MAD_TO_SIGMA * median_window_median(w);
		if (scale < mean_floor)
			scale = mean_floor;
	}
	return scale > scale_min ? scale : scale_min;
}

/*
 * Is this deviation surprising for the series?  Either larger than the
 * baseline's extrapolated score tail, or part of a denser run of
 * exceedances than the history holds.
 */
static int
is_surprising(AnomalyState *s, int m, double abs_score)
{
	const TailHistory *tail = &s->score_tail[m];
	double		high = tail_edge(tail_quantile_bin(tail, TAIL_QUANTILE));
	double		low = tail_edge(tail_quantile_bin(tail, TAIL_LOW_QUANTILE));
	double		bar = high + s->tail_extrapolate * (high - low);
	int			densest = tail_quantile_bin(&s->density_tail, 1.0);

	/* with enough history, the tail extrapolated past its 99.9th percentile */
	if (s->far_extrapolate >= 0 && tail->count >= 2.0 / (1.0 - FAR_QUANTILE))
	{
		double		far = tail_edge(tail_quantile_bin(tail, FAR_QUANTILE));
		double		far_bar = far + s->far_extrapolate * (far - high);

		if (far_bar > bar)
			bar = far_bar;
	}

	s->reason.baseline = m;
	s->reason.tail = bar;
	s->reason.exceedances = s->exceed_count;
	s->reason.window = DENSITY_WINDOW;
	s->reason.usual_exceedances = densest;
	if (abs_score >= bar)
	{
		s->reason.kind = PERFOPT_ANOMALY_SPIKE;
		return 1;
	}
	if (s->exceed_count >= s->density_min && s->exceed_count > densest)
	{
		s->reason.kind = PERFOPT_ANOMALY_SHIFT;
		return 1;
	}
	return 0;
}

/* Learn from a finite value: errors, profiles, level windows */
static void
learn(AnomalyState *s, const Prediction *p, double value)
{
	int			m;

	for (m = 0; m < N_BASELINES; m++)
	{
		double		error,
					rate;

		if (!p->have[m])
			continue;
		error = fabs(value - p->value[m]);
		/*
		 * plain mean until the average has a day's memory (past that, 1 / n
		 * is at most selection_rate: no need to divide)
		 */
		rate = s->selection_rate;
		if (s->error_samples[m] + 1 <= s->selection_points)
		{
			rate = 1.0 / (s->error_samples[m] + 1);
			if (rate < s->selection_rate)
				rate = s->selection_rate;
		}
		s->mean_error[m] += rate * (error - s->mean_error[m]);
		s->error_samples[m]++;
		median_window_push(&s->errors[m], error);
	}

	window_push(&s->recent, value);

	if (p->have_day)
		window_push(&s->day_offsets, value - p->day_profile);
	if (p->have_week)
		window_push(&s->week_offsets, value - p->week_profile);
	if (s->day_bins > 0)
	{
		season_add(s->day_cells, s->day_newest, DAY_DEPTH, s->day_bins,
				   p->day_bin, p->day, value, &s->day_cache);
		season_add(s->week_cells, s->week_newest, WEEK_DEPTH,
				   7 * s->week_day_bins, p->week_bin, p->week, value,
				   &s->week_cache);
	}
	s->finite_points++;
}

/*
 * Judge the next point from what came before, then learn from it: the
 * whole method for one point (see the comment at the top of the file).
 */
void
perfopt_anomaly_update(void *state, double time, double value,
					   double *expected, double *score, int *is_anomaly)
{
	AnomalyState *s = (AnomalyState *) state;
	Prediction	p;
	double		scale_min;
	double		z[N_BASELINES];
	int			best;
	int			m;
	int			record;

	*expected = NAN;
	*score = NAN;
	*is_anomaly = 0;
	if (!isfinite(time))
		return;

	if (s->day_bins == 0 && isfinite(s->last_time) && time > s->last_time)
	{
		s->step_samples[s->step_count++] = time - s->last_time;
		if (s->step_count == STEP_SAMPLES)
			infer_step(s);
	}
	s->last_time = time;

	predict(s, time, &p);
	scale_min = scale_floor(&p);
	best = choose_baseline(s, &p, scale_min);
	if (best >= 0)
		*expected = p.value[best];
	if (!isfinite(value))
		return;
	if (best < 0)
	{
		/* the very first value: nothing to compare it with */
		*score = 0.0;
		learn(s, &p, value);
		return;
	}

	/* every baseline's score, for its own tail history */
	for (m = 0; m < N_BASELINES; m++)
	{
		double		zm;

		if (!p.have[m])
			continue;
		zm = (value - p.value[m]) / baseline_scale(s, m, scale_min);
		z[m] = zm > SCORE_LIMIT ? SCORE_LIMIT :
			(zm < -SCORE_LIMIT ? -SCORE_LIMIT : zm);
	}
	*score = z[best];

	/* exceedances among the last DENSITY_WINDOW points */
	{
		int			exceed = fabs(z[best]) >= s->threshold;

		s->exceed_count += exceed - s->exceed_ring[s->exceed_next];
		s->exceed_ring[s->exceed_next] = (unsigned char) exceed;
		s->exceed_next = (s->exceed_next + 1) % DENSITY_WINDOW;

		record = !s->in_excursion;
		if (s->in_excursion)
		{
			s->quiet_run = exceed ? 0 : s->quiet_run + 1;
			if (s->quiet_run >= s->excursion_quiet)
				s->in_excursion = 0;
		}
		else if (exceed && s->finite_points >= WARMUP &&
				 is_surprising(s, best, fabs(z[best])))
		{
			*is_anomaly = 1;
			s->in_excursion = 1;
			s->quiet_run = 0;
			record = 1;

			/*
			 * The report teaches the tails that scores up to the bar it
			 * cleared occur, not how far past it this one went: an incident
			 * of 200 deviations would otherwise lift the 99.9th percentile,
			 * and with it the bar, above the next incident for days.
			 */
			for (m = 0; m < N_BASELINES; m++)
				if (p.have[m] && fabs(z[m]) > s->reason.tail)
					z[m] = copysign(s->reason.tail, z[m]);
		}
	}

	/* what is usual: points outside excursions and each excursion's start */
	if (record && s->finite_points >= s->tail_start)
	{
		tail_push(&s->density_tail, s->exceed_count);
		for (m = 0; m < N_BASELINES; m++)
			if (p.have[m])
				tail_push(&s->score_tail[m],
						  tail_bin(s->tail_thresholds, s->tail_guess,
								   fabs(z[m])));
	}

	learn(s, &p, value);
}

/* Is the series inside an excursion that the detector reported? */
int
perfopt_anomaly_in_excursion(const void *state)
{
	return ((const AnomalyState *) state)->in_excursion;
}

/*
 * Set one of the fitted constants by name, for the cross-validation driver
 * (test/bench/anomaly_driver.c); returns 0, or -1 for an unknown name.
 */
int
perfopt_anomaly_set_param(void *state, const char *name, double value)
{
	AnomalyState *s = (AnomalyState *) state;

	if (strcmp(name, "threshold") == 0)
		s->threshold = value;
	else if (strcmp(name, "tail_extrapolate") == 0)
		s->tail_extrapolate = value;
	else if (strcmp(name, "density_min") == 0)
		s->density_min = value;
	else if (strcmp(name, "excursion_quiet") == 0)
		s->excursion_quiet = value;
	else if (strcmp(name, "far_extrapolate") == 0)
		s->far_extrapolate = value;
	else if (strcmp(name, "tail_start") == 0)
		s->tail_start = value;
	else if (strcmp(name, "mean_error_floor") == 0)
		s->mean_error_floor = value;
	else
		return -1;
	return 0;
}

/* Does time a come before time b?  A NaN time comes after every other. */
static inline int
time_before(double a, double b)
{
	return a < b || (isnan(b) && !isnan(a));
}

/*
 * Stable merge sort of point indexes by time: order[] receives 0..n-1 so
 * that times[order[k]] never decreases and equal times keep their input
 * order.  scratch holds n more entries.
 */
void
perfopt_anomaly_time_order(const double *times, long n, long *order,
						   long *scratch)
{
	long		width;
	long		i;

	for (i = 0; i < n; i++)
		order[i] = i;
	/* the usual case, already in order, costs one pass */
	for (i = 1; i < n; i++)
		if (time_before(times[i], times[i - 1]))
			break;
	if (i >= n)
		return;
	for (width = 1; width < n; width *= 2)
	{
		long		lo;
		for (lo = 0; lo < n; lo += 2 * width)
		{
			long		mid = lo + width < n ? lo + width : n;
			long		hi = lo + 2 * width < n ? lo + 2 * width : n;
			long		a = lo,
						b = mid,
						k = lo;

			while (a < mid && b < hi)
				scratch[k++] = time_before(times[order[b]], times[order[a]]) ?
					order[b++] : order[a++];
			while (a < mid)
				scratch[k++] = order[a++];
			while (b < hi)
				scratch[k++] = order[b++];
		}
		memcpy(order, scratch, sizeof(long) * n);
	}
}

/* Why the last reported point was reported */
void
perfopt_anomaly_last_reason(const void *state, PerfoptAnomalyReason *reason)
{
	*reason = ((const AnomalyState *) state)->reason;
}
