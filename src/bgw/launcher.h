/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The background worker that runs perfopt's jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_LAUNCHER_H
#define PERFOPT_LAUNCHER_H

/* perfopt.database and perfopt.sample_interval, for the files that look here */
#include "common/settings.h"

extern void perfopt_launcher_register(void);

#endif							/* PERFOPT_LAUNCHER_H */
