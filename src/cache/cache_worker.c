/*-------------------------------------------------------------------------
 *
 * cache_worker.c
 *	  The perfopt cache invalidator: a background worker that sends the
 *	  committed invalidations of perfopt.cache_invalidations to Redis.
 *
 * The worker sleeps on its latch.  A transaction that queued invalidations
 * sets that latch when it commits (an XactCallback at XACT_EVENT_COMMIT,
 * which runs once the commit is visible to others), through a pointer the
 * worker keeps in a small shared memory struct; so an invalidation leaves
 * within a millisecond or so of the commit, and a rolled-back transaction
 * wakes nobody.  Without a wake-up the worker still looks every second.
 *
 * One batch is one transaction: DELETE ... RETURNING takes the oldest rows
 * (one per committed transaction, holding its keys) while their keys fit
 * in perfopt.cache_batch_size, at least one row (by id, as a range, which
 * costs a third of deleting a list of ids), the distinct keys go to Redis
 * as UNLINKs and PUBLISHes on perfopt.cache_channel of at most 1,000 keys
 * each, pipelined, and only
 * when Redis has confirmed both does the transaction commit.  Any error
 * (Redis down, a refused command, a crash, kill -9) rolls the DELETE back,
 * so the rows are sent again later: an invalidation can be repeated but is
 * never lost, and never sent before its transaction committed.  Pattern
 * invalidations walk the keyspace with SCAN ... MATCH, never KEYS.
 *
 * While Redis cannot be reached the worker retries with a doubling delay
 * (100 ms to 2 s) on its latch, so it stays responsive to SIGTERM and
 * SIGHUP, reports the error in perfopt.cache_metrics and logs it once per
 * change, not once per retry.  It connects to Redis only when there is
 * something to send.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "bgw/worker.h"
#include "cache/cache_worker.h"
#include "cache/redis.h"

char	   *perfopt_cache_channel = NULL;
int			perfopt_cache_batch_size = 1000;
int			perfopt_cache_batch_delay = 2;

/* How long the worker sleeps when nobody wakes it */
#define CACHE_IDLE_SLEEP_MS		1000

/* Retry delays while Redis fails */
#define CACHE_BACKOFF_MIN_MS	100
#define CACHE_BACKOFF_MAX_MS	2000

/* Seconds before the postmaster restarts a worker that died */
#define CACHE_RESTART_SECONDS	1

/* How often a batch starts from the lowest id */
#define CACHE_FULL_SCAN_MS		10000

/* Keys in one UNLINK (and one PUBLISH) */
#define UNLINK_KEYS				1000

/* Keys SCAN is asked for per call */
#define SCAN_COUNT				"1000"

#define CACHE_ERROR_LEN			512

/*
 * What the worker shares with backends.  The spinlock guards the small
 * fields above error_changes, a few instructions at a time.  The last error
 * is written only by the worker and read without a lock, as backends'
 * activity strings are (pgstat_begin_write_activity): the worker bumps
 * error_changes to odd, writes, and bumps it back to even; a reader copies
 * and retries until it saw the same even count before and after.
 */
typedef struct CacheShared
{
	slock_t		mutex;
	Latch	   *latch;			/* the worker's, NULL when it is not running */
	pid_t		pid;
	bool		connected;		/* to Redis, as of the last attempt */
	int64		late_low;		/* lowest id committed since the worker looked */
	uint64		sent;			/* distinct keys and patterns Redis confirmed */
	uint64		batches;
	TimestampTz last_sent_at;
	pg_atomic_uint32 error_changes; /* odd while the worker writes the error */
	TimestampTz error_at;
	char		error[CACHE_ERROR_LEN];
	/* perfopt's own keyspace lookups, guarded by mutex (see below) */
	char		own_run_id[CACHE_RUN_ID_LEN];
	uint64		own_hits;
	uint64		own_misses;
	uint64		own_seen_total;
} CacheShared;

static CacheShared *cache_shared = NULL;


/* In backends: whether this transaction queued something, and its lowest id */
static bool wake_pending = false;
static int64 xact_low = PG_INT64_MAX;
static bool xact_callback_registered = false;

/* In the worker: the connection, its settings, memory, retry delay */
static redisContext *redis = NULL;
static char *redis_settings = NULL;
static MemoryContext batch_cxt = NULL;
static int	backoff_ms = 0;
static char logged_error[CACHE_ERROR_LEN];

/*
 * Where the next batch starts: every id below it was taken, or belongs to
 * a transaction that, when it commits, lowers late_low below it.  Rows
 * inserted without the trigger or cache_invalidate do not; a full scan
 * every CACHE_FULL_SCAN_MS finds them too.
 */
static int64 scan_low = 0;

/*
 * The drain's two statements, planned once: parsing and planning them for
 * every batch was most of the worker's time under a stream of commits.
 * The plan cache re-plans them when the outbox is made again.
 */
static SPIPlanPtr peek_plan = NULL;
static SPIPlanPtr take_plan = NULL;
static Oid	scan_relid = InvalidOid;
static TimestampTz last_full_scan = 0;

/* What one batch did */
typedef struct Batch
{
	bool		present;		/* the outbox table exists */
	bool		unreachable;	/* Redis could not be reached: nothing was taken */
	uint64		rows;			/* outbox rows taken */
	uint64		keys;			/* keys and patterns in them */
	uint64		sent;			/* distinct keys and patterns */
	int64		next_low;		/* where the next batch starts, if rows > 0 */
} Batch;

PGDLLEXPORT void perfopt_cache_worker_main(Datum main_arg);

PG_FUNCTION_INFO_V1(perfopt_cache_worker_state);

/* Ask for the shared struct; from perfopt.c's hook */
void
perfopt_cache_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(CacheShared)));
}

/*
 * Create or attach the shared struct; from perfopt.c's hook, which holds
 * AddinShmemInitLock
 */
void
perfopt_cache_shmem_startup(void)
{
	bool		found;

	cache_shared = ShmemInitStruct("perfopt cache", sizeof(CacheShared), &found);
	if (!found)
	{
		memset(cache_shared, 0, sizeof(CacheShared));
		SpinLockInit(&cache_shared->mutex);
		pg_atomic_init_u32(&cache_shared->error_changes, 0);
		cache_shared->late_low = PG_INT64_MAX;
	}
}

/*
 * perfopt's own keyspace lookups.  cache_rewarm asks Redis how often each
 * warmed key was read (OBJECT FREQ) and how long it has left (TTL), and
 * Redis counts each of those as a keyspace hit or miss, as it counts the
 * application's GETs: an idle cache would drift towards a 100% hit rate.
 * Redis's counters (INFO keyspace_hits, keyspace_misses) start at 0 when
 * Redis starts (a new run_id) or CONFIG RESETSTAT runs; perfopt's own are
 * counted here for one run_id, since the last time the counters went back,
 * and cache_redis_stats subtracts them.
 *
 * Add hits and misses of perfopt's own, made in the Redis run run_id whose
 * keyspace_hits + keyspace_misses were redis_total just after them.
 */
void
perfopt_cache_add_own_lookups(const char *run_id, uint64 redis_total, uint64 hits, uint64 misses)
{
	if (cache_shared == NULL)
		return;					/* perfopt is not preloaded: no one reads them */
	SpinLockAcquire(&cache_shared->mutex);
	if (strcmp(cache_shared->own_run_id, run_id) != 0 || redis_total < cache_shared->own_seen_total)
	{
		/* another Redis, or its counters were reset: start again */
		strlcpy(cache_shared->own_run_id, run_id, CACHE_RUN_ID_LEN);
		cache_shared->own_hits = 0;
		cache_shared->own_misses = 0;
	}
	cache_shared->own_hits += hits;
	cache_shared->own_misses += misses;
	cache_shared->own_seen_total = redis_total;
	SpinLockRelease(&cache_shared->mutex);
}

/*
 * perfopt's own hits and misses among those Redis run run_id reports, with
 * redis_total its keyspace_hits + keyspace_misses; false (and zeros) when
 * they are not known for that run: perfopt looked nothing up in it, or its
 * counters were reset since.
 */
bool
perfopt_cache_get_own_lookups(const char *run_id, uint64 redis_total, uint64 *hits, uint64 *misses)
{
	bool		known = false;

	*hits = 0;
	*misses = 0;
	if (cache_shared == NULL)
		return false;
	SpinLockAcquire(&cache_shared->mutex);
	if (strcmp(cache_shared->own_run_id, run_id) == 0 && redis_total >= cache_shared->own_seen_total)
	{
		*hits = cache_shared->own_hits;
		*misses = cache_shared->own_misses;
		known = true;
	}
	SpinLockRelease(&cache_shared->mutex);
	return known;
}

/* Register the worker; called from _PG_init while preloading */
void
perfopt_cache_worker_register(void)
{
	perfopt_worker_register("perfopt cache invalidator", "perfopt_cache_worker_main",
							CACHE_RESTART_SECONDS);
}

/*
 * Tell the worker the lowest id this transaction queued, at commit (or at
 * PREPARE: telling it early is harmless), and wake it.
 */
static void
publish_low(bool wake)
{
	Latch	   *latch;

	SpinLockAcquire(&cache_shared->mutex);
	cache_shared->late_low = Min(cache_shared->late_low, xact_low);
	latch = cache_shared->latch;
	SpinLockRelease(&cache_shared->mutex);
	if (wake && latch != NULL)
		SetLatch(latch);
}

/* At commit, wake the worker if this transaction queued invalidations */
static void
cache_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (wake_pending && cache_shared != NULL)
				publish_low(true);
			wake_pending = false;
			xact_low = PG_INT64_MAX;
			break;
		case XACT_EVENT_PREPARE:
			/* COMMIT PREPARED runs elsewhere: the worker's polling finds it */
			if (wake_pending && cache_shared != NULL)
				publish_low(false);
			wake_pending = false;
			xact_low = PG_INT64_MAX;
			break;
		case XACT_EVENT_ABORT:
			wake_pending = false;
			xact_low = PG_INT64_MAX;
			break;
		default:
			break;
	}
}

/*
 * Called where an invalidation is queued, with its id: wake the worker at
 * commit, and tell it the lowest id, which may be below ids it has taken
 * already (the worker skips what is below its last batch).
 */
void
perfopt_cache_wake_at_commit(int64 id)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(cache_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_pending = true;
	xact_low = Min(xact_low, id);
}

/* Record an error for cache_metrics, and log it when it is a new one */
static void
cache_report_error(const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	pg_atomic_fetch_add_u32(&cache_shared->error_changes, 1);	/* a barrier */
	strlcpy(cache_shared->error, message, CACHE_ERROR_LEN);
	cache_shared->error_at = now;
	pg_atomic_fetch_add_u32(&cache_shared->error_changes, 1);

	SpinLockAcquire(&cache_shared->mutex);
	cache_shared->connected = false;
	SpinLockRelease(&cache_shared->mutex);

	if (strcmp(logged_error, message) != 0)
	{
		ereport(LOG,
				(errmsg("perfopt cache invalidator: %s", message),
				 errhint("Invalidations stay queued in perfopt.cache_invalidations and are sent once Redis answers.")));
		strlcpy(logged_error, message, CACHE_ERROR_LEN);
	}
}

/* Note that Redis answered again */
static void
cache_report_connected(void)
{
	SpinLockAcquire(&cache_shared->mutex);
	cache_shared->connected = true;
	SpinLockRelease(&cache_shared->mutex);
	if (logged_error[0] != '\0')
	{
		ereport(LOG,
				(errmsg("perfopt cache invalidator reached Redis at %s again",
						perfopt_redis_address())));
		logged_error[0] = '\0';
	}
}

/* The settings the connection was made with; the password hashed */
static char *
current_redis_settings(void)
{
	return psprintf("%s|%d|%d|%u", perfopt_redis_host, perfopt_redis_port, perfopt_redis_db,
					hash_bytes((const unsigned char *) perfopt_redis_password,
							   strlen(perfopt_redis_password)));
}

static void
redis_disconnect(void)
{
	if (redis != NULL)
		redisFree(redis);
	redis = NULL;
}

/* Connect to Redis if not connected; false (error recorded) if that fails */
static bool
redis_ensure(void)
{
	char		error[CACHE_ERROR_LEN];

	if (redis != NULL)
		return true;
	redis = perfopt_redis_connect(error, sizeof(error));
	if (redis == NULL)
	{
		cache_report_error(error);
		return false;
	}
	if (redis_settings)
		pfree(redis_settings);
	redis_settings = MemoryContextStrdup(TopMemoryContext, current_redis_settings());
	cache_report_connected();
	return true;
}

/* Read n replies; an ERROR (and no connection kept) for any failure */
static void
read_replies(int n, const char *what, long long *last_integer, redisReply **keep)
{
	for (int i = 0; i < n; i++)
	{
		redisReply *reply = NULL;

		if (perfopt_redis_get_reply(redis, &reply) != REDIS_OK || reply == NULL)
		{
			char	   *message = pstrdup(redis->errstr);

			redis_disconnect();
			perfopt_redis_reply_failed(what, message);
		}
		if (reply->type == REDIS_REPLY_ERROR)
		{
			char	   *message = pstrdup(reply->str);

			freeReplyObject(reply);
			redis_disconnect();
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("Redis at %s refused %s: %s", perfopt_redis_address(), what, message)));
		}
		if (last_integer && reply->type == REDIS_REPLY_INTEGER)
			*last_integer = reply->integer;
		if (keep && i == n - 1)
			*keep = reply;
		else
			freeReplyObject(reply);
	}
}

/* Append PUBLISH of payload on the channel; returns the commands appended */
static int
append_publish(StringInfo payload)
{
	const char *argv[3] = {"PUBLISH", perfopt_cache_channel, payload->data};
	size_t		argvlen[3] = {7, strlen(perfopt_cache_channel), payload->len};

	if (perfopt_cache_channel[0] == '\0')
		return 0;
	redisAppendCommandArgv(redis, 3, argv, argvlen);
	return 1;
}

/* qsort comparator of C strings */
static int
compare_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * UNLINK keys and publish them, pipelined, at most UNLINK_KEYS per UNLINK
 * and PUBLISH, and wait for Redis to confirm.  Each distinct key is sent
 * once; returns how many were.
 */
static int
send_keys(List *keys)
{
	int			n = list_length(keys);
	const char **sorted;
	const char **argv;
	size_t	   *argvlen;
	StringInfoData payload;
	ListCell   *lc;
	int			distinct = 0;
	int			commands = 0;

	if (n == 0)
		return 0;
	sorted = palloc(sizeof(char *) * n);
	foreach(lc, keys)
		sorted[foreach_current_index(lc)] = lfirst(lc);
	qsort(sorted, n, sizeof(char *), compare_keys);

	argv = palloc(sizeof(char *) * (UNLINK_KEYS + 1));
	argvlen = palloc(sizeof(size_t) * (UNLINK_KEYS + 1));
	initStringInfo(&payload);
	for (int first = 0; first < n;)
	{
		int			argc = 1;

		argv[0] = "UNLINK";
		argvlen[0] = 6;
		resetStringInfo(&payload);
		appendStringInfoString(&payload, "{\"keys\":[");
		for (; first < n && argc <= UNLINK_KEYS; first++)
		{
			if (distinct > 0 && strcmp(sorted[first], sorted[first - 1]) == 0)
				continue;
			distinct++;
			argv[argc] = sorted[first];
			argvlen[argc] = strlen(sorted[first]);
			if (argc > 1)
				appendStringInfoChar(&payload, ',');
			escape_json(&payload, argv[argc]);
			argc++;
		}
		appendStringInfoString(&payload, "]}");
		if (argc == 1)
			break;
		redisAppendCommandArgv(redis, argc, argv, argvlen);
		commands += 1 + append_publish(&payload);
	}
	read_replies(commands, "UNLINK and PUBLISH", NULL, NULL);
	return distinct;
}

/* Walk the keyspace with SCAN MATCH pattern, UNLINK what matches, publish */
static void
send_pattern(const char *pattern)
{
	char	   *cursor = pstrdup("0");
	int64		removed = 0;
	StringInfoData payload;

	do
	{
		const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT};
		size_t		argvlen[6] = {4, strlen(cursor), 5, strlen(pattern), 5, strlen(SCAN_COUNT)};
		redisReply *reply = NULL;
		redisReply *keys;

		CHECK_FOR_INTERRUPTS();
		redisAppendCommandArgv(redis, 6, argv, argvlen);
		read_replies(1, "SCAN", NULL, &reply);
		if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
			reply->element[0]->type != REDIS_REPLY_STRING ||
			reply->element[1]->type != REDIS_REPLY_ARRAY)
		{
			freeReplyObject(reply);
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("Redis at %s gave an unexpected reply to SCAN", perfopt_redis_address())));
		}
		cursor = pstrdup(reply->element[0]->str);
		keys = reply->element[1];
		if (keys->elements > 0)
		{
			const char **uargv = palloc(sizeof(char *) * (keys->elements + 1));
			size_t	   *uargvlen = palloc(sizeof(size_t) * (keys->elements + 1));

			uargv[0] = "UNLINK";
			uargvlen[0] = 6;
			for (size_t i = 0; i < keys->elements; i++)
			{
				uargv[i + 1] = keys->element[i]->str;
				uargvlen[i + 1] = keys->element[i]->len;
			}
			redisAppendCommandArgv(redis, keys->elements + 1, uargv, uargvlen);
			removed += keys->elements;
		}
		if (keys->elements > 0)
		{
			freeReplyObject(reply);
			read_replies(1, "UNLINK", NULL, NULL);
		}
		else
			freeReplyObject(reply);
	} while (strcmp(cursor, "0") != 0);

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"pattern\":");
	escape_json(&payload, pattern);
	appendStringInfo(&payload, ",\"keys_seen\":" INT64_FORMAT "}", removed);
	if (append_publish(&payload))
		read_replies(1, "PUBLISH", NULL, NULL);
}

/* Prepare a statement of the drain, with parameters ($1 int4, $2 int8), for good */
static SPIPlanPtr
prepare_kept(const char *query, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(query, 2, types);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * Step: take the oldest batch of the outbox and send it; the caller's
 * transaction commits the DELETE only if this returns normally.
 */
static void
drain_batch(Batch *batch)
{
	Oid			namespace = get_namespace_oid("perfopt", true);
	Oid			relid;
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		values[2];
	List	   *keys = NIL;
	int64		late_low;
	int			ret;

	relid = OidIsValid(namespace) ? get_relname_relid("cache_invalidations", namespace) : InvalidOid;
	if (!OidIsValid(relid))
		return;
	batch->present = true;

	/* a new outbox (DROP and CREATE EXTENSION) starts its ids again */
	if (relid != scan_relid)
	{
		scan_relid = relid;
		scan_low = 0;
	}
	SpinLockAcquire(&cache_shared->mutex);
	late_low = cache_shared->late_low;
	cache_shared->late_low = PG_INT64_MAX;
	SpinLockRelease(&cache_shared->mutex);
	scan_low = Min(scan_low, late_low);
	if (TimestampDifferenceExceeds(last_full_scan, GetCurrentTimestamp(), CACHE_FULL_SCAN_MS))
	{
		scan_low = 0;
		last_full_scan = GetCurrentTimestamp();
	}
	values[0] = Int32GetDatum(perfopt_cache_batch_size);
	values[1] = Int64GetDatum(scan_low);

	/* connect only when there is something to send */
	if (redis == NULL)
	{
		if (peek_plan == NULL)
			peek_plan = prepare_kept("SELECT 1 FROM perfopt.cache_invalidations WHERE id >= $2 LIMIT 1",
									 types);
		ret = SPI_execute_plan(peek_plan, values, NULL, true, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
		if (SPI_processed == 0)
			return;
		if (!redis_ensure())
		{
			batch->unreachable = true;
			return;
		}
	}

	/*
	 * The rows from scan_low up to the batch_size-th visible id, deleted by
	 * range: rows of transactions that commit meanwhile are not visible to
	 * this statement, so they stay for a later batch, and their commit
	 * lowers late_low to them.  Starting at scan_low skips the dead index
	 * entries of the batches before, which VACUUM has not removed yet.
	 */
	if (take_plan == NULL)
		take_plan = prepare_kept(
		"WITH head AS ("
		"  SELECT id, sum(cardinality(keys)) OVER (ORDER BY id) - cardinality(keys) AS before"
		"    FROM (SELECT id, keys FROM perfopt.cache_invalidations WHERE id >= $2"
		"           ORDER BY id LIMIT $1) h),"
		" last AS (SELECT max(id) AS id FROM head WHERE before < $1),"
		" taken AS ("
		"  DELETE FROM perfopt.cache_invalidations"
		"   WHERE id >= $2 AND id <= (SELECT id FROM last)"
		"  RETURNING id, keys, pattern),"
		/* count the keys of each watched template, for cache_advice */
		" templates AS ("
		"  SELECT DISTINCT key_template,"
		"         regexp_replace(replace(replace(replace(key_template, '\\', '\\\\'),"
		"                                        '%', '\\%'), '_', '\\_'),"
		"                        '\\{[^}]*\\}', '%', 'g') AS pattern"
		"    FROM perfopt.cache_watches),"
		" counted AS ("
		"  INSERT INTO perfopt.cache_template_stats AS s"
		"         (key_template, bucket, invalidations, first_at, last_at)"
		"  SELECT t.key_template, date_trunc('hour', now()), count(*), now(), now()"
		"    FROM taken, unnest(taken.keys) AS k(key), templates t"
		"   WHERE NOT taken.pattern AND k.key LIKE t.pattern"
		"   GROUP BY t.key_template"
		"  ON CONFLICT (key_template, bucket) DO UPDATE"
		"     SET invalidations = s.invalidations + excluded.invalidations,"
		"         last_at = excluded.last_at)"
		" SELECT keys, pattern, id FROM taken ORDER BY id",
		types);
	ret = SPI_execute_plan(take_plan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));

	if (SPI_processed > 0)
	{
		bool		isnull;

		batch->next_low = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[SPI_processed - 1],
													  SPI_tuptable->tupdesc, 3, &isnull)) + 1;
	}
	batch->rows = SPI_processed;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		pattern = DatumGetBool(SPI_getbinval(tuple, desc, 2, &isnull));
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 1, &isnull)),
						  TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		batch->keys += n;
		if (pattern)
		{
			/* keys queued before the pattern go first */
			batch->sent += send_keys(keys);
			keys = NIL;
		}
		for (int k = 0; k < n; k++)
		{
			if (nulls[k])
				continue;
			if (pattern)
			{
				send_pattern(TextDatumGetCString(elems[k]));
				batch->sent++;
			}
			else
				keys = lappend(keys, TextDatumGetCString(elems[k]));
		}
	}
	batch->sent += send_keys(keys);
}

/* Step: one batch, SPI connected */
static void
batch_step(void *arg)
{
	drain_batch((Batch *) arg);
}

/*
 * Run one batch in a transaction of its own.  An error rolls the batch
 * back into the outbox and is recorded; returns false then.
 */
static bool
run_batch(Batch *batch)
{
	PerfoptStep how = {
		.flags = PERFOPT_STEP_LOCK_EXTENSION | PERFOPT_STEP_SPI | PERFOPT_STEP_QUIET,
		.activity = "draining perfopt.cache_invalidations",
		.cxt = batch_cxt,
	};
	ErrorData  *error;

	memset(batch, 0, sizeof(Batch));
	error = perfopt_run_step(&how, batch_step, batch);
	if (error == NULL)
		return true;
	cache_report_error(error->message);
	return false;
}

/* After a reload: reconnect to Redis if its settings changed */
static void
cache_follow_settings(void)
{
	if (redis != NULL && strcmp(redis_settings, current_redis_settings()) != 0)
	{
		redis_disconnect();
		backoff_ms = 0;
	}
}

/* The next retry delay: doubling from CACHE_BACKOFF_MIN_MS */
static long
next_backoff(void)
{
	backoff_ms = backoff_ms == 0 ? CACHE_BACKOFF_MIN_MS : Min(backoff_ms * 2, CACHE_BACKOFF_MAX_MS);
	return backoff_ms;
}

/* Whether the last round took rows: commits are coming */
static bool round_took_rows = false;

/* Drain the outbox while full batches come; return how long to sleep */
static long
cache_round(void)
{
	round_took_rows = false;
	if (RecoveryInProgress())
		return CACHE_IDLE_SLEEP_MS;

	for (;;)
	{
		Batch		batch;

		CHECK_FOR_INTERRUPTS();
		if (perfopt_worker_reload())
			cache_follow_settings();

		if (!run_batch(&batch) || batch.unreachable)
			return next_backoff();
		MemoryContextReset(batch_cxt);
		backoff_ms = 0;

		if (batch.rows > 0)
		{
			TimestampTz now = GetCurrentTimestamp();

			round_took_rows = true;
			scan_low = Max(scan_low, batch.next_low);
			SpinLockAcquire(&cache_shared->mutex);
			cache_shared->sent += batch.sent;
			cache_shared->batches++;
			cache_shared->last_sent_at = now;
			SpinLockRelease(&cache_shared->mutex);
		}
		if (batch.rows < (uint64) perfopt_cache_batch_size &&
			batch.keys < (uint64) perfopt_cache_batch_size)
			return CACHE_IDLE_SLEEP_MS;
	}
}

/* On exit: nobody is to set our latch any more */
static void
cache_worker_detach(int code, Datum arg)
{
	SpinLockAcquire(&cache_shared->mutex);
	cache_shared->latch = NULL;
	cache_shared->pid = 0;
	cache_shared->connected = false;
	SpinLockRelease(&cache_shared->mutex);
	redis_disconnect();
}

/* Entry point of the cache invalidator */
void
perfopt_cache_worker_main(Datum main_arg)
{
	TimestampTz last_round = 0;

	(void) perfopt_worker_start("perfopt cache invalidator");

	/* a lost DELETE only repeats an invalidation: no need to wait for fsync */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The drain's plans are generic (planned once); with the outbox's
	 * statistics saying it is small, a generic plan would read the whole
	 * heap, dead rows of the batches before included, at every batch.  The
	 * index on id is always the way: the batches go in id order.
	 */
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt cache batch",
									  ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&cache_shared->mutex);
	cache_shared->latch = MyLatch;
	cache_shared->pid = MyProcPid;
	SpinLockRelease(&cache_shared->mutex);
	on_shmem_exit(cache_worker_detach, 0);

	for (;;)
	{
		long		sleep_ms;

		CHECK_FOR_INTERRUPTS();
		if (perfopt_worker_reload())
			cache_follow_settings();

		/*
		 * Under a stream of commits, wait until perfopt.cache_batch_delay
		 * has passed since the last round began, so that the commits of
		 * that time go in one batch rather than one batch each.
		 */
		if (perfopt_cache_batch_delay > 0 && last_round != 0)
		{
			long		secs;
			int			usecs;
			long		waited_ms;

			TimestampDifference(last_round, GetCurrentTimestamp(), &secs, &usecs);
			waited_ms = secs * 1000 + usecs / 1000;
			if (waited_ms < perfopt_cache_batch_delay)
				(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 perfopt_cache_batch_delay - waited_ms, PG_WAIT_EXTENSION);
		}
		last_round = GetCurrentTimestamp();

		MemoryContextSwitchTo(batch_cxt);
		sleep_ms = cache_round();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(batch_cxt);

		/*
		 * While commits keep coming, look again after the batch delay (at the
		 * top of the loop) rather than sleep on the latch: a committing
		 * backend then finds the latch set, or its owner not waiting on it,
		 * and need not signal.  Each signal is a kill() in a writer's commit.
		 */
		if (round_took_rows && perfopt_cache_batch_delay > 0 && sleep_ms == CACHE_IDLE_SLEEP_MS)
			continue;

		/* the latch is reset on waking: a commit while we drain wakes the next wait */
		(void) perfopt_worker_wait(0, PGINVALID_SOCKET, sleep_ms);
	}
}

/* Copy the worker's last error, retrying while the worker rewrites it */
static void
cache_read_error(char *error, TimestampTz *error_at)
{
	for (;;)
	{
		uint32		before = pg_atomic_read_u32(&cache_shared->error_changes);
		uint32		after;

		pg_read_barrier();
		memcpy(error, cache_shared->error, CACHE_ERROR_LEN);
		*error_at = cache_shared->error_at;
		pg_read_barrier();
		after = pg_atomic_read_u32(&cache_shared->error_changes);
		if (before == after && (before & 1) == 0)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	error[CACHE_ERROR_LEN - 1] = '\0';
}

/* cache_worker_state(): what the worker has done, from shared memory */
Datum
perfopt_cache_worker_state(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[7];
	bool		nulls[7] = {true, true, true, true, true, true, true};
	CacheShared snapshot;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (cache_shared != NULL)
	{
		SpinLockAcquire(&cache_shared->mutex);
		snapshot.pid = cache_shared->pid;
		snapshot.connected = cache_shared->connected;
		snapshot.sent = cache_shared->sent;
		snapshot.batches = cache_shared->batches;
		snapshot.last_sent_at = cache_shared->last_sent_at;
		SpinLockRelease(&cache_shared->mutex);
		cache_read_error(snapshot.error, &snapshot.error_at);

		if (snapshot.pid != 0)
		{
			values[0] = Int32GetDatum(snapshot.pid);
			nulls[0] = false;
		}
		values[1] = BoolGetDatum(snapshot.pid != 0 && snapshot.connected);
		values[2] = Int64GetDatum(snapshot.sent);
		values[3] = Int64GetDatum(snapshot.batches);
		nulls[1] = nulls[2] = nulls[3] = false;
		if (snapshot.last_sent_at != 0)
		{
			values[4] = TimestampTzGetDatum(snapshot.last_sent_at);
			nulls[4] = false;
		}
		if (snapshot.error[0] != '\0')
		{
			values[5] = CStringGetTextDatum(snapshot.error);
			values[6] = TimestampTzGetDatum(snapshot.error_at);
			nulls[5] = nulls[6] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
