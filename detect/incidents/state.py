"""What the incident stages share: the pipeline's timings, alert groups and one round's writes.

``State`` is the one mutable object the stages of ``stages.py`` are handed: the groups and
their indexes, the live alert per condition, the changes, silences and windows in force, the
event-time clock, and the round's dirty alerts, incidents, timeline entries and outbox rows
that the pipeline flushes to the repository in one transaction. Keeping it in one place lets
each stage stay small and lets a test build exactly the state a stage reads.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from core.model import (
    Alert,
    AlertStatus,
    Change,
    Incident,
    IncidentStatus,
    MaintenanceWindow,
    Silence,
    TimelineEntry,
)
from core.settings import Settings
from core.store import Store
from core.topology import Topology
from detect.incidents import repository as repo
from detect.incidents.correlate import CorrelationConfig, load_correlation

__all__ = ["ACTIVE", "YOUNG", "Group", "PipelineConfig", "State", "symptom", "young"]

ACTIVE = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Timings of the pipeline (defaults an on-call SRE would pick; all overridable in settings)."""

    correlation: CorrelationConfig = field(default_factory=CorrelationConfig)
    resolve_after: timedelta = timedelta(minutes=5)  # all alerts quiet this long -> incident resolved
    reopen_within: timedelta = timedelta(minutes=30)  # a related alert this soon after reopens it
    deploy_window: timedelta = timedelta(minutes=30)  # alerts this soon after a change are linked to it
    deploy_grace: timedelta = timedelta(minutes=3)  # ... and held this long after the change
    flap_changes: int = 4  # state changes within flap_window that make an alert flapping
    flap_window: timedelta = timedelta(minutes=30)
    escalate_after: dict[str, timedelta] = field(
        default_factory=lambda: {
            "P1": timedelta(minutes=5),
            "P2": timedelta(minutes=15),
            "P3": timedelta(hours=1),
        }
    )
    major_services: int = 5
    sustain: int = 2
    high: float = 0.6
    clear: int = 5
    learning: timedelta = timedelta(0)
    warm_points: int = 30
    young: timedelta = timedelta(days=1)  # series this new need company to open an incident

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        """Build the configuration the settings describe (correlation rules read from their YAML file)."""
        return cls(
            correlation=load_correlation(settings.correlation_rules),
            resolve_after=timedelta(seconds=settings.incident_resolve_after_s),
            deploy_grace=timedelta(seconds=settings.deploy_grace_s),
            deploy_window=timedelta(seconds=settings.deploy_window_s),
            learning=timedelta(seconds=settings.alert_learning_s),
            warm_points=settings.detect_warm_points,
            young=timedelta(seconds=settings.detect_young_s),
            escalate_after={p: timedelta(seconds=v) for p, v in settings.escalate_after_s.items()},
        )


#: Annotation an anomaly alert carries when its series was young (``PipelineConfig.young``).
YOUNG = "young_series"


def young(alert: Alert) -> bool:
    """Tell whether an alert came from a series still too new to page on its own."""
    return alert.annotations.get(YOUNG) == "true"


def symptom(alert: Alert) -> bool:
    """Tell whether an alert keeps its group open to later alerts.

    SLO burn alerts look back hours to days and outlive their cause: they join incidents but
    do not keep one open to later, unrelated alerts (a symptom alert does).
    """
    return alert.source != "slo" and bool(alert.service)


@dataclass(slots=True)
class Group:
    """Alerts that belong together; becomes an incident once promoted."""

    id: str
    first_at: datetime
    last_at: datetime
    members: dict[str, Alert] = field(default_factory=dict)  # alert id -> alert
    incident: Incident | None = None
    seq: int = 0
    quiet_since: datetime | None = None
    svc: set[str] = field(default_factory=set)  # services of the members (kept as they join)
    change_ids: set[str] = field(default_factory=set)
    firing_ids: set[str] = field(default_factory=set)
    assigned: bool = False  # an operator chose the team: topology no longer decides it
    svc_seen: dict[str, datetime] = field(default_factory=dict)  # service -> its alerts' latest activity

    def active_services(self, at: datetime, window: timedelta) -> set[str]:
        """Return services with a firing symptom alert, or with alert activity within ``window`` before ``at``."""
        out = {self.members[i].service for i in self.firing_ids if symptom(self.members[i])}
        out.update(s for s, t in self.svc_seen.items() if at - t <= window)
        return out

    def has_live_symptom(self) -> bool:
        """Tell whether a symptom alert (not an SLO burn alert) is still firing."""
        return any(symptom(self.members[i]) for i in self.firing_ids)

    def services(self) -> set[str]:
        """Return the services of the members."""
        return self.svc

    def add(self, alert: Alert) -> None:
        """Add a member or replace it with its newer state (every membership change goes here)."""
        self.members[alert.id] = alert
        if alert.service:
            self.svc.add(alert.service)
            seen = alert.ends_at or alert.last_seen or alert.starts_at
            if symptom(alert) and seen > self.svc_seen.get(alert.service, datetime.min):
                self.svc_seen[alert.service] = seen
        if alert.change_id:
            self.change_ids.add(alert.change_id)
        if alert.status is AlertStatus.FIRING:
            self.firing_ids.add(alert.id)
        else:
            self.firing_ids.discard(alert.id)

    def firing(self) -> list[Alert]:
        """Return the firing members in id order."""
        return [self.members[i] for i in sorted(self.firing_ids)]


class State:
    """The groups, live alerts and inputs in force, plus the round's writes (see the module docstring)."""

    def __init__(self, store: Store, topology: Topology) -> None:
        self.store = store
        self.topology = topology
        self.now = datetime(1970, 1, 1)
        self.live: dict[str, Alert] = {}  # fingerprint -> current episode (firing, or last resolved)
        self.groups: dict[str, Group] = {}
        self.group_of: dict[str, str] = {}  # alert id -> group id
        self.by_service: dict[str, set[str]] = {}  # service -> ids of groups holding it
        self.changes: deque[Change] = deque()
        self.silences: list[Silence] = []
        self.windows: list[MaintenanceWindow] = []
        self.seq = 1  # the next incident's sequence number (INC-<seq>)
        self.group_seq = 0
        # the round's writes, flushed together
        self.dirty_alerts: dict[str, Alert] = {}
        self.dirty_incidents: dict[str, Group] = {}
        self.timeline: list[tuple[str, int, TimelineEntry]] = []
        self.timeline_len: dict[str, int] = {}
        self.outbox: list[repo.Notification] = []
        self.evidence: dict[str, datetime] = {}  # incident id -> event time its membership last changed

    def new_group(self, first_at: datetime, last_at: datetime, incident: Incident | None = None) -> Group:
        """Create a group with the next id (not yet registered)."""
        self.group_seq += 1
        return Group(id=f"g{self.group_seq}", first_at=first_at, last_at=last_at, incident=incident)

    def mark(self, alert: Alert) -> None:
        """Queue an alert's new state for the round and update its group's copy."""
        self.dirty_alerts[alert.id] = alert
        gid = self.group_of.get(alert.id)
        if gid is not None and gid in self.groups:
            self.groups[gid].add(alert)

    def note(self, g: Group, entry: TimelineEntry) -> None:
        """Append an entry to the group's incident timeline (nothing before it is an incident)."""
        if g.incident is None:
            return
        iid = g.incident.id
        n = self.timeline_len.get(iid)
        if n is None:
            n = repo.timeline_length(self.store, iid)
        self.timeline.append((iid, n, entry))
        self.timeline_len[iid] = n + 1
        self.dirty_incidents[iid] = g

    def new_evidence(self, incident_id: str, at: datetime) -> None:
        """Remember that an incident opened or gained an alert at event time ``at`` (for Diagnose)."""
        prev = self.evidence.get(incident_id)
        self.evidence[incident_id] = at if prev is None or at > prev else prev

    def set_status(self, g: Group, status: IncidentStatus, at: datetime, actor: str, text: str = "") -> str:
        """Move the group's incident to ``status``; return the notification that implies, or ``""``."""
        inc = g.incident
        assert inc is not None
        changes: dict[str, Any] = {"status": status, "updated_at": at}
        if status is IncidentStatus.ACKNOWLEDGED:
            changes["acknowledged_at"] = at
        elif status is IncidentStatus.MITIGATED:
            changes["mitigated_at"] = at
        elif status is IncidentStatus.RESOLVED:
            changes["resolved_at"] = at
        elif status is IncidentStatus.CLOSED:
            changes["closed_at"] = at
        elif status is IncidentStatus.OPEN:
            changes.update(resolved_at=None, acknowledged_at=None, mitigated_at=None, escalated_at=None)
        g.incident = replace(inc, **changes)
        self.note(g, TimelineEntry(at, "status", actor, text or f"{inc.status.value} -> {status.value}",
                                   {"from": inc.status.value, "to": status.value}))  # fmt: skip
        if status is IncidentStatus.RESOLVED:
            return "incident.resolved"
        if status is IncidentStatus.OPEN and inc.status is IncidentStatus.RESOLVED:
            return "incident.detected"
        return ""

    def drop(self, g: Group) -> None:
        """Forget a group that can no longer change (its rows stay in the store)."""
        for aid in g.members:
            self.group_of.pop(aid, None)
        for service in g.svc:
            ids = self.by_service.get(service)
            if ids is not None:
                ids.discard(g.id)
                if not ids:
                    del self.by_service[service]
        self.groups.pop(g.id, None)
