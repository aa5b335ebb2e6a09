/*-------------------------------------------------------------------------
 *
 * oid_map.h
 *	  A map from OIDs to pointers (or a set of OIDs), for the passes over
 *	  thousands of catalog rows and statistics entries.
 *
 * PostgreSQL's simplehash: open addressing over slots of 16 bytes, so a
 * look-up reads one slot where dynahash reads a bucket pointer and then
 * each element of the chain.  At 10,000 tables those tables outgrow the
 * CPU's caches, and dynahash's look-ups, a cache miss or two each, were a
 * third of table_health's own pass.  What a slot points to does not move
 * when the map grows: keep pointers to the values, not to the slots.
 *
 *	oidmap_create(cxt, n, NULL), oidmap_insert(map, oid, &found),
 *	oidmap_lookup(map, oid), oidmap_start_iterate / oidmap_iterate,
 *	map->members, oidmap_destroy: lib/simplehash.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_OID_MAP_H
#define PERFOPT_OID_MAP_H

#include "postgres.h"

typedef struct OidMapEntry
{
	Oid			oid;			/* the key */
	char		status;			/* simplehash's */
	void	   *value;			/* NULL in a set */
} OidMapEntry;

#define SH_PREFIX oidmap
#define SH_ELEMENT_TYPE OidMapEntry
#define SH_KEY_TYPE Oid
#define SH_SCOPE extern
#define SH_DECLARE
#include "lib/simplehash.h"

/* The value of oid, NULL when the map does not hold it */
static inline void *
oidmap_get(oidmap_hash *map, Oid oid)
{
	OidMapEntry *entry = oidmap_lookup(map, oid);

	return entry != NULL ? entry->value : NULL;
}

/* Is oid in the map (or set)? */
static inline bool
oidmap_contains(oidmap_hash *map, Oid oid)
{
	return oidmap_lookup(map, oid) != NULL;
}

/* Adds oid to a set; true if it was not there yet */
static inline bool
oidmap_add(oidmap_hash *map, Oid oid)
{
	bool		found;
	OidMapEntry *entry = oidmap_insert(map, oid, &found);

	if (!found)
		entry->value = NULL;
	return !found;
}

#endif							/* PERFOPT_OID_MAP_H */
