-- health: functions, views, triggers, policies and grants (table health and pool advice)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

CREATE OR REPLACE FUNCTION perfopt.table_health(exact boolean DEFAULT false, rel regclass DEFAULT NULL)
RETURNS TABLE (
    table_name regclass,
    health_score int,
    est_bloat_pct float8,
    dead_tuple_pct float8,
    seq_scan_pct float8,
    cache_hit_pct float8,
    hot_update_pct float8,
    xid_age_pct float8,
    last_vacuum timestamptz,
    last_analyze timestamptz,
    issues jsonb,
    recommendations jsonb,
    index_bloat_pct float8,
    vacuum_due float8,
    analyze_due float8,
    size_bytes bigint,
    measured boolean,
    bloat_error_pct float8)
AS 'MODULE_PATHNAME', 'perfopt_table_health'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.table_health(boolean, regclass) IS
'a 0-100 health score per table (or for rel) with its components, issues and fixes; exact reads sampled pages';

CREATE OR REPLACE FUNCTION perfopt.table_health(exact boolean, rel regclass, drops boolean)
RETURNS TABLE (
    table_name regclass,
    health_score int,
    est_bloat_pct float8,
    dead_tuple_pct float8,
    seq_scan_pct float8,
    cache_hit_pct float8,
    hot_update_pct float8,
    xid_age_pct float8,
    last_vacuum timestamptz,
    last_analyze timestamptz,
    issues jsonb,
    recommendations jsonb,
    index_bloat_pct float8,
    vacuum_due float8,
    analyze_due float8,
    size_bytes bigint,
    measured boolean,
    bloat_error_pct float8)
AS 'MODULE_PATHNAME', 'perfopt_table_health'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.table_health(boolean, regclass, boolean) IS
'table_health(exact, rel), with the recommendations to drop indexes only when drops: without them it does not evaluate perfopt.index_drop_candidates (health() and the cycle''s report read them once themselves)';

CREATE OR REPLACE VIEW perfopt.table_health AS
    SELECT * FROM perfopt.table_health(false);

COMMENT ON VIEW perfopt.table_health IS
'table_health(false): scores from statistics and catalogs only, no table read';

CREATE OR REPLACE FUNCTION perfopt.pool_recommendation(sample_seconds float8 DEFAULT 2)
RETURNS TABLE (
    setting text,
    current_value text,
    recommended text,
    reason text)
AS 'MODULE_PATHNAME', 'perfopt_pool_recommendation'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.pool_recommendation(float8) IS
'pool size and mode, max_connections and timeouts, from the backends sampled for sample_seconds';

-- pool_recommendation() as a pgbouncer.ini fragment: a [databases] line for
-- this database and the [pgbouncer] settings the advice gives, each after a
-- comment with its reason.  It ends inside its [pgbouncer] section, so that
-- where to listen and whom to let in are appended to it (PgBouncer 1.18
-- keeps only the last [pgbouncer] section it reads, included files too).  The server's socket directory is named only to
-- a role that may read it (pg_read_all_settings); otherwise the line names
-- no host and PgBouncer's default socket is used.
CREATE OR REPLACE FUNCTION perfopt.pgbouncer_config(sample_seconds float8 DEFAULT 2)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    advice jsonb;
    pool int;
    mode text;
    db text := pg_catalog.current_database();
    host text;
    max_clients int;
    idle_timeout text;
    out text;
BEGIN
    SELECT jsonb_object_agg(r.setting, jsonb_build_object('recommended', r.recommended, 'reason', r.reason))
      INTO advice FROM perfopt.pool_recommendation(sample_seconds) r;
    pool := (advice #>> '{pool_size,recommended}')::int;
    mode := advice #>> '{pool_mode,recommended}';
    IF pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE') THEN
        host := pg_catalog.btrim(pg_catalog.split_part(pg_catalog.current_setting('unix_socket_directories'), ',', 1));
    END IF;
    -- the clients that connect directly today may all connect to the pooler
    max_clients := greatest(100, pg_catalog.current_setting('max_connections')::int);
    idle_timeout := advice #>> '{idle_in_transaction_session_timeout,recommended}';

    out := pg_catalog.format(E';; pgbouncer.ini fragment: perfopt.pgbouncer_config(%s) for database %s\n'
                             ';; append your own settings (listen_addr, listen_port, auth_type, auth_file) at its end:\n'
                             ';; PgBouncer keeps only the last [pgbouncer] section it reads\n'
                             '[databases]\n'
                             '%s = %sport=%s dbname=%s\n\n'
                             '[pgbouncer]\n',
                             sample_seconds, db,
                             CASE WHEN db ~ '^[A-Za-z0-9_]+$' THEN db ELSE pg_catalog.format('"%s"', db) END,
                             CASE WHEN host <> '' THEN pg_catalog.format('host=%s ', host) ELSE '' END,
                             pg_catalog.current_setting('port'),
                             CASE WHEN db ~ '^[A-Za-z0-9_]+$' THEN db ELSE pg_catalog.format('''%s''', db) END);
    out := out || pg_catalog.format(E';; %s\n', advice #>> '{pool_mode,reason}');
    IF mode = 'session' THEN
        out := out || E';; in session mode a client keeps its server connection until it disconnects: clients past the pool wait (query_wait_timeout); use transaction mode if the application keeps no session state\n';
    END IF;
    out := out || pg_catalog.format(E'pool_mode = %s\n', mode);
    out := out || pg_catalog.format(E';; %s\n', advice #>> '{pool_size,reason}');
    out := out || pg_catalog.format(E'default_pool_size = %s\n', pool);
    out := out || E';; no server connections beyond the pool: more would queue for the cores\n';
    out := out || pg_catalog.format(E'max_db_connections = %s\nreserve_pool_size = 0\n', pool);
    out := out || pg_catalog.format(E';; every client that may connect directly today (max_connections) may connect to the pooler\n'
                                     'max_client_conn = %s\n', max_clients);
    IF idle_timeout IS NOT NULL THEN
        out := out || pg_catalog.format(E';; %s\nidle_transaction_timeout = %s\n',
                                         advice #>> '{idle_in_transaction_session_timeout,reason}',
                                         pg_catalog.rtrim(idle_timeout, 's'));
    END IF;
    RETURN out;
END
$$;

COMMENT ON FUNCTION perfopt.pgbouncer_config(float8) IS
'pool_recommendation() as a pgbouncer.ini fragment: the [databases] line of this database and the pool settings, each with its reason';
