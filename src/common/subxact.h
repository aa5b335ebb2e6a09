/*-------------------------------------------------------------------------
 *
 * subxact.h
 *	  Running a step in a subtransaction and keeping its error.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_SUBXACT_H
#define PERFOPT_SUBXACT_H

#include "utils/elog.h"

extern ErrorData *perfopt_try_in_subtransaction(void (*step) (void *arg), void *arg);

#endif							/* PERFOPT_SUBXACT_H */
