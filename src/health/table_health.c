/*-------------------------------------------------------------------------
 *
 * table_health.c
 *	  perfopt.table_health: one 0-100 score per table, its components,
 *	  what is wrong and the statements that fix it.
 *
 * Two modes:
 *
 * - fast (the default) reads only statistics and catalogs, never a table:
 *	 pg_stat_user_tables, pg_statio_user_tables, pg_class, pg_stats.  Bloat
 *	 is then an estimate: the table's size less what pgstattuple counts as
 *	 neither dead tuples nor free space, computed from the live and dead
 *	 tuple counts and a row's length (its columns' widths from pg_stats,
 *	 with the tuple header, null bitmap, alignment and line pointer, as
 *	 heap pages store them).
 *	 pg_stats' avg_width of a TOASTed column is the size of what the heap
 *	 holds (a compressed value or an 18-byte pointer), so TOAST does not
 *	 make the estimate negative; it is floored at 0 all the same.
 *
 * - exact reads pages.  A table of up to 1,280 pages (10 MB) is read
 *	 whole; a larger one by pages drawn at random, in rounds of 256, until
 *	 the 95% confidence interval of its mean waste (dead tuple bytes plus
 *	 free space, per page) is within 1 percentage point, or 30,000 pages
 *	 are read.  The interval is reported (bloat_error_pct).  Tuples are
 *	 judged live or dead as pgstattuple judges them (a dirty snapshot), so
 *	 est_bloat_pct is the quantity pgstattuple reports as
 *	 dead_tuple_percent + free_percent.  Btree indexes are measured the
 *	 same way, by the density of their leaf pages.  Pages are read through
 *	 a bulk-read buffer ring, so the measurement does not evict the cache.
 *	 Another session's temporary tables (their pages are in its local
 *	 buffers) and tables of an access method other than heap (their pages
 *	 need not be heap pages) are not read, as pgstattuple refuses them:
 *	 they get fast mode's estimates, with measured = false.
 *
 * health_score.c turns the components into the score.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_statistic.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "common/catalog.h"
#include "common/clock.h"
#include "common/oid_map.h"
#include "common/stat_pass.h"
#include "health/table_score.h"
#include "metrics/table_state.h"

PG_FUNCTION_INFO_V1(perfopt_table_health);

/* A table worth an index, read often enough to judge its scans */
#define LARGE_TABLE_ROWS		10000
#define MIN_SCANS				100
/* A table whose bloat costs something */
#define SIZABLE_TABLE_BYTES		(1024 * 1024)
/* Exact mode reads tables up to this size whole */
#define FULL_READ_PAGES			1280
/* ... larger ones by random pages, this many a round, up to a limit */
#define SAMPLE_ROUND_PAGES		256
#define MAX_SAMPLE_PAGES		30000
/* ... until the 95% interval of the waste is within this many points */
#define TARGET_ERROR_PCT		1.0
/* Leaf pages of a btree built fresh are 90% full */
#define BTREE_LEAF_FILL			0.90
/* Bloat worth a rebuild, on a table or index this big */
#define REBUILD_BLOAT_PCT		50
#define REBUILD_MIN_BYTES		(10 * 1024 * 1024)

/* An index of a table, as the catalogs and the statistics know it */
typedef struct IndexFacts
{
	Oid			indexrelid;
	double		bytes;			/* of its main fork */
	int			natts;
	int16	   *keys;			/* attnum of each column, 0 for an expression */
	double		key_width;		/* an entry's key columns' bytes: the widths
								 * pg_stats shows the caller, 8 for others */
} IndexFacts;

/* What the statistics say about one table */
typedef struct TableFacts
{
	Oid			relid;
	char	   *name;			/* schema.table, quoted as needed */
	double		pages;
	double		live;
	double		dead;
	double		mod_since_analyze;
	double		seq_scan;
	double		idx_scan;
	double		updates;
	double		hot_updates;
	double		deletes;
	double		heap_hit;
	double		heap_read;
	double		xid_age;
	double		mxid_age;
	TimestampTz last_vacuum;
	bool		last_vacuum_null;
	TimestampTz last_analyze;
	bool		last_analyze_null;
	double		tuple_length;	/* a row's tuple length, estimated */
	int			fillfactor;
	double		vacuum_threshold;	/* autovacuum's, for this table */
	double		vacuum_scale_factor;
	double		analyze_threshold;
	double		analyze_scale_factor;
	double		freeze_max_age;
	double		multixact_freeze_max_age;
	List	   *indexes;		/* IndexFacts, by OID */
	List	   *drops;			/* its drop candidates: drop_def, reason */
	/* as read from the catalogs, for what the statistics give */
	StorageFacts storage;
	double		reltuples;
	double		relpages;
	int			natts;			/* relnatts: its columns, dropped ones too */
	PerfoptStatEntry *stat;		/* its place in the statistics pass */
	/* filled as the table is assessed */
	double		index_bytes;
	double		index_waste_bytes;
	char	   *worst_index;	/* the most bloated big btree */
	double		worst_index_bloat;
	double		bloat_error;	/* exact mode's interval, or -1 */
} TableFacts;

/* ----------------------------------------------------------------
 * Reading the statistics
 *
 * A query of the tables, one pass over pg_class; their indexes from one
 * pass over pg_index and their pg_class rows; then pg_attribute and
 * pg_statistic for the columns of the tables that hold rows (each catalog
 * read whole, or through its index for each relation when that costs
 * less: read_catalog_rows).  The counters of the tables and their
 * indexes come from one pass over the shared statistics (stat_pass.c; a
 * look-up each for a few), not from pg_stat_user_tables and
 * pg_statio_user_tables, which group every table's indexes twice, nor a
 * pg_stat_get_* call per counter; the SQL function reads them as one
 * snapshot.  Sizes come from the metrics sampler's state for the relations
 * that did not change since its last sample, else from the files
 * (perfopt_relation_bytes_fresh, table_state.c): no relation is opened, so
 * no lock is taken and no relation cache entry built, whatever the number
 * of tables.
 * ----------------------------------------------------------------
 */

static double
get_double(HeapTuple tuple, TupleDesc desc, int column, double null_value)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, desc, column, &isnull);

	return isnull ? null_value : DatumGetFloat8(value);
}

static Oid
get_oid(HeapTuple tuple, TupleDesc desc, int column)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tuple, desc, column, &isnull);

	return isnull ? InvalidOid : DatumGetObjectId(value);
}

/* A setting of the table's reloptions (text[] "name=value"), or fallback */
static double
reloption(Datum options, bool isnull, const char *name, double fallback)
{
	Datum	   *items;
	int			nitems;
	size_t		len = strlen(name);

	if (isnull)
		return fallback;
	deconstruct_array(DatumGetArrayTypeP(options), TEXTOID, -1, false, TYPALIGN_INT,
					  &items, NULL, &nitems);
	for (int i = 0; i < nitems; i++)
	{
		char	   *item = TextDatumGetCString(items[i]);

		if (strncmp(item, name, len) == 0 && item[len] == '=')
			return strtod(item + len + 1, NULL);
	}
	return fallback;
}

static double
setting(const char *name)
{
	return strtod(GetConfigOption(name, false, false), NULL);
}

/* A column of a table that holds rows, as read_columns reads it */
typedef struct ColumnFacts
{
	AttrNumber	attnum;
	double		attlen;
	int			align;			/* bytes */
	double		width;			/* pg_stats' avg_width, else a default */
	double		null_frac;		/* pg_stats' null_frac, else 0 */
	bool		has_stats;		/* pg_statistic holds its width and null fraction
								 * (once checked: and pg_stats shows them) */
	double		stats_width;
	double		stats_null_frac;
} ColumnFacts;

/*
 * The length of a row's tuple: a header with a null bitmap when some
 * column has nulls, then each column aligned as the heap aligns it (a short
 * varlena, under 127 bytes, not at all), weighted by how often it is not
 * null.  On a page it takes that padded to MAXALIGN, plus its line pointer.
 */
static double
estimate_tuple_length(ColumnFacts *columns, int natts)
{
	double		offset = 0;
	double		header;
	bool		has_nulls = false;

	for (int i = 0; i < natts; i++)
	{
		ColumnFacts *c = &columns[i];
		double		aligned = offset;

		if (c->attlen > 0 || c->width > 127)
			aligned = TYPEALIGN(c->align, (uintptr_t) ceil(offset));
		offset += (1 - c->null_frac) * ((aligned - offset) + c->width);
		has_nulls |= c->null_frac > 0;
	}
	header = MAXALIGN(SizeofHeapTupleHeader + (has_nulls ? BITMAPLEN(natts) : 0));
	return header + offset;
}

/*
 * The facts of relid in tables (sorted by relid), walking on from *next,
 * which a caller reading relids in ascending order keeps between calls;
 * NULL if relid is not listed
 */
static TableFacts *
table_facts_find(List *tables, ListCell **next, Oid relid)
{
	while (*next != NULL && ((TableFacts *) lfirst(*next))->relid < relid)
		*next = lnext(tables, *next);
	if (*next == NULL || ((TableFacts *) lfirst(*next))->relid != relid)
		return NULL;
	return lfirst(*next);
}

/*
 * Bytes of the relation: from the sampler's state when its file and
 * statistics have not changed since (table_state.c), else its files
 */
static double
storage_bytes(StorageFacts *s, uint64 changes)
{
	return (double) perfopt_relation_bytes_fresh(s->relid, s->tablespace, s->filenode, s->persistence,
												 s->namespace, s->shared, changes);
}

/* An index as read_table_facts finds it in pg_index, then in pg_class */
typedef struct IndexRow
{
	Oid			indexrelid;
	Oid			indrelid;
	bool		usable;			/* live and valid */
	int			natts;
	int16		keys[INDEX_MAX_KEYS];
	bool		in_class;		/* its pg_class row was read */
	bool		btree;
	StorageFacts storage;
	TableFacts *table;			/* NULL unless its table is listed */
	PerfoptStatEntry *stat;		/* its place in the statistics pass */
} IndexRow;

/* A schema, as its tables are listed and named */
typedef struct SchemaName
{
	Oid			nspid;			/* the hash key */
	bool		system;			/* pg_catalog, information_schema, TOAST's */
	bool		perfopt;
	char	   *quoted;			/* quote_ident(nspname) */
} SchemaName;

/* The tables' facts are allocated this many at a time */
#define TABLE_FACTS_BLOCK	256

/* What read_table_facts reads the catalogs into */
typedef struct FactsReader
{
	Oid			only;			/* the table asked for, or InvalidOid */
	MemoryContext cxt;			/* of the tables' and indexes' facts */
	MemoryContext work;			/* of the hashes */
	List	   *tables;			/* TableFacts */
	oidmap_hash *byindex;		/* IndexRow by OID */
	List	   *index_rows;		/* the same IndexRows, in pg_index's order */
	TableFacts *free_tables;	/* where the next tables' facts go ... */
	int			nfree_tables;	/* ... room for this many */
	HTAB	   *schemas;		/* SchemaName by OID */
	/* autovacuum's settings, for the tables that do not set their own */
	double		vacuum_threshold;
	double		vacuum_scale;
	double		analyze_threshold;
	double		analyze_scale;
	double		freeze_max;
	double		mxid_freeze_max;
} FactsReader;

static int
index_facts_cmp(const ListCell *a, const ListCell *b)
{
	Oid			x = ((IndexFacts *) lfirst(a))->indexrelid;
	Oid			y = ((IndexFacts *) lfirst(b))->indexrelid;

	return x < y ? -1 : x > y ? 1 : 0;
}

static int
table_facts_cmp(const ListCell *a, const ListCell *b)
{
	Oid			x = ((TableFacts *) lfirst(a))->relid;
	Oid			y = ((TableFacts *) lfirst(b))->relid;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* A pg_index row: the index, its table, its keys */
static void
add_index_row(void *arg, HeapTuple tuple)
{
	FactsReader *r = arg;
	Form_pg_index index = (Form_pg_index) GETSTRUCT(tuple);
	bool		found;
	OidMapEntry *entry = oidmap_insert(r->byindex, index->indexrelid, &found);
	IndexRow   *row;

	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(r->work);

		entry->value = palloc(sizeof(IndexRow));
		r->index_rows = lappend(r->index_rows, entry->value);
		MemoryContextSwitchTo(old);
	}
	row = entry->value;
	row->indexrelid = index->indexrelid;
	row->indrelid = index->indrelid;
	row->usable = index->indislive && index->indisvalid;
	row->natts = Min(index->indkey.dim1, INDEX_MAX_KEYS);
	memcpy(row->keys, index->indkey.values, row->natts * sizeof(int16));
	row->in_class = false;
	row->table = NULL;
	row->stat = NULL;
}

/*
 * The indexes, from pg_index: every one in one pass, or through its index
 * on the table for the table asked for
 */
static void
list_indexes(FactsReader *r)
{
	r->byindex = oidmap_create(r->work, OidIsValid(r->only) ? 16 : 4096, NULL);
	perfopt_scan_catalog(IndexRelationId, IndexIndrelidIndexId, Anum_pg_index_indrelid, r->only,
						 add_index_row, r);
}

/* A schema's name and whether its tables are listed, once per schema */
static SchemaName *
schema_of(FactsReader *r, Oid nspid)
{
	bool		found;
	SchemaName *s = hash_search(r->schemas, &nspid, HASH_ENTER, &found);

	if (!found)
	{
		char	   *name = get_namespace_name(nspid);

		/* a schema dropped meanwhile: the query's join left its tables out */
		s->system = name == NULL || strcmp(name, "pg_catalog") == 0 ||
			strcmp(name, "information_schema") == 0 || strncmp(name, "pg_toast", 8) == 0;
		s->perfopt = name != NULL && strcmp(name, "perfopt") == 0;
		s->quoted = name != NULL ? MemoryContextStrdup(r->work, quote_identifier(name)) : NULL;
	}
	return s;
}

/*
 * A pg_class row: an index's storage and access method, or a table of
 * pg_stat_user_tables (or the one asked for, in the perfopt schema too)
 */
static void
add_class_row(void *arg, HeapTuple tuple)
{
	FactsReader *r = arg;
	Form_pg_class c = (Form_pg_class) GETSTRUCT(tuple);
	SchemaName *schema;
	TableFacts *t;
	Datum		options;
	bool		no_options;
	MemoryContext old;

	if (c->relkind == RELKIND_INDEX)
	{
		IndexRow   *row;

		if (c->relnamespace != PG_TOAST_NAMESPACE &&
			(row = oidmap_get(r->byindex, c->oid)) != NULL && !row->in_class)
		{
			row->in_class = true;
			row->btree = c->relam == BTREE_AM_OID;
			perfopt_storage_facts_of(c, &row->storage);
		}
		return;
	}
	if ((c->relkind != RELKIND_RELATION && c->relkind != RELKIND_MATVIEW) ||
		(OidIsValid(r->only) && (c->oid != r->only || r->tables != NIL)))
		return;
	schema = schema_of(r, c->relnamespace);
	if (schema->system || (!OidIsValid(r->only) && schema->perfopt))
		return;

	old = MemoryContextSwitchTo(r->cxt);
	/* in arrays: a palloc chunk each took 512 bytes for 312 */
	if (r->nfree_tables == 0)
	{
		r->nfree_tables = OidIsValid(r->only) ? 1 : TABLE_FACTS_BLOCK;
		r->free_tables = palloc0(r->nfree_tables * sizeof(TableFacts));
	}
	t = r->free_tables++;
	r->nfree_tables--;
	t->relid = c->oid;
	t->name = psprintf("%s.%s", schema->quoted, quote_identifier(NameStr(c->relname)));
	perfopt_storage_facts_of(c, &t->storage);
	t->reltuples = c->reltuples;
	t->relpages = c->relpages;
	t->natts = c->relnatts;
	t->xid_age = DatumGetInt32(DirectFunctionCall1(xid_age, TransactionIdGetDatum(c->relfrozenxid)));
	t->mxid_age = DatumGetInt32(DirectFunctionCall1(mxid_age, TransactionIdGetDatum(c->relminmxid)));
	options = SysCacheGetAttr(RELOID, tuple, Anum_pg_class_reloptions, &no_options);
	t->fillfactor = (int) reloption(options, no_options, "fillfactor", 100);
	t->vacuum_threshold = reloption(options, no_options, "autovacuum_vacuum_threshold", r->vacuum_threshold);
	t->vacuum_scale_factor = reloption(options, no_options, "autovacuum_vacuum_scale_factor", r->vacuum_scale);
	t->analyze_threshold = reloption(options, no_options, "autovacuum_analyze_threshold", r->analyze_threshold);
	t->analyze_scale_factor = reloption(options, no_options, "autovacuum_analyze_scale_factor", r->analyze_scale);
	t->freeze_max_age = reloption(options, no_options, "autovacuum_freeze_max_age", r->freeze_max);
	t->multixact_freeze_max_age = reloption(options, no_options, "autovacuum_multixact_freeze_max_age",
											r->mxid_freeze_max);
	t->bloat_error = -1;
	t->worst_index_bloat = -1;
	r->tables = lappend(r->tables, t);
	MemoryContextSwitchTo(old);
}

/*
 * The tables and their indexes' rows, from pg_class: one pass over it, or
 * for the table asked for, its row and its indexes' through its index
 */
static void
list_classes(FactsReader *r)
{
	HASHCTL		ctl = {0};

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(SchemaName);
	ctl.hcxt = r->work;
	r->schemas = hash_create("perfopt table_health schemas", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	perfopt_scan_catalog(RelationRelationId, ClassOidIndexId, Anum_pg_class_oid, r->only, add_class_row, r);
	if (OidIsValid(r->only))
		perfopt_read_catalog_rows(r->byindex, r->byindex->members, RelationRelationId, ClassOidIndexId,
								  Anum_pg_class_oid, add_class_row, r);
	list_sort(r->tables, table_facts_cmp);
}

/*
 * The tables' indexes (those whose pg_class row was read) go with them;
 * each table's and index's statistics entry is wanted from the pass
 */
static void
want_statistics(FactsReader *r, PerfoptStatPass *pass)
{
	oidmap_hash *bytable = oidmap_create(r->work, Max(list_length(r->tables), 16), NULL);
	ListCell   *lc;

	perfopt_stat_pass_init(pass, list_length(r->tables) + r->byindex->members);
	foreach(lc, r->tables)
	{
		TableFacts *t = lfirst(lc);
		bool		found;

		oidmap_insert(bytable, t->relid, &found)->value = t;
		t->stat = perfopt_stat_pass_want(pass, t->relid, true);
	}
	foreach(lc, r->index_rows)
	{
		IndexRow   *row = lfirst(lc);

		if (!row->in_class || (row->table = oidmap_get(bytable, row->indrelid)) == NULL)
			continue;			/* gone, or an index of a table not listed */
		row->stat = perfopt_stat_pass_want(pass, row->indexrelid, false);
	}
	oidmap_destroy(bytable);
}

/* The tables' counters and sizes, once the pass has run */
static void
read_table_stats(FactsReader *r, PerfoptStatPass *pass)
{
	ListCell   *lc;

	foreach(lc, r->tables)
	{
		TableFacts *t = lfirst(lc);
		PgStat_StatTabEntry *stats = perfopt_stat_pass_get(pass, t->stat);

		t->pages = storage_bytes(&t->storage, perfopt_relation_changes(stats)) / BLCKSZ;
		if (stats != NULL)
		{
			t->live = (double) stats->n_live_tuples;
			t->dead = (double) stats->n_dead_tuples;
			t->mod_since_analyze = (double) stats->changes_since_analyze;
			t->seq_scan = (double) stats->numscans;
			t->updates = (double) stats->tuples_updated;
			t->hot_updates = (double) stats->tuples_hot_updated;
			t->deletes = (double) stats->tuples_deleted;
			t->heap_hit = (double) stats->blocks_hit;
			t->heap_read = (double) (stats->blocks_fetched - stats->blocks_hit);
			/* greatest() of the two, NULL when neither happened */
			t->last_vacuum = Max(stats->vacuum_timestamp, stats->autovac_vacuum_timestamp);
			t->last_analyze = Max(stats->analyze_timestamp, stats->autovac_analyze_timestamp);
		}
		t->last_vacuum_null = t->last_vacuum == 0;
		t->last_analyze_null = t->last_analyze == 0;

		/*
		 * After a crash or a statistics reset n_live_tup starts again from
		 * 0: fall back on pg_class, scaled to the table's size as the
		 * planner does.
		 */
		if (t->live <= 0 && t->relpages > 0)
			t->live = Max(0, t->reltuples) * t->pages / t->relpages;
	}
}

/*
 * Once the pass has run: idx_scan as pg_stat_user_tables sums it (over
 * every index of the table), and the sizes and keys of the indexes whose
 * bloat is estimated (live, valid and btree), each table's by OID
 */
static void
read_index_stats(FactsReader *r, PerfoptStatPass *pass)
{
	ListCell   *lc;
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	foreach(lc, r->index_rows)
	{
		IndexRow   *row = lfirst(lc);
		int64		scans;
		uint64		changes;
		IndexFacts *x;

		if (row->table == NULL)
			continue;
		(void) perfopt_stat_pass_counts(pass, row->stat, &scans, &changes);
		row->table->idx_scan += (double) scans;
		if (!row->usable || !row->btree)
			continue;
		x = palloc0(sizeof(IndexFacts));
		x->indexrelid = row->indexrelid;
		x->bytes = storage_bytes(&row->storage, changes);
		x->natts = row->natts;
		x->keys = palloc(Max(x->natts, 1) * sizeof(int16));
		memcpy(x->keys, row->keys, x->natts * sizeof(int16));
		x->key_width = 8 * x->natts;	/* read_columns knows better */
		row->table->indexes = lappend(row->table->indexes, x);
	}
	foreach(lc, r->tables)
	{
		TableFacts *t = lfirst(lc);

		if (list_length(t->indexes) > 1)
			list_sort(t->indexes, index_facts_cmp);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Does pg_stats show the caller the statistics of this table's columns?
 * Not for a table whose row level security is active for the caller (the
 * view's condition); *whole_table tells whether the caller may read the
 * whole table, else each column is checked.
 */
static bool
may_read_column_stats(Oid relid, bool *whole_table)
{
	/*
	 * A superuser may read every table, and row level security never applies
	 * to one (who bypasses it): both checks would say so, each after a
	 * catalog-cache look-up of the table, 10,000 misses in a fresh session
	 */
	if (superuser())
	{
		*whole_table = true;
		return true;
	}
	*whole_table = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
	return check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED;
}

/* The columns of one table, gathered from pg_attribute in any order */
typedef struct TableColumns
{
	Oid			relid;
	TableFacts *table;
	ColumnFacts *columns;
	int			ncolumns;
	int			allocated;
	bool		read;			/* from pg_attribute in this call, not kept */
	bool		stats_kept;		/* its statistics too were kept */
} TableColumns;

static int
column_attnum_cmp(const void *a, const void *b)
{
	return (int) ((const ColumnFacts *) a)->attnum - (int) ((const ColumnFacts *) b)->attnum;
}

/*
 * The tables whose columns are read, and the last one found: a catalog's
 * rows of one relation come one after another, so the map is asked once
 * for each run of them, not for every row (pg_attribute has 220,000 rows
 * at 10,000 tables)
 */
typedef struct ColumnsReader
{
	oidmap_hash *byrel;			/* TableColumns by table OID */
	Oid			last_relid;
	TableColumns *last;			/* its TableColumns, or NULL */
} ColumnsReader;

static TableColumns *
columns_of(ColumnsReader *cr, Oid relid)
{
	if (relid != cr->last_relid)
	{
		cr->last_relid = relid;
		cr->last = oidmap_get(cr->byrel, relid);
	}
	return cr->last;
}

/* A column of a table, its statistics not read yet */
static void
set_column(ColumnFacts *c, AttrNumber attnum, int16 attlen, int align)
{
	c->attnum = attnum;
	c->attlen = attlen;
	c->align = align;
	c->width = attlen > 0 ? attlen : 32;
	c->null_frac = 0;
	c->has_stats = false;
}

/* A column of a table read, neither a system column nor a dropped one */
static void
add_column(void *arg, HeapTuple tuple)
{
	Form_pg_attribute a = (Form_pg_attribute) GETSTRUCT(tuple);
	TableColumns *tc;
	ColumnFacts *c;

	if (a->attnum <= 0 || a->attisdropped ||
		(tc = columns_of((ColumnsReader *) arg, a->attrelid)) == NULL)
		return;
	if (tc->ncolumns == tc->allocated)
	{
		tc->allocated = Max(8, tc->allocated * 2);
		tc->columns = tc->columns == NULL ? palloc(tc->allocated * sizeof(ColumnFacts)) :
			repalloc(tc->columns, tc->allocated * sizeof(ColumnFacts));
	}
	c = &tc->columns[tc->ncolumns++];
	set_column(c, a->attnum, a->attlen,
			   a->attalign == TYPALIGN_CHAR ? 1 : a->attalign == TYPALIGN_SHORT ? 2 :
			   a->attalign == TYPALIGN_INT ? 4 : 8);
}

/*
 * The statistics of a column of a table read (whose columns are sorted),
 * those of the table itself, not of its inheritance tree
 */
static void
add_statistics(void *arg, HeapTuple tuple)
{
	Form_pg_statistic st = (Form_pg_statistic) GETSTRUCT(tuple);
	TableColumns *tc;
	ColumnFacts key;
	ColumnFacts *c;

	if (st->stainherit ||
		(tc = columns_of((ColumnsReader *) arg, st->starelid)) == NULL ||
		tc->ncolumns == 0)
		return;
	key.attnum = st->staattnum;
	c = bsearch(&key, tc->columns, tc->ncolumns, sizeof(ColumnFacts), column_attnum_cmp);
	if (c == NULL)
		return;
	c->has_stats = true;
	c->stats_width = st->stawidth;
	c->stats_null_frac = st->stanullfrac;
}

/*
 * The widths of the key columns of the table's indexes, as the planner
 * takes them from pg_statistic (8 bytes for an expression or a column
 * without one), here those pg_stats shows the caller: a look-up of each
 * key column in the catalog cache was a sixth of table_health's time at
 * 10,000 tables that hold rows
 */
static void
index_key_widths(TableColumns *tc)
{
	ListCell   *lc;

	foreach(lc, tc->table->indexes)
	{
		IndexFacts *x = lfirst(lc);

		x->key_width = 0;
		for (int i = 0; i < x->natts; i++)
		{
			ColumnFacts key;
			ColumnFacts *c = NULL;

			key.attnum = x->keys[i];
			if (key.attnum > 0)
				c = bsearch(&key, tc->columns, tc->ncolumns, sizeof(ColumnFacts), column_attnum_cmp);
			x->key_width += c != NULL && c->has_stats && c->stats_width > 0 ? c->stats_width : 8;
		}
	}
}

/*
 * The columns of the tables read before, as pg_attribute holds them, and
 * their widths and null fractions, as pg_statistic holds them, kept in the
 * backend between calls: the pass over pg_attribute (220,000 rows at 10,000
 * tables) was a fifth of a pooled connection's second call, and the pass
 * over pg_statistic grows with the columns (200,000 rows at 10,000 tables of
 * 20 columns).  Every change to a table's rows in pg_attribute invalidates
 * the table's relcache entry (inval.c), and with it the table's columns
 * here, as the relcache forgets its tuple descriptor.  A change to
 * pg_statistic invalidates only catalog-cache entries, by a hash of their
 * keys: any of them forgets every table's statistics here (they are read
 * again at the next call).  Some 130 bytes a table of three columns
 * (test/bench/scale.sh prints the context's size).
 */
typedef struct KeptColumn
{
	AttrNumber	attnum;
	int16		attlen;
	int8		align;			/* bytes */
	bool		has_stats;		/* pg_statistic's row: the two below */
	int16		stats_width;	/* a stored width fits a page */
	float4		stats_null_frac;
} KeptColumn;					/* 12 bytes: 20 columns and a header fill 256 */

typedef struct KeptColumns
{
	uint64		stats_generation;	/* kept_stats_generation of the statistics
									 * below, 0 for none */
	int			ncolumns;
	KeptColumn	columns[FLEXIBLE_ARRAY_MEMBER];
} KeptColumns;

static MemoryContext kept_cxt = NULL;
static oidmap_hash *kept_columns = NULL;	/* KeptColumns by table OID */
static uint64 kept_generation = 0;	/* invalidations seen */
static uint64 kept_stats_generation = 1;	/* pg_statistic's, plus one */

static void
kept_columns_invalidate(Datum arg, Oid relid)
{
	KeptColumns *k;

	kept_generation++;
	if (kept_columns == NULL)
		return;
	if (!OidIsValid(relid))
	{
		/* every relation: a reset of the caches, or the queue overflowed */
		MemoryContextReset(kept_cxt);
		kept_columns = NULL;
	}
	else if ((k = oidmap_get(kept_columns, relid)) != NULL)
	{
		oidmap_delete(kept_columns, relid);
		pfree(k);
	}
}

/* A row of pg_statistic changed (or every one): forget all statistics kept */
static void
kept_statistics_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	kept_stats_generation++;
}

/* The map of kept columns, made (and the callbacks registered) once */
static oidmap_hash *
kept_columns_map(void)
{
	if (kept_cxt == NULL)
	{
		kept_cxt = AllocSetContextCreate(CacheMemoryContext, "perfopt table_health kept columns",
										 ALLOCSET_DEFAULT_SIZES);
		CacheRegisterRelcacheCallback(kept_columns_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(STATRELATTINH, kept_statistics_invalidate, (Datum) 0);
	}
	if (kept_columns == NULL)
		kept_columns = oidmap_create(kept_cxt, 1024, NULL);
	return kept_columns;
}

/*
 * A table's columns as kept, into its TableColumns, with their statistics
 * when those kept are of stats_generation
 */
static void
columns_from_kept(TableColumns *tc, KeptColumns *k, uint64 stats_generation)
{
	tc->ncolumns = tc->allocated = k->ncolumns;
	tc->columns = k->ncolumns > 0 ? palloc(k->ncolumns * sizeof(ColumnFacts)) : NULL;
	tc->stats_kept = k->stats_generation == stats_generation;
	for (int i = 0; i < k->ncolumns; i++)
	{
		KeptColumn *kc = &k->columns[i];
		ColumnFacts *c = &tc->columns[i];

		set_column(c, kc->attnum, kc->attlen, kc->align);
		if (tc->stats_kept && kc->has_stats)
		{
			c->has_stats = true;
			c->stats_width = kc->stats_width;
			c->stats_null_frac = kc->stats_null_frac;
		}
	}
}

/* The statistics of a table's kept columns, as just read */
static void
keep_statistics(KeptColumns *k, TableColumns *tc, uint64 stats_generation)
{
	if (k->ncolumns != tc->ncolumns)
		return;
	for (int i = 0; i < k->ncolumns; i++)
	{
		KeptColumn *kc = &k->columns[i];
		ColumnFacts *c = &tc->columns[i];

		if (kc->attnum != c->attnum)
			return;
		kc->has_stats = c->has_stats;
		kc->stats_width = c->has_stats ? (int16) Min(c->stats_width, PG_INT16_MAX) : 0;
		kc->stats_null_frac = c->has_stats ? (float4) c->stats_null_frac : 0;
	}
	k->stats_generation = stats_generation;
}

/* A table's columns as read (sorted), kept for the next calls */
static void
keep_columns(oidmap_hash *kept, TableColumns *tc)
{
	KeptColumns *k = MemoryContextAlloc(kept_cxt, offsetof(KeptColumns, columns) +
										Max(tc->ncolumns, 1) * sizeof(KeptColumn));
	bool		found;
	OidMapEntry *entry;

	k->stats_generation = 0;
	k->ncolumns = tc->ncolumns;
	for (int i = 0; i < tc->ncolumns; i++)
	{
		ColumnFacts *c = &tc->columns[i];

		k->columns[i].attnum = c->attnum;
		k->columns[i].attlen = (int16) c->attlen;
		k->columns[i].align = (int8) c->align;
		k->columns[i].has_stats = false;
		k->columns[i].stats_width = 0;
		k->columns[i].stats_null_frac = 0;
	}
	entry = oidmap_insert(kept, tc->relid, &found);
	if (found)
		pfree(entry->value);
	entry->value = k;
}

/*
 * The row length of each table that holds something (that of the others
 * is not used), from its columns' lengths and alignments and the width and
 * null fraction pg_stats shows the caller.  pg_attribute and pg_statistic
 * are read as the catalog caches read them (so without their privileges:
 * pg_stats' are checked here), each in one pass or through its index for
 * each table, whichever costs less: a query filtering pg_attribute
 * by a list of the tables and a cache look-up for each column cost 170 ms
 * at 10,000 tables of three columns.  pg_attribute is read only for the
 * tables whose columns are not kept from a call before, pg_statistic for
 * those whose statistics are not.
 */
static void
read_columns(List *tables)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "perfopt table_health columns",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	oidmap_hash *byrel = oidmap_create(cxt, Max(list_length(tables), 16), NULL);
	oidmap_hash *unknown = NULL;	/* TableColumns not kept, by table OID */
	oidmap_hash *kept;
	uint64		generation;
	uint64		stats_generation;
	List	   *holding = NIL;	/* the same TableColumns, in the tables' order */
	double		attributes = 0; /* pg_attribute's rows of the tables in unknown */
	double		statistics = 0; /* pg_statistic's, at most, of those in byrel */
	TableColumns *tc;
	ListCell   *lc;
	bool		found;

	/*
	 * forget first the columns of the tables changed since the last call,
	 * and read what is not kept with a snapshot taken after that: the
	 * query's, taken before, could miss a change whose invalidation was just
	 * processed, and what it read would then be kept in its place
	 */
	AcceptInvalidationMessages();
	kept = kept_columns_map();
	generation = kept_generation;
	stats_generation = kept_stats_generation;
	PushActiveSnapshot(GetCatalogSnapshot(StatisticRelationId));
	foreach(lc, tables)
	{
		TableFacts *t = lfirst(lc);

		if (t->pages > 0 || t->live + t->dead > 0)
		{
			KeptColumns *k = oidmap_get(kept, t->relid);

			tc = palloc(sizeof(TableColumns));
			tc->relid = t->relid;
			tc->table = t;
			tc->columns = NULL;
			tc->ncolumns = tc->allocated = 0;
			tc->read = (k == NULL);
			tc->stats_kept = false;
			if (k != NULL)
				columns_from_kept(tc, k, stats_generation);
			else
			{
				if (unknown == NULL)
					unknown = oidmap_create(cxt, Max(list_length(tables), 16), NULL);
				oidmap_insert(unknown, t->relid, &found)->value = tc;
				/* with the system columns' rows */
				attributes += t->natts - (FirstLowInvalidHeapAttributeNumber + 1);
			}
			if (!tc->stats_kept)
			{
				oidmap_insert(byrel, t->relid, &found)->value = tc;
				statistics += t->natts;
			}
			holding = lappend(holding, tc);
		}
	}

	if (unknown != NULL)
	{
		ColumnsReader cr = {unknown, InvalidOid, NULL};

		perfopt_read_catalog_rows(unknown, attributes, AttributeRelationId, AttributeRelidNumIndexId,
								  Anum_pg_attribute_attrelid, add_column, &cr);
		/* kept unless an invalidation came while they were read */
		foreach(lc, holding)
		{
			tc = lfirst(lc);
			if (!tc->read)
				continue;
			if (tc->ncolumns > 1)
				qsort(tc->columns, tc->ncolumns, sizeof(ColumnFacts), column_attnum_cmp);
			if (generation == kept_generation)
				keep_columns(kept, tc);
		}
	}
	if (byrel->members > 0)
	{
		ColumnsReader cr = {byrel, InvalidOid, NULL};

		perfopt_read_catalog_rows(byrel, statistics, StatisticRelationId, StatisticRelidAttnumInhIndexId,
								  Anum_pg_statistic_starelid, add_statistics, &cr);
		/* kept unless an invalidation came while they were read */
		if (generation == kept_generation && stats_generation == kept_stats_generation)
		{
			foreach(lc, holding)
			{
				KeptColumns *k;

				tc = lfirst(lc);
				if (!tc->stats_kept && (k = oidmap_get(kept, tc->relid)) != NULL)
					keep_statistics(k, tc, stats_generation);
			}
		}
	}
	PopActiveSnapshot();

	/*
	 * the widths pg_stats shows the caller, else the defaults; in the
	 * tables' order, which is nearly the order of their facts in memory
	 */
	foreach(lc, holding)
	{
		bool		whole_table = false;
		bool		stats_visible = false;

		tc = lfirst(lc);
		if (tc->ncolumns == 0)
			continue;
		/* the privileges matter only where there are statistics to show */
		for (int i = 0; i < tc->ncolumns && !stats_visible; i++)
			stats_visible = tc->columns[i].has_stats;
		if (stats_visible)
			stats_visible = may_read_column_stats(tc->relid, &whole_table);
		for (int i = 0; i < tc->ncolumns; i++)
		{
			ColumnFacts *c = &tc->columns[i];

			c->has_stats = stats_visible && c->has_stats &&
				(whole_table ||
				 pg_attribute_aclcheck(tc->relid, c->attnum, GetUserId(), ACL_SELECT) == ACLCHECK_OK);
			if (c->has_stats)
			{
				c->width = c->stats_width;
				c->null_frac = c->stats_null_frac;
			}
		}
		tc->table->tuple_length = estimate_tuple_length(tc->columns, tc->ncolumns);
		index_key_widths(tc);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * The statistics of every user table (or of only one), read as the
 * catalog caches read the catalogs, with the query's snapshot: pg_index,
 * then pg_class (each in one pass, or through its index for the table
 * asked for), then every table's and index's statistics entry in one pass,
 * then the columns.  A query of the tables and one joining pg_index and
 * pg_class for 20,000 indexes each cost as much as a pass over pg_class
 * again or more.
 */
static List *
read_table_facts(Oid only)
{
	FactsReader r = {0};
	PerfoptStatPass pass;
	MemoryContext old;

	r.only = only;
	r.cxt = CurrentMemoryContext;
	r.work = AllocSetContextCreate(CurrentMemoryContext, "perfopt table_health catalogs",
								   ALLOCSET_DEFAULT_SIZES);
	r.vacuum_threshold = setting("autovacuum_vacuum_threshold");
	r.vacuum_scale = setting("autovacuum_vacuum_scale_factor");
	r.analyze_threshold = setting("autovacuum_analyze_threshold");
	r.analyze_scale = setting("autovacuum_analyze_scale_factor");
	r.freeze_max = setting("autovacuum_freeze_max_age");
	r.mxid_freeze_max = setting("autovacuum_multixact_freeze_max_age");

	list_indexes(&r);
	list_classes(&r);
	old = MemoryContextSwitchTo(r.work);
	want_statistics(&r, &pass);
	MemoryContextSwitchTo(old);
	perfopt_stat_pass_run(&pass);
	read_table_stats(&r, &pass);
	read_index_stats(&r, &pass);
	MemoryContextDelete(r.work);
	read_columns(r.tables);
	return r.tables;
}

/* ----------------------------------------------------------------
 * Measuring pages (exact mode)
 * ----------------------------------------------------------------
 */

/* Waste of one heap page: dead tuple bytes plus free space, over BLCKSZ */
static double
heap_page_waste(Relation rel, BlockNumber block, BufferAccessStrategy strategy)
{
	Buffer		buffer;
	Page		page;
	OffsetNumber maxoff;
	double		waste;
	SnapshotData dirty;

	InitDirtySnapshot(dirty);
	buffer = ReadBufferExtended(rel, MAIN_FORKNUM, block, RBM_NORMAL, strategy);
	LockBuffer(buffer, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buffer);
	waste = PageGetHeapFreeSpace(page);
	maxoff = PageGetMaxOffsetNumber(page);
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
	{
		ItemId		item = PageGetItemId(page, off);
		HeapTupleData tuple;

		if (!ItemIdIsNormal(item))
			continue;
		tuple.t_data = (HeapTupleHeader) PageGetItem(page, item);
		tuple.t_len = ItemIdGetLength(item);
		tuple.t_tableOid = RelationGetRelid(rel);
		ItemPointerSet(&tuple.t_self, block, off);
		if (!HeapTupleSatisfiesVisibility(&tuple, &dirty, buffer))
			waste += tuple.t_len;
	}
	UnlockReleaseBuffer(buffer);
	return waste / BLCKSZ;
}

/* Leaf density of one btree page, or -1 if it is not a live leaf */
static double
btree_page_density(Relation index, BlockNumber block, BufferAccessStrategy strategy)
{
	Buffer		buffer;
	Page		page;
	double		density = -1;

	buffer = ReadBufferExtended(index, MAIN_FORKNUM, block, RBM_NORMAL, strategy);
	LockBuffer(buffer, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buffer);
	if (block != BTREE_METAPAGE && !PageIsNew(page))
	{
		BTPageOpaque opaque = BTPageGetOpaque(page);

		if (P_ISLEAF(opaque) && !P_IGNORE(opaque))
		{
			double		usable = ((PageHeader) page)->pd_special - SizeOfPageHeaderData;

			density = 1.0 - PageGetExactFreeSpace(page) / usable;
		}
	}
	UnlockReleaseBuffer(buffer);
	return density;
}

typedef double (*PageMeasure) (Relation rel, BlockNumber block, BufferAccessStrategy strategy);

/*
 * Mean of a page measure over a relation: every page of a small one, a
 * random sample of a large one until the 95% interval is within target.
 * Returns the mean (-1 if no page counted) and the interval's half width.
 */
static double
measure_pages(Relation rel, PageMeasure measure, double *error)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(rel);
	BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);
	double		sum = 0;
	double		sum_squares = 0;
	int			counted = 0;
	int			read = 0;

	*error = 0;
	if (nblocks <= FULL_READ_PAGES)
	{
		for (BlockNumber block = 0; block < nblocks; block++)
		{
			double		value = measure(rel, block, strategy);

			CHECK_FOR_INTERRUPTS();
			if (value < 0)
				continue;
			sum += value;
			counted++;
		}
		FreeAccessStrategy(strategy);
		return counted > 0 ? sum / counted : -1;
	}

	while (read < MAX_SAMPLE_PAGES)
	{
		BlockNumber blocks[SAMPLE_ROUND_PAGES];
		double		mean;
		double		variance;

		for (int i = 0; i < SAMPLE_ROUND_PAGES; i++)
			blocks[i] = (BlockNumber) pg_prng_uint64_range(&pg_global_prng_state, 0, nblocks - 1);
		for (int i = 0; i < SAMPLE_ROUND_PAGES; i++)
		{
			double		value = measure(rel, blocks[i], strategy);

			CHECK_FOR_INTERRUPTS();
			read++;
			if (value < 0)
				continue;
			sum += value;
			sum_squares += value * value;
			counted++;
		}
		if (counted < 2)
			continue;
		mean = sum / counted;
		variance = Max(0, (sum_squares - counted * mean * mean) / (counted - 1));
		*error = 1.96 * sqrt(variance / counted);
		if (*error * 100 <= TARGET_ERROR_PCT)
			break;
	}
	FreeAccessStrategy(strategy);
	return counted > 0 ? sum / counted : -1;
}

/* May the caller read the pages of this table? */
static bool
may_read_pages(Oid relid)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_STAT_SCAN_TABLES) ||
		pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
}

/*
 * Can this backend read the table's pages as heap pages?  Not those of
 * another session's temporary table, which live in that session's local
 * buffers, nor those of a table of another access method, whose pages need
 * not be heap pages: pgstattuple refuses both for the same reasons.
 */
static bool
pages_readable(Relation rel)
{
	return !RELATION_IS_OTHER_TEMP(rel) &&
		rel->rd_rel->relam == HEAP_TABLE_AM_OID;
}

/* ----------------------------------------------------------------
 * Indexes
 * ----------------------------------------------------------------
 */

/* Count an index's bytes and waste into its table's; note the worst big one */
static void
count_index(TableFacts *t, Oid indexrelid, double bytes, double bloat)
{
	t->index_bytes += bytes;
	t->index_waste_bytes += bloat * bytes;
	if (bytes >= REBUILD_MIN_BYTES && bloat * 100 > t->worst_index_bloat)
	{
		t->worst_index_bloat = bloat * 100;
		t->worst_index = perfopt_relation_name(indexrelid);
	}
}

/*
 * The btree indexes of a table: their bytes, and the bytes they waste,
 * estimated from the entries they hold against their size (from what
 * list_indexes read: no index is opened).  Notes the most bloated index of
 * 10 MB or more.
 */
static void
estimate_indexes(TableFacts *t)
{
	ListCell   *lc;

	foreach(lc, t->indexes)
	{
		IndexFacts *x = lfirst(lc);
		double		entry = sizeof(IndexTupleData) + sizeof(ItemIdData);
		double		needed;

		if (x->bytes <= 0)
			continue;
		/* the widths the planner uses; they do not count without rows */
		if (t->live + t->dead > 0)
			entry += x->key_width;
		needed = (t->live + t->dead) * MAXALIGN((uintptr_t) entry) /
			(BTREE_LEAF_FILL * (BLCKSZ - SizeOfPageHeaderData - sizeof(BTPageOpaqueData)));
		needed = (needed + 2) * BLCKSZ; /* meta page and root */
		count_index(t, x->indexrelid, x->bytes, Max(0, 1 - needed / x->bytes));
	}
}

/*
 * The same, measured: the density of the leaf pages of each btree index
 * (exact mode, which opens the table and its indexes to read them)
 */
static void
measure_indexes(TableFacts *t)
{
	Relation	rel = table_open(t->relid, AccessShareLock);
	ListCell   *lc;

	foreach(lc, RelationGetIndexList(rel))
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		double		bytes = (double) RelationGetNumberOfBlocks(index) * BLCKSZ;

		if (index->rd_rel->relam == BTREE_AM_OID && index->rd_index->indisvalid && bytes > 0)
		{
			double		error;
			double		density = measure_pages(index, btree_page_density, &error);

			if (density >= 0)
				count_index(t, lfirst_oid(lc), bytes, Max(0, 1 - density / BTREE_LEAF_FILL));
		}
		index_close(index, AccessShareLock);
	}
	table_close(rel, AccessShareLock);
}

/* ----------------------------------------------------------------
 * Issues and recommendations
 * ----------------------------------------------------------------
 */

/*
 * A row's issues or recommendations: a jsonb array of objects of three
 * strings, built as jsonb_in would build it from their text (which it
 * parsed for each of 10,000 tables: 5% of a pooled session's call)
 */
typedef struct JsonItems
{
	JsonbParseState *state;
	bool		any;			/* an item was added */
} JsonItems;

static void
json_string(JsonbParseState **state, JsonbIteratorToken token, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.len = strlen(s);
	v.val.string.val = (char *) s;
	(void) pushJsonbValue(state, token, &v);
}

static void
json_item(JsonItems *items, const char *k1, const char *v1, const char *k2, const char *v2,
		  const char *k3, const char *v3)
{
	if (!items->any)
		(void) pushJsonbValue(&items->state, WJB_BEGIN_ARRAY, NULL);
	items->any = true;
	(void) pushJsonbValue(&items->state, WJB_BEGIN_OBJECT, NULL);
	json_string(&items->state, WJB_KEY, k1);
	json_string(&items->state, WJB_VALUE, v1);
	json_string(&items->state, WJB_KEY, k2);
	json_string(&items->state, WJB_VALUE, v2);
	json_string(&items->state, WJB_KEY, k3);
	json_string(&items->state, WJB_VALUE, v3);
	/* sorts the keys, as the parser does */
	(void) pushJsonbValue(&items->state, WJB_END_OBJECT, NULL);
}

/* The array; none when it is empty (most tables' recommendations) */
static Datum
json_items_end(JsonItems *items, Datum none)
{
	if (!items->any)
		return none;
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&items->state, WJB_END_ARRAY, NULL)));
}

static void
issue(JsonItems *items, const char *component, double penalty, const char *message)
{
	if (penalty > 0)
		json_item(items, "component", component, "penalty", psprintf("%.1f", penalty),
				  "message", message);
}

static void
recommendation(JsonItems *items, const char *action, const char *statement, const char *reason)
{
	json_item(items, "action", action, "statement", statement, "reason", reason);
}

/*
 * Seconds the statistics have counted for, to turn counts into rates: since
 * the database's statistics were reset, or the server started, until
 * perfopt.now()
 */
static double
statistics_seconds(void)
{
	double		seconds = 3600;
	Datum		now = TimestampTzGetDatum(perfopt_now());

	SPI_connect();
	if (SPI_execute_with_args("SELECT extract(epoch FROM $1 - coalesce(stats_reset, pg_postmaster_start_time()))::float8"
							  " FROM pg_stat_database WHERE datname = current_database()",
							  1, (Oid[]) {TIMESTAMPTZOID}, &now, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
		seconds = get_double(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, 3600);
	SPI_finish();
	return Max(seconds, 60);
}

/*
 * The statements that fix what is wrong with the table; drop candidates
 * from perfopt.index_drop_candidates.
 */
static Datum
table_recommendations(TableFacts *t, TableHealth *h, const char *name, double seconds, Datum none)
{
	JsonItems	items = {NULL, false};
	double		table_bytes = t->pages * BLCKSZ;
	ListCell   *lc;

	if (h->xid_age_pct >= 75)
		recommendation(&items, "freeze", psprintf("VACUUM (FREEZE, ANALYZE) %s;", name),
					   psprintf("its oldest transaction ID is %.0f%% of the way to autovacuum_freeze_max_age; freezing now, at a time you choose, spares an anti-wraparound vacuum at a time you do not",
								h->xid_age_pct));
	else if ((h->dead_tuple_pct >= 10 && t->dead >= t->vacuum_threshold) || h->vacuum_due >= 1)
		recommendation(&items, "vacuum", psprintf("VACUUM (ANALYZE) %s;", name),
					   psprintf("%.0f dead tuples (%.0f%% of its %.0f rows) wait to be removed; autovacuum vacuums this table at %.0f + %.3g x %.0f = %.0f dead tuples%s",
								t->dead, h->dead_tuple_pct, t->live + t->dead,
								t->vacuum_threshold, t->vacuum_scale_factor, t->live + t->dead,
								t->vacuum_threshold + t->vacuum_scale_factor * (t->live + t->dead),
								h->vacuum_due >= 1 ? ", and has not" : ""));
	else if (h->analyze_due >= 1)
		recommendation(&items, "analyze", psprintf("ANALYZE %s;", name),
					   psprintf("%.0f rows changed since the last analyze, %.1f times autovacuum's threshold of %.0f + %.3g x %.0f = %.0f: the planner works from old statistics",
								t->mod_since_analyze, h->analyze_due,
								t->analyze_threshold, t->analyze_scale_factor, t->live + t->dead,
								t->analyze_threshold + t->analyze_scale_factor * (t->live + t->dead)));

	/* autovacuum settings sized from the change rate, where they help */
	{
		double		rows = t->live + t->dead;
		AutovacuumAdvice a;

		if (perfopt_autovacuum_advice(rows, t->updates + t->deletes, seconds,
									  t->vacuum_threshold, t->vacuum_scale_factor, &a))
			recommendation(&items, "autovacuum",
						   psprintf("ALTER TABLE %s SET (autovacuum_vacuum_scale_factor = %.3g, autovacuum_analyze_scale_factor = %.3g);",
									name, a.scale_factor, a.analyze_scale_factor),
						   psprintf("the table changes about %.0f rows an hour (%.0f updates and deletes in %.1f hours of statistics); "
									"at autovacuum_vacuum_scale_factor = %.3g autovacuum waits for %.0f + %.3g x %.0f rows = %.0f dead rows, %.1f hours of changes; "
									"at %.3g it waits for %.0f + %.3g x %.0f = %.0f, %.1f hours (and analyzes at half that)",
									a.changes_per_hour, t->updates + t->deletes, seconds / 3600,
									t->vacuum_scale_factor, t->vacuum_threshold, t->vacuum_scale_factor, rows,
									a.current_dead_rows, a.current_hours,
									a.scale_factor, t->vacuum_threshold, a.scale_factor, rows,
									a.advised_dead_rows, a.advised_hours));
	}

	if (h->hot_update_pct >= 0 && h->hot_update_pct < 50 && t->updates >= 1000 && t->fillfactor >= 100)
		recommendation(&items, "fillfactor", psprintf("ALTER TABLE %s SET (fillfactor = 90);", name),
					   psprintf("only %.0f%% of its %.0f updates are HOT; if the columns they change are not indexed, free space on each page lets an update stay on its page and skip the indexes (the setting applies to pages written from now on)",
								h->hot_update_pct, t->updates));

	if (h->bloat_pct >= REBUILD_BLOAT_PCT && table_bytes >= REBUILD_MIN_BYTES)
		recommendation(&items, "rebuild", psprintf("VACUUM FULL %s;", name),
					   psprintf("%.0f%% of its %.0f MB are dead tuples and free space; VACUUM FULL gives it back but locks the table against reads and writes while it runs: pg_repack --table %s does the same online",
								h->bloat_pct, table_bytes / (1024 * 1024), name));
	if (t->worst_index && t->worst_index_bloat >= REBUILD_BLOAT_PCT)
		recommendation(&items, "reindex", psprintf("REINDEX INDEX CONCURRENTLY %s;", t->worst_index),
					   psprintf("about %.0f%% of index %s is empty space; REINDEX CONCURRENTLY rebuilds it without blocking writes",
								t->worst_index_bloat, t->worst_index));

	foreach(lc, t->drops)
	{
		char	  **drop = lfirst(lc);	/* drop_def, reason */

		recommendation(&items, "drop_index", drop[0], drop[1]);
	}

	if (h->large && h->seq_scan_pct >= 90 && t->seq_scan >= 100)
		recommendation(&items, "index", "SELECT * FROM perfopt.recommend_indexes();",
					   psprintf("%.0f%% of its %.0f scans read the whole table: the index advisor finds the indexes the workload lacks",
								h->seq_scan_pct, t->seq_scan + t->idx_scan));

	return json_items_end(&items, none);
}

/*
 * The issues: each component that costs points, and why (each message
 * made only for a component that does: most tables have none)
 */
static Datum
describe_issues(TableFacts *t, TableHealth *h, HealthPenalties *p, Datum none)
{
	JsonItems	items = {NULL, false};
	if (p->wraparound > 0)
		issue(&items, "wraparound", p->wraparound,
			  psprintf("transaction ID age is %.0f%% of autovacuum_freeze_max_age", h->xid_age_pct));
	if (p->bloat > 0)
		issue(&items, "bloat", p->bloat,
			  psprintf("%.0f%% of the table is dead tuples and free space%s", h->bloat_pct,
					   h->index_bloat_pct >= 0 ? psprintf(", %.0f%% of its btree indexes", h->index_bloat_pct) : ""));
	if (p->dead_tuples > 0)
		issue(&items, "dead_tuples", p->dead_tuples,
			  psprintf("%.0f%% of its tuples are dead", h->dead_tuple_pct));
	if (p->vacuum > 0)
		issue(&items, "vacuum", p->vacuum,
			  psprintf("dead tuples are %.1f times autovacuum's threshold and it has not vacuumed the table", h->vacuum_due));
	if (p->analyze > 0)
		issue(&items, "analyze", p->analyze,
			  psprintf("rows changed since the last analyze are %.1f times autovacuum's threshold", h->analyze_due));
	if (p->seq_scans > 0)
		issue(&items, "seq_scans", p->seq_scans,
			  psprintf("%.0f%% of %.0f scans of a table of %.0f rows are sequential", h->seq_scan_pct,
					   t->seq_scan + t->idx_scan, t->live));
	if (p->cache > 0)
		issue(&items, "cache", p->cache,
			  psprintf("%.1f%% of its block reads are found in shared buffers", h->cache_hit_pct));
	if (p->hot_updates > 0)
		issue(&items, "hot_updates", p->hot_updates,
			  psprintf("%.0f%% of its %.0f updates are HOT", h->hot_update_pct, t->updates));
	return json_items_end(&items, none);
}

/*
 * The drop candidates of the tables (or of only one), each given to its
 * table, in the view's order
 */
static void
read_drop_candidates(List *tables, Oid only)
{
	MemoryContext cxt = CurrentMemoryContext;
	ListCell   *next = list_head(tables);

	SPI_connect();
	if (SPI_execute_with_args("SELECT table_name::oid, drop_def, index_name || ' is ' || reason"
							  " FROM perfopt.index_drop_candidates"
							  " WHERE $1 = 0 OR table_name = $1"
							  " ORDER BY table_name::oid, index_name::oid",
							  1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(only)},
							  NULL, true, 0) == SPI_OK_SELECT)
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Oid			relid = get_oid(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			TableFacts *t;
			MemoryContext spicxt;
			char	  **drop;

			t = table_facts_find(tables, &next, relid);
			if (t == NULL)
				continue;
			spicxt = MemoryContextSwitchTo(cxt);
			drop = palloc(2 * sizeof(char *));
			drop[0] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
			drop[1] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
			t->drops = lappend(t->drops, drop);
			MemoryContextSwitchTo(spicxt);
		}
	}
	SPI_finish();
}

/* ----------------------------------------------------------------
 * The function
 * ----------------------------------------------------------------
 */

static double
percent(double part, double whole)
{
	return whole > 0 ? 100.0 * part / whole : -1;
}

/*
 * perfopt.table_health(exact boolean, rel regclass [, drops boolean]): one
 * row per user table, or for rel only.  drops false leaves out the drop
 * candidates' recommendations, and the evaluation of
 * perfopt.index_drop_candidates they cost (nothing else depends on them):
 * for health(), which uses the scores only, and for the cycle's report,
 * which reads the drop candidates once for all of its parts.
 */
Datum
perfopt_table_health(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		exact = PG_ARGISNULL(0) ? false : PG_GETARG_BOOL(0);
	Oid			only = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	bool		drops = PG_NARGS() < 3 || PG_ARGISNULL(2) || PG_GETARG_BOOL(2);
	List	   *tables;
	ListCell   *lc;
	double		seconds;
	MemoryContext rowcxt;
	MemoryContext old;
	Datum		none;

	InitMaterializedSRF(fcinfo, 0);
	tables = read_table_facts(only);
	if (drops)
		read_drop_candidates(tables, only);
	seconds = statistics_seconds();
	/* most tables have no issue and need no fix: one empty array for all */
	none = DirectFunctionCall1(jsonb_in, CStringGetDatum("[]"));

	/*
	 * what a row is made of, freed once it is stored (10,000 tables made
	 * tens of megabytes of it, and the kernel zeroes each new page)
	 */
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "perfopt table_health row",
								   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(rowcxt);

	foreach(lc, tables)
	{
		TableFacts *t = lfirst(lc);
		TableHealth h;
		HealthPenalties p;
		Datum		values[18];
		bool		nulls[18] = {false};
		char	   *name = t->name;
		bool		measured = false;
		double		rows = t->live + t->dead;

		CHECK_FOR_INTERRUPTS();
		/* exact mode opens the table: not one dropped since it was listed */
		if (exact && !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(t->relid)))
			continue;

		memset(&h, 0, sizeof(h));
		h.large = t->live >= LARGE_TABLE_ROWS && t->seq_scan + t->idx_scan >= MIN_SCANS;
		h.sizable = t->pages * BLCKSZ >= SIZABLE_TABLE_BYTES;
		if (exact && may_read_pages(t->relid))
		{
			Relation	rel = table_open(t->relid, AccessShareLock);

			if (pages_readable(rel))
			{
				double		error;
				double		waste = measure_pages(rel, heap_page_waste, &error);

				h.bloat_pct = waste >= 0 ? 100 * waste : 0;
				t->bloat_error = 100 * error;
				measured = true;
			}
			table_close(rel, AccessShareLock);
		}
		if (!measured && t->pages > 0)
		{
			/*
			 * What is neither dead tuple nor free space, as pgstattuple counts
			 * them: page headers, live tuples with their padding and line
			 * pointers, the padding and line pointers of dead tuples, and
			 * the line pointers that vacuum freed but a page keeps (each page
			 * is taken to have been full once, as a table filled by inserts
			 * has been).
			 */
			double		stored = MAXALIGN((uintptr_t) ceil(t->tuple_length)) + sizeof(ItemIdData);
			double		full_page = floor((BLCKSZ - SizeOfPageHeaderData) * t->fillfactor / 100.0 / stored);
			double		line_pointers = Max(t->live + t->dead, t->pages * full_page);
			double		kept = t->pages * SizeOfPageHeaderData + t->live * stored +
			t->dead * (stored - t->tuple_length) +
			(line_pointers - t->live - t->dead) * sizeof(ItemIdData);

			h.bloat_pct = Min(100, Max(0, 100 * (1 - kept / (t->pages * BLCKSZ))));
		}
		if (measured)
			measure_indexes(t);
		else
			estimate_indexes(t);
		h.index_bloat_pct = t->index_bytes > 0 ? 100 * t->index_waste_bytes / t->index_bytes : -1;
		h.dead_tuple_pct = rows > 0 ? 100 * t->dead / rows : 0;
		h.vacuum_due = t->dead / Max(1, t->vacuum_threshold + t->vacuum_scale_factor * rows);
		h.analyze_due = t->mod_since_analyze / Max(1, t->analyze_threshold + t->analyze_scale_factor * rows);
		h.xid_age_pct = Max(percent(t->xid_age, t->freeze_max_age),
							percent(t->mxid_age, t->multixact_freeze_max_age));
		h.seq_scan_pct = percent(t->seq_scan, t->seq_scan + t->idx_scan);
		h.cache_hit_pct = percent(t->heap_hit, t->heap_hit + t->heap_read);
		h.hot_update_pct = percent(t->hot_updates, t->updates);

		values[0] = ObjectIdGetDatum(t->relid);
		values[1] = Int32GetDatum(perfopt_health_score(&h, &p));
		values[2] = Float8GetDatum(h.bloat_pct);
		values[3] = Float8GetDatum(h.dead_tuple_pct);
		values[4] = Float8GetDatum(h.seq_scan_pct);
		nulls[4] = h.seq_scan_pct < 0;
		values[5] = Float8GetDatum(h.cache_hit_pct);
		nulls[5] = h.cache_hit_pct < 0;
		values[6] = Float8GetDatum(h.hot_update_pct);
		nulls[6] = h.hot_update_pct < 0;
		values[7] = Float8GetDatum(h.xid_age_pct);
		values[8] = TimestampTzGetDatum(t->last_vacuum);
		nulls[8] = t->last_vacuum_null;
		values[9] = TimestampTzGetDatum(t->last_analyze);
		nulls[9] = t->last_analyze_null;
		values[10] = describe_issues(t, &h, &p, none);
		values[11] = table_recommendations(t, &h, name, seconds, none);
		values[12] = Float8GetDatum(h.index_bloat_pct);
		nulls[12] = h.index_bloat_pct < 0;
		values[13] = Float8GetDatum(h.vacuum_due);
		values[14] = Float8GetDatum(h.analyze_due);
		values[15] = Int64GetDatum((int64) (t->pages * BLCKSZ));
		values[16] = BoolGetDatum(measured);
		values[17] = Float8GetDatum(t->bloat_error);
		nulls[17] = !measured;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextReset(rowcxt);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(rowcxt);
	return (Datum) 0;
}
