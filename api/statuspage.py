"""The public status page's model: components, their states, the overall indicator, public incidents.

Components are the consumer-facing services (topology ``consumer_facing`` or tier 1), else the
services that have SLOs. A component's state is the worst of: an active maintenance window
(``under_maintenance``), the active incidents touching it (major or P1 -> ``major_outage``, P2 ->
``partial_outage``, else ``degraded_performance``) and its SLOs (budget exhausted ->
``partial_outage``, a burn-rate alert firing -> ``degraded_performance``). Nothing internal is
published: public incidents name components and states only, never titles, evidence, hosts or
labels (the shapes follow Atlassian Statuspage's v2 API).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.model import BudgetState, Incident, IncidentStatus
from core.store import Store
from core.wire import iso_utc
from detect.incidents import repository as repo
from detect.incidents.suppress import window_active
from ingest.topology import current_topology
from slo.repository import latest_statuses, load_specs

__all__ = ["INDICATOR", "STATES", "Component", "PublicIncident", "StatusModel", "build"]

#: Component states, best first (Statuspage's names).
STATES = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")
#: The overall indicator for the worst component state.
INDICATOR = {"operational": "none", "under_maintenance": "none", "degraded_performance": "minor",
             "partial_outage": "major", "major_outage": "critical"}  # fmt: skip
_DESCRIPTION = {"none": "All Systems Operational", "minor": "Minor Service Outage",
                "major": "Partial System Outage", "critical": "Major System Outage"}  # fmt: skip
_PUBLIC_STATUS = {IncidentStatus.OPEN: "investigating", IncidentStatus.ACKNOWLEDGED: "identified",
                  IncidentStatus.MITIGATED: "monitoring", IncidentStatus.RESOLVED: "resolved",
                  IncidentStatus.CLOSED: "resolved"}  # fmt: skip
_IMPACT = {"major_outage": "critical", "partial_outage": "major", "degraded_performance": "minor"}


def public_id(text: str) -> str:
    """A stable opaque id, so public ids reveal nothing internal.

    >>> len(public_id("INC-1")), public_id("INC-1") == public_id("INC-1")
    (12, True)
    """
    return hashlib.sha256(f"opsloop-status:{text}".encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Component:
    """One consumer-facing service and its state."""

    name: str
    status: str


@dataclass(frozen=True, slots=True)
class PublicIncident:
    """An incident as the public sees it: which components, how bad, where it stands."""

    id: str
    name: str
    status: str
    impact: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    components: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StatusModel:
    """Everything the page and the JSON show."""

    at: datetime
    components: tuple[Component, ...]
    incidents: tuple[PublicIncident, ...]

    @property
    def indicator(self) -> str:
        """``none|minor|major|critical`` for the worst component."""
        worst = max((STATES.index(c.status) for c in self.components), default=0)
        return INDICATOR[STATES[worst]]

    @property
    def description(self) -> str:
        """The headline for the indicator."""
        return _DESCRIPTION[self.indicator]


def _incident_state(i: Incident) -> str:
    if i.major or i.priority == "P1":
        return "major_outage"
    return "partial_outage" if i.priority == "P2" else "degraded_performance"


def _worse(a: str, b: str) -> str:
    return a if STATES.index(a) >= STATES.index(b) else b


def component_names(store: Store) -> list[str]:
    """Consumer-facing (or tier-1) services from the topology, else the services with SLOs."""
    items = current_topology(store, learned=False)
    names = sorted(i.name for i in items if i.consumer_facing or i.tier == 1)
    return names or sorted({s.service for s in load_specs(store) if s.service})


def build(store: Store, now: datetime, history: Sequence[Incident] = ()) -> StatusModel:
    """Derive the page from open incidents, SLO states and maintenance windows at ``now``."""
    names = component_names(store)
    state = dict.fromkeys(names, "operational")
    active = repo.list_incidents(store, status=["open", "acknowledged", "mitigated"], limit=1000)
    for inc in active:
        for svc in inc.services:
            if svc in state:
                state[svc] = _worse(state[svc], _incident_state(inc))
    specs = {s.name: s.service for s in load_specs(store)}
    for slo, st in latest_statuses(store).items():
        svc = specs.get(slo, st.service)
        if svc in state:
            level = (
                "partial_outage"
                if st.state is BudgetState.EXHAUSTED
                else ("degraded_performance" if st.alerts else "operational")
            )
            state[svc] = _worse(state[svc], level)
    for w in repo.load_windows(store):
        if window_active(w, now):
            for svc in w.services:
                if svc in state and state[svc] != "major_outage":
                    state[svc] = "under_maintenance"
    public = []
    for inc in [*active, *history]:
        touched = tuple(s for s in inc.services if s in state)
        if not touched:
            continue
        impact = _IMPACT[_incident_state(inc)]
        name = f"{'Outage' if impact == 'critical' else 'Degraded service'}: {', '.join(touched)}"
        public.append(PublicIncident(public_id(inc.id), name, _PUBLIC_STATUS[inc.status], impact, inc.opened_at,
                                     inc.updated_at or inc.opened_at, inc.resolved_at, touched))  # fmt: skip
    return StatusModel(now, tuple(Component(n, state[n]) for n in names), tuple(public))


def _component_wire(c: Component, at: datetime, position: int) -> dict[str, Any]:
    stamp = iso_utc(at)
    return {"id": public_id(f"component:{c.name}"), "name": c.name, "status": c.status, "created_at": stamp,
            "updated_at": stamp, "position": position, "description": None, "showcase": True, "start_date": None,
            "group_id": None, "page_id": "opsloop", "group": False, "only_show_if_degraded": False}  # fmt: skip


def incident_wire(i: PublicIncident) -> dict[str, Any]:
    """One incident in Statuspage's shape (its one update is the current public state)."""
    when = iso_utc(i.updated_at)
    body = {"investigating": "We are investigating reduced service.", "identified": "The cause is identified; a fix is under way.",
            "monitoring": "A fix is in place; we are monitoring.", "resolved": "This incident is resolved."}[i.status]  # fmt: skip
    return {
        "id": i.id, "name": i.name, "status": i.status, "impact": i.impact, "created_at": iso_utc(i.created_at),
        "updated_at": when, "started_at": iso_utc(i.created_at), "monitoring_at": None,
        "resolved_at": iso_utc(i.resolved_at) if i.resolved_at else None, "shortlink": None, "page_id": "opsloop",
        "incident_updates": [{"id": public_id(f"{i.id}:{i.status}"), "status": i.status, "body": body,
                              "incident_id": i.id, "created_at": when, "updated_at": when, "display_at": when,
                              "affected_components": [{"code": public_id(f"component:{c}"), "name": c} for c in i.components]}],
        "components": [{"id": public_id(f"component:{c}"), "name": c} for c in i.components],
    }  # fmt: skip


def summary_wire(model: StatusModel, page_url: str, title: str = "Service status") -> dict[str, Any]:
    """``/api/v2/summary.json``: page, components, unresolved incidents, maintenances, status."""
    return {
        "page": {"id": "opsloop", "name": title, "url": page_url, "time_zone": "Etc/UTC", "updated_at": iso_utc(model.at)},
        "components": [_component_wire(c, model.at, k + 1) for k, c in enumerate(model.components)],
        "incidents": [incident_wire(i) for i in model.incidents if i.status != "resolved"],
        "scheduled_maintenances": [],
        "status": {"indicator": model.indicator, "description": model.description},
    }  # fmt: skip
