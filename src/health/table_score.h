/*-------------------------------------------------------------------------
 *
 * table_score.h
 *	  A table's health components and the 0-100 score they make.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_HEALTH_SCORE_H
#define PERFOPT_HEALTH_SCORE_H

/*
 * What the score is made of.  Percentages are 0..100; a component that
 * cannot be known (no reads yet, no updates yet) is negative and costs
 * nothing.
 */
typedef struct TableHealth
{
	double		bloat_pct;		/* heap space live rows do not need */
	double		index_bloat_pct;	/* the same for the table's btrees */
	double		dead_tuple_pct; /* dead among live and dead tuples */
	double		vacuum_due;		/* dead tuples / autovacuum's threshold */
	double		analyze_due;	/* changes since analyze / its threshold */
	double		xid_age_pct;	/* age / freeze max age, xid or multixact */
	double		seq_scan_pct;	/* of scans, on a table worth an index */
	double		cache_hit_pct;	/* heap blocks found in shared buffers */
	double		hot_update_pct; /* updates that were HOT */
	bool		large;			/* enough rows and scans for scans to matter */
	bool		sizable;		/* enough bytes (1 MB) for bloat and cache misses to matter */
} TableHealth;

/* Each component's share of the penalty, for the issues column */
typedef struct HealthPenalties
{
	double		bloat;
	double		dead_tuples;
	double		vacuum;
	double		analyze;
	double		wraparound;
	double		seq_scans;
	double		cache;
	double		hot_updates;
} HealthPenalties;

extern int	perfopt_health_score(const TableHealth *health, HealthPenalties *penalties);

/* Per-table autovacuum settings sized from the rate the table changes at */
typedef struct AutovacuumAdvice
{
	double		changes_per_hour;	/* updates and deletes an hour, measured */
	double		current_dead_rows;	/* autovacuum's threshold now */
	double		current_hours;	/* hours of changes to reach it */
	double		scale_factor;	/* advised autovacuum_vacuum_scale_factor */
	double		analyze_scale_factor;	/* advised autovacuum_analyze_scale_factor */
	double		advised_dead_rows;	/* the threshold with the advice */
	double		advised_hours;	/* hours of changes to reach that */
} AutovacuumAdvice;

/* Tables smaller than this are vacuumed quickly whatever the setting */
#define AUTOVACUUM_ADVICE_MIN_ROWS		100000
/* Aim: autovacuum comes after about this many hours of changes ... */
#define AUTOVACUUM_TARGET_HOURS			1.0
/* ... with a scale factor no lower than this ... */
#define AUTOVACUUM_MIN_SCALE_FACTOR		0.01
/* ... and only where the advice makes it come at least once in this long */
#define AUTOVACUUM_MAX_HOURS			24.0

extern bool perfopt_autovacuum_advice(double rows, double changes, double seconds,
									  double threshold, double scale_factor,
									  AutovacuumAdvice *advice);

#endif							/* PERFOPT_HEALTH_SCORE_H */
