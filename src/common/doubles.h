/*-------------------------------------------------------------------------
 *
 * doubles.h
 *	  The qsort comparator of doubles, ascending, for the models and the
 *	  router: plain C, without PostgreSQL's headers, so that forecast.c
 *	  and balance.c, which include none of them, share it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_DOUBLES_H
#define PERFOPT_DOUBLES_H

/* qsort comparator of doubles, ascending; the callers sort no NaN */
static inline int
perfopt_compare_doubles(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

#endif							/* PERFOPT_DOUBLES_H */
