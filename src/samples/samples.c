/*-------------------------------------------------------------------------
 *
 * samples.c
 *	  Parameter samples of statements (interface placeholder: the sampler
 *	  replaces this file; until it lands, no statement has samples).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "samples/samples.h"

List *
perfopt_statement_param_sets(Oid userid, Oid dbid, int64 queryid)
{
	return NIL;
}
