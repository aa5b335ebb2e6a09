/*-------------------------------------------------------------------------
 *
 * table_state.c
 *	  The sizes of this database's tables and indexes, kept in shared
 *	  memory by the metrics sampler, so that table_health and
 *	  index_drop_candidates do not stat() every relation's files.
 *
 * Each sample (perfopt.sample_metrics) lists the tables, materialized
 * views and indexes of its database and reads each one's statistics entry
 * (a look-up in shared memory).  It stat()s the files of only those whose
 * file (relfilenode, tablespace) or change counter differs from what the
 * state holds: work in proportion to what changed, not to the catalog.
 *
 * The change counter of a relation is the sum of counters that grow with
 * anything that can change the size of its files without giving it a new
 * relfilenode: the blocks read or extended through the buffer manager (an
 * insert into a table or an index reads the page it writes, and extending
 * a relation goes through it too), the rows inserted, updated and deleted,
 * and the vacuums (which can truncate).  TRUNCATE, VACUUM FULL, CLUSTER,
 * REINDEX and ALTER ... SET TABLESPACE give the relation a new file.
 *
 * A reader (perfopt_relation_bytes_fresh) takes the size from the state
 * only when the relation's file and change counter, read now, are those the
 * sampler saw; otherwise, and for a relation the state does not hold, it
 * stat()s the files as before.  So a size is as fresh as the statistics
 * that the same row of table_health shows: a change that a session has not
 * yet reported to the statistics (sessions report within about a second of
 * the end of a transaction) is seen once it is reported.  With
 * track_counts off the counters do not move, and on a standby the files
 * change by replay, which no counter sees: the state is not used then.
 *
 * The state holds perfopt.table_state_max relations (all databases
 * together); when it is full the sampler adds no more, and those relations
 * are measured by each reader.  It holds sizes only, under the database's
 * OID: which relations a reader lists comes from its own catalog query, so
 * the state cannot show a role a relation, nor another database's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"

#include "common/catalog.h"
#include "metrics/table_state.h"

int			perfopt_table_state_max = 50000;

typedef struct TableStateKey
{
	Oid			dbid;
	Oid			relid;
} TableStateKey;

typedef struct TableStateEntry
{
	TableStateKey key;
	Oid			filenode;
	Oid			tablespace;
	uint64		changes;
	int64		bytes;
	uint64		pass;			/* the refresh that last saw it */
} TableStateEntry;

typedef struct TableStateShared
{
	LWLock	   *lock;
	uint64		pass;			/* refreshes so far, under lock */
	int			entries;		/* under lock */
} TableStateShared;

static TableStateShared *table_state = NULL;
static HTAB *table_state_hash = NULL;

static Size
table_state_size(void)
{
	return add_size(MAXALIGN(sizeof(TableStateShared)),
					hash_estimate_size(Max(perfopt_table_state_max, 1), sizeof(TableStateEntry)));
}

void
perfopt_table_state_shmem_request(void)
{
	RequestAddinShmemSpace(table_state_size());
	RequestNamedLWLockTranche("perfopt table state", 1);
}

/* Create or attach the state; the caller holds AddinShmemInitLock */
void
perfopt_table_state_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;

	table_state = ShmemInitStruct("perfopt table state", sizeof(TableStateShared), &found);
	if (!found)
	{
		table_state->lock = &(GetNamedLWLockTranche("perfopt table state"))->lock;
		table_state->pass = 0;
		table_state->entries = 0;
	}
	info.keysize = sizeof(TableStateKey);
	info.entrysize = sizeof(TableStateEntry);
	table_state_hash = ShmemInitHash("perfopt table state hash",
									 Max(perfopt_table_state_max, 1),
									 Max(perfopt_table_state_max, 1),
									 &info, HASH_ELEM | HASH_BLOBS);
}

/* Is the state there to be used? */
static bool
table_state_usable(void)
{
	return table_state != NULL && table_state_hash != NULL &&
		perfopt_table_state_max > 0 && pgstat_track_counts && !RecoveryInProgress();
}

uint64
perfopt_relation_changes(PgStat_StatTabEntry *stats)
{
	if (stats == NULL)
		return 0;
	return (uint64) stats->blocks_fetched + (uint64) stats->tuples_inserted +
		(uint64) stats->tuples_updated + (uint64) stats->tuples_deleted +
		(uint64) stats->vacuum_count + (uint64) stats->autovac_vacuum_count;
}

int64
perfopt_relation_bytes_fresh(Oid relid, Oid tablespace, Oid filenode, char persistence,
							 Oid namespace, bool shared, uint64 changes)
{
	if (table_state_usable() && !shared && persistence != RELPERSISTENCE_TEMP &&
		OidIsValid(filenode))
	{
		TableStateKey key = {MyDatabaseId, relid};
		TableStateEntry *entry;
		int64		bytes = -1;

		LWLockAcquire(table_state->lock, LW_SHARED);
		entry = hash_search(table_state_hash, &key, HASH_FIND, NULL);
		if (entry != NULL && entry->filenode == filenode &&
			entry->tablespace == tablespace && entry->changes == changes)
			bytes = entry->bytes;
		LWLockRelease(table_state->lock);
		if (bytes >= 0)
			return bytes;
	}
	return perfopt_relation_bytes(relid, tablespace, filenode, persistence, namespace, shared);
}

/* A relation as one refresh sees it */
typedef struct Seen
{
	Oid			relid;
	Oid			filenode;
	Oid			tablespace;
	char		persistence;
	Oid			namespace;
	uint64		changes;
	int64		bytes;			/* -1 until known */
	bool		held;			/* the state has an entry for it */
} Seen;

/*
 * Refresh the state of this database's tables, materialized views and
 * indexes: stat() only those whose file or change counter moved since the
 * last refresh, forget those dropped.  Runs inside the sampler's SPI
 * connection.  Returns how many relations' files it read.
 */
int
perfopt_table_state_refresh(void)
{
	Seen	   *seen;
	uint64		n;
	int			measured = 0;
	int			skipped = 0;
	int64		room;
	uint64		pass;
	HASH_SEQ_STATUS scan;
	TableStateEntry *entry;
	static bool warned = false;

	if (!table_state_usable())
		return 0;

	/*
	 * not the catalogs (read at every query, their counters always move)
	 * nor TOAST (neither view reads its size), nor temporary tables
	 */
	if (SPI_execute("SELECT c.oid, c.relfilenode, c.reltablespace, c.relpersistence, c.relnamespace"
					"  FROM pg_catalog.pg_class c"
					" WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,m,i}'::pg_catalog.\"char\"[])"
					"   AND c.relfilenode OPERATOR(pg_catalog.<>) 0"
					"   AND c.relpersistence OPERATOR(pg_catalog.<>) 't'"
					"   AND NOT c.relisshared"
					"   AND c.relnamespace OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,pg_toast}'::pg_catalog.regnamespace[]::pg_catalog.oid[])",
					true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("perfopt could not list the relations whose sizes it keeps")));
	n = SPI_processed;
	seen = palloc(Max(n, 1) * sizeof(Seen));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		seen[i].relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
		seen[i].filenode = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
		seen[i].tablespace = DatumGetObjectId(SPI_getbinval(tuple, desc, 3, &isnull));
		seen[i].persistence = DatumGetChar(SPI_getbinval(tuple, desc, 4, &isnull));
		seen[i].namespace = DatumGetObjectId(SPI_getbinval(tuple, desc, 5, &isnull));
		seen[i].changes = perfopt_relation_changes(pgstat_fetch_stat_tabentry(seen[i].relid));
		seen[i].bytes = -1;
	}

	/* what the state already holds, unchanged, and the room left in it */
	LWLockAcquire(table_state->lock, LW_SHARED);
	for (uint64 i = 0; i < n; i++)
	{
		TableStateKey key = {MyDatabaseId, seen[i].relid};

		entry = hash_search(table_state_hash, &key, HASH_FIND, NULL);
		seen[i].held = entry != NULL;
		if (entry != NULL && entry->filenode == seen[i].filenode &&
			entry->tablespace == seen[i].tablespace && entry->changes == seen[i].changes)
			seen[i].bytes = entry->bytes;
	}
	room = (int64) perfopt_table_state_max - table_state->entries;
	LWLockRelease(table_state->lock);

	/*
	 * the files of the others, with no lock held: of those the state does
	 * not hold, only as many as it has room for (a full state keeps none,
	 * and the readers measure those themselves)
	 */
	for (uint64 i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (seen[i].bytes >= 0)
			continue;
		if (!seen[i].held && room-- <= 0)
			continue;
		seen[i].bytes = perfopt_relation_bytes(seen[i].relid, seen[i].tablespace, seen[i].filenode,
											   seen[i].persistence, seen[i].namespace, false);
		measured++;
		ereport(DEBUG2,
				(errmsg("perfopt table state: measured relation %u: " INT64_FORMAT " bytes",
						seen[i].relid, seen[i].bytes)));
	}

	/* store them, and forget this database's relations not seen */
	LWLockAcquire(table_state->lock, LW_EXCLUSIVE);
	pass = ++table_state->pass;
	for (uint64 i = 0; i < n; i++)
	{
		TableStateKey key = {MyDatabaseId, seen[i].relid};
		bool		found;

		if (seen[i].bytes < 0)
		{
			/* not measured: no room for it */
			skipped++;
			continue;
		}
		entry = hash_search(table_state_hash, &key,
							table_state->entries < perfopt_table_state_max ? HASH_ENTER_NULL : HASH_FIND,
							&found);
		if (entry == NULL)
		{
			skipped++;
			continue;
		}
		if (!found)
			table_state->entries++;
		entry->filenode = seen[i].filenode;
		entry->tablespace = seen[i].tablespace;
		entry->changes = seen[i].changes;
		entry->bytes = seen[i].bytes;
		entry->pass = pass;
	}
	hash_seq_init(&scan, table_state_hash);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		if (entry->key.dbid == MyDatabaseId && entry->pass != pass)
		{
			hash_search(table_state_hash, &entry->key, HASH_REMOVE, NULL);
			table_state->entries--;
		}
	}
	LWLockRelease(table_state->lock);

	if (skipped > 0 && !warned)
		ereport(LOG,
				(errmsg("perfopt.table_state_max (%d) is too small for the relations of this database: %d are measured by each reader instead",
						perfopt_table_state_max, skipped),
				 errhint("Raise perfopt.table_state_max (a restart is needed).")));
	warned |= skipped > 0;
	ereport(DEBUG1,
			(errmsg("perfopt table state: " UINT64_FORMAT " relations, %d measured, %d not kept (perfopt.table_state_max)",
					n, measured, skipped)));
	pfree(seen);
	return measured;
}
