"""opsloop's own Prometheus metrics: every emitted name and label lives here.

Names follow Prometheus conventions (``opsloop_`` prefix, base units, ``_total`` counters,
bounded label values only). One registry per process, exposed at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry(auto_describe=True)

BUILD_INFO = Info("opsloop_build", "opsloop version", registry=REGISTRY)
INGEST_SAMPLES = Counter(
    "opsloop_ingest_samples",
    "Samples, log records, events and alerts committed, by wire format.",
    ["format"],
    registry=REGISTRY,
)
INGEST_REJECTED = Counter(
    "opsloop_ingest_rejected",
    "Requests rejected, by wire format and reason (decode, validation, too_large, rate_limited, "
    "unauthorized, unsupported_media, storage).",
    ["format", "reason"],
    registry=REGISTRY,
)
INGEST_REQUESTS = Counter(
    "opsloop_ingest_requests",
    "Ingest requests answered, by wire format and status code.",
    ["format", "code"],
    registry=REGISTRY,
)
INGEST_DUPLICATES = Counter(
    "opsloop_ingest_duplicate_batches",
    "Re-delivered batches recognised and skipped.",
    ["format"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "opsloop_ingest_queue_depth_rows", "Rows accepted but not yet committed.", registry=REGISTRY
)
COMMIT_SECONDS = Histogram(
    "opsloop_store_commit_duration_seconds",
    "Time to commit one group of batches to DuckDB.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
COMMIT_ROWS = Histogram(
    "opsloop_store_commit_rows",
    "Rows per commit.",
    buckets=(10, 100, 1_000, 10_000, 50_000, 100_000, 250_000, 1_000_000),
    registry=REGISTRY,
)
SCRAPES = Counter(
    "opsloop_scrapes", "Scrapes of configured targets, by outcome.", ["outcome"], registry=REGISTRY
)
DETECT_POINTS = Counter(
    "opsloop_detect_points_scored", "Points scored by the streaming detection engine.", registry=REGISTRY
)
DETECT_LAG = Histogram(
    "opsloop_detect_lag_seconds",
    "Time from a points commit to the commit of their bands and anomalies.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
ANOMALIES = Counter("opsloop_anomalies", "Anomalies found by the detection engine.", registry=REGISTRY)
DETECT_BACKLOG = Gauge(
    "opsloop_detect_backlog_points", "Committed points not yet scored by detection.", registry=REGISTRY
)
ALERTS_RECEIVED = Counter(
    "opsloop_alerts_received",
    "Alert transitions seen by the incident pipeline, by source and status.",
    ["source", "status"],
    registry=REGISTRY,
)
CORRELATION_SECONDS = Histogram(
    "opsloop_correlation_seconds",
    "From detection output queued to its alerts correlated and committed.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
INCIDENTS_OPEN = Gauge(
    "opsloop_incidents_open", "Incidents open, acknowledged or mitigated.", registry=REGISTRY
)
INCIDENTS_OPENED = Counter(
    "opsloop_incidents_opened", "Incidents opened, by priority.", ["priority"], registry=REGISTRY
)
DIAGNOSES = Counter(
    "opsloop_diagnoses", "Incident diagnoses run, by outcome (ok, failed).", ["outcome"], registry=REGISTRY
)
DIAGNOSIS_SECONDS = Histogram(
    "opsloop_diagnosis_seconds",
    "Time to diagnose one incident (read evidence, rank causes).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "opsloop_notifications_sent",
    "Outgoing notification attempts, by channel and outcome.",
    ["channel", "outcome"],
    registry=REGISTRY,
)
BACKLOG_DELIVERIES = Counter(
    "opsloop_backlog_deliveries", "Backlog item pushes to trackers, by tracker and outcome.", ["tracker", "outcome"],
    registry=REGISTRY,
)  # fmt: skip
WORKER_ROUNDS = Counter(
    "opsloop_worker_rounds",
    "Rounds of each background worker (detect, incidents, diagnose, slo, notify, writer), by outcome.",
    ["worker", "outcome"],
    registry=REGISTRY,
)
WORKER_ROUND_SECONDS = Histogram(
    "opsloop_worker_round_seconds",
    "Seconds one background worker round took.",
    ["worker"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0),
    registry=REGISTRY,
)
# Resolve: problems and operational metrics (resolve.problems, resolve.operations)
PROBLEMS = Gauge(
    "opsloop_problems", "Problems, by state (open, known_error, resolved).", ["state"], registry=REGISTRY
)
OPERATIONS_SECONDS = Gauge(
    "opsloop_operations_seconds",
    "Operational means over the last 30 days, estate-wide and per service: mttd, mtta, mtrs, mtbf"
    " (seconds; NaN when no incident defines it).",
    ["metric", "service"],
    registry=REGISTRY,
)
OPERATIONS_RATIO = Gauge(
    "opsloop_operations_ratio",
    "Operational ratios over the last 30 days, estate-wide and per service: change_failure_rate,"
    " automation_share (0..1; NaN when nothing to divide by).",
    ["metric", "service"],
    registry=REGISTRY,
)
