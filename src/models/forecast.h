/*-------------------------------------------------------------------------
 *
 * forecast.h
 *	  Forecaster used by forecast() and the capacity worker.
 *
 * Pure C99: no PostgreSQL headers, no global state, no allocation.  The
 * caller asks perfopt_forecast_workspace_size() how many bytes the
 * forecaster needs, provides them (palloc in the extension, malloc in the
 * standalone driver) together with three output arrays of "horizon"
 * doubles, and calls perfopt_forecast().  forecast.c explains the method.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERFOPT_FORECAST_H
#define PERFOPT_FORECAST_H

/* At most this many seasonal periods (e.g. day, week) per series */
#define PERFOPT_FORECAST_MAX_PERIODS	3

/* Coverage of [lower, upper] when the caller leaves interval_level at 0 */
#define PERFOPT_FORECAST_DEFAULT_LEVEL	0.80

/* Aggregation policy (perfopt_forecast_aggregation) */
#define PERFOPT_FORECAST_MIN_STEP		300.0	/* seconds */
#define PERFOPT_FORECAST_MAX_VALUES		50000

/* Return codes of perfopt_forecast() */
#define PERFOPT_FORECAST_OK				0
#define PERFOPT_FORECAST_NO_DATA		(-1)	/* no finite value at all */
#define PERFOPT_FORECAST_BAD_ARGUMENT	(-2)	/* horizon < 1, bad period or level */
#define PERFOPT_FORECAST_NO_SPACE		(-3)	/* workspace smaller than asked for */

/* Models the forecaster can choose from (bit flags in info->methods) */
#define PERFOPT_FORECAST_NAIVE			0x0001	/* last value */
#define PERFOPT_FORECAST_SEASONAL_NAIVE	0x0002	/* value one season ago */
#define PERFOPT_FORECAST_DRIFT			0x0004	/* line through first and last value */
#define PERFOPT_FORECAST_PROFILE_LEVEL	0x0008	/* seasonal profile + smoothed level */
#define PERFOPT_FORECAST_PROFILE_DAMPED	0x0010	/* seasonal profile + damped trend */
#define PERFOPT_FORECAST_PROFILE_THETA	0x0020	/* seasonal profile + level with half the line's slope */
#define PERFOPT_FORECAST_HOLT_WINTERS	0x0040	/* multi-seasonal Holt-Winters, damped trend */
#define PERFOPT_FORECAST_SEASONAL_AR	0x0080	/* autoregression on recent and seasonal lags */
#define PERFOPT_FORECAST_LOG_SCALE		0x0100	/* set when the models ran on Box-Cox values
												 * (log or square root), see lambda */
#define PERFOPT_FORECAST_ANALOG			0x0200	/* what followed the most similar past days */

/* What the caller asks for besides the values */
typedef struct PerfoptForecastSpec
{
	int			nperiods;		/* number of seasonal periods, 0..3 */
	int			periods[PERFOPT_FORECAST_MAX_PERIODS];	/* in steps, >= 2 */
	double		interval_level; /* coverage of the interval, 0 < level < 1;
								 * 0 means PERFOPT_FORECAST_DEFAULT_LEVEL */
} PerfoptForecastSpec;

/* What the forecaster tells about its forecast */
typedef struct PerfoptForecastInfo
{
	int			methods;		/* PERFOPT_FORECAST_* flags of combined models */
	int			nmodels;		/* how many models were combined */
	int			nvalid;			/* finite values the forecast is based on */
	int			backtest_horizon;	/* steps held out for the backtest, 0 if
									 * there was too little history */
	double		backtest_error; /* relative mean absolute error of the
								 * combination over the latest backtest:
								 * sum|error| / sum|actual| */
	double		confidence;		/* 0..1: 1 - backtest_error, clamped; 0 when
								 * no backtest was possible */
	double		interval_level; /* coverage of [lower, upper] actually used */
	double		lambda;			/* Box-Cox parameter used: 0 log, 0.5 square
								 * root, 1 the values as they are */
	int			backtest_origins;	/* backtests run per model (1..5), 0 if
									 * there was too little history */
} PerfoptForecastInfo;

extern long perfopt_forecast_workspace_size(int nvalues, int horizon,
											const PerfoptForecastSpec *spec);
extern int	perfopt_forecast(const double *values, int nvalues, int horizon,
							 const PerfoptForecastSpec *spec,
							 void *workspace, long workspace_size,
							 double *baseline, double *lower, double *upper,
							 PerfoptForecastInfo *info);
extern int	perfopt_forecast_aggregation(double step_seconds, int nvalues);
extern int	perfopt_forecast_periods(double step_seconds, int nvalues,
									 int *periods);
extern int	perfopt_forecast_aggregate(const double *values, int nvalues,
									   int factor, double *out);
extern int	perfopt_forecast_first_crossing(const double *series, int horizon,
											double limit, int upward);
extern const char *perfopt_forecast_method_name(int method);

#endif							/* PERFOPT_FORECAST_H */
