/*-------------------------------------------------------------------------
 *
 * statement.c
 *	  Turning a statement text into analyzed and planned trees without
 *	  executing it.
 *
 * perfopt reads statements as users type them and as pg_stat_statements
 * prints them.  The latter replaces every constant by $n, which breaks two
 * things PREPARE relies on:
 *
 * - the grammar has no place for $n in a typed literal: "date $1" and
 *	 "interval $3 year" are syntax errors.  When the raw parser stops at such
 *	 a $n, we blank it to a string literal of the same length ('' and
 *	 spaces), parse again, and put a ParamRef back where the literal landed.
 *	 Same-length blanks keep every error position valid for the caller's
 *	 text.
 *
 * - some $n have no type the analyzer can infer, as in "$4 - $5" ("operator
 *	 is not unique: unknown - unknown").  When analysis fails that way, the
 *	 parameters that were still unknown at the failure are given integer
 *	 (if that is not enough, numeric, then text) and analysis is tried
 *	 again.  Each try runs in a subtransaction, because analysis takes
 *	 locks and opens relations.
 *
 * Planning uses no parameter values, so the plan is the generic plan.
 * Permissions are checked on the planned range table exactly as the
 * executor would check them, so a caller who may not run the statement
 * gets the error that running it would give.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"

#include "analysis/statement.h"
#include "common/subxact.h"

/* How many times analysis is retried with wider parameter types */
#define MAX_ANALYZE_ATTEMPTS	32

typedef struct RestoreParamsContext
{
	List	   *blanked;		/* byte offsets of blanked $n */
	const char *original;		/* caller's text, to read n back */
	int			restored;
} RestoreParamsContext;

/*
 * Report error positions as positions in the analyzed statement, not in the
 * statement that called us, the way SPI does for the queries it runs.
 */
static void
statement_error_callback(void *arg)
{
	const char *query_text = (const char *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(query_text);
	}
}

/* Does the text hold a $n parameter symbol? */
bool
perfopt_text_has_params(const char *query_text)
{
	const char *p;

	for (p = strchr(query_text, '$'); p != NULL; p = strchr(p + 1, '$'))
	{
		if (isdigit((unsigned char) p[1]))
			return true;
	}
	return false;
}

/*
 * Byte offset of the $n token at 1-based character position charpos of
 * text, or -1 if no parameter symbol starts there.
 */
static int
param_token_at(const char *text, int charpos)
{
	int			offset = 0;
	int			i;

	if (charpos <= 0)
		return -1;
	for (i = 1; i < charpos && text[offset] != '\0'; i++)
		offset += pg_mblen(text + offset);
	if (text[offset] == '$' && isdigit((unsigned char) text[offset + 1]))
		return offset;
	return -1;
}

/* Overwrite the $n at offset with '' padded by spaces to the same length */
static void
blank_param_token(char *text, int offset)
{
	int			end = offset + 1;

	while (isdigit((unsigned char) text[end]))
		end++;
	text[offset] = '\'';
	text[offset + 1] = '\'';
	memset(text + offset + 2, ' ', end - offset - 2);
}

static bool
restore_params_walker(Node *node, RestoreParamsContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, TypeCast))
	{
		TypeCast   *cast = (TypeCast *) node;

		if (cast->arg != NULL && IsA(cast->arg, A_Const) &&
			list_member_int(context->blanked, ((A_Const *) cast->arg)->location))
		{
			ParamRef   *param = makeNode(ParamRef);

			param->location = ((A_Const *) cast->arg)->location;
			param->number = atoi(context->original + param->location + 1);
			cast->arg = (Node *) param;
			context->restored++;
			return false;
		}
	}
	return raw_expression_tree_walker(node, restore_params_walker, context);
}

/*
 * Parse the statement's text, blanking each $n that the grammar rejects.
 * Returns the list of raw statements; the text in stmt is left blanked.
 */
static List *
raw_parse_blanking_params(PerfoptStatement *stmt, const char *original,
						  List **blanked)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorData  *first_error = NULL;

	for (;;)
	{
		List	   *volatile result = NIL;
		ErrorData  *edata = NULL;
		int			offset;

		/*
		 * The raw parser holds no locks, buffers or relations, so its errors
		 * can be caught without a subtransaction.  Only syntax errors are
		 * caught; anything else (out of memory, stack depth, cancel) goes on.
		 */
		PG_TRY();
		{
			result = raw_parser(stmt->text, RAW_PARSE_DEFAULT);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			if (edata->sqlerrcode != ERRCODE_SYNTAX_ERROR)
				PG_RE_THROW();
			FlushErrorState();
		}
		PG_END_TRY();

		if (edata == NULL)
			return result;
		if (first_error == NULL)
			first_error = edata;

		offset = param_token_at(stmt->text, edata->internalpos);
		if (offset < 0)
		{
			/*
			 * Not a parameter the grammar rejected.  Report this error, unless
			 * it points at one of our blanks (the caller's text has a $n
			 * there): then the first error describes the caller's text better.
			 */
			if (param_token_at(original, edata->internalpos) >= 0)
				ReThrowError(first_error);
			ReThrowError(edata);
		}
		blank_param_token(stmt->text, offset);
		*blanked = lappend_int(*blanked, offset);
	}
}

/*
 * Guess the types of the parameters that analysis could not infer, one
 * step per failed attempt:
 *
 * 1. parameters still unknown get integer (a normalized whole number);
 *	  integer comes first because it converts implicitly to the other
 *	  numeric types, so a guess never forces a cast onto the column it is
 *	  compared with;
 * 2. else the guesses so far move on, to numeric, then text;
 * 3. else parameters that analysis made text only because nothing said
 *	  otherwise ("SELECT $1 AS c" in a subquery) get integer, and go
 *	  through step 2 in turn.
 *
 * Returns false when there is nothing left to try.
 */
static bool
guess_param_types(Oid *types, int ntypes, Oid **guesses, int *nguesses)
{
	bool		guessed = false;
	int			i;

	if (ntypes > *nguesses)
	{
		*guesses = *guesses ? repalloc(*guesses, ntypes * sizeof(Oid))
			: palloc(ntypes * sizeof(Oid));
		memset(*guesses + *nguesses, 0, (ntypes - *nguesses) * sizeof(Oid));
		*nguesses = ntypes;
	}

	for (i = 0; i < ntypes; i++)
	{
		if ((*guesses)[i] == InvalidOid && types[i] == UNKNOWNOID)
		{
			(*guesses)[i] = INT4OID;
			guessed = true;
		}
	}
	if (guessed)
		return true;

	for (i = 0; i < ntypes; i++)
	{
		if ((*guesses)[i] == INT4OID)
			(*guesses)[i] = NUMERICOID;
		else if ((*guesses)[i] == NUMERICOID)
			(*guesses)[i] = TEXTOID;
		else
			continue;
		guessed = true;
	}
	if (guessed)
		return true;

	for (i = 0; i < ntypes; i++)
	{
		if ((*guesses)[i] == InvalidOid && types[i] == TEXTOID)
		{
			(*guesses)[i] = INT4OID;
			guessed = true;
		}
	}
	return guessed;
}

/* Errors that a better guess of parameter types can cure */
static bool
is_param_type_error(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_AMBIGUOUS_FUNCTION ||
		sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
		sqlerrcode == ERRCODE_DATATYPE_MISMATCH ||
		sqlerrcode == ERRCODE_INDETERMINATE_DATATYPE ||
		sqlerrcode == ERRCODE_AMBIGUOUS_PARAMETER;
}

/*
 * Analyze a statement whose $n parameters may need their types guessed,
 * each attempt in a subtransaction so that a failed one releases what it
 * locked and opened.
 */
static void
analyze_step(void *arg)
{
	PerfoptStatement *stmt = (PerfoptStatement *) arg;

	stmt->query = parse_analyze_varparams(copyObject(stmt->raw), stmt->text,
										  &stmt->param_types, &stmt->num_params,
										  NULL);
}

static void
analyze_guessing_param_types(PerfoptStatement *stmt)
{
	ErrorData  *first_error = NULL;
	Oid		   *guesses = NULL;
	int			nguesses = 0;
	int			attempt;

	for (attempt = 1;; attempt++)
	{
		ErrorData  *edata;

		/*
		 * Analysis updates the type array in place as far as it gets, so
		 * after a failure it tells which parameters were still unknown.
		 */
		stmt->num_params = nguesses;
		stmt->param_types = NULL;
		if (nguesses > 0)
		{
			stmt->param_types = palloc(nguesses * sizeof(Oid));
			memcpy(stmt->param_types, guesses, nguesses * sizeof(Oid));
		}

		edata = perfopt_try_in_subtransaction(analyze_step, stmt);
		if (edata == NULL)
			return;
		if (first_error == NULL)
			first_error = edata;

		/*
		 * An error of another kind is the statement's own, past what the
		 * guesses cured.  When guessing runs out, the first error tells
		 * best what could not be inferred.
		 */
		if (!is_param_type_error(edata->sqlerrcode))
			ReThrowError(edata);
		if (attempt >= MAX_ANALYZE_ATTEMPTS ||
			!guess_param_types(stmt->param_types, stmt->num_params,
							   &guesses, &nguesses))
			ReThrowError(first_error);
	}
}

/*
 * Parse and analyze one statement.  EXPLAIN is unwrapped (its options are
 * ignored: nothing is ever executed); other utility statements are parsed
 * only.  Errors carry positions in query_text.
 */
PerfoptStatement *
perfopt_parse_statement(const char *query_text)
{
	PerfoptStatement *stmt = palloc0(sizeof(PerfoptStatement));
	ErrorContextCallback errcallback;
	List	   *blanked = NIL;
	List	   *parsetrees;

	stmt->text = pstrdup(query_text);

	errcallback.callback = statement_error_callback;
	errcallback.arg = unconstify(char *, query_text);
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	parsetrees = raw_parse_blanking_params(stmt, query_text, &blanked);
	if (parsetrees == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query string is empty"),
				 errhint("Pass one SQL statement to analyze.")));
	if (list_length(parsetrees) > 1)
	{
		RawStmt    *second = lsecond_node(RawStmt, parsetrees);

		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("cannot analyze more than one statement at a time"),
				 errdetail("The string holds %d statements.", list_length(parsetrees)),
				 errhint("Call the function once for each statement."),
				 errposition(pg_mbstrlen_with_len(query_text, second->stmt_location) + 1)));
	}

	stmt->raw = linitial_node(RawStmt, parsetrees);
	if (IsA(stmt->raw->stmt, ExplainStmt))
		stmt->raw->stmt = ((ExplainStmt *) stmt->raw->stmt)->query;

	switch (nodeTag(stmt->raw->stmt))
	{
		case T_SelectStmt:
			/* SELECT INTO is CREATE TABLE AS */
			stmt->is_utility = ((SelectStmt *) stmt->raw->stmt)->intoClause != NULL;
			break;
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
			stmt->is_utility = false;
			break;
		default:
			stmt->is_utility = true;
			break;
	}

	if (!stmt->is_utility)
	{
		if (blanked != NIL)
		{
			RestoreParamsContext context = {blanked, query_text, 0};

			(void) restore_params_walker(stmt->raw->stmt, &context);
			if (context.restored != list_length(blanked))
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("syntax error at or near \"$\""),
						 errposition(pg_mbstrlen_with_len(query_text, linitial_int(blanked)) + 1)));
		}

		if (perfopt_text_has_params(query_text))
			analyze_guessing_param_types(stmt);
		else
			stmt->query = parse_analyze_varparams(stmt->raw, stmt->text,
												  &stmt->param_types,
												  &stmt->num_params, NULL);
	}

	error_context_stack = errcallback.previous;
	return stmt;
}

/*
 * Rewrite and plan an analyzed statement with no parameter values (a
 * generic plan), then check the caller's permissions on everything the
 * plans touch, as the executor would before running them.  stmt->query is
 * left as it was.  Returns a list of PlannedStmt: empty for a statement
 * that a rule turns into nothing, several when rules add statements.
 */
List *
perfopt_plan_statement(PerfoptStatement *stmt)
{
	List	   *plans = NIL;
	ListCell   *lc;

	Assert(!stmt->is_utility);
	foreach(lc, pg_rewrite_query(copyObject(stmt->query)))
	{
		Query	   *query = lfirst_node(Query, lc);
		PlannedStmt *plan;

		if (query->commandType == CMD_UTILITY)
			continue;			/* NOTIFY added by a rule */
		plan = pg_plan_query(query, stmt->text, CURSOR_OPT_PARALLEL_OK, NULL);
		(void) ExecCheckRTPerms(plan->rtable, true);
		plans = lappend(plans, plan);
	}
	return plans;
}
