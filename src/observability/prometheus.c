/*-------------------------------------------------------------------------
 *
 * prometheus.c
 *	  prometheus_metrics(): everything perfopt knows, in the Prometheus text
 *	  exposition format (version 0.0.4).
 *
 * One family per metric, each with HELP and TYPE lines and its samples
 * together; label values are escaped (backslash, double quote, newline).
 * What goes out:
 *
 *	- the sampler's latest sample, one gauge family per metric of
 *	  perfopt.metrics, its entity as a label named for what it is (database,
 *	  state, table, queryid, ...);
 *	- latency histograms (_bucket, _sum, _count) from the shared-memory
 *	  histograms: all statements together, and the perfopt.metrics_top_statements
 *	  statements with the most time, by queryid;
 *	- table health scores of the largest tables (from the latest optimization
 *	  report), index drop candidates;
 *	- the Redis cache layer's figures, when it is installed;
 *	- capacity forecasts, open anomalies and incidents, capacity alerts;
 *	- rule actions by outcome, the jobs' last runs, the latest health scores
 *	  (from the latest optimization report: health() itself reads every
 *	  table, too slow for a scrape).
 *
 * Every query is bounded, so a scrape costs milliseconds whatever the
 * database holds (test/bench/prometheus_scrape.sh measures it).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/string.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "metrics/latency.h"
#include "observability/prometheus.h"

int			perfopt_metrics_top_statements = 50;

PG_FUNCTION_INFO_V1(perfopt_prometheus_metrics);

/* Which label a sampler metric's entity goes under */
static const struct
{
	const char *prefix;
	const char *label;
}			entity_labels[] = {
	{"transactions_per_sec", "database"}, {"commits_per_sec", "database"},
	{"rollbacks_per_sec", "database"}, {"error_rate_pct", "database"},
	{"rows_", "database"}, {"cache_hit_ratio", "database"},
	{"temp_bytes_per_sec", "database"}, {"deadlocks_per_sec", "database"},
	{"database_size_bytes", "database"}, {"connections", "state"},
	{"waiting_sessions", "wait_event_type"}, {"replication_lag", "standby"},
	{"replication_slot", "slot"}, {"disk_", "filesystem"},
	{"table_size_bytes", "table"}, {"dead_tuples", "table"}, {"latency_", "queryid"},
	{"statements_per_sec", "queryid"}
};

/* Append a label value with \, " and newline escaped */
static void
append_label_value(StringInfo out, const char *value)
{
	for (const char *p = value; *p; p++)
	{
		if (*p == '\\')
			appendStringInfoString(out, "\\\\");
		else if (*p == '"')
			appendStringInfoString(out, "\\\"");
		else if (*p == '\n')
			appendStringInfoString(out, "\\n");
		else
			appendStringInfoChar(out, *p);
	}
}

/* Append a metric name: letters, digits and underscores only */
static void
append_name(StringInfo out, const char *name)
{
	for (const char *p = name; *p; p++)
		appendStringInfoChar(out, (isalnum((unsigned char) *p) || *p == '_') ? *p : '_');
}

/* HELP and TYPE lines of a family */
static void
family(StringInfo out, const char *name, const char *type, const char *help)
{
	appendStringInfoString(out, "# HELP ");
	append_name(out, name);
	appendStringInfoChar(out, ' ');
	for (const char *p = help; *p; p++)
	{
		if (*p == '\\')
			appendStringInfoString(out, "\\\\");
		else if (*p == '\n')
			appendStringInfoString(out, "\\n");
		else
			appendStringInfoChar(out, *p);
	}
	appendStringInfoString(out, "\n# TYPE ");
	append_name(out, name);
	appendStringInfo(out, " %s\n", type);
}

/*
 * One sample: name, up to three labels (NULL name ends them), value.
 * Infinite and NaN values are written as Prometheus spells them.
 */
static void
sample(StringInfo out, const char *name, const char *suffix,
	   const char *label1, const char *value1,
	   const char *label2, const char *value2,
	   const char *label3, const char *value3, double value)
{
	const char *labels[3] = {label1, label2, label3};
	const char *values[3] = {value1, value2, value3};
	bool		first = true;

	append_name(out, name);
	if (suffix)
		appendStringInfoString(out, suffix);
	for (int i = 0; i < 3; i++)
	{
		if (labels[i] == NULL || values[i] == NULL)
			continue;
		appendStringInfoString(out, first ? "{" : ",");
		appendStringInfo(out, "%s=\"", labels[i]);
		append_label_value(out, values[i]);
		appendStringInfoChar(out, '"');
		first = false;
	}
	if (!first)
		appendStringInfoChar(out, '}');
	if (isnan(value))
		appendStringInfoString(out, " NaN\n");
	else if (isinf(value))
		appendStringInfoString(out, value > 0 ? " +Inf\n" : " -Inf\n");
	else
		appendStringInfo(out, " %.17g\n", value);
}

/* Run a read-only query; false (and nothing) if it failed to run */
static void
query(const char *sql)
{
	int			ret = SPI_execute(sql, true, 0);

	if (ret < 0)
		elog(ERROR, "perfopt exposition query failed: %s", SPI_result_code_string(ret));
}

static char *
text_at(uint64 row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

static double
float_at(uint64 row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NAN : DatumGetFloat8(d);
}

static bool
null_at(uint64 row, int col)
{
	bool		isnull;

	(void) SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	return isnull;
}

/*
 * A gauge family from the last query's rows: column 1 is the value of the
 * one label, column value_col the sample's value
 */
static void
labelled_gauge(StringInfo out, const char *name, const char *help, const char *label,
			   int value_col)
{
	family(out, name, "gauge", help);
	for (uint64 i = 0; i < SPI_processed; i++)
		sample(out, name, NULL, label, text_at(i, 1), NULL, NULL, NULL, NULL,
			   float_at(i, value_col));
}

/* Does perfopt.<name> exist (the extension may be older than the library)? */
static bool
relation_exists(const char *name)
{
	Oid			namespace = get_namespace_oid("perfopt", true);

	return OidIsValid(namespace) && OidIsValid(get_relname_relid(name, namespace));
}

/* The label for a sampler metric's entity */
static const char *
entity_label(const char *metric)
{
	for (int i = 0; i < lengthof(entity_labels); i++)
		if (strncmp(metric, entity_labels[i].prefix, strlen(entity_labels[i].prefix)) == 0)
			return entity_labels[i].label;
	return "entity";
}

/*
 * The exposition's name of a sampler metric: "perfopt_" and the metric,
 * with Prometheus' spelling of units ("_sec" becomes "_seconds",
 * "_per_sec" "_per_second"), which promtool checks.  Milliseconds ("_ms")
 * become seconds, and the caller divides the value by 1000.
 */
static void
exposition_name(char *name, size_t size, const char *metric)
{
	StringInfoData buf;
	const char *p = metric;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "perfopt_");
	while (*p)
	{
		if (strncmp(p, "_per_sec", 8) == 0 && (p[8] == '\0' || p[8] == '_'))
		{
			appendStringInfoString(&buf, "_per_second");
			p += 8;
		}
		else if (strncmp(p, "_sec", 4) == 0 && (p[4] == '\0' || p[4] == '_'))
		{
			appendStringInfoString(&buf, "_seconds");
			p += 4;
		}
		else if (strcmp(p, "_ms") == 0)
		{
			appendStringInfoString(&buf, "_seconds");
			p += 3;
		}
		else
			appendStringInfoChar(&buf, *p++);
	}
	strlcpy(name, buf.data, size);
	pfree(buf.data);
}

/* The sampler's latest sample, a gauge family per metric */
static void
sampler_metrics(StringInfo out)
{
	char	   *previous = NULL;

	query("SELECT metric, entity, value FROM perfopt.metrics_latest"
		  " WHERE ts >= (SELECT max(ts) FROM perfopt.metrics_latest)"
		  "             - 2 * current_setting('perfopt.sample_interval')::interval"
		  " ORDER BY metric, entity LIMIT 5000");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *metric = text_at(i, 1);
		char	   *entity = text_at(i, 2);
		char		name[NAMEDATALEN * 2];

		exposition_name(name, sizeof(name), metric);
		if (previous == NULL || strcmp(previous, metric) != 0)
		{
			char	   *help = psprintf("perfopt.metrics \"%s\", the latest sample%s (docs/workers.md)", metric,
									 pg_str_endswith(metric, "_ms") ? ", in seconds" : "");

			family(out, name, "gauge", help);
			previous = metric;
		}
		sample(out, name, NULL, (entity && entity[0]) ? entity_label(metric) : NULL, entity,
			   NULL, NULL, NULL, NULL,
			   float_at(i, 3) / (pg_str_endswith(metric, "_ms") ? 1000.0 : 1.0));
	}
}

/* One latency histogram's _bucket, _sum and _count lines, with up to three labels */
static void
histogram_lines(StringInfo out, const char *name, const LatencyHistogram *h,
				const char *label1, const char *value1, const char *label2, const char *value2,
				const char *label3, const char *value3)
{
	StringInfoData labels;

	/* the labels other than le, written once */
	initStringInfo(&labels);
	if (label1)
		appendStringInfo(&labels, "%s=\"%s\",", label1, value1);
	if (label2)
	{
		appendStringInfo(&labels, "%s=\"", label2);
		append_label_value(&labels, value2);
		appendStringInfoString(&labels, "\",");
	}
	if (label3)
		appendStringInfo(&labels, "%s=\"%s\",", label3, value3);

	for (int k = 0; k <= PERFOPT_LATENCY_BOUNDS; k++)
	{
		append_name(out, name);
		appendStringInfo(out, "_bucket{%s", labels.data);
		if (k < PERFOPT_LATENCY_BOUNDS)
			appendStringInfo(out, "le=\"%g\"} " UINT64_FORMAT "\n", perfopt_latency_bounds[k],
							 h->cumulative[k]);
		else
			appendStringInfo(out, "le=\"+Inf\"} " UINT64_FORMAT "\n", h->calls);
	}
	if (labels.len > 0)
		labels.data[--labels.len] = '\0';	/* the trailing comma */
	append_name(out, name);
	appendStringInfo(out, "_sum%s%s%s %.17g\n", labels.len ? "{" : "", labels.data,
					 labels.len ? "}" : "", h->sum_seconds);
	append_name(out, name);
	appendStringInfo(out, "_count%s%s%s " UINT64_FORMAT "\n", labels.len ? "{" : "", labels.data,
					 labels.len ? "}" : "", h->calls);
	pfree(labels.data);
}

/* Latency histograms: every statement together, then the busiest ones */
static void
latency_histograms(StringInfo out)
{
	LatencyHistogram all;
	List	   *top = perfopt_latency_histograms(perfopt_metrics_top_statements, &all);
	ListCell   *lc;

	if (!perfopt_latency_available())
		return;
	family(out, "perfopt_statement_latency_seconds", "histogram",
		   "Latency of every statement timed by perfopt since it was first timed (top level and nested)");
	histogram_lines(out, "perfopt_statement_latency_seconds", &all, NULL, NULL, NULL, NULL, NULL, NULL);

	family(out, "perfopt_query_latency_seconds", "histogram",
		   "Latency per statement, for the statements with the most time (perfopt.metrics_top_statements)");
	foreach(lc, top)
	{
		LatencyHistogram *h = (LatencyHistogram *) lfirst(lc);
		char		queryid[32];
		char	   *database = get_database_name(h->dbid);

		snprintf(queryid, sizeof(queryid), INT64_FORMAT, (int64) h->queryid);
		histogram_lines(out, "perfopt_query_latency_seconds", h, "queryid", queryid,
						"database", database ? database : "",
						"toplevel", h->toplevel ? "true" : "false");
	}
}

/*
 * Health scores of the largest tables, and the indexes perfopt would drop,
 * as the latest optimization cycle found them (table_health and
 * index_drop_candidates read every table and index: seconds at 10,000
 * tables, too slow for a scrape)
 */
static void
tables_and_indexes(StringInfo out)
{
	if (relation_exists("optimization_reports"))
	{
		query("SELECT t->>'table', (t->>'health_score')::float8"
			  "  FROM (SELECT report FROM perfopt.optimization_reports"
			  "         ORDER BY created_at DESC, id DESC LIMIT 1) r,"
			  "       jsonb_array_elements(r.report->'tables') t");
		labelled_gauge(out, "perfopt_table_health_score",
					   "Health score 0-100 of the largest tables at the latest optimization cycle (perfopt.table_health)",
					   "table", 2);

		query("SELECT d->>'reason', (d->>'indexes')::float8, (d->>'bytes')::float8"
			  "  FROM (SELECT report FROM perfopt.optimization_reports"
			  "         ORDER BY created_at DESC, id DESC LIMIT 1) r,"
			  "       jsonb_array_elements(r.report->'index_drop_candidates') d"
			  " ORDER BY 1");
		labelled_gauge(out, "perfopt_index_drop_candidates",
					   "Indexes perfopt would drop, by reason, at the latest optimization cycle (perfopt.index_drop_candidates)",
					   "reason", 2);
		labelled_gauge(out, "perfopt_index_drop_candidates_bytes",
					   "Size of the indexes perfopt would drop, by reason, at the latest optimization cycle",
					   "reason", 3);
	}
}

/* The Redis cache layer's figures, when it is installed */
static void
cache(StringInfo out)
{
	static const char *const columns[] = {"hits", "misses", "hit_rate_pct", "keys",
	"invalidations_sent", "outbox_depth"};

	if (!relation_exists("cache_metrics"))
		return;
	query("SELECT hits::float8, misses::float8, hit_rate_pct::float8, keys::float8,"
		  "       invalidations_sent::float8, outbox_depth::float8"
		  "  FROM perfopt.cache_metrics LIMIT 1");
	if (SPI_processed == 0)
		return;
	for (int c = 0; c < lengthof(columns); c++)
	{
		char	   *name = psprintf("perfopt_cache_%s", columns[c]);

		family(out, name, "gauge", psprintf("Redis cache layer: %s (perfopt.cache_metrics)", columns[c]));
		sample(out, name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, float_at(0, c + 1));
	}
}

/* Capacity forecasts and alerts */
static void
capacity(StringInfo out)
{
	/* in the order of the query's columns 3 onwards */
	static const struct
	{
		const char *name;
		const char *help;
	}			figures[] = {
		{"perfopt_capacity_current", "Current use of a resource"},
		{"perfopt_capacity_limit", "Limit of a resource"},
		{"perfopt_capacity_forecast_90d", "Use forecast in 90 days (baseline)"},
		{"perfopt_capacity_seconds_left",
		"Seconds until the resource runs out (baseline); absent when it does not within the horizon"},
		{"perfopt_capacity_confidence", "Confidence 0-100 of the forecast, from its backtest"}
	};

	if (!relation_exists("capacity_forecasts"))
		return;
	query("SELECT resource, entity, current_value, capacity, forecast_90d,"
		  "       extract(epoch FROM exhaustion_at - forecast_at)::float8, confidence"
		  "  FROM perfopt.capacity_forecasts ORDER BY 1, 2 LIMIT 1000");
	for (int f = 0; f < lengthof(figures); f++)
	{
		family(out, figures[f].name, "gauge", figures[f].help);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *entity = text_at(i, 2);

			if (null_at(i, f + 3))
				continue;
			sample(out, figures[f].name, NULL, "resource", text_at(i, 1),
				   (entity && entity[0]) ? "entity" : NULL, entity, NULL, NULL, float_at(i, f + 3));
		}
	}
	query("SELECT severity, count(*)::float8 FROM perfopt.capacity_alerts"
		  " WHERE cleared_at IS NULL GROUP BY 1 ORDER BY 1");
	labelled_gauge(out, "perfopt_capacity_alerts_open",
				   "Capacity alerts raised and not cleared, by severity", "severity", 2);
}

/* Open anomalies and incidents, rule actions, jobs, health */
static void
orchestration(StringInfo out)
{
	if (relation_exists("anomalies"))
	{
		query("SELECT metric, severity, count(*)::float8 FROM perfopt.anomalies"
			  " WHERE resolved_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1000");
		family(out, "perfopt_anomalies_open", "gauge", "Open anomalies, by metric and severity");
		for (uint64 i = 0; i < SPI_processed; i++)
			sample(out, "perfopt_anomalies_open", NULL, "metric", text_at(i, 1),
				   "severity", text_at(i, 2), NULL, NULL, float_at(i, 3));
	}
	if (relation_exists("incidents"))
	{
		query("SELECT severity, count(*)::float8 FROM perfopt.incidents"
			  " WHERE resolved_at IS NULL GROUP BY 1 ORDER BY 1");
		labelled_gauge(out, "perfopt_incidents_open", "Open incidents, by severity", "severity", 2);

		query("SELECT coalesce(rule_name, ''), action, outcome, count(*)::float8"
			  "  FROM perfopt.action_log GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LIMIT 2000");
		family(out, "perfopt_actions_total", "counter",
			   "Actions of rules and of optimize(), by rule, action and outcome (perfopt.action_log)");
		for (uint64 i = 0; i < SPI_processed; i++)
			sample(out, "perfopt_actions_total", NULL, "rule", text_at(i, 1),
				   "action", text_at(i, 2), "outcome", text_at(i, 3), float_at(i, 4));

		query("SELECT h.key, (h.value->>'score')::float8"
			  "  FROM (SELECT report FROM perfopt.optimization_reports"
			  "         ORDER BY created_at DESC, id DESC LIMIT 1) r,"
			  "       jsonb_each(r.report->'health') h ORDER BY 1");
		labelled_gauge(out, "perfopt_health_score",
					   "Health score 0-100 per component and overall, at the latest optimization cycle",
					   "component", 2);
	}
	if (relation_exists("jobs"))
	{
		query("SELECT job_name, coalesce(last_duration_ms, 0) / 1000, failures::float8"
			  "  FROM perfopt.jobs ORDER BY 1 LIMIT 1000");
		labelled_gauge(out, "perfopt_job_last_duration_seconds", "Duration of each job's last run", "job", 2);
		labelled_gauge(out, "perfopt_job_failures", "Consecutive failures of each job", "job", 3);
	}
}

/*
 * The whole exposition; the caller is in a transaction with a snapshot.
 * Returns a palloc'd string.
 */
char *
perfopt_prometheus_text(void)
{
	StringInfoData out;

	initStringInfo(&out);
	family(&out, "perfopt_up", "gauge", "1 when perfopt answered the scrape");
	sample(&out, "perfopt_up", NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1);

	SPI_connect();
	if (relation_exists("metrics_latest"))
		sampler_metrics(&out);
	latency_histograms(&out);
	tables_and_indexes(&out);
	cache(&out);
	capacity(&out);
	orchestration(&out);
	SPI_finish();
	return out.data;
}

/* prometheus_metrics(): the exposition as text */
Datum
perfopt_prometheus_metrics(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(perfopt_prometheus_text()));
}
