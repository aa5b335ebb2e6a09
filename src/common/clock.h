/*-------------------------------------------------------------------------
 *
 * clock.h
 *	  The time perfopt's jobs take as now.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_CLOCK_H
#define PERFOPT_CLOCK_H

#include "datatype/timestamp.h"

/*
 * The time perfopt's jobs take as "now": the real time, unless
 * perfopt.now_override says otherwise, so that jobs can be run on
 * recorded series at full speed in tests.
 */
extern TimestampTz perfopt_now(void);

#endif							/* PERFOPT_CLOCK_H */
