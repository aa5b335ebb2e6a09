/*-------------------------------------------------------------------------
 *
 * cache.h
 *	  The Redis cache layer: key templates, the invalidation trigger and
 *	  the connection to Redis that the SQL functions and the worker share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_CACHE_H
#define PERFOPT_CACHE_H

#include <hiredis/hiredis.h>

#include "access/htup.h"
#include "access/tupdesc.h"

/* GUCs perfopt.redis_*: where Redis is and how to log in */
extern char *perfopt_redis_host;
extern int	perfopt_redis_port;
extern const char *perfopt_redis_password;
extern int	perfopt_redis_db;
extern int	perfopt_redis_timeout;

/* GUC perfopt.cache_channel: where each batch of invalidations is published */
extern char *perfopt_cache_channel;

/* GUC perfopt.cache_batch_size: outbox rows the worker drains at once */
extern int	perfopt_cache_batch_size;

/* GUC perfopt.cache_batch_delay, in ms: shortest time between two batches */
extern int	perfopt_cache_batch_delay;

extern void perfopt_cache_define_settings(void);

extern redisContext *perfopt_redis_connect(char *error, size_t errorlen);
extern const char *perfopt_redis_address(void);
extern int	perfopt_redis_get_reply(redisContext *c, redisReply **reply);
extern void perfopt_redis_reply_failed(const char *what, const char *errstr) pg_attribute_noreturn();

extern List *perfopt_cache_template_parse(const char *template, TupleDesc desc);
extern char *perfopt_cache_render_key(const char *template, HeapTuple tuple,
									  TupleDesc desc);

#endif							/* PERFOPT_CACHE_H */
