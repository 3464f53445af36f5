-- SLOs: definitions, evaluated snapshots, backlog items and their deliveries to trackers
CREATE TABLE slos (
    name VARCHAR PRIMARY KEY, service VARCHAR, objective DOUBLE, "window" VARCHAR,
    budgeting_method VARCHAR, documents JSON NOT NULL, created_at TIMESTAMP, updated_at TIMESTAMP);
CREATE TABLE slo_snapshots (
    slo VARCHAR NOT NULL, "at" TIMESTAMP NOT NULL, sli DOUBLE, good DOUBLE, total DOUBLE,
    budget_remaining DOUBLE, budget_consumed DOUBLE, bad_events DOUBLE, bad_minutes DOUBLE,
    burn_rates JSON, state VARCHAR, alerts VARCHAR[], exhaustion_s DOUBLE);
CREATE INDEX slo_snapshots_slo_at ON slo_snapshots (slo, "at");
CREATE TABLE backlog_items (
    id VARCHAR PRIMARY KEY, slo VARCHAR NOT NULL, cause VARCHAR NOT NULL, service VARCHAR,
    title VARCHAR, status VARCHAR NOT NULL, priority_score DOUBLE, capacity_share DOUBLE,
    evidence JSON, created_at TIMESTAMP, updated_at TIMESTAMP, closed_at TIMESTAMP,
    revision INTEGER DEFAULT 1);
CREATE TABLE backlog_deliveries (
    item_id VARCHAR NOT NULL, tracker VARCHAR NOT NULL, external_id VARCHAR, url VARCHAR,
    status VARCHAR, revision INTEGER, attempts INTEGER DEFAULT 0, last_error VARCHAR,
    synced_at TIMESTAMP, PRIMARY KEY (item_id, tracker));
