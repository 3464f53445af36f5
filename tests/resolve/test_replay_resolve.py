"""Resolve in a replay: verify windows run in event time, and a quiet incident waits for the verdict."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from api.replay import replay
from core.settings import Settings
from core.store import Store
from detect.incidents import repository as incidents_repo
from resolve import actions_repository as repo
from resolve.catalog import Catalog
from tests.resolve.resolving import ArgvScript, runbook

WINDOW_S = 600.0
VERDICTS = ("restored", "verification_failed", "rolling_back", "rolled_back", "rollback_failed")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, datetime, datetime]:
    """One simulated day replayed with execution, every incident's service matched by one runbook."""
    from ingest.simulator import simulate

    root = tmp_path_factory.mktemp("replay-resolve")
    scenario, db = root / "scenario", str(root / "replay.duckdb")
    simulate(scenario, seed=4, days=1.0, faults=2, services=10)
    script = ArgvScript.create(root)
    settings = Settings(db=db, resolve_allowed_commands=str(script.path), resolve_retry_wait_s=0.0)
    with Store(db) as store:
        doc = runbook("fix-any", [{"name": "fix", "command": [str(script.path), "{{ incident.id }}"]}],
                      rollback=[{"name": "undo", "command": [str(script.path), "undo"]}],
                      match={"service": ".+"}, window=f"{WINDOW_S:.0f}s",
                      limits={"max_runs_per_hour": 10, "max_concurrent": 5})  # fmt: skip
        Catalog(store, frozenset({str(script.path)})).load_text(doc, "t", by="test")
    result = replay(scenario, db, settings=settings, execute=True, chunk_s=300.0)
    assert result.start is not None and result.end is not None
    return db, result.start, result.end


def test_verify_windows_are_measured_in_event_time(replayed: tuple[str, datetime, datetime]) -> None:
    db, start, end = replayed
    with Store(db, read_only=True) as store:
        plans = [p for p in repo.plans(store) if p.mitigated_at is not None]
        assert plans, "no runbook ran in the replay"
        for p in plans:
            assert p.mitigated_at is not None and p.verify_until is not None
            assert start <= p.mitigated_at <= end, f"{p.id} mitigated at {p.mitigated_at}: not event time"
            assert p.verify_until - p.mitigated_at == timedelta(seconds=WINDOW_S)
        judged = [p for p in plans if p.status in VERDICTS]
        # every plan whose window ended within the replay got its verdict, none was cut short
        assert [p.id for p in plans if p.verify_until is not None and p.verify_until + timedelta(seconds=300) <= end
                and p.status not in VERDICTS] == []  # fmt: skip
        assert judged, "no verdict given in a day of event time"
        for p in judged:
            if p.status == "restored":
                incident = incidents_repo.incident_by_id(store, p.incident_id)
                assert incident is not None and incident.resolved_at is not None
                assert incident.resolved_at - p.mitigated_at >= timedelta(seconds=WINDOW_S)  # type: ignore[operator]
                assert incident.resolved_at <= end + timedelta(seconds=300)


def test_no_plan_is_resolved_elsewhere_during_its_window(replayed: tuple[str, datetime, datetime]) -> None:
    db, _, _ = replayed
    with Store(db, read_only=True) as store:
        assert [p.id for p in repo.plans(store, status=["resolved_elsewhere"])] == []
