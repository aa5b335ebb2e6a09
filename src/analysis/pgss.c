/*-------------------------------------------------------------------------
 *
 * pgss.c
 *	  Reading pg_stat_statements: perfopt's view of the workload.
 *
 * pg_stat_statements may live in any schema, and its figures exist only
 * when it is in shared_preload_libraries.  Everything perfopt reads from it
 * goes through here, summed over users for each queryid of the current
 * database.  A statement's share of time is taken against the top-level
 * statements only, because a nested statement's time is already part of
 * the statement that called it.
 *
 * A statement's text is the text of one role: perfopt plans it as that
 * role (pg_stat_statements' userid) and only for a caller who may see it,
 * a caller who has the privileges of that role or of pg_read_all_stats.
 * perfopt's own queries here run with search_path pg_catalog, pg_temp.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/binaryheap.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common/catalog.h"
#include "analysis/pgss.h"
#include "common/security.h"

/* Schema of the installed pg_stat_statements extension, or InvalidOid */
static Oid
pgss_schema(void)
{
	return perfopt_extension_schema("pg_stat_statements");
}

/* Is pg_stat_statements loaded at server start (it only counts then)? */
static bool
pgss_loaded(void)
{
	return GetConfigOption("pg_stat_statements.max", true, false) != NULL;
}

/* Error out, saying what to do, unless the workload can be read here */
void
perfopt_pgss_require(void)
{
	if (!pgss_loaded())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_stat_statements is not loaded"),
				 errdetail("perfopt reads the workload from pg_stat_statements, which records statements only when it is loaded at server start."),
				 errhint("Add pg_stat_statements to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (!OidIsValid(pgss_schema()))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"pg_stat_statements\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION pg_stat_statements.")));
}

/* "schema.pg_stat_statements", quoted as needed */
static char *
pgss_function(void)
{
	return quote_qualified_identifier(get_namespace_name(pgss_schema()),
									  "pg_stat_statements");
}

static double
fetch_double(HeapTuple tuple, TupleDesc desc, int column, bool *isnull)
{
	Datum		value = SPI_getbinval(tuple, desc, column, isnull);

	return *isnull ? 0 : DatumGetFloat8(value);
}

/*
 * pg_stat_statements returns every entry it holds whatever the caller
 * asks for (about half a microsecond each: 3 ms when it is full at 5,000),
 * so the figures of this database are read once per statement into this
 * snapshot and looked up from there.  Texts are read only when a lookup by
 * text needs them.
 */
typedef struct PgssEntry
{
	int64		queryid;
	double		calls;
	double		total_ms;
} PgssEntry;

typedef struct PgssSnapshot
{
	MemoryContext cxt;
	LocalTransactionId lxid;	/* valid in this transaction ... */
	TimestampTz statement_start;	/* ... and statement */
	PgssEntry  *entries;		/* sorted by queryid */
	int			nentries;
	double		top_total_ms;	/* time of all top-level statements */
	bool		have_texts;
	char	  **texts;			/* each statement's text ... */
	int64	   *text_queryids;	/* ... and its queryid */
	int			ntexts;
} PgssSnapshot;

static PgssSnapshot snapshot;

static int
entry_cmp(const void *a, const void *b)
{
	int64		qa = ((const PgssEntry *) a)->queryid;
	int64		qb = ((const PgssEntry *) b)->queryid;

	return qa < qb ? -1 : qa > qb ? 1 : 0;
}

/*
 * Run one of the two snapshot queries on pg_stat_statements of this
 * database; the caller is connected to SPI.  Their plans are prepared once
 * per backend, and again if pg_stat_statements moves to another schema.
 */
static void
pgss_query(Oid schema, bool texts)
{
	static SPIPlanPtr plans[2];
	static Oid	plans_schema = InvalidOid;
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(MyDatabaseId)};

	if (plans_schema != schema)
	{
		for (int i = 0; i < 2; i++)
		{
			if (plans[i])
				SPI_freeplan(plans[i]);
			plans[i] = NULL;
		}
		plans_schema = schema;
	}
	if (plans[texts] == NULL)
	{
		const char *fn = quote_qualified_identifier(get_namespace_name(schema),
													"pg_stat_statements");
		char	   *sql;

		if (texts)
			sql = psprintf("SELECT DISTINCT queryid, query FROM %s(true) WHERE dbid = $1", fn);
		else
			sql = psprintf("SELECT queryid, sum(calls)::float8, sum(total_exec_time),"
						   " coalesce(sum(total_exec_time) FILTER (WHERE toplevel), 0)"
						   " FROM %s(false) WHERE dbid = $1 GROUP BY queryid", fn);
		plans[texts] = SPI_prepare(sql, 1, argtypes);
		if (plans[texts] == NULL)
			elog(ERROR, "could not prepare a query on pg_stat_statements: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(plans[texts]);
	}
	if (SPI_execute_plan(plans[texts], args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_stat_statements");
}

/* What read_snapshot is asked for */
typedef struct SnapshotRead
{
	Oid			schema;			/* pg_stat_statements' */
	bool		current;		/* the figures are this statement's already */
	bool		need_texts;
} SnapshotRead;

static void read_snapshot(void *arg);

/* Make the snapshot current for this statement; texts too if asked */
static void
refresh_snapshot(Oid schema, bool need_texts)
{
	bool		current = snapshot.cxt != NULL &&
		snapshot.lxid == MyProc->lxid &&
		snapshot.statement_start == GetCurrentStatementStartTimestamp();
	SnapshotRead request = {schema, current, need_texts};

	if (current && (snapshot.have_texts || !need_texts))
		return;

	if (snapshot.cxt == NULL)
		snapshot.cxt = AllocSetContextCreate(TopMemoryContext,
											 "perfopt pg_stat_statements snapshot",
											 ALLOCSET_DEFAULT_SIZES);
	perfopt_run_as_role(InvalidOid, read_snapshot, &request);
}

/* The queries of refresh_snapshot, with perfopt's own search_path */
static void
read_snapshot(void *arg)
{
	SnapshotRead *request = (SnapshotRead *) arg;
	MemoryContext oldcxt;
	uint64		i;

	SPI_connect();
	if (!request->current)
	{
		MemoryContextReset(snapshot.cxt);
		snapshot.have_texts = false;
		snapshot.nentries = 0;
		snapshot.top_total_ms = 0;
		pgss_query(request->schema, false);
		oldcxt = MemoryContextSwitchTo(snapshot.cxt);
		snapshot.entries = palloc(Max(SPI_processed, 1) * sizeof(PgssEntry));
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			PgssEntry  *entry = &snapshot.entries[snapshot.nentries++];
			bool		isnull;

			entry->queryid = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
			entry->calls = fetch_double(tuple, desc, 2, &isnull);
			entry->total_ms = fetch_double(tuple, desc, 3, &isnull);
			snapshot.top_total_ms += fetch_double(tuple, desc, 4, &isnull);
		}
		MemoryContextSwitchTo(oldcxt);
		qsort(snapshot.entries, snapshot.nentries, sizeof(PgssEntry), entry_cmp);
		snapshot.lxid = MyProc->lxid;
		snapshot.statement_start = GetCurrentStatementStartTimestamp();
	}
	if (request->need_texts)
	{
		pgss_query(request->schema, true);
		oldcxt = MemoryContextSwitchTo(snapshot.cxt);
		snapshot.ntexts = 0;
		snapshot.texts = palloc(Max(SPI_processed, 1) * sizeof(char *));
		snapshot.text_queryids = palloc(Max(SPI_processed, 1) * sizeof(int64));
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *text = SPI_getvalue(tuple, desc, 2);
			bool		isnull;

			if (text == NULL)
				continue;
			snapshot.text_queryids[snapshot.ntexts] =
				DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
			snapshot.texts[snapshot.ntexts++] = pstrdup(text);
		}
		MemoryContextSwitchTo(oldcxt);
		snapshot.have_texts = true;
	}
	SPI_finish();
}

/*
 * Fill stats with what pg_stat_statements knows of one statement of this
 * database: by queryid when the caller has one, else by its exact text
 * (a normalized text with $n has a different queryid than the statement
 * it was normalized from).  Leaves stats->found false when there is
 * nothing to find or pg_stat_statements cannot be read.
 */
void
perfopt_pgss_lookup(int64 queryid, const char *query_text, WorkloadStats *stats)
{
	PgssEntry	key;
	PgssEntry  *entry;
	Oid			schema;

	memset(stats, 0, sizeof(*stats));
	if (!pgss_loaded() || (queryid == 0 && query_text == NULL))
		return;
	schema = pgss_schema();
	if (!OidIsValid(schema))
		return;

	refresh_snapshot(schema, queryid == 0);
	if (queryid == 0)
	{
		for (int i = 0; i < snapshot.ntexts && queryid == 0; i++)
		{
			if (strcmp(snapshot.texts[i], query_text) == 0)
				queryid = snapshot.text_queryids[i];
		}
		if (queryid == 0)
			return;
	}

	key.queryid = queryid;
	entry = bsearch(&key, snapshot.entries, snapshot.nentries,
					sizeof(PgssEntry), entry_cmp);
	if (entry == NULL || entry->calls <= 0)
		return;
	stats->found = true;
	stats->queryid = queryid;
	stats->calls = (int64) entry->calls;
	stats->total_ms = entry->total_ms;
	stats->mean_ms = entry->total_ms / entry->calls;
	stats->time_share_pct = snapshot.top_total_ms > 0 ?
		Min(100.0, 100.0 * entry->total_ms / snapshot.top_total_ms) : 0;
}

/* What read_statements reads, and into what */
typedef struct StatementsRead
{
	const char *sql;
	Datum		args[2];		/* the database, whether all roles count */
	double		min_mean_ms;
	int			limit;
	MemoryContext cxt;			/* of the result */
	List	   *result;
} StatementsRead;

/*
 * One queryid's entries, summed; "best" is the entry that speaks for them.
 * In a simplehash (see common/oid_map.h), the groups in its slots.
 */
typedef struct StatementGroup
{
	int64		queryid;		/* the hash key */
	char		status;			/* simplehash's */
	double		calls;
	double		total_ms;
	double		rows;
	uint64		best;			/* its row in SPI_tuptable */
	double		best_calls;
	Oid			best_userid;
	bool		best_toplevel;
} StatementGroup;

#define SH_PREFIX groups
#define SH_ELEMENT_TYPE StatementGroup
#define SH_KEY_TYPE int64
#define SH_KEY queryid
#define SH_HASH_KEY(tb, key) murmurhash32((uint32) ((uint64) (key) ^ ((uint64) (key) >> 32)))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* Most total time first; equal times in queryid order, so the order is stable */
static int
group_order(const StatementGroup *ga, const StatementGroup *gb)
{
	if (ga->total_ms != gb->total_ms)
		return ga->total_ms > gb->total_ms ? -1 : 1;
	return ga->queryid < gb->queryid ? -1 : ga->queryid > gb->queryid ? 1 : 0;
}

static int
group_cmp(const void *a, const void *b)
{
	return group_order(*(StatementGroup *const *) a, *(StatementGroup *const *) b);
}

/* For a heap whose first group is the one that comes last */
static int
group_heap_cmp(Datum a, Datum b, void *arg)
{
	return group_order((StatementGroup *) DatumGetPointer(a), (StatementGroup *) DatumGetPointer(b));
}

/*
 * The first limit groups (all when limit is 0) in order, into sorted;
 * returns how many.  Under a limit, a heap of that many keeps the first
 * ones seen so far and only they are sorted: a sort of all 10,000 groups
 * for the first 100 was 3% of the drop candidates' time.
 */
static int
first_groups(groups_hash *groups, double min_mean_ms, int limit, StatementGroup **sorted)
{
	groups_iterator it;
	StatementGroup *g;
	int			n = 0;

	groups_start_iterate(groups, &it);
	if (limit <= 0 || limit >= groups->members)
	{
		while ((g = groups_iterate(groups, &it)) != NULL)
		{
			if (g->calls > 0 && g->total_ms / g->calls >= min_mean_ms)
				sorted[n++] = g;
		}
	}
	else
	{
		binaryheap *heap = binaryheap_allocate(limit, group_heap_cmp, NULL);

		while ((g = groups_iterate(groups, &it)) != NULL)
		{
			if (g->calls <= 0 || g->total_ms / g->calls < min_mean_ms)
				continue;
			if (heap->bh_size < limit)
				binaryheap_add(heap, PointerGetDatum(g));
			else if (group_order(g, (StatementGroup *) DatumGetPointer(binaryheap_first(heap))) < 0)
				binaryheap_replace_first(heap, PointerGetDatum(g));
		}
		for (n = 0; n < heap->bh_size; n++)
			sorted[n] = (StatementGroup *) DatumGetPointer(heap->bh_nodes[n]);
		binaryheap_free(heap);
	}
	qsort(sorted, n, sizeof(StatementGroup *), group_cmp);
	return n;
}

/*
 * pg_stat_statements() materializes every entry, with its text, before the
 * first row is read, in work_mem: some 4 MB at 10,000 entries, the default
 * work_mem, so the rows went to a temporary file and back (a sixth of the
 * drop candidates' time in a fresh session).  SPI then holds them all in
 * memory anyway, so here, in the caller's GUC nest level, work_mem is at
 * least a kilobyte per entry pg_stat_statements can hold.
 */
static void
entries_in_memory(void)
{
	const char *max = GetConfigOption("pg_stat_statements.max", true, false);
	long		kb = max != NULL ? strtol(max, NULL, 10) : 0;

	if (kb > work_mem)
		(void) set_config_option("work_mem", psprintf("%ld", Min(kb, (long) MAX_KILOBYTES)),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * The entries of perfopt_pgss_statements' query, with perfopt's own
 * search_path, summed by queryid here: a window and two sorts in SQL over
 * every entry with its text cost as much again as reading them (36 against
 * 17 ms at 20,000 entries)
 */
static void
read_statements(void *arg)
{
	StatementsRead *request = (StatementsRead *) arg;
	Oid			argtypes[2] = {OIDOID, BOOLOID};
	groups_hash *groups;
	StatementGroup *g;
	StatementGroup **sorted;
	int			nsorted;
	double		top_ms = 0;
	TupleDesc	desc;
	uint64		i;

	SPI_connect();
	entries_in_memory();
	if (SPI_execute_with_args(request->sql, 2, argtypes, request->args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_stat_statements");
	desc = SPI_tuptable->tupdesc;

	groups = groups_create(CurrentMemoryContext, Max(SPI_processed, 16), NULL);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		bool		isnull;
		int64		queryid = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
		Oid			userid = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
		double		calls = fetch_double(tuple, desc, 3, &isnull);
		double		total_ms = fetch_double(tuple, desc, 4, &isnull);
		bool		toplevel = DatumGetBool(SPI_getbinval(tuple, desc, 5, &isnull));
		double		rows = fetch_double(tuple, desc, 6, &isnull);
		bool		found;

		g = groups_insert(groups, queryid, &found);
		/*
		 * its text and role are those of the entry with the most calls, then
		 * of the lowest role OID, a nested entry before a top-level one
		 */
		if (!found || calls > g->best_calls ||
			(calls == g->best_calls &&
			 (userid < g->best_userid ||
			  (userid == g->best_userid && !toplevel && g->best_toplevel))))
		{
			g->best = i;
			g->best_calls = calls;
			g->best_userid = userid;
			g->best_toplevel = toplevel;
		}
		if (!found)
			g->calls = g->total_ms = g->rows = 0;
		g->calls += calls;
		g->total_ms += total_ms;
		g->rows += rows;
		/* the share of time is of every top-level statement's, before the filters */
		if (toplevel)
			top_ms += total_ms;
	}

	sorted = palloc(Max(groups->members, 1) * sizeof(StatementGroup *));
	nsorted = first_groups(groups, request->min_mean_ms, request->limit, sorted);

	for (int k = 0; k < nsorted && (request->limit <= 0 || k < request->limit); k++)
	{
		char	   *query;
		PgssStatement *s;
		MemoryContext spicxt;

		g = sorted[k];
		query = SPI_getvalue(SPI_tuptable->vals[g->best], desc, 7);
		spicxt = MemoryContextSwitchTo(request->cxt);
		s = palloc0(sizeof(PgssStatement));
		s->query = pstrdup(query ? query : "");
		s->userid = g->best_userid;
		s->stats.found = true;
		s->stats.queryid = g->queryid;
		s->stats.calls = (int64) g->calls;
		s->stats.total_ms = g->total_ms;
		s->stats.mean_ms = g->total_ms / g->calls;
		s->stats.time_share_pct = top_ms > 0 ? Min(100.0, 100.0 * g->total_ms / top_ms) : 0;
		s->rows = g->rows;
		request->result = lappend(request->result, s);
		MemoryContextSwitchTo(spicxt);
	}
	SPI_finish();
}

/*
 * The statements of this database whose mean execution time is at least
 * min_mean_ms, most total time first, at most limit of them (0: all),
 * allocated in the caller's context.  Statements that name perfopt's own
 * objects (its jobs, or a user reading its views) are not the application's
 * workload and are left out.
 *
 * Only the entries the caller may see count: those of a role whose
 * privileges it has, or all with pg_read_all_stats.  A statement's figures
 * are summed over those entries (one queryid can be run by several roles);
 * its text and role are those of its entry with the most calls, taken
 * together, because a text is only meaningful with the role whose
 * search_path resolved it.
 */
List *
perfopt_pgss_statements(double min_mean_ms, int limit)
{
	StatementsRead request = {0};

	perfopt_pgss_require();

	/*
	 * The regular expression only where the text holds "perfopt." at all:
	 * run on every text it took a third of the read (5.5 of 16.7 ms at
	 * 10,000 entries), the search for the string first 1.1 ms.
	 */
	request.sql = psprintf("SELECT e.queryid, e.userid, e.calls::pg_catalog.float8, e.total_exec_time,"
						   "       e.toplevel, e.rows::pg_catalog.float8, e.query"
						   "  FROM %s(true) e"
						   " WHERE e.dbid OPERATOR(pg_catalog.=) $1 AND e.queryid IS NOT NULL"
						   "   AND (pg_catalog.strpos(e.query, 'perfopt.') OPERATOR(pg_catalog.=) 0"
						   "        OR e.query OPERATOR(pg_catalog.!~) '\\mperfopt\\.')"
						   "   AND ($2 OR pg_catalog.pg_has_role(e.userid, 'USAGE'))",
						   pgss_function());
	request.args[0] = ObjectIdGetDatum(MyDatabaseId);
	request.args[1] = BoolGetDatum(has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS));
	request.min_mean_ms = min_mean_ms;
	request.limit = limit;
	request.cxt = CurrentMemoryContext;
	perfopt_run_as_role(InvalidOid, read_statements, &request);
	return request.result;
}
