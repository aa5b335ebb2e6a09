/*-------------------------------------------------------------------------
 *
 * cache_worker.h
 *	  The background worker that sends committed invalidations to Redis.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_CACHE_WORKER_H
#define PERFOPT_CACHE_WORKER_H

#include "storage/itemptr.h"

/* GUC perfopt.cache_channel: where each batch of invalidations is published */
extern char *perfopt_cache_channel;

/* GUC perfopt.cache_batch_size: outbox rows the worker drains at once */
extern int	perfopt_cache_batch_size;

/* GUC perfopt.cache_batch_delay, in ms: shortest time between two batches */
extern int	perfopt_cache_batch_delay;

/* Redis's run_id: 40 hex characters */
#define CACHE_RUN_ID_LEN		41

extern void perfopt_cache_worker_register(void);
extern void perfopt_cache_shmem_request(void);
extern void perfopt_cache_shmem_startup(void);
extern void perfopt_cache_wake_register(void);
extern void perfopt_cache_wake_at_commit(int64 id);
extern int64 perfopt_cache_next_id(Oid seqid);
extern void perfopt_cache_queue_at_commit(Oid relid, int64 id, ItemPointer tid,
										  char **keys, int n);
extern void perfopt_cache_add_own_lookups(const char *run_id, uint64 redis_total,
										  uint64 hits, uint64 misses);
extern bool perfopt_cache_get_own_lookups(const char *run_id, uint64 redis_total,
										  uint64 *hits, uint64 *misses);

#endif							/* PERFOPT_CACHE_WORKER_H */
