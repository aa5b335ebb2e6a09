/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Catalog lookups that several perfopt subsystems share.
 *
 * perfopt calls into the extensions it requires (pg_stat_statements,
 * HypoPG), which a DBA may have installed in any schema, so their objects
 * are always named through the schema their extension lives in.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_tablespace.h"
#include "common/relpath.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "storage/bufmgr.h"
#include "storage/proc.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relmapper.h"
#include "utils/snapmgr.h"

#include "common/catalog.h"
#include "common/stat_pass.h"
#include "metrics/table_state.h"

PG_FUNCTION_INFO_V1(perfopt_relation_bytes_sql);

/*
 * A catalog's rows for some relations are read through its index, a look-up
 * for each relation, or in one pass over its heap, whichever costs less.
 * Both costs are counted in rows fetched through the index: a look-up's
 * descent costs about LOOKUP_DESCENT_ROWS (its pages are in shared buffers
 * and only searched), and a page of a pass, whose every row is checked and
 * handed over, about PASS_PAGE_ROWS.  So the look-ups win where they are
 * few and each fetches few rows.  Fitted in fresh sessions at 10,000
 * tables of 3 and of 20 columns, 1,000 and 10,000 of them read; checked on
 * tables of 10 columns (docs/orchestrator.md, "Look-ups or a pass, by the
 * rows they fetch").  A rule of pages alone (a look-up for a page) read
 * pg_attribute through its index for 10,000 tables of 20 columns, 260,000
 * rows, at 1.7 times the cost of the pass.
 */
#define LOOKUP_DESCENT_ROWS		7
#define PASS_PAGE_ROWS			14

/*
 * test/bench/catalog_reads.sh times both ways against the rule: it builds
 * perfopt with PERFOPT_CATALOG_READS defined to 1 (always the look-ups) or
 * 2 (always the pass)
 */
#ifndef PERFOPT_CATALOG_READS
#define PERFOPT_CATALOG_READS	0
#endif

/* Schema an installed extension lives in, or InvalidOid */
Oid
perfopt_extension_schema(const char *extname)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			schema = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(extname));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		schema = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return schema;
}

/*
 * "schema.function" of an extension's function, quoted as needed; an
 * error that says what to do if the extension is missing.
 */
char *
perfopt_qualified_function(const char *extname, const char *funcname)
{
	Oid			schema = perfopt_extension_schema(extname);

	if (!OidIsValid(schema))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"%s\" is not installed in this database", extname),
				 errhint("Run CREATE EXTENSION %s.", extname)));
	return quote_qualified_identifier(get_namespace_name(schema), funcname);
}

/* pg_class.reltuples of a relation, at least 1 (planner-style row count) */
double
perfopt_relation_tuples(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	double		tuples = 1;

	if (HeapTupleIsValid(tuple))
	{
		tuples = Max(((Form_pg_class) GETSTRUCT(tuple))->reltuples, 1);
		ReleaseSysCache(tuple);
	}
	return tuples;
}

/* schema.table of a relation, quoted as needed */
char *
perfopt_relation_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * Bytes of the main fork of a relation, from the sizes of its files, as
 * pg_relation_size() counts them but without opening the relation: no lock
 * and no relation cache entry, which a read of the statistics of thousands
 * of relations must not take (the lock table holds max_locks_per_transaction
 * times max_connections, and each entry costs a catalog read to build).
 * The arguments are the relation's pg_class columns.  A relation dropped or
 * rewritten since its row was read has no files under that name: 0.
 */
int64
perfopt_relation_bytes(Oid relid, Oid tablespace, Oid filenode, char persistence,
					   Oid namespace, bool shared)
{
	RelFileNode rnode;
	BackendId	backend = InvalidBackendId;
	char	   *path;
	int64		bytes = 0;

	rnode.spcNode = OidIsValid(tablespace) ? tablespace :
		(shared ? GLOBALTABLESPACE_OID : MyDatabaseTableSpace);
	rnode.dbNode = shared ? InvalidOid : MyDatabaseId;
	rnode.relNode = OidIsValid(filenode) ? filenode : RelationMapOidToFilenode(relid, shared);
	if (!OidIsValid(rnode.relNode))
		return 0;
	if (persistence == RELPERSISTENCE_TEMP)
	{
		backend = GetTempNamespaceBackendId(namespace);
		if (backend == InvalidBackendId)
			return 0;
	}
	path = relpathbackend(rnode, backend, MAIN_FORKNUM);
	for (unsigned int segment = 0;; segment++)
	{
		struct stat st;
		char	   *name = segment == 0 ? path : psprintf("%s.%u", path, segment);

		if (stat(name, &st) < 0)
		{
			if (errno == ENOENT)
				break;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat file \"%s\": %m", name)));
		}
		bytes += st.st_size;
		if (name != path)
			pfree(name);

		/*
		 * every segment but the last is full (md.c keeps them so): one
		 * that is not is the last, and the next needs no stat() to tell
		 */
		if (st.st_size < (off_t) RELSEG_SIZE * BLCKSZ)
			break;
	}
	pfree(path);
	return bytes;
}

/* ----------------------------------------------------------------
 * perfopt.relation_bytes(regclass)
 * ----------------------------------------------------------------
 */

/*
 * A query that asks the size of thousands of relations (health()'s total of
 * every index) paid a catalog-cache miss for each in a fresh session: at
 * 20,000 indexes that total took 84 ms, 66 of them in this function.  From
 * the 1,000th call of a transaction, every relation's row is read in one
 * pass over pg_class and kept for the transaction; any invalidation of
 * pg_class (a TRUNCATE, a new relation, another session's DDL once this one
 * accepts it) drops it, as it drops the catalog cache's entries, so the
 * sizes come from the same rows a look-up would find.  (The transaction's
 * end frees it with its context.)
 */
/*
 * Not tuned: the threshold stat_pass.c uses for the same trade (below it a
 * look-up each costs less than a pass).  With 300 drop candidates the view
 * stays below it and makes no pass; health() at 10,000 and 20,000 tables
 * passes it (orchestrator.md).
 */
#define STORAGE_PASS_MIN_CALLS	1000

static MemoryContext storage_cxt = NULL;	/* the pass's, under TopTransactionContext */
static oidmap_hash *storage_pass = NULL;	/* StorageFacts by OID */
static LocalTransactionId storage_calls_lxid = InvalidLocalTransactionId;
static int	storage_calls = 0;
static uint64 storage_generation = 0;
static bool storage_callback = false;

/* A relation's storage fields from its pg_class row */
void
perfopt_storage_facts_of(Form_pg_class c, StorageFacts *f)
{
	f->relid = c->oid;
	f->relkind = c->relkind;
	f->persistence = c->relpersistence;
	f->shared = c->relisshared;
	f->tablespace = c->reltablespace;
	f->filenode = c->relfilenode;
	f->namespace = c->relnamespace;
}

/* The pass's context is gone, with its transaction or dropped below */
static void
storage_pass_forget(void *arg)
{
	storage_cxt = NULL;
	storage_pass = NULL;
}

static void
storage_pass_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	storage_generation++;
	if (storage_cxt != NULL)
		MemoryContextDelete(storage_cxt);
}

/* Every relation's storage fields; NULL if pg_class changed meanwhile */
static oidmap_hash *
storage_pass_read(void)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;
	oidmap_hash *facts;
	uint64		generation;
	MemoryContext cxt;
	MemoryContextCallback *forget;

	/* opening pg_class accepts the invalidations that came before */
	rel = table_open(RelationRelationId, AccessShareLock);
	generation = storage_generation;
	cxt = AllocSetContextCreate(TopTransactionContext, "perfopt relations' storage",
								ALLOCSET_DEFAULT_SIZES);
	facts = oidmap_create(cxt, 4096, NULL);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_class c = (Form_pg_class) GETSTRUCT(tuple);
		StorageFacts *f = MemoryContextAlloc(cxt, sizeof(StorageFacts));
		bool		found;

		perfopt_storage_facts_of(c, f);
		oidmap_insert(facts, c->oid, &found)->value = f;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (generation != storage_generation)
	{
		MemoryContextDelete(cxt);
		return NULL;
	}
	forget = MemoryContextAlloc(cxt, sizeof(MemoryContextCallback));
	forget->func = storage_pass_forget;
	forget->arg = NULL;
	MemoryContextRegisterResetCallback(cxt, forget);
	storage_cxt = cxt;
	return facts;
}

/* The relation's storage fields, false if it does not exist */
static bool
storage_facts(Oid relid, StorageFacts *out)
{
	HeapTuple	tuple;

	if (storage_calls_lxid != MyProc->lxid)
	{
		storage_calls_lxid = MyProc->lxid;
		storage_calls = 0;
	}
	if (storage_pass == NULL && ++storage_calls >= STORAGE_PASS_MIN_CALLS)
	{
		if (!storage_callback)
		{
			CacheRegisterSyscacheCallback(RELOID, storage_pass_invalidate, (Datum) 0);
			storage_callback = true;
		}
		storage_pass = storage_pass_read();
		storage_calls = 0;
	}
	if (storage_pass != NULL)
	{
		StorageFacts *f = oidmap_get(storage_pass, relid);

		if (f != NULL)
		{
			*out = *f;
			return true;
		}
		/* not in the pass: asked as a look-up would be, below */
	}
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		return false;
	perfopt_storage_facts_of((Form_pg_class) GETSTRUCT(tuple), out);
	ReleaseSysCache(tuple);
	return true;
}

/*
 * perfopt.relation_bytes(regclass): pg_relation_size(rel) without a lock,
 * for the views that list thousands of relations; NULL if there is no such
 * relation, as pg_relation_size() gives.
 */
Datum
perfopt_relation_bytes_sql(PG_FUNCTION_ARGS)
{
	bool		found;
	int64		bytes = perfopt_relation_bytes_of(PG_GETARG_OID(0), &found);

	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_INT64(bytes);
}

/*
 * What perfopt.relation_bytes() gives, for C callers: *found false (and 0)
 * when there is no such relation, 0 for one without storage
 */
int64
perfopt_relation_bytes_of(Oid relid, bool *found)
{
	StorageFacts f;
	uint64		changes;

	*found = storage_facts(relid, &f);
	if (!*found || !RELKIND_HAS_STORAGE(f.relkind))
		return 0;
	/* the counter of the view's pass over the statistics, if it made one */
	if (!perfopt_stat_pass_changes(relid, &changes))
		changes = perfopt_relation_changes(pgstat_fetch_stat_tabentry(relid));
	return perfopt_relation_bytes_fresh(relid, f.tablespace, f.filenode, f.persistence,
										f.namespace, f.shared, changes);
}

/*
 * Calls add(arg, tuple) for each row of an open catalog whose column
 * key_attno, a relation's OID, is key, through its index index_id (which
 * starts with that column); for every row, in one pass over its heap, when
 * key is InvalidOid (index_id and key_attno are not used then).  With the
 * query's snapshot, with which the tables were listed.
 */
static void
scan_catalog(Relation catalog, Oid index_id, AttrNumber key_attno, Oid key,
			 void (*add) (void *arg, HeapTuple tuple), void *arg)
{
	Snapshot	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : NULL;
	HeapTuple	tuple;

	if (OidIsValid(key))
	{
		ScanKeyData scankey;
		SysScanDesc scan;

		ScanKeyInit(&scankey, key_attno, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(key));
		scan = systable_beginscan(catalog, index_id, true, snapshot, 1, &scankey);
		while ((tuple = systable_getnext(scan)) != NULL)
			add(arg, tuple);
		systable_endscan(scan);
	}
	else
	{
		/*
		 * The whole heap, as systable_beginscan() reads it without an index
		 * (its strategy, no synchronized scan, the catalog snapshot when no
		 * query's is active), but a tuple at a time: a slot's store for
		 * each of pg_attribute's 220,000 rows at 10,000 tables cost 5% of
		 * table_health's pass
		 */
		bool		registered = snapshot == NULL;
		TableScanDesc scan;

		if (registered)
			snapshot = RegisterSnapshot(GetCatalogSnapshot(RelationGetRelid(catalog)));
		scan = table_beginscan_strat(catalog, snapshot, 0, NULL, true, false);
		while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
			add(arg, tuple);
		table_endscan(scan);
		if (registered)
			UnregisterSnapshot(snapshot);
	}
}

/* scan_catalog, the catalog opened for it */
void
perfopt_scan_catalog(Oid catalog_id, Oid index_id, AttrNumber key_attno, Oid key,
					 void (*add) (void *arg, HeapTuple tuple), void *arg)
{
	Relation	catalog = table_open(catalog_id, AccessShareLock);

	scan_catalog(catalog, index_id, key_attno, key, add, arg);
	table_close(catalog, AccessShareLock);
}

/*
 * Calls add(arg, tuple) for each row of a catalog whose column key_attno, a
 * relation's OID, is the key of an entry of byrel: one pass over its heap,
 * or a look-up through its index (which starts with that column) for each
 * entry where that costs less (a few hundred relations of thousands).  rows
 * is how many rows the look-ups would fetch, as the caller estimates it.
 * In a pass, add() sees every row, and must find its own.
 */
void
perfopt_read_catalog_rows(oidmap_hash *byrel, double rows, Oid catalog_id, Oid index_id, AttrNumber key_attno,
						  void (*add) (void *arg, HeapTuple tuple), void *arg)
{
	Relation	catalog = table_open(catalog_id, AccessShareLock);

	if (PERFOPT_CATALOG_READS == 0 ?
		(double) byrel->members * LOOKUP_DESCENT_ROWS + rows <
		(double) RelationGetNumberOfBlocks(catalog) * PASS_PAGE_ROWS :
		PERFOPT_CATALOG_READS == 1)
	{
		oidmap_iterator it;
		OidMapEntry *entry;

		oidmap_start_iterate(byrel, &it);
		while ((entry = oidmap_iterate(byrel, &it)) != NULL)
			scan_catalog(catalog, index_id, key_attno, entry->oid, add, arg);
	}
	else
		scan_catalog(catalog, index_id, key_attno, InvalidOid, add, arg);
	table_close(catalog, AccessShareLock);
}
