-- An insurance lead-generation schema with generated rows, for perfopt's
-- tests and demo.  psql variable "leads" sets the number of leads
-- (default 100000); the other tables scale with it.  Deterministic: the
-- same rows every time.
\if :{?leads}
\else
\set leads 100000
\endif
SET client_min_messages = warning;
DROP TABLE IF EXISTS lead_events, quotes, leads, campaigns, agents CASCADE;
RESET client_min_messages;

CREATE TABLE agents (
    id          int PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL,
    state       char(2) NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    hired_on    date NOT NULL
);

CREATE TABLE campaigns (
    id          int PRIMARY KEY,
    name        text NOT NULL,
    channel     text NOT NULL,
    budget      numeric(12,2) NOT NULL,
    started_on  date NOT NULL
);

CREATE TABLE leads (
    id              bigint PRIMARY KEY,
    email           text NOT NULL,
    phone           text,
    first_name      text NOT NULL,
    last_name       text NOT NULL,
    state           char(2) NOT NULL,
    zip             text NOT NULL,
    product         text NOT NULL,
    status          text NOT NULL,
    source          text NOT NULL,
    campaign_id     int REFERENCES campaigns,
    agent_id        int REFERENCES agents,
    score           int NOT NULL,
    premium_estimate numeric(10,2),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz,
    notes           text
);

CREATE TABLE quotes (
    id          bigint PRIMARY KEY,
    lead_id     bigint NOT NULL REFERENCES leads,
    carrier     text NOT NULL,
    premium     numeric(10,2) NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE lead_events (
    id          bigint PRIMARY KEY,
    lead_id     bigint NOT NULL REFERENCES leads,
    kind        text NOT NULL,
    created_at  timestamptz NOT NULL,
    payload     jsonb
);

INSERT INTO agents
SELECT i, 'Agent ' || i, 'agent' || i || '@example.com',
       (ARRAY['CA','TX','FL','NY','IL','PA','OH','GA','NC','MI'])[1 + i % 10],
       i % 17 <> 0, date '2015-01-01' + (i * 7) % 3000
  FROM generate_series(1, greatest(:leads / 500, 10)) i;

INSERT INTO campaigns
SELECT i, 'Campaign ' || i, (ARRAY['search','social','email','affiliate','tv'])[1 + i % 5],
       1000 + (i * 377) % 50000, date '2022-01-01' + (i * 11) % 900
  FROM generate_series(1, 50) i;

INSERT INTO leads
SELECT i,
       'lead' || i || '@' || (ARRAY['gmail.com','yahoo.com','outlook.com','example.org'])[1 + i % 4],
       CASE WHEN i % 9 = 0 THEN NULL ELSE '555-' || lpad((i::bigint * 7919 % 10000000)::text, 7, '0') END,
       (ARRAY['James','Mary','John','Patricia','Robert','Jennifer','Michael','Linda'])[1 + i % 8],
       (ARRAY['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller','Davis','Lopez'])[1 + i % 9],
       (ARRAY['CA','TX','FL','NY','IL','PA','OH','GA','NC','MI'])[1 + (i * 31) % 10],
       lpad(((i * 613) % 99999)::text, 5, '0'),
       (ARRAY['auto','home','life','health','renters'])[1 + (i * 13) % 5],
       -- a few statuses are rare: partial-index material for the advisor
       CASE WHEN i % 200 = 0 THEN 'sold' WHEN i % 97 = 0 THEN 'disqualified'
            WHEN i % 5 = 0 THEN 'contacted' ELSE 'new' END,
       (ARRAY['web','phone','partner','referral'])[1 + (i * 7) % 4],
       1 + (i * 37) % 50,
       CASE WHEN i % 3 = 0 THEN NULL ELSE 1 + (i * 53) % greatest(:leads / 500, 10) END,
       (i::bigint * 7877) % 100,
       round((200 + (i::bigint * 7919) % 3000)::numeric, 2),
       timestamptz '2025-01-01 00:00+00' + (i * interval '5 minutes') * (365 * 288.0 / :leads),
       CASE WHEN i % 4 = 0 THEN timestamptz '2025-06-01 00:00+00' + i * interval '1 second' END,
       CASE WHEN i % 10 = 0 THEN repeat('call back later; ', 1 + i % 5) END
  FROM generate_series(1, :leads) i;

INSERT INTO quotes
SELECT i, 1 + (i * 7) % :leads,
       (ARRAY['Acme Mutual','Blue Shield','Evergreen','Northstar'])[1 + i % 4],
       round((300 + (i::bigint * 104729) % 4000)::numeric, 2),
       (ARRAY['open','open','accepted','declined'])[1 + (i * 3) % 4],
       timestamptz '2025-01-01 00:00+00' + (i * interval '3 minutes') * (365 * 480.0 / (:leads * 1.5))
  FROM generate_series(1, (:leads * 3) / 2) i;

INSERT INTO lead_events
SELECT i, 1 + (i * 13) % :leads,
       (ARRAY['created','emailed','called','quoted','note'])[1 + i % 5],
       timestamptz '2025-01-01 00:00+00' + (i * interval '2 minutes') * (365 * 720.0 / (:leads * 2)),
       jsonb_build_object('channel', (ARRAY['email','sms','phone'])[1 + i % 3], 'attempt', i % 4)
  FROM generate_series(1, :leads * 2) i;

ANALYZE agents, campaigns, leads, quotes, lead_events;
