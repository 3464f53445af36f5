-- Known errors: documented workarounds that Diagnose recognises by signature
CREATE TABLE known_errors (
    id VARCHAR PRIMARY KEY, problem_id VARCHAR, title VARCHAR, signature VARCHAR NOT NULL,
    workaround VARCHAR NOT NULL, services VARCHAR[], created_by VARCHAR, created_at TIMESTAMP);
