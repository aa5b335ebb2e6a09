-- analyze_query: bad input gets a clear error with a SQLSTATE, never a crash

-- NULL in, NULL out: one row of NULLs
SELECT * FROM perfopt.analyze_query(NULL);
SELECT (perfopt.analyze_query(NULL)).pattern IS NULL AS null_out;

-- a syntax error: 42601, with the position in the analyzed statement
SELECT * FROM perfopt.analyze_query('SELECT id FRM leads');
SELECT * FROM perfopt.analyze_query(E'SELECT id\n  FROM leads\n WHERE id = = 1');
SELECT try_analyze('SELEC 1');

-- an empty string, blanks or only a comment: 22023
SELECT * FROM perfopt.analyze_query('');
SELECT try_analyze('   ');
SELECT try_analyze('-- just a comment');
SELECT try_analyze(';');

-- several statements: 42601, pointing at the second one
SELECT * FROM perfopt.analyze_query('SELECT 1; SELECT 2');
SELECT try_analyze('SELECT 1; SELECT 2; SELECT 3');
-- one statement with a trailing semicolon is fine
SELECT try_analyze('SELECT 1;');

-- what running the statement would raise
SELECT try_analyze('SELECT * FROM no_such_table');
SELECT try_analyze('SELECT no_such_column FROM leads');
SELECT try_analyze('SELECT no_such_function(1)');
SELECT try_analyze('SELECT 1 + ''x''');
SELECT try_analyze('SELECT $0');
SELECT try_analyze('INSERT INTO leads (id) VALUES (1, 2)');

-- a caller who may not read a table gets the error running it would give
CREATE ROLE aq_reader;
GRANT SELECT ON agents TO aq_reader;
GRANT SELECT (id, state) ON leads TO aq_reader;
SET ROLE aq_reader;
SELECT * FROM perfopt.analyze_query('SELECT * FROM quotes');
SELECT try_analyze('SELECT email FROM leads');
SELECT try_analyze('SELECT id FROM leads WHERE state = ''TX''');
SELECT try_analyze('SELECT name FROM agents');
SELECT try_analyze('DELETE FROM agents WHERE id = 1');
SELECT try_analyze('SELECT 1 FROM agents a WHERE EXISTS (SELECT 1 FROM quotes q WHERE q.id = a.id)');
RESET ROLE;
-- through a view, the view's owner needs the rights on its tables
CREATE VIEW agent_names AS SELECT id, name FROM agents;
GRANT SELECT ON agent_names TO aq_reader;
REVOKE SELECT ON agents FROM aq_reader;
SET ROLE aq_reader;
SELECT try_analyze('SELECT name FROM agent_names');
SELECT try_analyze('SELECT name FROM agents');
RESET ROLE;
DROP VIEW agent_names;
REVOKE ALL ON leads FROM aq_reader;
DROP ROLE aq_reader;

-- statements nested too deep give an error, not a crash
SELECT try_analyze('SELECT ' || repeat('(', 10000) || '1' || repeat(')', 10000)) AS deep_parentheses;
SELECT try_analyze(repeat('SELECT * FROM (', 300) || 'SELECT 1' || repeat(') s', 300)) AS deep_subqueries;

-- in a transaction that already failed, like any statement
BEGIN;
SELECT 1/0;
SELECT * FROM perfopt.analyze_query('SELECT 1');
ROLLBACK;

-- an error inside analysis leaves the session usable, with nothing held
BEGIN;
SELECT try_analyze('SELECT $1 + $2 FROM leads WHERE no_such_column = $3');
SELECT count(*) AS locks_on_leads FROM pg_locks
 WHERE relation = 'leads'::regclass AND pid = pg_backend_pid();
COMMIT;
