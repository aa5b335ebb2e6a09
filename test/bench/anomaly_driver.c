/*
 * anomaly_driver.c
 *	  The detector of src/models/anomaly.c outside the server, for
 *	  test/bench/anomaly_cv.py: reads a NAB-style CSV (timestamp,value; times
 *	  in UTC, in any order), runs the same core that detect_anomalies() runs,
 *	  and writes timestamp,value,anomaly_score (0 or 1) in input order.
 *
 *	  anomaly_driver [-t threshold] [-p name=value ...] IN.csv OUT.csv
 *
 *	  -p sets one of the detector's fitted constants (anomaly.h lists them).
 *	  With ANOMALY_DRIVER_TIMING set in the environment, it prints the CPU
 *	  time of the detector (the time sort included) and the state's size.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "models/anomaly.h"

int
main(int argc, char **argv)
{
	double		threshold = 0;
	const char *params[32];
	int			nparams = 0;
	int			a = 1;
	FILE	   *in,
			   *out;
	char		line[512];
	char	  **stamps = NULL;
	double	   *times = NULL,
			   *values = NULL,
			   *expected,
			   *score;
	int		   *flag;
	long		n = 0,
				cap = 0;
	void	   *ws;
	long	   *order;
	int		   *kind;
	struct timespec t0,
				t1;

	while (a < argc && argv[a][0] == '-')
	{
		if (strcmp(argv[a], "-t") == 0 && a + 1 < argc)
			threshold = atof(argv[a + 1]);
		else if (strcmp(argv[a], "-p") == 0 && a + 1 < argc && nparams < 32)
			params[nparams++] = argv[a + 1];
		else
			break;
		a += 2;
	}
	if (argc - a != 2)
	{
		fprintf(stderr, "usage: %s [-t threshold] [-p name=value] IN.csv OUT.csv\n", argv[0]);
		return 2;
	}
	if ((in = fopen(argv[a], "r")) == NULL || (out = fopen(argv[a + 1], "w")) == NULL)
	{
		perror("anomaly_driver");
		return 2;
	}
	if (!fgets(line, sizeof(line), in))
		return 2;
	while (fgets(line, sizeof(line), in))
	{
		struct tm	tm;
		char	   *comma = strchr(line, ',');

		if (!comma)
			continue;
		*comma = '\0';
		if (n == cap)
		{
			cap = cap ? 2 * cap : 4096;
			stamps = realloc(stamps, cap * sizeof(char *));
			times = realloc(times, cap * sizeof(double));
			values = realloc(values, cap * sizeof(double));
		}
		memset(&tm, 0, sizeof(tm));
		if (!strptime(line, "%Y-%m-%d %H:%M:%S", &tm))
			continue;
		stamps[n] = strdup(line);
		times[n] = (double) timegm(&tm);
		values[n] = (comma[1] == '\n' || comma[1] == '\0') ? NAN : atof(comma + 1);
		n++;
	}
	expected = malloc(sizeof(double) * (n + 1));
	score = malloc(sizeof(double) * (n + 1));
	flag = malloc(sizeof(int) * (n + 1));
	ws = malloc(perfopt_anomaly_state_size());
	perfopt_anomaly_init(ws, threshold);
	for (int i = 0; i < nparams; i++)
	{
		char		name[64];
		const char *eq = strchr(params[i], '=');

		if (!eq || eq - params[i] >= 63)
			return 2;
		memcpy(name, params[i], eq - params[i]);
		name[eq - params[i]] = '\0';
		if (perfopt_anomaly_set_param(ws, name, atof(eq + 1)) != 0)
		{
			fprintf(stderr, "unknown parameter %s\n", name);
			return 2;
		}
	}
	order = malloc(sizeof(long) * 2 * (n + 1));
	kind = calloc(n + 1, sizeof(int));
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	perfopt_anomaly_time_order(times, n, order, order + n);
	for (long k = 0; k < n; k++)
	{
		long		i = order[k];

		perfopt_anomaly_update(ws, times[i], values[i], &expected[i], &score[i], &flag[i]);
		if (flag[i])
		{
			PerfoptAnomalyReason r;

			perfopt_anomaly_last_reason(ws, &r);
			kind[i] = r.kind;
		}
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	if (getenv("ANOMALY_DRIVER_TIMING"))
	{
		double		ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;

		fprintf(stderr, "detector: %.1f ms of CPU for %ld points (%.3f us a point), state %ld bytes\n",
				ms, n, n > 0 ? ms * 1e3 / n : 0.0, perfopt_anomaly_state_size());
	}
	fprintf(out, "timestamp,value,anomaly_score,kind,score\n");
	for (long i = 0; i < n; i++)
		fprintf(out, "%s,%.17g,%d,%d,%.3f\n", stamps[i], values[i], flag[i], kind[i], score[i]);
	fclose(out);
	return 0;
}
