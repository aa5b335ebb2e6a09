/*-------------------------------------------------------------------------
 *
 * cache_worker.h
 *	  The background worker that sends committed invalidations to Redis.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_CACHE_WORKER_H
#define PERFOPT_CACHE_WORKER_H

extern void perfopt_cache_worker_init(void);
extern void perfopt_cache_wake_at_commit(int64 id);

#endif							/* PERFOPT_CACHE_WORKER_H */
