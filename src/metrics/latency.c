/*-------------------------------------------------------------------------
 *
 * latency.c
 *	  Per-statement latency percentiles, kept in shared memory by executor
 *	  hooks.
 *
 * Each statement that goes through the executor is timed and its duration
 * added to a histogram of its own: one entry per (database, queryid, top
 * level or nested), at most perfopt.max_statements of them.
 *
 * A top-level statement's latency is what log_min_duration_statement
 * reports for it: the time from the start of the protocol message that
 * runs it (statement_timestamp(): the query string of the simple protocol,
 * the Execute message of the extended one) until the executor is done with
 * it, parse, plan, start-up and shutdown included.  When one message holds
 * several statements, each starts where the previous one ended; a portal
 * fetched by several messages adds up their spans; the portal of a SELECT
 * closed only by a later message (Sync, the next Bind) adds just the
 * executor's shutdown, not the time between.  That clock counts
 * microseconds.  A nested statement (in a function or a DO block) is timed
 * as pg_stat_statements times it, ExecutorRun and ExecutorFinish through
 * the query's total-time instrumentation, to the nanosecond (the empty
 * Finish of a plain SELECT left out when perfopt alone times it: see
 * latency_ExecutorFinish).  Statements run
 * by a utility (DO, CALL, CREATE TABLE AS) are nested, as
 * pg_stat_statements counts them; EXECUTE of a prepared statement is not.
 *
 * The table is guarded by LATENCY_LOCKS locks; ending a statement takes
 * none of them, nor any atomic read-modify-write.  A backend finds the
 * statement's entry through a small cache of its own, checked against the
 * entry's serial (a removed entry's serial is zeroed), so it hashes the key
 * only the first time, and appends (entry, serial, duration) to a ring of
 * pending calls in shared memory that only it writes: three plain stores
 * and the ring's head.  Pending calls are folded into the entries under
 * one lock, the fold lock, which makes plain read-and-write increments
 * enough: by the backend itself when its ring is half full (if no one else
 * is folding; when full, it waits), and by every reader first, so a reader
 * sees every call that ended before it.  A call whose entry was removed
 * meanwhile (its serial changed) is dropped.  Folding holds one table lock
 * shared: creating an entry takes every lock exclusively and, when the
 * table is full, folds and then evicts the 5% of entries with the fewest
 * calls.  Readers take one lock shared, which keeps creators and evictors
 * out.
 *
 * A nested statement that pg_stat_statements does not time is timed by
 * perfopt's own two clock reads around each ExecutorRun (and an
 * ExecutorFinish that may run triggers), kept in a backend-local clock
 * given back at ExecutorEnd (or by the abort that skips it: see RunClock),
 * instead of the query's total-time
 * instrumentation (an allocation, and more work at every start and stop).
 *
 * Readers copy an entry's counts while folds go on: a count read a moment
 * late changes a percentile by at most one call's worth.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/instrument.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/pquery.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "metrics/histogram.h"
#include "metrics/latency.h"
#include "samples/samples.h"

int			perfopt_track_latency = TRACK_LATENCY_ALL;
int			perfopt_max_statements = 1000;

typedef struct LatencyKey
{
	Oid			dbid;
	bool		toplevel;
	uint64		queryid;
} LatencyKey;

typedef struct LatencyEntry
{
	LatencyKey	key;			/* hash key: must be first */
	uint64		serial;			/* tells a re-created entry from the old one */
	pg_atomic_uint64 calls;
	pg_atomic_uint64 total_ns;
	pg_atomic_uint64 min_ns;
	pg_atomic_uint64 max_ns;
	/* the calls under each of Prometheus' bounds, the last past them all */
	pg_atomic_uint64 bound_counts[PERFOPT_LATENCY_BOUNDS + 1];
	pg_atomic_uint64 counts[HISTOGRAM_BUCKETS];
} LatencyEntry;

/* A call not yet added to its entry */
typedef struct PendingCall
{
	LatencyEntry *entry;
	uint64		serial;			/* the entry's when the call ended */
	uint64		ns;
} PendingCall;

/* Calls a backend's ring holds; it folds them when half are pending */
#define PENDING_CALLS 128

/*
 * A backend's ring of pending calls: the backend alone writes the calls
 * and head; folders, under the fold lock, read them and advance tail.
 * Aligned to cache lines, head and tail in one of their own, so that two
 * backends' rings share no line: a backend writes its head at every
 * statement.
 */
typedef struct PendingRing
{
	pg_atomic_uint64 head;		/* calls appended so far */
	pg_atomic_uint64 tail;		/* calls folded so far */
	char		pad[PG_CACHE_LINE_SIZE - 2 * sizeof(pg_atomic_uint64)];
	PendingCall calls[PENDING_CALLS];
} pg_attribute_aligned(PG_CACHE_LINE_SIZE) PendingRing;

typedef struct LatencyShared
{
	LWLockPadded *locks;		/* LATENCY_LOCKS: one shared to fold or read,
								 * all exclusive to add or remove; then the
								 * fold lock */
	uint64		next_serial;
	TimestampTz reset_at;
	double		tsc_ns_per_tick;	/* see RunClock; 0: clock_gettime() */
	int			nrings;			/* one per PGPROC, by pgprocno */
	PendingRing rings[FLEXIBLE_ARRAY_MEMBER];
} LatencyShared;

/* Locks of the table: a backend folds under lock (its proc number % this) */
#define LATENCY_LOCKS 16

/* After the table's locks, the one under which pending calls are folded */
#define FOLD_LOCK (&latency_shared->locks[LATENCY_LOCKS].lock)

/* Entries a backend remembers the place of */
#define ENTRY_CACHE_SIZE 64

typedef struct CachedEntry
{
	LatencyKey	key;
	uint64		serial;			/* 0: empty */
	LatencyEntry *entry;
} CachedEntry;

static CachedEntry entry_cache[ENTRY_CACHE_SIZE];

/* This backend's lock, for folding and looking entries up, and its ring */
static LWLock *my_lock = NULL;
static PendingRing *my_ring = NULL;

/* Percentage of entries evicted when the table is full */
#define EVICT_PERCENT 5

static LatencyShared *latency_shared = NULL;
static HTAB *latency_hash = NULL;

/*
 * The first of Prometheus' bounds at or above each bucket's upper end
 * (PERFOPT_LATENCY_BOUNDS: none), so that a call is counted under its
 * bound when it is recorded and a scrape reads 17 counters a statement,
 * not the 2,432 of its histogram
 */
static uint8 bound_of_bucket[HISTOGRAM_BUCKETS];

static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;
static ExecutorEnd_hook_type prev_ExecutorEnd = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* Depth of executor calls in this backend: 0 for a top-level statement */
static int	nesting_level = 0;

/*
 * perfopt's own timer of a statement no one else instruments: the time in
 * its ExecutorRun calls (and an ExecutorFinish that may run triggers), two
 * clock reads around each.  Taken from this pool at ExecutorStart, given
 * back at ExecutorEnd.  A statement that an error ends never reaches its
 * ExecutorEnd: its clock is given back by the abort of the subtransaction
 * it started in (as the portals made in it are dropped; a subtransaction's
 * commit hands its clocks to its parent, as it does its portals), at the
 * end of the transaction, or when a new statement's QueryDesc takes the
 * address of the one that owned it, which is then gone.  That costs a
 * store at the end instead of a memory-context reset callback registered
 * at every start and run at every end.  Statements active at once beyond
 * RUN_CLOCKS (deep recursion) get a total-time instrumentation instead.
 */
typedef struct RunClock
{
	QueryDesc  *query;			/* NULL: free */
	int			xact_level;		/* nest level of the subtransaction that owns it */
	union
	{
		uint64		ticks;		/* of the time-stamp counter, if it is used */
		instr_time	elapsed;	/* else */
	};
} RunClock;						/* 32 bytes: the pool is indexed by a shift */

/*
 * The clock of RunClocks: the CPU's time-stamp counter where the kernel
 * keeps its own time by it (its clock source is "tsc": the counter is
 * invariant and the same on every CPU), read directly, which costs a third
 * of clock_gettime() through the vDSO (which reads that same counter and
 * scales it); else clock_gettime().  The counter's rate is measured against
 * clock_gettime() once, at server start.  Nanoseconds per tick, 0 if the
 * counter is not used.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <x86intrin.h>
#define RUN_CLOCK_TSC
#endif

static double tsc_ns_per_tick = 0;

/* tsc_ns_per_tick > 0, as a flag: tested without loading a double */
static bool use_tsc = false;

typedef struct RunStamp
{
	uint64		ticks;
	instr_time	time;
} RunStamp;

static inline void
run_stamp(RunStamp *stamp)
{
#ifdef RUN_CLOCK_TSC
	if (likely(use_tsc))
	{
		stamp->ticks = __rdtsc();
		return;
	}
#endif
	INSTR_TIME_SET_CURRENT(stamp->time);
}

/* Add the time since start to clock */
static inline void
run_clock_add(RunClock *clock, const RunStamp *start)
{
	RunStamp	end;

	run_stamp(&end);
	if (likely(use_tsc))
		clock->ticks += end.ticks - start->ticks;
	else
		INSTR_TIME_ACCUM_DIFF(clock->elapsed, end.time, start->time);
}

/*
 * The clock's time in ns.  Through int64: a double converts to it in one
 * instruction, to uint64 in a branch and several (the value is the same
 * below 2^63 ns, 292 years).
 */
static inline uint64
run_clock_ns(const RunClock *clock)
{
	if (likely(use_tsc))
		return (uint64) (int64) ((double) (int64) clock->ticks * tsc_ns_per_tick + 0.5);
	return (uint64) (int64) (INSTR_TIME_GET_DOUBLE(clock->elapsed) * 1e9 + 0.5);
}

#define RUN_CLOCKS 32

static RunClock run_clocks[RUN_CLOCKS];

/* One past the last clock in use */
static int	run_clocks_top = 0;

/* Whether this process's statements are left out (perfopt's own workers) */
static bool skip_this_process = false;

/*
 * The time a top-level statement has kept the server busy so far: the
 * spans of the protocol messages in which the executor ran it.
 */
typedef struct ToplevelRun
{
	QueryDesc  *query;
	uint64		busy_ns;
	TimestampTz message_start;	/* of the message of the last run */
	TimestampTz last_end;		/* when the last run ended */
} ToplevelRun;

static ToplevelRun toplevel_run;

/* When the last top-level statement of this backend ended */
static TimestampTz last_toplevel_end = 0;

PG_FUNCTION_INFO_V1(perfopt_query_latency);
PG_FUNCTION_INFO_V1(perfopt_query_latency_reset);
PG_FUNCTION_INFO_V1(perfopt_latency_counts);
PG_FUNCTION_INFO_V1(perfopt_latency_quantiles);

/* Rings: one per process that may run statements, indexed by pgprocno */
static int
latency_rings(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
latency_shared_size(void)
{
	return add_size(offsetof(LatencyShared, rings),
					mul_size(latency_rings(), sizeof(PendingRing)));
}

static Size
latency_shmem_size(void)
{
	return add_size(MAXALIGN(latency_shared_size()),
					hash_estimate_size(perfopt_max_statements, sizeof(LatencyEntry)));
}

/*
 * Nanoseconds per tick of the time-stamp counter, measured against
 * clock_gettime() over 20 ms, if the kernel keeps time by the counter; else
 * 0.  Each end of the span is a counter read between two clock reads, taken
 * again if those are more than 1 us apart (the process was interrupted), so
 * the rate is within 1e-4.
 */
static double
tsc_calibrate(void)
{
#ifdef RUN_CLOCK_TSC
	FILE	   *f;
	char		source[32] = "";
	uint64		ticks[2];
	double		ns[2];

	f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	if (f == NULL)
		return 0;
	if (fgets(source, sizeof(source), f) == NULL)
		source[0] = '\0';
	fclose(f);
	if (strcmp(source, "tsc\n") != 0)
		return 0;

	for (int end = 0; end < 2; end++)
	{
		for (int attempt = 0;; attempt++)
		{
			instr_time	before,
						after;

			INSTR_TIME_SET_CURRENT(before);
			ticks[end] = __rdtsc();
			INSTR_TIME_SET_CURRENT(after);
			ns[end] = (INSTR_TIME_GET_DOUBLE(before) + INSTR_TIME_GET_DOUBLE(after)) * 0.5e9;
			INSTR_TIME_SUBTRACT(after, before);
			if (INSTR_TIME_GET_DOUBLE(after) < 1e-6)
				break;
			if (attempt == 100)
				return 0;
		}
		if (end == 0)
			pg_usleep(20000);
	}
	if (ticks[1] <= ticks[0] || ns[1] <= ns[0])
		return 0;
	return (ns[1] - ns[0]) / (double) (ticks[1] - ticks[0]);
#else
	return 0;
#endif
}

/* Ask for the histograms' shared memory and lock; from perfopt.c's hook */
void
perfopt_latency_shmem_request(void)
{
	RequestAddinShmemSpace(latency_shmem_size());
	RequestNamedLWLockTranche("perfopt latency", LATENCY_LOCKS + 1);
}

/*
 * Create or attach the histograms' shared memory; from perfopt.c's hook,
 * which holds AddinShmemInitLock
 */
void
perfopt_latency_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	latency_shared = ShmemInitStruct("perfopt latency", latency_shared_size(), &found);
	if (!found)
	{
		latency_shared->locks = GetNamedLWLockTranche("perfopt latency");
		latency_shared->next_serial = 1;
		latency_shared->reset_at = GetCurrentTimestamp();
		latency_shared->tsc_ns_per_tick = tsc_calibrate();
		latency_shared->nrings = latency_rings();
		for (int i = 0; i < latency_shared->nrings; i++)
		{
			pg_atomic_init_u64(&latency_shared->rings[i].head, 0);
			pg_atomic_init_u64(&latency_shared->rings[i].tail, 0);
		}
	}

	tsc_ns_per_tick = latency_shared->tsc_ns_per_tick;
	use_tsc = tsc_ns_per_tick > 0;

	info.keysize = sizeof(LatencyKey);
	info.entrysize = sizeof(LatencyEntry);
	latency_hash = ShmemInitHash("perfopt latency hash",
								 perfopt_max_statements, perfopt_max_statements,
								 &info, HASH_ELEM | HASH_BLOBS);
}

/*
 * Whether this process's statements are timed at all: perfopt preloaded,
 * not one of perfopt's workers, not a parallel worker (whose leader times
 * the statement).  Worked out at the first statement (a parallel worker
 * knows it is one before it runs any), again if perfopt's worker says so.
 */
static int8 process_tracked = -1;	/* -1: not known yet */

static pg_noinline bool
process_tracked_init(void)
{
	process_tracked = latency_shared != NULL && !skip_this_process && !IsParallelWorker();
	return process_tracked;
}

static inline bool
latency_tracked(int level)
{
	if (perfopt_track_latency != TRACK_LATENCY_ALL &&
		(perfopt_track_latency != TRACK_LATENCY_TOP || level != 0))
		return false;
	if (unlikely(process_tracked < 0))
		return process_tracked_init();
	return process_tracked;
}

/*
 * Fold a ring's pending calls into their entries; a table lock held (no
 * entry is made or removed meanwhile) and the fold lock exclusively, so no
 * one else writes the entries' counts and plain reads and writes of them
 * do.  A call whose entry's serial changed belonged to a removed entry:
 * dropped.  Consecutive calls of one entry (a loop's statement) are added
 * together: a bucket and a bound counter each, then the sums, the extremes
 * and, last, after a barrier, calls, so that a reader that sees a call also
 * sees its bucket.
 */
static void
ring_fold(PendingRing *ring)
{
	uint64		head = pg_atomic_read_u64(&ring->head);
	uint64		tail = pg_atomic_read_u64(&ring->tail);
	uint64		t = tail;

	if (head == tail)
		return;
	pg_read_barrier();			/* the calls up to head are written */
	while (t < head)
	{
		PendingCall *call = &ring->calls[t % PENDING_CALLS];
		LatencyEntry *entry = call->entry;
		uint64		serial = call->serial;
		uint64		n = 0;
		uint64		total = 0;
		uint64		min_ns = PG_UINT64_MAX;
		uint64		max_ns = 0;
		bool		live = entry->serial == serial;

		do
		{
			uint64		ns = call->ns;

			if (live)
			{
				int			bucket = histogram_bucket(ns);

#define ADD(field, k) pg_atomic_write_u64(field, pg_atomic_read_u64(field) + (k))
				ADD(&entry->counts[bucket], 1);
				ADD(&entry->bound_counts[bound_of_bucket[bucket]], 1);
				n++;
				total += ns;
				min_ns = Min(min_ns, ns);
				max_ns = Max(max_ns, ns);
			}
			t++;
			call = &ring->calls[t % PENDING_CALLS];
		} while (t < head && call->entry == entry && call->serial == serial);

		if (n > 0)
		{
			ADD(&entry->total_ns, total);
			if (min_ns < pg_atomic_read_u64(&entry->min_ns))
				pg_atomic_write_u64(&entry->min_ns, min_ns);
			if (max_ns > pg_atomic_read_u64(&entry->max_ns))
				pg_atomic_write_u64(&entry->max_ns, max_ns);
			pg_write_barrier();
			ADD(&entry->calls, n);
		}
#undef ADD
	}
	pg_memory_barrier();		/* read them all before the owner may reuse them */
	pg_atomic_write_u64(&ring->tail, head);
}

/* Fold every backend's pending calls; a table lock held */
static void
latency_fold_all(void)
{
	LWLockAcquire(FOLD_LOCK, LW_EXCLUSIVE);
	for (int i = 0; i < latency_shared->nrings; i++)
		ring_fold(&latency_shared->rings[i]);
	LWLockRelease(FOLD_LOCK);
}

/*
 * Lock the table for reading: one lock shared keeps creators out; then
 * every pending call is added, so the reader sees every call that ended
 * before it
 */
static void
latency_lock_shared(void)
{
	LWLockAcquire(&latency_shared->locks[0].lock, LW_SHARED);
	latency_fold_all();
}

static void
latency_unlock_shared(void)
{
	LWLockRelease(&latency_shared->locks[0].lock);
}

/* Lock the table to add or remove entries: every lock, in order */
static void
latency_lock_all(void)
{
	for (int i = 0; i < LATENCY_LOCKS; i++)
		LWLockAcquire(&latency_shared->locks[i].lock, LW_EXCLUSIVE);
}

static void
latency_unlock_all(void)
{
	for (int i = LATENCY_LOCKS - 1; i >= 0; i--)
		LWLockRelease(&latency_shared->locks[i].lock);
}

/* Remove an entry; its serial zeroed, so backends' caches see it is gone */
static void
latency_entry_remove(LatencyEntry *entry)
{
	entry->serial = 0;
	hash_search(latency_hash, &entry->key, HASH_REMOVE, NULL);
}

/* An entry that eviction may drop, with its calls when eviction began */
typedef struct EvictCandidate
{
	LatencyEntry *entry;
	uint64		calls;
	int			order;			/* position in the hash's scan, for ties */
} EvictCandidate;

/* qsort comparator: fewest calls first, ties in scan order */
static int
evict_candidate_cmp(const void *a, const void *b)
{
	const EvictCandidate *x = (const EvictCandidate *) a;
	const EvictCandidate *y = (const EvictCandidate *) b;

	if (x->calls != y->calls)
		return x->calls < y->calls ? -1 : 1;
	return x->order - y->order;
}

/*
 * Drop the EVICT_PERCENT of entries with the fewest calls; lock held
 * exclusively, so every backend that ends a statement waits for it.  As
 * pg_stat_statements does (entry_dealloc): one pass to collect, a qsort,
 * one pass to remove, O(n log n).  Ties go in the order of the hash's scan.
 */
static void
latency_evict(void)
{
	HASH_SEQ_STATUS status;
	LatencyEntry *entry;
	int			n = hash_get_num_entries(latency_hash);
	EvictCandidate *candidates;
	int			i = 0;
	int			victims;

	if (n == 0)
		return;
	/* the calls still pending count */
	latency_fold_all();
	candidates = palloc(n * sizeof(EvictCandidate));
	hash_seq_init(&status, latency_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		candidates[i].entry = entry;
		candidates[i].calls = pg_atomic_read_u64(&entry->calls);
		candidates[i].order = i;
		i++;
	}

	qsort(candidates, i, sizeof(EvictCandidate), evict_candidate_cmp);
	victims = Min(i, Max(1, i * EVICT_PERCENT / 100));
	for (int v = 0; v < victims; v++)
		latency_entry_remove(candidates[v].entry);
	pfree(candidates);
}

/* The entry of (dbid, toplevel, queryid), or NULL; the caller holds a lock */
static LatencyEntry *
latency_entry_find(Oid dbid, bool toplevel, uint64 queryid)
{
	LatencyKey	key;

	memset(&key, 0, sizeof(key));
	key.dbid = dbid;
	key.toplevel = toplevel;
	key.queryid = queryid;
	return hash_search(latency_hash, &key, HASH_FIND, NULL);
}

/* Find or make the entry for key; every lock held exclusively */
static LatencyEntry *
latency_entry_create(const LatencyKey *key)
{
	LatencyEntry *entry;
	bool		found;

	entry = hash_search(latency_hash, key, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	if (hash_get_num_entries(latency_hash) >= perfopt_max_statements)
		latency_evict();

	entry = hash_search(latency_hash, key, HASH_ENTER_NULL, &found);
	if (entry == NULL || found)
		return entry;

	entry->serial = latency_shared->next_serial++;
	pg_atomic_init_u64(&entry->calls, 0);
	pg_atomic_init_u64(&entry->total_ns, 0);
	pg_atomic_init_u64(&entry->min_ns, PG_UINT64_MAX);
	pg_atomic_init_u64(&entry->max_ns, 0);
	for (int k = 0; k <= PERFOPT_LATENCY_BOUNDS; k++)
		pg_atomic_init_u64(&entry->bound_counts[k], 0);
	for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
		pg_atomic_init_u64(&entry->counts[i], 0);
	return entry;
}

/*
 * The entry of key from the hash table, made under every lock if missing;
 * NULL if the table is full of entries no eviction could free.  Remembered
 * in cached.
 */
static LatencyEntry *
latency_entry_lookup(const LatencyKey *key, CachedEntry *cached)
{
	LatencyEntry *entry;
	bool		all = false;

	LWLockAcquire(my_lock, LW_SHARED);
	entry = hash_search(latency_hash, key, HASH_FIND, NULL);
	if (entry == NULL)
	{
		LWLockRelease(my_lock);
		latency_lock_all();
		all = true;
		entry = latency_entry_create(key);
	}
	if (entry != NULL)
	{
		cached->key = *key;
		cached->entry = entry;
		cached->serial = entry->serial;
	}
	if (all)
		latency_unlock_all();
	else
		LWLockRelease(my_lock);
	return entry;
}

/* Fold this backend's own ring; wait for the fold lock only if must */
static pg_noinline void
my_ring_fold(bool must)
{
	LWLockAcquire(my_lock, LW_SHARED);
	if (must)
		LWLockAcquire(FOLD_LOCK, LW_EXCLUSIVE);
	else if (!LWLockConditionalAcquire(FOLD_LOCK, LW_EXCLUSIVE))
	{
		LWLockRelease(my_lock);
		return;
	}
	ring_fold(my_ring);
	LWLockRelease(FOLD_LOCK);
	LWLockRelease(my_lock);
}

/*
 * The entry of (MyDatabaseId, toplevel, queryid) when this backend's cache
 * does not have it (or has a removed one), from the hash table (made under
 * every lock if new), remembered in cached with its serial; NULL if the
 * table is full of entries no eviction could free, or this process has no
 * ring.  Out of line: latency_record's common path stays small.
 */
static pg_noinline LatencyEntry *
latency_record_lookup(uint64 queryid, bool toplevel, CachedEntry *cached)
{
	LatencyKey	key;

	if (my_ring == NULL)
	{
		if (MyProc == NULL || MyProc->pgprocno >= latency_shared->nrings)
			return NULL;
		my_lock = &latency_shared->locks[MyProc->pgprocno % LATENCY_LOCKS].lock;
		my_ring = &latency_shared->rings[MyProc->pgprocno];
	}

	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	key.toplevel = toplevel;
	key.queryid = queryid;
	return latency_entry_lookup(&key, cached);
}

/*
 * Add one duration to the statement's histogram: appended to this
 * backend's ring with the entry from the backend's cache when its serial
 * still matches, else from the hash table (made under every lock if new).
 * No lock and no atomic read-modify-write on the way, unless the ring is
 * half full (then it is folded, if no one else is folding) or full (then
 * it is folded, waiting for the fold lock if need be).  A cached entry is
 * only ever one of this backend's database (the cache is per process), so
 * its queryid and level are what is compared.
 */
static inline void
latency_record(uint64 queryid, bool toplevel, uint64 ns)
{
	LatencyEntry *entry;
	CachedEntry *cached;
	PendingCall *call;
	uint64		head;
	uint64		pending;

	cached = &entry_cache[(queryid ^ (uint64) toplevel) % ENTRY_CACHE_SIZE];

	/* a removed entry's serial is 0; a made-again one's a new one */
	if (likely(cached->serial != 0 && cached->key.queryid == queryid &&
			   cached->key.toplevel == toplevel &&
			   cached->entry->serial == cached->serial))
		entry = cached->entry;
	else if ((entry = latency_record_lookup(queryid, toplevel, cached)) == NULL)
		return;

	head = pg_atomic_read_u64(&my_ring->head);
	pending = head - pg_atomic_read_u64(&my_ring->tail);
	if (unlikely(pending >= PENDING_CALLS))
	{
		my_ring_fold(true);
		pending = 0;
	}
	call = &my_ring->calls[head % PENDING_CALLS];
	call->entry = entry;
	call->serial = cached->serial;
	call->ns = ns;
	pg_write_barrier();			/* the call before the head that shows it */
	pg_atomic_write_u64(&my_ring->head, head + 1);
	if (unlikely(pending + 1 >= PENDING_CALLS / 2))
		my_ring_fold(false);
}

/* Give a clock back to the pool */
static inline void
run_clock_release(RunClock *clock)
{
	clock->query = NULL;
	if (clock == &run_clocks[run_clocks_top - 1])
	{
		do
			run_clocks_top--;
		while (run_clocks_top > 0 && run_clocks[run_clocks_top - 1].query == NULL);
	}
}

/* The clock of a statement, if perfopt's own clock times it */
static inline RunClock *
run_clock_of(QueryDesc *queryDesc)
{
	for (RunClock *clock = &run_clocks[run_clocks_top - 1]; clock >= run_clocks; clock--)
		if (clock->query == queryDesc)
			return clock;
	return NULL;
}

/*
 * A new statement starts: a clock still held for its QueryDesc's address
 * belonged to a statement an error ended (two live statements do not share
 * an address), and is given back
 */
static pg_noinline void
run_clock_drop_stale(QueryDesc *queryDesc)
{
	for (int i = run_clocks_top - 1; i >= 0; i--)
		if (run_clocks[i].query == queryDesc)
			run_clock_release(&run_clocks[i]);
}

/* A clock for a statement; false if none is free */
static bool
run_clock_take(QueryDesc *queryDesc)
{
	for (int i = 0; i < RUN_CLOCKS; i++)
	{
		RunClock   *clock = &run_clocks[i];

		if (clock->query != NULL)
			continue;
		clock->query = queryDesc;
		clock->xact_level = GetCurrentTransactionNestLevel();
		if (likely(use_tsc))
			clock->ticks = 0;
		else
			INSTR_TIME_SET_ZERO(clock->elapsed);
		run_clocks_top = Max(run_clocks_top, i + 1);
		return true;
	}
	return false;
}

/*
 * Clocks of statements an error ended: those owned by an aborted
 * subtransaction are given back, a committed one's pass to its parent;
 * every clock is given back when the transaction ends (a statement that
 * ended normally gave its own back at ExecutorEnd; a cursor kept past the
 * commit finished its run before it)
 */
static void
run_clocks_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	int			level;

	if (run_clocks_top == 0 ||
		(event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
		return;
	level = GetCurrentTransactionNestLevel();
	for (int i = run_clocks_top - 1; i >= 0; i--)
	{
		RunClock   *clock = &run_clocks[i];

		if (clock->query == NULL || clock->xact_level < level)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB)
			run_clock_release(clock);
		else
			clock->xact_level = level - 1;
	}
}

static void
run_clocks_xact_callback(XactEvent event, void *arg)
{
	if (run_clocks_top == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			for (int i = 0; i < RUN_CLOCKS; i++)
				run_clocks[i].query = NULL;
			run_clocks_top = 0;
			break;
		default:
			break;
	}
}

static void
latency_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);

	perfopt_samples_executor_start(queryDesc, eflags);

	if (unlikely(run_clocks_top > 0))
		run_clock_drop_stale(queryDesc);

	/*
	 * The total-time instrumentation pg_stat_statements asks for, shared
	 * with it (when it times this statement it made it already); else
	 * perfopt's own clock.  Past the pool of clocks, a total-time
	 * instrumentation of its own: only a timer when no hook runs after this
	 * one (so no one reads the buffer counts of what perfopt made).
	 */
	if (queryDesc->totaltime == NULL &&
		latency_tracked(nesting_level) &&
		queryDesc->plannedstmt->queryId != UINT64CONST(0) &&
		(eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 &&
		!run_clock_take(queryDesc))
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(queryDesc->estate->es_query_cxt);

		queryDesc->totaltime = InstrAlloc(1, ExecutorStart_hook == latency_ExecutorStart ?
										  INSTRUMENT_TIMER : INSTRUMENT_ALL, false);
		MemoryContextSwitchTo(oldcxt);
	}
}

/*
 * A run of a top-level statement ended: add the span from the start of its
 * message (or of this statement's previous run in the same message, or of
 * the previous statement's end) to now.
 */
static void
toplevel_run_ended(QueryDesc *queryDesc)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz start = Max(GetCurrentStatementStartTimestamp(), last_toplevel_end);

	if (toplevel_run.query != queryDesc)
	{
		toplevel_run.query = queryDesc;
		toplevel_run.busy_ns = 0;
		toplevel_run.last_end = 0;
	}
	start = Max(start, toplevel_run.last_end);
	if (now > start)
		toplevel_run.busy_ns += (uint64) (now - start) * 1000;
	toplevel_run.message_start = GetCurrentStatementStartTimestamp();
	toplevel_run.last_end = now;
}

static void
latency_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction,
					uint64 count, bool execute_once)
{
	RunClock   *clock = run_clocks_top > 0 ? run_clock_of(queryDesc) : NULL;
	RunStamp	start;

	if (clock != NULL)
		run_stamp(&start);
	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
	if (clock != NULL)
		run_clock_add(clock, &start);
	if (nesting_level == 0 && latency_tracked(0))
		toplevel_run_ended(queryDesc);
}

/*
 * ExecutorFinish runs a statement's AFTER triggers and the rest of its
 * data-modifying CTEs; a plain SELECT has none, and timing its empty
 * Finish would cost two clock reads, more than it takes.  So when the
 * statement is such a SELECT and perfopt times it alone (with its own
 * clock, or a total-time instrumentation that is a timer only: see
 * latency_ExecutorStart), Finish runs untimed.  Nor does such a Finish
 * run any statement of the user's, so it is not a level of nesting and
 * needs no PG_TRY (a setjmp) to restore one on error: an error there ends
 * the statement before its ExecutorEnd, so a total-time instrumentation
 * left unset is never read.
 */
static void
latency_ExecutorFinish(QueryDesc *queryDesc)
{
	Instrumentation *totaltime = queryDesc->totaltime;
	RunClock   *clock;
	RunStamp	start;

	if (queryDesc->operation == CMD_SELECT &&
		queryDesc->estate->es_auxmodifytables == NIL)
	{
		bool		untimed = totaltime != NULL && !totaltime->need_bufusage &&
			!totaltime->need_walusage;

		if (untimed)
			queryDesc->totaltime = NULL;
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
		if (untimed)
			queryDesc->totaltime = totaltime;
		return;
	}

	clock = run_clocks_top > 0 ? run_clock_of(queryDesc) : NULL;
	if (clock != NULL)
		run_stamp(&start);
	nesting_level++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		nesting_level--;
	}
	PG_END_TRY();
	if (clock != NULL)
		run_clock_add(clock, &start);
}

/*
 * End a top-level statement timed since its start and record its duration:
 * the time its runs kept the server busy (see toplevel_run_ended), then its
 * shutdown: from the end of its last run when the shutdown comes in the
 * same message while a portal runs (an INSERT, UPDATE or DELETE ends inside
 * its Execute), else only the executor's own shutdown (the portal of a
 * SELECT closed by Sync's commit or by the next Bind: the time between is
 * not the statement's).  Never less than the executor's own time, exec_ns.
 * Out of line, so that a nested statement's end stays short.
 */
static pg_noinline void
toplevel_end(QueryDesc *queryDesc, uint64 queryid, uint64 exec_ns)
{
	bool		ran = false;
	bool		same_message = false;
	TimestampTz end_started = 0;
	TimestampTz now;
	uint64		ns = exec_ns;

	if (toplevel_run.query == queryDesc)
	{
		ran = true;
		same_message = toplevel_run.message_start == GetCurrentStatementStartTimestamp() &&
			ActivePortal != NULL;
		/* only the shutdown counts: the clock is read before it */
		if (!same_message)
			end_started = GetCurrentTimestamp();
	}

	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);

	now = GetCurrentTimestamp();
	if (ran)
	{
		uint64		busy = toplevel_run.busy_ns;

		if (same_message)
			busy += (uint64) Max(now - toplevel_run.last_end, 0) * 1000;
		else
			busy += (uint64) Max(now - end_started, 0) * 1000;
		ns = Max(ns, busy);
		toplevel_run.query = NULL;
	}
	last_toplevel_end = now;
	latency_record(queryid, true, ns);
}

/*
 * Record the statement's duration: a nested statement's is its executor
 * time (the total-time instrumentation's, or perfopt's own clock's), read
 * before the shutdown; a top-level statement's, see toplevel_end.
 */
static void
latency_ExecutorEnd(QueryDesc *queryDesc)
{
	uint64		queryid = queryDesc->plannedstmt->queryId;
	RunClock   *clock = run_clocks_top > 0 ? run_clock_of(queryDesc) : NULL;
	uint64		exec_ns = 0;
	bool		timed = false;

	if (queryid != UINT64CONST(0) && latency_tracked(nesting_level) &&
		(queryDesc->estate->es_top_eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0)
	{
		if (queryDesc->totaltime != NULL)
		{
			/* safe to call twice: pg_stat_statements may call it again */
			InstrEndLoop(queryDesc->totaltime);
			exec_ns = (uint64) (queryDesc->totaltime->total * 1e9 + 0.5);
			timed = true;
		}
		else if (clock != NULL)
		{
			exec_ns = run_clock_ns(clock);
			timed = true;
		}
		/* else not timed since its start */
	}
	if (clock != NULL)
		run_clock_release(clock);

	if (timed && nesting_level == 0)
	{
		toplevel_end(queryDesc, queryid, exec_ns);
		return;
	}
	if (prev_ExecutorEnd)
		prev_ExecutorEnd(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
	if (timed)
		latency_record(queryid, false, exec_ns);
}

/*
 * A utility statement's own statements are nested, as pg_stat_statements
 * counts them, except those of EXECUTE, which runs a top-level statement
 * prepared earlier.
 */
static void
latency_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					   bool readOnlyTree, ProcessUtilityContext context,
					   ParamListInfo params, QueryEnvironment *queryEnv,
					   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		nests = !IsA(parsetree, ExecuteStmt) &&
		!IsA(parsetree, PrepareStmt) && !IsA(parsetree, DeallocateStmt);

	if (nests)
		nesting_level++;
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (nests)
			nesting_level--;
	}
	PG_END_TRY();
}

/*
 * Install the executor hooks; called from _PG_init while
 * shared_preload_libraries is processed.
 */
void
perfopt_latency_init(void)
{
	for (int b = 0; b < HISTOGRAM_BUCKETS; b++)
	{
		double		high = histogram_bucket_high(b) / 1e9;
		int			k = 0;

		while (k < PERFOPT_LATENCY_BOUNDS && perfopt_latency_bounds[k] < high)
			k++;
		bound_of_bucket[b] = k;
	}

	RegisterXactCallback(run_clocks_xact_callback, NULL);
	RegisterSubXactCallback(run_clocks_subxact_callback, NULL);

	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = latency_ExecutorStart;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = latency_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = latency_ExecutorFinish;
	prev_ExecutorEnd = ExecutorEnd_hook;
	ExecutorEnd_hook = latency_ExecutorEnd;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = latency_ProcessUtility;
}

/* Leave the statements of this process out: perfopt's workers call it */
void
perfopt_latency_skip_this_process(void)
{
	skip_this_process = true;
	process_tracked = 0;
}

/*
 * The total time of a statement (top level and nested) in ns, 0 when it
 * has no histogram: the parameter sampler evicts the cheapest statements.
 * A ranking, called once per sampled statement: the calls still pending
 * in the backends' rings are left out (not folded) rather than folded each
 * time.
 */
uint64
perfopt_latency_total_ns(Oid dbid, uint64 queryid)
{
	uint64		total = 0;

	if (!perfopt_latency_available())
		return 0;
	LWLockAcquire(&latency_shared->locks[0].lock, LW_SHARED);
	for (int toplevel = 0; toplevel <= 1; toplevel++)
	{
		LatencyEntry *entry = latency_entry_find(dbid, (bool) toplevel, queryid);

		if (entry != NULL)
			total += pg_atomic_read_u64(&entry->total_ns);
	}
	latency_unlock_shared();
	return total;
}

/* Whether the histograms exist: perfopt was preloaded */
bool
perfopt_latency_available(void)
{
	return latency_shared != NULL;
}

static void
latency_require(void)
{
	if (!perfopt_latency_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("perfopt must be loaded via shared_preload_libraries to time statements"),
				 errhint("Add perfopt to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* A consistent-enough copy of an entry's figures, taken without stopping writers */
typedef struct EntryCopy
{
	LatencyKey	key;
	uint64		serial;
	uint64		calls;
	uint64		total_ns;
	uint64		min_ns;
	uint64		max_ns;
	uint64		counts[HISTOGRAM_BUCKETS];
} EntryCopy;

static void
entry_copy(LatencyEntry *entry, EntryCopy *copy)
{
	copy->key = entry->key;
	copy->serial = entry->serial;
	copy->calls = pg_atomic_read_u64(&entry->calls);
	pg_read_barrier();
	for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
		copy->counts[i] = pg_atomic_read_u64(&entry->counts[i]);
	copy->total_ns = pg_atomic_read_u64(&entry->total_ns);
	copy->min_ns = pg_atomic_read_u64(&entry->min_ns);
	copy->max_ns = pg_atomic_read_u64(&entry->max_ns);
}

/* Fill figures from counts holding calls durations within [min_ns, max_ns] */
static void
figures_from_counts(LatencyFigures *figures, const uint64 *counts, uint64 calls,
					uint64 total_ns, uint64 min_ns, uint64 max_ns)
{
	figures->calls = calls;
	figures->total_ms = total_ns / 1e6;
	figures->p50_ms = histogram_quantile(counts, calls, 0.50, min_ns, max_ns) / 1e6;
	figures->p95_ms = histogram_quantile(counts, calls, 0.95, min_ns, max_ns) / 1e6;
	figures->p99_ms = histogram_quantile(counts, calls, 0.99, min_ns, max_ns) / 1e6;
}

/* One row of query_latency(), computed under the lock and output after it */
typedef struct LatencyRow
{
	LatencyKey	key;
	uint64		calls;
	uint64		min_ns;
	uint64		max_ns;
	LatencyFigures figures;
} LatencyRow;

/*
 * query_latency(): one row per timed statement, with percentiles since the
 * entry was made or last reset.  The rows are computed under the lock into
 * memory taken before it, and go to the tuplestore (which may write to
 * disk) after it.
 */
Datum
perfopt_query_latency(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS status;
	LatencyEntry *entry;
	EntryCopy  *copy;
	LatencyRow *rows;
	int			capacity = perfopt_max_statements;
	int			n = 0;

	latency_require();
	InitMaterializedSRF(fcinfo, 0);
	copy = palloc(sizeof(EntryCopy));
	rows = palloc(capacity * sizeof(LatencyRow));

	latency_lock_shared();
	hash_seq_init(&status, latency_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		LatencyRow *row;

		if (n == capacity)
		{
			hash_seq_term(&status);
			break;
		}
		entry_copy(entry, copy);
		if (copy->calls == 0)
			continue;
		row = &rows[n++];
		row->key = copy->key;
		row->calls = copy->calls;
		row->min_ns = copy->min_ns;
		row->max_ns = copy->max_ns;
		figures_from_counts(&row->figures, copy->counts, copy->calls, copy->total_ns,
							copy->min_ns, copy->max_ns);
	}
	latency_unlock_shared();

	for (int i = 0; i < n; i++)
	{
		LatencyRow *row = &rows[i];
		Datum		values[10];
		bool		nulls[10] = {false};

		values[0] = ObjectIdGetDatum(row->key.dbid);
		values[1] = Int64GetDatum((int64) row->key.queryid);
		values[2] = BoolGetDatum(row->key.toplevel);
		values[3] = Int64GetDatum((int64) row->calls);
		values[4] = Float8GetDatum(row->figures.p50_ms);
		values[5] = Float8GetDatum(row->figures.p95_ms);
		values[6] = Float8GetDatum(row->figures.p99_ms);
		values[7] = Float8GetDatum(row->figures.total_ms / row->calls);
		values[8] = Float8GetDatum(row->min_ns / 1e6);
		values[9] = Float8GetDatum(row->max_ns / 1e6);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(rows);
	pfree(copy);

	return (Datum) 0;
}

/* query_latency_reset(): forget every histogram; returns when it happened */
Datum
perfopt_query_latency_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS status;
	LatencyEntry *entry;
	TimestampTz now = GetCurrentTimestamp();

	latency_require();

	latency_lock_all();
	hash_seq_init(&status, latency_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
		latency_entry_remove(entry);
	latency_shared->reset_at = now;
	latency_unlock_all();

	PG_RETURN_TIMESTAMPTZ(now);
}

/*
 * The percentiles of one statement of a database, top level and nested
 * calls merged; false if it was never timed.
 */
bool
perfopt_latency_of_query(Oid dbid, uint64 queryid, LatencyFigures *figures)
{
	EntryCopy  *copy;
	uint64	   *merged;
	uint64		calls = 0,
				total_ns = 0,
				min_ns = PG_UINT64_MAX,
				max_ns = 0;

	if (!perfopt_latency_available())
		return false;

	copy = palloc(sizeof(EntryCopy));
	merged = palloc0(sizeof(uint64) * HISTOGRAM_BUCKETS);

	latency_lock_shared();
	for (int toplevel = 0; toplevel <= 1; toplevel++)
	{
		LatencyEntry *entry = latency_entry_find(dbid, (bool) toplevel, queryid);

		if (entry == NULL)
			continue;
		entry_copy(entry, copy);
		for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
			merged[i] += copy->counts[i];
		calls += copy->calls;
		total_ns += copy->total_ns;
		min_ns = Min(min_ns, copy->min_ns);
		max_ns = Max(max_ns, copy->max_ns);
	}
	latency_unlock_shared();

	if (calls > 0)
	{
		figures->dbid = dbid;
		figures->queryid = queryid;
		figures->toplevel = true;
		figures_from_counts(figures, merged, calls, total_ns, min_ns, max_ns);
	}
	pfree(copy);
	pfree(merged);
	return calls > 0;
}

/*
 * What this process saw at its last call of
 * perfopt_latency_since_last_call, per entry: the counts as sparse
 * (bucket, count) pairs, since most of a statement's buckets stay empty.
 */
typedef struct PreviousEntry
{
	LatencyKey	key;
	uint64		serial;
	uint64		calls;
	uint64		total_ns;
	int			nbuckets;
	int		   *buckets;
	uint64	   *counts;
	uint32		generation;
} PreviousEntry;

static HTAB *previous_entries = NULL;
static MemoryContext previous_cxt = NULL;
static uint32 previous_generation = 0;

/* A statement's counts in the interval, while it may be among the top */
typedef struct IntervalCounts
{
	LatencyKey	key;
	uint64		calls;
	uint64		total_ns;
	uint64		min_ns;
	uint64		max_ns;
	uint64		counts[HISTOGRAM_BUCKETS];
} IntervalCounts;

/* Remember copy as the previous state of its entry */
static void
previous_store(PreviousEntry *prev, const EntryCopy *copy)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(previous_cxt);
	int			n = 0;

	for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
		if (copy->counts[i] != 0)
			n++;
	if (prev->buckets != NULL)
	{
		pfree(prev->buckets);
		pfree(prev->counts);
	}
	prev->buckets = palloc(Max(n, 1) * sizeof(int));
	prev->counts = palloc(Max(n, 1) * sizeof(uint64));
	prev->nbuckets = 0;
	for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
		if (copy->counts[i] != 0)
		{
			prev->buckets[prev->nbuckets] = i;
			prev->counts[prev->nbuckets] = copy->counts[i];
			prev->nbuckets++;
		}
	prev->serial = copy->serial;
	prev->calls = copy->calls;
	prev->total_ns = copy->total_ns;
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Latency of the interval since this process last called this function:
 * *all gets the percentiles of every top-level statement together, and the
 * list returned those of the top_n statements with the most time spent in
 * the interval.  The first call only takes the starting point and returns
 * NIL with all->calls = 0.
 */
List *
perfopt_latency_since_last_call(int top_n, LatencyFigures *all)
{
	HASH_SEQ_STATUS status;
	LatencyEntry *entry;
	EntryCopy  *copy;
	IntervalCounts *top;
	IntervalCounts *delta;
	uint64	   *all_counts;
	uint64		all_calls = 0,
				all_total_ns = 0,
				all_max_ns = 0;
	int			ntop = 0;
	bool		first = (previous_entries == NULL);
	List	   *result = NIL;

	latency_require();
	memset(all, 0, sizeof(*all));

	if (first)
	{
		HASHCTL		info;

		previous_cxt = AllocSetContextCreate(TopMemoryContext,
											 "perfopt previous latency",
											 ALLOCSET_DEFAULT_SIZES);
		info.keysize = sizeof(LatencyKey);
		info.entrysize = sizeof(PreviousEntry);
		info.hcxt = previous_cxt;
		previous_entries = hash_create("perfopt previous latency", 256, &info,
									   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	previous_generation++;

	copy = palloc(sizeof(EntryCopy));
	delta = palloc(sizeof(IntervalCounts));
	top = palloc((top_n + 1) * sizeof(IntervalCounts));
	all_counts = palloc0(sizeof(uint64) * HISTOGRAM_BUCKETS);

	latency_lock_shared();
	hash_seq_init(&status, latency_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		PreviousEntry *prev;
		bool		found;

		entry_copy(entry, copy);
		prev = hash_search(previous_entries, &copy->key, HASH_ENTER, &found);
		if (!found)
		{
			prev->buckets = NULL;
			prev->counts = NULL;
		}

		/* counts since the previous call; all of them for a new entry */
		memcpy(delta->counts, copy->counts, sizeof(delta->counts));
		delta->key = copy->key;
		delta->calls = copy->calls;
		delta->total_ns = copy->total_ns;
		delta->min_ns = copy->min_ns;
		delta->max_ns = copy->max_ns;
		if (found && prev->serial == copy->serial)
		{
			for (int i = 0; i < prev->nbuckets; i++)
				delta->counts[prev->buckets[i]] -= prev->counts[i];
			delta->calls -= prev->calls;
			delta->total_ns -= prev->total_ns;
		}
		previous_store(prev, copy);
		prev->generation = previous_generation;

		if (first || delta->calls == 0)
			continue;

		if (delta->key.toplevel)
		{
			for (int i = 0; i < HISTOGRAM_BUCKETS; i++)
				all_counts[i] += delta->counts[i];
			all_calls += delta->calls;
			all_total_ns += delta->total_ns;
			all_max_ns = Max(all_max_ns, delta->max_ns);
		}

		/* keep the top_n by time, most first, by insertion */
		if (top_n > 0)
		{
			int			pos = ntop;

			while (pos > 0 && top[pos - 1].total_ns < delta->total_ns)
				pos--;
			if (pos < top_n)
			{
				memmove(&top[pos + 1], &top[pos],
						(Min(ntop, top_n - 1) - pos) * sizeof(IntervalCounts));
				memcpy(&top[pos], delta, sizeof(IntervalCounts));
				ntop = Min(ntop + 1, top_n);
			}
		}
	}
	latency_unlock_shared();

	/* forget entries that are gone from shared memory */
	{
		PreviousEntry *prev;

		hash_seq_init(&status, previous_entries);
		while ((prev = hash_seq_search(&status)) != NULL)
			if (prev->generation != previous_generation)
			{
				if (prev->buckets != NULL)
				{
					pfree(prev->buckets);
					pfree(prev->counts);
				}
				hash_search(previous_entries, &prev->key, HASH_REMOVE, NULL);
			}
	}

	if (all_calls > 0)
		figures_from_counts(all, all_counts, all_calls, all_total_ns, 0, all_max_ns);
	for (int i = 0; i < ntop; i++)
	{
		LatencyFigures *figures = palloc0(sizeof(LatencyFigures));

		figures->dbid = top[i].key.dbid;
		figures->queryid = top[i].key.queryid;
		figures->toplevel = top[i].key.toplevel;
		figures_from_counts(figures, top[i].counts, top[i].calls, top[i].total_ns,
							top[i].min_ns, top[i].max_ns);
		result = lappend(result, figures);
	}

	pfree(copy);
	pfree(delta);
	pfree(top);
	pfree(all_counts);
	return result;
}

/* Upper bounds, in seconds, of the buckets of the histograms Prometheus reads */
const double perfopt_latency_bounds[PERFOPT_LATENCY_BOUNDS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

/* qsort comparator of pointers to histograms: most total time first */
static int
histogram_by_time(const void *a, const void *b)
{
	double		x = (*(LatencyHistogram *const *) a)->sum_seconds;
	double		y = (*(LatencyHistogram *const *) b)->sum_seconds;

	return (x < y) - (x > y);
}

/*
 * Cumulative histograms, as Prometheus wants them, since each statement was
 * first timed: the top_n statements by total time, and in *all every
 * statement together.  A call counts under a bound when the upper end of
 * its log-linear bucket is at or under the bound; the buckets are 1/64 of
 * a power of two wide, so a call within 1.1% above a bound may count under
 * the next one (latency_record counts each call under its bound, see
 * bound_of_bucket).  Returns a list of LatencyHistogram, most time first.
 */
List *
perfopt_latency_histograms(int top_n, LatencyHistogram *all)
{
	HASH_SEQ_STATUS status;
	LatencyEntry *entry;
	LatencyHistogram *histograms;
	LatencyHistogram **by_time;
	int			n = 0,
				capacity = perfopt_max_statements;
	List	   *result = NIL;

	memset(all, 0, sizeof(LatencyHistogram));
	if (!perfopt_latency_available())
		return NIL;

	/* the table holds at most that many: no allocation under the lock */
	histograms = palloc(sizeof(LatencyHistogram) * capacity);
	latency_lock_shared();
	hash_seq_init(&status, latency_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		LatencyHistogram *h;
		uint64		per_bound[PERFOPT_LATENCY_BOUNDS + 1];
		uint64		running = 0;

		if (n == capacity)
		{
			hash_seq_term(&status);
			break;
		}
		if (pg_atomic_read_u64(&entry->calls) == 0)
			continue;
		h = &histograms[n++];
		h->dbid = entry->key.dbid;
		h->queryid = entry->key.queryid;
		h->toplevel = entry->key.toplevel;
		h->calls = 0;
		for (int k = 0; k <= PERFOPT_LATENCY_BOUNDS; k++)
		{
			per_bound[k] = pg_atomic_read_u64(&entry->bound_counts[k]);
			h->calls += per_bound[k];
		}
		h->sum_seconds = pg_atomic_read_u64(&entry->total_ns) / 1e9;
		for (int k = 0; k < PERFOPT_LATENCY_BOUNDS; k++)
		{
			running += per_bound[k];
			h->cumulative[k] = running;
			all->cumulative[k] += running;
		}
		all->calls += h->calls;
		all->sum_seconds += h->sum_seconds;
	}
	latency_unlock_shared();

	/* sort pointers: a histogram is ten times their size */
	by_time = palloc(sizeof(LatencyHistogram *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		by_time[i] = &histograms[i];
	qsort(by_time, n, sizeof(LatencyHistogram *), histogram_by_time);
	for (int i = 0; i < n && i < top_n; i++)
		result = lappend(result, by_time[i]);
	pfree(by_time);
	return result;
}

/* the most statements latency_counts() merges */
#define LATENCY_COUNTS_MAX_QUERIES 1000

/*
 * latency_counts(queryids): the histogram of the statements of this
 * database with these queryids, top level and nested merged, as its
 * non-empty (bucket, calls) pairs.  Two such snapshots subtracted give the
 * calls of a window, whose percentiles latency_quantiles() computes.
 */
Datum
perfopt_latency_counts(PG_FUNCTION_ARGS)
{
	ArrayType  *ids = PG_GETARG_ARRAYTYPE_P(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	EntryCopy  *copy;
	uint64	   *merged;

	latency_require();
	if (ARR_NDIM(ids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("queryids must be a one-dimensional array")));
	deconstruct_array(ids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &elem_nulls, &n);
	if (n > LATENCY_COUNTS_MAX_QUERIES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("at most %d queryids, not %d", LATENCY_COUNTS_MAX_QUERIES, n),
				 errhint("Ask for fewer statements at a time.")));
	InitMaterializedSRF(fcinfo, 0);
	copy = palloc(sizeof(EntryCopy));
	merged = palloc0(sizeof(uint64) * HISTOGRAM_BUCKETS);

	latency_lock_shared();
	for (int i = 0; i < n; i++)
	{
		if (elem_nulls[i])
			continue;
		for (int toplevel = 0; toplevel <= 1; toplevel++)
		{
			LatencyEntry *entry = latency_entry_find(MyDatabaseId, (bool) toplevel,
													 (uint64) DatumGetInt64(elems[i]));

			if (entry == NULL)
				continue;
			entry_copy(entry, copy);
			for (int b = 0; b < HISTOGRAM_BUCKETS; b++)
				merged[b] += copy->counts[b];
		}
	}
	latency_unlock_shared();

	for (int b = 0; b < HISTOGRAM_BUCKETS; b++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (merged[b] == 0)
			continue;
		values[0] = Int32GetDatum(b);
		values[1] = Int64GetDatum((int64) merged[b]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(copy);
	pfree(merged);
	return (Datum) 0;
}

/*
 * latency_quantiles(buckets, calls, q): the durations, in milliseconds, at
 * the quantiles q of a histogram given as (bucket, calls) pairs, such as
 * the difference of two latency_counts() snapshots; NULL when it is empty.
 */
Datum
perfopt_latency_quantiles(PG_FUNCTION_ARGS)
{
	ArrayType  *buckets = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *calls = PG_GETARG_ARRAYTYPE_P(1);
	ArrayType  *qs = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *b_elems,
			   *c_elems,
			   *q_elems;
	bool	   *b_nulls,
			   *c_nulls,
			   *q_nulls;
	int			nb,
				nc,
				nq;
	uint64	   *counts;
	uint64		total = 0;
	Datum	   *out;

	deconstruct_array(buckets, INT4OID, 4, true, TYPALIGN_INT, &b_elems, &b_nulls, &nb);
	deconstruct_array(calls, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &c_elems, &c_nulls, &nc);
	deconstruct_array(qs, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &q_elems, &q_nulls, &nq);
	if (nb != nc || nb > HISTOGRAM_BUCKETS || nq > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a histogram is at most %d buckets with as many counts, and at most 100 quantiles",
						HISTOGRAM_BUCKETS),
				 errhint("Pass the bucket and calls columns of perfopt.latency_counts().")));
	counts = palloc0(sizeof(uint64) * HISTOGRAM_BUCKETS);
	for (int i = 0; i < nb; i++)
	{
		int			b;
		int64		c;

		if (b_nulls[i] || c_nulls[i])
			continue;
		b = DatumGetInt32(b_elems[i]);
		c = DatumGetInt64(c_elems[i]);
		if (b < 0 || b >= HISTOGRAM_BUCKETS || c < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bucket %d with %lld calls is not one of a latency histogram", b, (long long) c),
					 errhint("Buckets are 0 to %d, calls not negative.", HISTOGRAM_BUCKETS - 1)));
		counts[b] += (uint64) c;
		total += (uint64) c;
	}
	if (total == 0)
		PG_RETURN_NULL();
	out = palloc(sizeof(Datum) * Max(nq, 1));
	for (int i = 0; i < nq; i++)
	{
		double		q = q_nulls[i] ? 0.5 : DatumGetFloat8(q_elems[i]);

		if (!(q >= 0 && q <= 1))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a quantile is within 0 and 1, not %g", q)));
		out[i] = Float8GetDatum(histogram_quantile(counts, total, q, 0, PG_UINT64_MAX) / 1e6);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(out, nq, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
