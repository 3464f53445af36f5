"""The public status page's model: components, their states, the overall indicator, public incidents.

Components are the consumer-facing services (topology ``consumer_facing`` or tier 1), else the
services that have SLOs. A component's state is the worst of: an active maintenance window
(``under_maintenance``), the active incidents touching it (major or P1 -> ``major_outage``, P2 ->
``partial_outage``, else ``degraded_performance``) and its SLOs (budget exhausted ->
``partial_outage``, a burn-rate alert firing -> ``degraded_performance``). Nothing internal is
published: public incidents name components and states only, never titles, evidence, hosts or
labels (the shapes follow Atlassian Statuspage's v2 API).

Public updates: ``draft_update`` words an update from the detected incident using only its
components, impact and lifecycle state; an operator approves it (maybe edited) and it lands in
the incident timeline as a ``public_update`` entry, which the page, the JSON and the Atom feed
then show. ``leaks`` names the internal terms (hosts, label values, services that are not
components, titles, evidence) a body must not contain before it is published.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.model import Alert, BudgetState, Incident, IncidentStatus
from core.store import Store
from core.wire import iso_utc
from detect.incidents import repository as repo
from detect.incidents.suppress import window_active
from ingest.topology import current_topology
from slo.repository import latest_statuses, load_specs

__all__ = [
    "INDICATOR",
    "PUBLIC_STATES",
    "PUBLIC_UPDATE",
    "STATES",
    "Component",
    "PublicIncident",
    "PublicUpdate",
    "StatusModel",
    "build",
    "draft_update",
    "internal_terms",
    "leaks",
]

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
#: Statuspage's incident states, in the order an incident goes through them.
PUBLIC_STATES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
#: The timeline kind of an operator-approved public update.
PUBLIC_UPDATE = "public_update"
_DONE = ("resolved", "postmortem")
_IMPACT_WORDS = {"critical": "an outage", "major": "a partial outage", "minor": "degraded performance"}
#: Label keys whose values are generic words, not identifiers (kept out of ``internal_terms``).
_GENERIC_LABELS = frozenset({"severity", "priority", "env", "environment", "tier", "status"})


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
class PublicUpdate:
    """One public incident update: a Statuspage state and plain text (``approved`` by an operator,
    else worded by opsloop from the incident's lifecycle)."""

    status: str
    body: str
    at: datetime
    approved: bool = False


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
    updates: tuple[PublicUpdate, ...] = ()  # newest first, as Statuspage lists them


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


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def impact_of(incident: Incident) -> str:
    """Statuspage's impact (``minor|major|critical``) for an incident's priority and major flag."""
    return _IMPACT[_incident_state(incident)]


def draft_update(incident: Incident, components: Sequence[str], status: str | None = None) -> tuple[str, str]:
    """Word a public update (state, text) from the incident's components, impact and lifecycle only.

    Nothing else of the incident is read, so titles, evidence, hosts and labels cannot leak.

    >>> inc = Incident("INC-1", "db-7 on fire", IncidentStatus.OPEN, "P1", datetime(2026, 1, 5, 9, 30))
    >>> draft_update(inc, ["checkout"])
    ('investigating', 'We are investigating an outage affecting checkout since 09:30 UTC. We will post an update as we learn more.')
    """
    status = status or _PUBLIC_STATUS[incident.status]
    what, where = _IMPACT_WORDS[impact_of(incident)], _join(list(components) or ["some services"])
    body = {
        "investigating": f"We are investigating {what} affecting {where} since {incident.opened_at:%H:%M} UTC. "
                         "We will post an update as we learn more.",
        "identified": f"We have identified the cause of {what} affecting {where} and are working on a fix.",
        "monitoring": f"A fix is in place for {where}; we are monitoring the results.",
        "resolved": f"This incident is resolved; {where} {'is' if len(components) == 1 else 'are'} operating normally.",
        "postmortem": f"We have completed our review of this incident affecting {where}.",
    }[status]  # fmt: skip
    return status, body


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _strings(v)


def internal_terms(incident: Incident, alerts: Sequence[Alert], components: Sequence[str]) -> set[str]:
    """What must never appear publicly: ids, title, team, services that are not components, alert
    names, label values (generic ones such as severity aside) and hypothesis evidence.

    Terms under 4 characters and component names are left out (they are not identifying).

    >>> inc = Incident("INC-1", "pool exhausted", IncidentStatus.OPEN, "P1", datetime(2026, 1, 5),
    ...                services=("checkout", "orders-db"))
    >>> sorted(internal_terms(inc, [], ["checkout"]))
    ['INC-1', 'orders-db', 'pool exhausted']
    """
    terms = {incident.id, incident.title, incident.team, incident.assignee, incident.origin_service}
    terms.update(incident.services)
    terms.update(incident.change_ids)
    for a in alerts:
        terms.update((a.id, a.name, a.fingerprint, a.service, a.change_id))
        terms.update(v for k, v in a.labels.items() if k not in _GENERIC_LABELS)
    for h in incident.hypotheses:
        terms.update((h.service, h.component, h.recommendation))
        terms.update(_strings(h.evidence))
    public = {c.casefold() for c in components}
    return {t.strip() for t in terms if len(t.strip()) >= 4 and t.strip().casefold() not in public}


def leaks(text: str, terms: Iterable[str]) -> list[str]:
    """The terms that occur in ``text`` as whole words, case-insensitively.

    >>> leaks("Checkout is slow on ip-10-0-3-17.", ["ip-10-0-3-17", "orders-db", "check"])
    ['ip-10-0-3-17']
    """
    return sorted(t for t in set(terms) if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", text, re.IGNORECASE))


def _updates(
    incident: Incident, touched: tuple[str, ...], store: Store
) -> tuple[str, tuple[PublicUpdate, ...]]:
    """The public state and updates (newest first): approved ones, else opsloop's own wording."""
    approved = [PublicUpdate(str(e.detail.get("status")), e.text, e.at, approved=True)
                for e in repo.timeline_of(store, incident.id)
                if e.kind == PUBLIC_UPDATE and e.detail.get("status") in PUBLIC_STATES]  # fmt: skip
    lifecycle, body = draft_update(incident, touched)
    at = incident.updated_at or incident.opened_at
    if not approved:
        return lifecycle, (PublicUpdate(lifecycle, body, at),)
    latest = approved[-1].status
    if lifecycle == "resolved" and latest not in _DONE:
        # resolved inside while the last public word was still "working on it": say so
        approved.append(PublicUpdate(lifecycle, body, max(incident.resolved_at or at, approved[-1].at)))
        latest = lifecycle
    return latest, tuple(reversed(approved))


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
        impact = impact_of(inc)
        name = f"{'Outage' if impact == 'critical' else 'Degraded service'}: {', '.join(touched)}"
        status, updates = _updates(inc, touched, store)
        updated = max(inc.updated_at or inc.opened_at, updates[0].at)
        public.append(PublicIncident(public_id(inc.id), name, status, impact, inc.opened_at, updated,
                                     inc.resolved_at, touched, updates))  # fmt: skip
    return StatusModel(now, tuple(Component(n, state[n]) for n in names), tuple(public))


def _component_wire(c: Component, at: datetime, position: int) -> dict[str, Any]:
    stamp = iso_utc(at)
    return {"id": public_id(f"component:{c.name}"), "name": c.name, "status": c.status, "created_at": stamp,
            "updated_at": stamp, "position": position, "description": None, "showcase": True, "start_date": None,
            "group_id": None, "page_id": "opsloop", "group": False, "only_show_if_degraded": False}  # fmt: skip


def incident_wire(i: PublicIncident) -> dict[str, Any]:
    """One incident in Statuspage's shape, its updates newest first."""
    affected = [{"code": public_id(f"component:{c}"), "name": c} for c in i.components]
    updates = [{"id": public_id(f"{i.id}:{len(i.updates) - k}:{u.status}"), "status": u.status, "body": u.body,
                "incident_id": i.id, "created_at": iso_utc(u.at), "updated_at": iso_utc(u.at),
                "display_at": iso_utc(u.at), "affected_components": affected}
               for k, u in enumerate(i.updates)]  # fmt: skip
    monitoring = [u.at for u in i.updates if u.status == "monitoring"]
    return {
        "id": i.id, "name": i.name, "status": i.status, "impact": i.impact, "created_at": iso_utc(i.created_at),
        "updated_at": iso_utc(i.updated_at), "started_at": iso_utc(i.created_at),
        "monitoring_at": iso_utc(min(monitoring)) if monitoring else None,
        "resolved_at": iso_utc(i.resolved_at) if i.resolved_at else None, "shortlink": None, "page_id": "opsloop",
        "incident_updates": updates,
        "components": [{"id": public_id(f"component:{c}"), "name": c} for c in i.components],
    }  # fmt: skip


def summary_wire(model: StatusModel, page_url: str, title: str = "Service status") -> dict[str, Any]:
    """``/api/v2/summary.json``: page, components, unresolved incidents, maintenances, status."""
    return {
        "page": {"id": "opsloop", "name": title, "url": page_url, "time_zone": "Etc/UTC", "updated_at": iso_utc(model.at)},
        "components": [_component_wire(c, model.at, k + 1) for k, c in enumerate(model.components)],
        "incidents": [incident_wire(i) for i in model.incidents if i.status not in _DONE],
        "scheduled_maintenances": [],
        "status": {"indicator": model.indicator, "description": model.description},
    }  # fmt: skip
