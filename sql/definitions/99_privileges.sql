-- privileges: every grant perfopt makes, in one place (docs/security.md)
-- Run by CREATE EXTENSION and again by every update, last.
--
-- Default deny: all that PUBLIC may use of perfopt's functions, tables and
-- views is taken away first, then each role is given what it needs, so an
-- update from any earlier release ends with exactly these grants.
--   PUBLIC         a tenant: what it sees is what its own privileges allow
--                  (the statements pg_stat_statements shows it, the tables
--                  it may read); its own texts are analyzed as itself
--   pg_monitor     monitoring: what the workers measure
--   perfopt_reader the same, made by perfopt: a dashboard's login role
--                  needs only this role (docs/observability.md)
--   perfopt_admin  automation: rules, actions, cycles, the cache queue
--   perfopt_app    an application's login role: route()
-- Everything else (cache watches and warmers, instance registry, jobs,
-- retention) is for superusers only.

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA perfopt FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA perfopt FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA perfopt FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA perfopt FROM pg_monitor, perfopt_admin, perfopt_app, perfopt_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA perfopt FROM pg_monitor, perfopt_admin, perfopt_app, perfopt_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA perfopt FROM pg_monitor, perfopt_admin, perfopt_app, perfopt_reader;

GRANT USAGE ON SCHEMA perfopt TO PUBLIC;

------------------------------------------------------------------------------
-- PUBLIC: analysis of one's own statements, advice from the statements one
-- may see, health from the statistics anyone may read, pure computations.
-- Nothing internal: test/t/016_hostile_grants.pl calls each of these as a
-- fresh login role, and checks that none of docs/orchestrator.md's internal
-- functions is here.

GRANT EXECUTE ON FUNCTION
    perfopt.now(),
    perfopt.analyze_query(text),
    perfopt.slow_queries(),
    perfopt.statement_samples(),
    perfopt.recommend_indexes(float8, float8),
    perfopt.recommend_indexes_for(text[], float8[], float8, float8),
    perfopt.advise_query(text, float8),
    perfopt.advise_query(text, text[], float8),
    perfopt.last_advisor_run(),
    perfopt.index_drop_safe_set(regclass[], regclass[]),
    perfopt.index_drop_suspects(),
    perfopt.index_drop_suspect_indexes(),
    perfopt.table_health(boolean, regclass),
    perfopt.table_health(boolean, regclass, boolean),
    perfopt.relation_bytes(regclass),
    perfopt.relation_scans(oid),
    perfopt.pool_recommendation(float8),
    perfopt.pgbouncer_config(float8),
    perfopt.detect_anomalies(timestamptz[], float8[], float8),
    perfopt.forecast(timestamptz[], float8[], interval, interval),
    perfopt.cron_next(text, timestamptz),
    perfopt.simulate_requests(int, text, float8, bigint),
    perfopt.hpa_desired_replicas(int, float8, float8, float8, int, int)
   TO PUBLIC;

GRANT SELECT ON
    perfopt.statement_stats, perfopt.statement_texts, perfopt.statement_stats_info,
    perfopt.statement_samples, perfopt.slow_queries, perfopt.index_recommendations, perfopt.index_drop_candidates,
    perfopt.table_health, perfopt.cache_strategies, perfopt.cache_watches
   TO PUBLIC;

-- row-level security shows each role the actions on the tables it owns,
-- and what they measurably did
GRANT SELECT ON perfopt.action_log, perfopt.action_outcomes, perfopt.action_success_rates TO PUBLIC;

------------------------------------------------------------------------------
-- pg_monitor and perfopt_reader: what the workers measure.  Every query of
-- the dashboards in docs/grafana runs as a login role that is a member of
-- perfopt_reader only (test/t/016_hostile_grants.pl).

GRANT EXECUTE ON FUNCTION
    perfopt.query_latency(),
    perfopt.statement_samples_info(),
    perfopt.capacity_dashboard(),
    perfopt.capacity_recommendation(text, text, float8, float8, float8, timestamptz),
    perfopt.capacity_cost(text, text, float8, float8, float8, timestamptz, timestamptz, float8),
    perfopt.action_risk(text, float8, float8),
    perfopt.health(),
    perfopt.performance_score(),
    perfopt.optimization_plan(),
    perfopt.latest_report(),
    perfopt.prometheus_metrics(),
    perfopt.cache_redis_stats(),
    perfopt.cache_worker_state(),
    perfopt.cache_template_reads(int),
    perfopt.instance_status(),
    perfopt.metric_correlations(timestamptz, timestamptz, interval, int, float8, text[]),
    perfopt.anomaly_group_first_mover(bigint)
   TO pg_monitor, perfopt_admin, perfopt_reader;

GRANT SELECT ON
    perfopt.metrics, perfopt.metrics_latest, perfopt.live_metrics, perfopt.query_latency,
    perfopt.jobs, perfopt.job_runs,
    perfopt.anomalies, perfopt.anomaly_groups, perfopt.anomaly_progress,
    perfopt.capacity_history, perfopt.capacity_forecasts, perfopt.capacity_forecast_points,
    perfopt.capacity_alerts, perfopt.capacity_forecast, perfopt.bottlenecks,
    perfopt.action_log, perfopt.action_outcomes, perfopt.action_success_rates,
    perfopt.incidents, perfopt.optimization_reports,
    perfopt.cache_metrics, perfopt.cache_advice,
    perfopt.instance_registry, perfopt.instances, perfopt.scaling_advice
   TO pg_monitor, perfopt_admin, perfopt_reader;

------------------------------------------------------------------------------
-- perfopt_admin: rules (row-level security limits each member to the rules
-- it may act as), actions by hand, cycles.  Not the cache's queue nor its
-- warmers: their keys and queries are made of row values, as private as the
-- rows, so they are for superusers only.

GRANT SELECT, INSERT, UPDATE, DELETE ON perfopt.automation_rules TO perfopt_admin;
GRANT USAGE ON SEQUENCE perfopt.automation_rules_id_seq TO perfopt_admin;
-- optimize(), rollback_action() and run_optimization_cycle() take their
-- caller from GetUserId() and run their halves (optimize_as() ...) as the
-- extension's owner: those halves are granted to no one.  The rule trigger
-- runs as the rule's writer and calls may_own_rules(), check_action(),
-- table_option_value() and known_metrics(); threshold_state() calls
-- condition_holds().
GRANT EXECUTE ON FUNCTION
    perfopt.known_metrics(),
    perfopt.condition_holds(text, float8, float8),
    perfopt.run_optimization_cycle(timestamptz),
    perfopt.optimize(text, text, boolean, jsonb),
    perfopt.rollback_action(bigint),
    perfopt.check_action(jsonb, regrole),
    perfopt.may_own_rules(oid),
    perfopt.table_option_type(text),
    perfopt.table_option_value(text, jsonb),
    perfopt.threshold_state(perfopt.automation_rules, timestamptz),
    perfopt.qualified_name(regclass)
   TO perfopt_admin;

-- cache_hit_rates() runs MONITOR on Redis for its window, which costs Redis
-- much of its throughput: for those who may act, not for every reader
-- (and it keeps each template's last window for cache_advice)
GRANT EXECUTE ON FUNCTION perfopt.cache_hit_rates(float8) TO perfopt_admin;
GRANT SELECT, INSERT, UPDATE ON perfopt.cache_hit_samples TO perfopt_admin;

------------------------------------------------------------------------------
-- perfopt_app: what an application's login role needs

GRANT EXECUTE ON FUNCTION perfopt.route(text, text) TO perfopt_app;
