/*-------------------------------------------------------------------------
 *
 * cache_hits.c
 *	  perfopt.cache_hit_rates(sample_seconds): the application's Redis hit
 *	  rate per watched key template and per strategy, measured over a
 *	  window.
 *
 * Redis 7 counts hits and misses only for the whole server (INFO stats), and
 * reads per key only as an LFU counter (OBJECT FREQ), a logarithmic and
 * decaying estimate.  Two things it does publish exactly, key by key:
 *
 *	misses		with notify-keyspace-events holding E and m, every read of a
 *				key that is not there publishes the key on the channel
 *				__keyevent@<db>__:keymiss;
 *	reads		MONITOR streams every command the server runs, with its
 *				arguments.
 *
 * For sample_seconds perfopt subscribes to the first on one connection and
 * runs MONITOR on another, and maps each key to its watched key template
 * (the template whose literal parts match it, the most specific when
 * several do): reads are the keys named by the commands that read a value
 * (GET, MGET, HGETALL and the like; EXISTS too), misses the keys of the
 * key-miss events, and hits the reads less the misses.
 *
 * Each template's last window is kept in perfopt.cache_hit_samples, where
 * cache_advice takes its hit rate from.
 *
 * Nothing here changes a Redis setting: without E and m in
 * notify-keyspace-events the rows say so, with the CONFIG SET that turns
 * them on, and no window is sampled.  MONITOR costs Redis much of its
 * throughput while it runs, so the window is bounded (60 s).  A read
 * command perfopt does not list (TTL, TYPE) that finds no key still
 * publishes a key-miss event: such a miss is counted without its read
 * (hit_rate_pct is then held at 0 or more).  Only counts leave this file,
 * never a key.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>
#include <poll.h>

#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "cache/cache.h"
#include "cache/redis.h"

PG_FUNCTION_INFO_V1(perfopt_cache_hit_rates);

/* The longest window: MONITOR slows Redis down while it runs */
#define HIT_SAMPLE_MAX_SECONDS	60
/* Unparsed bytes a stream may hold before perfopt gives up on it */
#define STREAM_MAX_PENDING		(4 * 1024 * 1024)
/* Templates a call measures at most (each key is matched against all) */
#define HIT_TEMPLATES_MAX		1000

/* A watched key template and what the window saw of it */
typedef struct TemplateCount
{
	char	   *template;
	char	   *strategy;
	int			literal;		/* its characters outside placeholders */
	int64		reads;
	int64		misses;
} TemplateCount;

/* Commands that read a value, and whether all their arguments are keys */
static const struct
{
	const char *name;
	bool		all_keys;
}			read_commands[] =
{
	{"GET", false}, {"MGET", true}, {"GETEX", false}, {"GETDEL", false},
	{"GETRANGE", false}, {"SUBSTR", false}, {"STRLEN", false}, {"EXISTS", true},
	{"HGET", false}, {"HMGET", false}, {"HGETALL", false}, {"HEXISTS", false},
	{"HKEYS", false}, {"HVALS", false}, {"HLEN", false}, {"HSTRLEN", false},
	{"LRANGE", false}, {"LINDEX", false}, {"LLEN", false},
	{"SMEMBERS", false}, {"SISMEMBER", false}, {"SMISMEMBER", false}, {"SCARD", false},
	{"ZRANGE", false}, {"ZRANGEBYSCORE", false}, {"ZREVRANGE", false}, {"ZSCORE", false},
	{"ZMSCORE", false}, {"ZCARD", false}, {"ZRANK", false},
	{"JSON.GET", false},
};

/*
 * Does key match template, a placeholder matching one or more characters?
 * The glob matcher that goes back only to the last placeholder: time in
 * the product of the lengths at most, whatever the placeholders.
 */
static bool
template_matches(const char *template, const char *key, size_t keylen)
{
	const char *t = template;
	size_t		k = 0;
	const char *star_t = NULL;	/* after the last placeholder passed */
	size_t		star_k = 0;		/* where its match ends so far */

	while (k < keylen)
	{
		const char *close;

		if (*t == '{' && (close = strchr(t + 1, '}')) != NULL)
		{
			/* one character at least, then try the rest from the next one */
			star_t = close + 1;
			star_k = ++k;
			t = star_t;
		}
		else if (*t != '\0' && *t == key[k])
		{
			t++;
			k++;
		}
		else if (star_t != NULL)
		{
			/* the last placeholder takes one more character */
			k = ++star_k;
			t = star_t;
		}
		else
			return false;
	}
	return *t == '\0';
}

/* The most specific template key belongs to, or NULL */
static TemplateCount *
template_of(TemplateCount *templates, int ntemplates, const char *key, size_t keylen)
{
	TemplateCount *found = NULL;

	for (int i = 0; i < ntemplates; i++)
		if ((found == NULL || templates[i].literal > found->literal) &&
			template_matches(templates[i].template, key, keylen))
			found = &templates[i];
	return found;
}

/*
 * The next argument of a MONITOR line at *p, unquoted (Redis writes each
 * one as "..." with \\, \", \n, \r, \t, \a, \b and \xhh escapes), into buf;
 * false when there is none.
 */
static bool
next_argument(const char **p, StringInfo buf)
{
	const char *s = *p;

	resetStringInfo(buf);
	while (*s == ' ')
		s++;
	if (*s != '"')
		return false;
	s++;
	while (*s && *s != '"')
	{
		if (*s == '\\' && s[1])
		{
			s++;
			switch (*s)
			{
				case 'n':
					appendStringInfoChar(buf, '\n');
					break;
				case 'r':
					appendStringInfoChar(buf, '\r');
					break;
				case 't':
					appendStringInfoChar(buf, '\t');
					break;
				case 'a':
					appendStringInfoChar(buf, '\a');
					break;
				case 'b':
					appendStringInfoChar(buf, '\b');
					break;
				case 'x':
					if (isxdigit((unsigned char) s[1]) && isxdigit((unsigned char) s[2]))
					{
						char		hex[3] = {s[1], s[2], '\0'};

						appendStringInfoChar(buf, (char) strtol(hex, NULL, 16));
						s += 2;
						break;
					}
					/* FALLTHROUGH */
				default:
					appendStringInfoChar(buf, *s);
					break;
			}
			s++;
			continue;
		}
		appendStringInfoChar(buf, *s++);
	}
	if (*s == '"')
		s++;
	*p = s;
	return true;
}

/* Count the keys a MONITOR line reads, for the templates they belong to */
static void
count_monitor_line(const char *line, TemplateCount *templates, int ntemplates,
				   int db, StringInfo arg)
{
	const char *p = strchr(line, '[');
	const char *close;
	int			command = -1;

	/* "<time> [<db> <client>] "COMMAND" "arg" ..." */
	if (p == NULL || atoi(p + 1) != db || (close = strchr(p, ']')) == NULL)
		return;
	p = close + 1;
	if (!next_argument(&p, arg))
		return;
	for (int i = 0; i < lengthof(read_commands); i++)
		if (pg_strcasecmp(arg->data, read_commands[i].name) == 0)
		{
			command = i;
			break;
		}
	if (command < 0)
		return;
	while (next_argument(&p, arg))
	{
		TemplateCount *t = template_of(templates, ntemplates, arg->data, arg->len);

		if (t != NULL)
			t->reads++;
		if (!read_commands[command].all_keys)
			break;
	}
}

/* Count one message of the key-miss subscription */
static void
count_miss(redisReply *r, TemplateCount *templates, int ntemplates)
{
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		r->element[0]->type == REDIS_REPLY_STRING &&
		strcmp(r->element[0]->str, "message") == 0 &&
		r->element[2]->type == REDIS_REPLY_STRING)
	{
		TemplateCount *t = template_of(templates, ntemplates, r->element[2]->str,
									   r->element[2]->len);

		if (t != NULL)
			t->misses++;
	}
}

/*
 * Read what has arrived on c (poll said it is readable) and count every
 * whole reply; false with the reason in error when the stream failed.
 */
static bool
read_stream(redisContext *c, bool monitor, TemplateCount *templates, int ntemplates,
			StringInfo arg, char *error, size_t errorlen)
{
	void	   *aux = NULL;

	if (redisBufferRead(c) == REDIS_ERR)
	{
		snprintf(error, errorlen, "lost the connection to Redis at %s: %s",
				 perfopt_redis_address(), c->errstr);
		return false;
	}
	if (c->reader->len - c->reader->pos > STREAM_MAX_PENDING)
	{
		snprintf(error, errorlen, "Redis at %s sent a reply larger than %d bytes",
				 perfopt_redis_address(), STREAM_MAX_PENDING);
		return false;
	}
	for (;;)
	{
		redisReply *r;

		if (redisGetReplyFromReader(c, &aux) == REDIS_ERR)
		{
			snprintf(error, errorlen, "Redis at %s sent what perfopt could not read: %s",
					 perfopt_redis_address(), c->errstr);
			return false;
		}
		if (aux == NULL)
			return true;
		r = (redisReply *) aux;
		if (monitor && r->type == REDIS_REPLY_STATUS)
			count_monitor_line(r->str, templates, ntemplates, perfopt_redis_db, arg);
		else if (!monitor)
			count_miss(r, templates, ntemplates);
		freeReplyObject(r);
	}
}

/*
 * Check that Redis publishes key-miss events, subscribe to them on sub and
 * start MONITOR on mon; false with the reason in error when one fails.
 */
static bool
start_streams(redisContext *sub, redisContext *mon, char *error, size_t errorlen)
{
	redisReply *r;
	char		channel[64];
	bool		ok = false;

	r = perfopt_redis_command(sub, "CONFIG GET notify-keyspace-events");
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		r->element[1]->type != REDIS_REPLY_STRING)
		snprintf(error, errorlen, "Redis at %s did not answer CONFIG GET notify-keyspace-events: %s",
				 perfopt_redis_address(),
				 (r && r->type == REDIS_REPLY_ERROR) ? r->str : sub->errstr);
	else if (strchr(r->element[1]->str, 'E') == NULL || strchr(r->element[1]->str, 'm') == NULL)
		snprintf(error, errorlen,
				 "Redis publishes no key-miss events (notify-keyspace-events is \"%s\"), so misses per template cannot be counted; a DBA can turn them on with CONFIG SET notify-keyspace-events \"%sEm\" (perfopt changes no Redis setting)",
				 r->element[1]->str, r->element[1]->str);
	else
		ok = true;
	if (r)
		freeReplyObject(r);
	if (!ok)
		return false;

	snprintf(channel, sizeof(channel), "__keyevent@%d__:keymiss", perfopt_redis_db);
	r = perfopt_redis_command(sub, "SUBSCRIBE %s", channel);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
	{
		snprintf(error, errorlen, "Redis at %s refused SUBSCRIBE: %s", perfopt_redis_address(),
				 (r && r->type == REDIS_REPLY_ERROR) ? r->str : sub->errstr);
		ok = false;
	}
	if (r)
		freeReplyObject(r);
	if (!ok)
		return false;

	r = perfopt_redis_command(mon, "MONITOR");
	if (r == NULL || r->type != REDIS_REPLY_STATUS)
	{
		snprintf(error, errorlen, "Redis at %s refused MONITOR, which counts the reads: %s",
				 perfopt_redis_address(),
				 (r && r->type == REDIS_REPLY_ERROR) ? r->str : mon->errstr);
		ok = false;
	}
	if (r)
		freeReplyObject(r);
	return ok;
}

/* Follow both streams until end; false with the reason in error on failure */
static bool
follow_streams(redisContext *sub, redisContext *mon, TimestampTz end,
			   TemplateCount *templates, int ntemplates, char *error, size_t errorlen)
{
	StringInfoData arg;

	initStringInfo(&arg);
	for (;;)
	{
		struct pollfd fds[2];
		long		wait_ms;
		TimestampTz now = GetCurrentTimestamp();

		if (now >= end)
			return true;
		wait_ms = Min((end - now) / 1000 + 1, 100);
		fds[0].fd = sub->fd;
		fds[0].events = POLLIN;
		fds[1].fd = mon->fd;
		fds[1].events = POLLIN;
		fds[0].revents = fds[1].revents = 0;
		if (poll(fds, 2, (int) wait_ms) < 0 && errno != EINTR)
		{
			snprintf(error, errorlen, "could not wait for Redis: %m");
			return false;
		}
		if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
			!read_stream(sub, false, templates, ntemplates, &arg, error, errorlen))
			return false;
		if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
			!read_stream(mon, true, templates, ntemplates, &arg, error, errorlen))
			return false;
		CHECK_FOR_INTERRUPTS();
	}
}

static void
put_row(ReturnSetInfo *rsinfo, const char *strategy, const char *template,
		int64 reads, int64 misses, double seconds, const char *reason)
{
	Datum		values[7];
	bool		nulls[7] = {false};

	values[0] = CStringGetTextDatum(strategy);
	if (template)
		values[1] = CStringGetTextDatum(template);
	else
		nulls[1] = true;
	if (reason == NULL)
	{
		values[2] = Int64GetDatum(reads);
		values[3] = Int64GetDatum(Min(misses, reads));
		values[4] = Int64GetDatum(Max(reads - misses, 0));
		values[6] = (Datum) 0;
		nulls[6] = true;
		if (reads > 0)
			values[5] = Float8GetDatum(rint(10000.0 * Max(reads - misses, 0) / reads) / 100);
		else
		{
			nulls[5] = true;
			values[6] = CStringGetTextDatum(psprintf("no read of these keys in the %.1f s sampled", seconds));
			nulls[6] = false;
		}
	}
	else
	{
		nulls[2] = nulls[3] = nulls[4] = nulls[5] = true;
		values[6] = CStringGetTextDatum(reason);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * perfopt.cache_hit_rates(sample_seconds): per watched key template and
 * strategy (then per strategy, key_template NULL), the reads, misses and
 * hits the window saw and the hit rate.
 */
Datum
perfopt_cache_hit_rates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	double		seconds = PG_GETARG_FLOAT8(0);
	char		error[1024] = "";
	TemplateCount *templates;
	int			ntemplates;
	redisContext *volatile sub = NULL;
	redisContext *volatile mon = NULL;

	if (!(seconds >= 0.1 && seconds <= HIT_SAMPLE_MAX_SECONDS))
		ereport(ERROR,
				(errcode(seconds > HIT_SAMPLE_MAX_SECONDS ? ERRCODE_PROGRAM_LIMIT_EXCEEDED :
						 ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sample_seconds must be between 0.1 and %d, not %g", HIT_SAMPLE_MAX_SECONDS, seconds),
				 errhint("Sample for a few seconds while the application reads: MONITOR slows Redis down while it runs.")));
	InitMaterializedSRF(fcinfo, 0);

	/* the templates, each with the strategy of its first watch */
	SPI_connect();
	if (SPI_execute("SELECT DISTINCT ON (key_template) key_template, strategy"
					"  FROM perfopt.cache_watches ORDER BY key_template, created_at, rel",
					true, HIT_TEMPLATES_MAX + 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read perfopt.cache_watches");
	if (SPI_processed > HIT_TEMPLATES_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("more than %d key templates are watched", HIT_TEMPLATES_MAX),
				 errhint("perfopt matches every key read against every template; unwatch the templates no longer used.")));
	ntemplates = (int) SPI_processed;
	templates = palloc0(sizeof(TemplateCount) * Max(ntemplates, 1));
	for (int i = 0; i < ntemplates; i++)
	{
		const char *p;

		templates[i].template = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		templates[i].strategy = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		for (p = templates[i].template; *p; p++)
		{
			const char *close;

			if (*p == '{' && (close = strchr(p + 1, '}')) != NULL)
				p = close;
			else
				templates[i].literal++;
		}
	}

	if (ntemplates > 0)
	{
		/* a cancel or an error must not leak the connections */
		PG_TRY();
		{
			sub = perfopt_redis_connect(error, sizeof(error));
			if (sub != NULL)
				mon = perfopt_redis_connect(error, sizeof(error));
			if (sub != NULL && mon != NULL && start_streams(sub, mon, error, sizeof(error)))
				(void) follow_streams(sub, mon,
									  GetCurrentTimestamp() + (TimestampTz) (seconds * USECS_PER_SEC),
									  templates, ntemplates, error, sizeof(error));
		}
		PG_FINALLY();
		{
			if (sub != NULL)
				redisFree(sub);
			if (mon != NULL)
				redisFree(mon);
		}
		PG_END_TRY();
	}

	/* each template's window, kept for cache_advice */
	if (error[0] == '\0')
		for (int i = 0; i < ntemplates; i++)
		{
			Oid			types[5] = {TEXTOID, TEXTOID, FLOAT8OID, INT8OID, INT8OID};
			Datum		args[5];

			args[0] = CStringGetTextDatum(templates[i].template);
			args[1] = CStringGetTextDatum(templates[i].strategy);
			args[2] = Float8GetDatum(seconds);
			args[3] = Int64GetDatum(templates[i].reads);
			args[4] = Int64GetDatum(templates[i].misses);
			if (SPI_execute_with_args("INSERT INTO perfopt.cache_hit_samples"
									  " (key_template, strategy, measured_at, sample_seconds, reads, misses)"
									  " VALUES ($1, $2, pg_catalog.now(), $3, $4, $5)"
									  " ON CONFLICT (key_template) DO UPDATE SET strategy = excluded.strategy,"
									  " measured_at = excluded.measured_at, sample_seconds = excluded.sample_seconds,"
									  " reads = excluded.reads, misses = excluded.misses",
									  5, types, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not keep the window in perfopt.cache_hit_samples");
		}

	/* per template, then per strategy */
	for (int i = 0; i < ntemplates; i++)
		put_row(rsinfo, templates[i].strategy, templates[i].template,
				templates[i].reads, templates[i].misses, seconds, error[0] ? error : NULL);
	for (int i = 0; i < ntemplates; i++)
	{
		int64		reads = 0;
		int64		misses = 0;
		bool		first = true;

		for (int j = 0; j < ntemplates && first; j++)
			if (j < i && strcmp(templates[j].strategy, templates[i].strategy) == 0)
				first = false;
		if (!first)
			continue;
		for (int j = i; j < ntemplates; j++)
			if (strcmp(templates[j].strategy, templates[i].strategy) == 0)
			{
				reads += templates[j].reads;
				misses += Min(templates[j].misses, templates[j].reads);
			}
		put_row(rsinfo, templates[i].strategy, NULL, reads, misses, seconds, error[0] ? error : NULL);
	}
	SPI_finish();
	PG_RETURN_NULL();
}
