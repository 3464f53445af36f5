"""Helpers for the backlog policy and tracker tests: budget statuses, seeded incidents, topology."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from core.batch import WriteBatch
from core.model import (
    Alert,
    AlertStatus,
    BudgetState,
    BudgetStatus,
    ConfigurationItem,
    Incident,
    IncidentStatus,
)
from core.store import Store
from detect.incidents import repository as incidents_repo

T0 = datetime(2026, 3, 1, 12, 0, 0)
SLO = "checkout-availability"
SERVICE = "checkout"


def status(
    state: BudgetState,
    *,
    remaining: float,
    burn: float = 2.0,
    at: datetime = T0,
    slo: str = SLO,
    service: str = SERVICE,
    exhaustion_s: float | None = None,
) -> BudgetStatus:
    """A budget status of ``slo`` with ``1 - remaining`` of the budget consumed."""
    return BudgetStatus(
        slo=slo, at=at, sli=0.999, budget_remaining=remaining, burn_rates={"5m": burn * 2, "1h": burn, "6h": burn},
        state=state, service=service, objective=0.999, good=99_900.0, total=100_000.0,
        budget_consumed=1.0 - remaining, bad_events=100.0 * (1.0 - remaining), bad_minutes=40.0 * (1.0 - remaining),
        exhaustion_s=exhaustion_s, alerts=("ticket",) if state != BudgetState.HEALTHY else (),
    )  # fmt: skip


def seed_incident(
    store: Store,
    iid: str,
    opened_at: datetime,
    origin: str,
    *,
    services: Sequence[str] = (SERVICE,),
    minutes: float | None = 30.0,
    alert_names: Sequence[str] = ("HighErrorRate",),
) -> Incident:
    """Store a (resolved after ``minutes``, or open when None) incident with one alert per name."""
    resolved = opened_at + timedelta(minutes=minutes) if minutes is not None else None
    inc = Incident(
        id=iid, title=f"{origin}: errors", status=IncidentStatus.RESOLVED if resolved else IncidentStatus.OPEN,
        priority="P2", opened_at=opened_at, services=tuple(dict.fromkeys([*services, origin])),
        origin_service=origin, resolved_at=resolved, alert_count=len(alert_names),
    )  # fmt: skip
    alerts = [
        Alert(
            id=f"{iid}-a{n}",
            fingerprint=f"{iid}-f{n}",
            name=name,
            status=AlertStatus.RESOLVED,
            starts_at=opened_at,
            service=origin,
            severity="page",
            ends_at=resolved,
            incident_id=iid,
        )
        for n, name in enumerate(alert_names)
    ]
    incidents_repo.save_round(store, alerts, [(inc, 0)], [], [], opened_at)
    return inc


def seed_topology(store: Store, *items: ConfigurationItem) -> None:
    """Replace the topology with ``items``."""
    store.write(WriteBatch(source="test", topology=list(items)))
