/*-------------------------------------------------------------------------
 *
 * outbox.c
 *	  The cache's outbox: the keys a transaction's watched changes make,
 *	  written as one row of perfopt.cache_invalidations per transaction.
 *
 * cache_watch puts a row trigger on a table, perfopt_cache_invalidate
 * (AFTER INSERT OR UPDATE OR DELETE, FOR EACH ROW): it makes the keys of
 * the old and the new row and appends them to this backend's list of the
 * transaction's pending keys.  Nothing is written then.  At PRE_COMMIT (and
 * PRE_PREPARE), after the transaction's last statement and its deferred
 * triggers, a transaction callback inserts the pending keys, sorted and
 * without duplicates, as one row, and has the worker woken once the commit
 * is visible, with the row's id, place and keys put in the worker's commit
 * queue then (cache_worker.c), so that the worker need not read the row
 * back.  The transaction is still in progress there, and an error
 * still rolls it back: the row commits or rolls back with the changes, so a
 * crash at any point loses nothing committed and sends nothing uncommitted.
 * The row goes straight into the heap and the index (no statement, no
 * trigger, no permission check: the outbox has none of its own), so
 * nothing that writing through SQL expects from PRE_COMMIT is bypassed.
 *
 * Before, a deferred constraint trigger with a WHEN condition true once per
 * transaction did this write.  It cost, for every changed row, a second
 * trigger event (its WHEN expression read from the catalog and compiled at
 * every statement) and, at commit, the firing of a trigger, for the same
 * row insert; and keys made after it fired (SET CONSTRAINTS ... IMMEDIATE,
 * a deferred trigger changing a watched table) had to be written at once.
 *
 * The pending keys follow subtransactions: each subtransaction that changes
 * the state first saves it (a mark: how many keys, how many written), an
 * aborted subtransaction puts its mark back, a committed one hands its mark
 * to its parent.  Keys a subtransaction writes (the spill below) are
 * dropped from memory only when they are its own: keys of an ancestor stay
 * until the ancestor's fate is known.
 *
 * A transaction whose pending keys reach PENDING_MAX_KEYS or
 * PENDING_MAX_BYTES writes them at once, as a row of their own (memory
 * stays bounded).
 *
 * Patterns (cache_invalidate(), TRUNCATE) are written at once, one row
 * each: they are rare, and each is a SCAN of the keyspace anyway.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "cache/cache.h"
#include "cache/cache_worker.h"

/* Pending keys written at once when a transaction reaches either bound */
#define PENDING_MAX_KEYS	10000
#define PENDING_MAX_BYTES	(1024 * 1024)

/* The state a subtransaction saves before it first changes it */
typedef struct PendingMark
{
	SubTransactionId subid;
	int			nkeys;
	int			written;
	Size		bytes;
} PendingMark;

/*
 * The transaction's keys: keys[0 .. written) are in the outbox (kept only
 * while an aborted subtransaction could take that back), keys[written ..
 * nkeys) wait for the commit.  All of it lives in pending_cxt, a child of
 * TopTransactionContext, and goes with the transaction.
 */
static MemoryContext pending_cxt = NULL;
static char **keys = NULL;
static int	nkeys = 0;
static int	maxkeys = 0;
static int	written = 0;
static Size bytes = 0;			/* of keys[written .. nkeys) */
static PendingMark *marks = NULL;
static int	nmarks = 0;
static int	maxmarks = 0;

static bool callbacks_registered = false;

/* The outbox, its schema and its id sequence, found once per outbox */
static Oid	outbox_relid = InvalidOid;
static Oid	outbox_namespace = InvalidOid;
static Oid	outbox_seqid = InvalidOid;

static void pending_write(bool at_commit);

/*
 * The row trigger's templates compiled (columns and output functions found
 * once), per trigger; an entry is compiled again after its table's cache
 * entry was invalidated (its columns or triggers changed).  Each entry's
 * memory is its own context; one replaced is freed at the end of the
 * transaction, since a key being made (an output function) could use it.
 */
typedef struct TriggerTemplates
{
	Oid			tgoid;			/* hash key */
	Oid			relid;
	bool		valid;
	MemoryContext cxt;
	int			n;
	CompiledTemplate **templates;
} TriggerTemplates;

static HTAB *trigger_templates = NULL;
static TriggerTemplates *last_templates = NULL; /* the last one used */
static List *retired_cxts = NIL;	/* in TopMemoryContext */

/*
 * The trigger renders the old and the new row's keys here (in
 * TopMemoryContext, made again smaller after a key of more than
 * KEY_BUFFER_KEEP bytes), and copies each key once into the pending keys.
 */
#define KEY_BUFFER_KEEP	(64 * 1024)
static StringInfoData key_buffers[2];

PG_FUNCTION_INFO_V1(perfopt_cache_trigger);

/* Forget everything: the transaction ended (its memory goes with it) */
static void
pending_reset(void)
{
	pending_cxt = NULL;
	keys = NULL;
	nkeys = maxkeys = written = 0;
	bytes = 0;
	marks = NULL;
	nmarks = maxmarks = 0;
}

/*
 * At PRE_COMMIT and PRE_PREPARE, after the statements and the deferred
 * triggers, while the transaction is still in progress: write the pending
 * keys as one row (an error here rolls the transaction back).  At the end,
 * forget.
 */
static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (nkeys > written)
				pending_write(true);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending_reset();
			while (retired_cxts != NIL)
			{
				MemoryContextDelete((MemoryContext) linitial(retired_cxts));
				retired_cxts = list_delete_first(retired_cxts);
			}
			break;
		default:
			break;
	}
}

/* A subtransaction ended: put its mark back, or hand it to its parent */
static void
outbox_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	PendingMark *top;

	if (nmarks == 0 || marks[nmarks - 1].subid != mySubid)
		return;
	top = &marks[nmarks - 1];
	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			nkeys = top->nkeys;
			written = top->written;
			bytes = top->bytes;
			nmarks--;
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			/*
			 * The top level keeps no mark (its abort forgets everything);
			 * the parent's own mark, if it has one, is the older state.
			 */
			if (parentSubid == TopSubTransactionId ||
				(nmarks >= 2 && marks[nmarks - 2].subid == parentSubid))
				nmarks--;
			else
				top->subid = parentSubid;
			break;
		default:
			break;
	}
}

/*
 * Before the state changes: make the memory, and save the state if this
 * subtransaction has not yet saved it.
 */
static void
pending_touch(void)
{
	SubTransactionId subid;

	if (!callbacks_registered)
	{
		perfopt_cache_wake_register();
		RegisterXactCallback(outbox_xact_callback, NULL);
		RegisterSubXactCallback(outbox_subxact_callback, NULL);
		callbacks_registered = true;
	}
	if (pending_cxt == NULL)
		pending_cxt = AllocSetContextCreate(TopTransactionContext,
											"perfopt pending cache keys",
											ALLOCSET_DEFAULT_SIZES);

	if (GetCurrentTransactionNestLevel() <= 1)
		return;
	subid = GetCurrentSubTransactionId();
	if (nmarks > 0 && marks[nmarks - 1].subid == subid)
		return;
	if (nmarks == maxmarks)
	{
		maxmarks = Max(8, maxmarks * 2);
		marks = marks == NULL ?
			MemoryContextAlloc(pending_cxt, maxmarks * sizeof(PendingMark)) :
			repalloc(marks, maxmarks * sizeof(PendingMark));
	}
	marks[nmarks].subid = subid;
	marks[nmarks].nkeys = nkeys;
	marks[nmarks].written = written;
	marks[nmarks].bytes = bytes;
	nmarks++;
}

/* qsort comparator of C strings */
static int
compare_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Forget the outbox found: a schema changed (perfopt's renamed, dropped) */
static void
outbox_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	outbox_relid = InvalidOid;
}

/*
 * perfopt.cache_invalidations, opened with RowExclusiveLock: the relation
 * found before while it is still a table of that name in that schema (a
 * relation open costs less than the two catalog lookups), else looked up
 * by name, with its id sequence.
 */
static Relation
outbox_open(void)
{
	static bool callback_registered = false;
	Oid			namespace;
	Oid			relid;
	Relation	rel;

	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(NAMESPACEOID, outbox_forget, (Datum) 0);
		callback_registered = true;
	}
	if (OidIsValid(outbox_relid))
	{
		rel = try_relation_open(outbox_relid, RowExclusiveLock);
		if (rel != NULL)
		{
			if (OidIsValid(outbox_relid) &&
				rel->rd_rel->relkind == RELKIND_RELATION &&
				rel->rd_rel->relnamespace == outbox_namespace &&
				strcmp(RelationGetRelationName(rel), "cache_invalidations") == 0)
				return rel;
			relation_close(rel, RowExclusiveLock);
		}
		outbox_relid = InvalidOid;
	}

	namespace = get_namespace_oid("perfopt", true);
	relid = OidIsValid(namespace) ? get_relname_relid("cache_invalidations", namespace) : InvalidOid;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("perfopt.cache_invalidations does not exist"),
				 errhint("Run CREATE EXTENSION perfopt, or perfopt.cache_unwatch on the table.")));
	rel = table_open(relid, RowExclusiveLock);
	{
		List	   *sequences = getOwnedSequences(relid);

		if (sequences == NIL)
			elog(ERROR, "perfopt.cache_invalidations has no id sequence");
		outbox_seqid = linitial_oid(sequences);
	}
	outbox_namespace = namespace;
	outbox_relid = relid;
	return rel;
}

/*
 * Whether an index of the outbox takes the direct insertion: of columns
 * only (no expression, no predicate), not an exclusion constraint, unique
 * checked at once if unique (one not yet ready for inserts is skipped, as
 * the executor skips it).  An index made by hand that is not sends the row
 * through the executor's insertion instead.
 */
static bool
outbox_index_plain(Relation index)
{
	Form_pg_index form = index->rd_index;

	return form->indimmediate && !form->indisexclusion &&
		RelationGetIndexExpressions(index) == NIL &&
		RelationGetIndexPredicate(index) == NIL;
}

/*
 * The text[] of n keys, as construct_array makes it from text datums (each
 * element with its 4-byte header, aligned to int), without a text datum
 * made and copied for each key first.
 */
static ArrayType *
keys_array(char **items, int n)
{
	Size		nbytes = ARR_OVERHEAD_NONULLS(1);
	int		   *lens = palloc(sizeof(int) * (n + 1));
	ArrayType  *array;
	char	   *p;

	for (int i = 0; i < n; i++)
	{
		lens[i] = strlen(items[i]);
		nbytes += INTALIGN(VARHDRSZ + lens[i]);
		if (!AllocSizeIsValid(nbytes))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("array size exceeds the maximum allowed (%d)",
							(int) MaxAllocSize)));
	}
	array = palloc0(nbytes);
	SET_VARSIZE(array, nbytes);
	array->ndim = 1;
	array->dataoffset = 0;
	array->elemtype = TEXTOID;
	ARR_DIMS(array)[0] = n;
	ARR_LBOUND(array)[0] = 1;
	p = ARR_DATA_PTR(array);
	for (int i = 0; i < n; i++)
	{
		SET_VARSIZE(p, VARHDRSZ + lens[i]);
		memcpy(VARDATA(p), items[i], lens[i]);
		p += INTALIGN(VARHDRSZ + lens[i]);
	}
	pfree(lens);
	return array;
}

/*
 * Insert one outbox row: keys (n of them, sorted and without duplicates
 * here) or patterns; have the worker woken at commit.  Returns its id.
 *
 * The row goes straight into the heap and the index, as simple_heap_insert
 * and the executor's index insertion do it, not through an INSERT: this
 * runs at the commit of every writing transaction, and planning-free SPI
 * still cost an executor start-up and shutdown, a timed nested statement,
 * each time.  The outbox has no trigger, constraint or default other than
 * its id's sequence and the time, which are filled here; its columns are
 * found by name (an updated outbox has them in another order).  Its
 * indexes (the primary key) are written with index_insert, as
 * ExecInsertIndexTuples would (the unique check included), without an
 * executor state; an index it could not write so (an expression, a
 * predicate, an exclusion constraint, a deferred unique check: only one
 * made by hand) makes the row go through the executor's insertion.  The
 * locks are kept until the end of the transaction, as a statement keeps
 * them.  Nothing here checks a permission (nextval_internal is told not
 * to), so it runs as the writer, whose trigger made the keys: no privilege
 * on the outbox is needed, and no code of the writer's runs as anyone else.
 * At commit (at_commit) nothing of the transaction reads the outbox after,
 * so the command counter is left alone.
 */
static int64
outbox_insert(char **items, int n, bool pattern, bool at_commit)
{
	char	  **sorted;
	int			distinct = 0;
	Relation	rel;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	int64		id = 0;
	List	   *indexoids;
	ListCell   *lc;
	int			nindexes = 0;
	Relation   *indexes;
	bool		direct = true;
	EState	   *estate = NULL;
	ResultRelInfo *rri = NULL;
	TupleTableSlot *slot = NULL;

	if (n == 0)
		return 0;
	/* sorted in a copy: the caller's order tells whose keys are whose */
	sorted = palloc(n * sizeof(char *));
	memcpy(sorted, items, n * sizeof(char *));
	qsort(sorted, n, sizeof(char *), compare_keys);
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
			continue;
		sorted[distinct++] = sorted[i];
	}

	rel = outbox_open();
	desc = RelationGetDescr(rel);
	values = palloc0(desc->natts * sizeof(Datum));
	nulls = palloc(desc->natts * sizeof(bool));

	indexoids = RelationGetIndexList(rel);
	indexes = palloc(sizeof(Relation) * (list_length(indexoids) + 1));
	foreach(lc, indexoids)
	{
		Relation	index = index_open(lfirst_oid(lc), RowExclusiveLock);

		indexes[nindexes++] = index;
		if (!outbox_index_plain(index))
			direct = false;
	}
	list_free(indexoids);
	if (!direct)
	{
		for (int i = 0; i < nindexes; i++)
			index_close(indexes[i], NoLock);
		nindexes = 0;
		estate = CreateExecutorState();
		rri = makeNode(ResultRelInfo);
		InitResultRelInfo(rri, rel, 1, NULL, 0);
		ExecOpenIndices(rri, false);
		slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	}

	/*
	 * One row holding every key; or, while the outbox is still the one of
	 * 1.0.0 (this library installed, ALTER EXTENSION UPDATE not yet run),
	 * one row per key in its column "key", which the update converts.
	 */
	for (int k = 0; k < distinct; k++)
	{
		bool		legacy = false;
		HeapTuple	tuple;
		ItemPointerData tid;

		memset(nulls, true, desc->natts * sizeof(bool));
		id = perfopt_cache_next_id(outbox_seqid);
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);
			const char *name = NameStr(att->attname);

			if (att->attisdropped)
				continue;
			nulls[i] = false;
			if (strcmp(name, "id") == 0)
				values[i] = Int64GetDatum(id);
			else if (strcmp(name, "keys") == 0)
				values[i] = PointerGetDatum(keys_array(sorted, distinct));
			else if (strcmp(name, "key") == 0)
			{
				values[i] = CStringGetTextDatum(sorted[k]);
				legacy = true;
			}
			else if (strcmp(name, "pattern") == 0)
				values[i] = BoolGetDatum(pattern);
			else if (strcmp(name, "queued_at") == 0)
				values[i] = TimestampTzGetDatum(GetCurrentTimestamp());
			else if (att->attnotnull)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("perfopt.cache_invalidations has a column \"%s\" this perfopt does not know", name),
						 errhint("Install the perfopt library that matches the extension's version, or run ALTER EXTENSION perfopt UPDATE.")));
			else
				nulls[i] = true;
		}
		tuple = heap_form_tuple(desc, values, nulls);
		if (direct)
		{
			simple_heap_insert(rel, tuple);
			tid = tuple->t_self;
			for (int x = 0; x < nindexes; x++)
			{
				Relation	index = indexes[x];
				IndexInfo  *info;
				Datum		ivalues[INDEX_MAX_KEYS];
				bool		inulls[INDEX_MAX_KEYS];

				if (!index->rd_index->indisready)
					continue;
				info = BuildIndexInfo(index);
				for (int a = 0; a < info->ii_NumIndexAttrs; a++)
				{
					AttrNumber	attnum = info->ii_IndexAttrNumbers[a];

					ivalues[a] = values[attnum - 1];
					inulls[a] = nulls[attnum - 1];
				}
				(void) index_insert(index, ivalues, inulls, &tid, rel,
									index->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
									false, info);
				pfree(info);
			}
		}
		else
		{
			ExecStoreHeapTuple(tuple, slot, false);
			simple_table_tuple_insert(rel, slot);
			(void) ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
			tid = slot->tts_tid;
			ExecClearTuple(slot);
		}
		/* the transaction's last row of keys may go through the commit queue */
		if (at_commit && !pattern && !legacy)
			perfopt_cache_queue_at_commit(RelationGetRelid(rel), id, &tid, sorted, distinct);
		else
			perfopt_cache_wake_at_commit(id);
		heap_freetuple(tuple);
		if (!legacy)
			break;
	}
	for (int x = 0; x < nindexes; x++)
		index_close(indexes[x], NoLock);
	if (!direct)
	{
		ExecDropSingleTupleTableSlot(slot);
		ExecCloseIndices(rri);
		FreeExecutorState(estate);
	}
	table_close(rel, NoLock);
	/* the row is visible to the rest of the transaction, as an INSERT's */
	if (!at_commit)
		CommandCounterIncrement();

	pfree(sorted);
	pfree(values);
	pfree(nulls);
	pfree(indexes);
	return id;
}

/*
 * Write the pending keys as one row.  The keys this subtransaction made
 * itself are dropped from memory (they roll back with the row); an
 * ancestor's are kept, marked written, until the ancestor's fate is known.
 */
static void
pending_write(bool at_commit)
{
	int			own;

	if (nkeys == written)
		return;
	outbox_insert(keys + written, nkeys - written, false, at_commit);
	own = nmarks > 0 ? marks[nmarks - 1].nkeys : 0;
	nkeys = written = own;
	bytes = 0;
}

/* Append a key to the pending keys, unless it is the same as the last one */
static void
pending_add(const char *key, int len)
{
	char	   *copy;

	if (nkeys > written && strcmp(keys[nkeys - 1], key) == 0)
		return;
	if (nkeys == maxkeys)
	{
		maxkeys = Max(64, maxkeys * 2);
		keys = keys == NULL ?
			MemoryContextAlloc(pending_cxt, maxkeys * sizeof(char *)) :
			repalloc(keys, maxkeys * sizeof(char *));
	}
	copy = MemoryContextAlloc(pending_cxt, len + 1);
	memcpy(copy, key, len + 1);
	keys[nkeys++] = copy;
	bytes += len + 1;
}

/*
 * Queue patterns (or keys) as one row at once, in the caller's
 * transaction; for cache_invalidate() and TRUNCATE.  Returns the row's id.
 */
int64
perfopt_cache_queue_now(List *items, bool pattern)
{
	char	  **array = palloc(sizeof(char *) * (list_length(items) + 1));
	ListCell   *lc;
	int			n = 0;
	int64		id;

	foreach(lc, items)
		array[n++] = lfirst(lc);
	id = outbox_insert(array, n, pattern, false);
	pfree(array);
	return id;
}

/* A table's cache entry was invalidated: compile its triggers' templates again */
static void
trigger_templates_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	TriggerTemplates *entry;

	hash_seq_init(&status, trigger_templates);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (relid == InvalidOid || entry->relid == relid)
			entry->valid = false;
}

/* The compiled templates of the trigger that fired */
static TriggerTemplates *
trigger_templates_get(Trigger *trigger, Relation rel)
{
	TriggerTemplates *entry;
	bool		found;
	MemoryContext old;

	if (trigger_templates == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(TriggerTemplates);
		trigger_templates = hash_create("perfopt cache trigger templates", 16, &ctl,
										HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(trigger_templates_invalidate, (Datum) 0);
	}
	/* a statement changing many rows fires the same trigger for each */
	if (last_templates != NULL && last_templates->tgoid == trigger->tgoid && last_templates->valid)
		return last_templates;
	entry = hash_search(trigger_templates, &trigger->tgoid, HASH_ENTER, &found);
	if (found && entry->valid)
	{
		last_templates = entry;
		return entry;
	}
	if (found)
	{
		old = MemoryContextSwitchTo(TopMemoryContext);
		retired_cxts = lappend(retired_cxts, entry->cxt);
		MemoryContextSwitchTo(old);
	}
	entry->cxt = NULL;
	entry->valid = false;
	entry->relid = RelationGetRelid(rel);
	entry->cxt = AllocSetContextCreate(CacheMemoryContext, "perfopt cache trigger templates",
									   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(entry->cxt);
	entry->n = trigger->tgnargs;
	entry->templates = palloc(sizeof(CompiledTemplate *) * (entry->n + 1));
	for (int i = 0; i < entry->n; i++)
		entry->templates[i] = perfopt_cache_template_compile(trigger->tgargs[i],
															 RelationGetDescr(rel));
	MemoryContextSwitchTo(old);
	entry->valid = true;
	last_templates = entry;
	return entry;
}

/*
 * The row trigger of cache_watch: the keys the templates (its arguments)
 * make from the old and the new row join the transaction's pending keys;
 * on TRUNCATE (a statement trigger), the templates' patterns are queued.
 */
Datum
perfopt_cache_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	TupleDesc	desc;
	HeapTuple	oldtuple = NULL;
	HeapTuple	newtuple = NULL;
	TriggerTemplates *compiled;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("perfopt.cache_trigger() was not called as a trigger"),
				 errhint("Use perfopt.cache_watch to put it on a table.")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("perfopt.cache_trigger() must run AFTER the change"),
				 errhint("Use perfopt.cache_watch to put it on a table.")));

	trigger = trigdata->tg_trigger;
	desc = RelationGetDescr(trigdata->tg_relation);

	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
	{
		List	   *patterns = NIL;

		for (int i = 0; i < trigger->tgnargs; i++)
			patterns = lappend(patterns, perfopt_cache_template_pattern(trigger->tgargs[i]));
		perfopt_cache_queue_now(patterns, true);
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		newtuple = trigdata->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		oldtuple = trigdata->tg_trigtuple;
		newtuple = trigdata->tg_newtuple;
	}
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		oldtuple = trigdata->tg_trigtuple;

	pending_touch();
	compiled = trigger_templates_get(trigger, trigdata->tg_relation);
	if (key_buffers[0].data == NULL || key_buffers[0].maxlen > KEY_BUFFER_KEEP ||
		key_buffers[1].maxlen > KEY_BUFFER_KEEP)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		for (int b = 0; b < 2; b++)
		{
			if (key_buffers[b].data != NULL)
				pfree(key_buffers[b].data);
			initStringInfo(&key_buffers[b]);
		}
		MemoryContextSwitchTo(old);
	}
	for (int i = 0; i < compiled->n; i++)
	{
		CompiledTemplate *template = compiled->templates[i];
		StringInfo	oldkey = NULL;
		StringInfo	newkey = NULL;

		if (oldtuple != NULL && perfopt_cache_render_compiled(template, oldtuple, desc, &key_buffers[0]))
		{
			oldkey = &key_buffers[0];
			pending_add(oldkey->data, oldkey->len);
		}
		if (newtuple != NULL && perfopt_cache_render_compiled(template, newtuple, desc, &key_buffers[1]))
		{
			newkey = &key_buffers[1];
			if (oldkey == NULL || oldkey->len != newkey->len ||
				memcmp(oldkey->data, newkey->data, newkey->len) != 0)
				pending_add(newkey->data, newkey->len);
		}
	}

	/* too much is pending: write now */
	if (nkeys - written >= PENDING_MAX_KEYS || bytes >= PENDING_MAX_BYTES)
		pending_write(false);
	return PointerGetDatum(NULL);
}
