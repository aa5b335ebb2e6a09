/*
 * thread_cpu_ns(): the CPU time this backend has used, in nanoseconds
 * (CLOCK_THREAD_CPUTIME_ID).  Loaded by test/bench/latency_overhead.sh
 * only, for timing chunks of statements by the CPU time they took rather
 * than by the wall clock, which a loaded machine stretches.
 */
#include "postgres.h"

#include <time.h>

#include "fmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(thread_cpu_ns);

Datum
thread_cpu_ns(PG_FUNCTION_ARGS)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: %m")));
	PG_RETURN_INT64((int64) ts.tv_sec * 1000000000 + ts.tv_nsec);
}
