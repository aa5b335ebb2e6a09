-- perfopt 1.0.0 -> 1.1.0: what the update changes in tables.  The functions,
-- views and grants are re-created from sql/definitions/ after this.
SELECT perfopt.lock_for_update();

-- issue 19: detect_anomalies() and perfopt.anomalies say why a point was
-- reported (a reason column); the function's result type changes, so it is
-- dropped here and made again from sql/definitions/50_models.sql
ALTER TABLE perfopt.anomalies ADD COLUMN reason text;
DROP FUNCTION perfopt.detect_anomalies(timestamptz[], float8[], float8);
