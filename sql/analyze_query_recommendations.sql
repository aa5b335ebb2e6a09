-- analyze_query: every recommendation code, each where it applies and
-- where it must not

-- select_star: SELECT * of a wide table (leads has 17 columns), not of a
-- narrow one (campaigns has 5)
SELECT rec_codes('SELECT * FROM leads WHERE state = ''TX''');
SELECT rec_codes('SELECT * FROM campaigns');
SELECT rec_codes('SELECT l.* FROM leads l JOIN agents a ON a.id = l.agent_id WHERE a.id = 3');
-- a star inside EXISTS returns nothing and is not flagged
SELECT rec_codes('SELECT id FROM agents a WHERE EXISTS (SELECT * FROM leads l WHERE l.id = a.id)');

-- update_without_where / delete_without_where
SELECT rec_codes('UPDATE leads SET score = 0');
SELECT rec_codes('DELETE FROM leads');
SELECT rec_codes('UPDATE leads SET score = 0 WHERE id = 1');
SELECT rec_codes('DELETE FROM leads WHERE id = 1');
SELECT recommendations->0->>'message' AS message
  FROM perfopt.analyze_query('DELETE FROM quotes');

-- missing_join_condition: tables that no condition links
SELECT rec_codes('SELECT l.id, a.name FROM leads l, agents a WHERE l.state = ''TX''');
SELECT rec_codes('SELECT l.id FROM leads l CROSS JOIN campaigns c');
SELECT rec_codes('UPDATE leads l SET score = 0 FROM agents a WHERE l.id = 5');
SELECT recommendations->0->>'message' AS message
  FROM perfopt.analyze_query('SELECT 1 FROM leads l JOIN agents a ON a.id = l.agent_id, campaigns c, quotes q WHERE q.lead_id = l.id');
-- linked directly, through another table, or by a subquery: no remark
SELECT rec_codes('SELECT 1 FROM leads l, agents a WHERE a.id = l.agent_id');
SELECT rec_codes('SELECT 1 FROM agents a, leads l, quotes q WHERE l.agent_id = a.id AND q.lead_id = l.id');
SELECT rec_codes('SELECT 1 FROM agents a, campaigns c WHERE EXISTS (SELECT 1 FROM leads l WHERE l.agent_id = a.id AND l.campaign_id = c.id)');
SELECT rec_codes('SELECT 1 FROM leads l JOIN agents a USING (id)');
-- a one-row side, a function or a lateral subquery joins harmlessly
SELECT rec_codes('SELECT l.id FROM leads l, (SELECT max(score) AS m FROM leads) s WHERE l.score = s.m AND l.id < 10');
SELECT rec_codes('SELECT a.id, g FROM agents a, generate_series(1, 3) g');
SELECT rec_codes('SELECT a.id, x.n FROM agents a, LATERAL (SELECT count(*) AS n FROM leads l WHERE l.agent_id = a.id) x');

-- leading_wildcard_like: LIKE and ILIKE patterns that start with % or _
SELECT rec_codes('SELECT id FROM leads WHERE last_name LIKE ''%son''');
SELECT rec_codes('SELECT id FROM leads WHERE email ILIKE ''_ead1%''');
SELECT rec_codes('SELECT id FROM leads WHERE last_name LIKE ''John%''');
SELECT recommendations->0->>'message' AS message
  FROM perfopt.analyze_query('SELECT id FROM agents WHERE email LIKE ''%@example.com''');

-- function_on_filtered_column: a function, a cast or an implicit cast on
-- the column compared with a value
SELECT rec_codes('SELECT id FROM agents WHERE lower(email) = ''agent1@example.com''');
SELECT rec_codes('SELECT id FROM agents WHERE hired_on::text = ''2020-01-01''');
SELECT rec_codes('SELECT id FROM agents WHERE id = 1.5');
SELECT rec_codes('SELECT id FROM agents WHERE id + 1 = 10');
SELECT rec_codes('SELECT id FROM agents WHERE lower(email) IN (''a'', ''b'')');
SELECT message
  FROM perfopt.analyze_query($$SELECT id FROM agents
                                WHERE lower(email) = 'x' AND hired_on::text = '2020-01-01' AND id = 1.5$$),
       LATERAL (SELECT r->>'message' AS message FROM jsonb_array_elements(recommendations) r) m;
-- the column itself, a join between two columns, or an expression index
-- that matches: no remark
SELECT rec_codes('SELECT id FROM agents WHERE email = lower(''X'')');
SELECT rec_codes('SELECT 1 FROM agents a JOIN leads l ON lower(l.email) = lower(a.email)');
CREATE INDEX agents_lower_email ON agents (lower(email));
SELECT rec_codes('SELECT id FROM agents WHERE lower(email) = ''agent1@example.com''');
DROP INDEX agents_lower_email;

-- not_in_subquery
SELECT rec_codes('SELECT id FROM agents WHERE id NOT IN (SELECT agent_id FROM leads)');
SELECT rec_codes('SELECT id FROM agents a WHERE NOT EXISTS (SELECT 1 FROM leads l WHERE l.agent_id = a.id)');
SELECT rec_codes('SELECT id FROM agents WHERE id IN (SELECT agent_id FROM leads)');

-- or_across_columns: arms on different columns; not when they share one
SELECT rec_codes('SELECT id FROM leads WHERE email = ''a'' OR phone = ''b''');
SELECT rec_codes('SELECT id FROM leads WHERE status = ''sold'' OR status = ''new''');
SELECT rec_codes('SELECT id FROM leads WHERE (state = ''TX'' AND zip = ''1'') OR (state = ''CA'' AND product = ''auto'')');
SELECT rec_codes('SELECT id FROM agents WHERE $1::text IS NULL OR email = $1');

-- large_offset: from OFFSET 1000
SELECT rec_codes('SELECT id FROM agents ORDER BY id LIMIT 10 OFFSET 5000');
SELECT rec_codes('SELECT id FROM agents ORDER BY id LIMIT 10 OFFSET 20');

-- order_without_limit: a big sorted result without LIMIT
SELECT rec_codes('SELECT id, email FROM leads ORDER BY created_at');
SELECT rec_codes('SELECT id, email FROM leads ORDER BY created_at LIMIT 20');
SELECT rec_codes('SELECT id, email FROM agents ORDER BY hired_on');

-- correlated_subquery_in_select: runs once per row
SELECT rec_codes('SELECT a.id, (SELECT count(*) FROM leads l WHERE l.agent_id = a.id) FROM agents a');
SELECT rec_codes('SELECT a.id, (SELECT count(*) FROM campaigns) FROM agents a');
SELECT rec_codes('SELECT a.id FROM agents a WHERE a.id = (SELECT max(agent_id) FROM leads l WHERE l.state = a.state)');

-- seq_scan_large_table: a full read of a large table that keeps few rows
SELECT rec_codes('SELECT id FROM leads WHERE zip = ''12345''');
SELECT recommendations->0->>'message' AS message
  FROM perfopt.analyze_query('SELECT id FROM leads WHERE zip = ''12345'' AND product = ''auto''');
-- an index scan, a filter that keeps most rows, or a small table: no remark
SELECT rec_codes('SELECT email FROM leads WHERE id = 12345');
SELECT rec_codes('SELECT id FROM leads WHERE status = ''new''');
SELECT rec_codes('SELECT id FROM agents WHERE state = ''TX''');

-- sort_for_limit: the first rows of a large table in some order, found by
-- sorting all of it
SELECT rec_codes('SELECT id, email FROM leads ORDER BY created_at DESC LIMIT 25');
SELECT recommendations->0->>'message' AS message
  FROM perfopt.analyze_query('SELECT id, email FROM leads ORDER BY state, created_at DESC LIMIT $1 OFFSET $2');
-- an index returns them in order: no remark
SELECT rec_codes('SELECT id, email FROM leads ORDER BY id DESC LIMIT 25');
SELECT rec_codes('SELECT id, email FROM agents ORDER BY hired_on LIMIT 25');

-- sort_spills_to_disk: a sort bigger than work_mem
SET work_mem = '64kB';
SELECT rec_codes('SELECT id, email, last_name FROM leads ORDER BY last_name, email');
RESET work_mem;
SELECT rec_codes('SELECT id, email, last_name FROM leads ORDER BY last_name, email LIMIT 10');

-- utility statements: index_without_concurrently, vacuum_full
SELECT rec_codes('CREATE INDEX ON leads (zip)');
SELECT rec_codes('CREATE INDEX CONCURRENTLY ON leads (zip)');
SELECT rec_codes('VACUUM (FULL) leads');
SELECT rec_codes('VACUUM FULL');
SELECT rec_codes('VACUUM leads');

-- several problems at once come most severe first
SELECT r->>'severity' AS severity, r->>'code' AS code
  FROM perfopt.analyze_query($$SELECT * FROM leads l, agents a
                               WHERE l.last_name LIKE '%a' AND l.id NOT IN (SELECT lead_id FROM quotes)
                               ORDER BY l.created_at OFFSET 2000$$),
       LATERAL jsonb_array_elements(recommendations) r;
