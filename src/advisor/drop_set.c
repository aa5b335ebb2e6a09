/*-------------------------------------------------------------------------
 *
 * drop_set.c
 *	  The drop candidates that are safe to drop together.
 *
 * Each row of perfopt.index_drop_candidates can look right alone while the
 * rows together are a disaster: of an index in use, its duplicate and a
 * longer index that covers both, each one is "covered" by another, and
 * dropping all three leaves the statement that read them without an index.
 * So the view hands its candidates, most deserving first, to
 * perfopt.index_drop_safe_set(), which accepts them one at a time:
 *
 *	- an invalid index is accepted: the planner never uses one;
 *	- a duplicate or redundant index names the index that makes it so (the
 *	  one it relies on): it is refused when that index is already dropped;
 *	  an index that an accepted drop relies on is kept unless it relies on
 *	  another in turn, which is then kept;
 *	- then the statements of the workload that read its table (a statement
 *	  on a partitioned table reads its partitions) and whose plan scans it
 *	  are planned with it and every index accepted so far hidden from the
 *	  planner (whatif.c); it is accepted only when no statement's planned
 *	  cost rises more than DROP_COST_TOLERANCE above its cost with every
 *	  index in place.  A plan that scans none of the hidden indexes is the
 *	  cheapest without them too, so it is not planned again.
 *
 * The workload is the advisor's: the statements of pg_stat_statements that
 * the caller may see, most total time first (perfopt.advisor_statements of
 * them), each planned as the role that ran it, restricted (workload.c,
 * whatif.c).  Only statements that read a table with a candidate are
 * kept and planned, once with every index and again for each candidate
 * their plan scans; a text that names neither such a table nor a view
 * that reads one is not even parsed.  Without pg_stat_statements the
 * structural rules alone apply.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_partitioned_table.h"
#include "catalog/pg_type.h"
#include "access/htup_details.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "catalog/pg_index.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"

#include "advisor/whatif.h"
#include "advisor/workload.h"
#include "common/catalog.h"
#include "common/oid_map.h"
#include "common/subxact.h"
#include "common/settings.h"
#include "common/stat_pass.h"

PG_FUNCTION_INFO_V1(perfopt_index_drop_safe_set);
PG_FUNCTION_INFO_V1(perfopt_index_drop_suspects);
PG_FUNCTION_INFO_V1(perfopt_index_drop_suspect_indexes);

/*
 * the most candidates one call takes: at 10,000 tables there can be as many
 * unused indexes, and the view passes them all in one call
 */
#define DROP_SET_MAX_CANDIDATES		1000000

/*
 * How much costlier a statement's plan may get: ties between equivalent
 * indexes of different size (a bloated duplicate, a covering index one
 * column longer) differ in cost by less, a statement that loses the index
 * it reads by far more.
 */
#define DROP_COST_TOLERANCE			0.01

/*
 * The statements' texts are matched against the names of the candidates'
 * tables (and the views that read them) only while the tables are at most
 * this many times the statements read (perfopt.advisor_statements)
 */
#define DROP_SET_NAMED_TABLES_PER_STATEMENT	10

/*
 * The indexes a table has, as the suspects' readers expect them: a key and
 * one more.  Only an estimate, for the size of a map and for choosing
 * between look-ups and a pass over pg_index (common/catalog.c).
 */
#define INDEXES_PER_TABLE	2

typedef struct DropCandidate
{
	Oid			index;
	Oid			relies_on;		/* index that makes it redundant, or InvalidOid */
	Oid			table;
	bool		valid;
	List	   *hide;			/* the index and the partitions' indexes attached to it */
	List	   *tables;			/* its table and that table's ancestors */
} DropCandidate;

typedef struct DropStatement
{
	WorkloadStatement *stmt;
	bool		costed;			/* baseline known */
	bool		usable;			/* it could be planned with every index */
	double		baseline;		/* planned cost with every index */
	List	   *used;			/* indexes its plan scans without those dropped */
	List	   *trial_used;		/* the same while a candidate is tried */
} DropStatement;

/* What cost_step works on */
typedef struct CostRun
{
	WhatIf	   *whatif;
	WorkloadStatement *stmt;
	double		cost;
} CostRun;

static void
cost_step(void *arg)
{
	CostRun    *run = (CostRun *) arg;

	run->cost = perfopt_whatif_cost(run->whatif, run->stmt->query, run->stmt->text,
									NULL, run->stmt->role);
}

/* The statement's planned cost with whatif->hidden hidden; false on an error */
static bool
statement_cost(WhatIf *whatif, WorkloadStatement *stmt, double *cost)
{
	CostRun		run = {whatif, stmt, 0};
	ErrorData  *edata = perfopt_try_in_subtransaction(cost_step, &run);

	if (edata != NULL)
	{
		whatif->used = NIL;
		ereport(DEBUG1,
				(errmsg("statement " INT64_FORMAT " could not be costed for the drop set: %s",
						stmt->queryid, edata->message)));
		FreeErrorData(edata);
		return false;
	}
	*cost = run.cost;
	return true;
}

/* What workload_step reads: the statements that read these tables */
typedef struct WorkloadRead
{
	List	   *tables;
	List	   *workload;
} WorkloadRead;

/*
 * The names, in lower case, that a statement reading one of the tables
 * must hold: the tables', and those of the views that read them, however
 * deep.  (A table a statement reaches only through a function is not
 * named.)
 */
static List *
table_names(List *tables)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum	   *oids = palloc(list_length(tables) * sizeof(Datum));
	Datum		args[1];
	Oid			argtypes[1] = {OIDARRAYOID};
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, tables)
		oids[foreach_current_index(lc)] = ObjectIdGetDatum(lfirst_oid(lc));
	args[0] = PointerGetDatum(construct_array(oids, list_length(tables), OIDOID,
											  sizeof(Oid), true, TYPALIGN_INT));
	SPI_connect();
	if (SPI_execute_with_args(
			"WITH RECURSIVE readers(oid) AS ("
			"    SELECT pg_catalog.unnest($1)"
			"    UNION"
			"    SELECT r.ev_class FROM readers"
			"      JOIN pg_catalog.pg_depend d ON d.refobjid OPERATOR(pg_catalog.=) readers.oid"
			"       AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
			"       AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
			"      JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid)"
			" SELECT DISTINCT pg_catalog.lower(c.relname::pg_catalog.text)"
			"   FROM readers JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) readers.oid",
			1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the names of the drop candidates' tables");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		names = lappend(names, pstrdup(name));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return names;
}

static void
workload_step(void *arg)
{
	WorkloadRead *read = (WorkloadRead *) arg;
	int			skipped = 0;

	/*
	 * The names only spare parsing the statements that cannot read a
	 * candidate's table, and there are at most advisor_statements of those:
	 * when the tables outnumber them by far (every table of a database of
	 * thousands with an unused index), resolving every table's name costs
	 * more than parsing the few statements, and the result is the same.
	 */
	List	   *names = list_length(read->tables) <= DROP_SET_NAMED_TABLES_PER_STATEMENT * perfopt_advisor_statements ?
		table_names(read->tables) : NIL;

	read->workload = perfopt_workload_from_pgss_for(perfopt_advisor_statements, &skipped, true,
													read->tables, names);
}

/*
 * The statements of pg_stat_statements the caller may see that read one of
 * the tables; NIL without pg_stat_statements
 */
static List *
drop_set_workload(List *tables)
{
	WorkloadRead read = {tables, NIL};
	ErrorData  *edata = perfopt_try_in_subtransaction(workload_step, &read);

	if (edata != NULL)
	{
		ereport(DEBUG1,
				(errmsg("the drop candidates are checked without a workload: %s", edata->message)));
		FreeErrorData(edata);
		return NIL;
	}
	return read.workload;
}

/* Do the two lists of OIDs share one? */
static bool
oids_overlap(List *a, List *b)
{
	ListCell   *lc;

	foreach(lc, a)
	{
		if (list_member_oid(b, lfirst_oid(lc)))
			return true;
	}
	return false;
}

/* What the catalogs say about a candidate, read for all of them at once */
typedef struct CandidateFacts
{
	Oid			index;			/* the hash key */
	Oid			table;
	bool		valid;
	bool		partitioned;	/* a partitioned index */
	bool		partition;		/* its table is a partition */
} CandidateFacts;

/*
 * The facts of the candidates, in one pass over the catalogs (one look-up
 * of pg_index and two of pg_class for each of 10,000 candidates cost more
 * than the rest of the check); an index not found is not in the hash
 */
static HTAB *
read_candidate_facts(Datum *candidates, int ncandidates)
{
	HASHCTL		info;
	HTAB	   *facts;
	Datum		args[1];
	Oid			argtypes[1] = {OIDARRAYOID};

	info.keysize = sizeof(Oid);
	info.entrysize = sizeof(CandidateFacts);
	info.hcxt = CurrentMemoryContext;
	facts = hash_create("perfopt drop candidates' facts", Max(ncandidates, 16), &info,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	args[0] = PointerGetDatum(construct_array(candidates, ncandidates, OIDOID,
											  sizeof(Oid), true, TYPALIGN_INT));
	SPI_connect();
	/*
	 * joined with the candidates ("= ANY" would search them for each index);
	 * the indexes of a partitioned table, and only they, are partitioned
	 */
	if (SPI_execute_with_args(
			"SELECT i.indexrelid, i.indrelid, i.indisvalid,"
			"       t.relkind OPERATOR(pg_catalog.=) 'p', t.relispartition"
			"  FROM (SELECT DISTINCT pg_catalog.unnest($1) AS oid) u"
			"  JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) u.oid"
			"  JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) i.indrelid",
			1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the drop candidates' indexes");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			index = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
		CandidateFacts *f = hash_search(facts, &index, HASH_ENTER, NULL);

		f->table = DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
		f->valid = DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull));
		f->partitioned = DatumGetBool(SPI_getbinval(tuple, desc, 4, &isnull));
		f->partition = DatumGetBool(SPI_getbinval(tuple, desc, 5, &isnull));
	}
	SPI_finish();
	return facts;
}

/* Fill in what the candidate's checks need; false when it is not an index */
static bool
describe_candidate(DropCandidate *c, HTAB *facts)
{
	CandidateFacts *f = hash_search(facts, &c->index, HASH_FIND, NULL);

	if (f == NULL)
		return false;
	c->table = f->table;
	c->valid = f->valid;

	/* a partitioned index hides the indexes of its partitions with it */
	c->hide = f->partitioned ?
		find_all_inheritors(c->index, NoLock, NULL) : list_make1_oid(c->index);
	c->tables = list_make1_oid(c->table);
	if (f->partition)
		c->tables = list_concat(c->tables, get_partition_ancestors(c->table));
	return true;
}

/*
 * perfopt.index_drop_safe_set(candidates regclass[], relies_on regclass[]):
 * of the candidates, most deserving first, those that can be dropped
 * together, in their order; relies_on[i] is the index that makes
 * candidates[i] a duplicate or redundant, or NULL.
 */
Datum
perfopt_index_drop_safe_set(PG_FUNCTION_ARGS)
{
	ArrayType  *candidates_array = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *relies_array = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *candidates;
	bool	   *candidate_nulls;
	Datum	   *relies;
	bool	   *relies_nulls;
	int			ncandidates;
	int			nrelies;
	DropCandidate *c;
	DropStatement *statements = NULL;
	int			nstatements = 0;
	List	   *workload;
	List	   *tables = NIL;	/* the tables of valid candidates */
	ListCell   *lc;
	List	   *dropped = NIL;	/* accepted candidates' index OIDs */
	oidmap_hash *dropped_set;	/* the same, to look up */
	oidmap_hash *kept_set;		/* indexes an accepted drop relies on */
	oidmap_hash *table_set;		/* the tables listed in tables */
	HTAB	   *facts;			/* the candidates' catalog rows */
	WhatIf		whatif;
	Datum	   *result;
	int			nresult = 0;
	MemoryContext cxt;
	MemoryContext old;
	ArrayType  *array;

	if (ARR_NDIM(candidates_array) > 1 || ARR_NDIM(relies_array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("candidates and relies_on must be one-dimensional arrays")));
	deconstruct_array(candidates_array, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
					  &candidates, &candidate_nulls, &ncandidates);
	deconstruct_array(relies_array, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
					  &relies, &relies_nulls, &nrelies);
	if (ncandidates != nrelies)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("candidates and relies_on have different lengths (%d and %d)",
						ncandidates, nrelies),
				 errhint("Give one relies_on entry, NULL for none, for each candidate.")));
	if (ncandidates > DROP_SET_MAX_CANDIDATES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("at most %d drop candidates can be checked together, not %d",
						DROP_SET_MAX_CANDIDATES, ncandidates),
				 errhint("Check the candidates of fewer tables at a time.")));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "perfopt drop set",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	memset(&whatif, 0, sizeof(whatif));
	whatif.collect_used = true;
	c = palloc0(Max(ncandidates, 1) * sizeof(DropCandidate));
	result = palloc(Max(ncandidates, 1) * sizeof(Datum));
	dropped_set = oidmap_create(CurrentMemoryContext, 256, NULL);
	kept_set = oidmap_create(CurrentMemoryContext, 256, NULL);
	table_set = oidmap_create(CurrentMemoryContext, 256, NULL);

	for (int i = 0; i < ncandidates; i++)
	{
		if (candidate_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("drop candidate %d is NULL", i + 1),
					 errhint("Pass the indexes to check, without NULLs.")));
	}
	facts = read_candidate_facts(candidates, ncandidates);

	for (int i = 0; i < ncandidates; i++)
	{
		c[i].index = DatumGetObjectId(candidates[i]);
		c[i].relies_on = relies_nulls[i] ? InvalidOid : DatumGetObjectId(relies[i]);
		if (!describe_candidate(&c[i], facts))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("drop candidate %s is not an index",
							get_rel_name(c[i].index) ? quote_identifier(get_rel_name(c[i].index))
							: psprintf("%u", c[i].index)),
					 errhint("Pass the indexes of perfopt.index_drop_candidates.")));
		if (c[i].valid)
		{
			foreach(lc, c[i].tables)
			{
				if (oidmap_add(table_set, lfirst_oid(lc)))
					tables = lappend_oid(tables, lfirst_oid(lc));
			}
		}
	}

	/* only the statements that read a table with a candidate are prepared */
	workload = tables != NIL ? drop_set_workload(tables) : NIL;
	statements = palloc0(Max(list_length(workload), 1) * sizeof(DropStatement));
	foreach(lc, workload)
		statements[nstatements++].stmt = lfirst(lc);

	for (int i = 0; i < ncandidates; i++)
	{
		List	   *hidden = NIL;
		bool		safe = true;

		if (oidmap_contains(dropped_set, c[i].index))
			continue;			/* named twice */

		/*
		 * What this one relies on must stay; one that an accepted drop relies
		 * on may go only if it relies on another in turn (a duplicate of an
		 * index that a longer one covers).  Duplicates are ranked and covers
		 * are longer, so the chain ends in an index that stays.
		 */
		if (OidIsValid(c[i].relies_on) ? oidmap_contains(dropped_set, c[i].relies_on)
			: oidmap_contains(kept_set, c[i].index))
			continue;

		if (c[i].valid)
		{
			for (int s = 0; s < nstatements; s++)
				statements[s].trial_used = statements[s].used;
			for (int s = 0; s < nstatements && safe; s++)
			{
				DropStatement *ds = &statements[s];
				double		cost = -1;

				if (!oids_overlap(ds->stmt->tables, c[i].tables))
					continue;
				if (!ds->costed)
				{
					whatif.hidden = NIL;
					ds->usable = statement_cost(&whatif, ds->stmt, &ds->baseline);
					ds->used = ds->trial_used = whatif.used;
					ds->costed = true;
				}
				/* a plan that scans none of them is the best without them too */
				if (!ds->usable || !oids_overlap(ds->used, c[i].hide))
					continue;
				/* made only when a statement is costed again, then freed */
				if (hidden == NIL)
					hidden = list_concat_copy(dropped, c[i].hide);
				whatif.hidden = hidden;
				if (!statement_cost(&whatif, ds->stmt, &cost) ||
					cost > ds->baseline * (1 + DROP_COST_TOLERANCE))
				{
					ereport(DEBUG1,
							(errmsg("index %s is kept: statement " INT64_FORMAT " would cost %g instead of %g without it",
									get_rel_name(c[i].index), ds->stmt->queryid, cost, ds->baseline)));
					safe = false;
				}
				ds->trial_used = whatif.used;
			}
			whatif.hidden = NIL;
			list_free(hidden);
			if (!safe)
				continue;
			for (int s = 0; s < nstatements; s++)
				statements[s].used = statements[s].trial_used;
		}

		dropped = list_concat(dropped, c[i].hide);
		foreach(lc, c[i].hide)
			oidmap_add(dropped_set, lfirst_oid(lc));
		if (OidIsValid(c[i].relies_on))
			oidmap_add(kept_set, c[i].relies_on);
		result[nresult++] = ObjectIdGetDatum(c[i].index);
	}

	MemoryContextSwitchTo(old);
	array = construct_array(result, nresult, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT);
	MemoryContextDelete(cxt);
	PG_RETURN_ARRAYTYPE_P(array);
}

/*
 * A table's indexes that start with the same key column (0: an
 * expression), in a simplehash of their own (see common/oid_map.h): the
 * groups sit in its slots, so a look-up reads one and the walk over them
 * reads the slots in order
 */
typedef struct SuspectGroup
{
	uint64		key;			/* the table's OID, then the first key column */
	char		status;			/* simplehash's */
	bool		invalid;		/* one is invalid */
	bool		unscanned;		/* one is valid, not unique and never scanned */
	int			indexes;
} SuspectGroup;

#define SUSPECT_KEY(table, first_key)	(((uint64) (table) << 16) | (uint16) (first_key))
#define SUSPECT_TABLE(key)				((Oid) ((key) >> 16))

#define SH_PREFIX groups
#define SH_ELEMENT_TYPE SuspectGroup
#define SH_KEY_TYPE uint64
#define SH_KEY key
#define SH_HASH_KEY(tb, key) hash_combine(murmurhash32(SUSPECT_TABLE(key)), (uint32) ((key) & 0xFFFF))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* A valid unique index and its table */
typedef struct UniqueIndex
{
	Oid			index;
	Oid			table;
} UniqueIndex;

/* A partitioned table of pg_partitioned_table, into an OID set */
static void
add_partitioned(void *arg, HeapTuple tuple)
{
	oidmap_add((oidmap_hash *) arg, ((Form_pg_partitioned_table) GETSTRUCT(tuple))->partrelid);
}

/* A child of pg_inherits (a table or an index), into an OID set */
static void
add_inheriting(void *arg, HeapTuple tuple)
{
	oidmap_add((oidmap_hash *) arg, ((Form_pg_inherits) GETSTRUCT(tuple))->inhrelid);
}

/*
 * The tables that can have a drop candidate, from pg_index and the scan
 * counts alone, so that the view reads the indexes of those tables only,
 * not of the whole catalog (issue 18): a table with an invalid index, with
 * a valid non-unique index never scanned while the table was read (unused:
 * the view's condition), or with two indexes that start with the same
 * column or both with an expression (a duplicate, or a prefix of another,
 * starts as the other does).  A superset: the view decides.  A table was
 * read when it was scanned or one of its indexes was; a partitioned table
 * counts as read (the view sums its partitions' reads).  An index attached
 * to a partitioned index is never unused in the view (its parent is).  One pass over
 * pg_index, where the same in SQL (a grouping by table and first key) cost
 * 13-15 ms at 30,000 indexes.  An OID set (common/oid_map.h) in the current
 * memory context; flinfo keeps the scan counts' pass.
 */
static oidmap_hash *
suspect_tables(FmgrInfo *flinfo)
{
	groups_hash *groups;
	groups_iterator it;
	oidmap_hash *index_scanned;
	oidmap_hash *partitioned;
	oidmap_hash *attached;
	oidmap_hash *unresolved;
	oidmap_hash *tables;
	UniqueIndex *uniques;
	int			nuniques = 0;
	int			maxuniques = 1024;
	SuspectGroup *g;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tuple;

	groups = groups_create(CurrentMemoryContext, 1024, NULL);
	index_scanned = oidmap_create(CurrentMemoryContext, 256, NULL);
	unresolved = oidmap_create(CurrentMemoryContext, 256, NULL);
	tables = oidmap_create(CurrentMemoryContext, 256, NULL);
	uniques = palloc(maxuniques * sizeof(UniqueIndex));

	/* the partitioned tables (a few), read or not */
	partitioned = oidmap_create(CurrentMemoryContext, 256, NULL);
	perfopt_scan_catalog(PartitionedRelationId, InvalidOid, 0, InvalidOid, add_partitioned, partitioned);

	/*
	 * the children in pg_inherits: among them the indexes attached to a
	 * partitioned index, which the view never offers (it offers their
	 * parent), so that their being unused makes no suspect
	 */
	attached = oidmap_create(CurrentMemoryContext, 256, NULL);
	perfopt_scan_catalog(InheritsRelationId, InvalidOid, 0, InvalidOid, add_inheriting, attached);

	/*
	 * with the query's snapshot, as the view reads pg_index: so the tables
	 * named are exactly those whose indexes, as the view sees them, can give
	 * a candidate.  The scans of the non-unique indexes only: the unique
	 * ones' count only for a table that would be a suspect if it was read
	 * (below), and a look-up each (where the statistics were read already
	 * in the transaction, as in health()) cost 15 ms at 20,000 indexes.
	 */
	rel = table_open(IndexRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false,
							  ActiveSnapshotSet() ? GetActiveSnapshot() : NULL, 0, NULL);
	while ((tuple = systable_getnext(scan)) != NULL)
	{
		Form_pg_index index = (Form_pg_index) GETSTRUCT(tuple);
		bool		found;

		g = groups_insert(groups, SUSPECT_KEY(index->indrelid,
											  index->indnkeyatts > 0 ? index->indkey.values[0] : 0),
						  &found);
		if (!found)
		{
			g->indexes = 0;
			g->invalid = false;
			g->unscanned = false;
		}
		g->indexes++;
		if (!index->indisvalid)
			g->invalid = true;
		else if (index->indisunique)
		{
			if (nuniques == maxuniques)
			{
				maxuniques *= 2;
				uniques = repalloc(uniques, maxuniques * sizeof(UniqueIndex));
			}
			uniques[nuniques].index = index->indexrelid;
			uniques[nuniques].table = index->indrelid;
			nuniques++;
		}
		else if (perfopt_relation_scans(flinfo, index->indexrelid) > 0)
			oidmap_add(index_scanned, index->indrelid);
		else if (!oidmap_contains(attached, index->indexrelid))
			g->unscanned = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	/*
	 * a table with an unused candidate is one when it was read: scanned, a
	 * non-unique index of it scanned, partitioned, or else a unique index of
	 * it scanned
	 */
	groups_start_iterate(groups, &it);
	while ((g = groups_iterate(groups, &it)) != NULL)
	{
		Oid			table = SUSPECT_TABLE(g->key);

		if (g->invalid || g->indexes > 1)
			oidmap_add(tables, table);
		else if (g->unscanned)
		{
			if (oidmap_contains(index_scanned, table) ||
				oidmap_contains(partitioned, table) ||
				perfopt_relation_scans(flinfo, table) > 0)
				oidmap_add(tables, table);
			else
				oidmap_add(unresolved, table);
		}
	}
	if (unresolved->members > 0)
	{
		for (int i = 0; i < nuniques; i++)
		{
			if (oidmap_contains(unresolved, uniques[i].table) &&
				perfopt_relation_scans(flinfo, uniques[i].index) > 0)
				oidmap_add(tables, uniques[i].table);
		}
	}
	groups_destroy(groups);
	oidmap_destroy(index_scanned);
	oidmap_destroy(partitioned);
	oidmap_destroy(attached);
	oidmap_destroy(unresolved);
	pfree(uniques);
	return tables;
}

/* perfopt.index_drop_suspects(): suspect_tables() */
Datum
perfopt_index_drop_suspects(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "perfopt drop suspects",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	oidmap_hash *tables = suspect_tables(fcinfo->flinfo);
	oidmap_iterator it;
	OidMapEntry *table;

	MemoryContextSwitchTo(old);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC | MAT_SRF_BLESS);
	oidmap_start_iterate(tables, &it);
	while ((table = oidmap_iterate(tables, &it)) != NULL)
	{
		Datum		value = ObjectIdGetDatum(table->oid);
		bool		null = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &null);
	}
	MemoryContextDelete(cxt);
	return (Datum) 0;
}

/* An index of a suspect table: its pg_index row, then its pg_class row's columns */
typedef struct SuspectIndex
{
	Oid			indexrelid;
	HeapTuple	index_row;		/* a copy of its pg_index row */
	bool		in_class;		/* its pg_class row was read */
	Oid			relam;
	char		relkind;
	NameData	relname;
	Oid			relnamespace;
	/* a partitioned index's sums over its partitions (tree_sums) */
	int64		tree_scans;
	int64		tree_bytes;
	int64		tree_reads;
} SuspectIndex;

/* A schema's name, looked up once a call */
typedef struct SchemaName
{
	Oid			nspoid;			/* the hash key */
	NameData	nspname;
	bool		exists;
} SchemaName;

typedef struct SuspectIndexReader
{
	oidmap_hash *tables;		/* the suspect tables */
	oidmap_hash *indexes;		/* SuspectIndex by index OID */
} SuspectIndexReader;

static void
add_suspect_index(void *arg, HeapTuple tuple)
{
	SuspectIndexReader *r = arg;
	Form_pg_index index = (Form_pg_index) GETSTRUCT(tuple);
	SuspectIndex *x;
	OidMapEntry *entry;
	bool		found;

	if (!oidmap_contains(r->tables, index->indrelid))
		return;
	entry = oidmap_insert(r->indexes, index->indexrelid, &found);
	if (found)
		return;
	x = entry->value = palloc(sizeof(SuspectIndex));
	x->indexrelid = index->indexrelid;
	x->index_row = heap_copytuple(tuple);
	x->in_class = false;
	x->tree_scans = x->tree_bytes = x->tree_reads = 0;
}

static void
add_suspect_index_class(void *arg, HeapTuple tuple)
{
	SuspectIndexReader *r = arg;
	Form_pg_class c = (Form_pg_class) GETSTRUCT(tuple);
	SuspectIndex *x = oidmap_get(r->indexes, c->oid);

	if (x == NULL || x->in_class)
		return;
	x->in_class = true;
	x->relam = c->relam;
	x->relkind = c->relkind;
	x->relname = c->relname;
	x->relnamespace = c->relnamespace;
}

/* A relation's children in pg_inherits: a partitioned index's or table's partitions */
typedef struct InheritsParent
{
	Oid			parent;			/* the hash key */
	List	   *children;
} InheritsParent;

static void
add_inherits_row(void *arg, HeapTuple tuple)
{
	Form_pg_inherits h = (Form_pg_inherits) GETSTRUCT(tuple);
	InheritsParent *p;
	bool		found;

	p = hash_search((HTAB *) arg, &h->inhparent, HASH_ENTER, &found);
	if (!found)
		p->children = NIL;
	p->children = lappend_oid(p->children, h->inhrelid);
}

/*
 * The relation and every relation under it in pg_inherits, each once,
 * into the OID set tree
 */
static void
add_tree(HTAB *parents, Oid root, oidmap_hash *tree)
{
	List	   *stack = list_make1_oid(root);

	while (stack != NIL)
	{
		Oid			relid = llast_oid(stack);
		InheritsParent *p;

		stack = list_delete_last(stack);
		if (!oidmap_add(tree, relid))
			continue;
		p = hash_search(parents, &relid, HASH_FIND, NULL);
		if (p != NULL)
			stack = list_concat(stack, p->children);
	}
}

typedef struct TreeReads
{
	oidmap_hash *tree;			/* the tables of the tree */
	FmgrInfo   *flinfo;
	int64		reads;
} TreeReads;

/* An index of a table of the tree: its scans are reads of its table */
static void
add_tree_index_scans(void *arg, HeapTuple tuple)
{
	TreeReads  *r = arg;
	Form_pg_index index = (Form_pg_index) GETSTRUCT(tuple);

	if (oidmap_contains(r->tree, index->indrelid))
		r->reads += perfopt_relation_scans(r->flinfo, index->indexrelid);
}

/* A partitioned table's reads, summed once for all of its partitioned indexes */
typedef struct TableReads
{
	Oid			table;			/* the hash key */
	int64		reads;
} TableReads;

/*
 * A partitioned index's sums over its partitions, as pg_stat_user_indexes
 * and pg_stat_user_tables give them: its partitions' scans and sizes, and
 * its table's partitions' reads (sequential scans and every index's
 * scans), kept in table_reads (a hash of TableReads) for the table's other
 * partitioned indexes.  From pg_inherits read once (parents: a hash of
 * InheritsParent), the scan counts' pass and the files: the view summed
 * pg_partition_tree() over those views, which lock every partition and
 * read every table's and index's statistics for each partitioned index
 * (94 ms with a table of 3,000 partitions).
 */
static void
tree_sums(SuspectIndex *x, Oid table, HTAB *parents, HTAB *table_reads, FmgrInfo *flinfo)
{
	oidmap_hash *tree = oidmap_create(CurrentMemoryContext, 256, NULL);
	oidmap_iterator it;
	OidMapEntry *relid;
	TreeReads	reads;
	TableReads *kept;
	bool		found;

	x->tree_scans = 0;
	x->tree_bytes = 0;
	add_tree(parents, x->indexrelid, tree);
	oidmap_start_iterate(tree, &it);
	while ((relid = oidmap_iterate(tree, &it)) != NULL)
	{
		x->tree_scans += perfopt_relation_scans(flinfo, relid->oid);
		x->tree_bytes += perfopt_relation_bytes_of(relid->oid, &found);
	}
	oidmap_destroy(tree);

	kept = hash_search(table_reads, &table, HASH_ENTER, &found);
	if (found)
	{
		x->tree_reads = kept->reads;
		return;
	}
	tree = oidmap_create(CurrentMemoryContext, 256, NULL);
	add_tree(parents, table, tree);
	reads.tree = tree;
	reads.flinfo = flinfo;
	reads.reads = 0;
	oidmap_start_iterate(tree, &it);
	while ((relid = oidmap_iterate(tree, &it)) != NULL)
		reads.reads += perfopt_relation_scans(flinfo, relid->oid);
	perfopt_read_catalog_rows(tree, INDEXES_PER_TABLE * tree->members, IndexRelationId, IndexIndrelidIndexId,
							  Anum_pg_index_indrelid, add_tree_index_scans, &reads);
	x->tree_reads = kept->reads = reads.reads;
	oidmap_destroy(tree);
}

/* The pg_index columns perfopt.index_drop_suspect_indexes() returns, in order */
static const AttrNumber suspect_index_columns[] = {
	Anum_pg_index_indexrelid, Anum_pg_index_indrelid, Anum_pg_index_indnatts,
	Anum_pg_index_indnkeyatts, Anum_pg_index_indisunique, Anum_pg_index_indisprimary,
	Anum_pg_index_indisvalid, Anum_pg_index_indisreplident, Anum_pg_index_indkey,
	Anum_pg_index_indcollation, Anum_pg_index_indclass, Anum_pg_index_indoption,
	Anum_pg_index_indexprs, Anum_pg_index_indpred
};

#define SUSPECT_INDEX_COLUMNS	(lengthof(suspect_index_columns) + 7)

/*
 * perfopt.index_drop_suspect_indexes(): the indexes of the tables
 * index_drop_suspects() names, with the columns of their pg_index rows and
 * of their pg_class rows that index_drop_candidates reads, and their
 * schema's name, and for a partitioned index its sums over its partitions
 * (tree_sums).  Both catalogs
 * are read as the catalog caches read them, with the query's snapshot: in
 * one pass, or through their indexes for each table and each index,
 * whichever costs less (common/catalog.c).  The view joined pg_index
 * and pg_class itself, and its planner could only read both whole (a hash
 * join), or look each one up (a nested loop) also where every table is a
 * suspect, which was slower still: 20,000 indexes a look-up each.  The
 * schema's name is given, not its OID: joined to pg_namespace, the index
 * rows' estimate fell to a few (the planner has no statistics of a
 * function's columns), and the view planned a nested loop over the
 * candidates and the safe set, 10,000 by 10,000.
 */
Datum
perfopt_index_drop_suspect_indexes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "perfopt drop suspects' indexes",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	SuspectIndexReader reader;
	HASHCTL		ctl = {0};
	oidmap_iterator it;
	OidMapEntry *entry;
	SuspectIndex *x;
	Relation	rel;
	TupleDesc	index_desc;
	HTAB	   *schemas;
	HTAB	   *parents = NULL;
	HTAB	   *table_reads = NULL;

	reader.tables = suspect_tables(fcinfo->flinfo);
	reader.indexes = oidmap_create(cxt, Max(INDEXES_PER_TABLE * reader.tables->members, 16), NULL);
	ctl.keysize = sizeof(Oid);
	ctl.hcxt = cxt;
	if (reader.tables->members > 0)
	{
		perfopt_read_catalog_rows(reader.tables, INDEXES_PER_TABLE * reader.tables->members, IndexRelationId,
								  IndexIndrelidIndexId, Anum_pg_index_indrelid, add_suspect_index, &reader);
		if (reader.indexes->members > 0)
			perfopt_read_catalog_rows(reader.indexes, reader.indexes->members, RelationRelationId,
									  ClassOidIndexId, Anum_pg_class_oid, add_suspect_index_class, &reader);
	}
	rel = table_open(IndexRelationId, AccessShareLock);
	index_desc = CreateTupleDescCopy(RelationGetDescr(rel));
	table_close(rel, AccessShareLock);

	/* the partitioned indexes' sums over their partitions */
	oidmap_start_iterate(reader.indexes, &it);
	while ((entry = oidmap_iterate(reader.indexes, &it)) != NULL)
	{
		x = entry->value;
		if (!x->in_class || x->relkind != RELKIND_PARTITIONED_INDEX)
			continue;
		if (parents == NULL)
		{
			ctl.entrysize = sizeof(InheritsParent);
			parents = hash_create("perfopt pg_inherits by parent", 256, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			perfopt_scan_catalog(InheritsRelationId, InvalidOid, 0, InvalidOid, add_inherits_row, parents);
			ctl.entrysize = sizeof(TableReads);
			table_reads = hash_create("perfopt partitioned tables' reads", 16, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		}
		tree_sums(x, ((Form_pg_index) GETSTRUCT(x->index_row))->indrelid, parents, table_reads,
				  fcinfo->flinfo);
	}

	ctl.entrysize = sizeof(SchemaName);
	schemas = hash_create("perfopt drop suspects' schemas", 16, &ctl,
						  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	MemoryContextSwitchTo(old);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC | MAT_SRF_BLESS);
	if (rsinfo->setDesc->natts != SUSPECT_INDEX_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("perfopt.index_drop_suspect_indexes() must return %d columns",
						(int) SUSPECT_INDEX_COLUMNS),
				 errhint("Run ALTER EXTENSION perfopt UPDATE.")));
	/* the rows' text values in cxt too, freed with it */
	MemoryContextSwitchTo(cxt);
	oidmap_start_iterate(reader.indexes, &it);
	while ((entry = oidmap_iterate(reader.indexes, &it)) != NULL)
	{
		Datum		values[SUSPECT_INDEX_COLUMNS];
		bool		nulls[SUSPECT_INDEX_COLUMNS];
		Datum		row_values[Natts_pg_index];
		bool		row_nulls[Natts_pg_index];
		int			n = 0;
		SchemaName *schema;
		bool		found;

		x = entry->value;
		if (!x->in_class)
			continue;			/* not in pg_class as the snapshot sees it */
		schema = hash_search(schemas, &x->relnamespace, HASH_ENTER, &found);
		if (!found)
		{
			char	   *name = get_namespace_name(x->relnamespace);

			schema->exists = name != NULL;
			if (name != NULL)
				namestrcpy(&schema->nspname, name);
		}
		if (!schema->exists)
			continue;			/* its schema dropped since */
		/*
		 * the row deformed in one pass: a heap_getattr() of each column after
		 * indkey walked the row from its start (nocachegetattr)
		 */
		heap_deform_tuple(x->index_row, index_desc, row_values, row_nulls);
		for (int i = 0; i < lengthof(suspect_index_columns); i++, n++)
		{
			values[n] = row_values[suspect_index_columns[i] - 1];
			nulls[n] = row_nulls[suspect_index_columns[i] - 1];
		}
		values[n] = ObjectIdGetDatum(x->relam);
		nulls[n++] = false;
		values[n] = CharGetDatum(x->relkind);
		nulls[n++] = false;
		values[n] = CStringGetTextDatum(NameStr(x->relname));
		nulls[n++] = false;
		values[n] = CStringGetTextDatum(NameStr(schema->nspname));
		nulls[n++] = false;
		/* a partitioned index's sums; NULL for another index */
		values[n] = Int64GetDatum(x->tree_scans);
		nulls[n++] = x->relkind != RELKIND_PARTITIONED_INDEX;
		values[n] = Int64GetDatum(x->tree_bytes);
		nulls[n++] = x->relkind != RELKIND_PARTITIONED_INDEX;
		values[n] = Int64GetDatum(x->tree_reads);
		nulls[n++] = x->relkind != RELKIND_PARTITIONED_INDEX;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return (Datum) 0;
}
