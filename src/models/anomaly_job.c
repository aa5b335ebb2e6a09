/*-------------------------------------------------------------------------
 *
 * anomaly_job.c
 *	  detect_anomalies() and the anomaly job.
 *
 * Both run the detector of anomaly.c.  detect_anomalies() runs it over a
 * series given as two arrays and returns a row per point.
 *
 * Both feed the detector in time order, so that both are causal in time.
 * detect_anomalies() takes its points in any order: it sorts them by time,
 * stably (repeated times keep their input order), and returns the rows in
 * input order.  The job reads each series ORDER BY ts, ctid: equal times in
 * the order they were stored.  A NULL value is a gap, and so is a stretch of
 * time without points: the detector's seasons come from the timestamps.  A
 * point stored with a time older than the newest point the job has already
 * judged (a clock set back) comes too late for the job's live run; a
 * replay, and detect_anomalies() over the stored series, put it in its
 * place in time.
 *
 * The anomaly job, perfopt.analyze_anomalies(), runs it over every series
 * of perfopt.metrics that was sampled in the last day.  The launcher calls
 * it every minute, and the process keeps one detector state per series
 * (160 kB) between calls, so that each call feeds only the points
 * recorded since the previous one.  A state that is new (the first call in
 * a process, a new series, a changed threshold) first replays the last
 * REPLAY_DAYS of the series.  perfopt.anomaly_progress remembers, per
 * series, the last point already judged, so that a replay opens no anomaly
 * twice.
 *
 * What the detector reports is statistically surprising, but not always
 * worth a DBA's time.  The job leaves out series that are routine or mere
 * settings (timed checkpoints, max_connections), and opens no anomaly for
 * a change smaller than MIN_RELATIVE_CHANGE of the expected value (sizes
 * that grow in steps) or, for counts of sessions, smaller than
 * MIN_SESSION_CHANGE sessions (one more idle connection).
 *
 * A reported point opens a row in perfopt.anomalies; the row gets its
 * resolved_at when the detector's excursion closes (EXCURSION_QUIET points
 * in a row back under the threshold).  An anomaly that starts within
 * CORRELATION_WINDOW of the first anomaly of an incident, in another series,
 * joins that incident (its group_id); otherwise it starts one.  A latency
 * spike and a connection surge at the same time are one story.
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
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "models/anomaly.h"
#include "perfopt.h"
#include "common/series.h"

/* history a new detector state replays before it judges new points */
#define REPLAY_DAYS			8

/* series sampled less recently than this are forgotten */
#define SERIES_IDLE_DAYS	1

/* the most series one process keeps a detector state for */
#define MAX_SERIES			200

/* anomalies of different series starting this close are one incident */
#define CORRELATION_WINDOW	"5 minutes"

/* changes too small to report, whatever their score */
#define MIN_RELATIVE_CHANGE	0.05
#define MIN_SESSION_CHANGE	3.0

/* a score this many thresholds out makes an anomaly critical */
#define CRITICAL_FACTOR		4.0

/* rows fetched at a time while feeding a series */
#define FETCH_ROWS			10000

#define SERIES_KEY_LEN		512

/* One series the job follows, and its detector */
typedef struct TrackedSeries
{
	char		key[SERIES_KEY_LEN];	/* metric, a 0x1f byte, entity */
	char	   *metric;
	char	   *entity;
	void	   *state;			/* the detector's state */
	double		threshold;		/* the threshold the state was made with */
	TimestampTz fed_until;		/* newest point fed to the state */
	TimestampTz judged_until;	/* newest point whose verdict was recorded */
	int64		open_anomaly;	/* anomaly_id of the open anomaly, or 0 */
	TimestampTz open_since;
	bool		seen;			/* listed by the current call */
} TrackedSeries;

static HTAB *tracked = NULL;

/* Holds the tracked series: the hash, their names and detector states */
static MemoryContext tracked_cxt = NULL;

/*
 * Set while a call runs.  If a call fails, its verdicts were rolled back
 * but its detectors had moved on: the next call starts them all afresh
 * from what perfopt.anomaly_progress says was judged.
 */
static bool analysis_running = false;

/* whether this process said already that it follows only MAX_SERIES */
static bool series_limit_logged = false;

PG_FUNCTION_INFO_V1(perfopt_detect_anomalies);
PG_FUNCTION_INFO_V1(perfopt_analyze_anomalies);

/* The threshold argument, or perfopt.anomaly_threshold when it is null */
static double
threshold_argument(FunctionCallInfo fcinfo, int argno)
{
	double		threshold;

	if (PG_ARGISNULL(argno))
		return perfopt_anomaly_threshold;
	threshold = PG_GETARG_FLOAT8(argno);
	if (!(threshold > 0) || isinf(threshold))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("threshold must be a positive number of deviations, not %g", threshold),
				 errhint("Leave it out to use perfopt.anomaly_threshold (%g).",
						 perfopt_anomaly_threshold)));
	return threshold;
}

/*
 * The reason a reported point was reported, in words a DBA can read: which
 * baseline it left, by how much, and whether it was one point far past the
 * series' usual tail (a spike) or a run of points past the threshold that
 * the series had not shown before (a shift, a burst or a rise in variance).
 */
static char *
anomaly_reason_text(const PerfoptAnomalyReason *r, double score,
					double threshold)
{
	static const char *const baselines[] = PERFOPT_ANOMALY_BASELINE_NAMES;
	const char *baseline = (r->baseline >= 0 && r->baseline < lengthof(baselines)) ?
		baselines[r->baseline] : "baseline";
	const char *side = score >= 0 ? "above" : "below";

	if (r->kind == PERFOPT_ANOMALY_SHIFT)
		return psprintf("level shift or burst: %d of the last %d points are %g or more robust deviations off the %s (at most %d before), this one %.1f %s",
						r->exceedances, r->window, threshold, baseline,
						r->usual_exceedances, fabs(score), side);
	return psprintf("spike: %.1f robust deviations %s the %s, past this series' usual tail of %.1f",
					fabs(score), side, baseline, r->tail);
}

/* A point's time for the detector: seconds, NaN for an infinite time */
static inline double
stamp_seconds(TimestampTz t)
{
	return TIMESTAMP_NOT_FINITE(t) ? NAN : perfopt_timestamptz_to_seconds(t);
}

/*
 * The points of detect_anomalies(), in arrays of their own: any order of
 * times, repeated or not.  A NULL or infinite time gives a row without a
 * verdict; a NULL value is a gap.
 */
static void
anomaly_points(ArrayType *times, ArrayType *vals, int n, TimestampTz **stamps,
			   bool **stamp_nulls, double **seconds, double **values)
{
	Datum	   *time_datums,
			   *value_datums;
	bool	   *time_nulls,
			   *value_nulls;
	int			ntimes,
				nvalues;

	*stamps = palloc(sizeof(TimestampTz) * Max(n, 1));
	*stamp_nulls = palloc0(sizeof(bool) * Max(n, 1));
	*seconds = palloc(sizeof(double) * Max(n, 1));
	*values = palloc(sizeof(double) * Max(n, 1));

	/* no NULL: read the elements in place */
	if (!ARR_HASNULL(times) && !ARR_HASNULL(vals))
	{
		const TimestampTz *t = (const TimestampTz *) ARR_DATA_PTR(times);
		const float8 *v = (const float8 *) ARR_DATA_PTR(vals);

		memcpy(*stamps, t, sizeof(TimestampTz) * n);
		memcpy(*values, v, sizeof(double) * n);
		for (int i = 0; i < n; i++)
			(*seconds)[i] = stamp_seconds(t[i]);
		return;
	}

	deconstruct_array(times, TIMESTAMPTZOID, sizeof(TimestampTz), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &time_datums, &time_nulls, &ntimes);
	deconstruct_array(vals, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &value_datums, &value_nulls, &nvalues);
	for (int i = 0; i < n; i++)
	{
		TimestampTz t = time_nulls[i] ? 0 : DatumGetTimestampTz(time_datums[i]);

		(*stamps)[i] = t;
		(*stamp_nulls)[i] = time_nulls[i];
		(*seconds)[i] = time_nulls[i] ? NAN : stamp_seconds(t);
		(*values)[i] = value_nulls[i] ? NAN : DatumGetFloat8(value_datums[i]);
	}
	pfree(time_datums);
	pfree(time_nulls);
	pfree(value_datums);
	pfree(value_nulls);
}

/*
 * Are the times already in the order the detector takes them (never one
 * before the previous, an infinite time only after every finite one)?  The
 * test of perfopt_anomaly_time_order(), so that either way gives the same
 * order.
 */
static bool
stamps_in_time_order(const TimestampTz *t, int n)
{
	double		previous = n > 0 ? stamp_seconds(t[0]) : 0;

	for (int i = 1; i < n; i++)
	{
		double		current = stamp_seconds(t[i]);

		if (current < previous || (isnan(previous) && !isnan(current)))
			return false;
		previous = current;
	}
	return true;
}

/* The reason of the point the detector just reported */
static char *
last_reason_text(void *state, double score, double threshold)
{
	PerfoptAnomalyReason reason;

	perfopt_anomaly_last_reason(state, &reason);
	return anomaly_reason_text(&reason, score, threshold);
}

/* One row of detect_anomalies(); reason is NULL on a point not reported */
static void
put_anomaly_row(ReturnSetInfo *rsinfo, TimestampTz stamp, bool stamp_null,
				double value, double expected, double score, int flagged,
				char *reason)
{
	Datum		values[6];
	bool		nulls[6];

	values[0] = TimestampTzGetDatum(stamp);
	nulls[0] = stamp_null;
	values[1] = Float8GetDatum(value);
	nulls[1] = isnan(value);
	values[2] = Float8GetDatum(expected);
	nulls[2] = !isfinite(expected);
	values[3] = Float8GetDatum(score);
	nulls[3] = !isfinite(score);
	values[4] = BoolGetDatum(flagged != 0);
	nulls[4] = false;
	values[5] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	nulls[5] = reason == NULL;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * detect_anomalies(times, vals, threshold): the detector's verdict on every
 * point, causal in time.  The points are judged in time order (a stable
 * sort: repeated times keep their input order), and the rows come back in
 * input order, one per point.
 *
 * The usual series, without NULLs and already in time order, is judged in
 * place: each point's row is stored as soon as the point is judged, with no
 * copy of the arrays and no array of results.  Any other goes through
 * arrays: sorted by time, judged, then returned in input order.
 */
Datum
perfopt_detect_anomalies(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *times_array,
			   *vals_array;
	TimestampTz *stamps;
	bool	   *stamp_nulls;
	double	   *seconds,
			   *vals;
	int			n;
	double		threshold;
	double	   *expected,
			   *score;
	int		   *flagged;
	char	  **reasons;
	long	   *order;
	void	   *state;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return (Datum) 0;		/* no series, no rows */
	times_array = PG_GETARG_ARRAYTYPE_P(0);
	vals_array = PG_GETARG_ARRAYTYPE_P(1);
	n = perfopt_series_check_arrays(times_array, vals_array,
									"Build them with array_agg(ts) and array_agg(value).");
	threshold = threshold_argument(fcinfo, 2);

	state = palloc(perfopt_anomaly_state_size());
	perfopt_anomaly_init(state, threshold);

	if (!ARR_HASNULL(times_array) && !ARR_HASNULL(vals_array) &&
		stamps_in_time_order((const TimestampTz *) ARR_DATA_PTR(times_array), n))
	{
		const TimestampTz *t = (const TimestampTz *) ARR_DATA_PTR(times_array);
		const float8 *v = (const float8 *) ARR_DATA_PTR(vals_array);

		for (int i = 0; i < n; i++)
		{
			double		point_expected,
						point_score;
			int			point_flagged;

			perfopt_anomaly_update(state, stamp_seconds(t[i]), v[i],
								   &point_expected, &point_score,
								   &point_flagged);
			put_anomaly_row(rsinfo, t[i], false, v[i], point_expected,
							point_score, point_flagged,
							point_flagged ? last_reason_text(state, point_score,
															 threshold) : NULL);
			if ((i & 0xffff) == 0)
				CHECK_FOR_INTERRUPTS();
		}
		return (Datum) 0;
	}

	anomaly_points(times_array, vals_array, n, &stamps, &stamp_nulls,
				   &seconds, &vals);
	expected = palloc(sizeof(double) * Max(n, 1));
	score = palloc(sizeof(double) * Max(n, 1));
	flagged = palloc(sizeof(int) * Max(n, 1));
	reasons = palloc0(sizeof(char *) * Max(n, 1));
	order = palloc(sizeof(long) * 2 * Max(n, 1));

	perfopt_anomaly_time_order(seconds, n, order, order + n);
	for (int k = 0; k < n; k++)
	{
		long		i = order[k];

		perfopt_anomaly_update(state, seconds[i], vals[i], &expected[i],
							   &score[i], &flagged[i]);
		if (flagged[i])
			reasons[i] = last_reason_text(state, score[i], threshold);
		if ((k & 0xffff) == 0)
			CHECK_FOR_INTERRUPTS();
	}

	for (int i = 0; i < n; i++)
		put_anomaly_row(rsinfo, stamps[i], stamp_nulls[i], vals[i],
						expected[i], score[i], flagged[i], reasons[i]);
	return (Datum) 0;
}

/* Run one SQL command of the job; SPI errors are internal errors */
static void
run_sql(const char *sql, int nargs, Oid *types, Datum *values, bool read_only)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, NULL,
											read_only, 0);

	if (ret < 0)
		elog(ERROR, "perfopt anomaly job query failed: %s", SPI_result_code_string(ret));
}

/* A timestamptz column of the first row of the last result; 0 when null */
static TimestampTz
first_row_timestamptz(int col)
{
	bool		isnull;
	Datum		value;

	if (SPI_processed == 0)
		return 0;
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(value);
}

/* Start following a series: a fresh detector, what was judged, what is open */
static void
track_series(TrackedSeries *series, const char *metric, const char *entity,
			 double threshold)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	bool		isnull;

	series->metric = NULL;
	series->entity = NULL;
	series->state = NULL;
	series->metric = MemoryContextStrdup(tracked_cxt, metric);
	series->entity = MemoryContextStrdup(tracked_cxt, entity);
	series->state = MemoryContextAlloc(tracked_cxt, perfopt_anomaly_state_size());
	perfopt_anomaly_init(series->state, threshold);
	series->threshold = threshold;
	series->fed_until = 0;

	args[0] = CStringGetTextDatum(metric);
	args[1] = CStringGetTextDatum(entity);
	run_sql("SELECT analyzed_until FROM perfopt.anomaly_progress"
			" WHERE metric = $1 AND entity = $2", 2, types, args, true);
	series->judged_until = first_row_timestamptz(1);

	run_sql("SELECT anomaly_id, detected_at FROM perfopt.anomalies"
			" WHERE metric = $1 AND entity = $2 AND resolved_at IS NULL"
			" ORDER BY detected_at DESC LIMIT 1", 2, types, args, true);
	series->open_anomaly = 0;
	if (SPI_processed > 0)
	{
		series->open_anomaly = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc,
														   1, &isnull));
		series->open_since = first_row_timestamptz(2);
	}
}

/* Stop following a series */
static void
untrack_series(TrackedSeries *series)
{
	if (series->metric)
		pfree(series->metric);
	if (series->entity)
		pfree(series->entity);
	if (series->state)
		pfree(series->state);
	hash_search(tracked, series->key, HASH_REMOVE, NULL);
}

/* Is a change of the series from expected to value big enough to report? */
static bool
change_matters(const TrackedSeries *series, double value, double expected)
{
	double		change = fabs(value - expected);

	if (!isfinite(expected))
		return true;
	if (change < MIN_RELATIVE_CHANGE * fabs(expected))
		return false;
	if ((strcmp(series->metric, "connections") == 0 ||
		 strcmp(series->metric, "waiting_sessions") == 0) &&
		change < MIN_SESSION_CHANGE)
		return false;
	return true;
}

/* Record that the detector reported a point; returns the new anomaly_id */
static int64
open_anomaly(TrackedSeries *series, TimestampTz ts, double value,
			 double expected, double score, const char *reason)
{
	Oid			types[8] = {TIMESTAMPTZOID, TEXTOID, TEXTOID, FLOAT8OID,
	FLOAT8OID, FLOAT8OID, TEXTOID, TEXTOID};
	Datum		args[8];
	char		nulls[8] = "        ";
	bool		critical = fabs(score) >= CRITICAL_FACTOR * series->threshold;
	bool		isnull;
	int			ret;

	args[0] = TimestampTzGetDatum(ts);
	args[1] = CStringGetTextDatum(series->metric);
	args[2] = CStringGetTextDatum(series->entity);
	args[3] = Float8GetDatum(value);
	args[4] = Float8GetDatum(expected);
	nulls[4] = isfinite(expected) ? ' ' : 'n';
	args[5] = Float8GetDatum(score);
	args[6] = CStringGetTextDatum(critical ? "critical" : "warning");
	args[7] = CStringGetTextDatum(reason);

	ret = SPI_execute_with_args(
								"WITH new AS (SELECT nextval('perfopt.anomalies_anomaly_id_seq') AS id)"
								" INSERT INTO perfopt.anomalies (anomaly_id, group_id, detected_at,"
								"        metric, entity, value, expected, score, severity, reason)"
								" SELECT new.id,"
								"        coalesce((SELECT a.group_id FROM perfopt.anomalies a"
								"                   WHERE a.anomaly_id = a.group_id"
								"                     AND a.detected_at BETWEEN $1 - interval '" CORRELATION_WINDOW "'"
								"                                           AND $1 + interval '" CORRELATION_WINDOW "'"
								"                     AND (a.metric, a.entity) <> ($2, $3)"
								"                   ORDER BY abs(extract(epoch FROM a.detected_at - $1)),"
								"                            a.anomaly_id"
								"                   LIMIT 1), new.id),"
								"        $1, $2, $3, $4, $5, $6, $7, $8"
								"   FROM new RETURNING anomaly_id",
								8, types, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "perfopt anomaly job could not record an anomaly: %s",
			 SPI_result_code_string(ret));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									   1, &isnull));
}

/* The series is back to normal: close its open anomaly at ts */
static void
resolve_anomaly(TrackedSeries *series, TimestampTz ts)
{
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		args[2];

	args[0] = Int64GetDatum(series->open_anomaly);
	args[1] = TimestampTzGetDatum(ts);
	run_sql("UPDATE perfopt.anomalies SET resolved_at = $2"
			" WHERE anomaly_id = $1 AND resolved_at IS NULL", 2, types, args, false);
	series->open_anomaly = 0;
}

/*
 * Feed the points of a series recorded after what its detector has seen, up
 * to now; record the verdicts on points not judged before.  Returns the
 * number of anomalies opened.
 */
static int
feed_series(TrackedSeries *series, TimestampTz now)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		args[4];
	SPIPlanPtr	plan;
	Portal		portal;
	int			opened = 0;
	TimestampTz since = series->fed_until;
	TimestampTz judged_before = series->judged_until;

	if (since == 0)
		since = now - (TimestampTz) REPLAY_DAYS * USECS_PER_DAY;

	args[0] = CStringGetTextDatum(series->metric);
	args[1] = CStringGetTextDatum(series->entity);
	args[2] = TimestampTzGetDatum(since);
	args[3] = TimestampTzGetDatum(now);
	plan = SPI_prepare("SELECT ts, value FROM perfopt.metrics"
					   " WHERE metric = $1 AND entity = $2 AND ts > $3 AND ts <= $4"
					   " ORDER BY ts, ctid", 4, types);
	if (plan == NULL)
		elog(ERROR, "perfopt anomaly job could not prepare its query: %s",
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, NULL, true);

	for (;;)
	{
		SPITupleTable *rows;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		rows = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			break;

		for (uint64 i = 0; i < nrows; i++)
		{
			bool		isnull;
			TimestampTz ts;
			double		value,
						expected,
						score;
			int			flagged;

			ts = DatumGetTimestampTz(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
			value = DatumGetFloat8(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));
			if (isnull)
				value = NAN;
			perfopt_anomaly_update(series->state, perfopt_timestamptz_to_seconds(ts),
								   value, &expected, &score, &flagged);
			series->fed_until = ts;
			if (ts <= series->judged_until)
				continue;		/* replayed: judged by an earlier call */

			if (series->open_anomaly != 0 &&
				(flagged || !perfopt_anomaly_in_excursion(series->state)))
				resolve_anomaly(series, ts);
			if (flagged && change_matters(series, value, expected))
			{
				PerfoptAnomalyReason reason;

				perfopt_anomaly_last_reason(series->state, &reason);
				series->open_anomaly =
					open_anomaly(series, ts, value, expected, score,
								 anomaly_reason_text(&reason, score,
													 series->threshold));
				series->open_since = ts;
				opened++;
			}
			series->judged_until = ts;
		}
		SPI_freetuptable(rows);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);

	/* remember how far this series was judged */
	if (series->judged_until != judged_before)
	{
		Oid			ptypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
		Datum		pargs[3];

		pargs[0] = args[0];
		pargs[1] = args[1];
		pargs[2] = TimestampTzGetDatum(series->judged_until);
		run_sql("INSERT INTO perfopt.anomaly_progress (metric, entity, analyzed_until)"
				" VALUES ($1, $2, $3)"
				" ON CONFLICT (metric, entity) DO UPDATE SET analyzed_until = excluded.analyzed_until",
				3, ptypes, pargs, false);
	}
	return opened;
}

/*
 * analyze_anomalies(): the anomaly job.  Feeds every recently sampled series
 * of perfopt.metrics to its detector; returns the number of anomalies opened.
 */
Datum
perfopt_analyze_anomalies(PG_FUNCTION_ARGS)
{
	TimestampTz now = perfopt_now();
	double		threshold = perfopt_anomaly_threshold;
	Datum		args[1];
	Oid			types[1] = {TIMESTAMPTZOID};
	HASH_SEQ_STATUS scan;
	TrackedSeries *series;
	SPITupleTable *list;
	uint64		nlisted;
	int			opened = 0;

	if (tracked == NULL)
	{
		HASHCTL		ctl;

		tracked_cxt = AllocSetContextCreate(TopMemoryContext,
											"perfopt anomaly series",
											ALLOCSET_DEFAULT_SIZES);
		ctl.keysize = SERIES_KEY_LEN;
		ctl.entrysize = sizeof(TrackedSeries);
		ctl.hcxt = tracked_cxt;
		tracked = hash_create("perfopt anomaly series", 64, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}

	SPI_connect();

	args[0] = TimestampTzGetDatum(now - (TimestampTz) SERIES_IDLE_DAYS * USECS_PER_DAY);
	run_sql("SELECT metric, entity FROM perfopt.metrics_latest WHERE ts > $1"
			"   AND metric NOT IN ('checkpoints_timed_per_sec', 'max_connections')"
			" ORDER BY metric, entity", 1, types, args, true);
	list = SPI_tuptable;
	nlisted = SPI_processed;
	if (nlisted > MAX_SERIES && !series_limit_logged)
	{
		series_limit_logged = true;
		ereport(LOG,
				(errmsg("perfopt anomaly job follows the first %d of %llu series",
						MAX_SERIES, (unsigned long long) nlisted),
				 errhint("Series are taken in order of metric and entity.")));
	}

	hash_seq_init(&scan, tracked);
	while ((series = hash_seq_search(&scan)) != NULL)
	{
		series->seen = false;
		if (analysis_running)
			untrack_series(series);
	}
	analysis_running = true;

	for (uint64 i = 0; i < nlisted && i < MAX_SERIES; i++)
	{
		char	   *metric = SPI_getvalue(list->vals[i], list->tupdesc, 1);
		char	   *entity = SPI_getvalue(list->vals[i], list->tupdesc, 2);
		char		key[SERIES_KEY_LEN];
		bool		found;

		if (entity == NULL)
			entity = "";
		snprintf(key, sizeof(key), "%s\x1f%s", metric, entity);
		series = hash_search(tracked, key, HASH_ENTER, &found);
		if (found && series->threshold != threshold)
		{
			untrack_series(series);
			series = hash_search(tracked, key, HASH_ENTER, &found);
		}
		if (!found)
			track_series(series, metric, entity, threshold);
		series->seen = true;
		opened += feed_series(series, now);
	}

	/* forget the series that are no longer sampled */
	hash_seq_init(&scan, tracked);
	while ((series = hash_seq_search(&scan)) != NULL)
		if (!series->seen)
			untrack_series(series);

	analysis_running = false;
	SPI_finish();
	PG_RETURN_INT32(opened);
}
