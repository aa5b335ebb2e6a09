/*-------------------------------------------------------------------------
 *
 * clock.c
 *	  The time perfopt's jobs take as now: injectable through
 *	  perfopt.now_override, so that detectors, forecasters and rules can
 *	  be tested on recorded series at full speed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "common/clock.h"
#include "common/settings.h"

PG_FUNCTION_INFO_V1(perfopt_now_sql);

/* The time perfopt's jobs take as now; see clock.h */
TimestampTz
perfopt_now(void)
{
	if (perfopt_now_override == NULL || perfopt_now_override[0] == '\0')
		return GetCurrentTimestamp();

	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
												   CStringGetDatum(perfopt_now_override),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

/* now(): perfopt_now() for SQL */
Datum
perfopt_now_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(perfopt_now());
}
