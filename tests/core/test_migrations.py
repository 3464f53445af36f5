"""Each stage owns its migrations; core finds them by folder name and applies them in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import StorageError
from core.store import MIGRATION_STAGES, MIGRATIONS, Store, discover_migrations

ROOT = Path(__file__).resolve().parents[2]

#: Which stage's folder each migration lives in.
OWNERS = {1: "core", 2: "detect", 3: "detect/incidents", 4: "slo", 5: "diagnose", 6: "resolve", 7: "core", 8: "resolve", 9: "resolve"}  # fmt: skip

#: Every table the five migrations created when they were one list in ``core/store.py``.
TABLES = {
    "series", "points", "logs", "events", "changes", "topology", "external_alerts", "ingest_batches",
    "tokens", "bands", "anomalies", "detector_state", "detector_progress", "anomaly_feedback", "alerts",
    "incidents", "incident_timeline", "silences", "maintenance_windows", "notifications", "slos",
    "slo_snapshots", "backlog_items", "backlog_deliveries", "known_errors", "schema_migrations",
    "problems", "problem_incidents", "problem_events", "spans", "audit_log", "audit_head", "learned_edges",
    "runbooks", "resolve_plans", "resolve_actions", "resolve_outbox", "resolve_control",
}  # fmt: skip
INDEXES = {
    "external_alerts_dedup", "anomalies_series_ts", "alerts_incident", "alerts_fingerprint",
    "incident_timeline_incident", "notifications_status", "slo_snapshots_slo_at", "problem_incidents_problem",
    "resolve_plans_incident", "resolve_actions_incident",
}  # fmt: skip
DESCRIPTIONS = {
    1: "signals, topology, external alerts, tokens",
    2: "detection: bands of every scored point, anomalies, detector snapshots, operator feedback",
    3: "incidents: alerts, incidents and their timelines, silences, maintenance windows, notifications",
    4: "SLOs: definitions, evaluated snapshots, backlog items and their deliveries to trackers",
    5: "Known errors: documented workarounds that Diagnose recognises by signature",
    6: "Problems: recurring incidents grouped under one cause, their members and lifecycle events",
    7: "spans (OTLP traces, Zipkin v2)",
    8: "audit log: hash-chained, append-only record of Resolve's plans, approvals, actions and verdicts",
    9: "Runbooks: the versioned catalog, plans (a dry run per incident and runbook), actions (each step's execution) and the outbox of steps to run",
}


def test_discovered_migrations_are_contiguous_from_one() -> None:
    found = discover_migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert [m[0] for m in MIGRATIONS] == [m.version for m in found]


def test_each_migration_lives_in_its_owning_stage() -> None:
    found = discover_migrations()
    assert {m.version: m.path.parent.parent.relative_to(ROOT).as_posix() for m in found} == OWNERS
    assert set(OWNERS.values()) <= set(MIGRATION_STAGES)


def test_descriptions_are_the_ones_existing_databases_recorded() -> None:
    assert {m.version: m.description for m in discover_migrations()} == DESCRIPTIONS


def test_fresh_store_has_every_table_and_index(tmp_path: Path) -> None:
    with Store(str(tmp_path / "fresh.duckdb")) as store:
        tables = {r[0] for r in store.query("SELECT table_name FROM duckdb_tables()")}
        indexes = {r[0] for r in store.query("SELECT index_name FROM duckdb_indexes()")}
        recorded = store.query("SELECT version, description FROM schema_migrations ORDER BY version")
    assert tables == TABLES
    assert indexes == INDEXES
    assert dict(recorded) == DESCRIPTIONS


def test_a_gap_in_the_numbering_is_refused(tmp_path: Path) -> None:
    for stage, name in (("a", "0001_first.sql"), ("b", "0003_third.sql")):
        (tmp_path / stage / "migrations").mkdir(parents=True)
        (tmp_path / stage / "migrations" / name).write_text("-- x\nCREATE TABLE t (x INTEGER);\n")
    with pytest.raises(StorageError, match="without gaps"):
        discover_migrations(tmp_path, ("a", "b"))


def test_description_falls_back_to_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "a" / "migrations").mkdir(parents=True)
    (tmp_path / "a" / "migrations" / "0001_first_tables.sql").write_text("CREATE TABLE t (x INTEGER);\n")
    (only,) = discover_migrations(tmp_path, ("a",))
    assert (only.version, only.description) == (1, "first tables")
    assert only.sql == "CREATE TABLE t (x INTEGER);\n"
