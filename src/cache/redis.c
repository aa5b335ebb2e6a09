/*-------------------------------------------------------------------------
 *
 * redis.c
 *	  perfopt's Redis client: connecting with perfopt.redis_* (timeouts,
 *	  AUTH, SELECT), and replies bounded in size, for the SQL functions
 *	  of cache.c and for the cache invalidator alike.
 *
 * It was part of cache.c, which the invalidator (cache_worker.c) needed
 * for it while cache.c needed the invalidator to wake it at commit; with
 * the client on its own both depend on it and neither on the other.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <sys/time.h>

#include "miscadmin.h"

#include "cache/redis.h"

char	   *perfopt_redis_host = NULL;
int			perfopt_redis_port = 6379;
const char *perfopt_redis_password = "";
int			perfopt_redis_db = 0;
int			perfopt_redis_timeout = 1000;

/* host:port (or the socket path) of Redis, for messages */
const char *
perfopt_redis_address(void)
{
	static char address[1024];

	if (perfopt_redis_host[0] == '/')
		snprintf(address, sizeof(address), "%s", perfopt_redis_host);
	else
		snprintf(address, sizeof(address), "%s:%d", perfopt_redis_host, perfopt_redis_port);
	return address;
}

/*
 * Replies from Redis are bounded.  hiredis 0.14 builds a reply of any size
 * a server announces: a bulk string grows its read buffer until the whole
 * string is there, and an array header makes it allocate the element
 * pointers at once.  A Redis that someone else can write to (a key name of
 * hundreds of megabytes matched by a SCAN) or a server that is not Redis
 * could so make a backend or the cache worker allocate gigabytes.  So
 * perfopt reads every reply through perfopt_redis_get_reply, which refuses
 * one whose unparsed part or built objects pass REDIS_MAX_REPLY_BYTES: the
 * reader's object functions count what each reply builds, and the read
 * loop checks the buffer after every read of at most 16 kB.
 */
#define REDIS_MAX_REPLY_BYTES	(4 * 1024 * 1024)

/* hiredis's own object functions, which the bounded ones call */
static redisReplyObjectFunctions *default_reply_functions = NULL;

/* bytes the reply being read has built, and whether it passed the bound */
static size_t reply_bytes = 0;
static bool reply_too_large = false;

/* Count bytes (plus the object itself) against the reply; false when over */
static bool
reply_charge(const redisReadTask *task, size_t bytes)
{
	/* a task without a parent starts a new reply */
	if (task->parent == NULL)
		reply_bytes = 0;
	if (bytes > REDIS_MAX_REPLY_BYTES ||
		reply_bytes + bytes + sizeof(redisReply) > REDIS_MAX_REPLY_BYTES)
	{
		reply_too_large = true;
		return false;
	}
	reply_bytes += bytes + sizeof(redisReply);
	return true;
}

static void *
bounded_string(const redisReadTask *task, char *str, size_t len)
{
	if (!reply_charge(task, len + 1))
		return NULL;
	return default_reply_functions->createString(task, str, len);
}

static void *
bounded_array(const redisReadTask *task, int elements)
{
	if (elements < 0 || !reply_charge(task, (size_t) elements * sizeof(redisReply *)))
		return NULL;
	return default_reply_functions->createArray(task, elements);
}

static void *
bounded_integer(const redisReadTask *task, long long value)
{
	if (!reply_charge(task, 0))
		return NULL;
	return default_reply_functions->createInteger(task, value);
}

static void *
bounded_nil(const redisReadTask *task)
{
	if (!reply_charge(task, 0))
		return NULL;
	return default_reply_functions->createNil(task);
}

static void
bounded_free(void *reply)
{
	default_reply_functions->freeObject(reply);
}

static redisReplyObjectFunctions bounded_reply_functions = {
	bounded_string, bounded_array, bounded_integer, bounded_nil, bounded_free
};

/* Make c's reader build replies through the bounded functions */
static void
bound_replies(redisContext *c)
{
	if (c->reader->fn == &bounded_reply_functions)
		return;
	if (default_reply_functions == NULL)
		default_reply_functions = c->reader->fn;
	c->reader->fn = &bounded_reply_functions;
}

/*
 * redisGetReply with a bound on the reply's size: send what is pending,
 * then read until a whole reply is there.  On failure returns REDIS_ERR
 * with c->err and c->errstr set; the context must then be freed.
 */
int
perfopt_redis_get_reply(redisContext *c, redisReply **reply)
{
	void	   *aux = NULL;
	int			done = 0;

	*reply = NULL;
	reply_too_large = false;
	bound_replies(c);
	if (redisGetReplyFromReader(c, &aux) == REDIS_ERR)
		goto failed;
	if (aux == NULL)
	{
		do
		{
			if (redisBufferWrite(c, &done) == REDIS_ERR)
				goto failed;
		} while (!done);
		while (aux == NULL)
		{
			if (c->reader->len - c->reader->pos > REDIS_MAX_REPLY_BYTES)
			{
				reply_too_large = true;
				goto failed;
			}
			if (redisBufferRead(c) == REDIS_ERR ||
				redisGetReplyFromReader(c, &aux) == REDIS_ERR)
				goto failed;
		}
	}
	*reply = aux;
	return REDIS_OK;

failed:
	if (reply_too_large)
	{
		c->err = REDIS_ERR_OTHER;
		snprintf(c->errstr, sizeof(c->errstr),
				 "a reply larger than %d bytes, the most perfopt accepts", REDIS_MAX_REPLY_BYTES);
	}
	return REDIS_ERR;
}

/*
 * Report a failed perfopt_redis_get_reply during what, with the errstr the
 * caller copied before freeing the context: an ERROR
 */
void
perfopt_redis_reply_failed(const char *what, const char *errstr)
{
	if (reply_too_large)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("Redis at %s sent %s a reply larger than %d bytes",
						perfopt_redis_address(), what, REDIS_MAX_REPLY_BYTES),
				 errhint("perfopt refuses larger replies: keep key names short, and check that perfopt.redis_host names a Redis server.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("lost the connection to Redis at %s during %s: %s",
					perfopt_redis_address(), what, errstr)));
}

/* One command and its reply, bounded; NULL (error in c) on failure */
redisReply *
perfopt_redis_command(redisContext *c, const char *format,...)
{
	va_list		args;
	int			ret;
	redisReply *reply;

	va_start(args, format);
	ret = redisvAppendCommand(c, format, args);
	va_end(args);
	if (ret != REDIS_OK || perfopt_redis_get_reply(c, &reply) != REDIS_OK)
		return NULL;
	return reply;
}

/*
 * After a command that sets the connection up (AUTH, SELECT): true if it
 * succeeded; else the reason, failure at where Redis is, goes to error and
 * the connection is closed.
 */
static bool
setup_succeeded(redisContext *c, redisReply *reply, const char *failure,
				char *error, size_t errorlen)
{
	if (reply != NULL && reply->type != REDIS_REPLY_ERROR)
	{
		freeReplyObject(reply);
		return true;
	}
	snprintf(error, errorlen, "%s at %s: %s", failure, perfopt_redis_address(),
			 reply ? reply->str : c->errstr);
	if (reply)
		freeReplyObject(reply);
	redisFree(c);
	return false;
}

/*
 * Connect to Redis as the settings say, log in and select the database.
 * Every step has perfopt.redis_timeout.  On failure, returns NULL with the
 * reason in error; the password is never part of it.
 */
redisContext *
perfopt_redis_connect(char *error, size_t errorlen)
{
	struct timeval tv;
	redisContext *c;
	redisReply *reply;

	tv.tv_sec = perfopt_redis_timeout / 1000;
	tv.tv_usec = (perfopt_redis_timeout % 1000) * 1000;

	if (perfopt_redis_host[0] == '/')
		c = redisConnectUnixWithTimeout(perfopt_redis_host, tv);
	else
		c = redisConnectWithTimeout(perfopt_redis_host, perfopt_redis_port, tv);
	if (c == NULL)
	{
		snprintf(error, errorlen, "could not connect to Redis at %s: out of memory",
				 perfopt_redis_address());
		return NULL;
	}
	if (c->err)
	{
		snprintf(error, errorlen, "could not connect to Redis at %s: %s",
				 perfopt_redis_address(), c->errstr);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	bound_replies(c);

	if (perfopt_redis_password[0] != '\0')
		reply = perfopt_redis_command(c, "AUTH %s", perfopt_redis_password);
	else
		reply = perfopt_redis_command(c, "PING");
	if (!setup_succeeded(c, reply, "could not log in to Redis", error, errorlen))
		return NULL;

	if (perfopt_redis_db != 0)
	{
		char		failure[64];

		snprintf(failure, sizeof(failure), "could not select database %d of Redis", perfopt_redis_db);
		reply = perfopt_redis_command(c, "SELECT %d", perfopt_redis_db);
		if (!setup_succeeded(c, reply, failure, error, errorlen))
			return NULL;
	}
	return c;
}

/* Connect to Redis for a SQL function; an ERROR if that fails */
redisContext *
perfopt_redis_connect_or_error(void)
{
	char		error[512];
	redisContext *c = perfopt_redis_connect(error, sizeof(error));

	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("%s", error),
				 errhint("Check perfopt.redis_host, perfopt.redis_port and perfopt.redis_password.")));
	return c;
}
