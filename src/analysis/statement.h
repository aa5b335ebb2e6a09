/*-------------------------------------------------------------------------
 *
 * statement.h
 *	  Turning a statement text, as a user or pg_stat_statements gives it,
 *	  into analyzed and planned trees without executing it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_STATEMENT_H
#define PERFOPT_STATEMENT_H

#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"

typedef struct PerfoptStatement
{
	/*
	 * The text that was parsed: the caller's, except that a $n the grammar
	 * rejects in a typed literal (date $1) is blanked to '' of the same
	 * length, so error positions still point into the caller's text.
	 */
	char	   *text;
	RawStmt    *raw;			/* raw tree, EXPLAIN unwrapped */
	bool		is_utility;		/* not SELECT/INSERT/UPDATE/DELETE/MERGE */
	Query	   *query;			/* analyzed tree; NULL for utility */
	Oid		   *param_types;	/* types inferred for $1 .. $num_params */
	int			num_params;
} PerfoptStatement;

extern PerfoptStatement *perfopt_parse_statement(const char *query_text);
extern List *perfopt_plan_statement(PerfoptStatement *stmt);
extern bool perfopt_text_has_params(const char *query_text);

#endif							/* PERFOPT_STATEMENT_H */
