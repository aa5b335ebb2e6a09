# perfopt: PGXS build, install and tests
EXTENSION = perfopt
MODULE_big = perfopt
OBJS = \
	src/perfopt.o \
	src/orchestrator/actions.o \
	src/models/anomaly_job.o \
	src/models/anomaly.o \
	src/models/correlation.o \
	src/routing/balance.o \
	src/cache/cache.o \
	src/cache/cache_hits.o \
	src/cache/cache_worker.o \
	src/cache/outbox.o \
	src/common/catalog.o \
	src/common/oid_map.o \
	src/common/stat_pass.o \
	src/analysis/complexity.o \
	src/orchestrator/cron.o \
	src/observability/exporter.o \
	src/models/forecast.o \
	src/models/forecast_sql.o \
	src/routing/instance_check.o \
	src/health/table_score.o \
	src/metrics/histogram.o \
	src/metrics/latency.o \
	src/bgw/launcher.o \
	src/bgw/worker.o \
	src/cache/redis.o \
	src/common/clock.o \
	src/common/extension_lock.o \
	src/common/settings.o \
	src/guc.o \
	src/analysis/pgss.o \
	src/health/pool_advice.o \
	src/observability/prometheus.o \
	src/routing/routing.o \
	src/advisor/index_advisor.o \
	src/advisor/index_candidates.o \
	src/advisor/index_selection.o \
	src/advisor/drop_set.o \
	src/advisor/index_statements.o \
	src/analysis/query_analysis.o \
	src/metrics/sampler.o \
	src/metrics/table_state.o \
	src/common/security.o \
	src/common/series.o \
	src/analysis/statement.o \
	src/common/subxact.o \
	src/health/table_health.o \
	src/advisor/whatif.o \
	src/advisor/workload.o \
	src/samples/samples.o

# The install script of the current version and the update from the one
# before are assembled from readable sources (sql/README.md); the scripts of
# older releases stay in sql/legacy/ for the updates from them.
EXTVERSION = $(shell sed -n "s/^default_version = '\\(.*\\)'/\\1/p" perfopt.control)
PREVVERSION = 1.0.0
TABLES_SQL = $(sort $(wildcard sql/tables/*.sql))
DEFINITIONS_SQL = $(sort $(wildcard sql/definitions/*.sql))
DATA_built = sql/perfopt--$(EXTVERSION).sql sql/perfopt--$(PREVVERSION)--$(EXTVERSION).sql
DATA = $(wildcard sql/legacy/perfopt--*.sql)


# pg_regress tests, in order: sql/<name>.sql against expected/<name>.out, on a
# temporary instance with perfopt and pg_stat_statements preloaded
REGRESS = setup analyze_query analyze_query_recommendations \
	analyze_query_errors analyze_query_params slow_queries \
	index_advisor advise_query_params index_drop_candidates table_health metrics \
	anomaly_forecast correlation orchestrator cache routing
REGRESS_OPTS = --temp-config=$(srcdir)/test/regress.conf --temp-instance=./tmp_check

# TAP tests: restarts, several sessions, servers
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS = -I $(srcdir)/test/perl

SHLIB_LINK += -lhiredis -lmicrohttpd -lcurl -lpq
PG_CPPFLAGS = -I$(srcdir)/src -I$(shell $(PG_CONFIG) --includedir)

PG_CFLAGS = -Wall -Wmissing-prototypes -Wpointer-arith -Werror=vla -Wendif-labels

# Header dependencies: Debian's PGXS tracks none (built without
# --enable-depend), so a changed struct in a header would leave stale objects
PG_CFLAGS += -MMD -MP
EXTRA_CLEAN = $(OBJS:.o=.d)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
-include $(OBJS:.o=.d)

sql/perfopt--$(EXTVERSION).sql: sql/header.sql sql/roles.sql $(TABLES_SQL) $(DEFINITIONS_SQL)
	sh scripts/assemble-sql.sh 'CREATE EXTENSION perfopt' $^ > $@

sql/perfopt--$(PREVVERSION)--$(EXTVERSION).sql: sql/header.sql sql/roles.sql sql/updates/$(PREVVERSION)--$(EXTVERSION).sql $(DEFINITIONS_SQL)
	sh scripts/assemble-sql.sh "ALTER EXTENSION perfopt UPDATE TO '$(EXTVERSION)'" $^ > $@
