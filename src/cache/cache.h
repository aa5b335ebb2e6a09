/*-------------------------------------------------------------------------
 *
 * cache.h
 *	  The Redis cache layer's SQL side: key templates, and the outbox
 *	  its triggers write (outbox.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_CACHE_H
#define PERFOPT_CACHE_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"

extern List *perfopt_cache_template_parse(const char *template, TupleDesc desc);
extern char *perfopt_cache_render_key(const char *template, HeapTuple tuple,
									  TupleDesc desc);
extern char *perfopt_cache_template_pattern(const char *template);

typedef struct CompiledTemplate CompiledTemplate;
extern CompiledTemplate *perfopt_cache_template_compile(const char *template, TupleDesc desc);
extern bool perfopt_cache_render_compiled(const CompiledTemplate *ct, HeapTuple tuple,
										  TupleDesc desc, StringInfo key);

/* outbox.c */
extern int64 perfopt_cache_queue_now(List *items, bool pattern);

#endif							/* PERFOPT_CACHE_H */
