-- metrics storage, retention, jobs' table and the injectable clock; the
-- launcher itself is tested in test/t/005_workers.pl

-- the clock jobs use: real unless overridden
SELECT abs(extract(epoch FROM perfopt.now() - clock_timestamp())) < 60 AS real_time;
SET perfopt.now_override = '2020-03-01 12:00:00+00';
SELECT perfopt.now() = '2020-03-01 12:00:00+00' AS overridden;
RESET perfopt.now_override;

-- record_metrics: a daily partition per UTC day, the latest value per metric
SELECT perfopt.record_metrics('2020-03-01 10:00+00', '{cpu,cpu,disk}', '{a,b,""}', '{1,2,3}');
SELECT perfopt.record_metrics('2020-03-01 10:00:10+00', '{cpu}', '{a}', '{4}');
SELECT tableoid::regclass AS partition, count(*)
  FROM perfopt.metrics GROUP BY 1 ORDER BY 1;
SELECT metric, entity, value, ts FROM perfopt.live_metrics
 WHERE ts < '2021-01-01' ORDER BY metric, entity;
-- an older value does not replace a newer one
SELECT perfopt.record_metrics('2020-03-01 09:00+00', '{cpu}', '{a}', '{0}');
SELECT value FROM perfopt.live_metrics WHERE metric = 'cpu' AND entity = 'a';

-- bad input: a clear error
SELECT perfopt.record_metrics('2020-03-01 10:00+00', '{cpu,cpu}', '{a}', '{1,2}');
SELECT perfopt.record_metrics(NULL, '{cpu}', '{a}', '{1}');

-- rows for a day whose partition cannot be made go to the default partition
INSERT INTO perfopt.metrics VALUES ('2020-02-01 10:00+00', 'cpu', 'a', 5);
SELECT perfopt.record_metrics('2020-02-01 11:00+00', '{cpu}', '{a}', '{6}');
SELECT tableoid::regclass AS partition, count(*)
  FROM perfopt.metrics WHERE ts < '2020-02-02' GROUP BY 1;

-- retention: whole days older than perfopt.retention go, newer ones stay
SHOW perfopt.retention;
SELECT * FROM perfopt.apply_retention('2020-03-20 00:00+00');
SELECT min(ts), count(*) FROM perfopt.metrics WHERE ts < '2021-01-01';
SELECT * FROM perfopt.apply_retention('2020-04-02 00:00+00');
SELECT count(*) FROM perfopt.metrics WHERE ts < '2021-01-01';
SELECT count(*) FROM perfopt.live_metrics WHERE ts < '2021-01-01';
-- the partitions of that day and the next were made ahead
SELECT relname FROM pg_class
 WHERE relname IN ('metrics_20200402', 'metrics_20200403') ORDER BY 1;
-- shorter than a day is refused: data goes by whole days
ALTER SYSTEM SET perfopt.retention = '1h';

-- job runs are kept for perfopt.job_history_retention
INSERT INTO perfopt.job_runs (job_name, started_at, status)
VALUES ('old', '2020-01-01', 'succeeded'), ('new', '2020-04-01', 'succeeded');
SELECT deleted_runs FROM perfopt.apply_retention('2020-04-02 00:00+00', keep_runs => '7 days');
SELECT job_name FROM perfopt.job_runs WHERE job_name IN ('old', 'new');
DELETE FROM perfopt.job_runs;

-- the built-in jobs, and what a job definition must hold
SELECT job_name, command, schedule, enabled, builtin FROM perfopt.jobs ORDER BY 1;
INSERT INTO perfopt.jobs (job_name, command, schedule) VALUES ('fast', 'SELECT 1', '10 ms');
INSERT INTO perfopt.jobs (job_name, command) VALUES ('no_command', NULL);

-- query_latency: 50 calls of about 1 ms, 45 of 20 ms and 5 of 100 ms
SELECT perfopt.query_latency_reset() IS NOT NULL AS reset;
PREPARE nap(float8) AS SELECT pg_sleep($1);
\set ECHO none
\o /dev/null
SELECT format('EXECUTE nap(%s)', CASE WHEN i <= 50 THEN 0.001 WHEN i <= 95 THEN 0.02 ELSE 0.1 END)
  FROM generate_series(1, 100) i \gexec
\o
\set ECHO all
SELECT calls, p50_ms BETWEEN 1 AND 20 AS p50_in_first,
       p95_ms BETWEEN 20 AND 100 AS p95_in_second,
       p99_ms >= 100 AS p99_in_third,
       max_ms >= 100 AS max_ok, min_ms >= 1 AS min_ok
  FROM perfopt.query_latency WHERE query = 'PREPARE nap(float8) AS SELECT pg_sleep($1)';

-- only superusers reset or record
CREATE ROLE perfopt_monitor IN ROLE pg_monitor;
SET ROLE perfopt_monitor;
SELECT count(*) >= 0 AS can_read FROM perfopt.live_metrics;
SELECT perfopt.query_latency_reset();
RESET ROLE;
DROP ROLE perfopt_monitor;
