-- Slice "advisor": SQL for the 0.10.0 install script and the 0.9.0 upgrade.
-- The advisor and slow_queries now plan each pg_stat_statements text as its
-- own role; last_advisor_run() gains the key skipped_as_role.

COMMENT ON FUNCTION perfopt.last_advisor_run() IS
'what the last index advisor run of this session did: statements, statements skipped because their role could not plan them (skipped_as_role), candidates, planner calls, cache hits, seconds';

COMMENT ON FUNCTION perfopt.recommend_indexes(float8, float8) IS
'the best indexes for the workload of pg_stat_statements that the caller may see, each statement planned as its own role, within budget_mb, proven with hypothetical indexes';

COMMENT ON VIEW perfopt.slow_queries IS
'statements of pg_stat_statements that the caller may see with a mean time at or over perfopt.slow_query_ms, each analyzed as the role that ran it';
