-- detection: bands of every scored point, anomalies, detector snapshots, operator feedback
CREATE TABLE bands (
    series_id UBIGINT NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE, score DOUBLE,
    probability DOUBLE, expected DOUBLE, lower DOUBLE, upper DOUBLE);
CREATE TABLE anomalies (
    id VARCHAR PRIMARY KEY, series_id UBIGINT NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE,
    score DOUBLE, probability DOUBLE, expected DOUBLE, lower DOUBLE, upper DOUBLE,
    threshold DOUBLE, detector VARCHAR, direction VARCHAR, created_at TIMESTAMP);
CREATE INDEX anomalies_series_ts ON anomalies (series_id, ts);
CREATE TABLE detector_state (
    name VARCHAR NOT NULL, taken_at TIMESTAMP NOT NULL, watermark BIGINT NOT NULL,
    state BLOB NOT NULL);
CREATE TABLE detector_progress (
    name VARCHAR PRIMARY KEY, watermark BIGINT NOT NULL, updated_at TIMESTAMP);
CREATE TABLE anomaly_feedback (
    anomaly_id VARCHAR NOT NULL, series_id UBIGINT NOT NULL, verdict VARCHAR NOT NULL,
    "user" VARCHAR, comment VARCHAR, "at" TIMESTAMP NOT NULL, threshold_before DOUBLE,
    threshold_after DOUBLE);
