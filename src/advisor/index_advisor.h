/*-------------------------------------------------------------------------
 *
 * index_advisor.h
 *	  The index advisor: candidates from the workload, what-if costs, and
 *	  the set of indexes chosen under a budget.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_INDEX_ADVISOR_H
#define PERFOPT_INDEX_ADVISOR_H

#include "nodes/bitmapset.h"
#include "nodes/pg_list.h"
#include "nodes/primnodes.h"
#include "utils/relcache.h"

/* Longest index key the advisor builds, and most columns of a covering one */
#define ADVISOR_MAX_KEY_COLUMNS		4
#define ADVISOR_MAX_INDEX_COLUMNS	6

/* One column or expression of an index key; expressions use varno 1 */
typedef struct IndexKeyPart
{
	AttrNumber	attnum;			/* 0 for an expression */
	Node	   *expression;
	const char *opclass;		/* NULL for the type's default */
	double		distinct;		/* distinct values, to order equality columns */
} IndexKeyPart;

/*
 * How one level of one statement uses one table: what an index on it could
 * serve.
 */
typedef struct TableUsage
{
	Oid			relid;
	int			statement;		/* index in the workload list */
	List	   *equality;		/* IndexKeyPart *: =, IN, IS NULL, join keys */
	List	   *range;			/* IndexKeyPart *: <, <=, >, >=, LIKE 'prefix%' */
	List	   *order;			/* IndexKeyPart *: ORDER BY (or GROUP BY) keys in order */
	Bitmapset  *needed;			/* every column of the table this level uses */
	List	   *rare_conditions;	/* Node *: conditions that keep few rows (varno 1) */
} TableUsage;

/* An index the advisor may recommend */
typedef struct IndexCandidate
{
	int			id;				/* index in the candidate list */
	Oid			relid;
	List	   *key;			/* IndexKeyPart * */
	List	   *include;		/* attnums (int) of INCLUDE columns */
	Node	   *predicate;		/* WHERE of a partial index (varno 1), or NULL */
	int			parent;			/* candidate it extends, or -1 */
	bool		foreign_key;	/* its key is an unindexed foreign key */
	char	   *foreign_key_name;
	char	   *definition;		/* CREATE INDEX ON ... as HypoPG takes it */
	Bitmapset  *columns;		/* every column it stores or tests */
	Oid			hypothetical;	/* HypoPG's OID while it exists */
	double		fraction;		/* share of the table's rows it holds */
	double		size;			/* estimated bytes, deduplication counted */
	double		hypopg_size;	/* HypoPG's estimate, bytes */
	List	   *extensions;		/* candidate ids extending it, once made */
	bool		extended;		/* have its extensions been made? */
} IndexCandidate;

extern List *perfopt_index_expressions(Relation index);
extern Node *perfopt_index_predicate(Relation index);
extern List *perfopt_table_usages(List *workload);
extern List *perfopt_seed_candidates(List *workload, List *usages, List **candidates);
extern List *perfopt_extend_candidate(IndexCandidate *candidate, List *usages,
									  List **candidates);
extern List *perfopt_foreign_key_checks(List *workload, List **candidates,
										List **seeds);
extern bool perfopt_candidate_is_served(IndexCandidate *candidate);
extern double perfopt_estimate_index_bytes(IndexCandidate *candidate);
extern const char *perfopt_candidate_kind(IndexCandidate *candidate);
extern char *perfopt_candidate_description(IndexCandidate *candidate);

/*
 * Index selection, which knows candidates only by id: the caller answers
 * for costs, sizes and extensions.
 */
typedef struct SelectionProblem
{
	List	   *seeds;			/* candidate ids to start from */
	double		budget_bytes;	/* <= 0: no budget */
	double		min_gain_share;	/* stop when the best step gains less than
								 * this share of the cost left */
	double		(*objective) (void *arg, Bitmapset *config);
	double		(*size) (void *arg, int candidate);	/* < 0: unusable */
	List	   *(*extensions) (void *arg, int candidate);
	bool		(*redundant) (void *arg, int candidate, Bitmapset *config);
	void	   *arg;
} SelectionProblem;

extern Bitmapset *perfopt_select_indexes(SelectionProblem *problem);

/* index_statements.c */
extern char *perfopt_index_build_statements(Oid relid, const char *def, const char *name);

#endif							/* PERFOPT_INDEX_ADVISOR_H */
