-- Problems: recurring incidents grouped under one cause, their members and lifecycle events
CREATE TABLE problems (
    id VARCHAR PRIMARY KEY, seq BIGINT NOT NULL, title VARCHAR, state VARCHAR NOT NULL,
    services VARCHAR[], alert_names VARCHAR[], templates VARCHAR[], leading_cause VARCHAR,
    first_seen TIMESTAMP, last_seen TIMESTAMP, created_at TIMESTAMP, updated_at TIMESTAMP,
    resolved_at TIMESTAMP, known_error_id VARCHAR, workaround VARCHAR, created_by VARCHAR);
CREATE TABLE problem_incidents (
    incident_id VARCHAR PRIMARY KEY, problem_id VARCHAR NOT NULL, added_at TIMESTAMP);
CREATE INDEX problem_incidents_problem ON problem_incidents (problem_id);
CREATE TABLE problem_events (
    problem_id VARCHAR NOT NULL, seq BIGINT NOT NULL, "at" TIMESTAMP NOT NULL, kind VARCHAR NOT NULL,
    actor VARCHAR, text VARCHAR, detail JSON);
