-- spans (OTLP traces, Zipkin v2)
CREATE TABLE spans (
    trace_id VARCHAR NOT NULL, span_id VARCHAR NOT NULL, parent_span_id VARCHAR, service VARCHAR,
    operation VARCHAR, kind VARCHAR, start_ts TIMESTAMP NOT NULL, duration_us BIGINT,
    status VARCHAR, status_message VARCHAR, attributes JSON, resource JSON, scope VARCHAR,
    peer_service VARCHAR);
-- the call graph learned from spans (client service calls server service)
CREATE TABLE learned_edges (
    client VARCHAR NOT NULL, server VARCHAR NOT NULL, first_seen TIMESTAMP, last_seen TIMESTAMP,
    PRIMARY KEY (client, server));
