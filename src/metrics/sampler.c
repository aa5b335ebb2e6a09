/*-------------------------------------------------------------------------
 *
 * sampler.c
 *	  The metrics sampler: what the server is doing, every
 *	  perfopt.sample_interval, into perfopt.metrics.
 *
 * A sample reads the cumulative statistics views, the WAL position, the
 * file system of the data directory and perfopt's own latency histograms,
 * and records one row per (metric, entity) through perfopt.record_metrics.
 * Counters become rates per second from the difference with the previous
 * sample taken by the same process.  A counter that went down, or whose
 * view reports a statistics reset since the previous sample, is counted
 * from the reset instead, so a reset never shows as a negative spike; with
 * no reset time to go by, the rate is left out of that one sample.  The
 * first sample of a process has no previous one and records only levels.
 *
 * The metric names, their units and their entities are listed in
 * docs/workers.md.
 *
 * Each sample also refreshes the sizes of the database's tables and
 * indexes that perfopt keeps in shared memory (table_state.c), reading the
 * files of only those that changed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/statvfs.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "metrics/latency.h"
#include "metrics/table_state.h"
#include "perfopt.h"

/* Statements whose own percentiles each sample records */
#define SAMPLE_TOP_STATEMENTS	5

/* Largest tables whose sizes each sample records */
#define SAMPLE_TOP_TABLES		10

/* Tables with the most dead rows whose counts each sample records */
#define SAMPLE_DEAD_TABLES		10

PG_FUNCTION_INFO_V1(perfopt_sample_metrics);

/* The rows of one sample, before they are recorded */
typedef struct Sample
{
	double		now;			/* seconds since the Unix epoch */
	int			n;
	int			size;
	Datum	   *metrics;
	Datum	   *entities;
	Datum	   *values;
} Sample;

/* A counter as the previous sample saw it */
#define COUNTER_KEY_LEN 192
typedef struct Counter
{
	char		key[COUNTER_KEY_LEN];	/* metric and entity */
	double		value;
	double		reset;			/* the view's stats_reset, 0 if unknown */
	double		at;				/* when it was read */
} Counter;

static HTAB *previous_counters = NULL;

static void
sample_add(Sample *sample, const char *metric, const char *entity, double value)
{
	if (sample->n == sample->size)
	{
		sample->size *= 2;
		sample->metrics = repalloc(sample->metrics, sample->size * sizeof(Datum));
		sample->entities = repalloc(sample->entities, sample->size * sizeof(Datum));
		sample->values = repalloc(sample->values, sample->size * sizeof(Datum));
	}
	sample->metrics[sample->n] = CStringGetTextDatum(metric);
	sample->entities[sample->n] = CStringGetTextDatum(entity ? entity : "");
	sample->values[sample->n] = Float8GetDatum(value);
	sample->n++;
}

/*
 * How much a counter grew since the previous sample, and over how many
 * seconds; false when that cannot be told (first sight, or a reset at an
 * unknown time).
 */
static bool
counter_delta(Sample *sample, const char *metric, const char *entity,
			  double value, double reset, double *delta, double *seconds)
{
	char		key[COUNTER_KEY_LEN];
	Counter    *counter;
	bool		found;
	bool		known = false;

	if (previous_counters == NULL)
	{
		HASHCTL		info;

		info.keysize = COUNTER_KEY_LEN;
		info.entrysize = sizeof(Counter);
		previous_counters = hash_create("perfopt sampler counters", 256, &info,
										HASH_ELEM | HASH_STRINGS);
	}

	memset(key, 0, sizeof(key));
	snprintf(key, sizeof(key), "%s\t%s", metric, entity ? entity : "");
	counter = hash_search(previous_counters, key, HASH_ENTER, &found);

	if (found)
	{
		if (value >= counter->value && reset == counter->reset)
		{
			*delta = value - counter->value;
			*seconds = sample->now - counter->at;
			known = true;
		}
		else if (reset > counter->at && reset < sample->now)
		{
			/* reset since the previous sample: all of value came after it */
			*delta = value;
			*seconds = sample->now - reset;
			known = true;
		}
	}

	counter->value = value;
	counter->reset = reset;
	counter->at = sample->now;
	return known && *seconds > 0;
}

/* Record a counter as a rate per second */
static void
sample_rate(Sample *sample, const char *metric, const char *entity,
			double value, double reset)
{
	double		delta,
				seconds;

	if (counter_delta(sample, metric, entity, value, reset, &delta, &seconds))
		sample_add(sample, metric, entity, delta / seconds);
}

/* Run a read-only query of the sampler, with nargs arguments */
static void
sample_query_args(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	int			ret = SPI_execute_with_args(sql, nargs, argtypes, values, NULL, true, 0);

	if (ret != SPI_OK_SELECT)
		elog(ERROR, "perfopt sampler query failed: %s", SPI_result_code_string(ret));
}

static void
sample_query(const char *sql)
{
	sample_query_args(sql, 0, NULL, NULL);
}

/* Column col (1-based) of row as float8; 0 for NULL */
static double
column_float8(uint64 row, int col)
{
	bool		isnull;
	Datum		value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
									  col, &isnull);

	return isnull ? 0 : DatumGetFloat8(value);
}

static char *
column_text(uint64 row, int col)
{
	char	   *value = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return value ? value : "";
}

/* Transactions, rows, cache hits, temp files, deadlocks and size per database */
static void
sample_databases(Sample *sample)
{
	sample_query("SELECT d.datname::text,"
				 "       xact_commit::float8, xact_rollback::float8,"
				 "       tup_returned::float8, tup_fetched::float8, tup_inserted::float8,"
				 "       tup_updated::float8, tup_deleted::float8,"
				 "       blks_hit::float8, blks_read::float8,"
				 "       temp_bytes::float8, deadlocks::float8,"
				 "       coalesce(extract(epoch FROM stats_reset), 0)::float8,"
				 "       pg_database_size(d.oid)::float8"
				 "  FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid"
				 " WHERE NOT d.datistemplate"
				 " ORDER BY 1");

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *db = column_text(i, 1);
		double		commits = column_float8(i, 2);
		double		rollbacks = column_float8(i, 3);
		double		hit = column_float8(i, 9);
		double		read = column_float8(i, 10);
		double		reset = column_float8(i, 13);
		double		d_hit,
					d_read,
					seconds;
		bool		hit_known,
					read_known;

		sample_rate(sample, "transactions_per_sec", db, commits + rollbacks, reset);
		sample_rate(sample, "commits_per_sec", db, commits, reset);
		sample_rate(sample, "rollbacks_per_sec", db, rollbacks, reset);
		sample_rate(sample, "rows_returned_per_sec", db, column_float8(i, 4), reset);
		sample_rate(sample, "rows_fetched_per_sec", db, column_float8(i, 5), reset);
		sample_rate(sample, "rows_inserted_per_sec", db, column_float8(i, 6), reset);
		sample_rate(sample, "rows_updated_per_sec", db, column_float8(i, 7), reset);
		sample_rate(sample, "rows_deleted_per_sec", db, column_float8(i, 8), reset);
		sample_rate(sample, "temp_bytes_per_sec", db, column_float8(i, 11), reset);
		sample_rate(sample, "deadlocks_per_sec", db, column_float8(i, 12), reset);
		sample_add(sample, "database_size_bytes", db, column_float8(i, 14));

		/* rolled back transactions, in percent of those that ended */
		{
			double		d_commits,
						d_rollbacks;

			if (counter_delta(sample, "commits", db, commits, reset, &d_commits, &seconds) &&
				counter_delta(sample, "rollbacks", db, rollbacks, reset, &d_rollbacks, &seconds) &&
				d_commits + d_rollbacks > 0)
				sample_add(sample, "error_rate_pct", db,
						   100.0 * d_rollbacks / (d_commits + d_rollbacks));
		}

		/* the hit ratio of the interval, when blocks were asked for */
		hit_known = counter_delta(sample, "blocks_hit", db, hit, reset, &d_hit, &seconds);
		read_known = counter_delta(sample, "blocks_read", db, read, reset, &d_read, &seconds);
		if (hit_known && read_known && d_hit + d_read > 0)
			sample_add(sample, "cache_hit_ratio", db, 100.0 * d_hit / (d_hit + d_read));
	}
}

/* The count of sample_sessions' row (kind, name), 0 without one */
static double
session_count(const char *kind, const char *name)
{
	for (uint64 i = 0; i < SPI_processed; i++)
		if (strcmp(column_text(i, 1), kind) == 0 && strcmp(column_text(i, 2), name) == 0)
			return column_float8(i, 3);
	return 0;
}

/* Client connections by state, and active ones waiting, by wait event type */
static void
sample_sessions(Sample *sample)
{
	static const char *const states[] = {"active", "idle", "idle in transaction",
	"idle in transaction (aborted)"};
	static const char *const waits[] = {"Lock", "LWLock", "IO", "IPC", "BufferPin"};
	double		total = 0;

	sample_query("SELECT 'state', coalesce(state, 'unknown'), count(*)::float8"
				 "  FROM pg_stat_activity WHERE backend_type = 'client backend'"
				 " GROUP BY 2"
				 " UNION ALL "
				 "SELECT 'wait', wait_event_type, count(*)::float8"
				 "  FROM pg_stat_activity"
				 " WHERE backend_type = 'client backend' AND state = 'active'"
				 "   AND wait_event_type IS NOT NULL AND pid <> pg_backend_pid()"
				 " GROUP BY 2"
				 " UNION ALL "
				 "SELECT 'max', '', current_setting('max_connections')::float8");

	/* the usual states and wait types are recorded even when none is seen */
	for (int s = 0; s < lengthof(states); s++)
		sample_add(sample, "connections", states[s], session_count("state", states[s]));
	for (int w = 0; w < lengthof(waits); w++)
		sample_add(sample, "waiting_sessions", waits[w], session_count("wait", waits[w]));

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *kind = column_text(i, 1);
		char	   *name = column_text(i, 2);
		bool		usual = false;

		if (strcmp(kind, "max") == 0)
		{
			sample_add(sample, "max_connections", "", column_float8(i, 3));
			continue;
		}
		if (strcmp(kind, "state") == 0)
			total += column_float8(i, 3);
		for (int s = 0; s < lengthof(states) && !usual; s++)
			usual = (strcmp(kind, "state") == 0 && strcmp(name, states[s]) == 0);
		for (int w = 0; w < lengthof(waits) && !usual; w++)
			usual = (strcmp(kind, "wait") == 0 && strcmp(name, waits[w]) == 0);
		if (!usual)
			sample_add(sample, strcmp(kind, "state") == 0 ? "connections" : "waiting_sessions",
					   name, column_float8(i, 3));
	}
	sample_add(sample, "connections", "total", total);
}

/*
 * The oldest open transaction, the oldest xmin that holds back vacuum, and
 * how far the oldest database is from transaction ID wraparound
 */
static void
sample_horizons(Sample *sample)
{
	sample_query("SELECT coalesce((SELECT extract(epoch FROM max(clock_timestamp() - xact_start))"
				 "                   FROM pg_stat_activity"
				 "                  WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
				 "                    AND backend_type = 'client backend'), 0)::float8,"
				 "       greatest((SELECT max(age(backend_xmin)) FROM pg_stat_activity"
				 "                  WHERE pid <> pg_backend_pid()),"
				 "                (SELECT max(greatest(age(xmin), age(catalog_xmin)))"
				 "                   FROM pg_replication_slots),"
				 "                (SELECT max(age(transaction)) FROM pg_prepared_xacts),"
				 "                0)::float8,"
				 "       (SELECT max(age(datfrozenxid)) FROM pg_database)::float8");
	sample_add(sample, "oldest_xact_age_sec", "", column_float8(0, 1));
	sample_add(sample, "oldest_xmin_age_xids", "", column_float8(0, 2));
	sample_add(sample, "frozenxid_age_xids", "", column_float8(0, 3));
}

/* Replication lag per standby, WAL kept by slots, and WAL written */
static void
sample_wal(Sample *sample)
{
	sample_query("SELECT 'standby', coalesce(nullif(application_name, ''), 'pid ' || pid),"
				 "       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8,"
				 "       coalesce(extract(epoch FROM replay_lag), 0)::float8"
				 "  FROM pg_stat_replication"
				 " UNION ALL "
				 "SELECT 'slot', slot_name::text,"
				 "       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8, 0"
				 "  FROM pg_replication_slots WHERE restart_lsn IS NOT NULL"
				 " UNION ALL "
				 "SELECT 'wal', '', pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8, 0");

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *kind = column_text(i, 1);
		char	   *name = column_text(i, 2);

		if (strcmp(kind, "standby") == 0)
		{
			sample_add(sample, "replication_lag_bytes", name, column_float8(i, 3));
			sample_add(sample, "replication_lag_sec", name, column_float8(i, 4));
		}
		else if (strcmp(kind, "slot") == 0)
			sample_add(sample, "replication_slot_retained_bytes", name, column_float8(i, 3));
		else
			sample_rate(sample, "wal_bytes_per_sec", "", column_float8(i, 3), 0);
	}
}

/* Checkpoints, timed and requested */
static void
sample_checkpoints(Sample *sample)
{
	double		reset;

	sample_query("SELECT checkpoints_timed::float8, checkpoints_req::float8,"
				 "       coalesce(extract(epoch FROM stats_reset), 0)::float8"
				 "  FROM pg_stat_bgwriter");
	reset = column_float8(0, 3);
	sample_rate(sample, "checkpoints_timed_per_sec", "", column_float8(0, 1), reset);
	sample_rate(sample, "checkpoints_requested_per_sec", "", column_float8(0, 2), reset);
}

/* Free and total space of the file system at path */
static void
sample_file_system(Sample *sample, const char *path, const char *entity)
{
	struct statvfs fs;

	if (statvfs(path, &fs) != 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not read the file system of \"%s\": %m", path)));
		return;
	}
	sample_add(sample, "disk_free_bytes", entity, (double) fs.f_bavail * fs.f_frsize);
	sample_add(sample, "disk_total_bytes", entity, (double) fs.f_blocks * fs.f_frsize);
	if (fs.f_blocks > 0)
		sample_add(sample, "disk_used_pct", entity,
				   100.0 * (double) (fs.f_blocks - fs.f_bfree) / fs.f_blocks);
}

/*
 * The host's CPU use over the interval (from /proc/stat: the share of
 * jiffies not idle or waiting for I/O) and its memory use (from
 * /proc/meminfo: what is not available to new work).  Linux only; on other
 * systems nothing is recorded.
 */
static void
sample_host(Sample *sample)
{
	FILE	   *file;
	char		line[256];

	file = AllocateFile("/proc/stat", "r");
	if (file != NULL)
	{
		unsigned long long user,
					nice,
					system,
					idle,
					iowait,
					irq,
					softirq,
					steal;

		if (fgets(line, sizeof(line), file) != NULL &&
			sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
				   &user, &nice, &system, &idle, &iowait, &irq, &softirq, &steal) == 8)
		{
			double		busy = (double) (user + nice + system + irq + softirq + steal);
			double		total = busy + (double) (idle + iowait);
			double		d_busy,
						d_total,
						seconds;

			if (counter_delta(sample, "cpu_busy", "", busy, 0, &d_busy, &seconds) &&
				counter_delta(sample, "cpu_total", "", total, 0, &d_total, &seconds) &&
				d_total > 0)
				sample_add(sample, "cpu_usage_pct", "", 100.0 * d_busy / d_total);
		}
		FreeFile(file);
	}

	file = AllocateFile("/proc/meminfo", "r");
	if (file != NULL)
	{
		double		total = -1,
					available = -1;

		while (fgets(line, sizeof(line), file) != NULL)
		{
			unsigned long long kb;

			if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
				total = (double) kb;
			else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
				available = (double) kb;
		}
		if (total > 0 && available >= 0)
			sample_add(sample, "memory_used_pct", "", 100.0 * (total - available) / total);
		FreeFile(file);
	}
}

/* The data directory's file system, and pg_wal's when it is another one */
static void
sample_disks(Sample *sample)
{
	struct statvfs data,
				wal;
	char		wal_path[MAXPGPATH];

	snprintf(wal_path, sizeof(wal_path), "%s/pg_wal", DataDir);
	sample_file_system(sample, DataDir, "data_directory");
	if (statvfs(DataDir, &data) == 0 && statvfs(wal_path, &wal) == 0 &&
		data.f_fsid != wal.f_fsid)
		sample_file_system(sample, wal_path, "pg_wal");
}

/*
 * Sizes of the largest tables of this database, indexes and TOAST
 * included; the page counts of pg_class pick the candidates, so that only
 * a few tables' files are measured.  Returns those tables' OIDs, for
 * sample_dead_tuples.
 */
static ArrayType *
sample_tables(Sample *sample)
{
	char		sql[1024];
	Datum	   *oids;

	snprintf(sql, sizeof(sql),
			 "SELECT format('%%I.%%I', n.nspname, c.relname), pg_total_relation_size(c.oid)::float8, c.oid"
			 "  FROM (SELECT c.oid FROM pg_class c"
			 "          LEFT JOIN pg_class t ON t.oid = c.reltoastrelid"
			 "         WHERE c.relkind IN ('r', 'm')"
			 "         ORDER BY c.relpages + coalesce(t.relpages, 0) DESC LIMIT %d) top"
			 "  JOIN pg_class c ON c.oid = top.oid"
			 "  JOIN pg_namespace n ON n.oid = c.relnamespace"
			 " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
			 " ORDER BY 2 DESC LIMIT %d",
			 SAMPLE_TOP_TABLES * 3, SAMPLE_TOP_TABLES);
	sample_query(sql);
	oids = palloc(Max(SPI_processed, 1) * sizeof(Datum));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		sample_add(sample, "table_size_bytes", column_text(i, 1), column_float8(i, 2));
		oids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull);
	}
	return construct_array(oids, (int) SPI_processed, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
}

/*
 * Dead rows of this database's tables, as the statistics count them: the
 * tables with the most, and the largest tables, whose sizes sample_tables
 * just recorded (largest: their OIDs), so that a large table's count is
 * there also at 0, after a vacuum, and a rule on it sees the vacuum's effect.
 */
static void
sample_dead_tuples(Sample *sample, ArrayType *largest)
{
	char	   *sql;

	/*
	 * pg_stat_user_tables' tables and n_dead_tup, read once from pg_class:
	 * the view joins every table to its indexes and groups them, and was
	 * read twice (61 against 29 ms a sample at 10,000 tables); equal counts
	 * in OID order
	 */
	sql = psprintf("WITH t AS MATERIALIZED ("
				   "    SELECT c.oid, n.nspname, c.relname, pg_stat_get_dead_tuples(c.oid) AS dead"
				   "      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
				   "     WHERE c.relkind IN ('r', 't', 'm', 'p')"
				   "       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast')"
				   "SELECT format('%%I.%%I', t.nspname, t.relname), t.dead::float8"
				   "  FROM t"
				   " WHERE t.oid IN (SELECT oid FROM t ORDER BY dead DESC, oid LIMIT %d)"
				   "    OR t.oid = ANY ($1)",
				   SAMPLE_DEAD_TABLES);
	sample_query_args(sql, 1, (Oid[]) {OIDARRAYOID}, (Datum[]) {PointerGetDatum(largest)});
	pfree(sql);
	for (uint64 i = 0; i < SPI_processed; i++)
		sample_add(sample, "dead_tuples", column_text(i, 1), column_float8(i, 2));
}

/* Latency percentiles of the interval: all statements, then the busiest */
static void
sample_latency(Sample *sample)
{
	LatencyFigures all;
	List	   *top;
	ListCell   *lc;
	double		seconds;
	static double last_at = 0;

	if (!perfopt_latency_available())
		return;

	top = perfopt_latency_since_last_call(SAMPLE_TOP_STATEMENTS, &all);
	seconds = sample->now - last_at;
	last_at = sample->now;
	if (all.calls == 0)
		return;

	sample_add(sample, "latency_p50_ms", "", all.p50_ms);
	sample_add(sample, "latency_p95_ms", "", all.p95_ms);
	sample_add(sample, "latency_p99_ms", "", all.p99_ms);
	sample_add(sample, "statements_per_sec", "", all.calls / seconds);

	foreach(lc, top)
	{
		LatencyFigures *f = (LatencyFigures *) lfirst(lc);
		char		entity[32];

		snprintf(entity, sizeof(entity), INT64_FORMAT, (int64) f->queryid);
		sample_add(sample, "latency_p50_ms", entity, f->p50_ms);
		sample_add(sample, "latency_p95_ms", entity, f->p95_ms);
		sample_add(sample, "latency_p99_ms", entity, f->p99_ms);
		sample_add(sample, "statements_per_sec", entity, f->calls / seconds);
	}
}

/* Record the sample through perfopt.record_metrics */
static void
sample_record(Sample *sample, TimestampTz ts)
{
	Oid			types[4] = {TIMESTAMPTZOID, TEXTARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID};
	Datum		values[4];
	int			ret;

	values[0] = TimestampTzGetDatum(ts);
	values[1] = PointerGetDatum(construct_array(sample->metrics, sample->n, TEXTOID,
												-1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(sample->entities, sample->n, TEXTOID,
												-1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(sample->values, sample->n, FLOAT8OID,
												sizeof(float8), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	ret = SPI_execute_with_args("SELECT perfopt.record_metrics($1, $2, $3, $4)",
								4, types, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "perfopt sampler could not record: %s", SPI_result_code_string(ret));
}

/*
 * sample_metrics(): take one sample and record it; returns the number of
 * rows recorded.  The launcher calls it every perfopt.sample_interval.
 */
Datum
perfopt_sample_metrics(PG_FUNCTION_ARGS)
{
	TimestampTz ts = perfopt_now();
	Sample		sample;

	memset(&sample, 0, sizeof(sample));
	sample.now = (double) (ts - SetEpochTimestamp()) / USECS_PER_SEC;
	sample.size = 128;
	sample.metrics = palloc(sample.size * sizeof(Datum));
	sample.entities = palloc(sample.size * sizeof(Datum));
	sample.values = palloc(sample.size * sizeof(Datum));

	SPI_connect();
	sample_databases(&sample);
	sample_sessions(&sample);
	sample_horizons(&sample);
	sample_wal(&sample);
	sample_checkpoints(&sample);
	sample_disks(&sample);
	sample_host(&sample);
	sample_dead_tuples(&sample, sample_tables(&sample));
	sample_latency(&sample);
	sample_record(&sample, ts);
	/* the sizes table_health and the drop candidates read (table_state.c) */
	perfopt_table_state_refresh();
	SPI_finish();

	PG_RETURN_INT32(sample.n);
}
