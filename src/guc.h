/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  The one function that defines every perfopt.* setting.
 *
 * The variables of the settings live where they are used: a subsystem's
 * own in that subsystem (perfopt.redis_* in cache/redis.c ...), the
 * general ones in common/settings.c; guc.c defines them all, in one place,
 * with their units, contexts and check hooks.  Only perfopt.c includes
 * this header: nothing depends on guc.c but module load.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_GUC_H
#define PERFOPT_GUC_H

/*
 * Define every perfopt.* setting, and reserve the prefix; from _PG_init.
 * perfopt.max_statements, which sizes shared memory, only while
 * preloading.
 */
extern void perfopt_define_settings(void);

#endif							/* PERFOPT_GUC_H */
