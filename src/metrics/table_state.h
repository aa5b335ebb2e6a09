/*-------------------------------------------------------------------------
 *
 * table_state.h
 *	  The sizes of this database's tables and indexes, kept in shared
 *	  memory by the metrics sampler and refreshed only where they changed.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_TABLE_STATE_H
#define PERFOPT_TABLE_STATE_H

#include "postgres.h"

#include "pgstat.h"

/* perfopt.table_state_max: relations whose sizes shared memory holds */
extern int	perfopt_table_state_max;

extern void perfopt_table_state_shmem_request(void);
extern void perfopt_table_state_shmem_startup(void);

/* A relation's change counter, from its statistics entry (NULL: none) */
extern uint64 perfopt_relation_changes(PgStat_StatTabEntry *stats);

/*
 * pg_relation_size() of a relation from its pg_class columns, as
 * perfopt_relation_bytes() gives it, taken from the state when the
 * relation's file and change counter are those of the last sample
 */
extern int64 perfopt_relation_bytes_fresh(Oid relid, Oid tablespace, Oid filenode,
										  char persistence, Oid namespace, bool shared,
										  uint64 changes);

/* The sampler's pass: refresh the relations of this database that changed */
extern int	perfopt_table_state_refresh(void);

#endif							/* PERFOPT_TABLE_STATE_H */
