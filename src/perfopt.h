/*-------------------------------------------------------------------------
 *
 * perfopt.h
 *	  Settings shared by perfopt's subsystems.
 *
 * Each subsystem has a header of its own; this one holds only what
 * _PG_init defines for all of them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_H
#define PERFOPT_H

/* GUC perfopt.slow_query_ms: mean execution time that makes a query slow */
extern int	perfopt_slow_query_ms;

/* GUC perfopt.advisor_statements: statements recommend_indexes considers */
extern int	perfopt_advisor_statements;

#endif							/* PERFOPT_H */
