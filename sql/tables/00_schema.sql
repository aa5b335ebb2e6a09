-- schema: the schema and the clock (made first: table defaults use the clock)
-- Run once, by CREATE EXTENSION.

-- CREATE SCHEMA fails if a schema of that name exists: perfopt never adopts
-- one that someone else made and could have filled
CREATE SCHEMA perfopt;

-- The clock comes first: table defaults use it
CREATE FUNCTION perfopt.now() RETURNS timestamptz
AS 'MODULE_PATHNAME', 'perfopt_now_sql'
LANGUAGE C VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION perfopt.now() IS
'the time perfopt''s jobs take as now: the real time unless perfopt.now_override is set';
