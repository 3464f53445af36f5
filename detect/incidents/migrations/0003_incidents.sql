-- incidents: alerts, incidents and their timelines, silences, maintenance windows, notifications
CREATE TABLE alerts (
    id VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, name VARCHAR, status VARCHAR NOT NULL,
    starts_at TIMESTAMP NOT NULL, ends_at TIMESTAMP, last_seen TIMESTAMP, service VARCHAR,
    severity VARCHAR, source VARCHAR, labels JSON, annotations JSON, incident_id VARCHAR,
    suppressed_by VARCHAR, inhibited_by VARCHAR, change_id VARCHAR, held_until TIMESTAMP,
    flapping BOOLEAN, transitions INTEGER, value DOUBLE, score DOUBLE, updated_at TIMESTAMP);
CREATE INDEX alerts_incident ON alerts (incident_id);
CREATE INDEX alerts_fingerprint ON alerts (fingerprint);
CREATE TABLE incidents (
    id VARCHAR PRIMARY KEY, title VARCHAR, status VARCHAR NOT NULL, priority VARCHAR,
    priority_reason VARCHAR, opened_at TIMESTAMP NOT NULL, acknowledged_at TIMESTAMP,
    mitigated_at TIMESTAMP, resolved_at TIMESTAMP, closed_at TIMESTAMP, escalated_at TIMESTAMP,
    services VARCHAR[], team VARCHAR, assignee VARCHAR, major BOOLEAN, alert_count INTEGER,
    origin_service VARCHAR, change_ids VARCHAR[], hypotheses JSON, updated_at TIMESTAMP,
    seq BIGINT);
CREATE TABLE incident_timeline (
    incident_id VARCHAR NOT NULL, seq BIGINT NOT NULL, "at" TIMESTAMP NOT NULL, kind VARCHAR NOT NULL,
    actor VARCHAR, text VARCHAR, detail JSON);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id);
CREATE TABLE silences (
    id VARCHAR PRIMARY KEY, matchers JSON NOT NULL, starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL, created_by VARCHAR, comment VARCHAR, updated_at TIMESTAMP);
CREATE TABLE maintenance_windows (
    id VARCHAR PRIMARY KEY, services VARCHAR[] NOT NULL, starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL, reason VARCHAR, created_by VARCHAR, recurrence VARCHAR,
    "until" TIMESTAMP, source VARCHAR, created_at TIMESTAMP);
CREATE TABLE notifications (
    id VARCHAR PRIMARY KEY, incident_id VARCHAR, event VARCHAR NOT NULL, channel VARCHAR NOT NULL,
    target VARCHAR NOT NULL, payload JSON NOT NULL, status VARCHAR NOT NULL, attempts INTEGER,
    next_attempt_at TIMESTAMP, last_error VARCHAR, created_at TIMESTAMP, sent_at TIMESTAMP);
CREATE INDEX notifications_status ON notifications (status);
