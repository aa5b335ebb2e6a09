/*-------------------------------------------------------------------------
 *
 * samples.h
 *	  Real parameter sets of the statements this server runs, sampled in
 *	  the executor hooks and kept in shared memory, for the index advisor.
 *
 * A parameter set holds the values of $1 .. $n of one execution of a
 * statement of pg_stat_statements (userid, dbid, queryid): the bound
 * parameters under the extended protocol, or, under the simple protocol,
 * the constants of the executed text at the positions where
 * pg_stat_statements' jumbling puts $n, numbered as it numbers them.
 * Values are in text form, as the type's input function takes them (a
 * string literal without its quotes); a NULL element is an SQL NULL.
 *
 * The values are row data (emails, names): they are as private as the
 * statement's text in pg_stat_statements.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_SAMPLES_H
#define PERFOPT_SAMPLES_H

#include "nodes/pg_list.h"

typedef struct PerfoptParamSet
{
	int			nparams;		/* $1 .. $nparams */
	char	  **values;			/* text form; NULL element = SQL NULL */
	double		weight;			/* share of the executions it stands for;
								 * the weights of one statement sum to 1 */
	int			sets;			/* how many of the sets kept it merges */
} PerfoptParamSet;

/*
 * The parameter sets kept for one statement, copied into
 * CurrentMemoryContext (a List of PerfoptParamSet *), or NIL when sampling
 * is off, unavailable, or has seen no execution of it.  The caller is
 * responsible for showing them only to whoever may see that statement.
 *
 * At most 8 sets (a reservoir of the sampled executions); identical sets
 * are merged and their weights summed, so the weights are multiples of 1/k
 * (k: sets kept, at most 8) summing to 1, and sets says how many merged.  A set's nparams is the highest
 * $n of the normalized text, except when a text with both $n of its own
 * and constants was not remembered by the backend that sampled it: then
 * only its bound values (fewer than the text's $n).  Each value is at most
 * 1 kB (a set over 1 kB or 100 values is never kept).
 */
extern List *perfopt_statement_param_sets(Oid userid, Oid dbid, int64 queryid);

/* perfopt.param_sampling, perfopt.param_sample_every, perfopt.param_samples_memory (kB) */
extern bool perfopt_param_sampling;
extern int	perfopt_param_sample_every;
extern int	perfopt_param_samples_memory;

/* The sampler's life cycle, from perfopt.c, and its executor hook */
struct QueryDesc;
extern void perfopt_samples_init(void);
extern void perfopt_samples_shmem_request(void);
extern void perfopt_samples_shmem_startup(void);
extern void perfopt_samples_executor_start(struct QueryDesc *queryDesc, int eflags);

#endif							/* PERFOPT_SAMPLES_H */
