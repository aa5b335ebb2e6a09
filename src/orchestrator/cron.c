/*-------------------------------------------------------------------------
 *
 * cron.c
 *	  Cron schedules of automation rules: cron_next(schedule, after).
 *
 * A schedule has the five fields of crontab(5), in UTC: minute (0-59), hour
 * (0-23), day of month (1-31), month (1-12 or jan-dec) and day of week (0-7,
 * 0 and 7 both Sunday, or sun-sat).  A field is "*", a value, a range
 * "a-b", any of these with a step "/n", or a comma-separated list of them.
 * As in cron, when both day fields are restricted a day matching either
 * one matches.  The shorthands @hourly, @daily (@midnight), @weekly,
 * @monthly and @yearly (@annually) are accepted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

/* the longest schedule read: five fields with lists fit in far less */
#define CRON_MAX_LENGTH		1000

/* a schedule matching nothing within this many days is refused */
#define CRON_SEARCH_DAYS	(366 * 5)

typedef struct CronSchedule
{
	bool		minute[60];
	bool		hour[24];
	bool		day_of_month[32];	/* 1..31 */
	bool		month[13];		/* 1..12 */
	bool		day_of_week[7]; /* 0 = Sunday */
	bool		any_day_of_month;
	bool		any_day_of_week;
} CronSchedule;

PG_FUNCTION_INFO_V1(perfopt_cron_next);

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
"jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* Report a schedule that cannot be read */
static void
cron_error(const char *schedule, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid cron schedule \"%s\"", schedule),
			 errdetail("%s", detail),
			 errhint("Use five fields, minute hour day-of-month month day-of-week, such as '*/15 * * * *' or '0 3 * * sun'.")));
}

/* Read a number or a name from *p; returns false if there is neither */
static bool
read_value(const char **p, const char *const *names, int nnames, int name_base,
		   int *value)
{
	if (isdigit((unsigned char) **p))
	{
		long		v = 0;

		while (isdigit((unsigned char) **p))
		{
			v = v * 10 + (**p - '0');
			if (v > 1000)
				return false;
			(*p)++;
		}
		*value = (int) v;
		return true;
	}
	for (int i = 0; i < nnames; i++)
		if (pg_strncasecmp(*p, names[i], 3) == 0)
		{
			*p += 3;
			*value = i + name_base;
			return true;
		}
	return false;
}

/*
 * Parse one field into set[low..high]; returns whether it was "*".  Names
 * (months, days) are accepted when names is given.
 */
static bool
parse_field(const char *schedule, const char *field, bool *set, int low, int high,
			const char *const *names, int nnames, int name_base, const char *what)
{
	const char *p = field;
	bool		star = (strcmp(field, "*") == 0);

	for (;;)
	{
		int			from,
					to,
					step = 1;

		if (*p == '*')
		{
			from = low;
			to = high;
			p++;
		}
		else
		{
			if (!read_value(&p, names, nnames, name_base, &from))
				cron_error(schedule, psprintf("the %s field \"%s\" is not a number, a range or *", what, field));
			to = from;
			if (*p == '-')
			{
				p++;
				if (!read_value(&p, names, nnames, name_base, &to))
					cron_error(schedule, psprintf("the %s field \"%s\" has a range without an end", what, field));
			}
		}
		if (*p == '/')
		{
			p++;
			if (!read_value(&p, NULL, 0, 0, &step) || step < 1)
				cron_error(schedule, psprintf("the %s field \"%s\" has a step that is not a positive number", what, field));
			if (from == to && field[0] != '*')
				to = high;
		}
		if (from < low || to > high || from > to)
			cron_error(schedule, psprintf("the %s field \"%s\" is outside %d-%d", what, field, low, high));
		for (int v = from; v <= to; v += step)
			set[v] = true;
		if (*p == '\0')
			break;
		if (*p != ',')
			cron_error(schedule, psprintf("the %s field \"%s\" has an unexpected \"%c\"", what, field, *p));
		p++;
	}
	return star;
}

/* Parse a schedule, or fail with a clear error */
static void
parse_schedule(const char *schedule, CronSchedule *cron)
{
	static const struct
	{
		const char *name;
		const char *fields;
	}			shorthands[] = {
		{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"},
		{"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
		{"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"},
		{"@hourly", "0 * * * *"}
	};
	char	   *copy;
	char	   *fields[5];
	int			nfields = 0;
	char	   *token;
	char	   *saveptr = NULL;
	bool		day_of_week[8];

	memset(cron, 0, sizeof(*cron));
	memset(day_of_week, 0, sizeof(day_of_week));

	copy = pstrdup(schedule);
	for (int i = 0; i < lengthof(shorthands); i++)
		if (pg_strcasecmp(copy, shorthands[i].name) == 0)
			copy = pstrdup(shorthands[i].fields);

	for (token = strtok_r(copy, " \t\n", &saveptr); token != NULL;
		 token = strtok_r(NULL, " \t\n", &saveptr))
	{
		if (nfields == 5)
			cron_error(schedule, "it has more than five fields");
		fields[nfields++] = token;
	}
	if (nfields < 5)
		cron_error(schedule, psprintf("it has %d fields, not five", nfields));

	parse_field(schedule, fields[0], cron->minute, 0, 59, NULL, 0, 0, "minute");
	parse_field(schedule, fields[1], cron->hour, 0, 23, NULL, 0, 0, "hour");
	cron->any_day_of_month = parse_field(schedule, fields[2], cron->day_of_month, 1, 31,
										 NULL, 0, 0, "day-of-month");
	parse_field(schedule, fields[3], cron->month, 1, 12, month_names, 12, 1, "month");
	cron->any_day_of_week = parse_field(schedule, fields[4], day_of_week, 0, 7,
										day_names, 7, 0, "day-of-week");
	for (int d = 0; d < 7; d++)
		cron->day_of_week[d] = day_of_week[d];
	if (day_of_week[7])
		cron->day_of_week[0] = true;
}

/* Does the schedule run on this day? */
static bool
day_matches(const CronSchedule *cron, const struct pg_tm *tm)
{
	bool		by_month_day = cron->day_of_month[tm->tm_mday];
	bool		by_week_day = cron->day_of_week[tm->tm_wday];

	if (!cron->month[tm->tm_mon])
		return false;
	if (cron->any_day_of_month && cron->any_day_of_week)
		return true;
	if (cron->any_day_of_month)
		return by_week_day;
	if (cron->any_day_of_week)
		return by_month_day;
	return by_month_day || by_week_day;
}

/*
 * cron_next(schedule, after): the first time after "after" at which the
 * schedule runs (UTC, whole minutes)
 */
Datum
perfopt_cron_next(PG_FUNCTION_ARGS)
{
	char	   *schedule = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz after = PG_GETARG_TIMESTAMPTZ(1);
	CronSchedule cron;
	struct pg_tm tm;
	fsec_t		fsec;
	TimestampTz day_start;

	if (strlen(schedule) > CRON_MAX_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cron schedule is longer than %d bytes", CRON_MAX_LENGTH),
				 errhint("Use five fields, minute hour day-of-month month day-of-week, such as '*/15 * * * *'.")));
	parse_schedule(schedule, &cron);
	if (TIMESTAMP_NOT_FINITE(after))
		PG_RETURN_TIMESTAMPTZ(after);

	/* the next whole minute after "after", in UTC */
	if (timestamp2tm(after, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	tm.tm_sec = 0;
	fsec = 0;
	if (tm2timestamp(&tm, 0, NULL, &day_start) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	/* day_start is now "after" truncated to the minute */
	{
		TimestampTz first = day_start + USECS_PER_MINUTE;
		int			first_minute_of_day;

		if (timestamp2tm(first, NULL, &tm, &fsec, NULL, NULL) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		first_minute_of_day = tm.tm_hour * 60 + tm.tm_min;
		day_start = first - (TimestampTz) first_minute_of_day * USECS_PER_MINUTE;

		for (int d = 0; d < CRON_SEARCH_DAYS; d++)
		{
			TimestampTz day = day_start + (TimestampTz) d * USECS_PER_DAY;

			if (timestamp2tm(day, NULL, &tm, &fsec, NULL, NULL) != 0)
				break;
			tm.tm_wday = j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday));
			if (!day_matches(&cron, &tm))
				continue;
			for (int m = (d == 0 ? first_minute_of_day : 0); m < 24 * 60; m++)
				if (cron.hour[m / 60] && cron.minute[m % 60])
					PG_RETURN_TIMESTAMPTZ(day + (TimestampTz) m * USECS_PER_MINUTE);
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("cron schedule \"%s\" never runs", schedule),
			 errhint("Check the day-of-month and month fields: February 30th does not exist.")));
	PG_RETURN_NULL();
}
