/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The background worker that runs perfopt's jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_LAUNCHER_H
#define PERFOPT_LAUNCHER_H

/* GUC perfopt.database: where the launcher connects */
extern char *perfopt_database;

/* GUC perfopt.sample_interval, in seconds: the schedule of jobs without one */
extern int	perfopt_sample_interval;

extern void perfopt_launcher_register(void);

#endif							/* PERFOPT_LAUNCHER_H */
