-- signals, topology, external alerts, tokens
CREATE TABLE series (
    series_id UBIGINT PRIMARY KEY, name VARCHAR NOT NULL, labels MAP(VARCHAR, VARCHAR),
    service VARCHAR, kind VARCHAR, unit VARCHAR, first_seen TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE points (series_id UBIGINT NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE);
CREATE TABLE logs (
    ts TIMESTAMP NOT NULL, observed_ts TIMESTAMP, service VARCHAR, severity_number SMALLINT,
    severity_text VARCHAR, body VARCHAR, attributes JSON, resource JSON, scope VARCHAR,
    trace_id VARCHAR, span_id VARCHAR);
CREATE TABLE events (
    source VARCHAR NOT NULL, id VARCHAR NOT NULL, type VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
    subject VARCHAR, service VARCHAR, data JSON, attributes JSON,
    received_at TIMESTAMP DEFAULT current_timestamp, PRIMARY KEY (source, id));
CREATE TABLE changes (
    id VARCHAR PRIMARY KEY, service VARCHAR NOT NULL, kind VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
    version VARCHAR, environment VARCHAR, source VARCHAR, description VARCHAR, attributes JSON);
CREATE TABLE topology (
    service VARCHAR PRIMARY KEY, tier INTEGER, owner VARCHAR, depends_on VARCHAR[],
    consumer_facing BOOLEAN, attributes JSON, updated_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE external_alerts (
    id VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, dedup_key VARCHAR NOT NULL,
    status VARCHAR NOT NULL, name VARCHAR, severity VARCHAR, summary VARCHAR, service VARCHAR,
    fingerprint VARCHAR, labels JSON, annotations JSON, starts_at TIMESTAMP, ends_at TIMESTAMP,
    updated_at TIMESTAMP, url VARCHAR, details JSON, event_count INTEGER DEFAULT 1);
CREATE INDEX external_alerts_dedup ON external_alerts (source, dedup_key);
CREATE TABLE ingest_batches (
    digest VARCHAR PRIMARY KEY, source VARCHAR, received_at TIMESTAMP DEFAULT current_timestamp,
    row_count BIGINT);
CREATE TABLE tokens (
    id VARCHAR PRIMARY KEY, name VARCHAR, token_hash VARCHAR UNIQUE NOT NULL, scopes VARCHAR[],
    created_at TIMESTAMP DEFAULT current_timestamp, revoked BOOLEAN DEFAULT false);
