"""Verified restoration: a mitigated incident resolves only once the signals that opened it recovered.

For a plan in ``verifying`` the verifier reads, each round, the signals behind its incident:
the incident's alerts (all must be resolved), its services' anomalous series (no anomaly in the
second half of the window: a fix needs a moment to show) and its services' SLIs (none above a
burn threshold; the check is injected, since ``slo`` comes after ``resolve``). When the
window ends with every signal clear, the incident resolves with a *restoration confirmed*
timeline entry citing them. Otherwise the runbook's rollback steps run and the incident is
escalated. An incident resolved by hand while its signals still burn is noted as unverified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.model import AlertStatus, IncidentStatus
from core.store import Store
from detect.incidents import repository as incidents_repo
from resolve import actions_repository as repo
from resolve.audit import AuditLog
from resolve.executor import ACTOR, Executor, Note, Transition

__all__ = ["Signals", "Verifier", "signals_of"]

log = logging.getLogger(__name__)
#: services -> names of their SLOs burning above an alerting threshold
BurnCheck = Callable[[Sequence[str]], Sequence[str]]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Signals:
    """What still burns for an incident (all empty: restored)."""

    firing_alerts: tuple[str, ...] = ()
    anomalous_series: tuple[str, ...] = ()
    burning_slos: tuple[str, ...] = ()
    checked: dict[str, Any] = field(default_factory=dict)

    @property
    def restored(self) -> bool:
        return not (self.firing_alerts or self.anomalous_series or self.burning_slos)

    def to_wire(self) -> dict[str, Any]:
        return {"restored": self.restored, "firing_alerts": list(self.firing_alerts),
                "anomalous_series": list(self.anomalous_series), "burning_slos": list(self.burning_slos),
                **self.checked}  # fmt: skip


def signals_of(store: Store, incident_id: str, since: datetime, burning: BurnCheck | None = None) -> Signals:
    """The incident's signals now; anomalies count from ``since``."""
    incident = incidents_repo.incident_by_id(store, incident_id)
    services = list(incident.services) if incident else []
    alerts = incidents_repo.alerts_of(store, incident_id)
    firing = tuple(sorted({a.name for a in alerts if a.status is AlertStatus.FIRING}))
    anomalous: tuple[str, ...] = ()
    if services:
        marks = ", ".join("?" * len(services))
        rows = store.query(
            f"SELECT DISTINCT s.name FROM anomalies a JOIN series s ON s.series_id = a.series_id "
            f"WHERE s.service IN ({marks}) AND a.ts >= ? ORDER BY 1",
            [*services, since],
        )
        anomalous = tuple(str(r[0]) for r in rows)
    slos = tuple(sorted(burning(services))) if burning is not None and services else ()
    checked = {
        "alerts": sorted({a.name for a in alerts}),
        "services": services,
        "anomalies_since": since.isoformat(),
    }
    return Signals(firing, anomalous, slos, checked)


def _why(signals: Signals) -> str:
    parts = (
        f"alerts firing: {', '.join(signals.firing_alerts)}" if signals.firing_alerts else "",
        f"anomalous: {', '.join(signals.anomalous_series)}" if signals.anomalous_series else "",
        f"SLOs burning: {', '.join(signals.burning_slos)}" if signals.burning_slos else "",
    )
    return "; ".join(p for p in parts if p)


class Verifier:
    """Watch verifying plans; resolve with confirmation, or roll back and escalate."""

    def __init__(self, store: Store, executor: Executor, *, burning: BurnCheck | None = None,
                 transition: Transition | None = None, note: Note | None = None,
                 clock: Callable[[], datetime] = _now) -> None:  # fmt: skip
        self.store = store
        self.executor = executor
        self.burning = burning
        self.transition = transition
        self.note = note
        self.clock = clock
        self._seen: set[tuple[str, datetime]] = set()

    def run_pending(self) -> int:
        """Give a verdict on every plan whose window ended; return how many."""
        now = self.clock()
        done = 0
        for plan in repo.plans(self.store, status=["verifying"]):
            if plan.verify_until is None or plan.mitigated_at is None:
                continue
            incident = incidents_repo.incident_by_id(self.store, plan.incident_id)
            if incident is not None and incident.status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
                self._manual(plan, now)
                done += 1
                continue
            if now < plan.verify_until:
                continue
            half = plan.mitigated_at + timedelta(seconds=plan.verify_window_s / 2)
            signals = signals_of(self.store, plan.incident_id, half, self.burning)
            self._verdict(plan, signals, now)
            done += 1
        return done

    def check_resolved(self, incident_ids: Sequence[str], grace_s: float = 300.0) -> list[str]:
        """Incidents resolved without a verdict of ours: record whether their signals agreed, and
        note those resolved while signals still burn as unverified; return those."""
        unverified = []
        for incident_id in incident_ids:
            incident = incidents_repo.incident_by_id(self.store, incident_id)
            if (
                incident is None
                or incident.status is not IncidentStatus.RESOLVED
                or incident.resolved_at is None
            ):
                continue
            key = (incident_id, incident.resolved_at)
            if key in self._seen:
                continue
            self._seen.add(key)
            mine = repo.plans(self.store, incident=incident_id, status=["restored", "resolved_elsewhere"])
            if mine:
                continue  # our own verdict, or the verifying plan already recorded it
            since = incident.resolved_at - timedelta(seconds=grace_s)
            signals = signals_of(self.store, incident_id, since, self.burning)
            AuditLog(self.store).append("verdict", incident_id, {"resolved_without_verification": True,
                                                                 "unverified": not signals.restored,
                                                                 **signals.to_wire()})  # fmt: skip
            if not signals.restored:
                unverified.append(incident_id)
                self._note(incident_id, "resolved while signals still burn: unverified restoration ("
                                        + _why(signals) + ")")  # fmt: skip
        return unverified

    def _verdict(self, plan: repo.PlanRow, signals: Signals, now: datetime) -> None:
        verdict = {"restored": signals.restored, **signals.to_wire()}
        with self.store.transaction() as con:
            repo.update_plan(con, plan.id, status="restored" if signals.restored else "verification_failed",
                             verdict=verdict, finished_at=now if signals.restored else None)  # fmt: skip
            AuditLog(con).append(
                "verdict", plan.incident_id, {"plan": plan.id, "runbook": plan.runbook, **verdict}
            )
        if signals.restored:
            cited = ", ".join(signals.checked.get("alerts", [])) or "no alerts"
            text = (f"restoration confirmed after {plan.verify_window_s:.0f} s: alerts resolved ({cited}), "
                    f"no anomalous series, no SLO burning (runbook {plan.runbook})")  # fmt: skip
            self._transition(plan.incident_id, IncidentStatus.RESOLVED, text)
            return
        why = _why(signals)
        self._note(plan.incident_id, f"verification failed for runbook {plan.runbook} ({why}); "
                                     f"{'rolling back' if plan.rollback else 'no rollback steps'}; escalated")  # fmt: skip
        fresh = repo.plan_by_id(self.store, plan.id)
        if fresh is not None:
            self.executor.start_rollback(fresh, f"verification failed: {why}")

    def _manual(self, plan: repo.PlanRow, now: datetime) -> None:
        """Resolved during verification by someone else (an operator, or the pipeline once every alert
        stayed quiet): record whether the signals agreed."""
        signals = signals_of(self.store, plan.incident_id, plan.mitigated_at or now, self.burning)
        verdict = {"outside_verification": True, **signals.to_wire()}
        with self.store.transaction() as con:
            repo.update_plan(con, plan.id, status="resolved_elsewhere", verdict=verdict, finished_at=now)
            AuditLog(con).append("verdict", plan.incident_id, {"plan": plan.id, "unverified": not signals.restored,
                                                               **verdict})  # fmt: skip
        if not signals.restored:
            self._note(
                plan.incident_id,
                "resolved outside verification while signals still burn: unverified restoration",
            )

    def _note(self, incident_id: str, text: str) -> None:
        if self.note is not None:
            try:
                self.note(incident_id, ACTOR, text)
            except Exception:
                log.warning("could not note on %s", incident_id)

    def _transition(self, incident_id: str, status: IncidentStatus, text: str) -> None:
        if self.transition is not None:
            try:
                self.transition(incident_id, status, ACTOR, text)
            except Exception:
                log.info("incident %s did not move to %s", incident_id, status.value)
