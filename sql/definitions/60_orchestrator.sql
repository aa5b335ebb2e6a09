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
    -- a trial index is built, measured, and kept only if it helped; columns
    -- name an index of one's own instead of the advisor's
    IF (action ? 'trial' OR action ? 'columns') AND kind <> 'create_index' THEN
        RAISE EXCEPTION 'only create_index takes "trial" or "columns"'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Such as {"type": "create_index", "target": "public.leads", "trial": true}.';
    END IF;
    IF action ? 'trial' AND jsonb_typeof(action->'trial') IS DISTINCT FROM 'boolean' THEN
        RAISE EXCEPTION '"trial" must be true or false'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Such as {"trial": true}.';
    END IF;
    IF action ? 'columns' THEN
        IF jsonb_typeof(action->'columns') IS DISTINCT FROM 'array'
           OR jsonb_array_length(action->'columns') NOT BETWEEN 1 AND 32
           OR EXISTS (SELECT FROM jsonb_array_elements(action->'columns') c
                       WHERE jsonb_typeof(c) <> 'string' OR length(c #>> '{}') NOT BETWEEN 1 AND 63)
           OR coalesce(action->>'target', 'auto') = 'auto' THEN
            RAISE EXCEPTION '"columns" must be 1 to 32 column names of the target table'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Such as {"type": "create_index", "target": "public.leads", "columns": ["agent_id"]}.';
        END IF;
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
    table_rel regclass;
    columns text;
    missing text;
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
      IF action ? 'columns' THEN
        -- an index on the columns the action names, each checked to exist
        SELECT string_agg(pg_catalog.format('%I', c.col), ', ' ORDER BY c.ord),
               string_agg(c.col, ', ') FILTER (WHERE a.attname IS NULL)
          INTO columns, missing
          FROM jsonb_array_elements_text(action->'columns') WITH ORDINALITY c (col, ord)
          LEFT JOIN pg_catalog.pg_attribute a
                 ON a.attrelid = rel AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped;
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'table % has no column %', name, missing
                USING ERRCODE = 'undefined_column', HINT = 'Name columns of the target table.';
        END IF;
        details := jsonb_build_object(
            'index_name', left(format('perfopt_%s_%s', (SELECT relname FROM pg_catalog.pg_class WHERE oid = rel),
                                      action_id), 63),
            'reason', 'the columns the action names');
        details := details || jsonb_build_object('index', format('%I.%I',
            (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = rel), details->>'index_name'));
        IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = rel) = 'p' THEN
            statement := perfopt.index_build_statements(rel, format('CREATE INDEX CONCURRENTLY ON %s (%s)', name, columns),
                                                        details->>'index_name');
            rollback_statement := format('DROP INDEX IF EXISTS %s', details->>'index');
        ELSE
            statement := format('CREATE INDEX CONCURRENTLY %I ON %s (%s)', details->>'index_name', name, columns);
            rollback_statement := format('DROP INDEX CONCURRENTLY IF EXISTS %s', details->>'index');
        END IF;
        table_rel := rel;
      ELSE
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
        table_rel := rec.table_name;
      END IF;
        details := details || jsonb_build_object('trial', coalesce((action->>'trial')::boolean, false));
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
        table_rel := rec.table_name;
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
    -- the table whose figures measure the action's outcome
    IF table_rel IS NULL AND rel IS NOT NULL THEN
        table_rel := coalesce((SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = rel), rel);
    END IF;
    IF table_rel IS NOT NULL THEN
        details := details || jsonb_build_object('table', perfopt.qualified_name(table_rel));
    END IF;
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
    IF outcome = 'queued' THEN
        PERFORM perfopt.begin_outcome(id);
    END IF;
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
    -- the window after the action opens now
    PERFORM perfopt.action_ended(action_id, succeeded);
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
-- Measured outcomes: what each action did to its target's figures
--
-- When an action is queued, begin_outcome() notes the figures of its
-- target: the statements it is meant to speed up (the advisor's queryids
-- for its index, else the reads of pg_stat_statements that name the
-- table), the writes that name the table, the table's counters and the
-- index's.  pg_stat_statements counts since its reset, so these are the
-- window before (from stats_reset to the action).  When the action ended,
-- action_ended() notes them again; a cycle at least perfopt.outcome_window
-- later notes them a third time and close_outcome() compares the two
-- windows: mean time per read call, WAL bytes per write call (converted to
-- time at the writes' own measured time per WAL byte), index tuples
-- written, dead tuples.  docs/orchestrator.md gives the formulas.

-- The statements of pg_stat_statements in this database that name a table:
-- its reads (SELECT, WITH) or its writes (INSERT, UPDATE, DELETE, MERGE)
CREATE OR REPLACE FUNCTION perfopt.outcome_statements(rel regclass, writes boolean) RETURNS bigint[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT t.queryid ORDER BY t.queryid), '{}')
      FROM perfopt.statement_texts t
     WHERE t.dbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
       AND t.query ~* ('\m' || pg_catalog.regexp_replace((SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = rel),
                                                        '([^[:alnum:]_])', '\\\1', 'g') || '\M')
       AND t.query ~* CASE WHEN writes THEN '^\s*(insert|update|delete|merge)\M'
                           ELSE '^\s*(select|with|table|values)\M' END
       AND t.query !~* 'perfopt\.'
$$;

-- The figures of an outcome's target now (counters since their resets)
CREATE OR REPLACE FUNCTION perfopt.outcome_figures(o perfopt.action_outcomes) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a perfopt.action_log;
    rel regclass;
    idx regclass;
    db oid := (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database());
    reads jsonb;
    writes jsonb;
    tab jsonb;
    ind jsonb;
    lat jsonb;
BEGIN
    SELECT * INTO a FROM perfopt.action_log WHERE id = o.action_id;
    rel := pg_catalog.to_regclass(a.details->>'table');
    idx := pg_catalog.to_regclass(coalesce(a.details->>'index', a.details->>'index_name'));
    PERFORM pg_catalog.pg_stat_clear_snapshot();
    -- calls, time and the sum of squares (from the mean and stddev) per window
    SELECT jsonb_build_object('calls', coalesce(sum(s.calls), 0),
                              'total_ms', coalesce(sum(s.total_exec_time), 0),
                              'sumsq_ms2', coalesce(sum(s.calls * (s.stddev_exec_time ^ 2 + s.mean_exec_time ^ 2)), 0),
                              'rows', coalesce(sum(s.rows), 0))
      INTO reads FROM perfopt.statement_stats s
     WHERE s.dbid = db AND s.queryid = ANY (o.read_queryids);
    SELECT jsonb_build_object('calls', coalesce(sum(s.calls), 0),
                              'total_ms', coalesce(sum(s.total_exec_time), 0),
                              'wal_bytes', coalesce(sum(s.wal_bytes), 0))
      INTO writes FROM perfopt.statement_stats s
     WHERE s.dbid = db AND s.queryid = ANY (o.write_queryids);
    SELECT jsonb_build_object('n_tup_ins', t.n_tup_ins, 'n_tup_upd', t.n_tup_upd,
                              'n_tup_hot_upd', t.n_tup_hot_upd, 'n_tup_del', t.n_tup_del,
                              'n_live_tup', t.n_live_tup, 'n_dead_tup', t.n_dead_tup,
                              'seq_scan', t.seq_scan, 'idx_scan', t.idx_scan,
                              'size_bytes', pg_catalog.pg_table_size(t.relid))
      INTO tab FROM pg_catalog.pg_stat_all_tables t WHERE t.relid = rel;
    SELECT jsonb_build_object('idx_scan', i.idx_scan, 'size_bytes', pg_catalog.pg_relation_size(i.indexrelid))
      INTO ind FROM pg_catalog.pg_stat_all_indexes i WHERE i.indexrelid = idx;
    -- perfopt's latency histogram of the reads, when perfopt is preloaded
    BEGIN
        SELECT jsonb_build_object('buckets', coalesce(array_agg(l.bucket ORDER BY l.bucket), '{}'),
                                  'calls', coalesce(array_agg(l.calls ORDER BY l.bucket), '{}'))
          INTO lat FROM perfopt.latency_counts(o.read_queryids) l;
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        lat := NULL;
    END;
    RETURN jsonb_build_object('at', pg_catalog.clock_timestamp(), 'latency', lat,
                              'stats_reset', (SELECT i.stats_reset FROM perfopt.statement_stats_info i),
                              'wal_lsn', pg_catalog.pg_current_wal_lsn()::text,
                              'reads', reads, 'writes', writes, 'table', tab, 'index', ind);
END
$$;

-- An action was queued: note the figures of the window before it
CREATE OR REPLACE FUNCTION perfopt.begin_outcome(action_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    a perfopt.action_log;
    rel regclass;
    o perfopt.action_outcomes;
BEGIN
    SELECT * INTO a FROM perfopt.action_log WHERE id = action_id;
    rel := pg_catalog.to_regclass(a.details->>'table');
    IF a.action NOT IN ('create_index', 'drop_index', 'vacuum_analyze', 'analyze', 'reindex', 'set_table_option')
       OR rel IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO perfopt.action_outcomes (action_id, action, rule_id, rule_name, target, target_owner, owner,
                                         trial, read_queryids, write_queryids)
    VALUES (a.id, a.action, a.rule_id, a.rule_name, a.target, a.target_owner, a.owner,
            coalesce((a.details->>'trial')::boolean, false),
            ARRAY(SELECT DISTINCT q FROM unnest(perfopt.outcome_statements(rel, false)
                                                || CASE WHEN jsonb_typeof(a.details->'queryids') = 'array'
                                                        THEN ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(a.details->'queryids') x)
                                                        ELSE '{}' END) q ORDER BY q),
            perfopt.outcome_statements(rel, true))
    RETURNING * INTO o;
    -- the window before starts when the last measured action on the table
    -- ended (what it changed is part of the baseline), else at
    -- pg_stat_statements' reset
    UPDATE perfopt.action_outcomes u
       SET before_figures = f,
           before_start_figures = p.after_start_figures,
           before_from = coalesce(p.after_from, (f->>'stats_reset')::timestamptz),
           before_to = (f->>'at')::timestamptz
      FROM perfopt.outcome_figures(o) f
      LEFT JOIN LATERAL (
          SELECT p.after_start_figures, p.after_from
            FROM perfopt.action_outcomes p JOIN perfopt.action_log l ON l.id = p.action_id
           WHERE l.details->>'table' = a.details->>'table' AND p.action_id <> o.action_id
             AND p.after_start_figures IS NOT NULL
             AND p.read_queryids = o.read_queryids AND p.write_queryids = o.write_queryids
             AND p.after_start_figures->>'stats_reset' IS NOT DISTINCT FROM f->>'stats_reset'
           ORDER BY p.after_from DESC LIMIT 1) p ON true
     WHERE u.action_id = o.action_id;
END
$$;

-- An action ended: the window after it opens (or, when it failed, there is nothing to measure)
CREATE OR REPLACE FUNCTION perfopt.action_ended(action_id bigint, succeeded boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    o perfopt.action_outcomes;
BEGIN
    SELECT * INTO o FROM perfopt.action_outcomes u WHERE u.action_id = action_ended.action_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF NOT succeeded THEN
        UPDATE perfopt.action_outcomes u
           SET verdict = 'inconclusive', measured = jsonb_build_object('reason', 'the action failed'),
               confidence = 0, closed_at = pg_catalog.clock_timestamp()
         WHERE u.action_id = o.action_id;
        RETURN;
    END IF;
    UPDATE perfopt.action_outcomes u
       SET after_start_figures = f, after_from = (f->>'at')::timestamptz
      FROM perfopt.outcome_figures(o) f
     WHERE u.action_id = o.action_id;
END
$$;

-- P50, P95 and P99 in ms of the latency histogram of a window: the later
-- snapshot less the earlier one (none: since the histograms' reset)
CREATE OR REPLACE FUNCTION perfopt.latency_window(later jsonb, earlier jsonb) RETURNS float8[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH l AS (SELECT b::int AS bucket, c::bigint AS calls
                 FROM unnest(ARRAY(SELECT jsonb_array_elements_text(later->'buckets')),
                             ARRAY(SELECT jsonb_array_elements_text(later->'calls'))) x (b, c)),
    e AS (SELECT b::int AS bucket, c::bigint AS calls
            FROM unnest(ARRAY(SELECT jsonb_array_elements_text(earlier->'buckets')),
                        ARRAY(SELECT jsonb_array_elements_text(earlier->'calls'))) x (b, c))
    SELECT perfopt.latency_quantiles(coalesce(array_agg(l.bucket), '{}'),
                                     coalesce(array_agg(greatest(l.calls - coalesce(e.calls, 0), 0)), '{}'),
                                     '{0.5,0.95,0.99}')
      FROM l LEFT JOIN e ON e.bucket = l.bucket
$$;

-- Confidence that a difference of z standard errors is not noise: 2 Phi(|z|) - 1,
-- with the logistic approximation of the normal distribution (within 0.01)
CREATE OR REPLACE FUNCTION perfopt.z_confidence(z float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN z IS NULL THEN NULL ELSE pg_catalog.tanh(0.851 * abs(z)) END
$$;

-- Close the window after an action: compare, judge, and undo a harmful
-- action (a trial index that did not help) through the queue, as its owner
CREATE OR REPLACE FUNCTION perfopt.close_outcome(action_id bigint, at timestamptz, cycle_id bigint)
RETURNS perfopt.action_outcomes
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    o perfopt.action_outcomes;
    a perfopt.action_log;
    b jsonb;
    s jsonb;
    e jsonb;
    m jsonb;
    b0 jsonb;
    lat_before float8[];
    lat_after float8[];
    harm_pct float8 := pg_catalog.current_setting('perfopt.outcome_harm_pct')::float8;
    min_confidence float8 := pg_catalog.current_setting('perfopt.outcome_min_confidence')::float8;
    core_hour float8 := pg_catalog.current_setting('perfopt.price_core_hour')::float8;
    gb_month float8 := pg_catalog.current_setting('perfopt.price_storage_gb_month')::float8;
    nb float8; mb float8; vb float8;
    na float8; ma float8; va float8;
    wnb float8; wna float8; wal_b float8; wal_a float8; ms_per_wal float8; wmb float8;
    z float8;
    read_conf float8 := 1;
    read_saved float8 := 0;
    extra_wal float8 := 0;
    extra_write_ms float8 := 0;
    index_scans float8;
    base_ms float8;
    net_ms float8;
    hours float8;
    v_verdict text;
    v_decision text;
    undo bigint;
    storage_bytes float8 := 0;
BEGIN
    SELECT * INTO o FROM perfopt.action_outcomes u WHERE u.action_id = close_outcome.action_id FOR UPDATE;
    SELECT * INTO a FROM perfopt.action_log l WHERE l.id = close_outcome.action_id;
    e := perfopt.outcome_figures(o);
    b := o.before_figures;
    s := o.after_start_figures;
    b0 := coalesce(o.before_start_figures,
                   '{"reads": {"calls": 0, "total_ms": 0, "sumsq_ms2": 0}, "writes": {"calls": 0, "total_ms": 0, "wal_bytes": 0}}');
    hours := greatest(extract(epoch FROM at - o.after_from) / 3600, 1.0 / 3600);

    -- reads: the mean time per call of the window before against the window after
    nb := (b->'reads'->>'calls')::float8 - (b0->'reads'->>'calls')::float8;
    na := (e->'reads'->>'calls')::float8 - (s->'reads'->>'calls')::float8;
    IF na < 0 OR (e->>'stats_reset') IS DISTINCT FROM (b->>'stats_reset') THEN
        UPDATE perfopt.action_outcomes u
           SET verdict = 'inconclusive', after_end_figures = e, after_to = at, closed_at = at, confidence = 0,
               decision = 'kept',
               measured = jsonb_build_object('reason', 'pg_stat_statements was reset during the windows')
         WHERE u.action_id = o.action_id RETURNING * INTO o;
        RETURN o;
    END IF;
    mb := ((b->'reads'->>'total_ms')::float8 - (b0->'reads'->>'total_ms')::float8) / nullif(nb, 0);
    vb := greatest(((b->'reads'->>'sumsq_ms2')::float8 - (b0->'reads'->>'sumsq_ms2')::float8) / nullif(nb, 0)
                   - mb ^ 2, 0);
    ma := ((e->'reads'->>'total_ms')::float8 - (s->'reads'->>'total_ms')::float8) / nullif(na, 0);
    va := greatest(((e->'reads'->>'sumsq_ms2')::float8 - (s->'reads'->>'sumsq_ms2')::float8) / nullif(na, 0)
                   - ma ^ 2, 0);
    IF nb > 1 AND na > 1 THEN
        z := (mb - ma) / nullif(sqrt(vb / nb + va / na), 0);
        read_conf := coalesce(perfopt.z_confidence(z), CASE WHEN mb = ma THEN 0 ELSE 1 END);
        read_saved := (mb - ma) * na;
    ELSE
        read_conf := 0;
    END IF;
    -- a new index that no scan used sped up no read, for sure
    IF a.action = 'create_index' THEN
        index_scans := (e->'index'->>'idx_scan')::float8 - (s->'index'->>'idx_scan')::float8;
        IF coalesce(index_scans, 0) = 0 THEN
            read_saved := 0;
            read_conf := 1;
        END IF;
        storage_bytes := coalesce((e->'index'->>'size_bytes')::float8, 0);
    ELSIF a.action = 'drop_index' THEN
        storage_bytes := -coalesce((a.details->>'size_bytes')::float8, 0);
    END IF;

    -- writes: WAL bytes per write call, before and after, priced at the
    -- writes' own time per WAL byte in the window before
    wnb := (b->'writes'->>'calls')::float8 - (b0->'writes'->>'calls')::float8;
    wna := (e->'writes'->>'calls')::float8 - (s->'writes'->>'calls')::float8;
    wal_b := ((b->'writes'->>'wal_bytes')::float8 - (b0->'writes'->>'wal_bytes')::float8) / nullif(wnb, 0);
    wal_a := ((e->'writes'->>'wal_bytes')::float8 - (s->'writes'->>'wal_bytes')::float8) / nullif(wna, 0);
    wmb := ((b->'writes'->>'total_ms')::float8 - (b0->'writes'->>'total_ms')::float8) / nullif(wnb, 0);
    ms_per_wal := wmb / nullif(wal_b, 0);
    IF wal_a IS NOT NULL AND wal_b IS NOT NULL THEN
        extra_wal := (wal_a - wal_b) * wna;
        extra_write_ms := coalesce(extra_wal * ms_per_wal, 0);
    END IF;

    net_ms := read_saved - extra_write_ms;
    lat_before := perfopt.latency_window(b->'latency', b0->'latency');
    lat_after := perfopt.latency_window(e->'latency', s->'latency');
    base_ms := coalesce(mb * na, 0) + coalesce(wmb * wna, 0);
    m := jsonb_build_object(
        'reads', jsonb_build_object('calls_before', nb, 'calls_after', na,
                                    'mean_ms_before', mb, 'mean_ms_after', ma,
                                    'stddev_ms_before', sqrt(vb), 'stddev_ms_after', sqrt(va),
                                    'z', z, 'confidence', read_conf, 'saved_ms', read_saved,
                                    'p50_ms_before', lat_before[1], 'p95_ms_before', lat_before[2],
                                    'p99_ms_before', lat_before[3], 'p50_ms_after', lat_after[1],
                                    'p95_ms_after', lat_after[2], 'p99_ms_after', lat_after[3]),
        'writes', jsonb_build_object('calls_before', wnb, 'calls_after', wna,
                                     'wal_bytes_per_call_before', wal_b, 'wal_bytes_per_call_after', wal_a,
                                     'extra_wal_bytes', extra_wal, 'ms_per_wal_byte', ms_per_wal,
                                     'extra_ms', extra_write_ms),
        'index_scans', index_scans,
        'index_tuples_written',
            CASE WHEN a.action IN ('create_index', 'drop_index') THEN
                ((e->'table'->>'n_tup_ins')::float8 - (s->'table'->>'n_tup_ins')::float8)
                + ((e->'table'->>'n_tup_upd')::float8 - (s->'table'->>'n_tup_upd')::float8)
                - ((e->'table'->>'n_tup_hot_upd')::float8 - (s->'table'->>'n_tup_hot_upd')::float8) END,
        'dead_tuples', jsonb_build_object('before', (b->'table'->>'n_dead_tup')::bigint,
                                          'after_action', (s->'table'->>'n_dead_tup')::bigint,
                                          'at_close', (e->'table'->>'n_dead_tup')::bigint),
        'wal_bytes_cluster', pg_catalog.pg_wal_lsn_diff((e->>'wal_lsn')::pg_lsn, (s->>'wal_lsn')::pg_lsn),
        'net_ms', net_ms, 'base_ms', base_ms, 'storage_bytes', storage_bytes);

    -- the verdict: harm beyond perfopt.outcome_harm_pct of the target's time,
    -- help that is sure enough, or neither
    v_verdict := CASE WHEN na + wna = 0 OR base_ms IS NULL OR base_ms = 0 THEN 'inconclusive'
                    WHEN 100 * net_ms / base_ms < -harm_pct AND read_conf >= min_confidence THEN 'harmful'
                    WHEN net_ms > 0 AND read_conf >= min_confidence THEN 'helped'
                    WHEN read_conf >= min_confidence THEN 'no_effect'
                    ELSE 'inconclusive' END;
    -- a trial index stays only if it helped; any action that harmed is undone
    v_decision := CASE WHEN a.rolled_back_by IS NOT NULL THEN 'rolled_back'
                     WHEN a.rollback_statement IS NOT NULL
                          AND (v_verdict = 'harmful' OR (o.trial AND v_verdict <> 'helped'))
                          THEN CASE WHEN o.trial THEN 'dropped' ELSE 'rolled_back' END
                     ELSE 'kept' END;
    IF a.rolled_back_by IS NULL AND v_decision IN ('dropped', 'rolled_back')
       AND NOT EXISTS (SELECT FROM perfopt.action_log r
                        WHERE r.rollback_of = a.id AND r.outcome IN ('queued', 'running', 'succeeded')) THEN
        INSERT INTO perfopt.action_log (cycle_id, rule_id, rule_name, trigger_values, action, target,
                                        statement, dry_run, confidence, outcome, details, owner,
                                        target_owner, rollback_of, queued_at)
        VALUES (cycle_id, a.rule_id, a.rule_name,
                jsonb_build_object('reason', CASE WHEN o.trial AND v_verdict <> 'harmful'
                                                  THEN 'the trial did not show that it helped'
                                                  ELSE 'its measured effect was harmful' END,
                                   'verdict', v_verdict, 'benefit_pct', round((100 * net_ms / nullif(base_ms, 0))::numeric, 2)),
                'rollback', a.target, a.rollback_statement, false, 1, 'queued',
                jsonb_build_object('index', a.details->>'index'), a.owner, a.target_owner, a.id, at)
        RETURNING id INTO undo;
        UPDATE perfopt.action_log l SET check_after = NULL WHERE l.id = a.id;
    END IF;

    UPDATE perfopt.action_outcomes u
       SET after_end_figures = e, after_to = at, measured = m, verdict = v_verdict,
           decision = v_decision, rollback_id = undo, closed_at = at,
           confidence = read_conf,
           benefit_ms_per_hour = net_ms / hours,
           benefit_pct = 100 * net_ms / nullif(base_ms, 0),
           -- the time saved as cores busy, less what the index's storage costs
           monthly_saving = net_ms / hours * 730 / 3600000 * core_hour
                            - CASE WHEN v_decision = 'kept' THEN storage_bytes / 1e9 * gb_month ELSE 0 END
     WHERE u.action_id = o.action_id
    RETURNING * INTO o;
    RETURN o;
END
$$;

COMMENT ON FUNCTION perfopt.close_outcome(bigint, timestamptz, bigint) IS
'closes the window after an action: compares its target''s figures with the window before, judges, and queues the undo of a harmful action or of a trial index that did not help';

COMMENT ON TABLE perfopt.action_outcomes IS
'what each action did, measured: its target''s figures before and after, the net benefit in ms per hour and percent, its confidence, the verdict and what was done';

-- Success rates: per rule and per action type, how many ran, succeeded,
-- were measured, helped, and harmed
CREATE OR REPLACE VIEW perfopt.action_success_rates WITH (security_invoker = true) AS
    WITH a AS (
        SELECT l.rule_name, l.action, l.outcome, o.verdict, o.decision, o.benefit_ms_per_hour, o.monthly_saving
          FROM perfopt.action_log l
          LEFT JOIN perfopt.action_outcomes o ON o.action_id = l.id
         WHERE l.outcome IN ('succeeded', 'failed') AND l.action <> 'rollback')
    SELECT g.per, g.name, g.ran, g.succeeded, g.measured, g.helped, g.no_effect, g.harmful, g.undone,
           round(100.0 * g.succeeded / nullif(g.ran, 0), 1)::float8 AS ran_ok_pct,
           round(100.0 * g.helped / nullif(g.helped + g.no_effect + g.harmful, 0), 1)::float8 AS success_pct,
           g.measured_ms_saved_per_hour, g.measured_monthly_saving
      FROM (SELECT CASE WHEN GROUPING(a.rule_name) = 0 THEN 'rule' ELSE 'action' END AS per,
                   CASE WHEN GROUPING(a.rule_name) = 0 THEN a.rule_name ELSE a.action END AS name,
                   count(*) AS ran,
                   count(*) FILTER (WHERE a.outcome = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE a.verdict IS NOT NULL AND a.verdict <> 'measuring') AS measured,
                   count(*) FILTER (WHERE a.verdict = 'helped') AS helped,
                   count(*) FILTER (WHERE a.verdict = 'no_effect') AS no_effect,
                   count(*) FILTER (WHERE a.verdict = 'harmful') AS harmful,
                   count(*) FILTER (WHERE a.decision IN ('dropped', 'rolled_back')) AS undone,
                   sum(a.benefit_ms_per_hour) FILTER (WHERE a.decision = 'kept') AS measured_ms_saved_per_hour,
                   sum(a.monthly_saving) FILTER (WHERE a.decision = 'kept') AS measured_monthly_saving
              FROM a
             GROUP BY GROUPING SETS ((a.rule_name), (a.action))
            HAVING GROUPING(a.rule_name) = 1 OR a.rule_name IS NOT NULL) g;

COMMENT ON VIEW perfopt.action_success_rates IS
'per rule and per action type: actions that ran, succeeded, were measured, helped, had no effect, harmed, were undone; the share that helped of those judged; the measured savings of those kept';

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

    -- tables: table_health scores weighted by size (without its drop
    -- recommendations: the drop candidates were read once, above)
    SELECT round(sum(health_score * greatest(size_bytes, 8192)) / nullif(sum(greatest(size_bytes, 8192)), 0)) AS s,
           count(*) FILTER (WHERE health_score < 70) AS unhealthy, count(*) AS n
      INTO v FROM perfopt.table_health(false, NULL, false);
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

    -- actions: the share of measured actions that helped (it judges perfopt's
    -- advice, not the database, so it does not weigh in the overall score)
    SELECT count(*) FILTER (WHERE verdict IN ('helped', 'no_effect', 'harmful')) AS judged,
           count(*) FILTER (WHERE verdict = 'helped') AS helped,
           count(*) FILTER (WHERE verdict = 'harmful') AS harmful,
           count(*) FILTER (WHERE decision IN ('dropped', 'rolled_back')) AS undone,
           count(*) FILTER (WHERE verdict = 'measuring') AS measuring
      INTO v FROM perfopt.action_outcomes;
    parts := parts || jsonb_build_object('actions', jsonb_build_object(
        'score', coalesce(round(100.0 * v.helped / nullif(v.judged, 0)), 100)::int,
        'judged', v.judged, 'helped', v.helped, 'harmful', v.harmful, 'undone', v.undone,
        'measuring', v.measuring,
        'success_pct_per_action', (SELECT jsonb_object_agg(r.name, r.success_pct) FROM perfopt.action_success_rates r
                                    WHERE r.per = 'action' AND r.success_pct IS NOT NULL),
        'success_pct_per_rule', (SELECT jsonb_object_agg(r.name, r.success_pct) FROM perfopt.action_success_rates r
                                  WHERE r.per = 'rule' AND r.success_pct IS NOT NULL)));

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
        'capacity', 15, 'anomalies', 10, 'actions', 0));
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
RETURNS TABLE (priority int, category text, action text, target text, statement text, reason text,
               monthly_cost_doing float8, monthly_cost_not_doing float8, roi float8,
               risk text, risk_reason text, cost_reason text)
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH prices AS (
        SELECT pg_catalog.current_setting('perfopt.price_storage_gb_month')::float8 AS gb_month,
               pg_catalog.current_setting('perfopt.price_core_hour')::float8 AS core_hour,
               -- the workload's execution time per hour, of the statements the caller sees
               (SELECT sum(s.total_exec_time)
                       / greatest(extract(epoch FROM pg_catalog.now() - (SELECT i.stats_reset FROM perfopt.statement_stats_info i))
                                  / 3600, 1)
                  FROM perfopt.statement_stats s WHERE s.toplevel) AS ms_per_hour),
    -- each view once: table_health without its drop recommendations, which
    -- come from d (what table_health(false) adds: a table's candidates)
    d AS MATERIALIZED (SELECT * FROM perfopt.index_drop_candidates),
    th AS MATERIALIZED (SELECT * FROM perfopt.table_health(false, NULL, false)),
    th_items AS (
        SELECT h.*, f->>'action' AS item_action, f->>'statement' AS item_statement, f->>'reason' AS item_reason
          FROM th h CROSS JOIN LATERAL jsonb_array_elements(h.recommendations) f
         WHERE h.health_score < 80
        UNION ALL
        SELECT h.*, 'drop_index', d.drop_def, d.index_name::text || ' is ' || d.reason
          FROM th h JOIN d ON d.table_name = h.table_name
         WHERE h.health_score < 80),
    plan AS (
        SELECT 1 AS priority, 'capacity' AS category, c.action, c.resource || CASE WHEN c.entity <> '' THEN ' ' || c.entity ELSE '' END AS target,
               NULL::text AS statement, c.recommendation AS reason,
               k.monthly_cost_doing, k.monthly_cost_not_doing, k.risk, k.risk_reason, k.cost_reason
          FROM perfopt.capacity_forecasts c,
               perfopt.capacity_cost(c.resource, c.entity, c.current_value, c.capacity, coalesce(c.forecast_90d, c.forecast_30d),
                                     c.exhaustion_at, c.forecast_at, c.confidence) k
         WHERE c.exhaustion_at IS NOT NULL
        UNION ALL
        SELECT 2, 'index', 'create_index', r.table_name::text, r.index_def,
               pg_catalog.format('%s%% less planned cost for the workload: %s', round(r.benefit_pct::numeric, 1), r.reason),
               r.est_size_bytes / 1e9 * p.gb_month,
               r.benefit_pct / 100 * p.ms_per_hour * 730 / 3600000 * p.core_hour,
               k.risk, k.reason,
               'doing: the index''s estimated size at perfopt.price_storage_gb_month; not doing: the advisor''s '
               'estimated cut of the workload''s execution time per hour, as core-hours at perfopt.price_core_hour'
          FROM perfopt.recommend_indexes() r, prices p,
               perfopt.action_risk(r.index_def, r.est_size_bytes, least(1, greatest(0, r.benefit_pct / 10))) k
        UNION ALL
        SELECT 3, 'index', 'drop_index', d.index_name::text, d.drop_def, d.reason,
               0, d.size_bytes / 1e9 * p.gb_month, k.risk, k.reason,
               'doing: nothing to pay; not doing: the index''s size at perfopt.price_storage_gb_month (the writes it '
               'slows are not priced)'
          FROM d, prices p,
               perfopt.action_risk(d.drop_def, d.size_bytes,
                                   CASE WHEN d.reason LIKE 'invalid%' THEN 1 WHEN d.reason LIKE 'duplicate%' THEN 0.95
                                        WHEN d.reason LIKE 'redundant%' THEN 0.8 ELSE 0.6 END) k
        UNION ALL
        SELECT 4, 'table', h.item_action, h.table_name::text, h.item_statement, h.item_reason,
               0, coalesce(h.est_bloat_pct, 0) / 100 * h.size_bytes / 1e9 * p.gb_month, k.risk, k.reason,
               'doing: maintenance, not priced; not doing: the table''s estimated bloat at perfopt.price_storage_gb_month'
          FROM th_items h, prices p,
               perfopt.action_risk(h.item_statement, h.size_bytes, 1) k)
    SELECT plan.priority, plan.category, plan.action, plan.target, plan.statement, plan.reason,
           round(plan.monthly_cost_doing::numeric, 2)::float8, round(plan.monthly_cost_not_doing::numeric, 2)::float8,
           round(((plan.monthly_cost_not_doing - plan.monthly_cost_doing) / nullif(plan.monthly_cost_doing, 0))::numeric, 2)::float8,
           plan.risk, plan.risk_reason, plan.cost_reason
      FROM plan
     ORDER BY plan.priority, plan.target
$$;

COMMENT ON FUNCTION perfopt.optimization_plan() IS
'what perfopt would do now, most urgent first: capacity, indexes to create and drop, table fixes; each with the monthly cost of doing it and of not doing it, the ROI, and a risk level with its reason';

-- The risk of a statement perfopt would run: the lock it takes, whether it
-- can be undone, the size it works on, and how sure perfopt is of it
CREATE OR REPLACE FUNCTION perfopt.action_risk(statement text, size_bytes float8, confidence float8,
                                               OUT risk text, OUT reason text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s text := upper(coalesce(statement, ''));
    lock text;
    blocks boolean := false;
    undo text;
    undoable boolean := true;
BEGIN
    IF s ~ '^\s*CREATE (UNIQUE )?INDEX CONCURRENTLY' THEN
        lock := 'SHARE UPDATE EXCLUSIVE on the table while it builds: reads and writes go on';
        undo := 'undone by DROP INDEX CONCURRENTLY';
    ELSIF s ~ '^\s*CREATE (UNIQUE )?INDEX' THEN
        lock := 'SHARE on the table while it builds: writes wait';
        blocks := true;
        undo := 'undone by DROP INDEX';
    ELSIF s ~ '^\s*DROP INDEX CONCURRENTLY' THEN
        lock := 'SHARE UPDATE EXCLUSIVE: reads and writes go on';
        undo := 'undone by its CREATE INDEX, a build as long as the first';
    ELSIF s ~ '^\s*DROP INDEX' THEN
        lock := 'ACCESS EXCLUSIVE on the table: reads and writes wait';
        blocks := true;
        undo := 'undone by its CREATE INDEX, a build as long as the first';
    ELSIF s ~ '^\s*(VACUUM\s+FULL|VACUUM\s*\(.*FULL|CLUSTER)' THEN
        lock := 'ACCESS EXCLUSIVE on the table while it rewrites it: reads and writes wait';
        blocks := true;
        undo := 'changes no data, but its lock cannot be taken back once it waits';
    ELSIF s ~ '^\s*(VACUUM|ANALYZE)' THEN
        lock := 'SHARE UPDATE EXCLUSIVE: reads and writes go on';
        undo := 'changes no data: nothing to undo';
    ELSIF s ~ '^\s*REINDEX.*CONCURRENTLY' THEN
        lock := 'SHARE UPDATE EXCLUSIVE: reads and writes go on';
        undo := 'changes no data: nothing to undo';
    ELSIF s ~ '^\s*REINDEX' THEN
        lock := 'ACCESS EXCLUSIVE on the index, SHARE on the table: writes wait';
        blocks := true;
        undo := 'changes no data: nothing to undo';
    ELSIF s ~ '^\s*ALTER TABLE .* SET\s*\(' THEN
        lock := 'SHARE UPDATE EXCLUSIVE: reads and writes go on';
        undo := 'undone by setting the previous values back';
    ELSIF s = '' THEN
        lock := 'no lock: it adds or changes resources outside the database';
        undo := 'reversible by removing what was added';
    ELSE
        lock := 'a lock perfopt cannot tell from the statement';
        blocks := true;
        undoable := false;
        undo := 'perfopt knows no undo';
    END IF;
    risk := CASE WHEN (blocks AND coalesce(size_bytes, 0) > 1e9) OR (NOT undoable AND coalesce(size_bytes, 0) > 1e10) THEN 'high'
                 WHEN blocks OR NOT undoable OR coalesce(size_bytes, 0) > 1e9 OR coalesce(confidence, 0) < 0.5 THEN 'medium'
                 ELSE 'low' END;
    reason := pg_catalog.format('%s; %s; %s; confidence %s', lock, undo,
                                CASE WHEN size_bytes IS NULL THEN 'size unknown'
                                     ELSE pg_catalog.pg_size_pretty(size_bytes::bigint) END,
                                coalesce(round(confidence::numeric, 2)::text, 'unknown'));
END
$$;

COMMENT ON FUNCTION perfopt.action_risk(text, float8, float8) IS
'the risk of a statement (low, medium, high) and why: the lock it takes, whether it can be undone, its size, its confidence';


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

    -- 5. actions whose window after has passed are measured and judged; a
    -- harmful one, or a trial index that did not help, is undone
    FOR v IN SELECT o.action_id FROM perfopt.action_outcomes o
              WHERE o.verdict = 'measuring' AND o.after_from IS NOT NULL
                AND o.after_from + pg_catalog.current_setting('perfopt.outcome_window')::interval <= at
              ORDER BY o.action_id
    LOOP
        PERFORM perfopt.close_outcome(v.action_id, at, cycle_id);
    END LOOP;

    -- 6. the report
    SELECT * INTO previous FROM perfopt.optimization_reports ORDER BY created_at DESC, id DESC LIMIT 1;
    SELECT jsonb_object_agg(h.component, jsonb_build_object('score', h.score, 'status', h.status)
                            || h.details)
      INTO health FROM perfopt.health() h;
    -- the plan (as optimization_plan() makes it: keep the two alike), the
    -- largest tables and the drop candidates by reason (which the scrape
    -- reads from here) from one read of table_health and one of
    -- index_drop_candidates: each reads every table or index (table_health
    -- without its drop recommendations, which come from d)
    WITH th AS MATERIALIZED (SELECT * FROM perfopt.table_health(false, NULL, false)),
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
         WHERE h.health_score < 80
        UNION ALL
        SELECT 4, 'table', 'drop_index', h.table_name::text, d.drop_def, d.index_name::text || ' is ' || d.reason
          FROM th h JOIN d ON d.table_name = h.table_name
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
        'indexes_created', v.n, 'estimated_exec_ms_saved_per_hour', coalesce(v.saved, 0),
        'estimated_monthly_saving',
            round((coalesce(v.saved, 0) * 730 / 3600000
                   * pg_catalog.current_setting('perfopt.price_core_hour')::float8)::numeric, 2)));
    -- what was measured: the actions kept, their net benefit and its price
    SELECT count(*) AS n, sum(o.benefit_ms_per_hour) AS ms, sum(o.monthly_saving) AS money
      INTO v FROM perfopt.action_outcomes o
     WHERE o.decision = 'kept' AND o.verdict IN ('helped', 'no_effect', 'harmful');
    report := jsonb_set(report, '{savings}', (report->'savings') || jsonb_build_object(
        'measured_actions_kept', v.n,
        'measured_exec_ms_saved_per_hour', round(coalesce(v.ms, 0)::numeric, 1),
        'measured_monthly_saving', round(coalesce(v.money, 0)::numeric, 2)));
    report := report || jsonb_build_object(
        'outcomes', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                  'action_id', o.action_id, 'action', o.action, 'rule', o.rule_name,
                                  'target', o.target, 'trial', o.trial, 'verdict', o.verdict,
                                  'decision', o.decision, 'benefit_pct', round(o.benefit_pct::numeric, 2),
                                  'benefit_ms_per_hour', round(o.benefit_ms_per_hour::numeric, 1),
                                  'confidence', round(o.confidence::numeric, 3),
                                  'monthly_saving', round(o.monthly_saving::numeric, 2)) ORDER BY o.action_id)
                                FROM perfopt.action_outcomes o
                               WHERE o.closed_at > coalesce(previous.created_at, '-infinity')
                                 AND o.closed_at <= at), '[]'),
        'success_rates', coalesce((SELECT jsonb_agg(to_jsonb(r) ORDER BY r.per, r.name)
                                     FROM perfopt.action_success_rates r), '[]'));

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

-- outcomes: as the actions they measure
ALTER TABLE perfopt.action_outcomes ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS admins_and_monitors ON perfopt.action_outcomes;
CREATE POLICY admins_and_monitors ON perfopt.action_outcomes FOR SELECT
    USING (pg_has_role(current_user, 'perfopt_admin', 'MEMBER')
           OR pg_has_role(current_user, 'pg_monitor', 'MEMBER'));
DROP POLICY IF EXISTS own_tables ON perfopt.action_outcomes;
CREATE POLICY own_tables ON perfopt.action_outcomes FOR SELECT
    USING (target_owner IS NOT NULL AND pg_has_role(current_user, target_owner, 'MEMBER'));

-- A member of perfopt_admin sees and changes only the rules of roles whose
-- privileges it has (perfopt_admin's own, the seeded ones, included);
-- superusers all.  The cycle runs as the extension's owner and sees all.
ALTER TABLE perfopt.automation_rules ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_rules ON perfopt.automation_rules;
CREATE POLICY own_rules ON perfopt.automation_rules
    USING (pg_catalog.pg_has_role(CURRENT_USER, owner::pg_catalog.oid, 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role(CURRENT_USER, owner::pg_catalog.oid, 'USAGE'));
