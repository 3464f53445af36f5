"""Verified restoration: resolve only with the opening signals recovered for the window; else roll back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from core.model import IncidentStatus
from core.settings import Settings
from core.store import Store
from resolve import actions_repository as repo
from resolve.audit import entries
from resolve.remediation import Remediation
from tests.resolve.resolving import ArgvScript, Clock, Recorder, runbook, seed_incident


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as s:
        yield s


def _setup(store: Store, tmp_path: Path, burning: Sequence[str] = ()) -> tuple[Remediation, ArgvScript, Recorder, Clock]:  # fmt: skip
    script, rec, clock = ArgvScript.create(tmp_path), Recorder(), Clock()
    s = Settings(db=":memory:", resolve_allowed_commands=str(script.path), resolve_retry_wait_s=0.0)
    r = Remediation(store, s, note=rec.note, transition=rec.transition, clock=clock,
                    burning=lambda services: list(burning))  # fmt: skip
    doc = runbook("fix", [{"name": "fix", "command": [str(script.path), "fix"]}],
                  rollback=[{"name": "undo", "command": [str(script.path), "undo"]}], window="120s")  # fmt: skip
    r.catalog.load_text(doc, "t")
    return r, script, rec, clock


def _resolve_alerts(store: Store, incident_id: str) -> None:
    with store.transaction() as con:
        con.execute("UPDATE alerts SET status = 'resolved' WHERE incident_id = ?", [incident_id])


def test_recovered_signals_for_the_window_resolve_with_restoration_confirmed(
    store: Store, tmp_path: Path
) -> None:
    r, script, rec, clock = _setup(store, tmp_path)
    seed_incident(store, "I-ok")
    r.planner.plan("I-ok")
    r.run_pending()
    assert rec.moves == [("I-ok", IncidentStatus.MITIGATED, "runbook fix applied")]
    _resolve_alerts(store, "I-ok")
    clock.advance(60)
    r.run_pending()  # the window has not ended: no verdict yet
    assert len(rec.moves) == 1
    clock.advance(61)
    r.run_pending()
    _incident, status, text = rec.moves[-1]
    assert (
        status is IncidentStatus.RESOLVED
        and text.startswith("restoration confirmed")
        and "HighLatency" in text
    )
    plan = repo.plans(store, incident="I-ok")[0]
    assert plan.status == "restored" and plan.verdict is not None and plan.verdict["restored"]
    assert script.calls() == [["fix"]]
    assert [e.payload["restored"] for e in entries(store) if e.kind == "verdict"] == [True]


@pytest.mark.parametrize("cause", ["alert", "slo"], ids=["alert-still-firing", "slo-burning"])
def test_signals_still_burning_roll_back_and_escalate(store: Store, tmp_path: Path, cause: str) -> None:
    r, script, rec, clock = _setup(store, tmp_path, burning=["cart-availability"] if cause == "slo" else [])
    seed_incident(store, "I-bad")
    r.planner.plan("I-bad")
    r.run_pending()
    if cause == "slo":
        _resolve_alerts(store, "I-bad")
    clock.advance(121)
    r.run_pending()
    assert script.calls() == [["fix"], ["undo"]]
    assert all(status is not IncidentStatus.RESOLVED for _, status, _ in rec.moves)
    plan = repo.plans(store, incident="I-bad")[0]
    assert plan.status == "rolled_back"
    want = "HighLatency" if cause == "alert" else "cart-availability"
    assert any("verification failed" in t and want in t and "escalated" in t for _, t in rec.notes)
    assert [(a.phase, a.step, a.status) for a in repo.actions(store, incident="I-bad")] == [
        ("run", "fix", "succeeded"), ("rollback", "undo", "succeeded")]  # fmt: skip


def test_a_manual_resolve_while_signals_burn_is_recorded_as_unverified(store: Store, tmp_path: Path) -> None:
    r, _, rec, _ = _setup(store, tmp_path)
    seed_incident(store, "I-hand")
    r.planner.plan("I-hand")
    r.run_pending()
    with store.transaction() as con:  # an operator resolves at once, alerts still firing
        con.execute("UPDATE incidents SET status = 'resolved' WHERE id = 'I-hand'")
    r.run_pending()
    plan = repo.plans(store, incident="I-hand")[0]
    assert plan.status == "resolved_elsewhere" and plan.verdict is not None and not plan.verdict["restored"]
    assert any("unverified" in t for _, t in rec.notes)
