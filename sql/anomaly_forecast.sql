-- detect_anomalies() and forecast() from psql; the jobs that run them over
-- perfopt.metrics are tested in test/t/007_anomaly_capacity.pl

-- a series: five days of five-minute points on a daily cycle, a spike at
-- the end of the fourth day, then a level shift on the fifth
CREATE TEMP TABLE s AS
SELECT timestamptz '2026-01-05 00:00+00' + g * interval '5 minutes' AS ts,
       100 + 20 * sin(2 * pi() * g / 288) + ((g * 7919) % 13 - 6) / 3.0
         + CASE WHEN g = 1100 THEN 60 ELSE 0 END
         + CASE WHEN g >= 1300 THEN 40 ELSE 0 END AS value
  FROM generate_series(0, 1439) g;

-- the spike and the shift are found, each once, and nothing else after the
-- warm-up; reason says why
SELECT ts, round(value::numeric, 1) AS value, round(expected::numeric, 1) AS expected,
       score > 2.5 AS above, reason
  FROM perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY ts) FROM s),
                                (SELECT array_agg(value ORDER BY ts) FROM s))
 WHERE is_anomaly;

-- causal: the verdicts on a prefix are those on the whole series
SELECT count(*) AS differing
  FROM perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY ts) FROM s),
                                (SELECT array_agg(value ORDER BY ts) FROM s)) whole
  JOIN perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY ts) FROM s WHERE ts < '2026-01-08'),
                                (SELECT array_agg(value ORDER BY ts) FROM s WHERE ts < '2026-01-08')) part
    USING (ts)
 WHERE whole.expected IS DISTINCT FROM part.expected
    OR whole.score IS DISTINCT FROM part.score
    OR whole.is_anomaly <> part.is_anomaly;

-- the threshold: left out, it is perfopt.anomaly_threshold; the spike is
-- about 30 robust deviations out, the shift less
SET perfopt.anomaly_threshold = 50;
SELECT (SELECT count(*) FILTER (WHERE is_anomaly)
          FROM perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY ts) FROM s),
                                        (SELECT array_agg(value ORDER BY ts) FROM s))) AS at_setting_50,
       (SELECT count(*) FILTER (WHERE is_anomaly)
          FROM perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY ts) FROM s),
                                        (SELECT array_agg(value ORDER BY ts) FROM s), 20)) AS at_20,
       (SELECT count(*) FILTER (WHERE is_anomaly)
          FROM perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY ts) FROM s),
                                        (SELECT array_agg(value ORDER BY ts) FROM s), 2.5)) AS at_2_5;
RESET perfopt.anomaly_threshold;

-- nulls are gaps; a series of one point or none is fine
SELECT count(*), count(value), count(expected)
  FROM perfopt.detect_anomalies(ARRAY['2026-01-01'::timestamptz, '2026-01-02', '2026-01-03'],
                                ARRAY[1, NULL, 3]::float8[]);
SELECT count(*) FROM perfopt.detect_anomalies('{}', '{}');

-- real timestamps.  Out of order: the points are judged in time order and
-- the rows come back in input order, with the verdicts of the sorted series
CREATE TEMP TABLE shuffled AS
SELECT array_agg(ts ORDER BY md5(ts::text)) AS times,
       array_agg(value ORDER BY md5(ts::text)) AS vals FROM s;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE d.ts IS DISTINCT FROM t.ts) AS out_of_place,
       count(*) FILTER (WHERE d.score IS DISTINCT FROM o.score
                           OR d.is_anomaly <> o.is_anomaly) AS differing,
       count(*) FILTER (WHERE d.is_anomaly) AS anomalies
  FROM shuffled,
       unnest(shuffled.times) WITH ORDINALITY t(ts, i)
  JOIN perfopt.detect_anomalies(shuffled.times, shuffled.vals) WITH ORDINALITY
       d(ts, value, expected, score, is_anomaly, reason, i) USING (i)
  JOIN perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY ts) FROM s),
                                (SELECT array_agg(value ORDER BY ts) FROM s)) o
       ON o.ts = d.ts;

-- one step back (a clock corrected) and repeated times (the hour a clock
-- falls back): one row per point, no error, the spike and the shift still
-- found once each
SELECT count(*) AS rows, count(*) FILTER (WHERE is_anomaly) AS anomalies,
       min(ts) FILTER (WHERE is_anomaly) AS first, max(ts) FILTER (WHERE is_anomaly) AS last
  FROM perfopt.detect_anomalies(
         (SELECT array_agg(ts ORDER BY k) FROM
            (SELECT ts, CASE WHEN ts = '2026-01-06 12:00+00' THEN 1000 ELSE 0 END
                        + extract(epoch FROM ts) AS k FROM s
             UNION ALL
             SELECT ts, extract(epoch FROM ts) + 1 FROM s
              WHERE ts BETWEEN '2026-01-07 01:00+00' AND '2026-01-07 02:00+00') x),
         (SELECT array_agg(value ORDER BY k) FROM
            (SELECT value, CASE WHEN ts = '2026-01-06 12:00+00' THEN 1000 ELSE 0 END
                           + extract(epoch FROM ts) AS k FROM s
             UNION ALL
             SELECT value, extract(epoch FROM ts) + 1 FROM s
              WHERE ts BETWEEN '2026-01-07 01:00+00' AND '2026-01-07 02:00+00') x));

-- a NULL or infinite time gives a row without a verdict and changes nothing
SELECT ts, value, expected, score, is_anomaly
  FROM perfopt.detect_anomalies(ARRAY['2026-01-01', NULL, 'infinity', '2026-01-02']::timestamptz[],
                                ARRAY[1, 2, 3, 4]::float8[]);
SELECT count(*) AS rows, count(*) FILTER (WHERE is_anomaly) AS anomalies
  FROM perfopt.detect_anomalies((SELECT array_agg(ts ORDER BY ts) || ARRAY[NULL, '-infinity']::timestamptz[] FROM s),
                                (SELECT array_agg(value ORDER BY ts) || ARRAY[0, 1e9]::float8[] FROM s));

-- gaps: a day without points, and every tenth value NULL; the spike and
-- the shift are still found
SELECT ts, score > 2.5 AS above
  FROM perfopt.detect_anomalies(
         (SELECT array_agg(ts ORDER BY ts) FROM s WHERE ts NOT BETWEEN '2026-01-07' AND '2026-01-08'),
         (SELECT array_agg(CASE WHEN extract(minute FROM ts) = 50 AND extract(hour FROM ts)::int % 2 = 0
                                THEN NULL ELSE value END ORDER BY ts)
            FROM s WHERE ts NOT BETWEEN '2026-01-07' AND '2026-01-08'))
 WHERE is_anomaly;

-- bad input: a clear error
SELECT * FROM perfopt.detect_anomalies(ARRAY[now()], ARRAY[1, 2]::float8[]);
SELECT * FROM perfopt.detect_anomalies(ARRAY[now()], ARRAY[1]::float8[], 0);
SELECT * FROM perfopt.detect_anomalies(ARRAY[now()], ARRAY[1]::float8[], 'NaN');
SELECT * FROM perfopt.detect_anomalies('{{2026-01-01,2026-01-02}}', '{{1,2}}');

-- forecast: the daily cycle goes on, one row per step over the horizon;
-- the step is inferred (five minutes); the interval holds the baseline
SELECT count(*) AS rows, min(ts) AS first, max(ts) AS last,
       bool_and(optimistic <= baseline AND baseline <= pessimistic) AS ordered,
       min(confidence) = max(confidence) AS one_confidence
  FROM perfopt.forecast((SELECT array_agg(ts ORDER BY ts) FROM s WHERE ts < '2026-01-09'),
                        (SELECT array_agg(value ORDER BY ts) FROM s WHERE ts < '2026-01-09'),
                        interval '1 day');

-- a straight line is continued; a series that was never negative is not
-- forecast below zero
SELECT round(baseline) AS baseline, confidence > 90 AS confident
  FROM perfopt.forecast((SELECT array_agg(timestamptz '2026-01-01' + g * interval '1 hour') FROM generate_series(0, 999) g),
                        (SELECT array_agg(10.0 * g) FROM generate_series(0, 999) g),
                        interval '3 hours');
SELECT bool_and(baseline >= 0 AND optimistic >= 0) AS never_negative
  FROM perfopt.forecast((SELECT array_agg(timestamptz '2026-01-01' + g * interval '1 hour') FROM generate_series(0, 199) g),
                        (SELECT array_agg(greatest(0, 1000 - 10.0 * g)) FROM generate_series(0, 199) g),
                        interval '30 days');

-- ten-second samples are averaged to five minutes
SELECT count(*) AS rows, max(ts) - min(ts) AS span
  FROM perfopt.forecast((SELECT array_agg(timestamptz '2026-01-01' + g * interval '10 s') FROM generate_series(0, 8639) g),
                        (SELECT array_agg((g % 7)::float8) FROM generate_series(0, 8639) g),
                        interval '1 hour');

-- bad input: a clear error
SELECT * FROM perfopt.forecast(ARRAY[now()], ARRAY[1]::float8[], interval '1 day');
SELECT * FROM perfopt.forecast(ARRAY[now() - interval '1 h', now()], ARRAY[1, 2]::float8[], interval '-1 day');
SELECT * FROM perfopt.forecast(ARRAY[now() - interval '1 h', now()], ARRAY[1, 2]::float8[], interval '1 day', interval '0');
SELECT * FROM perfopt.forecast(ARRAY[now() - interval '1 h', now()], ARRAY[NULL, 'NaN']::float8[], interval '1 day');
SELECT * FROM perfopt.forecast(ARRAY[now() - interval '1 h', now()], ARRAY[1, 2]::float8[], interval '100 years', interval '1 minute');
SELECT * FROM perfopt.forecast('{}', '{}', interval '1 day');
