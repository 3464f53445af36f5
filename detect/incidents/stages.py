"""The alert -> incident chain as small stages with one protocol (Alertmanager's notification pipeline).

A :class:`Stage` is called with a :class:`Signal` (an alert's firing or resolving at an event
time, later the group it joined) and returns it, annotated, for the next stage, or ``None``
when the signal stops there (a repeat, a suppressed alert, a resolve). :class:`Chain` runs
them in this order, because each decision needs the ones before it:

``Dedup -> Flap -> Silence -> Maintenance -> Hold -> Correlate -> Promote -> Priority -> Notify``

- dedup first: a repeat of a firing condition only refreshes ``last_seen``;
- flap before suppression: every real state change counts, silenced or not;
- silence, maintenance and hold annotate (suppressed alerts are kept, never dropped);
- correlate skips suppressed alerts and puts the rest in a group (topology inhibition);
- promote opens (or reopens) the group's incident; priority recomputes it; notify queues
  the webhook messages, held while every firing alert flaps or is inhibited.

The pipeline also enters the chain part-way: at ``Correlate`` for alerts restored after a
restart, at ``Promote`` for the time-driven check of a group waiting for company. Stages
share one :class:`~detect.incidents.state.State` and otherwise hold only what they need.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

import xxhash

from core.model import Alert, AlertStatus, Incident, IncidentStatus, TimelineEntry
from core.settings import Settings
from core.telemetry import INCIDENTS_OPENED
from core.topology import Topology
from detect.incidents import repository as repo
from detect.incidents.correlate import CorrelationConfig
from detect.incidents.notify import render
from detect.incidents.priority import assess
from detect.incidents.state import ACTIVE, Group, State, symptom, young
from detect.incidents.suppress import active_window, alert_labels, deploy_for, never_held, silencing

__all__ = [
    "Chain",
    "Correlate",
    "Dedup",
    "Flap",
    "Hold",
    "Maintenance",
    "Notify",
    "Priority",
    "Promote",
    "Signal",
    "Silence",
    "Stage",
    "origin_of",
]

#: severities that join incidents but never open one (an SLO's slow burn is a ticket, not a page)
_NO_PAGE = frozenset({"ticket", "info", "informational", "none"})


@dataclass(slots=True)
class Signal:
    """One input travelling down the chain; stages fill it in as they go."""

    at: datetime  # event time
    alert: Alert | None = None  # the alert as annotated so far (None: a group-only check)
    resolves: str = ""  # fingerprint of a condition that stopped (Dedup turns it into ``alert``)
    group: Group | None = None  # set by Correlate (or by the caller entering at Promote)
    opened: bool = False  # Promote opened the group's incident on this signal
    notify: str = ""  # the notification event Notify sends ("" for none)


class Stage(Protocol):
    """The one stage protocol: take a signal, return it to go on or ``None`` to stop."""

    def __call__(self, s: Signal) -> Signal | None:
        """Apply the stage to one signal."""
        ...


class Chain:
    """Stages run in order; a signal stops at the first stage returning ``None``.

    >>> seen = []
    >>> def tap(s: Signal) -> Signal | None:
    ...     seen.append(s.at.minute)
    ...     return s if s.at.minute else None
    >>> chain = Chain([tap, tap])
    >>> chain.run(Signal(datetime(2026, 1, 1, 0, 1))) is not None, chain.run(Signal(datetime(2026, 1, 1)))
    (True, None)
    >>> seen
    [1, 1, 0]
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)

    def run(self, s: Signal, start: Stage | None = None) -> Signal | None:
        """Run the signal through the stages from ``start`` (the first one by default)."""
        at = 0 if start is None else self.stages.index(start)
        for stage in self.stages[at:]:
            out = stage(s)
            if out is None:
                return None
            s = out
        return s


class Dedup:
    """Drop a repeat of a firing condition (its ``last_seen`` moves on) and a resolve of nothing."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __call__(self, s: Signal) -> Signal | None:
        """Let a new episode or the end of a firing one through."""
        fp = s.resolves or (s.alert.fingerprint if s.alert is not None else "")
        current = self.state.live.get(fp)
        firing = current is not None and current.status is AlertStatus.FIRING
        if s.resolves:
            if current is None or not firing:
                return None
            s.alert = replace(current, status=AlertStatus.RESOLVED, ends_at=max(s.at, current.starts_at),
                              last_seen=s.at)  # fmt: skip
            return s
        if current is not None and firing:
            self.state.mark(replace(current, last_seen=max(s.at, current.last_seen or s.at)))
            return None
        return s


class Flap:
    """Count each condition's state changes; ``changes`` of them within ``window`` mark it flapping.

    A flapping alert stays marked until it resolves; its next episode is judged afresh.
    """

    def __init__(self, changes: int, window: timedelta) -> None:
        self.changes = changes
        self.window = window
        self.history: dict[str, deque[datetime]] = {}

    def __call__(self, s: Signal) -> Signal | None:
        """Record the state change and mark the alert when it flaps."""
        if s.alert is None:
            return s
        history = self.history.setdefault(s.alert.fingerprint, deque())
        history.append(s.at)
        while history and history[0] < s.at - self.window:
            history.popleft()
        flapping = len(history) >= self.changes
        s.alert = replace(s.alert, flapping=s.alert.flapping or flapping, transitions=len(history))
        return s

    def prune(self, horizon: datetime) -> None:
        """Forget histories with no change since ``horizon`` (memory stays bounded)."""
        for fp, history in list(self.history.items()):
            if not history or history[-1] < horizon:
                del self.history[fp]


def _new_firing(s: Signal) -> Alert | None:
    """Return the signal's alert when it starts an episode (only those are suppressed or held)."""
    a = s.alert
    return a if a is not None and not s.resolves and a.status is AlertStatus.FIRING else None


class Silence:
    """Annotate a new episode a silence matches (``suppressed_by="silence:<id>"``)."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __call__(self, s: Signal) -> Signal | None:
        """Mark the alert silenced when a silence in force matches its labels."""
        a = _new_firing(s)
        if a is not None:
            found = silencing(self.state.silences, a, s.at)
            if found is not None:
                s.alert = replace(a, suppressed_by=f"silence:{found.id}")
        return s


class Maintenance:
    """Annotate a new episode on a service under maintenance (unless already silenced)."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __call__(self, s: Signal) -> Signal | None:
        """Mark the alert suppressed when a maintenance window covers its service now."""
        a = _new_firing(s)
        if a is not None and a.service and not a.suppressed_by:
            window = active_window(self.state.windows, a.service, s.at)
            if window is not None:
                s.alert = replace(a, suppressed_by=f"maintenance:{window.id}")
        return s


class Hold:
    """Link a new episode to a recent change on its service and hold it through the change's grace."""

    def __init__(self, state: State, window: timedelta, grace: timedelta) -> None:
        self.state = state
        self.window = window
        self.grace = grace

    def __call__(self, s: Signal) -> Signal | None:
        """Set ``change_id`` and, unless the alert is never held, ``held_until``."""
        a = _new_firing(s)
        if a is None or not a.service:
            return s
        change = deploy_for(list(self.state.changes), a.service, s.at, self.window)
        if change is not None:
            a = replace(a, change_id=change.id)
            hold = change.ts + self.grace
            if hold > s.at and not never_held(a, self.state.topology.consumer_facing(a.service)):
                a = replace(a, held_until=hold)
            s.alert = a
        return s


class Correlate:
    """Put a new episode in the closest related group (or a new one); a resolve leaves its group.

    Suppressed alerts are recorded and stop here. A caller's alert joining a group where its
    dependency fires is inhibited (joins without paging).
    """

    def __init__(self, state: State, config: CorrelationConfig, reopen_within: timedelta) -> None:
        self.state = state
        self.config = config
        self.reopen_within = reopen_within

    def __call__(self, s: Signal) -> Signal | None:
        """Record the alert as its condition's live episode and place it in a group."""
        alert = s.alert
        if alert is None:
            return s
        st = self.state
        st.live[alert.fingerprint] = alert  # a new episode: correlated afresh (it may reopen an incident)
        if alert.status is not AlertStatus.FIRING:
            self._leave(alert, s.at)
            return None
        if alert.suppressed_by:
            st.mark(alert)
            return None
        s.group, s.alert = self._join(alert, s.at)
        return s

    def _leave(self, alert: Alert, at: datetime) -> None:
        st = self.state
        st.mark(alert)
        gid = st.group_of.get(alert.id)
        if gid is not None and gid in st.groups:
            g = st.groups[gid]
            g.add(alert)
            if g.incident is not None:
                st.note(g, TimelineEntry(at, "alert_resolved", "opsloop", alert.name, {"alert_id": alert.id}))
            if not g.firing_ids:
                g.quiet_since = at

    def _join(self, alert: Alert, at: datetime) -> tuple[Group, Alert]:
        st = self.state
        labels = alert_labels(alert)
        window = self.window_for(labels)
        candidates: list[tuple[int, datetime, Group]] = []
        for g in self._candidate_groups(alert):
            inc = g.incident
            if inc is not None and inc.status not in ACTIVE:  # recently resolved: may reopen
                eligible = (
                    inc.status is IncidentStatus.RESOLVED
                    and inc.resolved_at is not None
                    and at - inc.resolved_at <= self.reopen_within
                )
            else:
                eligible = g.has_live_symptom() or at - g.last_at <= window
            if eligible:
                d = self.related(g, alert, labels)
                if d is not None:
                    candidates.append((d, g.last_at, g))
        if candidates:
            candidates.sort(key=lambda c: (c[0], -c[1].timestamp()))
            group = candidates[0][2]
        else:
            group = st.new_group(alert.starts_at, at)
            st.groups[group.id] = group
        # topology inhibition: a caller's symptom joins its dependency's incident without paging
        for other in group.firing():
            linked = other.service and alert.service and other.service != alert.service
            if linked and st.topology.depends_on(alert.service, other.service):
                alert = replace(alert, inhibited_by=other.id)
                break
        group.add(alert)
        if alert.service:
            st.by_service.setdefault(alert.service, set()).add(group.id)
        if symptom(alert):
            group.last_at = max(group.last_at, at)
        group.quiet_since = None
        st.group_of[alert.id] = group.id
        st.live[alert.fingerprint] = alert
        if group.incident is not None:
            alert = replace(alert, incident_id=group.incident.id)
            group.add(alert)
            st.live[alert.fingerprint] = alert
            st.note(group, TimelineEntry(at, "alert", "opsloop", alert.name,
                                         {"alert_id": alert.id, "service": alert.service}))  # fmt: skip
            st.new_evidence(group.incident.id, at)
        st.mark(alert)
        return group, alert

    def related(self, g: Group, alert: Alert, labels: dict[str, str]) -> int | None:
        """Return how close the alert is to the group (lower is closer), or None when unrelated."""
        cfg = self.config
        if alert.change_id and alert.change_id in g.change_ids:
            return 0
        best: int | None = None
        if alert.service:
            near = self.state.topology.distances(alert.service)
            for service in g.active_services(alert.last_seen or alert.starts_at, self.window_for(labels)):
                d = 0 if service == alert.service else near.get(service)
                if d is not None and d <= cfg.hops and (best is None or d < best):
                    best = d
        if best == 0:
            return 0
        if cfg.share_labels:
            for other in g.members.values():
                other_labels = alert_labels(other)
                if any(labels.get(k) and labels.get(k) == other_labels.get(k) for k in cfg.share_labels):
                    return 0
        for rule in cfg.rules:
            if rule.matches(labels) and any(rule.matches(alert_labels(o)) for o in g.members.values()):
                return 0
        return best

    def _candidate_groups(self, alert: Alert) -> list[Group]:
        """Return groups holding a service near the alert's, or its change (every group with label/rule correlation)."""
        cfg, st = self.config, self.state
        if cfg.share_labels or cfg.rules or not alert.service:
            return list(st.groups.values())
        ids: set[str] = set()
        for service, d in st.topology.distances(alert.service).items():
            if d <= cfg.hops:
                ids |= st.by_service.get(service, set())
        ids |= st.by_service.get(alert.service, set())
        if alert.change_id:
            ids |= {g.id for g in st.groups.values() if alert.change_id in g.change_ids}
        return [st.groups[i] for i in sorted(ids) if i in st.groups]

    def window_for(self, labels: dict[str, str]) -> timedelta:
        """Return the correlation window for an alert's labels (the widest matching rule's)."""
        windows = [r.window for r in self.config.rules if r.window is not None and r.matches(labels)]
        return max(windows, default=self.config.window)


def origin_of(g: Group, topology: Topology) -> str:
    """Return the probable origin before Diagnose runs.

    That is the member service most other members depend on (the callee they call), the
    earliest onset breaking ties.
    """
    services = sorted(g.services())
    if not services:
        return ""
    onset = {s: min(a.starts_at for a in g.members.values() if a.service == s) for s in services}

    def callers(s: str) -> int:
        return sum(1 for o in services if o != s and topology.depends_on(o, s))

    return max(services, key=lambda s: (callers(s), -onset[s].timestamp(), s))


class Promote:
    """Open the group's incident once it qualifies; reopen a resolved one a related alert joined.

    A group qualifies with ``min_alerts`` effective alerts, a critical external alert, a lone
    alert firing for ``single_hold``, or a satisfied rule. Effective: one per condition (its
    latest episode), not held by a deploy, not flapping, not ticket/info severity.

    A lone alert of a *young* series (less than a day of its own history: see
    :func:`~detect.incidents.state.young`) does not open an incident by lasting: before its
    daily cycle is known, one series drifting out of its band is as likely the first
    morning's ramp as a fault, so it waits for a second, related condition to agree.
    """

    def __init__(self, state: State, config: CorrelationConfig) -> None:
        self.state = state
        self.config = config

    def __call__(self, s: Signal) -> Signal | None:
        """Open or reopen the incident of the signal's group when due."""
        g = s.group
        if g is None:
            return s
        if g.incident is None:
            reason = self.reason(g, s.at)
            if reason:
                self._open(g, s.at, reason)
                s.opened, s.notify = True, "incident.detected"
        elif s.alert is not None and g.incident.status is IncidentStatus.RESOLVED:
            s.notify = self.state.set_status(
                g, IncidentStatus.OPEN, s.at, "opsloop", "reopened: a related alert fired"
            )
        return s

    def effective(self, g: Group, at: datetime) -> list[Alert]:
        """Return one alert per condition that may open an incident (re-fires count once)."""
        latest: dict[str, Alert] = {}
        for a in g.members.values():
            seen = latest.get(a.fingerprint)
            if seen is None or a.starts_at >= seen.starts_at:
                latest[a.fingerprint] = a
        return [
            a
            for a in latest.values()
            if (a.held_until is None or a.held_until <= at)
            and not a.flapping
            and a.severity.lower() not in _NO_PAGE
        ]

    def reason(self, g: Group, at: datetime) -> str:
        """Return why the group opens an incident at ``at``, or ``""`` while it does not."""
        cfg = self.config
        effective = self.effective(g, at)
        live = [a for a in effective if a.status is AlertStatus.FIRING]
        if not live:
            return ""
        if len(effective) >= cfg.min_alerts:
            return f"{len(effective)} related alerts"
        if any(a.severity.lower() in ("critical", "page") and a.source != "anomaly" for a in live):
            return "a critical alert"
        if any(at - a.starts_at >= cfg.single_hold and not young(a) for a in live):
            return f"an alert firing for {int(cfg.single_hold.total_seconds() // 60)} min"
        all_labels = [alert_labels(a) for a in effective]
        rule = next((r for r in cfg.rules if r.satisfied(all_labels)), None)
        return f"rule {rule.name!r}" if rule is not None else ""

    def _open(self, g: Group, at: datetime, reason: str) -> None:
        st = self.state
        seq = st.seq
        st.seq += 1
        g.seq = seq
        origin = origin_of(g, st.topology)
        incident = Incident(
            id=f"INC-{seq}", title="", status=IncidentStatus.OPEN, priority="P4", opened_at=at,
            origin_service=origin, team=st.topology.owner(origin),
        )  # fmt: skip
        g.incident = incident
        st.timeline_len[incident.id] = 0
        for a in list(g.members.values()):
            attached = replace(a, incident_id=incident.id)
            g.add(attached)
            if st.live.get(a.fingerprint) is not None and st.live[a.fingerprint].id == a.id:
                st.live[a.fingerprint] = attached
            st.dirty_alerts[a.id] = attached
        for a in sorted(g.members.values(), key=lambda a: a.starts_at):
            st.note(g, TimelineEntry(max(a.starts_at, g.first_at), "alert", "opsloop", a.name,
                                     {"alert_id": a.id, "service": a.service}))  # fmt: skip
        for cid in sorted({a.change_id for a in g.members.values() if a.change_id}):
            change = next((c for c in st.changes if c.id == cid), None)
            if change is not None:
                st.note(g, TimelineEntry(change.ts, "change", change.source or "cd",
                                         f"{change.kind.value} {change.service} {change.version}".strip(),
                                         {"change_id": change.id}))  # fmt: skip
        st.note(g, TimelineEntry(at, "opened", "opsloop", f"opened: {reason}", {"reason": reason}))
        st.new_evidence(incident.id, at)


class Priority:
    """Recompute title, services, priority and team: at once for a new incident, else once a round.

    An alert joining an incident only marks it stale: ``flush`` recomputes each stale incident
    once, however many alerts joined in the round.
    """

    def __init__(self, state: State, major_services: int) -> None:
        self.state = state
        self.major_services = major_services
        self.stale: dict[str, Group] = {}  # group id -> group whose incident needs recomputing

    def __call__(self, s: Signal) -> Signal | None:
        """Assess a just-opened incident now; mark one an alert joined as stale."""
        g = s.group
        if g is None or g.incident is None:
            return s
        if s.opened:
            self.refresh(g, s.at)
            INCIDENTS_OPENED.labels(g.incident.priority).inc()
        elif s.alert is not None:
            self.stale[g.id] = g
        return s

    def flush(self, now: datetime) -> None:
        """Recompute every stale incident (at the later of ``now`` and its last activity)."""
        for g in self.stale.values():
            if g.incident is not None:
                self.refresh(g, max(now, g.last_at))
        self.stale.clear()

    def refresh(self, g: Group, at: datetime) -> None:
        """Recompute title, services, priority, team after membership changed."""
        inc = g.incident
        if inc is None:
            return
        topology = self.state.topology
        services = tuple(sorted(g.services()))
        origin = origin_of(g, topology) or inc.origin_service
        a = assess(services, g.members.values(), topology, major_services=self.major_services)
        first = min(g.members.values(), key=lambda m: (m.starts_at, m.id))
        on_origin = [m for m in g.members.values() if m.service == origin]
        # the title names the origin's most surprising alert (external alerts have no score: earliest)
        lead = min(on_origin, key=lambda m: (-(m.score or 0.0), m.starts_at, m.id)) if on_origin else first
        extra = len(services) - 1
        title = f"{origin or lead.service or 'unknown'}: {lead.name}" + (
            f" (+{extra} services)" if extra > 0 else ""
        )
        changes = tuple(sorted({m.change_id for m in g.members.values() if m.change_id}))
        new = replace(
            inc, title=title, services=services, priority=a.priority, priority_reason=a.reason, major=a.major,
            alert_count=len(g.members), origin_service=origin,
            team=inc.team if g.assigned else topology.owner(origin),
            change_ids=changes, updated_at=at,
        )  # fmt: skip
        if inc.priority and new.priority != inc.priority and inc.title:
            self.state.note(
                g, TimelineEntry(at, "priority", "opsloop", f"{inc.priority} -> {new.priority}: {a.reason}")
            )
        g.incident = new
        self.state.dirty_incidents[new.id] = g


class Notify:
    """Queue one outbox message per webhook for the signal's notification.

    Held (not queued) while every firing alert of the group flaps or is inhibited; a
    resolution always goes out.
    """

    def __init__(self, state: State, webhooks: Sequence[dict[str, str]], settings: Settings) -> None:
        self.state = state
        self.webhooks = webhooks
        self.settings = settings

    def __call__(self, s: Signal) -> Signal | None:
        """Send the signal's notification, if it carries one."""
        if s.notify and s.group is not None:
            self.send(s.group, s.notify)
        return s

    def send(self, g: Group, event: str) -> None:
        """Queue ``event`` about the group's incident for every webhook."""
        inc = g.incident
        if inc is None or not event or not self.webhooks:
            return
        firing = g.firing()
        if event != "incident.resolved" and firing and all(a.flapping or a.inhibited_by for a in firing):
            return  # flapping alerts hold their notifications
        for hook in self.webhooks:
            fmt = hook.get("format", "cdevents")
            payload = render(fmt, event, inc, self.settings)
            nid = xxhash.xxh3_64_hexdigest(
                f"{inc.id}\x00{event}\x00{hook['url']}\x00{len(self.state.outbox)}\x00{self.state.now}".encode()
            )
            self.state.outbox.append(repo.Notification(nid, inc.id, event, fmt, hook["url"], payload))
