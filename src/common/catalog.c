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
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_tablespace.h"
#include "common/relpath.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relmapper.h"

#include "common/catalog.h"
#include "common/stat_pass.h"
#include "metrics/table_state.h"

PG_FUNCTION_INFO_V1(perfopt_relation_bytes_sql);

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

/*
 * perfopt.relation_bytes(regclass): pg_relation_size(rel) without a lock,
 * for the views that list thousands of relations; NULL if there is no such
 * relation, as pg_relation_size() gives.
 */
Datum
perfopt_relation_bytes_sql(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class c;
	int64		bytes = 0;

	if (!HeapTupleIsValid(tuple))
		PG_RETURN_NULL();
	c = (Form_pg_class) GETSTRUCT(tuple);
	if (RELKIND_HAS_STORAGE(c->relkind))
	{
		uint64		changes;

		/* the counter of the view's pass over the statistics, if it made one */
		if (!perfopt_stat_pass_changes(relid, &changes))
			changes = perfopt_relation_changes(pgstat_fetch_stat_tabentry(relid));
		bytes = perfopt_relation_bytes_fresh(relid, c->reltablespace, c->relfilenode, c->relpersistence,
											 c->relnamespace, c->relisshared, changes);
	}
	ReleaseSysCache(tuple);
	PG_RETURN_INT64(bytes);
}
