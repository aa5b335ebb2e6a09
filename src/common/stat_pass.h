/*-------------------------------------------------------------------------
 *
 * stat_pass.h
 *	  The statistics entries of thousands of relations in one pass over
 *	  the shared statistics, where a look-up each cost more than the rest
 *	  of the views that read them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_STAT_PASS_H
#define PERFOPT_STAT_PASS_H

#include "postgres.h"

#include "fmgr.h"
#include "pgstat.h"
#include "utils/hsearch.h"

/* A relation wanted, and its statistics entry once the pass has run */
typedef struct PerfoptStatEntry PerfoptStatEntry;

/*
 * The relations wanted, then their entries.  Without a pass (done false:
 * too few relations, or a pass would not give what the look-ups give),
 * perfopt_stat_pass_get and perfopt_stat_pass_counts look each one up with
 * pgstat_fetch_stat_tabentry.  A relation is wanted whole (its entry, for
 * perfopt_stat_pass_get) or for its counts only (numscans and the change
 * counter, for perfopt_stat_pass_counts): at 10,000 tables the pass copied
 * the whole entries of 20,000 indexes, 8 MB, to read two numbers of each.
 */
typedef struct PerfoptStatPass
{
	struct oidmap_hash *wanted; /* PerfoptStatEntry by relation OID */
	bool		done;			/* the entries were filled by a pass */
	/* where the next entries go: arrays, not a palloc chunk each */
	PerfoptStatEntry *free_entries;
	int			nfree_entries;
	PgStat_StatTabEntry *free_stats;
	int			nfree_stats;
} PerfoptStatPass;

extern void perfopt_stat_pass_init(PerfoptStatPass *pass, long size);
extern PerfoptStatEntry *perfopt_stat_pass_want(PerfoptStatPass *pass, Oid relid, bool whole);
extern void perfopt_stat_pass_run(PerfoptStatPass *pass);
extern PgStat_StatTabEntry *perfopt_stat_pass_get(PerfoptStatPass *pass, PerfoptStatEntry *wanted);
extern bool perfopt_stat_pass_counts(PerfoptStatPass *pass, PerfoptStatEntry *wanted,
									 int64 *numscans, uint64 *changes);

/* pg_stat_get_numscans(relid), read as perfopt.relation_scans() reads it */
extern int64 perfopt_relation_scans(FmgrInfo *flinfo, Oid relid);

/* A relation's change counter from the transaction's perfopt.relation_scans() pass */
extern bool perfopt_stat_pass_changes(Oid relid, uint64 *changes);

#endif							/* PERFOPT_STAT_PASS_H */
