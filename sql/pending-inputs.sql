-- pending-inputs.sql: SQL of the "inputs" slice of issue 14, to move into
-- the 0.10.0 install script and the 0.9.0 -> 0.10.0 upgrade script.
--
-- Every C function now checks the NULLs of the arguments it reads, so none
-- of them crashes on a NULL even before this runs; the ones whose NULL
-- arguments mean something (a default, "no table") stay non-strict.

-- detect_anomalies() reads perfopt.anomaly_threshold when its threshold is
-- NULL: a setting, so it is STABLE, not IMMUTABLE
ALTER FUNCTION perfopt.detect_anomalies(timestamptz[], float8[], float8) STABLE;
