"""A quiet incident whose plan is in verification waits for Resolve's verdict, not the quiet timer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core.model import IncidentStatus
from core.settings import Settings
from core.store import Store
from detect.incidents import repository as incidents_repo
from detect.incidents.pipeline import IncidentPipeline
from resolve import actions_repository as repo
from resolve.remediation import Remediation
from tests.detect.incidents.test_pipeline import T0, am, make, step
from tests.resolve.resolving import ArgvScript, runbook

WINDOW = timedelta(minutes=10)
QUIET = timedelta(minutes=5)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "hold.duckdb")) as s:
        yield s


def _wired(store: Store, tmp_path: Path, *, hold: bool) -> tuple[IncidentPipeline, Remediation]:
    p = make(store, resolve_after=QUIET)
    p.clock = lambda: p.now  # event time, as a replay wires it
    script = ArgvScript.create(tmp_path)
    settings = Settings(db=store.path, resolve_allowed_commands=str(script.path), resolve_retry_wait_s=0.0)
    r = Remediation(store, settings, transition=p.transition, note=p.note, clock=lambda: p.now)
    r.catalog.load_text(runbook("fix-db", [{"name": "fix", "command": [str(script.path), "fix"]}],
                                match={"service": "db"}, window=f"{WINDOW.total_seconds():.0f}s"), "t")  # fmt: skip
    p.add_listener(r.request)
    if hold:
        p.hold_resolve = r.verifying
    return p, r


def _round(p: IncidentPipeline, r: Remediation, minutes: float, *batches: object) -> None:
    step(p, T0 + timedelta(minutes=minutes), *batches)  # type: ignore[arg-type]
    r.run_pending()


@pytest.mark.parametrize("hold", [True, False], ids=["hook-waits-for-the-verdict", "without-hook-quiet-wins"])
def test_a_verifying_plan_holds_the_quiet_auto_resolve(store: Store, tmp_path: Path, hold: bool) -> None:
    p, r = _wired(store, tmp_path, hold=hold)
    _round(p, r, 0, am("Down", "db", T0, severity="critical"))
    (inc,) = incidents_repo.list_incidents(store)
    (plan,) = repo.plans(store, incident=inc.id)
    assert plan.status == "verifying" and r.verifying(inc.id)
    _round(p, r, 1, am("Down", "db", T0 + timedelta(minutes=1), status="resolved"))
    for minute in range(2, 10):  # quiet for longer than resolve_after, still inside the window
        _round(p, r, minute)
    found = incidents_repo.incident_by_id(store, inc.id)
    assert found is not None
    if not hold:  # the defect the hook fixes: the quiet timer beats the verification window
        assert found.status is IncidentStatus.RESOLVED
        (plan,) = repo.plans(store, incident=inc.id)
        assert plan.status == "resolved_elsewhere"
        return
    assert found.status is IncidentStatus.MITIGATED and r.verifying(inc.id)
    for minute in range(10, 13):
        _round(p, r, minute)
    (plan,) = repo.plans(store, incident=inc.id)
    found = incidents_repo.incident_by_id(store, inc.id)
    assert plan.status == "restored" and not r.verifying(inc.id)
    assert found is not None and found.status is IncidentStatus.RESOLVED and found.resolved_at is not None
    assert found.resolved_at - T0 >= WINDOW
    timeline = incidents_repo.timeline_of(store, inc.id)
    assert any(e.text.startswith("restoration confirmed") for e in timeline)
    assert not any(e.text.startswith("resolved: every alert quiet") for e in timeline)
