"""The alert -> incident pipeline: inputs in, the stage chain run in event time, one write a round.

Inputs arrive from three places and are queued (never blocking the caller):

- the detection engine's output (``offer_detection``): bands and flagged points, which the
  ``AnomalyAlerter`` turns into fire/resolve transitions per series;
- committed ingest batches (``offer_batch``): external alerts (Alertmanager, PagerDuty),
  changes (deploys, config) and CloudEvents (maintenance windows);
- operators, through the API (``transition``, ``assign``, ``note``, silences, windows).

``process(now)`` drains the queue, turns the inputs into steps in event-time order, and runs
each alert through the chain of ``stages.py`` (dedup -> flap -> silence -> maintenance ->
hold -> correlate -> promote -> priority -> notify). It also owns time: the time-driven steps
(deploy holds ending, lone alerts maturing, incidents resolving when their alerts stay quiet,
escalation) run in ``_tick``. Time is *event time*: a replay passes each chunk's end and asks
for the time-driven steps at every sample interval in between; the server's ``Worker``
passes the wall clock about once a second. Every round's changes (the dirty sets of
``state.State``) are written in one transaction by ``_flush``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
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
from core.telemetry import ALERTS_RECEIVED, CORRELATION_SECONDS, INCIDENTS_OPEN
from core.topology import Topology
from core.worker import Worker
from detect.incidents import repository as repo
from detect.incidents import stages
from detect.incidents.alerts import AlertTransitions, AnomalyAlerter
from detect.incidents.notify import FORMATS
from detect.incidents.state import ACTIVE, YOUNG, Group, PipelineConfig, State
from detect.incidents.suppress import window_from_event
from detect.repository import series_history, series_labels

__all__ = [
    "CDEVENTS_INCIDENT",
    "MAINTENANCE_EVENT",
    "IncidentPipeline",
    "PipelineConfig",
    "incidents_snapshot",
]

log = logging.getLogger(__name__)

MAINTENANCE_EVENT = "dev.opsloop.maintenance.scheduled"
CDEVENTS_INCIDENT = "dev.cdevents.incident."

_Step = tuple[datetime, int, Callable[[], None]]


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


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
        hooks = list(webhooks if webhooks is not None else self.settings.notify_webhooks)
        for i, hook in enumerate(hooks):
            if not hook.get("url", "").startswith(("http://", "https://")):
                raise ConfigError(f"notify_webhooks[{i}].url: an http(s) URL is required")
            if hook.get("format", "cdevents") not in FORMATS:
                raise ConfigError(f"notify_webhooks[{i}].format: expected one of {', '.join(FORMATS)}")
        self.clock = clock
        #: asked before a quiet incident auto-resolves; True holds it (a later stage's verdict
        #: is pending: the assembly passes Resolve's, since detect may not import resolve)
        self.hold_resolve: Callable[[str], bool] | None = None
        cfg = self.config
        self.alerter = AnomalyAlerter(
            cfg.sustain,
            cfg.high,
            cfg.clear,
            cfg.learning.total_seconds(),
            warm_points=cfg.warm_points,
            young_s=cfg.young.total_seconds(),
        )
        self._inbox: deque[tuple[Any, float]] = deque()
        self._inbox_lock = threading.Lock()
        self._lock = threading.RLock()  # state: worker thread vs API commands
        self._worker = Worker("incidents", lambda: self.process(self.clock()), poll_s=1.0)
        self._labels: dict[int, dict[str, str]] = {}
        self._state = st = State(store, topology if topology is not None else self._load_topology())
        st.silences = repo.load_silences(store)
        st.windows = repo.load_windows(store)
        st.seq = repo.next_incident_seq(store)
        self._flap = stages.Flap(cfg.flap_changes, cfg.flap_window)
        self._correlate = stages.Correlate(st, cfg.correlation, cfg.reopen_within)
        self._promote = stages.Promote(st, cfg.correlation)
        self._priority = stages.Priority(st, cfg.major_services)
        self._notify = stages.Notify(st, hooks, self.settings)
        self._chain = stages.Chain([
            stages.Dedup(st), self._flap, stages.Silence(st), stages.Maintenance(st),
            stages.Hold(st, cfg.deploy_window, cfg.deploy_grace),
            self._correlate, self._promote, self._priority, self._notify,
        ])  # fmt: skip
        self._next_tick: datetime | None = None
        self._held: list[_Step] = []  # inputs stamped after ``now``
        self._step_seq = 0
        self._last_prune = datetime(1970, 1, 1)
        #: when a list, every queued input's seconds from queued to committed are appended (benches)
        self.latencies: list[float] | None = None
        self._listeners: list[Callable[[list[tuple[str, datetime]]], None]] = []
        self._restore()

    # ------------------------------------------------------------------ shared state, as attributes

    @property
    def topology(self) -> Topology:
        """The service topology correlation and priority read."""
        return self._state.topology

    @topology.setter
    def topology(self, value: Topology) -> None:
        self._state.topology = value

    @property
    def now(self) -> datetime:
        """The pipeline's event time: the latest input or tick applied."""
        return self._state.now

    @now.setter
    def now(self, value: datetime) -> None:
        self._state.now = value

    @property
    def groups(self) -> dict[str, Group]:
        """Alert groups held in memory, by group id."""
        return self._state.groups

    @property
    def live(self) -> dict[str, Alert]:
        """The current episode of each condition (firing, or last resolved), by fingerprint."""
        return self._state.live

    @property
    def changes(self) -> deque[Change]:
        """Changes of the last day, oldest first."""
        return self._state.changes

    @property
    def silences(self) -> list[Silence]:
        """Silences known (in force or not)."""
        return self._state.silences

    @silences.setter
    def silences(self, value: list[Silence]) -> None:
        self._state.silences = value

    @property
    def windows(self) -> list[MaintenanceWindow]:
        """Maintenance windows known."""
        return self._state.windows

    @windows.setter
    def windows(self, value: list[MaintenanceWindow]) -> None:
        self._state.windows = value

    @property
    def webhooks(self) -> list[dict[str, str]]:
        """Webhooks notified of incidents."""
        return list(self._notify.webhooks)

    @webhooks.setter
    def webhooks(self, value: Sequence[dict[str, str]]) -> None:
        self._notify.webhooks = list(value)

    # ------------------------------------------------------------------ wiring

    def _load_topology(self) -> Topology:
        from ingest.topology import current_topology

        return Topology(current_topology(self.store))

    def refresh_topology(self) -> None:
        """Re-read the topology from the store (after a topology upload)."""
        with self._lock:
            self.topology = self._load_topology()

    def add_listener(self, listener: Callable[[list[tuple[str, datetime]]], None]) -> None:
        """Call ``listener([(incident_id, at), ...])`` after each round that opened or changed an incident.

        ``at`` is the event time of the change; Diagnose subscribes here. Listeners run in the
        pipeline's thread while it holds its lock: they must only queue work.
        """
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
                self._state.note(g, note)
            self._state.dirty_incidents[incident_id] = g
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
        with self._inbox_lock:
            self._inbox.append((item, time.perf_counter()))
        self._worker.wake()

    def start(self, poll_s: float = 1.0) -> None:
        """Run ``process`` in the "incidents" worker: on new input, and every ``poll_s`` for time-driven steps."""
        if not self._worker.running:
            self._worker.poll_s = poll_s
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued (one last round) and stop the worker."""
        self._worker.stop(timeout)

    def idle(self) -> bool:
        """Tell whether nothing is waiting to be processed."""
        with self._inbox_lock:
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
        with self._inbox_lock:
            items = list(self._inbox)
            self._inbox.clear()
        with self._lock:
            steps: list[_Step] = []
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

    def _detection_steps(self, item: _Detection, steps: list[_Step]) -> None:
        transitions = self.alerter.observe(item.bands, item.flagged)
        if not len(transitions):
            return
        labels = self._labels_of(transitions.series_id)
        for k in range(len(transitions)):
            at = datetime.fromtimestamp(int(transitions.ts[k]) / 1e6, UTC).replace(tzinfo=None)
            steps.append((at, len(steps), partial(self._anomaly_transition, transitions, k, labels[k], at)))

    def _batch_steps(self, batch: WriteBatch, steps: list[_Step]) -> None:
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
                **({YOUNG: "true"} if t.young[k] else {}),
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
        st = self._state
        st.changes.append(replace(change, ts=_naive(change.ts)))
        while st.changes and st.changes[0].ts < st.now - timedelta(days=1):
            st.changes.popleft()
        # a change on a service of an active incident goes on its timeline
        for g in st.groups.values():
            if g.incident is not None and g.incident.status in ACTIVE and change.service in g.services():
                st.note(g, TimelineEntry(_naive(change.ts), "change", change.source or "cd",
                                         f"{change.kind.value} {change.service} {change.version}".strip(),
                                         {"change_id": change.id}))  # fmt: skip

    # ------------------------------------------------------------------ into the chain

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
        """Run a firing condition through the chain (a new episode unless Dedup finds it firing)."""
        ALERTS_RECEIVED.labels(source or "unknown", "firing").inc()
        alert_id = xxhash.xxh3_64_hexdigest(f"{fp}\x00{starts_at.isoformat()}".encode())
        alert = Alert(
            id=alert_id, fingerprint=fp, name=name, status=AlertStatus.FIRING, starts_at=starts_at, service=service,
            severity=severity, source=source, labels=labels, annotations=annotations, last_seen=at,
            value=value, score=score,
        )  # fmt: skip
        self._chain.run(stages.Signal(at, alert))

    def _resolve(self, fp: str, at: datetime) -> None:
        """Run the end of a condition through the chain."""
        ALERTS_RECEIVED.labels(fp.partition(":")[0] or "unknown", "resolved").inc()
        self._chain.run(stages.Signal(at, resolves=fp))

    # ------------------------------------------------------------------ time-driven steps

    def _tick(self, now: datetime) -> None:
        cfg, st = self.config, self._state
        for g in list(st.groups.values()):
            inc = g.incident
            if inc is None:
                if g.firing_ids:  # a group waiting for company or for time: promote may open it now
                    self._chain.run(stages.Signal(now, group=g), start=self._promote)
                elif g.quiet_since is not None and now - g.quiet_since >= cfg.correlation.window:
                    st.drop(g)  # noise that never became an incident
                continue
            if inc.status in ACTIVE:
                if (
                    not g.firing_ids
                    and g.quiet_since is not None
                    and now - g.quiet_since >= cfg.resolve_after
                    and not (self.hold_resolve is not None and self.hold_resolve(inc.id))
                ):
                    event = st.set_status(g, IncidentStatus.RESOLVED, now, "opsloop",
                                          f"resolved: every alert quiet for {int(cfg.resolve_after.total_seconds() // 60)} min")  # fmt: skip
                    self._notify.send(g, event)
                elif inc.status is IncidentStatus.OPEN and inc.escalated_at is None:
                    limit = cfg.escalate_after.get(inc.priority)
                    if limit is not None and now - inc.opened_at >= limit:
                        g.incident = replace(inc, escalated_at=now, updated_at=now)
                        st.note(g, TimelineEntry(now, "escalated", "opsloop",
                                                 f"not acknowledged within {int(limit.total_seconds() // 60)} min"))  # fmt: skip
                        self._notify.send(g, "incident.escalated")
            elif inc.resolved_at is None or now - inc.resolved_at > cfg.reopen_within:
                st.drop(g)
        self._prune(now)
        INCIDENTS_OPEN.set(sum(1 for g in st.groups.values() if g.incident and g.incident.status in ACTIVE))

    def _prune(self, now: datetime) -> None:
        """Forget resolved alerts and flap histories older than the flap window (memory stays bounded)."""
        if now - self._last_prune < self.config.flap_window:
            return
        self._last_prune = now
        horizon = now - self.config.flap_window
        self._flap.prune(horizon)
        for fp, alert in list(self.live.items()):
            resolved_long_ago = (
                alert.status is AlertStatus.RESOLVED and (alert.ends_at or alert.starts_at) < horizon
            )
            if resolved_long_ago and alert.id not in self._state.group_of:
                del self.live[fp]

    def _flush(self) -> None:
        """Write the round (recomputed incidents, alerts, timeline, outbox) and tell the listeners."""
        st = self._state
        self._priority.flush(self.now)  # once per round, however many alerts joined
        incidents = [(g.incident, g.seq) for g in st.dirty_incidents.values() if g.incident is not None]
        repo.save_round(
            self.store, list(st.dirty_alerts.values()), incidents, st.timeline, st.outbox, _utcnow()
        )
        st.dirty_alerts.clear()
        st.dirty_incidents.clear()
        st.timeline = []
        st.outbox = []
        if st.evidence:
            changed = sorted(st.evidence.items(), key=lambda kv: (kv[1], kv[0]))
            st.evidence = {}
            for listener in self._listeners:
                listener(changed)

    def _restore(self) -> None:
        """Rebuild groups from the store: active incidents and every alert still firing."""
        st = self._state
        by_incident: dict[str, Group] = {}
        for inc, seq in repo.load_open_incidents(self.store):
            g = st.new_group(inc.opened_at, inc.updated_at or inc.opened_at, inc)
            g.seq = seq
            st.groups[g.id] = g
            by_incident[inc.id] = g
        firing_series: list[int] = []
        loose: list[Alert] = []
        for alert in repo.load_live_alerts(self.store):
            st.live[alert.fingerprint] = alert
            if alert.fingerprint.startswith("anomaly:"):
                firing_series.append(int(alert.fingerprint.split(":", 1)[1], 16))
            owner = by_incident.get(alert.incident_id)
            if owner is not None:
                owner.add(alert)
                st.group_of[alert.id] = owner.id
            elif not alert.suppressed_by:
                loose.append(alert)
        for g in by_incident.values():
            for a in repo.alerts_of(self.store, g.incident.id if g.incident else ""):
                if a.id not in g.members:
                    g.add(a)
                    st.group_of[a.id] = g.id
            for service in g.svc:
                st.by_service.setdefault(service, set()).add(g.id)
            if not g.firing_ids:
                g.quiet_since = g.last_at
        # warm-up counts a series' own history, not this process's: after a restart or a
        # backfill, series the engine already scored must not warm up again
        known, scored, first_us = series_history(self.store)
        if len(known):
            slots = self.alerter.slots.slots(known)
            self.alerter._grow(len(self.alerter.slots))
            self.alerter.seen[slots] = scored
            self.alerter.first[slots] = first_us
        if firing_series:
            ids = np.array(firing_series, dtype=np.uint64)
            slots = self.alerter.slots.slots(ids)
            self.alerter._grow(len(self.alerter.slots))
            self.alerter.active[slots] = True
        for alert in sorted(loose, key=lambda a: (a.last_seen or a.starts_at, a.id)):
            # already deduplicated, flap-counted and suppressed before the restart: correlate onwards
            self._chain.run(stages.Signal(alert.last_seen or alert.starts_at, alert), start=self._correlate)

    # ------------------------------------------------------------------ operator commands

    def _group_for(self, incident_id: str) -> Group:
        for g in self.groups.values():
            if g.incident is not None and g.incident.id == incident_id:
                return g
        inc = repo.incident_by_id(self.store, incident_id)
        if inc is None:
            raise NotFoundError(f"incident {incident_id!r} not found")
        g = self._state.new_group(inc.opened_at, inc.updated_at or inc.opened_at, inc)
        g.seq = repo.incident_seq(self.store, incident_id)
        for a in repo.alerts_of(self.store, incident_id):
            g.add(a)
            if a.service:
                self._state.by_service.setdefault(a.service, set()).add(g.id)
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
            self._notify.send(g, self._state.set_status(g, status, at, actor, text))
            if status is not IncidentStatus.OPEN:
                g.quiet_since = g.quiet_since or at
            self._state.dirty_incidents[incident_id] = g
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
            self._state.note(g, TimelineEntry(at, "assigned", actor, f"assigned to {assignee or '-'} ({g.incident.team})",
                                              {"team": g.incident.team, "assignee": g.incident.assignee}))  # fmt: skip
            self._flush()
            return g.incident

    def note(
        self,
        incident_id: str,
        actor: str,
        text: str,
        kind: str = "note",
        detail: Mapping[str, Any] | None = None,
    ) -> TimelineEntry:
        """Add a free-text note (or another ``kind`` of entry, e.g. a public update) to the timeline."""
        with self._lock:
            g = self._group_for(incident_id)
            entry = TimelineEntry(max(self.clock(), self.now), kind, actor, text, dict(detail or {}))
            self._state.note(g, entry)
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


def incidents_snapshot(groups: Iterable[Group]) -> list[Incident]:
    """Return the incidents currently held in memory (for tests and the replay summary)."""
    return [g.incident for g in groups if g.incident is not None]
