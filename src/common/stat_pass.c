/*-------------------------------------------------------------------------
 *
 * stat_pass.c
 *	  The statistics entries of thousands of relations in one pass over
 *	  the shared statistics.
 *
 * pgstat_fetch_stat_tabentry() finds a relation's entry in this backend's
 * references, else in the shared hash under a partition lock, takes a
 * reference to it, copies it under its lock and keeps the copy in the
 * transaction's cache: about a microsecond each, so 40,000 of them (every
 * index and its table at 10,000 tables) cost more than the views' whole pass
 * over the catalogs.  One pass over the shared hash, as the "snapshot"
 * consistency mode makes, reads each entry under its lock and copies only
 * those of the relations wanted.
 *
 * It gives what the look-ups would give only while they would read the
 * shared entries themselves: with stats_fetch_consistency = none, or cache
 * before this transaction has cached any entry.  Otherwise (snapshot mode,
 * or entries already cached, whose values must stay those this
 * transaction saw) and for a few relations, each is looked up as before.
 * The pass neither reads nor fills the transaction's cache: a later look-up
 * in the same transaction reads the entry again, as in "none" mode.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "lib/dshash.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/dsa.h"
#include "utils/memutils.h"
#include "utils/pgstat_internal.h"

#include "common/oid_map.h"
#include "common/stat_pass.h"
#include "metrics/table_state.h"

PG_FUNCTION_INFO_V1(perfopt_relation_scans_sql);

/* Below this many relations, a look-up each costs less than a pass */
#define STAT_PASS_MIN_RELATIONS		1000

/* Entries and copies go in arrays of this many, not a palloc chunk each */
#define STAT_PASS_BLOCK				1024

struct PerfoptStatEntry
{
	Oid			relid;
	bool		found;
	bool		in_database;	/* found under this database, not shared */
	bool		whole;			/* the entry is wanted, not only its counts */
	PgStat_Counter numscans;
	uint64		changes;		/* perfopt_relation_changes() */
	PgStat_StatTabEntry *stats; /* the copy of the entry, when whole */
};

/* Would a pass read what pgstat_fetch_stat_tabentry reads now? */
static bool
stat_pass_exact(void)
{
	if (pgStatLocal.shared_hash == NULL)
		return false;
	if (pgstat_fetch_consistency == PGSTAT_FETCH_CONSISTENCY_NONE)
		return true;
	/* cache mode before this transaction's first look-up (pgstat_prep_snapshot) */
	return pgstat_fetch_consistency == PGSTAT_FETCH_CONSISTENCY_CACHE &&
		pgStatLocal.snapshot.stats == NULL;
}

/*
 * Calls keep(entry, stats, arg) for each live relation entry of this
 * database or of the shared relations, under the entry's lock
 */
static void
stat_pass_scan(void (*keep) (PgStat_HashKey *key, PgStat_StatTabEntry *stats, void *arg), void *arg)
{
	dshash_seq_status status;
	PgStatShared_HashEntry *p;

	dshash_seq_init(&status, pgStatLocal.shared_hash, false);
	while ((p = dshash_seq_next(&status)) != NULL)
	{
		PgStatShared_Relation *shared;

		if (p->key.kind != PGSTAT_KIND_RELATION || p->dropped ||
			(p->key.dboid != MyDatabaseId && p->key.dboid != InvalidOid))
			continue;
		shared = (PgStatShared_Relation *) dsa_get_address(pgStatLocal.dsa, p->body);
		/* as pgstat_build_snapshot() reads it: the lock, without a reference */
		LWLockAcquire(&shared->header.lock, LW_SHARED);
		keep(&p->key, &shared->stats, arg);
		LWLockRelease(&shared->header.lock);
	}
	dshash_seq_term(&status);
}

void
perfopt_stat_pass_init(PerfoptStatPass *pass, long size)
{
	pass->wanted = oidmap_create(CurrentMemoryContext, Max(size, 16), NULL);
	pass->done = false;
	pass->free_entries = NULL;
	pass->nfree_entries = 0;
	pass->free_stats = NULL;
	pass->nfree_stats = 0;
}

/* The next of an array of STAT_PASS_BLOCK elements, a new array when it is used up */
static void *
stat_pass_next(void **next, int *nfree, Size size)
{
	void	   *room;

	if (*nfree == 0)
	{
		*next = palloc(STAT_PASS_BLOCK * size);
		*nfree = STAT_PASS_BLOCK;
	}
	room = *next;
	*next = (char *) room + size;
	(*nfree)--;
	return room;
}

/* Room for the copy of a relation's whole entry */
static PgStat_StatTabEntry *
stat_pass_copy_room(PerfoptStatPass *pass)
{
	return stat_pass_next((void **) &pass->free_stats, &pass->nfree_stats, sizeof(PgStat_StatTabEntry));
}

/*
 * The relation's place in the pass, for perfopt_stat_pass_get (whole) or
 * perfopt_stat_pass_counts; in the current memory context
 */
PerfoptStatEntry *
perfopt_stat_pass_want(PerfoptStatPass *pass, Oid relid, bool whole)
{
	bool		found;
	OidMapEntry *slot = oidmap_insert(pass->wanted, relid, &found);
	PerfoptStatEntry *e;

	if (found)
	{
		e = slot->value;
		if (whole && !e->whole)
		{
			e->whole = true;
			e->stats = stat_pass_copy_room(pass);
		}
		return e;
	}
	e = stat_pass_next((void **) &pass->free_entries, &pass->nfree_entries, sizeof(PerfoptStatEntry));
	e->relid = relid;
	e->found = false;
	e->in_database = false;
	e->whole = whole;
	e->numscans = 0;
	e->changes = 0;
	e->stats = whole ? stat_pass_copy_room(pass) : NULL;
	slot->value = e;
	return e;
}

/* The database's entry of a relation wins over a shared one, as in a look-up */
static void
keep_wanted(PgStat_HashKey *key, PgStat_StatTabEntry *stats, void *arg)
{
	PerfoptStatEntry *e = oidmap_get((oidmap_hash *) arg, key->objoid);
	bool		in_database = key->dboid == MyDatabaseId;

	if (e == NULL || (e->found && e->in_database && !in_database))
		return;
	e->found = true;
	e->in_database = in_database;
	if (e->whole)
		memcpy(e->stats, stats, sizeof(PgStat_StatTabEntry));
	else
	{
		e->numscans = stats->numscans;
		e->changes = perfopt_relation_changes(stats);
	}
}

void
perfopt_stat_pass_run(PerfoptStatPass *pass)
{
	if (pass->wanted->members < STAT_PASS_MIN_RELATIONS || !stat_pass_exact())
		return;
	stat_pass_scan(keep_wanted, pass->wanted);
	pass->done = true;
}

/*
 * The statistics entry of a relation wanted whole (by its place, so that no
 * look-up finds it again), NULL when it has none: pgstat_fetch_stat_tabentry
 */
PgStat_StatTabEntry *
perfopt_stat_pass_get(PerfoptStatPass *pass, PerfoptStatEntry *wanted)
{
	Assert(wanted->whole);
	if (!pass->done)
		return pgstat_fetch_stat_tabentry(wanted->relid);
	return wanted->found ? wanted->stats : NULL;
}

/*
 * The scans of a relation wanted and its change counter
 * (perfopt_relation_changes); false, and zeros, when it has no entry
 */
bool
perfopt_stat_pass_counts(PerfoptStatPass *pass, PerfoptStatEntry *wanted,
						 int64 *numscans, uint64 *changes)
{
	PgStat_StatTabEntry *stats = NULL;

	if (!pass->done)
		stats = pgstat_fetch_stat_tabentry(wanted->relid);
	else if (wanted->found && wanted->whole)
		stats = wanted->stats;
	else if (wanted->found)
	{
		*numscans = wanted->numscans;
		*changes = wanted->changes;
		return true;
	}
	*numscans = stats != NULL ? stats->numscans : 0;
	*changes = perfopt_relation_changes(stats);
	return stats != NULL;
}

/* ----------------------------------------------------------------
 * perfopt.relation_scans(oid)
 * ----------------------------------------------------------------
 */

/* In a simplehash of its own (see common/oid_map.h): the counts in its slots */
typedef struct ScanCount
{
	Oid			relid;			/* the hash key */
	char		status;			/* simplehash's */
	bool		in_database;
	PgStat_Counter scans;
	uint64		changes;		/* perfopt_relation_changes() */
} ScanCount;

#define SH_PREFIX scans
#define SH_ELEMENT_TYPE ScanCount
#define SH_KEY_TYPE Oid
#define SH_KEY relid
#define SH_HASH_KEY(tb, key) murmurhash32(key)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

static void
keep_scans(PgStat_HashKey *key, PgStat_StatTabEntry *stats, void *arg)
{
	bool		found;
	bool		in_database = key->dboid == MyDatabaseId;
	ScanCount  *s = scans_insert((scans_hash *) arg, key->objoid, &found);

	if (found && s->in_database && !in_database)
		return;
	s->in_database = in_database;
	s->scans = stats->numscans;
	s->changes = perfopt_relation_changes(stats);
}

/*
 * In cache mode, the counts this transaction read in its pass: the look-ups
 * would have kept the entries they read for the transaction too, and a
 * query that calls the function in several places (the drop candidates do
 * in five) makes one pass, not one a place.  pg_stat_clear_snapshot() does
 * not reach them: a transaction that calls it sees the counts of its pass
 * until it ends.
 */
static scans_hash *xact_scans = NULL;
static LocalTransactionId xact_scans_lxid = InvalidLocalTransactionId;

/*
 * Every relation's count in one pass, in cxt; sized for as many as the
 * backend's last pass found, so that a pass over 30,000 entries does not
 * grow its table six times
 */
static scans_hash *
scan_counts(MemoryContext cxt)
{
	static uint32 last_members = 0;
	scans_hash *scans = scans_create(cxt, Max(last_members, 1024), NULL);

	stat_pass_scan(keep_scans, scans);
	last_members = scans->members;
	return scans;
}

/*
 * A relation's change counter (perfopt_relation_changes) from this
 * transaction's pass, when perfopt.relation_scans() made one: false when
 * there is none, and the caller looks the relation up
 */
bool
perfopt_stat_pass_changes(Oid relid, uint64 *changes)
{
	ScanCount  *s;

	if (pgstat_fetch_consistency != PGSTAT_FETCH_CONSISTENCY_CACHE ||
		xact_scans == NULL || xact_scans_lxid != MyProc->lxid)
		return false;
	s = scans_lookup(xact_scans, relid);
	*changes = s != NULL ? s->changes : 0;
	return true;
}

/*
 * perfopt.relation_scans(rel oid): pg_stat_get_numscans(rel), for a view
 * that reads it for thousands of relations (and perfopt_relation_scans, for
 * C functions that do, with their own FmgrInfo).  When a pass gives what the
 * look-ups give (above), the first call reads every relation's count in one
 * pass, kept for the transaction in cache mode (where the look-ups keep
 * what they read for it too) and for the query's calls in "none" mode;
 * otherwise each call looks its relation up, as pg_stat_get_numscans()
 * does.
 */
int64
perfopt_relation_scans(FmgrInfo *flinfo, Oid relid)
{
	scans_hash *scans = (scans_hash *) flinfo->fn_extra;
	PgStat_StatTabEntry *stats;

	if (scans == NULL && pgstat_fetch_consistency == PGSTAT_FETCH_CONSISTENCY_CACHE &&
		xact_scans != NULL && xact_scans_lxid == MyProc->lxid)
		scans = xact_scans;
	else if (scans == NULL && stat_pass_exact())
	{
		if (pgstat_fetch_consistency == PGSTAT_FETCH_CONSISTENCY_CACHE)
		{
			/* freed with the transaction; the OID tells a later one it is gone */
			scans = scan_counts(TopTransactionContext);
			xact_scans = scans;
			xact_scans_lxid = MyProc->lxid;
		}
		else
		{
			scans = scan_counts(flinfo->fn_mcxt);
			flinfo->fn_extra = scans;
		}
	}
	if (scans != NULL)
	{
		ScanCount  *s = scans_lookup(scans, relid);

		return s != NULL ? s->scans : 0;
	}
	stats = pgstat_fetch_stat_tabentry(relid);
	return stats != NULL ? stats->numscans : 0;
}

Datum
perfopt_relation_scans_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(perfopt_relation_scans(fcinfo->flinfo, PG_GETARG_OID(0)));
}
