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
 * perfopt_stat_pass_get looks each one up with pgstat_fetch_stat_tabentry.
 */
typedef struct PerfoptStatPass
{
	struct oidmap_hash *wanted; /* PerfoptStatEntry by relation OID */
	bool		done;			/* the entries were filled by a pass */
} PerfoptStatPass;

extern void perfopt_stat_pass_init(PerfoptStatPass *pass, long size);
extern PerfoptStatEntry *perfopt_stat_pass_want(PerfoptStatPass *pass, Oid relid);
extern void perfopt_stat_pass_run(PerfoptStatPass *pass);
extern PgStat_StatTabEntry *perfopt_stat_pass_get(PerfoptStatPass *pass, PerfoptStatEntry *wanted);

/* pg_stat_get_numscans(relid), read as perfopt.relation_scans() reads it */
extern int64 perfopt_relation_scans(FmgrInfo *flinfo, Oid relid);

/* A relation's change counter from the transaction's perfopt.relation_scans() pass */
extern bool perfopt_stat_pass_changes(Oid relid, uint64 *changes);

#endif							/* PERFOPT_STAT_PASS_H */
