/*-------------------------------------------------------------------------
 *
 * table_score.c
 *	  A table's 0-100 health score.
 *
 * The score starts at 100 and loses points for each component, weighted
 * by what that component costs the user when it goes wrong:
 *
 *	wraparound	up to 40: an xid or multixact age past autovacuum's freeze
 *				limit means anti-wraparound vacuums are not keeping up, and
 *				at 2 billion the database stops taking writes.  Nothing
 *				below half the limit; 15 at the limit; 40 at twice it.
 *	bloat		up to 25: space the live rows do not need is read by every
 *				scan and held in cache; 20% is normal churn and fillfactor,
 *				80% or more is a table several times too big.  Index bloat
 *				counts half as much.  Not on tables under 1 MB, where a
 *				half-empty page is no cost.
 *	dead tuples	up to 15: scanned and skipped by every query until vacuum
 *				removes them; nothing below 10%, all at 50%.
 *	vacuum		up to 10: autovacuum has not run though the table passed its
 *				threshold (due = dead tuples / threshold); from due 1 to 3.
 *	analyze		up to 10: statistics older than the changes since mislead
 *				the planner; from due 1 to 3.
 *	seq scans	up to 10, on tables of 10,000 rows or more read 100 times
 *				or more: most reads are sequential scans, a missing index;
 *				from 50% to 100%.
 *	cache		up to 10: the table's blocks are read from disk; from 95% hit
 *				down to 75%.  Not on tables under 1 MB either: their misses
 *				are each page's first reads (a new page counts as one), and
 *				a one-row table just written shows 0%.
 *	hot updates up to 5: most updates are not HOT, so each writes every
 *				index of the table; from 50% HOT down to 0%.
 *
 * The sum of the caps passes 100; the score is floored at 0.  Nothing here
 * reads catalogs: table_health.c measures the components.
 *
 * Autovacuum advice: autovacuum vacuums a table once its dead rows pass
 * autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor x rows.  At
 * the default 0.2 a big table that changes steadily collects a fifth of its
 * size in dead rows between vacuums.  The advice sizes the scale factor so
 * that autovacuum comes after about an hour of changes (no lower than 0.01),
 * and is given only where it fixes something measured: the table changes
 * (updates and deletes; a table that is only inserted into, or not written
 * at all, gets none), the advice at least halves the wait, and with it
 * autovacuum comes at least once a day.  A table that changes so slowly
 * that even 0.01 leaves it unvacuumed for days has few dead rows to remove.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "health/table_score.h"

/* max_points times where value sits between from (0) and to (1) */
static double
ramp(double value, double from, double to, double max_points)
{
	double		share;

	if (value < 0)
		return 0;				/* unknown */
	share = (value - from) / (to - from);
	return max_points * Min(Max(share, 0), 1);
}

/* The score, and each component's penalty in *penalties */
int
perfopt_health_score(const TableHealth *h, HealthPenalties *p)
{
	double		total;

	memset(p, 0, sizeof(*p));

	if (h->xid_age_pct >= 0)
	{
		if (h->xid_age_pct <= 100)
			p->wraparound = ramp(h->xid_age_pct, 50, 100, 15);
		else
			p->wraparound = 15 + ramp(h->xid_age_pct, 100, 200, 25);
	}
	if (h->sizable)
	{
		p->bloat = ramp(h->bloat_pct, 20, 80, 25);
		if (h->index_bloat_pct >= 0)
			p->bloat = Min(25, p->bloat + ramp(h->index_bloat_pct, 30, 90, 12.5));
	}
	p->dead_tuples = ramp(h->dead_tuple_pct, 10, 50, 15);
	p->vacuum = ramp(h->vacuum_due, 1, 3, 10);
	p->analyze = ramp(h->analyze_due, 1, 3, 10);
	if (h->large)
		p->seq_scans = ramp(h->seq_scan_pct, 50, 100, 10);
	if (h->sizable && h->cache_hit_pct >= 0)
		p->cache = ramp(100 - h->cache_hit_pct, 5, 25, 10);
	if (h->hot_update_pct >= 0)
		p->hot_updates = ramp(100 - h->hot_update_pct, 50, 100, 5);

	total = p->wraparound + p->bloat + p->dead_tuples + p->vacuum + p->analyze +
		p->seq_scans + p->cache + p->hot_updates;
	return (int) Max(0, rint(100 - total));
}

/*
 * Whether to advise a per-table autovacuum scale factor for a table of rows
 * rows that saw changes updates and deletes in seconds of statistics, whose
 * settings are threshold and scale_factor; *advice holds the numbers either
 * way (hours are infinite when the table does not change).
 */
bool
perfopt_autovacuum_advice(double rows, double changes, double seconds,
						  double threshold, double scale_factor, AutovacuumAdvice *advice)
{
	double		rate = seconds > 0 ? Max(0, changes) * 3600 / seconds : 0;
	double		scale = rows > 0 ? rate * AUTOVACUUM_TARGET_HOURS / rows : scale_factor;

	scale = Max(AUTOVACUUM_MIN_SCALE_FACTOR, Min(scale, scale_factor));
	advice->changes_per_hour = rate;
	advice->current_dead_rows = threshold + scale_factor * rows;
	advice->scale_factor = scale;
	advice->analyze_scale_factor = Max(AUTOVACUUM_MIN_SCALE_FACTOR / 2, scale / 2);
	advice->advised_dead_rows = threshold + scale * rows;
	advice->current_hours = rate > 0 ? advice->current_dead_rows / rate : INFINITY;
	advice->advised_hours = rate > 0 ? advice->advised_dead_rows / rate : INFINITY;

	return rows >= AUTOVACUUM_ADVICE_MIN_ROWS && rate > 0 &&
		scale < scale_factor &&
		advice->current_hours >= 2 * advice->advised_hours &&
		advice->advised_hours <= AUTOVACUUM_MAX_HOURS;
}
