-- orchestrator: functions, views, triggers, policies and grants (the orchestrator: rules, actions, incidents, reports)
-- Run by CREATE EXTENSION and again by every update: each statement replaces what
-- it defines (CREATE OR REPLACE), so this file is the current definition.

CREATE OR REPLACE FUNCTION perfopt.cron_next(schedule text, after timestamptz)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'perfopt_cron_next'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION perfopt.cron_next(text, timestamptz) IS
'the first time after "after" at which a cron schedule (five fields, UTC) runs';

COMMENT ON TABLE perfopt.automation_rules IS
'automation rules: a trigger (threshold on a metric held for a duration, an open anomaly, or a cron schedule) and the actions it runs';

COMMENT ON TABLE perfopt.action_log IS
'every action of a rule or of optimize(): what fired it, the statement, dry run or not, and how it ended';

COMMENT ON TABLE perfopt.incidents IS
'what went wrong, one row per cause: opened when a rule fires or a capacity alert is raised, resolved when the cause has been clear for perfopt.incident_hold';

COMMENT ON TABLE perfopt.optimization_reports IS
'one report per optimization cycle: health, latency, slow queries and their change since the previous report, actions, savings, action items, open incidents';

------------------------------------------------------------------------------
-- Validation of rules

-- Whether a role may own automation rules and run perfopt actions: a
-- superuser, or a member of perfopt_admin; false for a dropped role
CREATE OR REPLACE FUNCTION perfopt.may_own_rules(role oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = role) THEN false
                WHEN (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = role) THEN true
                ELSE pg_catalog.pg_has_role(role, 'perfopt_admin', 'MEMBER') END
$$;

-- The relation a role's text names, with that role's own default search_path
CREATE OR REPLACE FUNCTION perfopt.resolve_relation(name text, role oid) RETURNS regclass
AS 'MODULE_PATHNAME', 'perfopt_resolve_relation'
LANGUAGE C STRICT STABLE;

-- The search_path a role's sessions start with in this database
CREATE OR REPLACE FUNCTION perfopt.role_search_path(role oid) RETURNS text
AS 'MODULE_PATHNAME', 'perfopt_role_search_path_sql'
LANGUAGE C STRICT STABLE;

-- The autovacuum storage parameters a set_table_option action may set, and the type of each
CREATE OR REPLACE FUNCTION perfopt.table_option_type(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT o.type
      FROM (VALUES ('autovacuum_enabled', 'boolean', true),
                   ('autovacuum_vacuum_threshold', 'integer', true),
                   ('autovacuum_vacuum_insert_threshold', 'integer', true),
                   ('autovacuum_analyze_threshold', 'integer', false),
                   ('autovacuum_vacuum_cost_limit', 'integer', true),
                   ('autovacuum_freeze_min_age', 'integer', true),
                   ('autovacuum_freeze_max_age', 'integer', true),
                   ('autovacuum_freeze_table_age', 'integer', true),
                   ('autovacuum_multixact_freeze_min_age', 'integer', true),
                   ('autovacuum_multixact_freeze_max_age', 'integer', true),
                   ('autovacuum_multixact_freeze_table_age', 'integer', true),
                   ('autovacuum_vacuum_cost_delay', 'real', true),
                   ('autovacuum_vacuum_scale_factor', 'real', true),
                   ('autovacuum_vacuum_insert_scale_factor', 'real', true),
                   ('autovacuum_analyze_scale_factor', 'real', false)) o (option, type, toast)
     WHERE o.option OPERATOR(pg_catalog.=) name
        OR (o.toast AND 'toast.' OPERATOR(pg_catalog.||) o.option OPERATOR(pg_catalog.=) name)
$$;

-- The value of a storage parameter as the text of a literal: a number or a
-- boolean, refused otherwise (never pasted into a statement unchecked)
CREATE OR REPLACE FUNCTION perfopt.table_option_value(name text, value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    type text := perfopt.table_option_type(name);
    v text := value #>> '{}';
BEGIN
    IF type IS NULL THEN
        RAISE EXCEPTION 'set_table_option sets autovacuum storage parameters only, not "%"', name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a per-table autovacuum_* or toast.autovacuum_* storage parameter.';
    END IF;
    IF jsonb_typeof(value) NOT IN ('number', 'string', 'boolean')
       OR (type = 'boolean' AND lower(v) NOT IN ('true', 'false', 'on', 'off'))
       OR (type = 'integer' AND v !~ '^-?[0-9]{1,19}$')
       OR (type = 'real' AND v !~ '^-?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][-+]?[0-9]{1,3})?$') THEN
        RAISE EXCEPTION 'the value of % must be a %, not %', name, type, left(value::text, 100)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Such as {"autovacuum_vacuum_scale_factor": 0.01} or {"autovacuum_enabled": true}.';
    END IF;
    RETURN CASE WHEN type = 'boolean' THEN lower(v) ELSE v END;
END
$$;

COMMENT ON FUNCTION perfopt.may_own_rules(oid) IS
'whether a role may own automation rules and run perfopt actions: a superuser or a member of perfopt_admin';

COMMENT ON FUNCTION perfopt.table_option_value(text, jsonb) IS
'the checked value of a set_table_option storage parameter: a number or a boolean';

-- The metrics a rule may watch: what the sampler records, and any metric recorded so far
CREATE OR REPLACE FUNCTION perfopt.known_metrics() RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.unnest(ARRAY[
        'transactions_per_sec', 'commits_per_sec', 'rollbacks_per_sec', 'error_rate_pct',
        'rows_returned_per_sec', 'rows_fetched_per_sec', 'rows_inserted_per_sec',
        'rows_updated_per_sec', 'rows_deleted_per_sec', 'cache_hit_ratio', 'temp_bytes_per_sec',
        'deadlocks_per_sec', 'database_size_bytes', 'connections', 'max_connections',
        'waiting_sessions', 'oldest_xact_age_sec', 'oldest_xmin_age_xids', 'frozenxid_age_xids',
        'replication_lag_bytes', 'replication_lag_sec', 'replication_slot_retained_bytes',
        'wal_bytes_per_sec', 'checkpoints_timed_per_sec', 'checkpoints_requested_per_sec',
        'disk_free_bytes', 'disk_total_bytes', 'disk_used_pct', 'table_size_bytes', 'dead_tuples',
        'latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms', 'statements_per_sec',
        'cpu_usage_pct', 'memory_used_pct'])
    UNION
    SELECT DISTINCT metric FROM perfopt.metrics_latest
$$;

COMMENT ON FUNCTION perfopt.known_metrics() IS
'the metrics a threshold or anomaly rule may name: those the sampler records and any recorded so far';

CREATE OR REPLACE FUNCTION perfopt.condition_holds(condition text, value float8, threshold float8)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE condition
               WHEN 'greater_than' THEN value > threshold
               WHEN 'greater_or_equal' THEN value >= threshold
               WHEN 'less_than' THEN value < threshold
               WHEN 'less_or_equal' THEN value <= threshold
               WHEN 'equal' THEN value = threshold
               WHEN 'not_equal' THEN value <> threshold
           END
$$;

-- What a rule may ask for, and what each action needs
CREATE OR REPLACE FUNCTION perfopt.check_action(action jsonb, owner regrole) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind text := action->>'type';
    key text;
BEGIN
    IF jsonb_typeof(action) IS DISTINCT FROM 'object' OR kind IS NULL THEN
        RAISE EXCEPTION 'each action must be an object with a "type"'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write actions as [{"type": "vacuum_analyze", "target": "public.leads"}].';
    END IF;
    IF kind NOT IN ('vacuum_analyze', 'analyze', 'reindex', 'create_index', 'drop_index',
                    'cancel_query', 'terminate_backend', 'cache_invalidate', 'cache_warm',
                    'notify', 'set_table_option', 'sql') THEN
        RAISE EXCEPTION 'unknown action type "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use vacuum_analyze, analyze, reindex, create_index, drop_index, cancel_query, '
                         'terminate_backend, cache_invalidate, cache_warm, notify, set_table_option or sql.';
    END IF;
    IF kind IN ('vacuum_analyze', 'analyze', 'reindex', 'set_table_option')
       AND coalesce(action->>'target', '') = '' THEN
        RAISE EXCEPTION 'action % needs a "target" table', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Name the table, such as "public.leads", or "{entity}" for the entity that fired the rule.';
    END IF;
    IF kind = 'set_table_option' THEN
        IF jsonb_typeof(action->'options') IS DISTINCT FROM 'object' OR action->'options' = '{}' THEN
            RAISE EXCEPTION 'action set_table_option needs "options"'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Such as {"options": {"autovacuum_vacuum_scale_factor": 0.01}}.';
        END IF;
        -- names from the list of autovacuum storage parameters, values numbers or booleans
        FOR key IN SELECT jsonb_object_keys(action->'options') LOOP
            PERFORM perfopt.table_option_value(key, action->'options'->key);
        END LOOP;
    END IF;
    IF kind = 'sql' THEN
        IF coalesce(action->>'statement', '') = '' THEN
            RAISE EXCEPTION 'action sql needs a "statement"'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Such as {"type": "sql", "statement": "CHECKPOINT"}.';
        END IF;
        IF NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = owner::oid), false) THEN
            RAISE EXCEPTION 'only rules owned by a superuser may run sql actions'
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Use one of the other action types, or have a superuser own the rule.';
        END IF;
    END IF;
    IF kind = 'notify' AND coalesce(action->>'event', '') = '' THEN
        RAISE EXCEPTION 'action notify needs an "event"'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Such as {"type": "notify", "event": "scale_up", "target": "load_balancer", "instances": 1}.';
    END IF;
    IF kind IN ('cancel_query', 'terminate_backend') AND action ? 'min_duration' THEN
        PERFORM (action->>'min_duration')::interval;
    END IF;
END
$$;

-- BEFORE INSERT OR UPDATE on automation_rules: a rule that cannot run is refused.
-- A metric recorded by record_metrics is known once recorded; a restore loads
-- the rules before that (pg_dump's scripts turn check_function_bodies off for
-- such forward references), so the metric's name is checked only otherwise.
CREATE OR REPLACE FUNCTION perfopt.validate_rule() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    action jsonb;
    bookkeeping text[] := '{enabled,failures,last_fired_at,last_evaluated_at}';
BEGIN
    -- a rule may always be disabled (its failure budget does it), and its
    -- bookkeeping kept, by whoever may change it; any other change is checked
    IF TG_OP = 'UPDATE' AND (OLD.enabled OR NOT NEW.enabled)
       AND pg_catalog.to_jsonb(NEW) - bookkeeping = pg_catalog.to_jsonb(OLD) - bookkeeping THEN
        RETURN NEW;
    END IF;
    IF NOT perfopt.may_own_rules(NEW.owner::oid) THEN
        RAISE EXCEPTION 'role % may not own automation rules', NEW.owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Grant it perfopt_admin: GRANT perfopt_admin TO ...;';
    END IF;
    IF NOT pg_catalog.pg_has_role(CURRENT_USER, NEW.owner::oid, 'USAGE') THEN
        RAISE EXCEPTION 'role % may not make rules that run as %', CURRENT_USER, NEW.owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Leave owner out: a rule runs as the role that writes it.';
    END IF;
    IF NEW.trigger_type NOT IN ('threshold', 'anomaly', 'schedule') THEN
        RAISE EXCEPTION 'unknown trigger_type "%"', NEW.trigger_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use threshold, anomaly or schedule.';
    END IF;
    IF NEW.trigger_type = 'threshold' AND (NEW.metric IS NULL OR NEW.threshold IS NULL) THEN
        RAISE EXCEPTION 'a threshold rule needs a metric, a condition and a threshold'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Such as metric ''cpu_usage_pct'', condition ''greater_than'', threshold 85.';
    END IF;
    IF NEW.trigger_type = 'threshold'
       AND NEW.condition IS DISTINCT FROM 'greater_than' AND NEW.condition IS DISTINCT FROM 'less_than'
       AND NEW.condition IS DISTINCT FROM 'greater_or_equal' AND NEW.condition IS DISTINCT FROM 'less_or_equal'
       AND NEW.condition IS DISTINCT FROM 'equal' AND NEW.condition IS DISTINCT FROM 'not_equal' THEN
        RAISE EXCEPTION 'unknown condition "%"', NEW.condition
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use greater_than, greater_or_equal, less_than, less_or_equal, equal or not_equal.';
    END IF;
    IF NEW.metric IS NOT NULL AND pg_catalog.current_setting('check_function_bodies')::boolean
       AND NOT EXISTS (SELECT FROM perfopt.known_metrics() m WHERE m = NEW.metric) THEN
        RAISE EXCEPTION 'unknown metric "%"', NEW.metric
            USING ERRCODE = 'undefined_object',
                  HINT = 'Name a metric of perfopt.metrics; SELECT * FROM perfopt.known_metrics() lists them.';
    END IF;
    IF NEW.trigger_type = 'schedule' THEN
        IF NEW.schedule IS NULL THEN
            RAISE EXCEPTION 'a schedule rule needs a schedule'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A cron schedule in UTC, such as ''0 3 * * *''.';
        END IF;
        PERFORM perfopt.cron_next(NEW.schedule, pg_catalog.now());
    END IF;
    IF NEW.duration < interval '0' OR NEW.cooldown < interval '0' THEN
        RAISE EXCEPTION 'duration and cooldown must not be negative'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use an interval such as ''5 minutes''.';
    END IF;
    IF NEW.severity NOT IN ('warning', 'critical') THEN
        RAISE EXCEPTION 'unknown severity "%"', NEW.severity
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use warning or critical.';
    END IF;
    IF NOT NEW.min_confidence BETWEEN 0 AND 1 OR NEW.max_failures < 1 THEN
        RAISE EXCEPTION 'min_confidence must be within 0 and 1, and max_failures at least 1'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The defaults are 0.5 and 3.';
    END IF;
    IF jsonb_typeof(NEW.actions) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'actions must be a JSON array'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Such as ''[{"type": "analyze", "target": "public.leads"}]''.';
    END IF;
    FOR action IN SELECT jsonb_array_elements(NEW.actions) LOOP
        PERFORM perfopt.check_action(action, NEW.owner);
    END LOOP;
    -- a changed rule starts its failure budget afresh
    IF TG_OP = 'UPDATE' AND NEW.enabled AND NOT OLD.enabled THEN
        NEW.failures := 0;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER validate_rule
    BEFORE INSERT OR UPDATE OF name, trigger_type, metric, entity, condition, threshold, duration,
                               schedule, actions, enabled, cooldown, dry_run, severity,
                               min_confidence, max_failures, owner
    ON perfopt.automation_rules
    FOR EACH ROW EXECUTE FUNCTION perfopt.validate_rule();

------------------------------------------------------------------------------
-- From an action to a statement

-- A relation's name with its schema, quoted: statements run with another search_path
CREATE OR REPLACE FUNCTION perfopt.qualified_name(rel regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = rel
$$;

-- The statement an action runs, how sure perfopt is of it, and how to undo it
CREATE OR REPLACE FUNCTION perfopt.action_statement(
    action jsonb, target text, owner regrole, action_id bigint,
    OUT statement text, OUT confidence float8, OUT rollback_statement text,
    OUT details jsonb, OUT target_owner oid)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind text := action->>'type';
    rel regclass;
    name text;
    rec record;
    options text;
    min_duration interval;
BEGIN
    confidence := 1;
    details := '{}';
    IF kind IN ('vacuum_analyze', 'analyze', 'reindex', 'set_table_option')
       OR (kind IN ('create_index', 'drop_index') AND coalesce(target, 'auto') <> 'auto') THEN
        -- the owner's text, read with the owner's own search_path
        rel := perfopt.resolve_relation(target, owner::oid);
        IF rel IS NULL THEN
            RAISE EXCEPTION 'no relation named "%"', target
                USING ERRCODE = 'undefined_table',
                      HINT = 'Check the action''s target.';
        END IF;
        SELECT relowner INTO target_owner FROM pg_catalog.pg_class WHERE oid = rel;
        name := perfopt.qualified_name(rel);
    END IF;

    CASE kind
    WHEN 'vacuum_analyze' THEN
        statement := format('VACUUM (ANALYZE) %s', name);
    WHEN 'analyze' THEN
        statement := format('ANALYZE %s', name);
    WHEN 'reindex' THEN
        statement := format('REINDEX %s CONCURRENTLY %s',
                            CASE WHEN (SELECT relkind FROM pg_catalog.pg_class WHERE oid = rel) IN ('i', 'I')
                                 THEN 'INDEX' ELSE 'TABLE' END, name);
    WHEN 'create_index' THEN
        -- the advisor's best index (for the target table if one is named); the
        -- workload's texts are read with the owner's path, not perfopt's own
        PERFORM pg_catalog.set_config('search_path', perfopt.role_search_path(owner::oid), true);
        SELECT r.* INTO rec
          FROM perfopt.recommend_indexes() r
         WHERE rel IS NULL OR r.table_name = rel
         ORDER BY r.rank LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the index advisor recommends no index%',
                            CASE WHEN rel IS NULL THEN '' ELSE ' on ' || rel END
                USING ERRCODE = 'no_data_found',
                      HINT = 'Nothing to do: the workload has no index worth creating.';
        END IF;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        details := jsonb_build_object(
            'index_name', left(format('perfopt_%s_%s', (SELECT relname FROM pg_catalog.pg_class WHERE oid = rec.table_name),
                                      action_id), 63),
            'benefit_pct', rec.benefit_pct, 'est_size_bytes', rec.est_size_bytes,
            'queryids', to_jsonb(rec.queryids), 'reason', rec.reason);
        details := details || jsonb_build_object('index', format('%I.%I',
            (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = rec.table_name), details->>'index_name'));
        IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = rec.table_name) = 'p' THEN
            -- ON ONLY the parent, each partition concurrently, each attached;
            -- the parent's index goes, with its partitions', only without
            -- CONCURRENTLY
            statement := perfopt.index_build_statements(rec.table_name, rec.index_def, details->>'index_name');
            rollback_statement := format('DROP INDEX IF EXISTS %s', details->>'index');
        ELSE
            statement := regexp_replace(rec.index_def, '^CREATE INDEX CONCURRENTLY ',
                                        format('CREATE INDEX CONCURRENTLY %I ', details->>'index_name'));
            rollback_statement := format('DROP INDEX CONCURRENTLY IF EXISTS %s', details->>'index');
        END IF;
        SELECT relowner INTO target_owner FROM pg_catalog.pg_class WHERE oid = rec.table_name;
        -- a tenth of the workload's planned cost saved is full confidence
        confidence := least(1, greatest(0, rec.benefit_pct / 10));
    WHEN 'drop_index' THEN
        SELECT d.* INTO rec
          FROM perfopt.index_drop_candidates d
         WHERE rel IS NULL OR d.index_name = rel
         ORDER BY CASE d.reason_code WHEN 'invalid' THEN 1 WHEN 'duplicate' THEN 2
                                     WHEN 'redundant' THEN 3 ELSE 4 END, d.size_bytes DESC
         LIMIT 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no index to drop%', CASE WHEN rel IS NULL THEN '' ELSE ': ' || rel || ' is not a drop candidate' END
                USING ERRCODE = 'no_data_found',
                      HINT = 'perfopt.index_drop_candidates lists the indexes perfopt would drop.';
        END IF;
        statement := rtrim(rec.drop_def, ';');
        rollback_statement := CASE WHEN (SELECT relkind FROM pg_catalog.pg_class WHERE oid = rec.index_name) = 'I'
                                   THEN perfopt.index_build_statements(rec.table_name, pg_get_indexdef(rec.index_name),
                                            (SELECT relname FROM pg_catalog.pg_class WHERE oid = rec.index_name))
                                   ELSE pg_get_indexdef(rec.index_name) END;
        details := jsonb_build_object('index_name', rec.index_name::text, 'reason', rec.reason,
                                      'size_bytes', rec.size_bytes);
        SELECT c.relowner INTO target_owner FROM pg_catalog.pg_class c WHERE c.oid = rec.table_name;
        confidence := CASE rec.reason_code WHEN 'invalid' THEN 1 WHEN 'duplicate' THEN 0.95
                                           WHEN 'redundant' THEN 0.8 ELSE 0.6 END;
    WHEN 'cancel_query', 'terminate_backend' THEN
        min_duration := coalesce((action->>'min_duration')::interval,
                                 CASE kind WHEN 'cancel_query' THEN interval '5 minutes'
                                           ELSE interval '10 minutes' END);
        statement := format('SELECT pg_catalog.%s(pid) FROM pg_catalog.pg_stat_activity'
                            ' WHERE backend_type = ''client backend'' AND pid <> pg_catalog.pg_backend_pid()'
                            ' AND state = %L AND pg_catalog.now() - %s > %L::interval',
                            CASE kind WHEN 'cancel_query' THEN 'pg_cancel_backend'
                                      ELSE 'pg_terminate_backend' END,
                            coalesce(action->>'state', CASE kind WHEN 'cancel_query' THEN 'active'
                                                                 ELSE 'idle in transaction' END),
                            CASE kind WHEN 'cancel_query' THEN 'query_start' ELSE 'state_change' END,
                            min_duration);
    WHEN 'cache_invalidate' THEN
        IF pg_catalog.to_regprocedure('perfopt.cache_invalidate(text)') IS NULL THEN
            RAISE EXCEPTION 'the cache layer is not installed'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Update the extension: ALTER EXTENSION perfopt UPDATE.';
        END IF;
        statement := format('SELECT perfopt.cache_invalidate(%L)', coalesce(action->>'pattern', target));
    WHEN 'cache_warm' THEN
        IF pg_catalog.to_regprocedure('perfopt.cache_warm(text, text, text, boolean)') IS NULL THEN
            RAISE EXCEPTION 'the cache layer is not installed'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Update the extension: ALTER EXTENSION perfopt UPDATE.';
        END IF;
        statement := format('SELECT perfopt.cache_warm(%L, %L, %L, %L)', action->>'strategy',
                            action->>'key_template', action->>'query',
                            coalesce((action->>'keep_warm')::boolean, false));
    WHEN 'notify' THEN
        details := action - 'type';
        statement := format('SELECT pg_catalog.pg_notify(''perfopt_actions'', %L)',
                            jsonb_build_object('event', action->>'event', 'target', target,
                                               'params', action - 'type' - 'event' - 'target'));
    WHEN 'set_table_option' THEN
        -- names from a list, values checked numbers or booleans, quoted as literals
        SELECT string_agg(format('%s = %L', o.key, perfopt.table_option_value(o.key, o.value)), ', '
                          ORDER BY o.key)
          INTO options FROM jsonb_each(action->'options') o;
        statement := format('ALTER TABLE %s SET (%s)', name, options);
        -- the undo: the previous values set back, the options that had none reset
        WITH keys AS (SELECT k FROM jsonb_object_keys(action->'options') k),
        previous AS (
            SELECT split_part(x, '=', 1) AS key, substr(x, strpos(x, '=') + 1) AS value
              FROM pg_catalog.pg_class c, unnest(coalesce(c.reloptions, '{}')) x WHERE c.oid = rel
            UNION ALL
            SELECT 'toast.' || split_part(x, '=', 1), substr(x, strpos(x, '=') + 1)
              FROM pg_catalog.pg_class c JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid,
                   unnest(coalesce(t.reloptions, '{}')) x WHERE c.oid = rel)
        SELECT concat_ws(', ',
                   'SET (' || string_agg(format('%s = %L', k.k, p.value), ', ' ORDER BY k.k)
                              FILTER (WHERE p.key IS NOT NULL) || ')',
                   'RESET (' || string_agg(k.k, ', ' ORDER BY k.k) FILTER (WHERE p.key IS NULL) || ')')
          INTO options
          FROM keys k LEFT JOIN previous p ON p.key = k.k;
        rollback_statement := format('ALTER TABLE %s %s', name, options);
    WHEN 'sql' THEN
        statement := action->>'statement';
    END CASE;
END
$$;

COMMENT ON FUNCTION perfopt.action_statement(jsonb, text, regrole, bigint) IS
'the statement an action runs, its confidence (0-1), the statement that undoes it where one exists, and details';

-- Log one action: proposed, dry run, skipped or queued for the launcher
CREATE OR REPLACE FUNCTION perfopt.log_action(
    rule perfopt.automation_rules, action jsonb, target text, trigger_values jsonb,
    trigger_confidence float8, dry_run boolean, owner regrole, cycle_id bigint,
    room boolean)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint := pg_catalog.nextval('perfopt.action_log_id_seq');
    made record;
    outcome text;
    confidence float8;
BEGIN
    BEGIN
        made := perfopt.action_statement(action, target, owner, id);
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO perfopt.action_log (id, cycle_id, rule_id, rule_name, trigger_values, action,
                                        target, dry_run, outcome, error, owner, finished_at)
        VALUES (id, cycle_id, (rule).id, (rule).name, trigger_values, action->>'type', target,
                dry_run, 'failed', SQLSTATE || ': ' || SQLERRM, owner, now());
        RETURN id;
    END;
    confidence := trigger_confidence * made.confidence;
    outcome := CASE WHEN confidence < coalesce((rule).min_confidence, 0) THEN 'proposed'
                    WHEN dry_run THEN 'dry_run'
                    WHEN NOT room THEN 'skipped'
                    ELSE 'queued' END;
    INSERT INTO perfopt.action_log (id, cycle_id, rule_id, rule_name, trigger_values, action, target,
                                    statement, rollback_statement, dry_run, confidence, outcome,
                                    error, details, owner, target_owner)
    VALUES (id, cycle_id, (rule).id, (rule).name, trigger_values, action->>'type', target,
            made.statement, made.rollback_statement, dry_run, confidence, outcome,
            CASE outcome WHEN 'skipped' THEN 'perfopt.max_actions_per_cycle reached' END,
            made.details, owner, made.target_owner);
    RETURN id;
END
$$;

-- Called by the launcher when a queued action ended; keeps the failure budget
CREATE OR REPLACE FUNCTION perfopt.record_action_outcome(action_id bigint, succeeded boolean, error text)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    logged perfopt.action_log;
BEGIN
    UPDATE perfopt.action_log a
       SET outcome = CASE WHEN succeeded THEN 'succeeded' ELSE 'failed' END,
           error = record_action_outcome.error,
           started_at = coalesce(a.started_at, clock_timestamp()),
           finished_at = clock_timestamp(),
           check_after = CASE WHEN succeeded AND a.action = 'create_index'
                              THEN clock_timestamp() + pg_catalog.current_setting('perfopt.index_rollback_window')::interval
                         END
     WHERE a.id = action_id
    RETURNING * INTO logged;
    IF logged.rollback_of IS NOT NULL AND succeeded THEN
        UPDATE perfopt.action_log SET rolled_back_by = logged.id WHERE id = logged.rollback_of;
    END IF;
    IF logged.rule_id IS NULL THEN
        RETURN;
    END IF;
    IF succeeded THEN
        UPDATE perfopt.automation_rules SET failures = 0 WHERE id = logged.rule_id;
    ELSE
        UPDATE perfopt.automation_rules
           SET failures = failures + 1,
               enabled = enabled AND failures + 1 < max_failures
         WHERE id = logged.rule_id;
    END IF;
END
$$;

COMMENT ON FUNCTION perfopt.record_action_outcome(bigint, boolean, text) IS
'records how a queued action ended; a rule whose actions failed max_failures times in a row is disabled';

------------------------------------------------------------------------------
-- Health

CREATE OR REPLACE FUNCTION perfopt.health()
RETURNS TABLE (component text, score int, status text, details jsonb)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parts jsonb := '{}';
    v record;
    overall float8;
    slow_ms float8 := 1000 * extract(epoch FROM pg_catalog.current_setting('perfopt.slow_query_ms')::interval);
BEGIN
    -- queries: the share of execution time spent in slow statements
    SELECT coalesce(sum(total_exec_time) FILTER (WHERE mean_exec_time >= slow_ms), 0) AS slow_time,
           coalesce(sum(total_exec_time), 0) AS all_time,
           count(*) FILTER (WHERE mean_exec_time >= slow_ms) AS slow
      INTO v
      FROM perfopt.statement_stats s
      JOIN pg_catalog.pg_database d ON d.oid = s.dbid AND d.datname = pg_catalog.current_database()
     WHERE s.toplevel;
    parts := parts || jsonb_build_object('queries', jsonb_build_object(
        'score', coalesce(round(100 * (1 - v.slow_time / nullif(v.all_time, 0))), 100)::int,
        'slow_queries', v.slow, 'slow_time_pct', round((100 * v.slow_time / nullif(v.all_time, 0))::numeric, 1)));

    -- indexes: bytes of indexes perfopt would drop, invalid indexes
    SELECT coalesce(sum(perfopt.relation_bytes(i.indexrelid)), 0) AS total,
           (SELECT coalesce(sum(size_bytes), 0) FROM perfopt.index_drop_candidates) AS wasted,
           count(*) FILTER (WHERE NOT i.indisvalid) AS invalid
      INTO v
      FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
     WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                                  'pg_toast'::regnamespace, 'perfopt'::regnamespace);
    parts := parts || jsonb_build_object('indexes', jsonb_build_object(
        'score', greatest(0, round(100 * (1 - v.wasted::float8 / greatest(v.total, 1)) - 20 * v.invalid))::int,
        'wasted_bytes', v.wasted, 'index_bytes', v.total, 'invalid', v.invalid));

    -- tables: table_health scores weighted by size
    SELECT round(sum(health_score * greatest(size_bytes, 8192)) / nullif(sum(greatest(size_bytes, 8192)), 0)) AS s,
           count(*) FILTER (WHERE health_score < 70) AS unhealthy, count(*) AS n
      INTO v FROM perfopt.table_health;
    parts := parts || jsonb_build_object('tables', jsonb_build_object(
        'score', coalesce(v.s, 100)::int, 'tables', v.n, 'below_70', v.unhealthy));

    -- connections: use of the usable slots, sessions idle in a transaction
    SELECT count(*) AS used,
           count(*) FILTER (WHERE state LIKE 'idle in transaction%' AND now() - state_change > interval '1 minute') AS stuck,
           pg_catalog.current_setting('max_connections')::int - pg_catalog.current_setting('superuser_reserved_connections')::int AS usable
      INTO v FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend';
    parts := parts || jsonb_build_object('connections', jsonb_build_object(
        'score', greatest(0, least(100, CASE WHEN v.used::float8 / v.usable <= 0.7 THEN 100
                                             ELSE 100 * (1 - (v.used::float8 / v.usable - 0.7) / 0.3) END)
                             - 10 * v.stuck)::int,
        'used', v.used, 'usable', v.usable, 'idle_in_transaction', v.stuck));

    -- cache: shared buffer hits of this database
    SELECT 100.0 * blks_hit / nullif(blks_hit + blks_read, 0) AS hit INTO v
      FROM pg_catalog.pg_stat_database WHERE datname = pg_catalog.current_database();
    parts := parts || jsonb_build_object('cache', jsonb_build_object(
        'score', greatest(0, least(100, round(100 - 10 * greatest(0, 99 - coalesce(v.hit, 100)))))::int,
        'hit_pct', round(v.hit::numeric, 2)));

    -- capacity: days until the first resource runs out, of 90
    SELECT min(extract(epoch FROM exhaustion_at - forecast_at) / 86400) AS days,
           (array_agg(resource || CASE WHEN entity <> '' THEN ' ' || entity ELSE '' END
                      ORDER BY exhaustion_at) FILTER (WHERE exhaustion_at IS NOT NULL))[1] AS first
      INTO v FROM perfopt.capacity_forecasts;
    parts := parts || jsonb_build_object('capacity', jsonb_build_object(
        'score', CASE WHEN v.days IS NULL THEN 100
                      ELSE greatest(0, least(100, round(100 * v.days / 90))) END::int,
        'days_left', round(v.days::numeric, 1), 'first_to_run_out', v.first));

    -- anomalies: open ones
    SELECT count(*) FILTER (WHERE severity = 'critical') AS critical,
           count(*) FILTER (WHERE severity = 'warning') AS warning
      INTO v FROM perfopt.anomalies WHERE resolved_at IS NULL;
    parts := parts || jsonb_build_object('anomalies', jsonb_build_object(
        'score', greatest(0, 100 - 25 * v.critical - 10 * v.warning)::int,
        'open_critical', v.critical, 'open_warning', v.warning));

    overall := (20 * (parts->'queries'->>'score')::float8 + 10 * (parts->'indexes'->>'score')::float8
                + 15 * (parts->'tables'->>'score')::float8 + 15 * (parts->'connections'->>'score')::float8
                + 15 * (parts->'cache'->>'score')::float8 + 15 * (parts->'capacity'->>'score')::float8
                + 10 * (parts->'anomalies'->>'score')::float8) / 100;

    FOR component, details IN SELECT key, value FROM jsonb_each(parts) LOOP
        score := coalesce((details->>'score')::int, 100);
        details := details - 'score';
        status := CASE WHEN score >= 80 THEN 'healthy' WHEN score >= 50 THEN 'degraded' ELSE 'critical' END;
        RETURN NEXT;
    END LOOP;
    component := 'overall';
    score := round(overall)::int;
    status := CASE WHEN score >= 80 THEN 'healthy' WHEN score >= 50 THEN 'degraded' ELSE 'critical' END;
    details := jsonb_build_object('weights', jsonb_build_object(
        'queries', 20, 'indexes', 10, 'tables', 15, 'connections', 15, 'cache', 15,
        'capacity', 15, 'anomalies', 10));
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION perfopt.health() IS
'health 0-100 per component (queries, indexes, tables, connections, cache, capacity, anomalies) and overall; docs/orchestrator.md gives the formulas';

CREATE OR REPLACE FUNCTION perfopt.performance_score() RETURNS int
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT score FROM perfopt.health() WHERE component = 'overall'
$$;

COMMENT ON FUNCTION perfopt.performance_score() IS 'the overall health score, 0-100';

------------------------------------------------------------------------------
-- What to do next

CREATE OR REPLACE FUNCTION perfopt.optimization_plan()
RETURNS TABLE (priority int, category text, action text, target text, statement text, reason text)
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM (
        SELECT 1, 'capacity', c.action, c.resource || CASE WHEN c.entity <> '' THEN ' ' || c.entity ELSE '' END,
               NULL::text, c.recommendation
          FROM perfopt.capacity_forecasts c
         WHERE c.exhaustion_at IS NOT NULL
        UNION ALL
        SELECT 2, 'index', 'create_index', r.table_name::text, r.index_def,
               pg_catalog.format('%s%% less planned cost for the workload: %s', round(r.benefit_pct::numeric, 1), r.reason)
          FROM perfopt.recommend_indexes() r
        UNION ALL
        SELECT 3, 'index', 'drop_index', d.index_name::text, d.drop_def, d.reason
          FROM perfopt.index_drop_candidates d
        UNION ALL
        SELECT 4, 'table', f->>'action', h.table_name::text, f->>'statement', f->>'reason'
          FROM perfopt.table_health h, jsonb_array_elements(h.recommendations) f
         WHERE h.health_score < 80
    ) plan (priority, category, action, target, statement, reason)
    ORDER BY priority, target
$$;

COMMENT ON FUNCTION perfopt.optimization_plan() IS
'what perfopt would do now, most urgent first: capacity, indexes to create and drop, table fixes';

------------------------------------------------------------------------------
-- The cycle

-- Threshold rules: per entity, whether the condition holds now and for how long
CREATE OR REPLACE FUNCTION perfopt.threshold_state(rule perfopt.automation_rules, at timestamptz)
RETURNS TABLE (entity text, holds boolean, held_since timestamptz, value float8, samples bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH s AS (
        SELECT m.entity, m.ts, m.value,
               perfopt.condition_holds((rule).condition, m.value, (rule).threshold) AS ok
          FROM perfopt.metrics m
         WHERE m.metric = (rule).metric
           AND ((rule).entity IS NULL OR m.entity = (rule).entity)
           AND m.ts > at - (rule).duration
                        - 3 * pg_catalog.current_setting('perfopt.sample_interval')::interval
           AND m.ts <= at),
    per AS (
        SELECT s.entity,
               (array_agg(s.ok ORDER BY s.ts DESC))[1] AS holds,
               (array_agg(s.value ORDER BY s.ts DESC))[1] AS value,
               max(s.ts) FILTER (WHERE NOT s.ok) AS last_false,
               min(s.ts) AS first_ts,
               max(s.ts) AS last_ts
          FROM s GROUP BY s.entity)
    SELECT per.entity, per.holds AND per.last_ts > at - 3 * pg_catalog.current_setting('perfopt.sample_interval')::interval
                                 - interval '1 minute',
           coalesce((SELECT min(s.ts) FROM s WHERE s.entity = per.entity AND s.ts > per.last_false),
                    per.first_ts),
           per.value,
           (SELECT count(*) FROM s WHERE s.entity = per.entity AND s.ok
              AND s.ts > coalesce(per.last_false, '-infinity'))
      FROM per
$$;

-- The cycle, for caller (the C function run_optimization_cycle() passes
-- GetUserId()); it runs as the extension's owner.  Only a superuser may run
-- a cycle at another time than now: a time to come would fire schedules and
-- skip cooldowns, a past one would fire schedules again.
CREATE OR REPLACE FUNCTION perfopt.optimization_cycle(caller regrole, at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cycle_id bigint;
    max_actions int := pg_catalog.current_setting('perfopt.max_actions_per_cycle')::int;
    hold interval := pg_catalog.current_setting('perfopt.incident_hold')::interval;
    queued int := 0;
    rule perfopt.automation_rules;
    fired record;
    act jsonb;
    act_target text;
    incident_id bigint;
    series_key text;
    active_series text[] := '{}';
    active_groups bigint[] := '{}';
    previous perfopt.optimization_reports;
    report jsonb;
    health jsonb;
    v record;
    logged bigint;
    ms_per_hour float8;
    items jsonb;
    largest jsonb;
    drops jsonb;
BEGIN
    PERFORM perfopt.check_admin(caller);
    IF at IS NULL THEN
        RAISE EXCEPTION 'a cycle needs a time'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'Call perfopt.run_optimization_cycle() without one.';
    END IF;
    IF NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = caller::oid), false)
       AND NOT at BETWEEN pg_catalog.transaction_timestamp() - interval '1 second'
                      AND pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'only a superuser may run an optimization cycle at another time than now'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Call perfopt.run_optimization_cycle() without a time.';
    END IF;
    cycle_id := pg_catalog.nextval('perfopt.optimization_reports_id_seq');

    -- 1. rules
    FOR rule IN SELECT * FROM perfopt.automation_rules r
                 WHERE r.enabled AND perfopt.may_own_rules(r.owner::oid)
                 ORDER BY r.id LOOP
        FOR fired IN
            -- threshold: the condition holds now, for at least the duration
            SELECT t.entity, t.holds AND at - t.held_since >= (rule).duration AS fires,
                   t.holds, (rule).metric || '/' || t.entity AS series,
                   jsonb_build_object('metric', (rule).metric, 'entity', t.entity, 'value', t.value,
                                      'condition', (rule).condition, 'threshold', (rule).threshold,
                                      'held_since', t.held_since, 'samples', t.samples) AS trigger_values,
                   least(1, t.samples / 5.0) AS confidence, NULL::bigint AS anomaly_group,
                   (rule).severity AS severity
              FROM perfopt.threshold_state(rule, at) t
             WHERE (rule).trigger_type = 'threshold'
            UNION ALL
            -- anomaly: an open anomaly of the metric (any metric when none is named)
            SELECT a.entity, true, true, a.metric || '/' || a.entity,
                   jsonb_build_object('metric', a.metric, 'entity', a.entity, 'anomaly_id', a.anomaly_id,
                                      'group_id', a.group_id, 'value', a.value, 'expected', a.expected,
                                      'score', a.score, 'severity', a.severity, 'detected_at', a.detected_at),
                   CASE a.severity WHEN 'critical' THEN 1 ELSE 0.7 END, a.group_id, a.severity
              FROM perfopt.anomalies a
             WHERE (rule).trigger_type = 'anomaly' AND a.resolved_at IS NULL
               AND a.detected_at <= at
               AND ((rule).metric IS NULL OR a.metric = (rule).metric)
               AND ((rule).entity IS NULL OR a.entity = (rule).entity)
            UNION ALL
            -- schedule: a time of the schedule passed since the last evaluation
            SELECT NULL, true, false, NULL,
                   jsonb_build_object('schedule', (rule).schedule,
                                      'due', perfopt.cron_next((rule).schedule,
                                                               coalesce((rule).last_evaluated_at, (rule).created_at))),
                   1, NULL, (rule).severity
             WHERE (rule).trigger_type = 'schedule'
               AND perfopt.cron_next((rule).schedule, coalesce((rule).last_evaluated_at, (rule).created_at)) <= at
        LOOP
            IF fired.holds THEN
                active_series := active_series || fired.series;
            END IF;
            IF fired.anomaly_group IS NOT NULL THEN
                active_groups := active_groups || fired.anomaly_group;
            END IF;
            CONTINUE WHEN NOT fired.fires;

            -- incidents: one per cause
            IF fired.series IS NOT NULL THEN
                SELECT i.id INTO incident_id FROM perfopt.incidents i
                 WHERE i.resolved_at IS NULL
                   AND ((fired.anomaly_group IS NOT NULL AND i.anomaly_group = fired.anomaly_group)
                        OR fired.series = ANY (i.series))
                 ORDER BY i.id LIMIT 1;
                IF incident_id IS NULL THEN
                    INSERT INTO perfopt.incidents (opened_at, severity, title, details, series, rule_ids,
                                                   anomaly_group)
                    VALUES (at, fired.severity,
                            CASE WHEN fired.anomaly_group IS NOT NULL
                                 THEN pg_catalog.format('anomaly in %s', fired.series)
                                 ELSE pg_catalog.format('%s %s %s', fired.series, pg_catalog.replace((rule).condition, '_', ' '),
                                             (rule).threshold) END,
                            jsonb_build_object('first_trigger', fired.trigger_values, 'rule', (rule).name),
                            ARRAY[fired.series], ARRAY[(rule).id], fired.anomaly_group)
                    RETURNING id INTO incident_id;
                ELSE
                    UPDATE perfopt.incidents i
                       SET series = CASE WHEN fired.series = ANY (i.series) THEN i.series
                                         ELSE i.series || fired.series END,
                           rule_ids = CASE WHEN (rule).id = ANY (i.rule_ids) THEN i.rule_ids
                                           ELSE i.rule_ids || (rule).id END,
                           anomaly_group = coalesce(i.anomaly_group, fired.anomaly_group),
                           severity = CASE WHEN fired.severity = 'critical' THEN 'critical' ELSE i.severity END,
                           clear_since = NULL
                     WHERE i.id = incident_id;
                END IF;
            END IF;

            -- actions, each once per cooldown for its target
            FOR act IN SELECT jsonb_array_elements((rule).actions) LOOP
                act_target := pg_catalog.replace(coalesce(act->>'target', ''), '{entity}', coalesce(fired.entity, ''));
                CONTINUE WHEN EXISTS (
                    SELECT FROM perfopt.action_log l
                     WHERE l.rule_id = (rule).id AND l.action = act->>'type'
                       AND l.target IS NOT DISTINCT FROM nullif(act_target, '')
                       AND l.queued_at > at - (rule).cooldown
                       AND l.outcome <> 'skipped');
                logged := perfopt.log_action(rule, act, nullif(act_target, ''), fired.trigger_values,
                                             fired.confidence, (rule).dry_run, (rule).owner, cycle_id,
                                             queued < max_actions);
                IF (SELECT outcome FROM perfopt.action_log WHERE id = logged) = 'queued' THEN
                    queued := queued + 1;
                END IF;
                UPDATE perfopt.action_log SET queued_at = at WHERE id = logged;
            END LOOP;
            UPDATE perfopt.automation_rules SET last_fired_at = at WHERE id = (rule).id;
        END LOOP;
        UPDATE perfopt.automation_rules SET last_evaluated_at = at WHERE id = (rule).id;
    END LOOP;

    -- 2. capacity alerts are incidents too
    FOR v IN SELECT a.* FROM perfopt.capacity_alerts a
              WHERE a.cleared_at IS NULL
                AND NOT EXISTS (SELECT FROM perfopt.incidents i WHERE i.capacity_alert = a.alert_id)
    LOOP
        INSERT INTO perfopt.incidents (opened_at, severity, title, details, series, capacity_alert)
        VALUES (at, v.severity, v.message, jsonb_build_object('exhaustion_at', v.exhaustion_at),
                ARRAY['capacity:' || v.resource || '/' || v.entity], v.alert_id);
    END LOOP;

    -- 3. incidents whose cause is gone resolve after the hold time
    UPDATE perfopt.incidents i
       SET clear_since = CASE WHEN active THEN NULL ELSE coalesce(i.clear_since, at) END,
           resolved_at = CASE WHEN NOT active AND at - coalesce(i.clear_since, at) >= hold THEN at END
      FROM (SELECT i2.id,
                   (i2.series && active_series)
                   OR (i2.anomaly_group IS NOT NULL
                       AND (i2.anomaly_group = ANY (active_groups)
                            OR EXISTS (SELECT FROM perfopt.anomalies a
                                        WHERE a.group_id = i2.anomaly_group AND a.resolved_at IS NULL)))
                   OR EXISTS (SELECT FROM perfopt.capacity_alerts a
                               WHERE a.alert_id = i2.capacity_alert AND a.cleared_at IS NULL) AS active
              FROM perfopt.incidents i2 WHERE i2.resolved_at IS NULL) s
     WHERE i.id = s.id;

    -- 4. indexes created by rules that nobody used within the window are dropped
    FOR v IN SELECT l.* FROM perfopt.action_log l
              WHERE l.action = 'create_index' AND l.outcome = 'succeeded' AND l.check_after <= at
                AND l.rolled_back_by IS NULL
    LOOP
        -- a partitioned index is scanned through its partitions' indexes
        IF coalesce((SELECT sum(s.idx_scan) FROM pg_catalog.pg_stat_user_indexes s
                      WHERE s.indexrelid = pg_catalog.to_regclass(v.details->>'index')
                         OR s.indexrelid IN (SELECT p.relid
                                               FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass(v.details->>'index')) p)),
                    0) = 0 THEN
            INSERT INTO perfopt.action_log (cycle_id, rule_id, rule_name, trigger_values, action, target,
                                            statement, dry_run, confidence, outcome, details, owner,
                                            target_owner, rollback_of, queued_at)
            VALUES (cycle_id, v.rule_id, v.rule_name,
                    jsonb_build_object('reason', 'no scan used the index within perfopt.index_rollback_window'),
                    'rollback', v.details->>'index', v.rollback_statement, false, 1, 'queued',
                    jsonb_build_object('index', v.details->>'index'), v.owner, v.target_owner, v.id, at);
        END IF;
        UPDATE perfopt.action_log SET check_after = NULL WHERE id = v.id;
    END LOOP;

    -- 5. the report
    SELECT * INTO previous FROM perfopt.optimization_reports ORDER BY created_at DESC, id DESC LIMIT 1;
    SELECT jsonb_object_agg(h.component, jsonb_build_object('score', h.score, 'status', h.status)
                            || h.details)
      INTO health FROM perfopt.health() h;
    -- the plan (as optimization_plan() makes it: keep the two alike), the
    -- largest tables and the drop candidates by reason (which the scrape
    -- reads from here) from one read of table_health and one of
    -- index_drop_candidates: each reads every table or index
    WITH th AS MATERIALIZED (SELECT * FROM perfopt.table_health),
    d AS MATERIALIZED (SELECT * FROM perfopt.index_drop_candidates),
    plan (priority, category, action, target, statement, reason) AS (
        SELECT 1, 'capacity', c.action, c.resource || CASE WHEN c.entity <> '' THEN ' ' || c.entity ELSE '' END,
               NULL::text, c.recommendation
          FROM perfopt.capacity_forecasts c
         WHERE c.exhaustion_at IS NOT NULL
        UNION ALL
        SELECT 2, 'index', 'create_index', r.table_name::text, r.index_def,
               pg_catalog.format('%s%% less planned cost for the workload: %s', round(r.benefit_pct::numeric, 1), r.reason)
          FROM perfopt.recommend_indexes() r
        UNION ALL
        SELECT 3, 'index', 'drop_index', d.index_name::text, d.drop_def, d.reason
          FROM d
        UNION ALL
        SELECT 4, 'table', f->>'action', h.table_name::text, f->>'statement', f->>'reason'
          FROM th h, jsonb_array_elements(h.recommendations) f
         WHERE h.health_score < 80)
    SELECT coalesce((SELECT jsonb_agg(to_jsonb(p))
                       FROM (SELECT * FROM plan ORDER BY priority, target LIMIT 10) p), '[]'),
           coalesce((SELECT jsonb_agg(jsonb_build_object('table', t.table_name::text,
                                                         'health_score', t.health_score,
                                                         'size_bytes', t.size_bytes)
                                      ORDER BY t.size_bytes DESC)
                       FROM (SELECT * FROM th ORDER BY size_bytes DESC LIMIT 20) t), '[]'),
           coalesce((SELECT jsonb_agg(jsonb_build_object('reason', r.reason, 'indexes', r.n, 'bytes', r.bytes)
                                      ORDER BY r.reason)
                       -- invalid, duplicate, redundant or unused: a bounded label
                       FROM (SELECT d.reason_code AS reason, count(*) AS n,
                                    coalesce(sum(d.size_bytes), 0) AS bytes
                               FROM d GROUP BY 1) r), '[]')
      INTO items, largest, drops;
    report := jsonb_build_object(
        'cycle', cycle_id,
        'created_at', at,
        'since', previous.created_at,
        'health', health,
        'performance_score', (health->'overall'->>'score')::int,
        'p95_latency_ms', (SELECT value FROM perfopt.metrics_latest
                            WHERE metric = 'latency_p95_ms' AND entity = ''),
        'slow_queries', (health->'queries'->>'slow_queries')::int,
        'actions', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                 'id', l.id, 'rule', l.rule_name, 'action', l.action, 'target', l.target,
                                 'outcome', l.outcome, 'dry_run', l.dry_run, 'statement', l.statement,
                                 'error', l.error) ORDER BY l.id)
                              FROM perfopt.action_log l
                             WHERE l.queued_at > coalesce(previous.created_at, '-infinity')
                               AND l.queued_at <= at), '[]'),
        'action_items', items,
        'tables', largest,
        'index_drop_candidates', drops,
        'open_incidents', coalesce((SELECT jsonb_agg(jsonb_build_object('id', i.id, 'opened_at', i.opened_at,
                                                                       'severity', i.severity, 'title', i.title)
                                                     ORDER BY i.id)
                                      FROM perfopt.incidents i WHERE i.resolved_at IS NULL), '[]'));
    -- what changed since the previous report
    report := report || jsonb_build_object('changes', jsonb_build_object(
        'performance_score', (report->>'performance_score')::int - (previous.report->>'performance_score')::int,
        'p95_latency_ms', (report->>'p95_latency_ms')::float8 - (previous.report->>'p95_latency_ms')::float8,
        'slow_queries', (report->>'slow_queries')::int - (previous.report->>'slow_queries')::int));
    -- execution time the indexes that rules created save, from the advisor's estimate
    SELECT sum(total_exec_time)
           / greatest(extract(epoch FROM pg_catalog.now() - (SELECT stats_reset FROM perfopt.statement_stats_info)) / 3600, 1)
      INTO ms_per_hour
      FROM perfopt.statement_stats WHERE toplevel;
    SELECT count(*) AS n,
           round(sum(coalesce((l.details->>'benefit_pct')::float8, 0) / 100 * ms_per_hour)::numeric, 1) AS saved
      INTO v
      FROM perfopt.action_log l
     WHERE l.action = 'create_index' AND l.outcome = 'succeeded' AND l.rolled_back_by IS NULL;
    report := report || jsonb_build_object('savings', jsonb_build_object(
        'indexes_created', v.n, 'estimated_exec_ms_saved_per_hour', coalesce(v.saved, 0)));

    INSERT INTO perfopt.optimization_reports (id, created_at, report) VALUES (cycle_id, at, report);
    RETURN report;
END
$$;

CREATE OR REPLACE FUNCTION perfopt.run_optimization_cycle(at timestamptz DEFAULT perfopt.now())
RETURNS jsonb
AS 'MODULE_PATHNAME', 'perfopt_run_optimization_cycle'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION perfopt.run_optimization_cycle(timestamptz) IS
'one optimization cycle: evaluates the rules, logs and queues their actions, opens and resolves incidents, rolls back unused indexes, stores and returns a report; only a superuser may give another time than now';

CREATE OR REPLACE FUNCTION perfopt.latest_report() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT report FROM perfopt.optimization_reports ORDER BY created_at DESC, id DESC LIMIT 1
$$;

COMMENT ON FUNCTION perfopt.latest_report() IS 'the report of the latest optimization cycle';

-- The orchestrator job: a cycle when perfopt.optimization_interval has passed
CREATE OR REPLACE FUNCTION perfopt.run_scheduled_cycle() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM perfopt.optimization_reports
                WHERE created_at > perfopt.now() - pg_catalog.current_setting('perfopt.optimization_interval')::interval
                  AND created_at <= perfopt.now()) THEN
        RETURN NULL;
    END IF;
    RETURN perfopt.run_optimization_cycle();
END
$$;

-- Who may act as caller: a member of perfopt_admin, or a superuser, whom the
-- session's login role may become (so that no one can claim another's name)
CREATE OR REPLACE FUNCTION perfopt.check_admin(caller regrole) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT perfopt.may_own_rules(caller::oid) THEN
        RAISE EXCEPTION 'role % may not run perfopt actions', caller
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Grant it perfopt_admin.';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION perfopt.optimize_as(caller regrole, action text, target text, dry_run boolean, params jsonb)
RETURNS perfopt.action_log
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    spec jsonb := coalesce(params, '{}') || jsonb_build_object('type', action)
                  || CASE WHEN target IS NULL THEN '{}' ELSE jsonb_build_object('target', target) END;
    logged bigint;
    result perfopt.action_log;
BEGIN
    PERFORM perfopt.check_admin(caller);
    PERFORM perfopt.check_action(spec, caller);
    logged := perfopt.log_action(NULL, spec, target, jsonb_build_object('by', caller::text), 1,
                                 coalesce(dry_run, true), caller, NULL, true);
    SELECT * INTO result FROM perfopt.action_log WHERE id = logged;
    RETURN result;
END
$$;

-- One action by hand, through the same log and queue as rules
CREATE OR REPLACE FUNCTION perfopt.optimize(action text, target text DEFAULT NULL,
                                            dry_run boolean DEFAULT true, params jsonb DEFAULT '{}')
RETURNS perfopt.action_log
AS 'MODULE_PATHNAME', 'perfopt_optimize'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION perfopt.optimize(text, text, boolean, jsonb) IS
'one action by hand (dry run unless told otherwise), logged and queued like a rule''s; the launcher runs it as the caller';

CREATE OR REPLACE FUNCTION perfopt.rollback_action_as(caller regrole, action_id bigint) RETURNS perfopt.action_log
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    original perfopt.action_log;
    result perfopt.action_log;
BEGIN
    PERFORM perfopt.check_admin(caller);
    SELECT * INTO original FROM perfopt.action_log WHERE id = action_id;
    IF NOT FOUND OR original.outcome <> 'succeeded' OR original.rollback_statement IS NULL THEN
        RAISE EXCEPTION 'action % cannot be rolled back', action_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a succeeded action with a rollback_statement can be.';
    END IF;
    -- the undo runs as its caller, who must have the privileges of the one who acted
    IF NOT pg_catalog.pg_has_role(caller::oid, original.owner::oid, 'USAGE') THEN
        RAISE EXCEPTION 'role % may not undo an action of %', caller, original.owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Ask its owner or a superuser.';
    END IF;
    INSERT INTO perfopt.action_log (rule_id, rule_name, trigger_values, action, target, statement,
                                    dry_run, confidence, outcome, owner, target_owner, rollback_of)
    VALUES (original.rule_id, original.rule_name, jsonb_build_object('by', caller::text), 'rollback',
            original.target, original.rollback_statement, false, 1, 'queued', caller,
            original.target_owner, original.id)
    RETURNING * INTO result;
    RETURN result;
END
$$;

-- Undo an action that has an undo statement
CREATE OR REPLACE FUNCTION perfopt.rollback_action(action_id bigint) RETURNS perfopt.action_log
AS 'MODULE_PATHNAME', 'perfopt_rollback_action'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION perfopt.rollback_action(bigint) IS
'queues the statement that undoes a succeeded action (a created index, a dropped one, a table option)';

-- Called by the launcher just before it runs a queued action: NULL when
-- the action may run, else why not.  Its owner must still be a superuser or
-- a member of perfopt_admin (a superuser for sql), and its rule must still
-- exist and run as that owner.  The launcher then checks the statement
-- itself (src/actions.c): its kind, its tables, an index's code.
CREATE OR REPLACE FUNCTION perfopt.recheck_action(action_id bigint) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a perfopt.action_log;
    rule_owner oid;
BEGIN
    SELECT * INTO a FROM perfopt.action_log WHERE id = action_id;
    IF NOT FOUND THEN
        RETURN 'no such action';
    END IF;
    IF NOT perfopt.may_own_rules(a.owner::oid) THEN
        RETURN format('role %s may no longer run perfopt actions', a.owner::oid::regrole);
    END IF;
    IF a.action = 'sql'
       AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = a.owner::oid), false) THEN
        RETURN format('role %s is no longer a superuser, and only a superuser''s rule may run sql', a.owner);
    END IF;
    IF a.rule_id IS NOT NULL THEN
        SELECT r.owner::oid INTO rule_owner FROM perfopt.automation_rules r WHERE r.id = a.rule_id;
        IF NOT FOUND THEN
            RETURN 'its rule no longer exists';
        END IF;
        IF rule_owner <> a.owner::oid THEN
            RETURN 'its rule no longer runs as its owner';
        END IF;
    END IF;
    RETURN NULL;
END
$$;





-- rules are written against what perfopt measures


ALTER TABLE perfopt.action_log ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS admins_and_monitors ON perfopt.action_log;
CREATE POLICY admins_and_monitors ON perfopt.action_log FOR SELECT
    USING (pg_has_role(current_user, 'perfopt_admin', 'MEMBER')
           OR pg_has_role(current_user, 'pg_monitor', 'MEMBER'));
DROP POLICY IF EXISTS own_tables ON perfopt.action_log;
CREATE POLICY own_tables ON perfopt.action_log FOR SELECT
    USING (target_owner IS NOT NULL AND pg_has_role(current_user, target_owner, 'MEMBER'));

-- A member of perfopt_admin sees and changes only the rules of roles whose
-- privileges it has (perfopt_admin's own, the seeded ones, included);
-- superusers all.  The cycle runs as the extension's owner and sees all.
ALTER TABLE perfopt.automation_rules ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_rules ON perfopt.automation_rules;
CREATE POLICY own_rules ON perfopt.automation_rules
    USING (pg_catalog.pg_has_role(CURRENT_USER, owner::pg_catalog.oid, 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(CURRENT_USER, owner::pg_catalog.oid, 'USAGE'));
