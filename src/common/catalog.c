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

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "common/catalog.h"

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

/* schema.table of a relation, quoted as needed */
char *
perfopt_relation_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}
