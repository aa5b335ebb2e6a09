/*-------------------------------------------------------------------------
 *
 * workload.h
 *	  The workload the index advisor works on: statements, how often they
 *	  run, and what they write.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_WORKLOAD_H
#define PERFOPT_WORKLOAD_H

#include "nodes/bitmapset.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"

/*
 * A statement planned with real parameter values: the representative set
 * of one selectivity class, bound as constants, and the share of the
 * executions that class stands for.
 */
typedef struct WorkloadVariant
{
	Query	   *query;			/* parameters bound to the set's values */
	List	   *rewritten;		/* the rewriter's output */
	double		share;			/* of the executions; a statement's sum to 1 */
	int			sets;			/* sets of the sample in its class */
	List	   *values;			/* WorkloadValue *: the values bound */
} WorkloadVariant;

/* A value bound to a parameter, and the share and number of the sets that hold it */
typedef struct WorkloadValue
{
	Const	   *value;
	double		share;
	int			sets;
} WorkloadValue;

typedef struct WorkloadStatement
{
	int			number;			/* 1-based position in the workload */
	int64		queryid;		/* pg_stat_statements' queryid, 0 if none */
	char	   *text;
	Oid			role;			/* role it is planned as; InvalidOid: the caller */
	double		weight;			/* executions: calls, or the weight given */
	Query	   *query;			/* analyzed, range parameters bound */
	List	   *rewritten;		/* the rewriter's output (views expanded) */
	List	   *tables;			/* OIDs of the tables it uses */
	CmdType		command;
	Oid			target;			/* table it writes, or InvalidOid */
	double		rows;			/* rows written per execution; < 0: unknown */
	Bitmapset  *updated_columns;	/* attnums an UPDATE assigns */
	Oid			checked_foreign_key;	/* a foreign key's check, standing for
										 * the writes of its referenced table */
	bool		given_up;		/* its role could not plan it: left out */
	int			num_params;		/* $1 .. $n of its text */
	List	   *variants;		/* WorkloadVariant *: custom plans, or NIL for
								 * the generic plan of query */
	int			param_sets;		/* parameter sets the variants came from */
} WorkloadStatement;

extern List *perfopt_workload_from_pgss(int limit, int *skipped, bool quiet);
extern List *perfopt_workload_from_pgss_for(int limit, int *skipped, bool quiet, List *tables,
											 List *names);
extern List *perfopt_workload_from_list(ArrayType *queries, ArrayType *weights);
extern WorkloadStatement *perfopt_workload_statement(const char *text, double weight,
													  Oid role);
extern WorkloadStatement *perfopt_workload_statement_sets(const char *text, double weight,
														   Oid role, List *param_sets,
														   bool strict);

#endif							/* PERFOPT_WORKLOAD_H */
