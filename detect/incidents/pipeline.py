"""The alert -> incident pipeline: dedup, flap, suppress, hold, correlate, prioritise, assign.

Inputs arrive from three places and are queued (never blocking the caller):

- the detection engine's output (``offer_detection``): bands and flagged points, which the
  ``AnomalyAlerter`` turns into fire/resolve transitions per series;
- committed ingest batches (``offer_batch``): external alerts (Alertmanager, PagerDuty),
  changes (deploys, config) and CloudEvents (maintenance windows);
- operators, through the API (``transition``, ``assign``, ``note``, silences, windows).

``process(now)`` drains the queue, applies the inputs in event-time order, and runs what
depends on time (deploy holds ending, lone alerts maturing, incidents resolving when their
alerts stay quiet, escalation). Time is *event time*: a replay passes each chunk's end and
asks for the time-driven steps at every sample interval in between; the server thread
passes the wall clock about once a second. Every round's changes are written in one
transaction. A flapping alert stays marked until it resolves; its next episode is judged
afresh on the state changes of the last ``flap_window``.

The stages are plain methods called in Alertmanager's order: dedup -> flap -> silence /
maintenance -> deploy hold -> correlate (with topology inhibition) -> promote -> notify.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import xxhash

from core.batch import WriteBatch
from core.errors import ConfigError, ConflictError, NotFoundError
from core.model import (
    Alert,
    AlertStatus,
    Change,
    Event,
    ExternalAlert,
    ExternalAlertStatus,
    Hypothesis,
    Incident,
    IncidentStatus,
    MaintenanceWindow,
    Silence,
    TimelineEntry,
)
from core.settings import Settings
from core.store import Store
from core.telemetry import ALERTS_RECEIVED, CORRELATION_SECONDS, INCIDENTS_OPEN, INCIDENTS_OPENED
from core.topology import Topology
from detect.incidents import repository as repo
from detect.incidents.alerts import AlertTransitions, AnomalyAlerter
from detect.incidents.correlate import CorrelationConfig, load_correlation
from detect.incidents.notify import FORMATS, render
from detect.incidents.priority import assess
from detect.incidents.suppress import (
    active_window,
    alert_labels,
    deploy_for,
    never_held,
    silencing,
    window_from_event,
)
from detect.repository import series_labels

__all__ = ["IncidentPipeline", "PipelineConfig"]

log = logging.getLogger(__name__)

MAINTENANCE_EVENT = "dev.opsloop.maintenance.scheduled"
CDEVENTS_INCIDENT = "dev.cdevents.incident."
#: severities that join incidents but never open one (an SLO's slow burn is a ticket, not a page)
_NO_PAGE = frozenset({"ticket", "info", "informational", "none"})
_ACTIVE = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


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
    learning: timedelta = timedelta(days=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        """The configuration the settings describe (correlation rules read from their YAML file)."""
        return cls(
            correlation=load_correlation(settings.correlation_rules),
            resolve_after=timedelta(seconds=settings.incident_resolve_after_s),
            deploy_grace=timedelta(seconds=settings.deploy_grace_s),
            deploy_window=timedelta(seconds=settings.deploy_window_s),
            learning=timedelta(seconds=settings.alert_learning_s),
            escalate_after={p: timedelta(seconds=v) for p, v in settings.escalate_after_s.items()},
        )


def _symptom(alert: Alert) -> bool:
    """SLO burn alerts look back hours to days and outlive their cause: they join incidents but
    do not keep one open to later, unrelated alerts (a symptom alert does)."""
    return alert.source != "slo" and bool(alert.service)


@dataclass(slots=True)
class _Group:
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
        """Services with a firing symptom alert, or with alert activity within ``window`` before ``at``."""
        out = {self.members[i].service for i in self.firing_ids if _symptom(self.members[i])}
        out.update(s for s, t in self.svc_seen.items() if at - t <= window)
        return out

    def has_live_symptom(self) -> bool:
        """Whether a symptom alert (not an SLO burn alert) is still firing."""
        return any(_symptom(self.members[i]) for i in self.firing_ids)

    def services(self) -> set[str]:
        return self.svc

    def add(self, alert: Alert) -> None:
        """Add a member or replace it with its newer state (every membership change goes here)."""
        self.members[alert.id] = alert
        if alert.service:
            self.svc.add(alert.service)
            seen = alert.ends_at or alert.last_seen or alert.starts_at
            if _symptom(alert) and seen > self.svc_seen.get(alert.service, datetime.min):
                self.svc_seen[alert.service] = seen
        if alert.change_id:
            self.change_ids.add(alert.change_id)
        if alert.status is AlertStatus.FIRING:
            self.firing_ids.add(alert.id)
        else:
            self.firing_ids.discard(alert.id)

    def firing(self) -> list[Alert]:
        return [self.members[i] for i in sorted(self.firing_ids)]


@dataclass(frozen=True, slots=True)
class _Detection:
    bands: pa.Table
    flagged: Any


class IncidentPipeline:
    """Turn signals into prioritised, assigned incidents (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        config: PipelineConfig | None = None,
        topology: Topology | None = None,
        webhooks: Sequence[dict[str, str]] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.config = config or PipelineConfig.from_settings(self.settings)
        self.webhooks = list(webhooks if webhooks is not None else self.settings.notify_webhooks)
        for i, hook in enumerate(self.webhooks):
            if not hook.get("url", "").startswith(("http://", "https://")):
                raise ConfigError(f"notify_webhooks[{i}].url: an http(s) URL is required")
            if hook.get("format", "cdevents") not in FORMATS:
                raise ConfigError(f"notify_webhooks[{i}].format: expected one of {', '.join(FORMATS)}")
        self.clock = clock
        self.topology = topology if topology is not None else self._load_topology()
        self.alerter = AnomalyAlerter(
            self.config.sustain, self.config.high, self.config.clear, self.config.learning.total_seconds()
        )
        self._inbox: deque[Any] = deque()
        self._cv = threading.Condition()
        self._lock = threading.RLock()  # state: worker thread vs API commands
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._labels: dict[int, dict[str, str]] = {}
        self.live: dict[str, Alert] = {}  # fingerprint -> current episode (firing, or last resolved)
        self._flaps: dict[str, deque[datetime]] = {}
        self.groups: dict[str, _Group] = {}
        self._group_of: dict[str, str] = {}  # alert id -> group id
        self._by_service: dict[str, set[str]] = {}  # service -> ids of groups holding it
        self._stale: dict[str, _Group] = {}  # incidents whose title/priority need recomputing
        self.changes: deque[Change] = deque()
        self.silences: list[Silence] = repo.load_silences(store)
        self.windows: list[MaintenanceWindow] = repo.load_windows(store)
        self._seq = repo.next_incident_seq(store)
        self._group_seq = 0
        self._dirty_alerts: dict[str, Alert] = {}
        self._dirty_incidents: dict[str, _Group] = {}
        self._timeline: list[tuple[str, int, TimelineEntry]] = []
        self._timeline_len: dict[str, int] = {}
        self._outbox: list[repo.Notification] = []
        self.now = datetime(1970, 1, 1)
        self._next_tick: datetime | None = None
        self._held: list[tuple[datetime, int, Callable[[], None]]] = []  # inputs stamped after ``now``
        self._step_seq = 0
        self._last_prune = datetime(1970, 1, 1)
        #: when a list, every queued input's seconds from queued to committed are appended (benches)
        self.latencies: list[float] | None = None
        self._evidence: dict[str, datetime] = {}  # incident id -> event time its membership last changed
        self._listeners: list[Callable[[list[tuple[str, datetime]]], None]] = []
        self._restore()

    # ------------------------------------------------------------------ wiring

    def _load_topology(self) -> Topology:
        from ingest.topology import current_topology

        return Topology(current_topology(self.store))

    def refresh_topology(self) -> None:
        """Re-read the topology from the store (after a topology upload)."""
        with self._lock:
            self.topology = self._load_topology()

    def add_listener(self, listener: Callable[[list[tuple[str, datetime]]], None]) -> None:
        """Call ``listener([(incident_id, at), ...])`` after each round that opened an incident or
        changed one's alerts (``at`` = event time of the change); Diagnose subscribes here.
        Listeners run in the pipeline's thread while it holds its lock: they must only queue work."""
        self._listeners.append(listener)

    def set_hypotheses(self, incident_id: str, hypotheses: Sequence[Hypothesis], at: datetime) -> Incident:
        """Store a diagnosis on an incident; the timeline notes when the leading cause changes."""
        with self._lock:
            g = next(
                (g for g in self.groups.values() if g.incident is not None and g.incident.id == incident_id),
                None,
            )
            if g is None or g.incident is None:  # resolved and forgotten: straight to the store
                return repo.save_hypotheses(self.store, incident_id, hypotheses, at)
            note = repo.diagnosis_note(g.incident.hypotheses, hypotheses, at)
            g.incident = replace(g.incident, hypotheses=tuple(hypotheses))
            if note is not None:
                self._note(g, note)
            self._dirty_incidents[incident_id] = g
            self._flush()
            return g.incident

    def offer_detection(self, bands: pa.Table, flagged: Any) -> None:
        """Queue the detection engine's output for one committed batch (never blocks)."""
        self._put(_Detection(bands, flagged))

    def offer_batch(self, batch: WriteBatch) -> None:
        """Queue what a committed ingest batch carries for this stage (alerts, changes, events)."""
        if batch.alerts or batch.changes or batch.events or batch.topology is not None:
            self._put(batch)

    def _put(self, item: Any) -> None:
        with self._cv:
            self._inbox.append((item, time.perf_counter()))
            self._cv.notify()

    def start(self, poll_s: float = 1.0) -> None:
        """Run ``process`` in a thread: on new input, and every ``poll_s`` for time-driven steps."""
        if self._thread is not None:
            return
        self._stopping = False

        def run() -> None:
            while True:
                with self._cv:
                    if not self._inbox and not self._stopping:
                        self._cv.wait(poll_s)
                    stopping = self._stopping
                try:
                    self.process(self.clock())
                except Exception:  # the worker loop survives anything; it logs and goes on
                    log.exception("incident pipeline round failed")
                if stopping:
                    return

        self._thread = threading.Thread(target=run, name="opsloop-incidents", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued and stop the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def idle(self) -> bool:
        """Whether nothing is waiting to be processed."""
        with self._cv:
            return not self._inbox

    # ------------------------------------------------------------------ one round

    def process(
        self, now: datetime | None = None, tick_every: timedelta | None = None, hold_future: bool = False
    ) -> None:
        """Drain the queue, apply time-driven steps up to ``now`` (event time), persist the round.

        Inputs are applied in event-time order. With ``tick_every`` (replay), time-driven steps
        also run at every multiple of it between inputs, exactly as a live server's periodic
        rounds would, so one call over an hour of data equals sixty calls a minute apart. With
        ``hold_future``, inputs stamped after ``now`` wait for a later call (a replay stops at
        ``now`` to let the SLO engine evaluate there before time moves on).
        """
        with self._cv:
            items = list(self._inbox)
            self._inbox.clear()
        with self._lock:
            steps: list[tuple[datetime, int, Callable[[], None]]] = []
            for item, _ in items:
                if isinstance(item, _Detection):
                    self._detection_steps(item, steps)
                elif isinstance(item, WriteBatch):
                    self._batch_steps(item, steps)
            steps = self._held + [(at, self._step_seq + i, fn) for i, (at, _, fn) in enumerate(steps)]
            self._step_seq += len(steps)
            steps.sort(key=lambda s: (s[0], s[1]))
            end = _naive(now) if now is not None else None
            self._held = [st for st in steps if hold_future and end is not None and st[0] > end]
            for at, _, apply in steps:
                if hold_future and end is not None and at > end:
                    break
                if tick_every is not None:
                    self._advance(at, tick_every)
                apply()
                if at > self.now:
                    self.now = at
            end = end if end is not None else self.now
            if tick_every is not None:
                self._advance(end, tick_every)
            if end > self.now:
                self.now = end
            self._tick(self.now)
            self._flush()
            done = time.perf_counter()
            for _, arrived in items:
                CORRELATION_SECONDS.observe(done - arrived)
                if self.latencies is not None:
                    self.latencies.append(done - arrived)

    def _advance(self, until: datetime, step: timedelta) -> None:
        """Run the time-driven steps at every multiple of ``step`` up to ``until``."""
        s = step.total_seconds()
        if self._next_tick is None:
            first = (
                math.floor(until.timestamp() / s) * s
            )  # naive UTC read as local is fine: only spacing matters
            self._next_tick = datetime.fromtimestamp(first) if first <= until.timestamp() else until
        while self._next_tick <= until:
            if self._next_tick > self.now:
                self.now = self._next_tick
            self._tick(self._next_tick)
            self._next_tick += step

    def _detection_steps(
        self, item: _Detection, steps: list[tuple[datetime, int, Callable[[], None]]]
    ) -> None:
        transitions = self.alerter.observe(item.bands, item.flagged)
        if not len(transitions):
            return
        labels = self._labels_of(transitions.series_id)
        for k in range(len(transitions)):
            at = datetime.fromtimestamp(int(transitions.ts[k]) / 1e6, UTC).replace(tzinfo=None)
            steps.append((at, len(steps), partial(self._anomaly_transition, transitions, k, labels[k], at)))

    def _batch_steps(self, batch: WriteBatch, steps: list[tuple[datetime, int, Callable[[], None]]]) -> None:
        if batch.topology is not None:
            items = list(batch.topology)
            steps.append(
                (datetime(1970, 1, 1), len(steps), lambda: setattr(self, "topology", Topology(items)))
            )
        for change in batch.changes:
            steps.append((_naive(change.ts), len(steps), partial(self._on_change, change)))
        for event in batch.events:
            if event.type.startswith(MAINTENANCE_EVENT):
                steps.append((_naive(event.ts), len(steps), partial(self._on_maintenance_event, event)))
            elif event.type.startswith(CDEVENTS_INCIDENT):
                steps.append((_naive(event.ts), len(steps), partial(self._on_incident_event, event)))
        for command in batch.alerts:
            ext = command.alert
            at = _naive(ext.ends_at or ext.updated_at or ext.starts_at) if ext.status is ExternalAlertStatus.RESOLVED \
                else _naive(ext.updated_at or ext.starts_at)  # fmt: skip
            steps.append((at, len(steps), partial(self._on_external, ext, at)))

    def _labels_of(self, ids: np.ndarray) -> list[dict[str, str]]:
        missing = np.array([i for i in set(ids.tolist()) if i not in self._labels], dtype=np.uint64)
        if len(missing):
            for sid, lab in zip(missing.tolist(), series_labels(self.store, missing), strict=True):
                self._labels[int(sid)] = lab
        return [self._labels[int(i)] for i in ids.tolist()]

    def _anomaly_transition(self, t: AlertTransitions, k: int, series: dict[str, str], at: datetime) -> None:
        lab = dict(series)
        metric = lab.pop("__name__", "series")
        fp = f"anomaly:{int(t.series_id[k]):016x}"
        if not t.firing[k]:
            self._resolve(fp, at)
            return
        side = "high" if t.upward[k] else "low"
        onset = datetime.fromtimestamp(int(t.started[k]) / 1e6, UTC).replace(tzinfo=None)
        severity = "critical" if t.probability[k] >= 0.9 else "warning"
        # the series, as a person reads it: errors are not requests (status_class="5xx")
        extra = ", ".join(f'{key}="{val}"' for key, val in sorted(lab.items()) if key != "service")
        name = f"{metric}{{{extra}}} {side}" if extra else f"{metric} {side}"
        lab.update({"alertname": name, "metric": metric, "direction": side})
        self._fire(
            fp,
            name=name,
            at=at,
            starts_at=onset,
            service=lab.get("service", ""),
            severity=severity,
            source="anomaly",
            labels=lab,
            annotations={
                "summary": f"{metric} {side}: {t.value[k]:.4g} against an expected {t.expected[k]:.4g}",
                "series_id": str(int(t.series_id[k])),
            },
            value=float(t.value[k]),
            score=float(t.probability[k]),
        )

    def _on_maintenance_event(self, event: Event) -> None:
        try:
            data = event.data
            if not isinstance(data, dict):
                data = json.loads(bytes(data)) if data is not None else None
            self.add_window(window_from_event(data, event.id, event.source), persist=True)
        except Exception as exc:  # a bad event must not stop the pipeline; ingest validated it
            log.warning("maintenance event %s ignored: %s", event.id, exc)

    def _on_incident_event(self, event: Event) -> None:
        """Another tool's CDEvents ``incident.detected|reported|resolved`` is an external alert."""
        try:
            data = event.data if isinstance(event.data, dict) else json.loads(bytes(event.data or b"{}"))
            subject = data.get("subject") or {}
            content = subject.get("content") or {}
            service = str((content.get("service") or {}).get("id", "") or event.service).rpartition("/")[2]
            key = str(subject.get("id") or event.subject or event.id)
        except (ValueError, TypeError, AttributeError) as exc:  # ingest validated the envelope, not the body
            log.warning("incident event %s ignored: %s", event.id, exc)
            return
        verb = event.type[len(CDEVENTS_INCIDENT) :].split(".", 1)[0]
        at = _naive(event.ts)
        custom = data.get("customData")
        name = str(content.get("description") or f"incident {key}")
        ext = ExternalAlert(
            id=f"{event.source}:{event.id}",
            source="cloudevents",
            dedup_key=f"{event.source}:{key}",
            status=ExternalAlertStatus.RESOLVED if verb == "resolved" else ExternalAlertStatus.FIRING,
            name=name,
            starts_at=at,
            service=service,
            severity=str(custom.get("severity", "warning")) if isinstance(custom, dict) else "warning",
            labels={"alertname": name, "service": service, "source": event.source},
            ends_at=at if verb == "resolved" else None,
            updated_at=at,
        )
        self._on_external(ext, at)

    def _on_external(self, ext: ExternalAlert, at: datetime) -> None:
        fp = f"{ext.source}:{ext.fingerprint or ext.dedup_key}"
        if ext.status is ExternalAlertStatus.RESOLVED:
            self._resolve(fp, at)
            return
        labels = dict(ext.labels)
        labels.setdefault("alertname", ext.name)
        if ext.service:
            labels.setdefault("service", ext.service)
        annotations = dict(ext.annotations)
        if ext.summary:
            annotations.setdefault("summary", ext.summary)
        self._fire(
            fp,
            name=ext.name,
            at=at,
            starts_at=_naive(ext.starts_at),
            service=ext.service or labels.get("service", ""),
            severity=ext.severity or labels.get("severity", ""),
            source=ext.source,
            labels=labels,
            annotations=annotations,
        )

    def _on_change(self, change: Change) -> None:
        self.changes.append(replace(change, ts=_naive(change.ts)))
        while self.changes and self.changes[0].ts < self.now - timedelta(days=1):
            self.changes.popleft()
        # a change on a service of an active incident goes on its timeline
        for g in self.groups.values():
            if g.incident is not None and g.incident.status in _ACTIVE and change.service in g.services():
                self._note(g, TimelineEntry(_naive(change.ts), "change", change.source or "cd",
                                            f"{change.kind.value} {change.service} {change.version}".strip(),
                                            {"change_id": change.id}))  # fmt: skip

    # ------------------------------------------------------------------ alert stages

    def _fire(
        self,
        fp: str,
        *,
        name: str,
        at: datetime,
        starts_at: datetime,
        service: str,
        severity: str,
        source: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        value: float | None = None,
        score: float | None = None,
    ) -> None:
        ALERTS_RECEIVED.labels(source or "unknown", "firing").inc()
        current = self.live.get(fp)
        if current is not None and current.status is AlertStatus.FIRING:  # dedup: the same condition again
            self._mark(replace(current, last_seen=max(at, current.last_seen or at)))
            return
        flapping, transitions = self._flap(fp, at)
        alert_id = xxhash.xxh3_64_hexdigest(f"{fp}\x00{starts_at.isoformat()}".encode())
        alert = Alert(
            id=alert_id, fingerprint=fp, name=name, status=AlertStatus.FIRING, starts_at=starts_at, service=service,
            severity=severity, source=source, labels=labels, annotations=annotations, last_seen=at,
            flapping=flapping, transitions=transitions, value=value, score=score,
        )  # fmt: skip
        silence = silencing(self.silences, alert, at)
        window = active_window(self.windows, service, at) if service else None
        if silence is not None:
            alert = replace(alert, suppressed_by=f"silence:{silence.id}")
        elif window is not None:
            alert = replace(alert, suppressed_by=f"maintenance:{window.id}")
        change = deploy_for(list(self.changes), service, at, self.config.deploy_window) if service else None
        if change is not None:
            alert = replace(alert, change_id=change.id)
            hold = change.ts + self.config.deploy_grace
            if hold > at and not never_held(alert, self.topology.consumer_facing(service)):
                alert = replace(alert, held_until=hold)
        self.live[fp] = alert  # a new episode: correlated afresh (it may reopen a resolved incident)
        if alert.suppressed_by:
            self._mark(alert)
            return
        self._correlate(alert, at)

    def _flap(self, fp: str, at: datetime) -> tuple[bool, int]:
        history = self._flaps.setdefault(fp, deque())
        history.append(at)
        while history and history[0] < at - self.config.flap_window:
            history.popleft()
        return len(history) >= self.config.flap_changes, len(history)

    def _resolve(self, fp: str, at: datetime) -> None:
        ALERTS_RECEIVED.labels(fp.partition(":")[0] or "unknown", "resolved").inc()
        current = self.live.get(fp)
        if current is None or current.status is not AlertStatus.FIRING:
            return
        flapping, transitions = self._flap(fp, at)
        alert = replace(
            current, status=AlertStatus.RESOLVED, ends_at=max(at, current.starts_at), last_seen=at,
            flapping=current.flapping or flapping, transitions=transitions,
        )  # fmt: skip
        self.live[fp] = alert
        self._mark(alert)
        gid = self._group_of.get(alert.id)
        if gid is not None and gid in self.groups:
            g = self.groups[gid]
            g.add(alert)
            if g.incident is not None:
                self._note(
                    g, TimelineEntry(at, "alert_resolved", "opsloop", alert.name, {"alert_id": alert.id})
                )
            if not g.firing_ids:
                g.quiet_since = at

    def _mark(self, alert: Alert) -> None:
        self._dirty_alerts[alert.id] = alert
        gid = self._group_of.get(alert.id)
        if gid is not None and gid in self.groups:
            self.groups[gid].add(alert)

    # ------------------------------------------------------------------ correlation

    def _related(self, g: _Group, alert: Alert, labels: dict[str, str]) -> int | None:
        """How close the alert is to the group (lower is closer), or None when unrelated."""
        cfg = self.config.correlation
        if alert.change_id and alert.change_id in g.change_ids:
            return 0
        best: int | None = None
        if alert.service:
            near = self.topology.distances(alert.service)
            for service in g.active_services(alert.last_seen or alert.starts_at, self._window_for(labels)):
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

    def _candidate_groups(self, alert: Alert) -> list[_Group]:
        """Groups that could be related: those holding a service near the alert's, or its change;
        every group when label- or rule-based correlation is configured."""
        cfg = self.config.correlation
        if cfg.share_labels or cfg.rules or not alert.service:
            return list(self.groups.values())
        ids: set[str] = set()
        for service, d in self.topology.distances(alert.service).items():
            if d <= cfg.hops:
                ids |= self._by_service.get(service, set())
        ids |= self._by_service.get(alert.service, set())
        if alert.change_id:
            ids |= {g.id for g in self.groups.values() if alert.change_id in g.change_ids}
        return [self.groups[i] for i in sorted(ids) if i in self.groups]

    def _window_for(self, labels: dict[str, str]) -> timedelta:
        cfg = self.config.correlation
        windows = [r.window for r in cfg.rules if r.window is not None and r.matches(labels)]
        return max(windows, default=cfg.window)

    def _correlate(self, alert: Alert, at: datetime) -> None:
        labels = alert_labels(alert)
        window = self._window_for(labels)
        candidates: list[tuple[int, datetime, _Group]] = []
        for g in self._candidate_groups(alert):
            inc = g.incident
            if inc is not None and inc.status not in _ACTIVE:  # recently resolved: may reopen
                eligible = (
                    inc.status is IncidentStatus.RESOLVED
                    and inc.resolved_at is not None
                    and at - inc.resolved_at <= self.config.reopen_within
                )
            else:
                eligible = g.has_live_symptom() or at - g.last_at <= window
            if eligible:
                d = self._related(g, alert, labels)
                if d is not None:
                    candidates.append((d, g.last_at, g))
        if candidates:
            candidates.sort(key=lambda c: (c[0], -c[1].timestamp()))
            group = candidates[0][2]
        else:
            self._group_seq += 1
            group = _Group(id=f"g{self._group_seq}", first_at=alert.starts_at, last_at=at)
            self.groups[group.id] = group
        # topology inhibition: a caller's symptom joins its dependency's incident without paging
        for other in group.firing():
            related = other.service and alert.service and other.service != alert.service
            if related and self.topology.depends_on(alert.service, other.service):
                alert = replace(alert, inhibited_by=other.id)
                break
        group.add(alert)
        if alert.service:
            self._by_service.setdefault(alert.service, set()).add(group.id)
        if _symptom(alert):
            group.last_at = max(group.last_at, at)
        group.quiet_since = None
        self._group_of[alert.id] = group.id
        self.live[alert.fingerprint] = alert
        if group.incident is not None:
            alert = replace(alert, incident_id=group.incident.id)
            group.add(alert)
            self.live[alert.fingerprint] = alert
            self._note(group, TimelineEntry(at, "alert", "opsloop", alert.name,
                                            {"alert_id": alert.id, "service": alert.service}))  # fmt: skip
            if group.incident.status is IncidentStatus.RESOLVED:
                self._set_status(group, IncidentStatus.OPEN, at, "opsloop", "reopened: a related alert fired")
            self._stale[group.id] = group
            self._new_evidence(group.incident.id, at)
        self._mark(alert)
        self._maybe_promote(group, at)

    def _effective(self, g: _Group, at: datetime) -> list[Alert]:
        """One alert per condition that may open an incident: its latest episode, not held by a
        deploy, not flapping, not ticket/info severity (re-fires of one condition count once)."""
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

    def _maybe_promote(self, g: _Group, at: datetime) -> None:
        if g.incident is not None:
            return
        cfg = self.config.correlation
        effective = self._effective(g, at)
        live = [a for a in effective if a.status is AlertStatus.FIRING]
        if not live:
            return
        reason = ""
        if len(effective) >= cfg.min_alerts:
            reason = f"{len(effective)} related alerts"
        elif any(a.severity.lower() in ("critical", "page") and a.source != "anomaly" for a in live):
            reason = "a critical alert"
        elif any(at - a.starts_at >= cfg.single_hold for a in live):
            reason = f"an alert firing for {int(cfg.single_hold.total_seconds() // 60)} min"
        else:
            all_labels = [alert_labels(a) for a in effective]
            rule = next((r for r in cfg.rules if r.satisfied(all_labels)), None)
            if rule is not None:
                reason = f"rule {rule.name!r}"
        if reason:
            self._open(g, at, reason)

    # ------------------------------------------------------------------ incidents

    def _open(self, g: _Group, at: datetime, reason: str) -> None:
        seq = self._seq
        self._seq += 1
        g.seq = seq
        origin = self._origin(g)
        incident = Incident(
            id=f"INC-{seq}", title="", status=IncidentStatus.OPEN, priority="P4", opened_at=at,
            origin_service=origin, team=self.topology.owner(origin),
        )  # fmt: skip
        g.incident = incident
        self._timeline_len[incident.id] = 0
        for a in list(g.members.values()):
            attached = replace(a, incident_id=incident.id)
            g.add(attached)
            if self.live.get(a.fingerprint) is not None and self.live[a.fingerprint].id == a.id:
                self.live[a.fingerprint] = attached
            self._dirty_alerts[a.id] = attached
        for a in sorted(g.members.values(), key=lambda a: a.starts_at):
            self._note(g, TimelineEntry(max(a.starts_at, g.first_at), "alert", "opsloop", a.name,
                                        {"alert_id": a.id, "service": a.service}))  # fmt: skip
        for cid in sorted({a.change_id for a in g.members.values() if a.change_id}):
            change = next((c for c in self.changes if c.id == cid), None)
            if change is not None:
                self._note(g, TimelineEntry(change.ts, "change", change.source or "cd",
                                            f"{change.kind.value} {change.service} {change.version}".strip(),
                                            {"change_id": change.id}))  # fmt: skip
        self._note(g, TimelineEntry(at, "opened", "opsloop", f"opened: {reason}", {"reason": reason}))
        self._refresh(g, at)
        self._new_evidence(incident.id, at)
        INCIDENTS_OPENED.labels(g.incident.priority).inc()
        self._notify(g, "incident.detected")

    def _origin(self, g: _Group) -> str:
        """The probable origin before Diagnose runs: the member service most other members depend
        on (the callee they call), the earliest onset breaking ties."""
        services = sorted(g.services())
        if not services:
            return ""
        onset = {s: min(a.starts_at for a in g.members.values() if a.service == s) for s in services}

        def callers(s: str) -> int:
            return sum(1 for o in services if o != s and self.topology.depends_on(o, s))

        return max(services, key=lambda s: (callers(s), -onset[s].timestamp(), s))

    def _refresh(self, g: _Group, at: datetime) -> None:
        """Recompute title, services, priority, team after membership changed."""
        inc = g.incident
        if inc is None:
            return
        services = tuple(sorted(g.services()))
        origin = self._origin(g) or inc.origin_service
        a = assess(services, g.members.values(), self.topology, major_services=self.config.major_services)
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
            team=inc.team if g.assigned else self.topology.owner(origin),
            change_ids=changes, updated_at=at,
        )  # fmt: skip
        if inc.priority and new.priority != inc.priority and inc.title:
            self._note(
                g, TimelineEntry(at, "priority", "opsloop", f"{inc.priority} -> {new.priority}: {a.reason}")
            )
        g.incident = new
        self._dirty_incidents[new.id] = g

    def _new_evidence(self, incident_id: str, at: datetime) -> None:
        """Remember that an incident opened or gained an alert at event time ``at`` (for Diagnose)."""
        prev = self._evidence.get(incident_id)
        self._evidence[incident_id] = at if prev is None or at > prev else prev

    def _note(self, g: _Group, entry: TimelineEntry) -> None:
        if g.incident is None:
            return
        iid = g.incident.id
        n = self._timeline_len.get(iid)
        if n is None:
            n = repo.timeline_length(self.store, iid)
        self._timeline.append((iid, n, entry))
        self._timeline_len[iid] = n + 1
        self._dirty_incidents[iid] = g

    def _set_status(
        self, g: _Group, status: IncidentStatus, at: datetime, actor: str, text: str = ""
    ) -> None:
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
        self._note(g, TimelineEntry(at, "status", actor, text or f"{inc.status.value} -> {status.value}",
                                    {"from": inc.status.value, "to": status.value}))  # fmt: skip
        if status is IncidentStatus.RESOLVED:
            self._notify(g, "incident.resolved")
        elif status is IncidentStatus.OPEN and inc.status is IncidentStatus.RESOLVED:
            self._notify(g, "incident.detected")

    def _tick(self, now: datetime) -> None:
        cfg = self.config
        for g in list(self.groups.values()):
            inc = g.incident
            if inc is None:
                if g.firing_ids:
                    self._maybe_promote(g, now)
                elif g.quiet_since is not None and now - g.quiet_since >= cfg.correlation.window:
                    self._drop(g)  # noise that never became an incident
                continue
            if inc.status in _ACTIVE:
                if (
                    not g.firing_ids
                    and g.quiet_since is not None
                    and now - g.quiet_since >= cfg.resolve_after
                ):
                    self._set_status(g, IncidentStatus.RESOLVED, now, "opsloop",
                                     f"resolved: every alert quiet for {int(cfg.resolve_after.total_seconds() // 60)} min")  # fmt: skip
                elif inc.status is IncidentStatus.OPEN and inc.escalated_at is None:
                    limit = cfg.escalate_after.get(inc.priority)
                    if limit is not None and now - inc.opened_at >= limit:
                        g.incident = replace(inc, escalated_at=now, updated_at=now)
                        self._note(g, TimelineEntry(now, "escalated", "opsloop",
                                                    f"not acknowledged within {int(limit.total_seconds() // 60)} min"))  # fmt: skip
                        self._notify(g, "incident.escalated")
            elif inc.resolved_at is None or now - inc.resolved_at > cfg.reopen_within:
                self._drop(g)
        self._prune(now)
        INCIDENTS_OPEN.set(
            sum(1 for g in self.groups.values() if g.incident and g.incident.status in _ACTIVE)
        )

    def _prune(self, now: datetime) -> None:
        """Forget resolved alerts and flap histories older than the flap window (memory stays bounded)."""
        if now - self._last_prune < self.config.flap_window:
            return
        self._last_prune = now
        horizon = now - self.config.flap_window
        for fp, history in list(self._flaps.items()):
            if not history or history[-1] < horizon:
                del self._flaps[fp]
        for fp, alert in list(self.live.items()):
            resolved_long_ago = (
                alert.status is AlertStatus.RESOLVED and (alert.ends_at or alert.starts_at) < horizon
            )
            if resolved_long_ago and alert.id not in self._group_of:
                del self.live[fp]

    def _drop(self, g: _Group) -> None:
        """Forget a group that can no longer change (its rows stay in the store)."""
        for aid in g.members:
            self._group_of.pop(aid, None)
        for service in g.svc:
            ids = self._by_service.get(service)
            if ids is not None:
                ids.discard(g.id)
                if not ids:
                    del self._by_service[service]
        self.groups.pop(g.id, None)

    def _notify(self, g: _Group, event: str) -> None:
        inc = g.incident
        if inc is None or not self.webhooks:
            return
        if (
            event != "incident.resolved"
            and all(a.flapping or a.inhibited_by for a in g.firing())
            and g.firing()
        ):
            return  # flapping alerts hold their notifications
        for hook in self.webhooks:
            fmt = hook.get("format", "cdevents")
            payload = render(fmt, event, inc, self.settings)
            nid = xxhash.xxh3_64_hexdigest(
                f"{inc.id}\x00{event}\x00{hook['url']}\x00{len(self._outbox)}\x00{self.now}".encode()
            )
            self._outbox.append(repo.Notification(nid, inc.id, event, fmt, hook["url"], payload))

    def _flush(self) -> None:
        for g in self._stale.values():  # once per round, however many alerts joined
            if g.incident is not None:
                self._refresh(g, max(self.now, g.last_at))
        self._stale.clear()
        incidents = [(g.incident, g.seq) for g in self._dirty_incidents.values() if g.incident is not None]
        repo.save_round(
            self.store, list(self._dirty_alerts.values()), incidents, self._timeline, self._outbox, _utcnow()
        )
        self._dirty_alerts.clear()
        self._dirty_incidents.clear()
        self._timeline = []
        self._outbox = []
        if self._evidence:
            changed = sorted(self._evidence.items(), key=lambda kv: (kv[1], kv[0]))
            self._evidence = {}
            for listener in self._listeners:
                listener(changed)

    def _restore(self) -> None:
        """Rebuild groups from the store: active incidents and every alert still firing."""
        open_incidents = {inc.id: (inc, seq) for inc, seq in repo.load_open_incidents(self.store)}
        by_incident: dict[str, _Group] = {}
        for inc, seq in open_incidents.values():
            self._group_seq += 1
            g = _Group(id=f"g{self._group_seq}", first_at=inc.opened_at, last_at=inc.updated_at or inc.opened_at,
                       incident=inc, seq=seq)  # fmt: skip
            self.groups[g.id] = g
            by_incident[inc.id] = g
        firing_series: list[int] = []
        loose: list[Alert] = []
        for alert in repo.load_live_alerts(self.store):
            self.live[alert.fingerprint] = alert
            if alert.fingerprint.startswith("anomaly:"):
                firing_series.append(int(alert.fingerprint.split(":", 1)[1], 16))
            owner = by_incident.get(alert.incident_id)
            if owner is not None:
                owner.add(alert)
                self._group_of[alert.id] = owner.id
            elif not alert.suppressed_by:
                loose.append(alert)
        for g in by_incident.values():
            for a in repo.alerts_of(self.store, g.incident.id if g.incident else ""):
                if a.id not in g.members:
                    g.add(a)
                    self._group_of[a.id] = g.id
            for service in g.svc:
                self._by_service.setdefault(service, set()).add(g.id)
            if not g.firing_ids:
                g.quiet_since = g.last_at
        if firing_series:
            ids = np.array(firing_series, dtype=np.uint64)
            slots = self.alerter.slots.slots(ids)
            self.alerter._grow(len(self.alerter.slots))
            self.alerter.active[slots] = True
        for alert in sorted(loose, key=lambda a: (a.last_seen or a.starts_at, a.id)):
            self._correlate(alert, alert.last_seen or alert.starts_at)

    # ------------------------------------------------------------------ operator commands

    def _group_for(self, incident_id: str) -> _Group:
        for g in self.groups.values():
            if g.incident is not None and g.incident.id == incident_id:
                return g
        inc = repo.incident_by_id(self.store, incident_id)
        if inc is None:
            raise NotFoundError(f"incident {incident_id!r} not found")
        self._group_seq += 1
        g = _Group(id=f"g{self._group_seq}", first_at=inc.opened_at, last_at=inc.updated_at or inc.opened_at,
                   incident=inc)  # fmt: skip
        row = self.store.query("SELECT seq FROM incidents WHERE id = ?", [incident_id])
        g.seq = int(row[0][0]) if row else 0
        for a in repo.alerts_of(self.store, incident_id):
            g.add(a)
            if a.service:
                self._by_service.setdefault(a.service, set()).add(g.id)
        self.groups[g.id] = g
        return g

    _ALLOWED: ClassVar[dict[IncidentStatus, set[IncidentStatus]]] = {
        IncidentStatus.ACKNOWLEDGED: {IncidentStatus.OPEN},
        IncidentStatus.MITIGATED: {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED},
        IncidentStatus.RESOLVED: {IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED},
        IncidentStatus.CLOSED: {IncidentStatus.RESOLVED},
        IncidentStatus.OPEN: {IncidentStatus.RESOLVED},
    }

    def transition(self, incident_id: str, status: IncidentStatus, actor: str, text: str = "") -> Incident:
        """Move an incident along its lifecycle; ``ConflictError`` if that step is not allowed now."""
        with self._lock:
            g = self._group_for(incident_id)
            assert g.incident is not None
            if g.incident.status not in self._ALLOWED[status]:
                raise ConflictError(
                    f"incident {incident_id} is {g.incident.status.value}; cannot move to {status.value}"
                )
            at = max(self.clock(), self.now)
            self._set_status(g, status, at, actor, text)
            if status is not IncidentStatus.OPEN:
                g.quiet_since = g.quiet_since or at
            self._dirty_incidents[incident_id] = g
            self._flush()
            return g.incident

    def assign(self, incident_id: str, actor: str, team: str = "", assignee: str = "") -> Incident:
        """Set the owning team and/or the person on it."""
        with self._lock:
            g = self._group_for(incident_id)
            assert g.incident is not None
            if g.incident.status is IncidentStatus.CLOSED:
                raise ConflictError(f"incident {incident_id} is closed")
            at = max(self.clock(), self.now)
            g.assigned = g.assigned or bool(team)
            g.incident = replace(g.incident, team=team or g.incident.team, assignee=assignee or g.incident.assignee,
                                 updated_at=at)  # fmt: skip
            self._note(g, TimelineEntry(at, "assigned", actor, f"assigned to {assignee or '-'} ({g.incident.team})",
                                        {"team": g.incident.team, "assignee": g.incident.assignee}))  # fmt: skip
            self._flush()
            return g.incident

    def note(self, incident_id: str, actor: str, text: str) -> TimelineEntry:
        """Add a free-text note to the timeline."""
        with self._lock:
            g = self._group_for(incident_id)
            entry = TimelineEntry(max(self.clock(), self.now), "note", actor, text)
            self._note(g, entry)
            self._flush()
            return entry

    def add_silence(self, silence: Silence) -> None:
        """Store a silence and apply it to alerts from now on."""
        with self._lock:
            repo.save_silence(self.store, silence)
            self.silences = [s for s in self.silences if s.id != silence.id] + [silence]

    def expire_silence(self, silence_id: str) -> Silence:
        """End a silence now (kept as history, as Alertmanager does)."""
        with self._lock:
            found = next((s for s in self.silences if s.id == silence_id), None)
            if found is None:
                raise NotFoundError(f"silence {silence_id!r} not found")
            now = _utcnow()
            expired = replace(found, ends_at=min(found.ends_at, max(now, found.starts_at)), updated_at=now)
            repo.save_silence(self.store, expired)
            self.silences = [s for s in self.silences if s.id != silence_id] + [expired]
            return expired

    def add_window(self, window: MaintenanceWindow, persist: bool = True) -> None:
        """Store a maintenance window and apply it to alerts from now on."""
        with self._lock:
            if persist:
                repo.save_window(self.store, window, _utcnow())
            self.windows = [w for w in self.windows if w.id != window.id] + [window]

    def delete_window(self, window_id: str) -> None:
        """Remove a maintenance window."""
        with self._lock:
            if not repo.delete_window(self.store, window_id):
                raise NotFoundError(f"maintenance window {window_id!r} not found")
            self.windows = [w for w in self.windows if w.id != window_id]


def incidents_snapshot(groups: Iterable[_Group]) -> list[Incident]:
    """The incidents currently held in memory (for tests and the replay summary)."""
    return [g.incident for g in groups if g.incident is not None]
