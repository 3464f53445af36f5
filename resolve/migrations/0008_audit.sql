-- audit log: hash-chained, append-only record of Resolve's plans, approvals, actions and verdicts
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY, "at" TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, subject VARCHAR NOT NULL,
    payload JSON NOT NULL, prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL);
-- the chain's head (last seq and hash), so that removing the newest rows is caught too
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash VARCHAR NOT NULL);
