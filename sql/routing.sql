-- Routing's argument errors, the registry without a health checker (the
-- checker of this instance serves another database, so instances here stay
-- down), the HPA rule and the autoscaling advice's stabilization and
-- cooldown on an injected clock.
\set VERBOSITY default

-- nothing registered: no instance can take traffic
SELECT * FROM perfopt.route();
SELECT * FROM perfopt.route(NULL, 'random');

-- registration is checked
SELECT perfopt.register_instance('a', 'mysql', '127.0.0.1:3306');
SELECT perfopt.register_instance('', 'tcp', '127.0.0.1:80');
SELECT perfopt.register_instance('a', 'tcp', 'localhost');
SELECT perfopt.register_instance('a', 'tcp', '127.0.0.1:80', 0);
SELECT perfopt.register_instance('a', 'tcp', '127.0.0.1:80', NULL);
SELECT perfopt.deregister_instance('nobody');
SELECT perfopt.drain_instance('nobody');

-- a registered instance is down until its checks succeed, and takes no traffic
SELECT perfopt.register_instance('a', 'tcp', '127.0.0.1:1', 3);
SELECT perfopt.register_instance('b', 'postgresql', 'host=127.0.0.1 port=1 dbname=postgres');
SELECT name, kind, weight, state, last_check FROM perfopt.instances;
SELECT * FROM perfopt.route('session-1');
SELECT perfopt.drain_instance('a');
SELECT name, state FROM perfopt.instances;
SELECT perfopt.register_instance('a', 'tcp', '127.0.0.1:2', 2);
SELECT name, address, weight, state FROM perfopt.instances;
SELECT perfopt.deregister_instance('a');
SELECT perfopt.deregister_instance('b');
SELECT count(*) FROM perfopt.instances;

-- the simulator checks its arguments, and sends every request somewhere
SELECT * FROM perfopt.simulate_requests(0, 'adaptive');
SELECT * FROM perfopt.simulate_requests(100, 'adaptive', 5);
SELECT * FROM perfopt.simulate_requests(100, 'nope');
SELECT sum(requests) FILTER (WHERE instance <> 'all') = 5000 AS all_routed,
       bool_and(utilization BETWEEN 0 AND 1) AS utilization_in_range
  FROM perfopt.simulate_requests(5000, 'round_robin');

-- the HPA rule: 3 instances at 90 against 70 need ceil(3 * 90 / 70) = 4;
-- within the 10% tolerance nothing changes; clamped to the bounds
SELECT perfopt.hpa_desired_replicas(3, 90, 70) AS up,
       perfopt.hpa_desired_replicas(3, 72, 70) AS within_tolerance,
       perfopt.hpa_desired_replicas(4, 20, 70) AS down,
       perfopt.hpa_desired_replicas(3, 900, 70, 0.1, 1, 5) AS clamped;
SELECT perfopt.hpa_desired_replicas(3, 90, 0);
SELECT perfopt.hpa_desired_replicas(3, 90, 70, 0.1, 5, 2);

-- advice: errors, then up, cooldown, down held by the stabilization window
SELECT perfopt.recommend_scaling('no_such_metric', 70);
SELECT perfopt.recommend_scaling('cpu', 0, 50, 2);
SET perfopt.now_override = '2026-01-01 12:00:00+00';
SELECT current_instances, raw_desired, desired_instances, reason
  FROM perfopt.recommend_scaling('cpu', 70, current_value => 90, current_instances => 3);
SET perfopt.now_override = '2026-01-01 12:01:00+00';
SELECT current_instances, raw_desired, desired_instances, reason
  FROM perfopt.recommend_scaling('cpu', 70, current_value => 95, current_instances => 4);
SET perfopt.now_override = '2026-01-01 12:04:00+00';
SELECT current_instances, raw_desired, desired_instances, reason
  FROM perfopt.recommend_scaling('cpu', 70, current_value => 20, current_instances => 4);
SET perfopt.now_override = '2026-01-01 12:10:00+00';
SELECT current_instances, raw_desired, desired_instances, reason
  FROM perfopt.recommend_scaling('cpu', 70, current_value => 20, current_instances => 4);

-- predictive: a load rising 1 a minute for two hours, now at 65 against a
-- target of 70, is within tolerance now; the forecast of the next 30
-- minutes is above it, so the predictive advice adds an instance
INSERT INTO perfopt.metrics (ts, metric, entity, value)
SELECT timestamptz '2026-01-02 12:00:00+00' - g * interval '1 minute', 'test_load', '', 65 - g
  FROM generate_series(0, 120) g;
SET perfopt.now_override = '2026-01-02 12:00:00+00';
SELECT raw_desired, desired_instances
  FROM perfopt.recommend_scaling('test_load', 70, current_value => 65, current_instances => 4);
SELECT raw_desired > 4 AS scales_up_ahead, value > 65 AS forecast_above_now, reason LIKE '%forecast peak%' AS says_why
  FROM perfopt.recommend_scaling('test_load', 70, current_value => 65, current_instances => 4,
                                 predictive => true, horizon => '30 minutes');
RESET perfopt.now_override;
DELETE FROM perfopt.metrics WHERE metric = 'test_load';
DELETE FROM perfopt.scaling_advice;
