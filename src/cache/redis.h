/*-------------------------------------------------------------------------
 *
 * redis.h
 *	  perfopt's Redis client, shared by the cache's SQL functions and the
 *	  cache invalidator.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_REDIS_H
#define PERFOPT_REDIS_H

#include <hiredis/hiredis.h>

/* GUCs perfopt.redis_*: where Redis is and how to log in */
extern char *perfopt_redis_host;
extern int	perfopt_redis_port;
extern const char *perfopt_redis_password;
extern int	perfopt_redis_db;
extern int	perfopt_redis_timeout;

/* Connect and log in; NULL with the reason in error when that fails */
extern redisContext *perfopt_redis_connect(char *error, size_t errorlen);

/* Connect and log in, or raise an error that says why */
extern redisContext *perfopt_redis_connect_or_error(void);

/* host:port (or the socket path) of Redis, for messages */
extern const char *perfopt_redis_address(void);

/* Read one reply, bounded in size; REDIS_OK or REDIS_ERR as hiredis */
extern int	perfopt_redis_get_reply(redisContext *c, redisReply **reply);

/* Send one command and read its reply, bounded; NULL on failure */
extern redisReply *perfopt_redis_command(redisContext *c, const char *format,...);

/* Raise the error of a failed Redis command */
extern void perfopt_redis_reply_failed(const char *what, const char *errstr) pg_attribute_noreturn();

#endif							/* PERFOPT_REDIS_H */
