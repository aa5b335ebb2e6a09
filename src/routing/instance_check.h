/*-------------------------------------------------------------------------
 *
 * instance_check.h
 *	  The worker that checks every registered instance.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_HEALTH_CHECK_H
#define PERFOPT_HEALTH_CHECK_H

extern void perfopt_health_check_register(void);

#endif							/* PERFOPT_HEALTH_CHECK_H */
