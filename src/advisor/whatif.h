/*-------------------------------------------------------------------------
 *
 * whatif.h
 *	  Costing statements with hypothetical indexes (HypoPG).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_WHATIF_H
#define PERFOPT_WHATIF_H

#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"

/* A session of what-if costing: the hypothetical indexes it made */
typedef struct WhatIf
{
	SPIPlanPtr	create_plan;	/* SELECT indexrelid FROM hypopg_create_index($1) */
	FmgrInfo	drop_fn;		/* hypopg_drop_index(oid) */
	FmgrInfo	size_fn;		/* hypopg_relation_size(oid) */
	List	   *created;		/* OIDs of our hypothetical indexes that exist */
	List	   *hidden;			/* OIDs of real indexes the planner must not see */
	bool		collect_used;	/* note the indexes each plan scans? */
	List	   *used;			/* OIDs of the indexes the last plan scans */
	int64		planner_calls;	/* statements planned */
} WhatIf;

extern void perfopt_whatif_init(void);
extern void perfopt_whatif_begin(WhatIf *whatif);
extern Oid	perfopt_whatif_create(WhatIf *whatif, const char *index_def);
extern void perfopt_whatif_drop(WhatIf *whatif, Oid index);
extern int64 perfopt_whatif_size(WhatIf *whatif, Oid index);
extern double perfopt_whatif_cost(WhatIf *whatif, Query *query, const char *query_text,
								  double *rows, Oid role);
extern void perfopt_whatif_end(WhatIf *whatif);

#endif							/* PERFOPT_WHATIF_H */
