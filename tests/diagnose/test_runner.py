"""Diagnosis runs by itself when the pipeline opens an incident and again as alerts join it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bench.diagnose_speed import topology_items, write_incident
from core.batch import AlertCommand, WriteBatch
from core.model import ExternalAlert, ExternalAlertStatus
from core.settings import Settings
from core.store import Store
from core.topology import Topology
from detect.incidents import repository as repo
from detect.incidents.pipeline import IncidentPipeline
from diagnose.diagnoser import Diagnoser
from diagnose.runner import DiagnosisRunner

SERVICES, SEED = 14, 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "run.duckdb")) as s:
        yield s


def runner_for(pipeline: IncidentPipeline) -> DiagnosisRunner:
    """Wire a runner to a pipeline as the loop's assembly does."""
    runner = DiagnosisRunner(Diagnoser(pipeline.store, lambda: pipeline.topology), pipeline.set_hypotheses)
    pipeline.add_listener(runner.request)
    return runner


def alert(name: str, service: str, at: datetime) -> WriteBatch:
    ext = ExternalAlert(id=f"{name}-{service}", source="alertmanager", dedup_key=f"{name}-{service}",
                        status=ExternalAlertStatus.FIRING, name=name, starts_at=at, severity="warning",
                        service=service, fingerprint=f"{name}-{service}",
                        labels={"alertname": name, "service": service}, updated_at=at)  # fmt: skip
    return WriteBatch(source="alertmanager", alerts=[AlertCommand("upsert", ext)])


def test_an_opened_incident_is_diagnosed_and_rediagnosed_when_alerts_join(store: Store) -> None:
    built = write_incident(
        store, services=SERVICES, minutes=60, interval_s=30, fault="cpu", seed=SEED, open_incident=False
    )
    pipeline = IncidentPipeline(store, Settings(db=store.path), topology=Topology(topology_items(SERVICES, SEED)),
                                webhooks=[])  # fmt: skip
    runner = runner_for(pipeline)
    callers = [s for s in built.services if s != built.root]
    pipeline.offer_batch(alert("HighCPU", built.root, built.alarm))
    pipeline.offer_batch(alert("HighLatency", callers[0], built.alarm + timedelta(seconds=30)))
    pipeline.process(now=built.alarm + timedelta(minutes=1))
    opened = repo.list_incidents(store, limit=10)
    assert len(opened) == 1 and not opened[0].hypotheses, "nothing until the runner runs"
    first = runner.run_pending()
    assert [d.incident_id for d in first] == [opened[0].id]
    stored = repo.incident_by_id(store, opened[0].id)
    assert stored is not None and stored.hypotheses[0].service == built.root
    assert stored.hypotheses[0].kind.value == "resource"
    notes = [e for e in repo.timeline_of(store, stored.id) if e.kind == "diagnosis"]
    assert len(notes) == 1 and built.root in notes[0].text
    assert runner.run_pending() == [], "no new evidence, no new diagnosis"
    pipeline.offer_batch(alert("HighLatency", callers[1], built.alarm + timedelta(minutes=2)))
    pipeline.process(now=built.alarm + timedelta(minutes=3))
    again = runner.run_pending()
    assert [d.incident_id for d in again] == [stored.id]
    assert again[0].as_of == built.alarm + timedelta(minutes=2), "as of the event time the alert joined"
    notes = [e for e in repo.timeline_of(store, stored.id) if e.kind == "diagnosis"]
    assert len(notes) == 1, "the leading cause did not change, so the timeline says nothing new"


def test_the_runner_thread_diagnoses_on_its_own(store: Store) -> None:
    built = write_incident(
        store, services=SERVICES, minutes=60, interval_s=30, fault="deploy", seed=2, open_incident=False
    )
    pipeline = IncidentPipeline(store, Settings(db=store.path), topology=Topology(topology_items(SERVICES, 2)),
                                webhooks=[])  # fmt: skip
    runner = runner_for(pipeline)
    runner.start(poll_s=0.05)
    try:
        callers = [s for s in built.services if s != built.root]
        pipeline.offer_batch(alert("Errors", built.root, built.alarm))
        pipeline.offer_batch(alert("Errors", callers[0], built.alarm))
        pipeline.process(now=built.alarm + timedelta(minutes=1))
    finally:
        runner.stop()
    incidents = repo.list_incidents(store, limit=10)
    assert incidents and incidents[0].hypotheses[0].service == built.root
    assert incidents[0].hypotheses[0].kind.value == "change"
