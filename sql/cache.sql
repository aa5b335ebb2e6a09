-- The cache layer's SQL side, without Redis: strategies, key templates,
-- and the keys the trigger queues for each kind of change.  The worker of
-- this instance serves another database, so the outbox keeps what is
-- queued here and the test reads it.
SELECT name, memory_ttl, redis_ttl, priority FROM perfopt.cache_strategies ORDER BY priority DESC;

CREATE TABLE cache_leads (id int PRIMARY KEY, agent_id int, name text, "Region" text);

-- the oldest queued keys, as one line, taken out of the outbox
CREATE FUNCTION take_keys() RETURNS text
LANGUAGE sql AS $$
    WITH taken AS (DELETE FROM perfopt.cache_invalidations RETURNING id, keys, pattern)
    SELECT coalesce(string_agg(CASE WHEN pattern THEN 'pattern ' ELSE '' END || k.key, ', '
                               ORDER BY id, k.n), '(none)')
      FROM taken, unnest(keys) WITH ORDINALITY AS k(key, n)
$$;

-- templates are checked when the watch is made
SELECT perfopt.cache_watch('cache_leads', 'lead:{nope}');
SELECT perfopt.cache_watch('cache_leads', 'lead:{region}');
SELECT perfopt.cache_watch('cache_leads', '');
SELECT perfopt.cache_watch('cache_leads', 'lead:{id');
SELECT perfopt.cache_watch('cache_leads', 'lead:id}');
SELECT perfopt.cache_watch('cache_leads', 'lead:{}');
SELECT perfopt.cache_watch('cache_leads', 'lead:{{id}}');
SELECT perfopt.cache_watch('cache_leads', 'lead:{id}', 'no_such_strategy');
SELECT perfopt.cache_watch('no_such_table', 'lead:{id}');
CREATE VIEW cache_view AS SELECT 1 AS id;
SELECT perfopt.cache_watch('cache_view', 'lead:{id}');
SELECT perfopt.cache_invalidate('');
SELECT count(*) AS watches FROM perfopt.cache_watches;

SELECT perfopt.cache_watch('cache_leads', 'lead:{id}', 'user_data');
SELECT perfopt.cache_watch('cache_leads', 'agent:{agent_id}:leads');
SELECT perfopt.cache_watch('cache_leads', 'region:{Region}:{id}', 'analytics');
SELECT rel, key_template, strategy, columns FROM perfopt.cache_watches ORDER BY key_template;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'cache_leads'::regclass ORDER BY 1;

-- insert: the new row's keys; a NULL placeholder makes no key
INSERT INTO cache_leads VALUES (1, 7, 'Ann', 'eu'), (2, NULL, 'Bob', 'us');
SELECT take_keys();

-- update of columns no template names: each key once
UPDATE cache_leads SET name = 'Anne' WHERE id = 1;
SELECT take_keys();

-- update of key columns: the old row's keys and the new row's
UPDATE cache_leads SET agent_id = 8 WHERE id = 1;
SELECT take_keys();
UPDATE cache_leads SET id = 10, "Region" = 'apac' WHERE id = 1;
SELECT take_keys();
UPDATE cache_leads SET agent_id = 9 WHERE id = 2;
SELECT take_keys();

-- delete: the old row's keys
DELETE FROM cache_leads WHERE id = 10;
SELECT take_keys();

-- a rolled-back transaction queues nothing
BEGIN;
INSERT INTO cache_leads VALUES (3, 3, 'Cy', 'eu');
UPDATE cache_leads SET name = 'Bo' WHERE id = 2;
ROLLBACK;
SELECT take_keys();

-- savepoints: what a rolled-back savepoint queued goes with it
BEGIN;
INSERT INTO cache_leads VALUES (4, 4, 'Di', 'eu');
SAVEPOINT s1;
INSERT INTO cache_leads VALUES (5, 5, 'Ed', 'eu');
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO cache_leads VALUES (6, 6, 'Fa', 'eu');
RELEASE SAVEPOINT s2;
COMMIT;
SELECT take_keys();

-- one outbox row per transaction, whatever it changed
CREATE TABLE cache_agents (id int PRIMARY KEY, name text);
SELECT perfopt.cache_watch('cache_agents', 'agent:{id}');
SELECT tgname, tgconstraint <> 0 AS constraint_trigger, tgdeferrable, tginitdeferred
  FROM pg_trigger WHERE tgrelid = 'cache_agents'::regclass ORDER BY 1;
BEGIN;
INSERT INTO cache_agents VALUES (1, 'Al'), (2, 'Bea');
UPDATE cache_leads SET name = 'Di2' WHERE id = 4;
UPDATE cache_agents SET name = 'Al2' WHERE id = 1;
UPDATE cache_agents SET name = 'Al3' WHERE id = 1;
COMMIT;
SELECT count(*) AS rows, sum(cardinality(keys)) AS keys FROM perfopt.cache_invalidations;
SELECT take_keys();

-- SET CONSTRAINTS ... IMMEDIATE changes nothing: the keys are written at
-- commit, after the statements and the deferred triggers
BEGIN;
SET CONSTRAINTS ALL IMMEDIATE;
UPDATE cache_agents SET name = name || '!';
UPDATE cache_leads SET name = 'Di3' WHERE id = 4;
COMMIT;
SELECT take_keys();

-- a rolled-back subtransaction takes its keys along, the parent's stay
BEGIN;
UPDATE cache_agents SET name = 'p' WHERE id = 2;
SAVEPOINT s;
UPDATE cache_agents SET name = 'c' WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT take_keys();

-- PL/pgSQL exception blocks are subtransactions: a failed one queues nothing
DO $$
BEGIN
    FOR i IN 1..3 LOOP
        BEGIN
            UPDATE cache_agents SET name = 'loop' WHERE id = 1;
            INSERT INTO cache_leads VALUES (100 + i, 1, 'x', 'eu');
            IF i = 2 THEN
                RAISE EXCEPTION 'undo %', i;
            END IF;
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
    END LOOP;
END $$;
SELECT take_keys();

-- a deferred trigger of another table that changes a watched table at
-- COMMIT: its keys are in the transaction's row too
CREATE TABLE cache_audit (agent int);
CREATE FUNCTION cache_audit_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cache_agents SET name = 'audited' WHERE id = NEW.agent;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER cache_audit_touch AFTER INSERT ON cache_audit
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_audit_touch();
BEGIN;
INSERT INTO cache_audit VALUES (2);
UPDATE cache_leads SET name = 'Di4' WHERE id = 4;
SELECT count(*) AS rows_before_commit FROM perfopt.cache_invalidations;
COMMIT;
SELECT name FROM cache_agents WHERE id = 2;
SELECT take_keys();
DROP TABLE cache_audit;
DROP FUNCTION cache_audit_touch();

-- a writer without any privilege on perfopt's tables: its keys are
-- queued all the same (the trigger runs as the writer; the outbox row is
-- written without a permission check), and it cannot read them
CREATE ROLE cache_tenant;
GRANT UPDATE, SELECT ON cache_agents TO cache_tenant;
SET ROLE cache_tenant;
UPDATE cache_agents SET name = 'tenant' WHERE id = 2;
SELECT count(*) FROM perfopt.cache_invalidations;
RESET ROLE;
SELECT take_keys();
REVOKE ALL ON cache_agents FROM cache_tenant;
DROP ROLE cache_tenant;
SELECT perfopt.cache_unwatch('cache_agents');
DROP TABLE cache_agents;

-- pattern invalidation: transactional too
BEGIN;
SELECT perfopt.cache_invalidate('lead:*') > 0 AS queued;
ROLLBACK;
SELECT take_keys();
SELECT perfopt.cache_invalidate('agent:*:leads') > 0 AS queued;
SELECT take_keys();

-- TRUNCATE: each template as a SCAN pattern
TRUNCATE cache_leads;
SELECT take_keys();

-- the outbox view and cache_metrics list what is queued
INSERT INTO cache_leads VALUES (7, 7, 'Gu', 'eu');
SELECT key, pattern, age_ms >= 0 AS aged FROM perfopt.cache_outbox ORDER BY id;
SELECT outbox_depth, oldest_age_ms >= 0 AS aged FROM perfopt.cache_metrics;
SELECT take_keys();

-- a column a template names, dropped after the watch: the change is refused
ALTER TABLE cache_leads DROP COLUMN agent_id;
UPDATE cache_leads SET name = 'Gus';
SELECT perfopt.cache_unwatch('cache_leads', 'agent:{agent_id}:leads');
UPDATE cache_leads SET name = 'Gus';
SELECT take_keys();

-- unwatched: no trigger, nothing queued
SELECT perfopt.cache_unwatch('cache_leads');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'cache_leads'::regclass;
UPDATE cache_leads SET name = 'Gustav';
SELECT take_keys();

-- the trigger function refuses to be misused
CREATE TABLE cache_misuse (id int);
CREATE TRIGGER before_row BEFORE INSERT ON cache_misuse
    FOR EACH ROW EXECUTE FUNCTION perfopt.cache_trigger('x:{id}');
INSERT INTO cache_misuse VALUES (1);

-- cache_warm checks its arguments before it talks to Redis
SELECT perfopt.cache_warm('no_such_strategy', 'lead:{id}', 'SELECT 1 AS id');
SELECT perfopt.cache_warm('user_data', 'lead:{nope}', 'SELECT 1 AS id');
SELECT perfopt.cache_warm('user_data', 'lead:{id}', 'DELETE FROM cache_leads');
-- with no warmers registered, cache_rewarm has nothing to do (and needs no Redis)
SELECT perfopt.cache_rewarm();
SELECT job_name, command, schedule FROM perfopt.jobs WHERE job_name = 'cache_rewarm';

-- a partitioned table: the trigger reaches every partition
CREATE TABLE cache_parted (id int, region text) PARTITION BY LIST (region);
CREATE TABLE cache_parted_eu PARTITION OF cache_parted FOR VALUES IN ('eu');
SELECT perfopt.cache_watch('cache_parted', 'p:{region}:{id}');
INSERT INTO cache_parted VALUES (1, 'eu');
TRUNCATE cache_parted;
SELECT take_keys();
SELECT perfopt.cache_unwatch('cache_parted');
DROP TABLE cache_parted;

-- writers need no privilege to fire the trigger; only cache_watch attaches it
CREATE ROLE cache_writer;
CREATE TABLE cache_owned (id int PRIMARY KEY);
SELECT perfopt.cache_watch('cache_owned', 'owned:{id}');
GRANT INSERT ON cache_owned TO cache_writer;
GRANT CREATE ON SCHEMA public TO cache_writer;
SET ROLE cache_writer;
INSERT INTO cache_owned VALUES (1);
CREATE TABLE cache_mine (id int);
CREATE TRIGGER mine AFTER INSERT ON cache_mine
    FOR EACH ROW EXECUTE FUNCTION perfopt.cache_trigger('session:{id}');
RESET ROLE;
SELECT take_keys();
DROP TABLE cache_owned, cache_mine;
REVOKE CREATE ON SCHEMA public FROM cache_writer;
DROP ROLE cache_writer;

-- the password is for superusers only
CREATE ROLE cache_reader;
SET ROLE cache_reader;
SHOW perfopt.redis_password;
SELECT count(*) FROM pg_settings WHERE name = 'perfopt.redis_password';
-- and only a superuser registers a query the launcher will run again
RESET ROLE;
GRANT EXECUTE ON FUNCTION perfopt.cache_warm(text, text, text, boolean) TO cache_reader;
SET ROLE cache_reader;
SELECT perfopt.cache_warm('user_data', 'lead:{id}', 'SELECT 1 AS id', keep_warm => true);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION perfopt.cache_warm(text, text, text, boolean) FROM cache_reader;
DROP ROLE cache_reader;

-- keys from the types the trigger writes inline (int2, int4, int8, text,
-- varchar, a domain over int4) and through the output function (numeric,
-- bpchar, date): the same text as the type's output
CREATE DOMAIN cache_posint AS int CHECK (VALUE > 0);
CREATE TABLE cache_types (a int2, b int4, c int8, d text, e varchar(10), f cache_posint,
                          g numeric, h char(3), i date);
SELECT perfopt.cache_watch('cache_types', 't:{a}:{b}:{c}:{d}:{e}:{f}:{g}:{h}:{i}');
INSERT INTO cache_types VALUES (-32768, -2147483648, -9223372036854775808, 'x y', 'v', 1, -1.50, 'ab', '2026-12-02'),
                               (32767, 2147483647, 9223372036854775807, '', '', 2147483647, 0, 'abc', '2000-01-01'),
                               (0, 0, 0, repeat('long', 30), 'v w', 7, 1e20, 'x', NULL);
CREATE TEMP TABLE cache_types_keys AS SELECT take_keys() AS keys;
SELECT keys FROM cache_types_keys;
-- the same as each type's output, as SQL writes it (sorted bytewise, the
-- row with a NULL making no key)
SELECT keys = (SELECT string_agg(k, ', ' ORDER BY k COLLATE "C")
                 FROM (SELECT CASE WHEN num_nulls(a, b, c, d, e, f, g, h, i) = 0
                              THEN format('t:%s:%s:%s:%s:%s:%s:%s:%s:%s', a, b, c, d, e, f, g, h, i) END AS k
                         FROM cache_types) s) AS same_as_sql
  FROM cache_types_keys;
DROP TABLE cache_types_keys;
SELECT perfopt.cache_unwatch('cache_types');
DROP TABLE cache_types;
DROP DOMAIN cache_posint;

-- an index made by hand on the outbox that the direct insertion cannot
-- write (an expression, a predicate) sends the row through the executor's
-- insertion: the row is in every index all the same
CREATE TABLE cache_idx (id int, agent_id int);
SELECT perfopt.cache_watch('cache_idx', 'agent:{agent_id}:leads');
CREATE INDEX cache_outbox_first_key ON perfopt.cache_invalidations ((keys[1]));
CREATE INDEX cache_outbox_patterns ON perfopt.cache_invalidations (queued_at) WHERE pattern;
INSERT INTO cache_idx VALUES (20, 1);
SELECT perfopt.cache_invalidate('idx:*') > 0 AS queued;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM perfopt.cache_invalidations WHERE keys[1] = 'agent:1:leads';
SELECT count(*) AS by_first_key FROM perfopt.cache_invalidations WHERE keys[1] = 'agent:1:leads';
EXPLAIN (COSTS OFF) SELECT count(*) FROM perfopt.cache_invalidations WHERE pattern AND queued_at > '-infinity';
SELECT count(*) AS patterns FROM perfopt.cache_invalidations WHERE pattern AND queued_at > '-infinity';
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX perfopt.cache_outbox_first_key, perfopt.cache_outbox_patterns;
SELECT take_keys();
-- and without them, the direct insertion again
DELETE FROM cache_idx WHERE id = 20;
SELECT take_keys();
-- the ids come in blocks of 1,024 that one nextval reserves: commits take
-- the next ids of the block without touching the sequence, a row inserted
-- by hand (the column's default, nextval) takes a block of its own
SELECT increment_by FROM pg_sequences WHERE schemaname = 'perfopt' AND sequencename = 'cache_invalidations_id_seq';
SELECT last_value AS seq_before FROM perfopt.cache_invalidations_id_seq \gset
INSERT INTO cache_idx VALUES (21, 2);
INSERT INTO cache_idx VALUES (22, 3);
INSERT INTO perfopt.cache_invalidations (keys) VALUES ('{by-hand}');
SELECT (SELECT last_value FROM perfopt.cache_invalidations_id_seq) - :seq_before AS sequence_moved,
       max(id) FILTER (WHERE keys = '{agent:3:leads}') - max(id) FILTER (WHERE keys = '{agent:2:leads}') AS commits_apart,
       max(id) FILTER (WHERE keys = '{by-hand}') - :seq_before AS by_hand_after_before
  FROM perfopt.cache_invalidations;
SELECT take_keys();
-- ALTER SEQUENCE (here the same step again) makes the backends forget the
-- block: the next commit reserves a new one
ALTER SEQUENCE perfopt.cache_invalidations_id_seq INCREMENT BY 1024;
SELECT last_value AS seq_before FROM perfopt.cache_invalidations_id_seq \gset
INSERT INTO cache_idx VALUES (23, 4);
SELECT (SELECT last_value FROM perfopt.cache_invalidations_id_seq) - :seq_before AS sequence_moved,
       max(id) - :seq_before AS new_block_start
  FROM perfopt.cache_invalidations;
SELECT take_keys();
SELECT perfopt.cache_unwatch('cache_idx');
DROP TABLE cache_idx;

DROP TABLE cache_leads, cache_misuse;
DROP VIEW cache_view;
DROP FUNCTION take_keys();
