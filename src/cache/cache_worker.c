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
 * The same callback appends the transaction's outbox row (id, place, keys)
 * to the commit queue in shared memory, and the worker sends the queue's
 * keys without a transaction (see "The commit queue" below).  What the
 * queue does not carry it reads from the outbox in a table batch, a
 * read-only transaction: the oldest rows (one per committed transaction,
 * holding its keys) while their keys fit in perfopt.cache_batch_size, at
 * least one row (an index scan without a statement).  Either way the
 * distinct keys go to Redis as UNLINKs and PUBLISHes on
 * perfopt.cache_channel of at most 1,000 keys each, pipelined, and the rows
 * are deleted only once Redis has confirmed them.  Any error (Redis down, a
 * refused command, a crash, kill -9) leaves the rows in the outbox, so they
 * are sent again later: an invalidation can be repeated but is never lost,
 * and never sent before its transaction committed.  Pattern invalidations
 * walk the keyspace with SCAN ... MATCH, never KEYS.
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

#include "access/genam.h"
#include "access/heapam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/sequence.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "bgw/worker.h"
#include "common/extension_lock.h"
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

/*
 * How long the worker keeps looking every perfopt.cache_batch_delay, by
 * timer, after the last batch that took rows; and how long the rows it sent
 * wait to be deleted together
 */
#define CACHE_STREAM_MS			100

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
	uint64		commits;		/* transactions that queued, committed */
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
	/* the outbox's ids (perfopt_cache_next_id), guarded by id_mutex */
	slock_t		id_mutex;
	Oid			id_database;	/* the block is of this database's */
	Oid			id_sequence;	/* outbox's id sequence */
	int64		id_next;		/* the next id of the block */
	int64		id_limit;		/* the first id after it */
	/* the commit queue (see below), guarded by ring_lock */
	LWLock	   *ring_lock;
	Size		ring_used;		/* bytes of ring[] in use */
	char		ring[FLEXIBLE_ARRAY_MEMBER];
} CacheShared;

static CacheShared *cache_shared = NULL;

/*
 * The commit queue.  A transaction whose keys went into one outbox row at
 * PRE_COMMIT also appends that row's id, place (tid) and keys here once its
 * commit is visible (XACT_EVENT_COMMIT), and the worker takes the queue's
 * oldest entries as a batch, sends the keys and adds the rows to the ones
 * it will delete, without a transaction: no snapshot, no index scan, no
 * extension lock per batch.  The outbox row stays the durable record: it is deleted
 * only after Redis confirmed its keys, and whatever the queue does not
 * carry (it was full, the entry too large, a prepared transaction, a
 * pattern, a row written before the commit, a crash that emptied the
 * shared memory, a batch that failed) is found in the outbox by the
 * worker's table batches, as before: late_low, a scan from the lowest id
 * at start and after an error, and a look every second.
 */
#define CACHE_RING_SIZE			(256 * 1024)
#define CACHE_RING_ENTRY_MAX	(8 * 1024)

typedef struct CacheRingEntry
{
	int64		id;				/* the outbox row */
	Oid			relid;			/* the outbox it is in */
	ItemPointerData tid;		/* where */
	int32		nkeys;
	int32		len;			/* bytes of the keys after this, each ending in NUL */
} CacheRingEntry;

#define CACHE_RING_ENTRY_SIZE(len)	MAXALIGN(sizeof(CacheRingEntry) + (len))


/* In backends: whether this transaction queued something, and its lowest id */
static bool wake_pending = false;
static int64 xact_low = PG_INT64_MAX;
static bool xact_callback_registered = false;

/* In backends: the entry of the commit queue made at PRE_COMMIT, or NULL */
static CacheRingEntry *commit_entry = NULL;

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

/* The outbox the ids of scan_low belong to */
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
	int64		next_low;		/* where the next batch starts; 0: where this one did */
} Batch;

PGDLLEXPORT void perfopt_cache_worker_main(Datum main_arg);

PG_FUNCTION_INFO_V1(perfopt_cache_worker_state);

/* Ask for the shared struct; from perfopt.c's hook */
void
perfopt_cache_shmem_request(void)
{
	RequestAddinShmemSpace(MAXALIGN(offsetof(CacheShared, ring) + CACHE_RING_SIZE));
	RequestNamedLWLockTranche("perfopt cache", 1);
}

/*
 * Create or attach the shared struct; from perfopt.c's hook, which holds
 * AddinShmemInitLock
 */
void
perfopt_cache_shmem_startup(void)
{
	bool		found;

	cache_shared = ShmemInitStruct("perfopt cache", offsetof(CacheShared, ring) + CACHE_RING_SIZE,
								   &found);
	if (!found)
	{
		memset(cache_shared, 0, offsetof(CacheShared, ring));
		cache_shared->ring_lock = &(GetNamedLWLockTranche("perfopt cache"))->lock;
		SpinLockInit(&cache_shared->mutex);
		SpinLockInit(&cache_shared->id_mutex);
		pg_atomic_init_u32(&cache_shared->error_changes, 0);
		cache_shared->late_low = PG_INT64_MAX;
	}
}

/*
 * The id of a new outbox row, from the outbox's id sequence seqid.
 *
 * The sequence steps by 1024 (INCREMENT BY, set by the install and update
 * scripts): each nextval reserves the ids from the value it returns to the
 * next one, a block, which the backends share here and hand out in order
 * under a spinlock, so that a transaction's commit takes the sequence (its
 * lock, its buffer, its WAL record every 32 values) once per 1,024 outbox
 * rows instead of once per row.  A row inserted by hand takes the
 * column's default, nextval, that is a block of its own, so the ids stay
 * unique; and they stay in the order they were taken (a block is only
 * replaced by a later one), as the worker's table batches read them.  The
 * step is read after nextval, which holds the sequence's lock until the
 * end of the transaction (ALTER SEQUENCE waits for it): with a step of 1
 * (an outbox of 1.0.0 not yet updated) every id is a nextval.  Without the
 * shared memory (perfopt not preloaded), every id is a nextval too.  The
 * block is forgotten at restart (a crash included): the sequence, WAL-logged,
 * only goes forward, so the next block is after every id handed out; and
 * when the sequence's cache entry is invalidated (ALTER SEQUENCE: its step
 * or its start changed), by the first backend that learns it, so that no
 * backend keeps handing out ids of a block the new step does not reserve.
 */
static void
id_block_forget(Datum arg, Oid relid)
{
	if (cache_shared == NULL)
		return;
	SpinLockAcquire(&cache_shared->id_mutex);
	if (relid == InvalidOid || relid == cache_shared->id_sequence)
		cache_shared->id_limit = cache_shared->id_next;
	SpinLockRelease(&cache_shared->id_mutex);
}

int64
perfopt_cache_next_id(Oid seqid)
{
	static bool callback_registered = false;
	int64		id;
	int64		step;
	HeapTuple	tuple;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(id_block_forget, (Datum) 0);
		callback_registered = true;
	}
	if (cache_shared != NULL)
	{
		SpinLockAcquire(&cache_shared->id_mutex);
		if (cache_shared->id_database == MyDatabaseId && cache_shared->id_sequence == seqid &&
			cache_shared->id_next < cache_shared->id_limit)
		{
			id = cache_shared->id_next++;
			SpinLockRelease(&cache_shared->id_mutex);
			return id;
		}
		SpinLockRelease(&cache_shared->id_mutex);
	}

	id = nextval_internal(seqid, false);
	if (cache_shared == NULL)
		return id;
	tuple = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for sequence %u", seqid);
	step = ((Form_pg_sequence) GETSTRUCT(tuple))->seqincrement;
	ReleaseSysCache(tuple);
	if (step <= 1 || id > PG_INT64_MAX - step)
		return id;

	SpinLockAcquire(&cache_shared->id_mutex);
	/* a backend that took a later block meanwhile keeps it: this one's rest is skipped */
	if (cache_shared->id_database != MyDatabaseId || cache_shared->id_sequence != seqid ||
		id >= cache_shared->id_limit)
	{
		cache_shared->id_database = MyDatabaseId;
		cache_shared->id_sequence = seqid;
		cache_shared->id_next = id + 1;
		cache_shared->id_limit = id + step;
	}
	SpinLockRelease(&cache_shared->id_mutex);
	return id;
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
	cache_shared->commits++;
	latch = cache_shared->latch;
	SpinLockRelease(&cache_shared->mutex);
	if (wake && latch != NULL)
		SetLatch(latch);
}

/*
 * Append the commit queue entry to the queue; false when it does not fit
 * (the worker then finds the row in the outbox).  Runs once the commit is
 * visible, where nothing may fail: a copy under the lock, nothing else.
 */
static bool
ring_push(CacheRingEntry *entry)
{
	Size		size = CACHE_RING_ENTRY_SIZE(entry->len);
	bool		pushed = false;

	LWLockAcquire(cache_shared->ring_lock, LW_EXCLUSIVE);
	if (cache_shared->ring_used + size <= CACHE_RING_SIZE)
	{
		memcpy(cache_shared->ring + cache_shared->ring_used, entry, size);
		cache_shared->ring_used += size;
		pushed = true;
	}
	LWLockRelease(cache_shared->ring_lock);
	return pushed;
}

/* At commit, wake the worker if this transaction queued invalidations */
static void
cache_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (wake_pending && cache_shared != NULL)
			{
				/* the row goes through the commit queue, or the outbox's ids */
				if (commit_entry != NULL && !ring_push(commit_entry))
					xact_low = Min(xact_low, commit_entry->id);
				publish_low(true);
			}
			wake_pending = false;
			xact_low = PG_INT64_MAX;
			commit_entry = NULL;
			break;
		case XACT_EVENT_PREPARE:
			/* COMMIT PREPARED runs elsewhere: the worker's polling finds it */
			if (commit_entry != NULL)
				xact_low = Min(xact_low, commit_entry->id);
			if (wake_pending && cache_shared != NULL)
				publish_low(false);
			wake_pending = false;
			xact_low = PG_INT64_MAX;
			commit_entry = NULL;
			break;
		case XACT_EVENT_ABORT:
			wake_pending = false;
			xact_low = PG_INT64_MAX;
			commit_entry = NULL;
			break;
		default:
			break;
	}
}

/*
 * Register the commit callback that wakes the worker; the outbox calls this
 * before the PRE_COMMIT callback that queues (so that it is not registered
 * while the callbacks run)
 */
void
perfopt_cache_wake_register(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(cache_xact_callback, NULL);
		xact_callback_registered = true;
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
	perfopt_cache_wake_register();
	wake_pending = true;
	xact_low = Min(xact_low, id);
}

/*
 * Called at PRE_COMMIT for the transaction's last outbox row (keys, not
 * patterns), which is in outbox relid at tid: send it through the commit
 * queue if it is the transaction's only row and small enough, otherwise as
 * perfopt_cache_wake_at_commit.  The entry is made here, in the
 * transaction's memory, so that the commit has only to copy it.
 */
void
perfopt_cache_queue_at_commit(Oid relid, int64 id, ItemPointer tid, char **keys, int n)
{
	Size		len = 0;
	char	   *p;

	for (int i = 0; i < n && len <= CACHE_RING_ENTRY_MAX; i++)
		len += strlen(keys[i]) + 1;
	if (cache_shared == NULL || wake_pending || commit_entry != NULL ||
		CACHE_RING_ENTRY_SIZE(len) > CACHE_RING_ENTRY_MAX)
	{
		perfopt_cache_wake_at_commit(id);
		return;
	}
	perfopt_cache_wake_register();
	wake_pending = true;
	commit_entry = MemoryContextAllocZero(TopTransactionContext, CACHE_RING_ENTRY_SIZE(len));
	commit_entry->id = id;
	commit_entry->relid = relid;
	ItemPointerCopy(tid, &commit_entry->tid);
	commit_entry->nkeys = n;
	commit_entry->len = len;
	p = (char *) commit_entry + sizeof(CacheRingEntry);
	for (int i = 0; i < n; i++)
	{
		Size		l = strlen(keys[i]) + 1;

		memcpy(p, keys[i], l);
		p += l;
	}
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
 * Append UNLINKs of keys and PUBLISHes of them to the connection's output,
 * at most UNLINK_KEYS per UNLINK and PUBLISH; each distinct key once.
 * Returns how many keys were, and sets *commands to the replies to read.
 */
static int
append_keys(List *keys, int *commands_out)
{
	int			n = list_length(keys);
	const char **sorted;
	const char **argv;
	size_t	   *argvlen;
	StringInfoData payload;
	ListCell   *lc;
	int			distinct = 0;
	int			commands = 0;

	*commands_out = 0;
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
	*commands_out = commands;
	return distinct;
}

/*
 * UNLINK keys and publish them, pipelined, and wait for Redis to confirm.
 * Each distinct key is sent once; returns how many were.
 */
static int
send_keys(List *keys)
{
	int			commands = 0;
	int			distinct = append_keys(keys, &commands);

	if (commands > 0)
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

/*
 * The key templates of perfopt.cache_watches, as the shapes their keys
 * have, to count the keys each batch sends per template (cache_advice).  A
 * template's shape is its literal text with each placeholder matching any
 * text, as "lead:%" in LIKE: the literal pieces, in order, with a
 * placeholder between each two.  Read again when any relation's cache entry
 * is invalidated (cache_watch and cache_unwatch re-create the watched
 * table's triggers in the transaction that changes cache_watches, so the
 * batch that first sees a key of a new template has seen that), and at
 * least every CACHE_FULL_SCAN_MS.
 */
typedef struct TemplateShape
{
	char	   *template;
	int			npieces;		/* placeholders + 1 */
	char	  **pieces;
	int		   *lengths;
	int64		count;			/* keys sent, not yet deleted, of this shape */
	/* where its row of cache_template_stats was last written, and for when */
	ItemPointerData row;
	TimestampTz row_bucket;
} TemplateShape;

static MemoryContext templates_cxt = NULL;
static TemplateShape *templates = NULL;
static int	ntemplates = 0;
static bool templates_stale = true;
static TimestampTz templates_read_at = 0;

/* Any relation's cache entry was invalidated: read the templates again */
static void
templates_invalidate(Datum arg, Oid relid)
{
	templates_stale = true;
}

/* The shape of a template: the pieces between placeholders, as LIKE sees them */
static void
template_shape(TemplateShape *shape, const char *template)
{
	const char *p = template;
	StringInfoData piece;
	List	   *pieces = NIL;
	ListCell   *lc;

	shape->template = pstrdup(template);
	initStringInfo(&piece);
	while (*p)
	{
		const char *close;

		if (*p == '{' && (close = strchr(p + 1, '}')) != NULL)
		{
			pieces = lappend(pieces, pstrdup(piece.data));
			resetStringInfo(&piece);
			p = close + 1;
			continue;
		}
		appendStringInfoChar(&piece, *p++);
	}
	pieces = lappend(pieces, pstrdup(piece.data));
	shape->npieces = list_length(pieces);
	shape->pieces = palloc(sizeof(char *) * shape->npieces);
	shape->lengths = palloc(sizeof(int) * shape->npieces);
	foreach(lc, pieces)
	{
		shape->pieces[foreach_current_index(lc)] = lfirst(lc);
		shape->lengths[foreach_current_index(lc)] = strlen(lfirst(lc));
	}
	shape->count = 0;
	ItemPointerSetInvalid(&shape->row);
	shape->row_bucket = 0;
}

/*
 * Whether key has the shape: it starts with the first piece, ends with the
 * last, and has the others in order in between (leftmost matches suffice
 * when the only wildcard matches any text)
 */
static bool
shape_matches(const TemplateShape *shape, const char *key, int len)
{
	int			last = shape->npieces - 1;
	const char *p;
	const char *end;

	if (last == 0)
		return len == shape->lengths[0] && memcmp(key, shape->pieces[0], len) == 0;
	if (len < shape->lengths[0] + shape->lengths[last] ||
		memcmp(key, shape->pieces[0], shape->lengths[0]) != 0 ||
		memcmp(key + len - shape->lengths[last], shape->pieces[last], shape->lengths[last]) != 0)
		return false;
	p = key + shape->lengths[0];
	end = key + len - shape->lengths[last];
	for (int i = 1; i < last; i++)
	{
		int			n = shape->lengths[i];
		const char *found = NULL;

		for (const char *q = p; q + n <= end; q++)
			if (memcmp(q, shape->pieces[i], n) == 0)
			{
				found = q;
				break;
			}
		if (found == NULL)
			return false;
		p = found + n;
	}
	return true;
}

/* Read the distinct templates of perfopt.cache_watches, if stale */
static void
templates_read(Oid namespace, Snapshot snapshot)
{
	Oid			relid = get_relname_relid("cache_watches", namespace);
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	AttrNumber	attnum;
	MemoryContext old;
	List	   *seen = NIL;
	List	   *carried = NIL;
	List	   *carried_counts = NIL;
	ListCell   *lc;
	ListCell   *lp;

	if (!templates_stale &&
		!TimestampDifferenceExceeds(templates_read_at, GetCurrentTimestamp(), CACHE_FULL_SCAN_MS))
		return;
	if (templates_cxt == NULL)
	{
		templates_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt cache key templates",
											  ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(templates_invalidate, (Datum) 0);
	}
	/* stale from here on: an invalidation while reading makes it read again */
	templates_stale = false;

	/* the counts not yet written, kept across the reload (by template) */
	old = MemoryContextSwitchTo(TopTransactionContext);
	for (int i = 0; i < ntemplates; i++)
		if (templates[i].count > 0)
		{
			carried = lappend(carried, pstrdup(templates[i].template));
			carried_counts = lappend(carried_counts, palloc(sizeof(int64)));
			*(int64 *) llast(carried_counts) = templates[i].count;
		}
	MemoryContextSwitchTo(old);
	MemoryContextReset(templates_cxt);
	templates = NULL;
	ntemplates = 0;
	if (!OidIsValid(relid))
		return;

	rel = table_open(relid, AccessShareLock);
	attnum = get_attnum(relid, "key_template");
	if (attnum == InvalidAttrNumber)
		elog(ERROR, "perfopt.cache_watches has no column key_template");
	old = MemoryContextSwitchTo(templates_cxt);
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		value = heap_getattr(tuple, attnum, RelationGetDescr(rel), &isnull);
		char	   *template;
		bool		dup = false;

		if (isnull)
			continue;
		template = TextDatumGetCString(value);
		foreach(lc, seen)
			if (strcmp(lfirst(lc), template) == 0)
				dup = true;
		if (!dup)
			seen = lappend(seen, template);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	templates = palloc(sizeof(TemplateShape) * (list_length(seen) + 1));
	foreach(lc, seen)
		template_shape(&templates[ntemplates++], lfirst(lc));
	MemoryContextSwitchTo(old);
	templates_read_at = GetCurrentTimestamp();

	forboth(lc, carried, lp, carried_counts)
		for (int i = 0; i < ntemplates; i++)
			if (strcmp(templates[i].template, lfirst(lc)) == 0)
				templates[i].count = *(int64 *) lfirst(lp);
}

/* Count a key of the batch for each template whose shape it has */
static void
templates_count(const char *key, int len)
{
	for (int i = 0; i < ntemplates; i++)
		if (shape_matches(&templates[i], key, len))
			templates[i].count++;
}

/* An attribute of rel by name; an error if it has none */
static AttrNumber
column_of(Relation rel, const char *name)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s has no column \"%s\"", RelationGetRelationName(rel), name),
				 errhint("Run ALTER EXTENSION perfopt UPDATE.")));
	return attnum;
}

/*
 * Add the batch's counts to perfopt.cache_template_stats, in the batch's
 * transaction (so a batch Redis did not confirm is not counted): for each
 * template, the row of (template, this hour) gets the keys and last_at =
 * now(), or is inserted with first_at = now().  Only this worker writes
 * these rows (apply_retention deletes old hours); a concurrent change is an
 * error that rolls the batch back, to be sent and counted again.
 */
static void
templates_write(Oid namespace, Snapshot snapshot)
{
	Oid			relid;
	Relation	rel;
	Relation	index;
	TupleDesc	desc;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *found;
	TupleTableSlot *slot;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	Datum		bucket;
	AttrNumber	att_template,
				att_bucket,
				att_count,
				att_first,
				att_last;
	Datum	   *values;
	bool	   *nulls;
	bool		any = false;

	for (int i = 0; i < ntemplates; i++)
		if (templates[i].count > 0)
			any = true;
	if (!any)
		return;
	relid = get_relname_relid("cache_template_stats", namespace);
	if (!OidIsValid(relid))
		return;

	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	att_template = column_of(rel, "key_template");
	att_bucket = column_of(rel, "bucket");
	att_count = column_of(rel, "invalidations");
	att_first = column_of(rel, "first_at");
	att_last = column_of(rel, "last_at");
	index = index_open(RelationGetPrimaryKeyIndex(rel), RowExclusiveLock);
	if (index->rd_index->indnatts != 2 || index->rd_index->indkey.values[0] != att_template ||
		index->rd_index->indkey.values[1] != att_bucket)
		elog(ERROR, "the primary key of perfopt.cache_template_stats is not (key_template, bucket)");
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	found = table_slot_create(rel, NULL);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);
	bucket = DirectFunctionCall2(timestamptz_trunc, CStringGetTextDatum("hour"),
								 TimestampTzGetDatum(now));

	for (int i = 0; i < ntemplates; i++)
	{
		TemplateShape *t = &templates[i];
		ScanKeyData keys[2];
		IndexScanDesc scan;
		Datum		template;
		bool		isnull;

		if (t->count == 0)
			continue;
		template = CStringGetTextDatum(t->template);
		scan = NULL;

		/*
		 * The row this worker wrote last for the template and hour, if it
		 * is still the current one (nobody changed it since); otherwise
		 * looked up in the primary key
		 */
		if (!(ItemPointerIsValid(&t->row) && t->row_bucket == DatumGetTimestampTz(bucket) &&
			  table_tuple_fetch_row_version(rel, &t->row, snapshot, found) &&
			  DatumGetTimestampTz(slot_getattr(found, att_bucket, &isnull)) == t->row_bucket &&
			  strcmp(TextDatumGetCString(slot_getattr(found, att_template, &isnull)), t->template) == 0))
		{
			ExecClearTuple(found);
			ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
								   index->rd_indcollation[0], F_TEXTEQ, template);
			ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
								   index->rd_indcollation[1], F_TIMESTAMP_EQ, bucket);
			scan = index_beginscan(rel, index, snapshot, 2, 0);
			index_rescan(scan, keys, 2, NULL, 0);
			(void) index_getnext_slot(scan, ForwardScanDirection, found);
		}
		if (!TTS_EMPTY(found))
		{
			bool		update_indexes;

			slot_getallattrs(found);
			memcpy(values, found->tts_values, sizeof(Datum) * desc->natts);
			memcpy(nulls, found->tts_isnull, sizeof(bool) * desc->natts);
			values[att_count - 1] = Int64GetDatum((nulls[att_count - 1] ? 0 :
												   DatumGetInt64(values[att_count - 1])) + t->count);
			nulls[att_count - 1] = false;
			values[att_last - 1] = TimestampTzGetDatum(now);
			nulls[att_last - 1] = false;
			ExecStoreHeapTuple(heap_form_tuple(desc, values, nulls), slot, true);
			simple_table_tuple_update(rel, &found->tts_tid, slot, snapshot, &update_indexes);
			/* (not flagged as an update: that asks for a range table) */
			if (update_indexes)
				(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
			t->row = slot->tts_tid;
		}
		else
		{
			memset(nulls, true, sizeof(bool) * desc->natts);
			for (int a = 0; a < desc->natts; a++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, a);

				if (!att->attisdropped && att->attnotnull && att->attnum != att_template &&
					att->attnum != att_bucket && att->attnum != att_count &&
					att->attnum != att_first && att->attnum != att_last)
					ereport(ERROR,
							(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							 errmsg("perfopt.cache_template_stats has a column \"%s\" this perfopt does not know",
									NameStr(att->attname)),
							 errhint("Install the perfopt library that matches the extension's version, or run ALTER EXTENSION perfopt UPDATE.")));
			}
			values[att_template - 1] = template;
			values[att_bucket - 1] = bucket;
			values[att_count - 1] = Int64GetDatum(t->count);
			values[att_first - 1] = TimestampTzGetDatum(now);
			values[att_last - 1] = TimestampTzGetDatum(now);
			nulls[att_template - 1] = nulls[att_bucket - 1] = nulls[att_count - 1] = false;
			nulls[att_first - 1] = nulls[att_last - 1] = false;
			ExecStoreHeapTuple(heap_form_tuple(desc, values, nulls), slot, true);
			simple_table_tuple_insert(rel, slot);
			(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
			t->row = slot->tts_tid;
		}
		t->row_bucket = DatumGetTimestampTz(bucket);
		ExecClearTuple(slot);
		ExecClearTuple(found);
		if (scan != NULL)
			index_endscan(scan);
	}
	ExecDropSingleTupleTableSlot(slot);
	ExecDropSingleTupleTableSlot(found);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	index_close(index, NoLock);
	table_close(rel, NoLock);
}

/*
 * Share-lock extension perfopt, as perfopt_lock_extension() does, against
 * a concurrent DROP or ALTER EXTENSION UPDATE, and find its schema and its
 * outbox; false if either is gone.  The extension's OID is kept from one
 * batch to the next: looking it up (pg_extension has no syscache) was a
 * quarter of a batch's time.  Once locked, the outbox found by name (after
 * the lock, so with the invalidations it brought) is the one of that
 * extension if it is the one found the last time: a dropped extension
 * takes its outbox along, and a new outbox has a new OID.  Otherwise the
 * extension is looked up again.
 */
static Oid	locked_extension = InvalidOid;
static Oid	locked_outbox = InvalidOid;

static bool
lock_extension(Oid *namespace, Oid *outbox)
{
	if (OidIsValid(locked_extension))
	{
		LockDatabaseObject(ExtensionRelationId, locked_extension, 0, AccessShareLock);
		*namespace = get_namespace_oid("perfopt", true);
		*outbox = OidIsValid(*namespace) ? get_relname_relid("cache_invalidations", *namespace) : InvalidOid;
		if (OidIsValid(*outbox) && *outbox == locked_outbox)
			return true;
		locked_extension = InvalidOid;
	}
	if (!perfopt_lock_extension())
		return false;
	*namespace = get_namespace_oid("perfopt", true);
	*outbox = OidIsValid(*namespace) ? get_relname_relid("cache_invalidations", *namespace) : InvalidOid;
	if (!OidIsValid(*outbox))
		return false;
	locked_extension = get_extension_oid("perfopt", true);
	locked_outbox = *outbox;
	return true;
}

/*
 * The rows sent and not yet deleted: their ids (and where they are), in the
 * outbox sent_relid.  A batch's transaction only reads the outbox; once
 * Redis confirmed a batch, its rows join these, and a transaction of their
 * own deletes them all (and writes the counts per template) when
 * DELETE_DELAY_MS have passed since the oldest was sent, when their keys
 * reach perfopt.cache_batch_size, or when a round finds nothing new.  A
 * read-only transaction has no transaction id, writes no WAL and commits
 * without waking the WAL writer: under a stream of commits most batches
 * are such, instead of each deleting its rows, counting them and
 * committing.  A row stays in the outbox until that deletion commits: a
 * crash before sends it again (repeated, never lost), and the rows sent are
 * skipped by the batches meanwhile.
 */
#define DELETE_DELAY_MS			CACHE_STREAM_MS

typedef struct SentRow
{
	int64		id;				/* hash key */
	ItemPointerData tid;
} SentRow;

static HTAB *sent_rows = NULL;
static Oid	sent_relid = InvalidOid;
static uint64 sent_nkeys = 0;
static TimestampTz sent_since = 0;

/*
 * The keys of the rows sent, counted per template (cache_advice) in the
 * transaction that deletes the rows, with the templates as that transaction
 * reads them: a batch of the commit queue has no transaction to read them
 */
static MemoryContext sent_cxt = NULL;
static List *sent_keys = NIL;

/* Forget the rows sent (deleted, or their outbox is gone) and their counts */
static void
sent_forget(void)
{
	if (sent_rows == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(SentRow);
		sent_rows = hash_create("perfopt cache rows sent", 1024, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	else if (hash_get_num_entries(sent_rows) > 0)
	{
		hash_destroy(sent_rows);
		sent_rows = NULL;
		sent_forget();
	}
	sent_nkeys = 0;
	sent_since = 0;
	for (int i = 0; i < ntemplates; i++)
		templates[i].count = 0;
	if (sent_cxt == NULL)
		sent_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt cache keys sent",
										 ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(sent_cxt);
	sent_keys = NIL;
}

/* Keep the keys of a row sent, to count them when it is deleted */
static void
sent_keep_keys(List *keys)
{
	MemoryContext old = MemoryContextSwitchTo(sent_cxt);
	ListCell   *lc;

	foreach(lc, keys)
		sent_keys = lappend(sent_keys, pstrdup(lfirst(lc)));
	MemoryContextSwitchTo(old);
}

/*
 * Step: take the oldest batch of the outbox and send it.  The outbox is
 * read directly (an index scan on id, from scan_low, with the transaction's
 * snapshot), not with a statement: this runs for every batch, hundreds of
 * times a second under a stream of commits, and the executor's start-up and
 * shutdown of the DELETE ... RETURNING it replaces (with the counting per
 * template) cost most of the worker's time.  The rows are those that
 * statement took: from scan_low, in id order, rows not sent yet, whole
 * while the keys before them number fewer than perfopt.cache_batch_size,
 * at least one, at most that many rows.  Rows of transactions that commit
 * meanwhile are not visible to the snapshot, so they stay for a later batch
 * (their commit lowers late_low to them).  Once Redis confirmed them, they
 * join the rows sent, to be deleted by delete_sent().
 */
static void
drain_batch(Batch *batch)
{
	Oid			namespace;
	Oid			relid;
	Relation	rel;
	Relation	index;
	Snapshot	snapshot;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData key;
	AttrNumber	att_id,
				att_keys,
				att_pattern;
	List	   *ids = NIL;
	List	   *tids = NIL;
	List	   *rows = NIL;		/* per row: a List of its keys, or of patterns */
	List	   *patterns = NIL; /* per row: whether it holds patterns */
	List	   *keys = NIL;
	int64		late_low;
	int64		last_id = 0;
	ListCell   *lc;
	ListCell   *lp;
	ListCell   *lt;

	if (!lock_extension(&namespace, &relid))
		return;
	batch->present = true;

	/* a new outbox (DROP and CREATE EXTENSION) starts its ids again */
	if (relid != scan_relid)
	{
		scan_relid = relid;
		scan_low = 0;
	}
	if (relid != sent_relid || sent_rows == NULL)
	{
		sent_forget();
		sent_relid = relid;
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

	snapshot = GetTransactionSnapshot();
	PushActiveSnapshot(snapshot);
	snapshot = GetActiveSnapshot();

	rel = table_open(relid, AccessShareLock);
	att_id = column_of(rel, "id");
	att_keys = column_of(rel, "keys");
	att_pattern = column_of(rel, "pattern");
	index = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	if (index->rd_index->indnatts != 1 || index->rd_index->indkey.values[0] != att_id)
		elog(ERROR, "the primary key of perfopt.cache_invalidations is not (id)");

	ScanKeyInit(&key, 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(scan_low));
	scan = index_beginscan(rel, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	slot = table_slot_create(rel, NULL);
	while (batch->rows < (uint64) perfopt_cache_batch_size &&
		   (batch->rows == 0 || batch->keys < (uint64) perfopt_cache_batch_size) &&
		   index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		value;
		Datum	   *elems;
		bool	   *elemnulls;
		int			n;
		List	   *items = NIL;
		SentRow    *sent;
		int64		id;

		id = DatumGetInt64(slot_getattr(slot, att_id, &isnull));
		sent = hash_search(sent_rows, &id, HASH_FIND, NULL);
		if (sent != NULL)
		{
			/*
			 * sent already, waiting to be deleted; found where it is now.
			 * Taken all the same: the next batch starts after it, not at the
			 * dead index entries of the rows the commit queue carried.
			 */
			sent->tid = slot->tts_tid;
			last_id = id;
			continue;
		}
		last_id = id;
		value = slot_getattr(slot, att_pattern, &isnull);
		patterns = lappend_int(patterns, !isnull && DatumGetBool(value));
		value = slot_getattr(slot, att_keys, &isnull);
		if (!isnull)
		{
			deconstruct_array(DatumGetArrayTypeP(value), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &elemnulls, &n);
			for (int k = 0; k < n; k++)
				if (!elemnulls[k])
					items = lappend(items, TextDatumGetCString(elems[k]));
			batch->keys += n;
		}
		rows = lappend(rows, items);
		ids = lappend(ids, palloc(sizeof(int64)));
		*(int64 *) llast(ids) = id;
		tids = lappend(tids, palloc(sizeof(ItemPointerData)));
		ItemPointerCopy(&slot->tts_tid, (ItemPointer) llast(tids));
		batch->rows++;
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);
	table_close(rel, AccessShareLock);

	/* connect only when there is something to send */
	if (batch->rows == 0 || !redis_ensure())
	{
		batch->unreachable = batch->rows > 0;
		if (batch->rows == 0 && last_id > 0)
			batch->next_low = last_id + 1;
		batch->rows = batch->keys = 0;
		PopActiveSnapshot();
		return;
	}
	batch->next_low = last_id + 1;

	forboth(lc, rows, lp, patterns)
	{
		ListCell   *lk;

		if (!lfirst_int(lp))
		{
			keys = list_concat(keys, (List *) lfirst(lc));
			continue;
		}
		/* keys queued before the pattern go first */
		batch->sent += send_keys(keys);
		keys = NIL;
		foreach(lk, (List *) lfirst(lc))
		{
			send_pattern(lfirst(lk));
			batch->sent++;
		}
	}
	batch->sent += send_keys(keys);
	PopActiveSnapshot();

	/*
	 * Redis confirmed them all: the rows join the ones to delete, and their
	 * keys are kept, to be counted for each watched template (cache_advice)
	 * with the deletion
	 */
	if (sent_since == 0)
		sent_since = GetCurrentTimestamp();
	forboth(lc, ids, lt, tids)
	{
		SentRow    *sent = hash_search(sent_rows, lfirst(lc), HASH_ENTER, NULL);

		sent->tid = *(ItemPointer) lfirst(lt);
	}
	sent_nkeys += batch->keys;
	forboth(lc, rows, lp, patterns)
	{
		if (lfirst_int(lp))
			continue;
		sent_keep_keys((List *) lfirst(lc));
	}
}

/*
 * Step: delete the rows sent, and write their counts per template, in one
 * transaction.  Each row is fetched where the batch saw it, and deleted if
 * it is still there and still that row (a row deleted by hand meanwhile
 * was gone anyway); a concurrent deletion is an error that leaves them for
 * the next try.  The caller forgets them once this committed.
 */
static void
delete_sent(void *arg)
{
	Oid			namespace;
	Oid			relid;
	Relation	rel;
	Snapshot	snapshot;
	TupleTableSlot *slot;
	AttrNumber	att_id;
	HASH_SEQ_STATUS status;
	SentRow    *sent;
	ListCell   *lc;

	if (!lock_extension(&namespace, &relid) || relid != sent_relid)
		return;					/* the outbox they were in is gone */

	snapshot = GetTransactionSnapshot();
	PushActiveSnapshot(snapshot);
	snapshot = GetActiveSnapshot();

	rel = table_open(relid, RowExclusiveLock);
	att_id = column_of(rel, "id");
	slot = table_slot_create(rel, NULL);
	hash_seq_init(&status, sent_rows);
	while ((sent = hash_seq_search(&status)) != NULL)
	{
		bool		isnull;

		if (table_tuple_fetch_row_version(rel, &sent->tid, snapshot, slot) &&
			DatumGetInt64(slot_getattr(slot, att_id, &isnull)) == sent->id)
			simple_table_tuple_delete(rel, &sent->tid, snapshot);
		ExecClearTuple(slot);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);

	/* counted from scratch: a deletion that failed counted them too */
	templates_read(namespace, snapshot);
	for (int i = 0; i < ntemplates; i++)
		templates[i].count = 0;
	foreach(lc, sent_keys)
		templates_count(lfirst(lc), strlen(lfirst(lc)));
	templates_write(namespace, snapshot);
	PopActiveSnapshot();
}

/*
 * Delete the rows sent if it is time: DELETE_DELAY_MS after the oldest was
 * sent, or when their keys reach perfopt.cache_batch_size, or now.  False
 * if that failed (the error is recorded; they are tried again later).
 */
static bool
run_delete(bool now)
{
	PerfoptStep how = {
		.flags = PERFOPT_STEP_QUIET,	/* delete_sent locks the extension */
		.activity = "deleting the sent rows of perfopt.cache_invalidations",
		.cxt = batch_cxt,
	};
	ErrorData  *error;

	if (sent_rows == NULL || hash_get_num_entries(sent_rows) == 0)
		return true;
	if (!now && sent_nkeys < (uint64) perfopt_cache_batch_size &&
		!TimestampDifferenceExceeds(sent_since, GetCurrentTimestamp(), DELETE_DELAY_MS))
		return true;
	error = perfopt_run_step(&how, delete_sent, NULL);
	MemoryContextReset(batch_cxt);
	if (error != NULL)
	{
		cache_report_error(error->message);
		return false;
	}
	sent_forget();
	return true;
}

/* Step: one batch */
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
		.flags = PERFOPT_STEP_QUIET,	/* drain_batch locks the extension */
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

/*
 * Whether the next round reads the outbox (a table batch) whatever the
 * commit queue holds: at start, after an error, until a batch found the
 * outbox drained; and when the last table batch is CACHE_IDLE_SLEEP_MS old
 */
static bool table_needed = true;
static TimestampTz last_table_batch = 0;

/* A batch of the commit queue failed: its rows are read from the outbox */
static void
ring_failed(void)
{
	table_needed = true;
	scan_low = 0;
}

/*
 * A batch of the commit queue written to Redis whose replies are not read
 * yet: the worker does not wait for them after writing, but reads them at
 * its next look (by then they have come), so that a batch costs it one
 * wake-up rather than two.  Its rows join the ones sent once the replies
 * confirm them.  Redis runs the commands, and publishes the keys, as soon
 * as it reads them: only the deletion of the rows waits.
 */
typedef struct InflightRow
{
	int64		id;
	ItemPointerData tid;
	int32		nkeys;
} InflightRow;

static MemoryContext inflight_cxt = NULL;
static InflightRow *inflight_rows = NULL;
static int	inflight_nrows = 0;	/* 0: nothing in flight */
static List *inflight_keys = NIL;
static int	inflight_replies = 0;
static int	inflight_sent = 0;

/* Forget the batch in flight */
static void
inflight_forget(void)
{
	inflight_replies = 0;
	inflight_nrows = 0;
	inflight_rows = NULL;
	inflight_keys = NIL;
	inflight_sent = 0;
	MemoryContextReset(inflight_cxt);
}

/*
 * Read the replies of the batch in flight; on success its rows join the
 * ones sent.  False if that failed (the error is recorded; the rows stay in
 * the outbox, which the next table batch reads from its lowest id).
 */
static bool
ring_settle(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *volatile error = NULL;

	if (inflight_nrows == 0)
		return true;
	if (redis == NULL && inflight_replies > 0)
	{
		/* disconnected meanwhile (new settings): the replies are lost */
		inflight_forget();
		ring_failed();
		return false;
	}
	PG_TRY();
	{
		if (inflight_replies > 0)
			read_replies(inflight_replies, "UNLINK and PUBLISH", NULL, NULL);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		error = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	if (error != NULL)
	{
		cache_report_error(error->message);
		FreeErrorData(error);
		inflight_forget();
		ring_failed();
		return false;
	}

	if (sent_rows == NULL)
		sent_forget();
	if (sent_since == 0)
		sent_since = GetCurrentTimestamp();
	for (int i = 0; i < inflight_nrows; i++)
	{
		SentRow    *row = hash_search(sent_rows, &inflight_rows[i].id, HASH_ENTER, NULL);

		row->tid = inflight_rows[i].tid;
		sent_nkeys += inflight_rows[i].nkeys;
	}
	sent_keep_keys(inflight_keys);
	SpinLockAcquire(&cache_shared->mutex);
	cache_shared->sent += inflight_sent;
	cache_shared->batches++;
	cache_shared->last_sent_at = GetCurrentTimestamp();
	SpinLockRelease(&cache_shared->mutex);
	inflight_forget();
	return true;
}

/*
 * Take a batch of the commit queue and write its keys to Redis, without a
 * transaction, after reading the replies of the batch before; the rows join
 * the ones sent, to be deleted by delete_sent(), once Redis confirmed them
 * (ring_settle).  *full says that entries are left for the next batch.
 * False if that failed (the error is recorded; the rows stay in the outbox,
 * which the next table batch reads from its lowest id).  Rows sent already
 * (a table batch saw them first) are skipped, and an entry of another
 * outbox than the rows sent waits for a table batch.
 */
static bool
ring_round(bool *full)
{
	char	   *buf = NULL;
	Size		used;
	int			nrows = 0;
	int64		nkeys = 0;
	List	   *entries = NIL;
	List	   *keys = NIL;
	int			sent = 0;
	int			commands = 0;
	ErrorData  *volatile error = NULL;
	bool		reached = true;
	ListCell   *lc;
	MemoryContext old;

	if (!ring_settle())
		return false;

	/*
	 * The oldest entries, as a table batch takes rows: whole, while the keys
	 * before them number fewer than perfopt.cache_batch_size, at least one,
	 * at most that many; the rest move to the front
	 */
	LWLockAcquire(cache_shared->ring_lock, LW_EXCLUSIVE);
	used = 0;
	while (used < cache_shared->ring_used && nrows < perfopt_cache_batch_size &&
		   (nrows == 0 || nkeys < perfopt_cache_batch_size))
	{
		CacheRingEntry *entry = (CacheRingEntry *) (cache_shared->ring + used);

		nkeys += entry->nkeys;
		nrows++;
		used += CACHE_RING_ENTRY_SIZE(entry->len);
	}
	if (used > 0)
	{
		buf = MemoryContextAlloc(batch_cxt, used);
		memcpy(buf, cache_shared->ring, used);
		if (used < cache_shared->ring_used)
			memmove(cache_shared->ring, cache_shared->ring + used, cache_shared->ring_used - used);
		cache_shared->ring_used -= used;
		*full = cache_shared->ring_used > 0;
	}
	LWLockRelease(cache_shared->ring_lock);
	if (used == 0)
		return true;

	if (sent_rows == NULL)
		sent_forget();
	for (Size off = 0; off < used;)
	{
		CacheRingEntry *entry = (CacheRingEntry *) (buf + off);
		char	   *p = buf + off + sizeof(CacheRingEntry);

		off += CACHE_RING_ENTRY_SIZE(entry->len);
		if (entry->relid != sent_relid && hash_get_num_entries(sent_rows) == 0)
		{
			sent_forget();
			sent_relid = entry->relid;
		}
		if (entry->relid != sent_relid)
		{
			ring_failed();
			continue;
		}
		if (hash_search(sent_rows, &entry->id, HASH_FIND, NULL) != NULL)
			continue;
		entries = lappend(entries, entry);
		for (int k = 0; k < entry->nkeys; k++)
		{
			keys = lappend(keys, p);
			p += strlen(p) + 1;
		}
	}
	if (entries == NIL)
		return true;

	PG_TRY();
	{
		reached = redis_ensure();
		if (reached)
		{
			int			done = 0;

			sent = append_keys(keys, &commands);
			while (!done)
			{
				if (redisBufferWrite(redis, &done) == REDIS_ERR)
				{
					char	   *message = pstrdup(redis->errstr);

					redis_disconnect();
					perfopt_redis_reply_failed("UNLINK and PUBLISH", message);
				}
			}
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(batch_cxt);
		error = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	if (error != NULL)
		cache_report_error(error->message);
	if (error != NULL || !reached)
	{
		ring_failed();
		return false;
	}

	/* in flight until its replies are read */
	if (inflight_cxt == NULL)
		inflight_cxt = AllocSetContextCreate(TopMemoryContext, "perfopt cache batch in flight",
											 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(inflight_cxt);
	inflight_rows = palloc(sizeof(InflightRow) * list_length(entries));
	foreach(lc, entries)
	{
		CacheRingEntry *entry = lfirst(lc);
		InflightRow *row = &inflight_rows[inflight_nrows++];

		row->id = entry->id;
		row->tid = entry->tid;
		row->nkeys = entry->nkeys;
	}
	foreach(lc, keys)
		inflight_keys = lappend(inflight_keys, pstrdup(lfirst(lc)));
	MemoryContextSwitchTo(old);
	inflight_sent = sent;
	inflight_replies = commands;
	backoff_ms = 0;
	round_took_rows = true;
	return true;
}

/* How long until the rows sent are due for deletion, or the idle sleep */
static long
until_delete(void)
{
	long		secs;
	int			usecs;

	if (sent_rows == NULL || hash_get_num_entries(sent_rows) == 0)
		return CACHE_IDLE_SLEEP_MS;
	TimestampDifference(GetCurrentTimestamp(),
						TimestampTzPlusMilliseconds(sent_since, DELETE_DELAY_MS),
						&secs, &usecs);
	return Min(CACHE_IDLE_SLEEP_MS, secs * 1000 + usecs / 1000 + 1);
}

/*
 * Send the commit queue, then drain the outbox while full batches come if
 * a table batch is due; return how long to sleep
 */
static long
cache_round(void)
{
	int64		late_low;
	bool		full = false;

	round_took_rows = false;
	if (RecoveryInProgress())
		return CACHE_IDLE_SLEEP_MS;

	if (!ring_round(&full))
	{
		MemoryContextReset(batch_cxt);
		(void) run_delete(true);
		return next_backoff();
	}
	MemoryContextReset(batch_cxt);

	SpinLockAcquire(&cache_shared->mutex);
	late_low = cache_shared->late_low;
	SpinLockRelease(&cache_shared->mutex);
	if (!table_needed && late_low == PG_INT64_MAX &&
		!TimestampDifferenceExceeds(last_table_batch, GetCurrentTimestamp(), CACHE_IDLE_SLEEP_MS))
	{
		if (!run_delete(false))
			return next_backoff();
		/* a full batch: the rest after perfopt.cache_batch_delay */
		return full ? 0 : until_delete();
	}
	/* the table batch skips the rows sent: the batch in flight is confirmed first */
	if (!ring_settle())
		return next_backoff();
	last_table_batch = GetCurrentTimestamp();
	table_needed = true;

	for (;;)
	{
		Batch		batch;

		CHECK_FOR_INTERRUPTS();
		if (perfopt_worker_reload())
			cache_follow_settings();

		if (!run_batch(&batch) || batch.unreachable)
		{
			/* what Redis confirmed before need not wait for it */
			MemoryContextReset(batch_cxt);
			(void) run_delete(true);
			return next_backoff();
		}
		MemoryContextReset(batch_cxt);
		backoff_ms = 0;
		scan_low = Max(scan_low, batch.next_low);

		/* delete what was sent, if it is time */
		if (!run_delete(false))
			return next_backoff();

		if (batch.rows > 0)
		{
			TimestampTz now = GetCurrentTimestamp();

			round_took_rows = true;
			SpinLockAcquire(&cache_shared->mutex);
			cache_shared->sent += batch.sent;
			cache_shared->batches++;
			cache_shared->last_sent_at = now;
			SpinLockRelease(&cache_shared->mutex);
		}
		if (batch.rows < (uint64) perfopt_cache_batch_size &&
			batch.keys < (uint64) perfopt_cache_batch_size)
		{
			/* the outbox is drained: the commit queue carries the rest */
			table_needed = false;
			/* nothing new: sleep until the rows sent are due for deletion */
			if (batch.rows == 0)
				return until_delete();
			return CACHE_IDLE_SLEEP_MS;
		}
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
	TimestampTz last_rows_at = 0;
	bool		lingering = false;
	uint64		commits_seen = 0;

	(void) perfopt_worker_start("perfopt cache invalidator");

	/* a lost DELETE only repeats an invalidation: no need to wait for fsync */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

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
		uint64		commits;

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

		SpinLockAcquire(&cache_shared->mutex);
		commits = cache_shared->commits;
		SpinLockRelease(&cache_shared->mutex);

		/*
		 * Lingering after a stream, and no transaction that queued has
		 * committed since the last round began: nothing new to take, so no
		 * transaction to look (a prepared transaction committed, or a row
		 * inserted by hand, is found once the worker sleeps: its sleep ends
		 * in a round).  Delete what was sent when it is due.
		 */
		if (lingering && commits == commits_seen)
		{
			MemoryContextSwitchTo(batch_cxt);
			(void) ring_settle();
			(void) run_delete(false);
			MemoryContextSwitchTo(TopMemoryContext);
			if (!TimestampDifferenceExceeds(last_rows_at, last_round, CACHE_STREAM_MS))
				continue;
			lingering = false;
			sleep_ms = CACHE_IDLE_SLEEP_MS;
			if (sent_rows != NULL && hash_get_num_entries(sent_rows) > 0)
				sleep_ms = CACHE_STREAM_MS;
			MemoryContextReset(batch_cxt);
			(void) perfopt_worker_wait(0, PGINVALID_SOCKET, sleep_ms);
			continue;
		}
		commits_seen = commits;

		MemoryContextSwitchTo(batch_cxt);
		sleep_ms = cache_round();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(batch_cxt);

		/*
		 * While commits keep coming, and for CACHE_STREAM_MS after the last
		 * batch that took rows, look again after the batch delay (at the top
		 * of the loop) rather than sleep on the latch: a committing backend
		 * then finds the latch set, or its owner not waiting on it, and need
		 * not signal (each signal is a kill() in a writer's commit), and a
		 * look that finds no new commit costs no transaction.
		 */
		if (round_took_rows)
			last_rows_at = last_round;
		if (perfopt_cache_batch_delay > 0 && backoff_ms == 0 && (round_took_rows || lingering))
		{
			lingering = true;
			continue;
		}
		lingering = false;

		/* nothing stays in flight while the worker sleeps */
		if (inflight_nrows > 0)
		{
			MemoryContextSwitchTo(batch_cxt);
			if (ring_settle())
				sleep_ms = Min(sleep_ms, until_delete());
			else
				sleep_ms = next_backoff();
			MemoryContextSwitchTo(TopMemoryContext);
			MemoryContextReset(batch_cxt);
		}

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
