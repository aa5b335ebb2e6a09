-- routing: tables, indexes and seeds (instance routing and scaling advice)
-- Run once, by CREATE EXTENSION; an update changes them in sql/updates/.

------------------------------------------------------------------------------
-- The registry: the durable copy of what route() reads from shared memory

CREATE TABLE perfopt.instance_registry (
    name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    kind text NOT NULL CHECK (kind IN ('postgresql', 'tcp')),
    address text NOT NULL CHECK (length(address) BETWEEN 1 AND 255),
    weight int NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    draining boolean NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL DEFAULT now()
);

SELECT pg_catalog.pg_extension_config_dump('perfopt.instance_registry', '');

CREATE TABLE perfopt.scaling_advice (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT perfopt.now(),
    metric text NOT NULL,
    value float8 NOT NULL,
    target float8 NOT NULL,
    predictive boolean NOT NULL,
    current_instances int NOT NULL,
    raw_desired int NOT NULL,
    desired_instances int NOT NULL,
    reason text NOT NULL
);
