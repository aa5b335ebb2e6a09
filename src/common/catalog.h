/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  Catalog lookups that several perfopt subsystems share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_CATALOG_H
#define PERFOPT_CATALOG_H

#include "access/attnum.h"
#include "access/htup.h"
#include "catalog/pg_class.h"
#include "common/oid_map.h"

/* A relation's pg_class fields that locate its files */
typedef struct StorageFacts
{
	Oid			relid;
	char		relkind;
	char		persistence;
	bool		shared;
	Oid			tablespace;
	Oid			filenode;
	Oid			namespace;
} StorageFacts;

extern void perfopt_storage_facts_of(Form_pg_class c, StorageFacts *f);

extern Oid	perfopt_extension_schema(const char *extname);
extern char *perfopt_qualified_function(const char *extname, const char *funcname);
extern char *perfopt_relation_name(Oid relid);
extern double perfopt_relation_tuples(Oid relid);
extern int64 perfopt_relation_bytes(Oid relid, Oid tablespace, Oid filenode, char persistence,
									Oid namespace, bool shared);
extern int64 perfopt_relation_bytes_of(Oid relid, bool *found);
extern void perfopt_scan_catalog(Oid catalog_id, Oid index_id, AttrNumber key_attno, Oid key,
								 void (*add) (void *arg, HeapTuple tuple), void *arg);
extern void perfopt_read_catalog_rows(oidmap_hash *byrel, double rows, Oid catalog_id, Oid index_id,
									  AttrNumber key_attno, void (*add) (void *arg, HeapTuple tuple), void *arg);

#endif							/* PERFOPT_CATALOG_H */
