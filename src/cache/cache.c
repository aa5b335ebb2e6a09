/*-------------------------------------------------------------------------
 *
 * cache.c
 *	  The Redis cache layer's SQL side: key templates, the trigger that
 *	  queues invalidations, pattern invalidation, warming and metrics.
 *
 * An application caches rows of its tables in Redis under keys such as
 * 'lead:{id}' or 'agent:{agent_id}:leads'.  cache_watch puts a row-level
 * trigger on the table whose arguments are those templates.  For every
 * inserted, updated or deleted row the trigger makes the keys of the old
 * and of the new row, and the transaction writes them, as one row per
 * transaction, into perfopt.cache_invalidations, the outbox (outbox.c).
 * So the queued keys commit or roll back with the change, savepoints
 * included, and being an ordinary WAL-logged table the outbox survives
 * crashes.  At commit the transaction wakes the cache worker
 * (cache_worker.c), which sends the keys to Redis and deletes them from
 * the outbox once Redis confirmed.
 *
 * A template is literal text with {column} placeholders; the column's text
 * output is put in.  A row whose placeholder column is NULL makes no key.
 * TRUNCATE queues the template as a SCAN pattern, each placeholder a '*'.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <sys/time.h>

#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"

#include "cache/cache.h"
#include "cache/cache_worker.h"
#include "cache/redis.h"
#include "common/security.h"

/* the longest key template or invalidation pattern, in bytes */
#define CACHE_KEY_TEMPLATE_MAX	1024

/* SET commands cache_warm sends before it reads their replies */
#define WARM_PIPELINE	1000

PG_FUNCTION_INFO_V1(perfopt_cache_template_columns);
PG_FUNCTION_INFO_V1(perfopt_cache_invalidate);
PG_FUNCTION_INFO_V1(perfopt_cache_warm);
PG_FUNCTION_INFO_V1(perfopt_cache_template_reads);
PG_FUNCTION_INFO_V1(perfopt_cache_rewarm);
PG_FUNCTION_INFO_V1(perfopt_cache_redis_stats);


/* The attribute number of column name in desc, or InvalidAttrNumber */
static AttrNumber
template_column(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

/* Refuse a template or pattern longer than CACHE_KEY_TEMPLATE_MAX bytes */
static void
check_key_length(const char *text, const char *what)
{
	if (strlen(text) > CACHE_KEY_TEMPLATE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is longer than %d bytes", what, CACHE_KEY_TEMPLATE_MAX),
				 errhint("Use a shorter key: Redis keys are meant to be short.")));
}

/*
 * Check a key template and return the column names of its placeholders,
 * in order.  With desc, every placeholder must be one of its columns.
 */
List *
perfopt_cache_template_parse(const char *template, TupleDesc desc)
{
	List	   *columns = NIL;
	const char *p = template;

	check_key_length(template, "key template");
	if (template[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key template must not be empty"),
				 errhint("Write the key with {column} placeholders, as in 'lead:{id}'.")));

	while (*p)
	{
		const char *close;
		char	   *name;

		if (*p == '}')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key template \"%s\" has a \"}\" without a \"{\"", template),
					 errhint("Placeholders are written {column}; braces cannot be used otherwise.")));
		if (*p != '{')
		{
			p++;
			continue;
		}
		close = strpbrk(p + 1, "{}");
		if (close == NULL || *close == '{')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key template \"%s\" has a \"{\" that is not closed", template),
					 errhint("Placeholders are written {column}; braces cannot be used otherwise.")));
		if (close == p + 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key template \"%s\" has an empty placeholder", template),
					 errhint("Name a column between the braces, as in 'lead:{id}'.")));
		name = pnstrdup(p + 1, close - p - 1);
		if (desc != NULL && template_column(desc, name) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of key template \"%s\" does not exist", name, template),
					 errhint("Placeholders name columns exactly as they are spelt, case included.")));
		columns = lappend(columns, name);
		p = close + 1;
	}
	return columns;
}

/*
 * The key a template makes from a row, or NULL when a placeholder's column
 * is NULL in it.  The template was checked when the watch was made; a
 * column dropped since then is reported.
 */
char *
perfopt_cache_render_key(const char *template, HeapTuple tuple, TupleDesc desc)
{
	StringInfoData key;
	const char *p = template;

	initStringInfo(&key);
	while (*p)
	{
		const char *close;
		char	   *name;
		AttrNumber	attnum;
		char	   *value;

		if (*p != '{' || (close = strchr(p + 1, '}')) == NULL)
		{
			appendStringInfoChar(&key, *p++);
			continue;
		}
		name = pnstrdup(p + 1, close - p - 1);
		attnum = template_column(desc, name);
		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of key template \"%s\" does not exist", name, template),
					 errhint("Run perfopt.cache_unwatch and perfopt.cache_watch again with the new columns.")));
		value = SPI_getvalue(tuple, desc, attnum);
		if (value == NULL)
			return NULL;
		appendStringInfoString(&key, value);
		pfree(value);
		pfree(name);
		p = close + 1;
	}
	return key.data;
}

/*
 * A template compiled against a table's descriptor, for the row trigger:
 * its literal pieces and, between them, the placeholders' columns with
 * their output functions, looked up once instead of at every key
 * (perfopt_cache_render_key looks up the column by name and the type's
 * output function for each key it makes).
 */
typedef struct TemplatePiece
{
	char	   *literal;		/* text before the placeholder */
	int			literal_len;
	char	   *column;			/* the placeholder's name; NULL after the last */
	AttrNumber	attnum;			/* InvalidAttrNumber: the column was dropped */
	bool		varlena;
	char		fast;			/* FAST_*: the output function done inline */
	FmgrInfo	output;
} TemplatePiece;

/*
 * Output functions written inline by the renderer, with the same text as
 * the function's (int2out, int4out, int8out: pg_itoa, pg_ltoa, pg_lltoa;
 * textout, varcharout: the characters): a function call, a palloc and a
 * copy less per key.  Chosen by the output function found, so a domain
 * over one of these types takes it too.
 */
#define FAST_NONE	0
#define FAST_INT2	1
#define FAST_INT4	2
#define FAST_INT8	3
#define FAST_TEXT	4

struct CompiledTemplate
{
	char	   *template;
	int			npieces;
	TemplatePiece *pieces;
};

/* Compile template against desc, in the current memory context */
CompiledTemplate *
perfopt_cache_template_compile(const char *template, TupleDesc desc)
{
	CompiledTemplate *ct = palloc0(sizeof(CompiledTemplate));
	List	   *pieces = NIL;
	const char *p = template;
	StringInfoData literal;
	ListCell   *lc;

	ct->template = pstrdup(template);
	initStringInfo(&literal);
	for (;;)
	{
		const char *close = NULL;
		TemplatePiece *piece;

		if (*p != '\0' && (*p != '{' || (close = strchr(p + 1, '}')) == NULL))
		{
			appendStringInfoChar(&literal, *p++);
			continue;
		}
		piece = palloc0(sizeof(TemplatePiece));
		piece->literal = pstrdup(literal.data);
		piece->literal_len = literal.len;
		resetStringInfo(&literal);
		pieces = lappend(pieces, piece);
		if (*p == '\0')
			break;
		piece->column = pnstrdup(p + 1, close - p - 1);
		piece->attnum = template_column(desc, piece->column);
		if (piece->attnum != InvalidAttrNumber)
		{
			Oid			output;

			getTypeOutputInfo(TupleDescAttr(desc, piece->attnum - 1)->atttypid,
							  &output, &piece->varlena);
			fmgr_info(output, &piece->output);
			piece->fast = output == F_INT2OUT ? FAST_INT2 :
				output == F_INT4OUT ? FAST_INT4 :
				output == F_INT8OUT ? FAST_INT8 :
				(output == F_TEXTOUT || output == F_VARCHAROUT) ? FAST_TEXT : FAST_NONE;
		}
		p = close + 1;
	}
	ct->npieces = list_length(pieces);
	ct->pieces = palloc(sizeof(TemplatePiece) * ct->npieces);
	foreach(lc, pieces)
		ct->pieces[foreach_current_index(lc)] = *(TemplatePiece *) lfirst(lc);
	return ct;
}

/*
 * The key a compiled template makes from a row, as perfopt_cache_render_key
 * makes it, into key (reset first): false when a placeholder's column is
 * NULL in the row, an error for a column dropped since the watch was made.
 * The row trigger renders every key into the same buffer and copies the
 * result once, into the transaction's pending keys.
 */
bool
perfopt_cache_render_compiled(const CompiledTemplate *ct, HeapTuple tuple, TupleDesc desc,
							  StringInfo key)
{
	resetStringInfo(key);
	for (int i = 0; i < ct->npieces; i++)
	{
		const TemplatePiece *piece = &ct->pieces[i];
		Datum		value;
		bool		isnull;

		appendBinaryStringInfo(key, piece->literal, piece->literal_len);
		if (piece->column == NULL)
			break;
		if (piece->attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of key template \"%s\" does not exist",
							piece->column, ct->template),
					 errhint("Run perfopt.cache_unwatch and perfopt.cache_watch again with the new columns.")));
		value = heap_getattr(tuple, piece->attnum, desc, &isnull);
		if (isnull)
			return false;
		switch (piece->fast)
		{
			case FAST_INT2:
				enlargeStringInfo(key, 7);
				key->len += pg_itoa(DatumGetInt16(value), key->data + key->len);
				break;
			case FAST_INT4:
				enlargeStringInfo(key, 12);
				key->len += pg_ltoa(DatumGetInt32(value), key->data + key->len);
				break;
			case FAST_INT8:
				enlargeStringInfo(key, MAXINT8LEN + 1);
				key->len += pg_lltoa(DatumGetInt64(value), key->data + key->len);
				break;
			case FAST_TEXT:
				{
					text	   *t = DatumGetTextPP(value);

					appendBinaryStringInfo(key, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
					if ((Pointer) t != DatumGetPointer(value))
						pfree(t);
					break;
				}
			default:
				{
					char	   *text;

					if (piece->varlena)
						value = PointerGetDatum(PG_DETOAST_DATUM(value));
					/* (FmgrInfo is not changed by a call: the const is safe to cast away) */
					text = OutputFunctionCall((FmgrInfo *) &piece->output, value);
					appendStringInfoString(key, text);
					pfree(text);
					break;
				}
		}
		key->data[key->len] = '\0';
	}
	return true;
}

/* The SCAN pattern of a template: placeholders become '*', globs escaped */
char *
perfopt_cache_template_pattern(const char *template)
{
	StringInfoData pattern;
	const char *p = template;

	initStringInfo(&pattern);
	while (*p)
	{
		const char *close;

		if (*p == '{' && (close = strchr(p + 1, '}')) != NULL)
		{
			appendStringInfoChar(&pattern, '*');
			p = close + 1;
			continue;
		}
		if (strchr("*?[]\\", *p))
			appendStringInfoChar(&pattern, '\\');
		appendStringInfoChar(&pattern, *p++);
	}
	return pattern.data;
}

/*
 * cache_template_columns(rel, template): check a template against rel, or
 * alone when rel is NULL; NULL for a NULL template
 */
Datum
perfopt_cache_template_columns(PG_FUNCTION_ARGS)
{
	char	   *template;
	TupleDesc	desc = NULL;
	Relation	rel = NULL;
	List	   *columns;
	Datum	   *elems;
	ListCell   *lc;
	int			n = 0;

	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	template = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(0))
	{
		rel = try_relation_open(PG_GETARG_OID(0), AccessShareLock);
		if (rel == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", PG_GETARG_OID(0)),
					 errhint("Pass a table that exists.")));
		desc = RelationGetDescr(rel);
	}
	columns = perfopt_cache_template_parse(template, desc);
	if (rel != NULL)
		relation_close(rel, AccessShareLock);

	elems = palloc(sizeof(Datum) * (list_length(columns) + 1));
	foreach(lc, columns)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* cache_invalidate(pattern): queue a pattern invalidation; returns its id */
Datum
perfopt_cache_invalidate(PG_FUNCTION_ARGS)
{
	char	   *pattern = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		id;

	check_key_length(pattern, "pattern");
	if (pattern[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pattern must not be empty"),
				 errhint("Give a Redis glob pattern such as 'lead:*'.")));

	id = perfopt_cache_queue_now(list_make1(pattern), true);
	PG_RETURN_INT64(id);
}

static int64 info_field(const char *info, const char *name);

/* The text after "name:" in an INFO reply, up to the line's end, or "" */
static void
info_string(const char *info, const char *name, char *out, size_t outlen)
{
	const char *p = info;
	size_t		len = strlen(name);

	out[0] = '\0';
	while ((p = strstr(p, name)) != NULL)
	{
		if ((p == info || p[-1] == '\n') && p[len] == ':')
		{
			size_t		n = strcspn(p + len + 1, "\r\n");

			strlcpy(out, p + len + 1, Min(n + 1, outlen));
			return;
		}
		p += len;
	}
}

/*
 * Tell shared memory about keyspace lookups perfopt just made on c (hits
 * and misses), with Redis's run_id and its counters right after them
 * (cache_worker.c: perfopt_cache_add_own_lookups)
 */
static void
count_own_lookups(redisContext *c, uint64 hits, uint64 misses)
{
	redisReply *info;

	if (hits + misses == 0)
		return;
	info = perfopt_redis_command(c, "INFO");
	if (info != NULL && info->type == REDIS_REPLY_STRING)
	{
		char		run_id[CACHE_RUN_ID_LEN];
		int64		redis_hits = info_field(info->str, "keyspace_hits");
		int64		redis_misses = info_field(info->str, "keyspace_misses");

		info_string(info->str, "run_id", run_id, sizeof(run_id));
		if (run_id[0] != '\0' && redis_hits >= 0 && redis_misses >= 0)
			perfopt_cache_add_own_lookups(run_id, redis_hits + redis_misses, hits, misses);
	}
	if (info)
		freeReplyObject(info);
}

/* Read the replies of n pipelined commands; an ERROR for the first failure */
static void
redis_read_replies(redisContext *c, int n, const char *what)
{
	for (int i = 0; i < n; i++)
	{
		redisReply *reply = NULL;

		if (perfopt_redis_get_reply(c, &reply) != REDIS_OK || reply == NULL)
			perfopt_redis_reply_failed(what, c->errstr);
		if (reply->type == REDIS_REPLY_ERROR)
		{
			char	   *message = pstrdup(reply->str);

			freeReplyObject(reply);
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("Redis at %s refused %s: %s", perfopt_redis_address(), what, message)));
		}
		freeReplyObject(reply);
	}
}

/* A SET key value EX ttl, appended to the pipeline */
static void
append_set(redisContext *c, const char *key, text *json, const char *ttl)
{
	const char *argv[5] = {"SET", key, VARDATA_ANY(json), "EX", ttl};
	size_t		argvlen[5] = {3, strlen(key), VARSIZE_ANY_EXHDR(json), 2, strlen(ttl)};

	redisAppendCommandArgv(c, 5, argv, argvlen);
}

/*
 * Run query and set the keys template makes of its rows, the row as JSON,
 * expiring after ttl seconds.  With min_freq >= 0, only the keys that
 * exist, were read enough (OBJECT FREQ, Redis's LFU counter) and have less
 * than refresh_pct of ttl left are set.  Returns the keys set.  SPI is
 * connected; the query's rows stay in SPI_tuptable.
 */
static int64
warm_query(redisContext *c, const char *template, const char *query, int64 ttl,
		   int min_freq, int refresh_pct)
{
	SPIPlanPtr	plan;
	TupleDesc	desc;
	SPITupleTable *rows;
	uint64		nrows;
	char	  **keys;
	bool	   *wanted;
	char		ttlstr[32];
	int64		set = 0;
	int			pending = 0;

	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (!SPI_is_cursor_plan(plan) ||
		SPI_execute_plan(plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cache_warm needs a query that returns rows"),
				 errhint("Give a SELECT whose columns include those of the key template.")));
	rows = SPI_tuptable;
	nrows = SPI_processed;
	desc = BlessTupleDesc(rows->tupdesc);
	(void) perfopt_cache_template_parse(template, desc);
	snprintf(ttlstr, sizeof(ttlstr), INT64_FORMAT, ttl);

	keys = palloc0(sizeof(char *) * (nrows + 1));
	wanted = palloc0(sizeof(bool) * (nrows + 1));
	for (uint64 i = 0; i < nrows; i++)
	{
		keys[i] = perfopt_cache_render_key(template, rows->vals[i], desc);
		wanted[i] = (keys[i] != NULL);
	}

	/*
	 * Which keys are read most and about to expire.  Redis counts each
	 * OBJECT FREQ and TTL as a keyspace hit (the key exists) or miss, as it
	 * counts the application's reads: they are counted here too, so that
	 * cache_redis_stats can leave them out.
	 */
	if (min_freq >= 0)
	{
		uint64		own_hits = 0;
		uint64		own_misses = 0;

		for (uint64 first = 0; first < nrows; first += WARM_PIPELINE)
		{
			uint64		last = Min(first + WARM_PIPELINE, nrows);
			char	   *refused = NULL;

			for (uint64 i = first; i < last; i++)
			{
				if (!wanted[i])
					continue;
				redisAppendCommand(c, "OBJECT FREQ %s", keys[i]);
				redisAppendCommand(c, "TTL %s", keys[i]);
			}
			for (uint64 i = first; i < last; i++)
			{
				redisReply *freq = NULL;
				redisReply *left = NULL;

				if (!wanted[i])
					continue;
				if (perfopt_redis_get_reply(c, &freq) != REDIS_OK)
					perfopt_redis_reply_failed("OBJECT FREQ", c->errstr);
				if (perfopt_redis_get_reply(c, &left) != REDIS_OK)
				{
					freeReplyObject(freq);
					perfopt_redis_reply_failed("TTL", c->errstr);
				}
				/* a missing key: nil to OBJECT FREQ, -2 to TTL */
				if (freq->type == REDIS_REPLY_NIL)
					own_misses++;
				else
					own_hits++;
				if (left->type == REDIS_REPLY_INTEGER && left->integer == -2)
					own_misses++;
				else
					own_hits++;
				if (freq->type == REDIS_REPLY_ERROR && refused == NULL)
					refused = pstrdup(freq->str);
				/* a missing key (nil) has expired already: the application reloads it */
				wanted[i] = freq->type == REDIS_REPLY_INTEGER && freq->integer >= min_freq &&
					left->type == REDIS_REPLY_INTEGER && left->integer >= 0 &&
					left->integer * 100 < (long long) refresh_pct * ttl;
				freeReplyObject(freq);
				freeReplyObject(left);
			}
			if (refused != NULL)
			{
				count_own_lookups(c, own_hits, own_misses);
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("Redis at %s refused OBJECT FREQ: %s", perfopt_redis_address(), refused),
						 errhint("Re-warming needs an LFU policy in Redis: maxmemory-policy allkeys-lfu or volatile-lfu.")));
			}
			CHECK_FOR_INTERRUPTS();
		}
		count_own_lookups(c, own_hits, own_misses);
	}

	for (uint64 i = 0; i < nrows; i++)
	{
		if (!wanted[i])
			continue;
		append_set(c, keys[i],
				   DatumGetTextPP(DirectFunctionCall1(row_to_json,
													  heap_copy_tuple_as_datum(rows->vals[i], desc))),
				   ttlstr);
		set++;
		if (++pending == WARM_PIPELINE)
		{
			redis_read_replies(c, pending, "SET");
			pending = 0;
			CHECK_FOR_INTERRUPTS();
		}
	}
	redis_read_replies(c, pending, "SET");
	return set;
}

/*
 * The Redis TTL of a strategy for a key template in seconds (redis_ttl, or
 * the adaptive one: perfopt.cache_strategy_ttl); an ERROR if there is none
 */
static int64
strategy_ttl(Datum strategy, Datum template)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {strategy, template};
	bool		isnull;

	if (SPI_execute_with_args("SELECT pg_catalog.ceil(pg_catalog.date_part('epoch',"
							  "         perfopt.cache_strategy_ttl(name, $2)))::pg_catalog.int8"
							  "  FROM perfopt.cache_strategies WHERE name OPERATOR(pg_catalog.=) $1",
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read perfopt.cache_strategies");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("cache strategy \"%s\" does not exist", TextDatumGetCString(strategy)),
				 errhint("Use one of perfopt.cache_strategies, or insert a new one there.")));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * cache_warm(strategy, key_template, query, keep_warm): SET one key per row
 * of the query, the row as JSON, with the strategy's Redis TTL; returns the
 * keys set.  Rows whose key would have a NULL placeholder are skipped.
 * keep_warm registers the query in perfopt.cache_warmers for cache_rewarm.
 */
Datum
perfopt_cache_warm(PG_FUNCTION_ARGS)
{
	char	   *template = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool		keep_warm = PG_GETARG_BOOL(3);
	volatile redisContext *vc = NULL;
	int64		ttl;
	int64		set = 0;

	if (keep_warm && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser can keep a query warm"),
				 errhint("The query is run again by the perfopt launcher, as a superuser.")));

	SPI_connect();
	ttl = strategy_ttl(PG_GETARG_DATUM(0), PG_GETARG_DATUM(1));

	/* check the query and the template before talking to Redis */
	{
		SPIPlanPtr	plan = SPI_prepare(query, 0, NULL);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (!SPI_is_cursor_plan(plan))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cache_warm needs a query that returns rows"),
					 errhint("Give a SELECT whose columns include those of the key template.")));
		(void) perfopt_cache_template_parse(template,
											((CachedPlanSource *) linitial(SPI_plan_get_plan_sources(plan)))->resultDesc);
	}

	PG_TRY();
	{
		redisContext *c = perfopt_redis_connect_or_error();

		vc = c;
		set = warm_query(c, template, query, ttl, -1, 100);
	}
	PG_FINALLY();
	{
		if (vc != NULL)
			redisFree((redisContext *) vc);
	}
	PG_END_TRY();

	if (keep_warm)
	{
		Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, REGROLEOID};
		Datum		values[4] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_GETARG_DATUM(2),
								 ObjectIdGetDatum(GetUserId())};

		if (SPI_execute_with_args("INSERT INTO perfopt.cache_warmers (strategy, key_template, query, last_run, owner)"
								  " VALUES ($1, $2, $3, pg_catalog.now(), $4)"
								  " ON CONFLICT (key_template, query)"
								  " DO UPDATE SET strategy = EXCLUDED.strategy, enabled = true, owner = EXCLUDED.owner",
								  4, types, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not register the warmer");
	}

	SPI_finish();
	PG_RETURN_INT64(set);
}

/*
 * warm_query as the warmer's owner: its query is that role's text, so it is
 * planned and run as that role, restricted, with its default search_path.
 */
static int64
warm_query_as(Oid owner, redisContext *c, const char *template, const char *query,
			  int64 ttl, int min_freq, int refresh_pct)
{
	PerfoptRoleSwitch sw;
	int64		set;

	perfopt_begin_as_role(owner, &sw);
	PG_TRY();
	{
		set = warm_query(c, template, query, ttl, min_freq, refresh_pct);
	}
	PG_CATCH();
	{
		perfopt_end_as_role(&sw);
		PG_RE_THROW();
	}
	PG_END_TRY();
	perfopt_end_as_role(&sw);
	return set;
}

/*
 * cache_rewarm(): for each enabled warmer, highest strategy priority
 * first, set again the keys Redis counts as read most before they expire.
 * Run by the launcher's cache_rewarm job; returns the keys set.  Each
 * query runs as the role that registered it, which must still be a
 * superuser (only superusers may keep a query warm); one that is not any
 * more is skipped with a warning.
 */
Datum
perfopt_cache_rewarm(PG_FUNCTION_ARGS)
{
	volatile redisContext *vc = NULL;
	SPITupleTable *warmers;
	uint64		nwarmers;
	int64		total = 0;

	SPI_connect();
	if (SPI_execute("SELECT w.id, w.key_template, w.query,"
					"       pg_catalog.ceil(pg_catalog.date_part('epoch',"
					"           perfopt.cache_strategy_ttl(s.name, w.key_template)))::pg_catalog.int8,"
					"       w.min_freq, w.refresh_pct, w.owner::pg_catalog.oid"
					"  FROM perfopt.cache_warmers w JOIN perfopt.cache_strategies s"
					"    ON s.name OPERATOR(pg_catalog.=) w.strategy"
					" WHERE w.enabled ORDER BY s.priority DESC, w.id", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read perfopt.cache_warmers");
	warmers = SPI_tuptable;
	nwarmers = SPI_processed;
	if (nwarmers == 0)
	{
		SPI_finish();
		PG_RETURN_INT64(0);
	}

	PG_TRY();
	{
		redisContext *c = perfopt_redis_connect_or_error();

		vc = c;
		for (uint64 i = 0; i < nwarmers; i++)
		{
			HeapTuple	tuple = warmers->vals[i];
			TupleDesc	desc = warmers->tupdesc;
			bool		isnull;
			int32		id = DatumGetInt32(SPI_getbinval(tuple, desc, 1, &isnull));
			Oid			owner = DatumGetObjectId(SPI_getbinval(tuple, desc, 7, &isnull));
			int64		set;
			Oid			types[2] = {INT4OID, INT8OID};
			Datum		values[2];

			if (!superuser_arg(owner))
			{
				ereport(WARNING,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("cache warmer %d is skipped: its owner is no longer a superuser", id),
						 errhint("Register the query again as a superuser, or delete the warmer.")));
				continue;
			}
			set = warm_query_as(owner, c, SPI_getvalue(tuple, desc, 2), SPI_getvalue(tuple, desc, 3),
								DatumGetInt64(SPI_getbinval(tuple, desc, 4, &isnull)),
								DatumGetInt32(SPI_getbinval(tuple, desc, 5, &isnull)),
								DatumGetInt32(SPI_getbinval(tuple, desc, 6, &isnull)));
			values[0] = Int32GetDatum(id);
			values[1] = Int64GetDatum(set);
			SPI_execute_with_args("UPDATE perfopt.cache_warmers SET last_run = pg_catalog.now(), last_rewarmed = $2"
								  " WHERE id OPERATOR(pg_catalog.=) $1", 2, types, values, NULL, false, 0);
			total += set;
		}
	}
	PG_FINALLY();
	{
		if (vc != NULL)
			redisFree((redisContext *) vc);
	}
	PG_END_TRY();

	SPI_finish();
	PG_RETURN_INT64(total);
}

/* The integer after "name:" in an INFO reply, or -1 */
static int64
info_field(const char *info, const char *name)
{
	const char *p = info;
	size_t		len = strlen(name);

	while ((p = strstr(p, name)) != NULL)
	{
		if ((p == info || p[-1] == '\n') && p[len] == ':')
			return strtoll(p + len + 1, NULL, 10);
		p += len;
	}
	return -1;
}

/*
 * cache_redis_stats(): what Redis says of itself (INFO, DBSIZE), with
 * perfopt's own lookups (cache_rewarm's) left out of the hits and misses
 * and reported apart; when Redis cannot be reached, connected is false and
 * error says why.
 */
Datum
perfopt_cache_redis_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[8];
	bool		nulls[8] = {false, true, true, true, true, true, true, true};
	char		error[512];
	redisContext *c;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	c = perfopt_redis_connect(error, sizeof(error));
	values[0] = BoolGetDatum(c != NULL);
	if (c != NULL)
	{
		redisReply *info = perfopt_redis_command(c, "INFO");
		redisReply *dbsize = info ? perfopt_redis_command(c, "DBSIZE") : NULL;

		if (info != NULL && info->type == REDIS_REPLY_STRING &&
			dbsize != NULL && dbsize->type == REDIS_REPLY_INTEGER)
		{
			int64		hits = info_field(info->str, "keyspace_hits");
			int64		misses = info_field(info->str, "keyspace_misses");
			int64		memory = info_field(info->str, "used_memory");
			char		run_id[CACHE_RUN_ID_LEN];
			uint64		own_hits = 0;
			uint64		own_misses = 0;

			info_string(info->str, "run_id", run_id, sizeof(run_id));
			if (hits >= 0 && misses >= 0)
				(void) perfopt_cache_get_own_lookups(run_id, hits + misses, &own_hits, &own_misses);
			values[1] = Int64GetDatum(Max(0, hits - (int64) own_hits));
			values[2] = Int64GetDatum(Max(0, misses - (int64) own_misses));
			values[3] = Int64GetDatum(dbsize->integer);
			values[4] = Int64GetDatum(memory);
			values[6] = Int64GetDatum((int64) own_hits);
			values[7] = Int64GetDatum((int64) own_misses);
			nulls[1] = hits < 0;
			nulls[2] = misses < 0;
			nulls[3] = false;
			nulls[4] = memory < 0;
			nulls[6] = hits < 0;
			nulls[7] = misses < 0;
		}
		else
		{
			snprintf(error, sizeof(error), "Redis at %s did not answer INFO and DBSIZE: %s",
					 perfopt_redis_address(),
					 (info && info->type == REDIS_REPLY_ERROR) ? info->str :
					 (dbsize && dbsize->type == REDIS_REPLY_ERROR) ? dbsize->str : c->errstr);
			values[0] = BoolGetDatum(false);
			values[5] = CStringGetTextDatum(error);
			nulls[5] = false;
		}
		if (info)
			freeReplyObject(info);
		if (dbsize)
			freeReplyObject(dbsize);
		redisFree(c);
	}
	else
	{
		values[5] = CStringGetTextDatum(error);
		nulls[5] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* A setting of Redis (CONFIG GET name) into out; false when it has none */
static bool
redis_config(redisContext *c, const char *name, char *out, size_t outlen)
{
	redisReply *r = perfopt_redis_command(c, "CONFIG GET %s", name);
	bool		found = false;

	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		r->element[1]->type == REDIS_REPLY_STRING)
	{
		strlcpy(out, r->element[1]->str, outlen);
		found = true;
	}
	if (r)
		freeReplyObject(r);
	return found;
}

#define TEMPLATE_SAMPLE_MAX		1000
#define TEMPLATE_SCAN_ROUNDS	10

/*
 * cache_template_reads(sample): for each watched key template, up to sample
 * of its keys found by SCAN (at most ten SCAN ... COUNT 1000 calls) and
 * their mean LFU counter (OBJECT FREQ), with the reads that counter means
 * on average (Redis raises it from 5 with probability 1 / ((c - 5) *
 * lfu-log-factor + 1)).  No key nor value leaves this function: only counts
 * per template.  NULLs and a reason when Redis cannot say (no LFU policy,
 * Redis unreachable).
 */
Datum
perfopt_cache_template_reads(PG_FUNCTION_ARGS)
{
	int32		sample = PG_GETARG_INT32(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char		error[512];
	char		policy[64] = "";
	char		factor_str[32] = "10";
	double		factor;
	redisContext *volatile c = NULL;
	uint64		ntemplates;
	SPITupleTable *templates;
	uint64		own_hits = 0;
	uint64		own_misses = 0;

	if (sample < 1 || sample > TEMPLATE_SAMPLE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sample must be between 1 and %d", TEMPLATE_SAMPLE_MAX),
				 errhint("Sample fewer keys per template.")));
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	if (SPI_execute("SELECT DISTINCT key_template FROM perfopt.cache_watches ORDER BY 1",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read perfopt.cache_watches");
	templates = SPI_tuptable;
	ntemplates = SPI_processed;

	error[0] = '\0';
	if (ntemplates > 0)
	{
		c = perfopt_redis_connect(error, sizeof(error));
		if (c != NULL && !redis_config(c, "maxmemory-policy", policy, sizeof(policy)))
			snprintf(error, sizeof(error), "Redis at %s did not answer CONFIG GET maxmemory-policy",
					 perfopt_redis_address());
		else if (c != NULL && strstr(policy, "lfu") == NULL)
			snprintf(error, sizeof(error),
					 "Redis's maxmemory-policy is %s: it counts reads per key (OBJECT FREQ) only under allkeys-lfu or volatile-lfu",
					 policy);
		if (c != NULL)
			(void) redis_config(c, "lfu-log-factor", factor_str, sizeof(factor_str));
	}
	factor = strtod(factor_str, NULL);

	/* a cancel or an error in the loop must not leak the connection */
	PG_TRY();
	{
		for (uint64 t = 0; t < ntemplates; t++)
		{
			char	   *template = SPI_getvalue(templates->vals[t], templates->tupdesc, 1);
			Datum		values[5];
			bool		nulls[5] = {false, true, true, true, true};
			char		reason[600];

			values[0] = CStringGetTextDatum(template);
			reason[0] = '\0';
			if (error[0] == '\0' && c != NULL)
			{
				char	   *pattern = perfopt_cache_template_pattern(template);
				char		cursor[32] = "0";
				int			sampled = 0;
				double		freq_sum = 0;
				double		reads_sum = 0;

				for (int round = 0; round < TEMPLATE_SCAN_ROUNDS && sampled < sample; round++)
				{
					redisReply *r = perfopt_redis_command(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);

					if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
					{
						snprintf(reason, sizeof(reason), "Redis at %s did not answer SCAN: %s",
								 perfopt_redis_address(),
								 (r && r->type == REDIS_REPLY_ERROR) ? r->str : c->errstr);
						if (r)
							freeReplyObject(r);
						break;
					}
					strlcpy(cursor, r->element[0]->str, sizeof(cursor));
					for (size_t k = 0; k < r->element[1]->elements && sampled < sample; k++)
					{
						redisReply *f = perfopt_redis_command(c, "OBJECT FREQ %s",
															  r->element[1]->element[k]->str);

						if (f != NULL && f->type == REDIS_REPLY_INTEGER)
						{
							double		above = Max(0, f->integer - 5);

							own_hits++;
							sampled++;
							freq_sum += f->integer;
							reads_sum += above + factor * above * (above - 1) / 2;
						}
						else
							own_misses++;	/* gone since SCAN */
						if (f)
							freeReplyObject(f);
					}
					freeReplyObject(r);
					if (strcmp(cursor, "0") == 0)
						break;
					CHECK_FOR_INTERRUPTS();
				}
				if (reason[0] == '\0')
				{
					values[1] = Int32GetDatum(sampled);
					nulls[1] = false;
					if (sampled > 0)
					{
						values[2] = Float8GetDatum(freq_sum / sampled);
						values[3] = Float8GetDatum(reads_sum / sampled);
						nulls[2] = nulls[3] = false;
					}
					else
						strlcpy(reason, "no key of this template is in Redis", sizeof(reason));
				}
			}
			else
				strlcpy(reason, error, sizeof(reason));
			if (reason[0] != '\0')
			{
				values[4] = CStringGetTextDatum(reason);
				nulls[4] = false;
			}
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_CATCH();
	{
		if (c != NULL)
			redisFree(c);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (c != NULL)
	{
		count_own_lookups(c, own_hits, own_misses);
		redisFree(c);
	}
	SPI_finish();
	PG_RETURN_NULL();
}
