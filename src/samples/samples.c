/*-------------------------------------------------------------------------
 *
 * samples.c
 *	  Real parameter sets of statements, sampled in the executor hooks and
 *	  at parse analysis, kept in shared memory for the index advisor.
 *
 * What is sampled.  A statement of pg_stat_statements is known by (userid,
 * dbid, queryid); its normalized text has $1 .. $n.  A sample is the text
 * of those n values for one execution:
 *
 * - extended protocol (and EXECUTE, SPI with arguments, SQL functions): the
 *   bound parameters, turned into text by their type's output function,
 *   taken in ExecutorStart (perfopt_samples_executor_start, called from
 *   perfopt's hook in metrics/latency.c).  Parameters fetched through a
 *   hook (PL/pgSQL variables) are not known as a list and are skipped.
 * - simple protocol: the constants of the executed text that
 *   pg_stat_statements' jumbling replaces by $n, taken in
 *   post_parse_analyze_hook from the JumbleState, numbered as
 *   generate_normalized_query numbers them (after highest_extern_param_id,
 *   in the order of their locations, a location seen twice counted once).
 *   Each constant's text is found with the core scanner, as
 *   fill_in_constant_lengths does; a string literal is kept as the string
 *   it stands for (no quotes, escapes resolved), a negative number with its
 *   sign, NULL as an SQL NULL.
 * - a text with both $n of its own and constants: the bound values $1 ..
 *   $k, then the constants as $k+1 .., their places remembered at parse
 *   analysis (mixed_texts) and their values read from the very same text
 *   when an execution of it is sampled.
 *
 * How often.  Each backend counts down the statements that could be
 * sampled and samples one in perfopt.param_sample_every on average (the
 * gap drawn from a geometric law, so that a periodic workload is not
 * aliased).  The countdown is the only cost of an execution that is not
 * sampled; the output functions, the scanner and the lock run only for the
 * sampled ones.
 *
 * What is kept.  One entry per statement in a shared hash table sized by
 * perfopt.param_samples_memory, each a reservoir (Vitter's algorithm R) of
 * SAMPLES_PER_STATEMENT sets drawn uniformly from the sampled executions.
 * A set is kept only if it has at most SAMPLE_MAX_PARAMS values that take
 * at most SAMPLE_SET_BYTES in text together; a bigger one is skipped
 * whole (a truncated value would mislead the advisor) and counted.  When
 * the table is full, the 5% of entries whose statements cost the least
 * total time (perfopt's latency histograms, then the sampled count) make
 * room.  Nothing goes to disk: a restart forgets every sample.
 *
 * Who sees them.  The values are row data, as private as the statement's
 * text in pg_stat_statements: statement_samples() shows a statement's sets
 * only to its user and to members of pg_read_all_stats.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "access/parallel.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "parser/scanner.h"
#include "parser/gram.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/queryjumble.h"
#include "utils/timestamp.h"

#include "metrics/latency.h"
#include "samples/samples.h"

/* Sets kept per statement */
#define SAMPLES_PER_STATEMENT 8

/* Bytes the values of one set may take in text, lengths included */
#define SAMPLE_SET_BYTES 1024

/* Values a set may have */
#define SAMPLE_MAX_PARAMS 100

/* Length marking an SQL NULL */
#define SAMPLE_NULL 0xFFFF

/* Percentage of entries evicted when the table is full */
#define SAMPLES_EVICT_PERCENT 5

bool		perfopt_param_sampling = true;
int			perfopt_param_sample_every = 100;
int			perfopt_param_samples_memory = 8192;	/* kB */

typedef struct SampleKey
{
	Oid			userid;
	Oid			dbid;
	uint64		queryid;
} SampleKey;

/* One set: per value a uint16 length (SAMPLE_NULL for NULL), then its bytes */
typedef struct SampleSet
{
	TimestampTz sampled_at;
	uint16		nparams;
	uint16		used;
	char		data[SAMPLE_SET_BYTES];
} SampleSet;

typedef struct SampleEntry
{
	SampleKey	key;			/* hash key: must be first */
	uint64		sampled;		/* executions sampled: the reservoir's n */
	int			nsets;
	SampleSet	sets[SAMPLES_PER_STATEMENT];
} SampleEntry;

typedef struct SamplesShared
{
	LWLock	   *lock;			/* shared to read, exclusive to write */
	int			capacity;		/* entries the memory holds */
	uint64		evicted;
	pg_atomic_uint64 skipped;	/* sets too big to keep */
	TimestampTz reset_at;
} SamplesShared;

static SamplesShared *samples_shared = NULL;
static HTAB *samples_hash = NULL;

static post_parse_analyze_hook_type prev_post_parse_analyze = NULL;

/* Statements left until this backend's next sample; 0: not drawn yet */
static int	sample_countdown = 0;

/* Set while a sample is taken: an output function may run statements */
static bool in_sampling = false;

PG_FUNCTION_INFO_V1(perfopt_statement_samples);
PG_FUNCTION_INFO_V1(perfopt_statement_samples_info);
PG_FUNCTION_INFO_V1(perfopt_statement_samples_reset);

static void samples_post_parse_analyze(ParseState *pstate, Query *query,
									   JumbleState *jstate);
static List *constant_values(const char *sourcetext, int stmt_location,
							 const LocationLen *clocations, int clocations_count);

/*
 * Texts that have both $n of their own and constants, as parse analysis
 * last saw them in this backend: the constants' places, so that a sampled
 * execution of the same text (checked whole) can add their values after
 * the bound ones.  Parsed once per prepared statement, or once per
 * execution under pgbench -M extended: then the cost is one comparison of
 * the text with the one kept.
 */
#define MIXED_TEXTS 16
#define MIXED_TEXT_MAX 8192

typedef struct MixedText
{
	uint64		queryid;		/* 0: empty */
	char	   *text;			/* the whole source text */
	int			stmt_location;
	int			highest_extern_param_id;
	int			nlocations;
	LocationLen *locations;
} MixedText;

static MixedText mixed_texts[MIXED_TEXTS];
static int	mixed_next = 0;

/* Entries that perfopt.param_samples_memory holds */
static int
samples_capacity(void)
{
	Size		bytes = (Size) perfopt_param_samples_memory * 1024;
	Size		per_entry = MAXALIGN(sizeof(SampleEntry)) + 64;	/* hash overhead */

	return Max(1, (int) (bytes / per_entry));
}

/* Ask for the samples' shared memory and lock; from perfopt.c's hook */
void
perfopt_samples_shmem_request(void)
{
	RequestAddinShmemSpace(add_size(MAXALIGN(sizeof(SamplesShared)),
									hash_estimate_size(samples_capacity(),
													   sizeof(SampleEntry))));
	RequestNamedLWLockTranche("perfopt samples", 1);
}

/* Create or attach the samples' shared memory; under AddinShmemInitLock */
void
perfopt_samples_shmem_startup(void)
{
	HASHCTL		info;
	bool		found;
	int			capacity = samples_capacity();

	samples_shared = ShmemInitStruct("perfopt samples", sizeof(SamplesShared), &found);
	if (!found)
	{
		samples_shared->lock = &(GetNamedLWLockTranche("perfopt samples"))->lock;
		samples_shared->capacity = capacity;
		samples_shared->evicted = 0;
		pg_atomic_init_u64(&samples_shared->skipped, 0);
		samples_shared->reset_at = GetCurrentTimestamp();
	}
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(SampleKey);
	info.entrysize = sizeof(SampleEntry);
	samples_hash = ShmemInitHash("perfopt samples hash", capacity, capacity,
								 &info, HASH_ELEM | HASH_BLOBS);
}

/* Install the parse analysis hook; from _PG_init when preloaded */
void
perfopt_samples_init(void)
{
	prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = samples_post_parse_analyze;
}

/* Statements until the next sample: geometric with mean param_sample_every */
static int
samples_gap(void)
{
	double		p = 1.0 / perfopt_param_sample_every;
	double		u;

	if (p >= 1.0)
		return 1;
	u = pg_prng_double(&pg_global_prng_state);
	if (u <= 0.0)
		return 1;
	return 1 + (int) Min(floor(log(u) / log(1.0 - p)), (double) (INT_MAX - 1));
}

/* Whether to sample this statement: the whole cost of one not sampled */
static inline bool
samples_take(void)
{
	if (likely(sample_countdown > 1))
	{
		sample_countdown--;
		return false;
	}
	if (sample_countdown == 0)
	{
		/* first statement of this backend: draw where the first sample falls */
		sample_countdown = samples_gap();
		if (sample_countdown > 1)
		{
			sample_countdown--;
			return false;
		}
	}
	sample_countdown = samples_gap();
	return true;
}

/* Whether sampling can run in this process now */
static inline bool
samples_enabled(void)
{
	return perfopt_param_sampling && samples_shared != NULL && !in_sampling &&
		!IsParallelWorker();
}

/* The total time perfopt's latency histograms hold for a statement, in ns */
static uint64
samples_cost(Oid dbid, uint64 queryid)
{
	return perfopt_latency_total_ns(dbid, queryid);
}

typedef struct EvictCandidate
{
	SampleKey	key;
	uint64		cost;
	uint64		sampled;
} EvictCandidate;

static int
evict_cmp(const void *a, const void *b)
{
	const EvictCandidate *x = a;
	const EvictCandidate *y = b;

	if (x->cost != y->cost)
		return x->cost < y->cost ? -1 : 1;
	if (x->sampled != y->sampled)
		return x->sampled < y->sampled ? -1 : 1;
	return 0;
}

/*
 * Make room: remove the SAMPLES_EVICT_PERCENT of entries that cost the
 * least.  Under the lock, exclusive.
 */
static void
samples_evict(void)
{
	HASH_SEQ_STATUS status;
	SampleEntry *entry;
	EvictCandidate *cands;
	int			n = 0;
	int			nevict;
	long		count = hash_get_num_entries(samples_hash);

	cands = palloc(sizeof(EvictCandidate) * Max(count, 1));
	hash_seq_init(&status, samples_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (n == count)
		{
			hash_seq_term(&status);
			break;
		}
		cands[n].key = entry->key;
		cands[n].sampled = entry->sampled;
		cands[n].cost = samples_cost(entry->key.dbid, entry->key.queryid);
		n++;
	}
	qsort(cands, n, sizeof(EvictCandidate), evict_cmp);
	nevict = Min(n, Max(1, n * SAMPLES_EVICT_PERCENT / 100));
	for (int i = 0; i < nevict; i++)
		hash_search(samples_hash, &cands[i].key, HASH_REMOVE, NULL);
	samples_shared->evicted += nevict;
	pfree(cands);
}

/*
 * Keep one set of a statement: serialized first, without the lock, then
 * put in the statement's reservoir.  values[i] NULL is an SQL NULL.
 */
static void
samples_store(uint64 queryid, int nparams, char **values)
{
	SampleSet	set;
	SampleKey	key;
	SampleEntry *entry;
	bool		found;
	int			used = 0;

	if (nparams <= 0)
		return;
	if (nparams > SAMPLE_MAX_PARAMS)
	{
		pg_atomic_fetch_add_u64(&samples_shared->skipped, 1);
		return;
	}
	for (int i = 0; i < nparams; i++)
	{
		Size		len = values[i] ? strlen(values[i]) : 0;
		uint16		mark = values[i] ? (uint16) Min(len, SAMPLE_NULL - 1) : SAMPLE_NULL;

		if (used + sizeof(uint16) + len > SAMPLE_SET_BYTES)
		{
			pg_atomic_fetch_add_u64(&samples_shared->skipped, 1);
			return;
		}
		memcpy(set.data + used, &mark, sizeof(uint16));
		used += sizeof(uint16);
		if (len > 0)
			memcpy(set.data + used, values[i], len);
		used += len;
	}
	set.nparams = nparams;
	set.used = used;
	set.sampled_at = GetCurrentTimestamp();

	memset(&key, 0, sizeof(key));
	key.userid = GetUserId();
	key.dbid = MyDatabaseId;
	key.queryid = queryid;

	LWLockAcquire(samples_shared->lock, LW_EXCLUSIVE);
	entry = hash_search(samples_hash, &key, HASH_FIND, NULL);
	if (entry == NULL)
	{
		if (hash_get_num_entries(samples_hash) >= samples_shared->capacity)
			samples_evict();
		entry = hash_search(samples_hash, &key, HASH_ENTER_NULL, &found);
		if (entry == NULL)
		{
			LWLockRelease(samples_shared->lock);
			return;
		}
		entry->sampled = 0;
		entry->nsets = 0;
	}
	entry->sampled++;
	if (entry->nsets < SAMPLES_PER_STATEMENT)
		memcpy(&entry->sets[entry->nsets++], &set, offsetof(SampleSet, data) + used);
	else
	{
		uint64		j = pg_prng_uint64_range(&pg_global_prng_state, 0, entry->sampled - 1);

		if (j < SAMPLES_PER_STATEMENT)
			memcpy(&entry->sets[j], &set, offsetof(SampleSet, data) + used);
	}
	LWLockRelease(samples_shared->lock);
}

/*
 * The text of a bound parameter, or NULL with *too_big set when it cannot
 * fit in a set (checked before the output function runs on a big value).
 */
static char *
param_text(ParamExternData *prm, bool *too_big)
{
	Oid			foutoid;
	bool		isvarlena;
	char	   *text;

	*too_big = false;
	if (prm->isnull)
		return NULL;
	getTypeOutputInfo(prm->ptype, &foutoid, &isvarlena);
	if (isvarlena)
	{
		struct varlena *v = (struct varlena *) DatumGetPointer(prm->value);

		if (VARATT_IS_EXTERNAL_EXPANDED(v) ||
			toast_raw_datum_size(prm->value) > SAMPLE_SET_BYTES)
		{
			*too_big = true;
			return NULL;
		}
	}
	else if (get_typlen(prm->ptype) == -2 &&
			 strnlen(DatumGetCString(prm->value), SAMPLE_SET_BYTES + 1) > SAMPLE_SET_BYTES)
	{
		*too_big = true;
		return NULL;
	}
	text = OidOutputFunctionCall(foutoid, prm->value);
	if (strlen(text) > SAMPLE_SET_BYTES)
	{
		*too_big = true;
		return NULL;
	}
	return text;
}

/* The constants' places of a mixed text being executed, or NULL */
static MixedText *
mixed_text_of(uint64 queryid, const char *text, int stmt_location)
{
	if (text == NULL)
		return NULL;
	for (int i = 0; i < MIXED_TEXTS; i++)
	{
		MixedText  *m = &mixed_texts[i];

		if (m->queryid == queryid && m->stmt_location == stmt_location &&
			strcmp(m->text, text) == 0)
			return m;
	}
	return NULL;
}

/*
 * Remember where the constants of a text with $n of its own are, unless
 * that very text is remembered already
 */
static void
mixed_text_remember(uint64 queryid, const char *text, int stmt_location, JumbleState *jstate)
{
	MixedText  *m;
	size_t		len;

	if (mixed_text_of(queryid, text, stmt_location) != NULL)
		return;
	len = strlen(text);
	if (len > MIXED_TEXT_MAX || jstate->clocations_count > SAMPLE_MAX_PARAMS)
		return;
	m = &mixed_texts[mixed_next];
	mixed_next = (mixed_next + 1) % MIXED_TEXTS;
	if (m->text != NULL)
		pfree(m->text);
	if (m->locations != NULL)
		pfree(m->locations);
	m->queryid = 0;
	m->text = MemoryContextStrdup(TopMemoryContext, text);
	m->locations = MemoryContextAlloc(TopMemoryContext,
									  sizeof(LocationLen) * jstate->clocations_count);
	memcpy(m->locations, jstate->clocations, sizeof(LocationLen) * jstate->clocations_count);
	m->nlocations = jstate->clocations_count;
	m->stmt_location = stmt_location;
	m->highest_extern_param_id = jstate->highest_extern_param_id;
	m->queryid = queryid;
}

/*
 * Sample the bound parameters of one execution, followed by the constants
 * of its text when the text has some (mixed: see mixed_texts)
 */
static void
samples_take_params(uint64 queryid, ParamListInfo params, const char *text,
					int stmt_location)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "perfopt parameter sample",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	int			n = params->numParams;

	in_sampling = true;
	PG_TRY();
	{
		char	  **values = palloc0(sizeof(char *) * Max(n, 1));
		bool		ok = n <= SAMPLE_MAX_PARAMS;

		for (int i = 0; ok && i < n; i++)
		{
			ParamExternData *prm = &params->params[i];
			bool		too_big;

			if (!OidIsValid(prm->ptype))
			{
				ok = false;
				break;
			}
			values[i] = param_text(prm, &too_big);
			if (too_big)
				ok = false;
		}
		if (ok)
		{
			MixedText  *m = mixed_text_of(queryid, text, stmt_location);

			if (m != NULL && m->highest_extern_param_id <= n)
			{
				List	   *consts = constant_values(m->text, m->stmt_location,
													 m->locations, m->nlocations);
				int			k = m->highest_extern_param_id;

				/* constants are $k+1 .. : the bound ones past $k are unused */
				if (consts != NIL)
				{
					ListCell   *lc;

					values = repalloc(values, sizeof(char *) * (k + list_length(consts)));
					foreach(lc, consts)
						values[k++] = lfirst(lc);
					n = k;
				}
			}
			samples_store(queryid, n, values);
		}
		else
			pg_atomic_fetch_add_u64(&samples_shared->skipped, 1);
	}
	PG_FINALLY();
	{
		in_sampling = false;
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
	MemoryContextDelete(cxt);
}

/*
 * From perfopt's ExecutorStart hook: sample the bound parameters of one
 * execution in perfopt.param_sample_every.
 */
void
perfopt_samples_executor_start(struct QueryDesc *queryDesc, int eflags)
{
	ParamListInfo params = queryDesc->params;

	if (params == NULL || params->numParams <= 0 || !samples_enabled())
		return;
	if (params->paramFetch != NULL || queryDesc->plannedstmt->queryId == UINT64CONST(0) ||
		(eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0)
		return;
	if (!samples_take())
		return;
	samples_take_params(queryDesc->plannedstmt->queryId, params, queryDesc->sourceText,
						queryDesc->plannedstmt->stmt_location);
}

#define PG_KEYWORD(kwname, value, category, collabel) value,
static const uint16 samples_keyword_tokens[] = {
#include "parser/kwlist.h"
};
#undef PG_KEYWORD

static int
location_cmp(const void *a, const void *b)
{
	int			x = ((const LocationLen *) a)->location;
	int			y = ((const LocationLen *) b)->location;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/*
 * The values of the constants pg_stat_statements puts $n at, in $n order:
 * the locations sorted, one value per distinct location, each read with
 * the core scanner as fill_in_constant_lengths reads its length.  NIL when
 * a constant cannot be read back (then no set is kept).
 */
static List *
constant_values(const char *sourcetext, int stmt_location, const LocationLen *clocations,
				int clocations_count)
{
	LocationLen *locs;
	core_yyscan_t yyscanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	const char *text = sourcetext + Max(stmt_location, 0);
	int			base = Max(stmt_location, 0);
	int			textlen = strlen(text);
	int			last_loc = -1;
	List	   *values = NIL;

	locs = palloc(sizeof(LocationLen) * clocations_count);
	memcpy(locs, clocations, sizeof(LocationLen) * clocations_count);
	qsort(locs, clocations_count, sizeof(LocationLen), location_cmp);

	yyscanner = scanner_init(text, &yyextra, &ScanKeywords, samples_keyword_tokens);
	yyextra.escape_string_warning = false;

	for (int i = 0; i < clocations_count; i++)
	{
		int			loc = locs[i].location - base;
		int			tok;
		char	   *value = NULL;
		bool		negative = false;

		if (loc < 0 || loc >= textlen)
		{
			values = NIL;
			break;
		}
		if (loc <= last_loc)
			continue;			/* the same constant: one $n */
		for (;;)
		{
			tok = core_yylex(&yylval, &yylloc, yyscanner);
			if (tok == 0 || yylloc >= loc)
				break;
		}
		if (tok != 0 && yylloc == loc && text[loc] == '-')
		{
			negative = true;
			tok = core_yylex(&yylval, &yylloc, yyscanner);
		}
		if (tok == 0 || (yylloc != loc && !negative))
		{
			values = NIL;
			break;
		}
		switch (tok)
		{
			case SCONST:
			case BCONST:
			case XCONST:
				value = pstrdup(yylval.str);
				break;
			case NULL_P:
				value = NULL;
				break;
			case USCONST:
			case UIDENT:
			case PARAM:
				/* U&'...' is unescaped only by the grammar: not kept */
				list_free(values);
				pfree(locs);
				scanner_finish(yyscanner);
				return NIL;
			default:
				/* a number, TRUE, FALSE: its text as written */
				value = pstrdup(yyextra.scanbuf + yylloc);
				break;
		}
		if (negative && value != NULL)
			value = psprintf("-%s", value);
		values = lappend(values, value);
		last_loc = loc;
	}
	scanner_finish(yyscanner);
	pfree(locs);
	return values;
}

/* Sample the constants of one simple-protocol statement */
static void
samples_take_constants(ParseState *pstate, Query *query, JumbleState *jstate)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "perfopt constants sample",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);

	in_sampling = true;
	PG_TRY();
	{
		List	   *values = constant_values(pstate->p_sourcetext, query->stmt_location,
											 jstate->clocations, jstate->clocations_count);
		int			n = list_length(values);

		if (n > 0)
		{
			char	  **arr = palloc(sizeof(char *) * n);
			ListCell   *lc;
			int			i = 0;

			foreach(lc, values)
				arr[i++] = lfirst(lc);
			samples_store(query->queryId, n, arr);
		}
	}
	PG_FINALLY();
	{
		in_sampling = false;
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
	MemoryContextDelete(cxt);
}

/*
 * post_parse_analyze_hook: a statement of the simple protocol (a text with
 * constants and no $n) is sampled here, the only place that has both its
 * text and the constants' locations.
 */
static void
samples_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze)
		prev_post_parse_analyze(pstate, query, jstate);

	if (jstate == NULL || jstate->clocations_count == 0 || !samples_enabled())
		return;
	if (query->utilityStmt != NULL || query->queryId == UINT64CONST(0) ||
		pstate->p_sourcetext == NULL)
		return;
	if (jstate->highest_extern_param_id != 0)
	{
		mixed_text_remember(query->queryId, pstate->p_sourcetext, query->stmt_location, jstate);
		return;
	}
	if (!samples_take())
		return;
	samples_take_constants(pstate, query, jstate);
}

/* A set out of shared memory, as text values */
static PerfoptParamSet *
set_unpack(const SampleSet *set)
{
	PerfoptParamSet *out = palloc(sizeof(PerfoptParamSet));
	int			pos = 0;

	out->nparams = set->nparams;
	out->values = palloc(sizeof(char *) * Max(set->nparams, 1));
	out->weight = 0;
	out->sets = 0;
	for (int i = 0; i < set->nparams; i++)
	{
		uint16		len;

		memcpy(&len, set->data + pos, sizeof(uint16));
		pos += sizeof(uint16);
		if (len == SAMPLE_NULL)
			out->values[i] = NULL;
		else
		{
			out->values[i] = pnstrdup(set->data + pos, len);
			pos += len;
		}
	}
	return out;
}

static void
samples_require(void)
{
	if (samples_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("perfopt must be loaded via shared_preload_libraries to sample parameters"),
				 errhint("Add perfopt to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * The sets kept for one statement, identical sets merged and their weights
 * summed; the weights sum to 1.  NIL when sampling is off or unavailable
 * or the statement has no sets.  No visibility check: see samples.h.
 */
List *
perfopt_statement_param_sets(Oid userid, Oid dbid, int64 queryid)
{
	SampleKey	key;
	SampleEntry *entry;
	SampleSet  *sets;
	int			nsets = 0;
	List	   *result = NIL;
	int		   *counts;
	int			ndistinct = 0;
	int		   *first;

	if (!perfopt_param_sampling || samples_shared == NULL)
		return NIL;

	memset(&key, 0, sizeof(key));
	key.userid = userid;
	key.dbid = dbid;
	key.queryid = (uint64) queryid;
	sets = palloc(sizeof(SampleSet) * SAMPLES_PER_STATEMENT);

	LWLockAcquire(samples_shared->lock, LW_SHARED);
	entry = hash_search(samples_hash, &key, HASH_FIND, NULL);
	if (entry != NULL)
	{
		nsets = entry->nsets;
		memcpy(sets, entry->sets, sizeof(SampleSet) * nsets);
	}
	LWLockRelease(samples_shared->lock);

	if (nsets == 0)
	{
		pfree(sets);
		return NIL;
	}

	counts = palloc0(sizeof(int) * nsets);
	first = palloc(sizeof(int) * nsets);
	for (int i = 0; i < nsets; i++)
	{
		int			j;

		for (j = 0; j < ndistinct; j++)
		{
			SampleSet  *a = &sets[first[j]];

			if (a->nparams == sets[i].nparams && a->used == sets[i].used &&
				memcmp(a->data, sets[i].data, a->used) == 0)
				break;
		}
		if (j == ndistinct)
			first[ndistinct++] = i;
		counts[j]++;
	}
	for (int j = 0; j < ndistinct; j++)
	{
		PerfoptParamSet *set = set_unpack(&sets[first[j]]);

		set->weight = (double) counts[j] / nsets;
		set->sets = counts[j];
		result = lappend(result, set);
	}
	pfree(sets);
	pfree(counts);
	pfree(first);
	return result;
}

/* One row of statement_samples(), copied under the lock */
typedef struct SampleRow
{
	SampleKey	key;
	uint64		sampled;
	int			nsets;
	SampleSet	set;
} SampleRow;

/*
 * statement_samples(): one row per kept set, of the statements the caller
 * may see in pg_stat_statements (its own, or all for pg_read_all_stats).
 * Entries are copied one at a time under the lock into memory taken
 * before it; the tuplestore is filled after it.
 */
Datum
perfopt_statement_samples(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			userid = GetUserId();
	bool		see_all = has_privs_of_role(userid, ROLE_PG_READ_ALL_STATS);
	HASH_SEQ_STATUS status;
	SampleEntry *entry;
	SampleRow  *rows;
	int			capacity = 64;
	int			n = 0;

	samples_require();
	InitMaterializedSRF(fcinfo, 0);
	rows = palloc(sizeof(SampleRow) * capacity);

	LWLockAcquire(samples_shared->lock, LW_SHARED);
	hash_seq_init(&status, samples_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (!see_all && entry->key.userid != userid)
			continue;
		for (int i = 0; i < entry->nsets; i++)
		{
			if (n == capacity)
			{
				capacity *= 2;
				rows = repalloc_huge(rows, sizeof(SampleRow) * capacity);
			}
			rows[n].key = entry->key;
			rows[n].sampled = entry->sampled;
			rows[n].nsets = entry->nsets;
			memcpy(&rows[n].set, &entry->sets[i],
				   offsetof(SampleSet, data) + entry->sets[i].used);
			n++;
		}
	}
	LWLockRelease(samples_shared->lock);

	for (int r = 0; r < n; r++)
	{
		Datum		values[7];
		bool		nulls[7] = {0};
		PerfoptParamSet *set = set_unpack(&rows[r].set);
		Datum	   *elems = palloc(sizeof(Datum) * Max(set->nparams, 1));
		bool	   *enulls = palloc(sizeof(bool) * Max(set->nparams, 1));
		int			dims[1];
		int			lbs[1] = {1};

		for (int i = 0; i < set->nparams; i++)
		{
			enulls[i] = set->values[i] == NULL;
			elems[i] = enulls[i] ? (Datum) 0 : CStringGetTextDatum(set->values[i]);
		}
		dims[0] = set->nparams;
		values[0] = ObjectIdGetDatum(rows[r].key.userid);
		values[1] = ObjectIdGetDatum(rows[r].key.dbid);
		values[2] = Int64GetDatum((int64) rows[r].key.queryid);
		values[3] = PointerGetDatum(construct_md_array(elems, enulls, 1, dims, lbs,
													   TEXTOID, -1, false, TYPALIGN_INT));
		values[4] = TimestampTzGetDatum(rows[r].set.sampled_at);
		values[5] = Float8GetDatum(1.0 / rows[r].nsets);
		values[6] = Int64GetDatum((int64) rows[r].sampled);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * statement_samples_info(): the table's capacity and fill, and the sets
 * skipped and entries evicted since the last reset.  Counts only.
 */
Datum
perfopt_statement_samples_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	int64		statements;
	int64		evicted;
	TimestampTz reset_at;

	samples_require();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	LWLockAcquire(samples_shared->lock, LW_SHARED);
	statements = hash_get_num_entries(samples_hash);
	evicted = samples_shared->evicted;
	reset_at = samples_shared->reset_at;
	LWLockRelease(samples_shared->lock);

	values[0] = Int32GetDatum(samples_shared->capacity);
	values[1] = Int64GetDatum(statements);
	values[2] = Int32GetDatum(SAMPLES_PER_STATEMENT);
	values[3] = Int64GetDatum((int64) pg_atomic_read_u64(&samples_shared->skipped));
	values[4] = Int64GetDatum(evicted);
	values[5] = TimestampTzGetDatum(reset_at);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* statement_samples_reset(): forget every sample; returns the time of it */
Datum
perfopt_statement_samples_reset(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS status;
	SampleEntry *entry;
	TimestampTz now = GetCurrentTimestamp();

	samples_require();
	LWLockAcquire(samples_shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&status, samples_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
		hash_search(samples_hash, &entry->key, HASH_REMOVE, NULL);
	samples_shared->evicted = 0;
	pg_atomic_write_u64(&samples_shared->skipped, 0);
	samples_shared->reset_at = now;
	LWLockRelease(samples_shared->lock);
	PG_RETURN_TIMESTAMPTZ(now);
}
