-- Runbooks: the versioned catalog, plans (a dry run per incident and runbook), actions (each step's execution) and the outbox of steps to run
CREATE TABLE runbooks (
    name VARCHAR NOT NULL, version INTEGER NOT NULL, hash VARCHAR NOT NULL, source VARCHAR,
    loaded_at TIMESTAMP NOT NULL, loaded_by VARCHAR, doc JSON NOT NULL, active BOOLEAN NOT NULL,
    PRIMARY KEY (name, version));
CREATE TABLE resolve_plans (
    id VARCHAR PRIMARY KEY, incident_id VARCHAR NOT NULL, runbook VARCHAR NOT NULL,
    runbook_version INTEGER NOT NULL, plan_hash VARCHAR NOT NULL, mode VARCHAR NOT NULL,
    status VARCHAR NOT NULL, service VARCHAR, steps JSON NOT NULL, rollback JSON NOT NULL,
    verify_window_s DOUBLE NOT NULL, error VARCHAR, approved_by VARCHAR,
    created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL, started_at TIMESTAMP,
    mitigated_at TIMESTAMP, verify_until TIMESTAMP, finished_at TIMESTAMP, verdict JSON);
CREATE INDEX resolve_plans_incident ON resolve_plans (incident_id);
CREATE TABLE resolve_actions (
    id VARCHAR PRIMARY KEY, plan_id VARCHAR NOT NULL, incident_id VARCHAR NOT NULL,
    runbook VARCHAR NOT NULL, service VARCHAR, phase VARCHAR NOT NULL, step_index INTEGER NOT NULL,
    step VARCHAR NOT NULL, kind VARCHAR NOT NULL, status VARCHAR NOT NULL, rendered JSON NOT NULL,
    output VARCHAR, attempts INTEGER NOT NULL DEFAULT 0, error VARCHAR, approved_by VARCHAR,
    created_at TIMESTAMP NOT NULL, started_at TIMESTAMP, ended_at TIMESTAMP);
CREATE INDEX resolve_actions_incident ON resolve_actions (incident_id);
CREATE TABLE resolve_outbox (
    action_id VARCHAR PRIMARY KEY, enqueued_at TIMESTAMP NOT NULL, claimed_at TIMESTAMP);
CREATE TABLE resolve_control (id INTEGER PRIMARY KEY, paused BOOLEAN NOT NULL, changed_by VARCHAR, "at" TIMESTAMP);
