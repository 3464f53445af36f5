-- spans (OTLP traces, Zipkin v2)
CREATE TABLE spans (
    trace_id VARCHAR NOT NULL, span_id VARCHAR NOT NULL, parent_span_id VARCHAR, service VARCHAR,
    operation VARCHAR, kind VARCHAR, start_ts TIMESTAMP NOT NULL, duration_us BIGINT,
    status VARCHAR, status_message VARCHAR, attributes JSON, resource JSON, scope VARCHAR,
    peer_service VARCHAR);
