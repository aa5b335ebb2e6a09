-- The expert's index set of test/bench/index_advisor_params.sh, chosen by
-- hand from the workload (index_advisor_params_app.pgbench and
-- index_advisor_params_reports.pgbench) and the data's skews
-- (index_advisor_params_schema.sql), before any advisor's output was seen,
-- and fixed with them.  One index per line, each with why.
--
-- quotes
-- (2) a lead's quotes, (15) the IN list of leads: the foreign key's lookups
CREATE INDEX ON quotes (lead_id);
-- (5) the carrier's recent quotes: equality first, then the range;
--     premium carried for an index-only scan (the app's hottest report)
CREATE INDEX ON quotes (carrier_id, created_at) INCLUDE (premium);
-- (11) premium per carrier, (13) the week's accepted quotes: the last days
--     of an append-only table whose created_at follows the physical order;
--     a BRIN is a few pages and hands the bitmap scan the last ranges only
CREATE INDEX ON quotes USING brin (created_at);
-- (12) pending quotes about to expire: pending is ~3% of the quotes
CREATE INDEX ON quotes (expires_on) WHERE status = 'pending';
--
-- leads
-- (3) the agent's queue: agent, status, then the order of the LIMIT;
-- (7) the agent's counters by status read the same index only
CREATE INDEX ON leads (agent_id, status, created_at);
-- (4) dispatch by score for one status ('new' 9 times in 10, 'callback'
--     otherwise): status first, then the order; btree deduplication keeps
--     it small (few distinct keys)
CREATE INDEX ON leads (status, score);
-- (16) the new leads of the last hours: 'new' is ~1% of the leads
CREATE INDEX ON leads (created_at) INCLUDE (state) WHERE status = 'new';
-- (6) caller id: a phone prefix (the database's collation is not C, so
--     LIKE needs text_pattern_ops)
CREATE INDEX ON leads (phone text_pattern_ops);
-- (14) the name search: the state's equality first, then the prefix
CREATE INDEX ON leads (state, last_name text_pattern_ops);
