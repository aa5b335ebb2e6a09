/*-------------------------------------------------------------------------
 *
 * index_statements.c
 *	  The statements that build an index without blocking writes, also on a
 *	  partitioned table.
 *
 * PostgreSQL 15 refuses CREATE INDEX CONCURRENTLY on a partitioned table,
 * and a plain CREATE INDEX on one holds a SHARE lock on every partition for
 * the whole build.  So an index of a partitioned table is built the way the
 * manual's "Partition Maintenance" section shows: the parent's index ON
 * ONLY the parent (invalid, and empty), then each partition's index
 * CONCURRENTLY, each attached to the parent's with ALTER INDEX ... ATTACH
 * PARTITION; when the last partition is attached, the parent's index
 * becomes valid.  A partition that is partitioned in turn gets the same
 * treatment, and is attached once its own partitions are.  Foreign tables
 * take no index and are left out.
 *
 * The statements are written from one CREATE INDEX (the advisor's, or
 * pg_get_indexdef's): what follows its table's name (USING, the key,
 * INCLUDE, WITH, WHERE) is kept as written, since a partition has the same
 * column names as its parent.  The index of a partition is named as
 * PostgreSQL names it (table_columns_idx, made unique).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/defrem.h"
#include "common/keywords.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "advisor/index_advisor.h"
#include "common/catalog.h"

PG_FUNCTION_INFO_V1(perfopt_index_build_statements_sql);

/* the longest CREATE INDEX statement read */
#define INDEX_DEF_MAX_BYTES		65536

/* The parsed CREATE INDEX, and where its text goes on after the table */
typedef struct IndexText
{
	IndexStmt  *stmt;
	const char *tail;			/* USING ... or (key) ... */
	char	   *columns;		/* key column names joined by "_", for names */
} IndexText;

/* Parse the first statement of def, which must be a CREATE INDEX */
static IndexText
read_index_text(const char *def)
{
	IndexText	result;
	List	   *parsed = raw_parser(def, RAW_PARSE_DEFAULT);
	RawStmt    *raw;
	core_yyscan_t scanner;
	core_yy_extra_type extra;
	core_YYSTYPE value;
	YYLTYPE		location = -1;
	int			token;
	StringInfoData columns;
	ListCell   *lc;

	raw = parsed != NIL ? linitial_node(RawStmt, parsed) : NULL;
	if (raw == NULL || !IsA(raw->stmt, IndexStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the index definition is not a CREATE INDEX statement"),
				 errhint("Pass a statement as pg_get_indexdef() or the index advisor writes it.")));
	result.stmt = (IndexStmt *) raw->stmt;

	/* the token after the table's (qualified) name starts the tail */
	scanner = scanner_init(def, &extra, &ScanKeywords, ScanKeywordTokens);
	do
		token = core_yylex(&value, &location, scanner);
	while (token != 0 && location < result.stmt->relation->location);
	if (token != 0)
	{
		token = core_yylex(&value, &location, scanner);
		while (token == '.')
		{
			(void) core_yylex(&value, &location, scanner);
			token = core_yylex(&value, &location, scanner);
		}
	}
	scanner_finish(scanner);
	if (token == 0 || token == ';')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the index definition names no columns after its table"),
				 errhint("Pass a statement as pg_get_indexdef() or the index advisor writes it.")));
	result.tail = def + location;

	initStringInfo(&columns);
	foreach(lc, result.stmt->indexParams)
	{
		IndexElem  *elem = lfirst_node(IndexElem, lc);

		if (columns.len > 0)
			appendStringInfoChar(&columns, '_');
		appendStringInfoString(&columns, elem->name ? elem->name : "expr");
	}
	result.columns = columns.data;
	return result;
}

/* The tail of the statement, up to its end or the next statement */
static char *
statement_tail(IndexText *index, const char *def)
{
	RawStmt    *raw = linitial_node(RawStmt, raw_parser(def, RAW_PARSE_DEFAULT));
	int			end = raw->stmt_len > 0 ? raw->stmt_location + raw->stmt_len : (int) strlen(def);

	return pnstrdup(index->tail, def + end - index->tail);
}

/* A free name for an index of relid, as PostgreSQL would choose it */
static char *
index_name_for(Oid relid, const char *columns)
{
	return ChooseRelationName(get_rel_name(relid), columns, "idx",
							  get_rel_namespace(relid), false);
}

static char *
qualified_index(Oid relid, const char *name)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), name);
}

/*
 * Append the statements that build the index name (of relid, a partitioned
 * table) ON ONLY it, then its partitions' indexes, each attached.
 */
static void
append_partitioned(StringInfo buf, Oid relid, const char *name, IndexText *index,
				   const char *tail)
{
	List	   *children = find_inheritance_children(relid, NoLock);
	ListCell   *lc;

	appendStringInfo(buf, "CREATE %sINDEX %s ON ONLY %s %s;\n",
					 index->stmt->unique ? "UNIQUE " : "", quote_identifier(name),
					 perfopt_relation_name(relid), tail);
	foreach(lc, children)
	{
		Oid			child = lfirst_oid(lc);
		char		relkind = get_rel_relkind(child);
		char	   *child_name;

		if (relkind == RELKIND_FOREIGN_TABLE)
			continue;
		child_name = index_name_for(child, index->columns);
		if (relkind == RELKIND_PARTITIONED_TABLE)
			append_partitioned(buf, child, child_name, index, tail);
		else
			appendStringInfo(buf, "CREATE %sINDEX CONCURRENTLY %s ON %s %s;\n",
							 index->stmt->unique ? "UNIQUE " : "", quote_identifier(child_name),
							 perfopt_relation_name(child), tail);
		appendStringInfo(buf, "ALTER INDEX %s ATTACH PARTITION %s;\n",
						 qualified_index(relid, name), qualified_index(child, child_name));
	}
}

/*
 * The statements that build the index that def (a CREATE INDEX of relid)
 * describes, named name (NULL: a free name as PostgreSQL would choose it)
 * without blocking writes: for a partitioned table, one statement a line,
 * each ended by a semicolon; for any other, one CREATE INDEX CONCURRENTLY,
 * without a semicolon.
 */
char *
perfopt_index_build_statements(Oid relid, const char *def, const char *name)
{
	IndexText	index = read_index_text(def);
	char	   *tail = statement_tail(&index, def);
	StringInfoData buf;

	if (name == NULL)
		name = index_name_for(relid, index.columns);
	initStringInfo(&buf);
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
	{
		append_partitioned(&buf, relid, name, &index, tail);
		buf.data[--buf.len] = '\0';	/* the last newline */
	}
	else
		appendStringInfo(&buf, "CREATE %sINDEX CONCURRENTLY %s ON %s %s",
						 index.stmt->unique ? "UNIQUE " : "", quote_identifier(name),
						 perfopt_relation_name(relid), tail);
	return buf.data;
}

/*
 * perfopt.index_build_statements(table_name, index_def, index_name): the
 * statements that build index_def's index on table_name, named index_name,
 * without blocking writes (for the orchestrator's create_index and the
 * undo of its drop_index).  Only catalogs are read.
 */
Datum
perfopt_index_build_statements_sql(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	text	   *def = PG_GETARG_TEXT_PP(1);
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_MATVIEW &&
		relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation %u is not a table or materialized view", relid),
				 errhint("Pass the table the index is on.")));
	if (VARSIZE_ANY_EXHDR(def) > INDEX_DEF_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("an index definition is at most %d bytes", INDEX_DEF_MAX_BYTES),
				 errhint("Pass one CREATE INDEX statement.")));
	if (strlen(name) == 0 || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("an index name has 1 to %d bytes", NAMEDATALEN - 1),
				 errhint("Pass a shorter name.")));
	PG_RETURN_TEXT_P(cstring_to_text(perfopt_index_build_statements(relid, text_to_cstring(def), name)));
}
