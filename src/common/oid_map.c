/*-------------------------------------------------------------------------
 *
 * oid_map.c
 *	  The functions of the map from OIDs to pointers: see oid_map.h.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"

#include "common/oid_map.h"

#define SH_PREFIX oidmap
#define SH_ELEMENT_TYPE OidMapEntry
#define SH_KEY_TYPE Oid
#define SH_KEY oid
#define SH_HASH_KEY(tb, key) murmurhash32(key)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE extern
#define SH_DEFINE
#include "lib/simplehash.h"
