-- metric_correlations() and anomaly_groups.moved_first on recorded series:
-- a connection surge drives latency two samples later; two other series
-- move on their own.

-- Six hours of ten-second samples (2,160 points per series), made from one
-- seed: connections jitter by a few sessions around 20 and surge by 25 for
-- 6 to 15 samples at random starts; latency follows the connections of 20
-- seconds earlier, with noise of its own; IO waits surge at random starts
-- of their own; the database size grows steadily with noise (its level
-- correlates with any trend, its changes with nothing).
SELECT setseed(0.42);
CREATE TEMP TABLE recorded (ts timestamptz, metric text, entity text, value float8);
DO $$
DECLARE
    t0 timestamptz := '2026-03-01 00:00+00';
    conn float8[] := '{}';
    surge int := 0;
    io_surge int := 0;
    c float8;
BEGIN
    FOR i IN 1..2160 LOOP
        IF surge = 0 AND random() < 0.02 THEN surge := 6 + floor(random() * 10)::int; END IF;
        IF io_surge = 0 AND random() < 0.02 THEN io_surge := 6 + floor(random() * 10)::int; END IF;
        c := 20 + floor(random() * 5) - 2 + CASE WHEN surge > 0 THEN 25 ELSE 0 END;
        conn := conn || c;
        INSERT INTO recorded VALUES
            (t0 + i * interval '10 s', 'connections', 'total', c),
            (t0 + i * interval '10 s', 'latency_p95_ms', '',
             2 + 0.2 * coalesce(conn[i - 2], 20) + (random() + random() + random() - 1.5) * 0.6),
            (t0 + i * interval '10 s', 'waiting_sessions', 'IO',
             floor(random() * 3) + CASE WHEN io_surge > 0 THEN 8 ELSE 0 END),
            (t0 + i * interval '10 s', 'database_size_bytes', 'postgres',
             1e9 + i * 1e5 + random() * 2e5);
        surge := greatest(surge - 1, 0);
        io_surge := greatest(io_surge - 1, 0);
    END LOOP;
END $$;
INSERT INTO perfopt.metrics SELECT * FROM recorded;

-- their levels: the latency and the size both correlate with time, and so
-- with each other, though neither moves the other
SELECT corr(l.value, s.value) > 0.1 AS levels_correlate
  FROM recorded l JOIN recorded s USING (ts)
 WHERE l.metric = 'latency_p95_ms' AND s.metric = 'database_size_bytes';

-- their changes: the one pair found is connections, then latency 20 s later
SELECT metric_a, entity_a, metric_b, entity_b, lag, strength > 0.3 AS strong,
       changes > 2000 AS all_changes, p_value < 0.01 AS significant
  FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00');

-- the step is the series' own spacing; a coarser one finds the same pair,
-- now one step of 20 s apart
SELECT metric_a, metric_b, lag
  FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00', step => interval '20 s');

-- the lag is searched only within max_lag steps; the metrics compared can be
-- named; a strength to reach leaves out weaker pairs
SELECT count(*) AS pairs_at_lag_0
  FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00', max_lag => 0);
SELECT metric_a, metric_b, lag
  FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00',
                                   metrics => ARRAY['connections', 'latency_p95_ms']);
SELECT count(*) AS unrelated_pairs
  FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00',
                                   metrics => ARRAY['waiting_sessions', 'latency_p95_ms', 'database_size_bytes']);
SELECT count(*) AS pairs_at_0_99
  FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00', min_strength => 0.99);

-- an anomaly group names the series that moved first: latency was detected
-- before the connections, but the connections lead it; a group of series
-- that do not move together names the first detected
INSERT INTO perfopt.anomalies (anomaly_id, group_id, detected_at, metric, entity, value, score, severity)
VALUES (-1, -1, '2026-03-01 05:00+00', 'latency_p95_ms', '', 12, 9, 'warning'),
       (-2, -1, '2026-03-01 05:00:30+00', 'connections', 'total', 47, 5, 'warning'),
       (-3, -3, '2026-03-01 04:00+00', 'latency_p95_ms', '', 12, 9, 'warning'),
       (-4, -3, '2026-03-01 04:00:30+00', 'waiting_sessions', 'IO', 10, 5, 'warning');
SELECT group_id, series, moved_first FROM perfopt.anomaly_groups WHERE group_id < 0 ORDER BY group_id;
-- no such group, or none given: no series
SELECT perfopt.anomaly_group_first_mover(12345) IS NULL AS unknown_group,
       perfopt.anomaly_group_first_mover(NULL) IS NULL AS null_group;

-- bad input: an error with a hint, never a crash
\set VERBOSITY default
SELECT * FROM perfopt.metric_correlations(NULL);
SELECT * FROM perfopt.metric_correlations('2026-03-02 00:00+00', '2026-03-01 00:00+00');
SELECT * FROM perfopt.metric_correlations('2026-03-01 00:00+00', max_lag => 61);
SELECT * FROM perfopt.metric_correlations('2026-03-01 00:00+00', min_strength => 1.5);
SELECT * FROM perfopt.metric_correlations('2026-03-01 00:00+00', step => interval '0');
SELECT * FROM perfopt.metric_correlations('2026-03-01 00:00+00', metrics => ARRAY['connections', NULL]);
SELECT * FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00', step => interval '0.1 s');
-- bounded inputs: more series than one call compares
INSERT INTO perfopt.metrics
SELECT timestamptz '2026-04-01 00:00+00' + p * interval '10 s', 'many', 's' || s, random()
  FROM generate_series(1, 201) s, generate_series(1, 12) p;
SELECT * FROM perfopt.metric_correlations('2026-04-01 00:00+00', '2026-04-02 00:00+00');
SELECT count(*) >= 0 AS named_metrics_fit
  FROM perfopt.metric_correlations('2026-04-01 00:00+00', '2026-04-02 00:00+00', metrics => ARRAY['connections']);
\set VERBOSITY terse

-- a plain role may not read the metrics, nor correlate them; a dashboard's
-- role (perfopt_reader) may
CREATE ROLE corr_plain;
CREATE ROLE corr_reader IN ROLE perfopt_reader;
SET ROLE corr_plain;
SELECT count(*) FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00');
SELECT moved_first FROM perfopt.anomaly_groups WHERE group_id = -1;
SET ROLE corr_reader;
SELECT metric_a, metric_b, lag FROM perfopt.metric_correlations('2026-03-01 00:00+00', '2026-03-02 00:00+00');
SELECT moved_first FROM perfopt.anomaly_groups WHERE group_id = -1;
RESET ROLE;
DROP ROLE corr_plain, corr_reader;

DELETE FROM perfopt.anomalies WHERE group_id < 0;
DELETE FROM perfopt.metrics WHERE ts >= '2026-03-01 00:00+00' AND ts < '2026-04-02 00:00+00';
