"""Diagnose an incident: ranked contributing factors, each with its evidence and a next step.

For an incident at time ``as_of`` the diagnoser looks at the services in it and the services they
call (a silent database is still a suspect), and combines five kinds of evidence per service:

* **metrics** (weight 0.45): :func:`diagnose.rank.rank_services` over every series of those
  services, baseline = the hour before the alarm, analysis window = the minutes after it, with
  the topology's call edges (or edges learned from call metrics' peer labels) so that a caller
  whose trouble a callee explains is discounted;
* **changes** (0.25): deploys and config changes on the service shortly before the alarm
  (half-life 10 min, up to ``deploy_window_s`` before and 2 min after, for clock skew);
* **logs** (0.15): warning-and-worse log templates, mined on the fly, that are new or surging in
  the window against the baseline hour; a template on a caller that names a suspect ("call to
  orders failed") counts for the suspect, not the caller;
* **onset order** (0.10): the service whose alerts or metrics deviated first;
* **similar past incidents and known errors** (0.05): resolved incidents with the same services
  and alert names whose top cause was this service, with how they were resolved; a known error
  whose signature appears in the service's evidence (:mod:`diagnose.known_errors`);
* **traces** (0.45, as much as metrics, when the estate sends spans): the operations whose own
  span time (not their callees') or error share deviate from the day before the alarm
  (:mod:`diagnose.traces`), with example trace ids. Span-derived series
  (``span_server_duration_seconds``...) also reach the metric ranker as ordinary series.

The weights are fixed, chosen before scoring, and documented here; nothing reads labels.
Each hypothesis gets a kind (change, resource, dependency, code, external) from its strongest
evidence and a recommendation (:mod:`diagnose.recommend`). The *alarm* is the earliest start of
the incident's own (non-SLO) alerts: the moment the online detector fired.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from core.errors import NotFoundError
from core.model import Alert, Change, Hypothesis, HypothesisKind, Incident, KnownError
from core.store import Store
from core.topology import Topology
from detect.incidents import repository as repo
from diagnose.evidence import (
    PastIncident,
    learned_edges,
    load_changes,
    load_logs,
    load_metrics,
    past_incidents,
)
from diagnose.known_errors import list_known_errors, matching
from diagnose.rank import MetricScore, RankConfig, ServiceScore, rank_services
from diagnose.recommend import course_of_action, recommend
from diagnose.templates import TemplateMiner, surging_templates
from diagnose.traces import TraceConfig, score_traces

__all__ = ["DiagnoseConfig", "Diagnoser", "Diagnosis"]

#: Topology ``attributes.kind`` values that mark a service as a third party behind a proxy.
EXTERNAL_KINDS = frozenset({"external", "egress", "saas", "third_party", "third-party", "provider"})
#: ... and as a shared dependency (data store, cache, broker).
DEPENDENCY_KINDS = frozenset(
    {"database", "db", "datastore", "store", "cache", "queue", "broker", "bus", "storage"}
)


#: A saturation deviation at least this share of the strongest one makes the cause a resource.
RESOURCE_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class DiagnoseConfig:
    """The diagnoser's one configuration (seconds); see the module docstring for the weights."""

    baseline_s: float = 3600.0
    change_window_s: float = 1800.0
    change_after_s: float = 120.0
    change_half_life_s: float = 600.0
    log_window_s: float = 600.0
    max_hypotheses: int = 5
    similar_min: float = 0.5
    weights: tuple[float, float, float, float, float] = (0.45, 0.25, 0.15, 0.10, 0.05)
    rank: RankConfig = field(default_factory=RankConfig)
    trace_weight: float = 0.45
    traces: TraceConfig = field(default_factory=TraceConfig)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The result of one diagnosis run."""

    incident_id: str
    as_of: datetime
    alarm_at: datetime
    hypotheses: tuple[Hypothesis, ...]
    seconds: float
    candidates: tuple[str, ...]
    series: int
    log_lines: int

    @property
    def course_of_action(self) -> list[str]:
        """The plan: the top hypotheses' first steps in order."""
        return course_of_action(self.hypotheses)


@dataclass
class _Suspect:
    service: str
    metric: float = 0.0
    change: float = 0.0
    logs: float = 0.0
    onset: float = 0.0
    similar: float = 0.0
    trace: float = 0.0
    trace_weight: float = 0.0
    scored: ServiceScore | None = None
    operations: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    onset_at: float | None = None
    similar_incidents: list[dict[str, Any]] = field(default_factory=list)
    known_errors: list[dict[str, Any]] = field(default_factory=list)

    def total(self, w: tuple[float, float, float, float, float]) -> float:
        return (
            w[0] * self.metric
            + w[1] * self.change
            + w[2] * self.logs
            + w[3] * self.onset
            + w[4] * self.similar
            + self.trace_weight * self.trace
        )


def _iso(ts: float | datetime | None) -> str | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return ts.isoformat(timespec="seconds")
    return datetime.fromtimestamp(ts, tz=UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _epoch(dt: datetime) -> float:
    """Seconds since the epoch of a naive-UTC timestamp (as the store keeps them)."""
    return dt.replace(tzinfo=UTC).timestamp() if dt.tzinfo is None else dt.timestamp()


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


class Diagnoser:
    """Ranks contributing factors for an incident from what the store holds at ``as_of``."""

    def __init__(
        self,
        store: Store,
        topology: Topology | Callable[[], Topology] | None = None,
        config: DiagnoseConfig | None = None,
    ) -> None:
        self.store = store
        self._topology = topology
        self.config = config or DiagnoseConfig()

    def topology(self) -> Topology:
        """The current topology (a callable is re-read each time, so uploads take effect)."""
        if callable(self._topology):
            return self._topology()
        if self._topology is None:
            from ingest.topology import current_topology

            self._topology = Topology(current_topology(self.store))
        return self._topology

    # ------------------------------------------------------------------ entry point

    def diagnose(self, incident_id: str, as_of: datetime | None = None) -> Diagnosis:
        """Rank causes for ``incident_id`` with what was known at ``as_of`` (default: its last update)."""
        started = time.perf_counter()
        incident = repo.incident_by_id(self.store, incident_id)
        if incident is None:
            raise NotFoundError(f"incident {incident_id!r} not found")
        as_of = as_of or incident.resolved_at or incident.updated_at or incident.opened_at
        alerts = [a for a in repo.alerts_of(self.store, incident_id) if a.starts_at <= as_of]
        own = [a for a in alerts if a.source != "slo"] or alerts
        alarm = min((a.starts_at for a in own), default=incident.opened_at)
        topo = self.topology()
        members = sorted({a.service for a in alerts if a.service} | set(incident.services))
        candidates = sorted(set(members) | {d for s in members for d in _deps(topo, s)})
        cfg = self.config
        alarm_s = _epoch(alarm)
        start = alarm - timedelta(seconds=cfg.baseline_s)
        metric_end = min(as_of, alarm + timedelta(seconds=cfg.rank.after_s))
        matrix = load_metrics(self.store, candidates, start, max(metric_end, alarm))
        if topo:
            edges = [(s, d) for s in candidates for d in _deps(topo, s) if d in candidates]
        else:
            edges = learned_edges(matrix, candidates)
        ranked = (
            rank_services(matrix.ts, matrix.values, list(matrix.series), alarm_s, edges or None, cfg.rank)
            if matrix.series and matrix.ts.size
            else []
        )
        suspects = {s: _Suspect(s, trace_weight=cfg.trace_weight) for s in candidates}
        top_metric = max((r.score for r in ranked), default=0.0)
        for r in ranked:
            sus = suspects.get(r.service)
            if sus is not None:
                sus.scored = r
                sus.metric = r.score / top_metric if top_metric > 0 else 0.0
        changes = load_changes(
            self.store, candidates, alarm - timedelta(seconds=cfg.change_window_s),
            min(as_of, alarm + timedelta(seconds=cfg.change_after_s)),
        )  # fmt: skip
        self._score_changes(suspects, changes, alarm_s)
        log_end = min(as_of, alarm + timedelta(seconds=cfg.log_window_s))
        log_lines = self._score_logs(suspects, candidates, start, alarm, log_end)
        self._score_onset(suspects, alerts)
        for service, traced in score_traces(self.store, candidates, alarm, log_end, cfg.traces).items():
            suspects[service].trace = traced.score
            suspects[service].operations = traced.operations
        past = past_incidents(self.store, as_of, incident_id)
        self._score_similar(suspects, incident, alerts, past)
        self._match_known_errors(suspects, alerts, list_known_errors(self.store))
        hypotheses = self._hypotheses(suspects, alerts, topo, members, alarm, as_of)
        return Diagnosis(
            incident_id=incident_id, as_of=as_of, alarm_at=alarm, hypotheses=hypotheses,
            seconds=time.perf_counter() - started, candidates=tuple(candidates), series=len(matrix.series),
            log_lines=log_lines,
        )  # fmt: skip

    # ------------------------------------------------------------------ evidence

    def _score_changes(
        self, suspects: dict[str, _Suspect], changes: Sequence[Change], alarm_s: float
    ) -> None:
        half = self.config.change_half_life_s
        for c in changes:
            sus = suspects.get(c.service)
            if sus is None:
                continue
            before = alarm_s - _epoch(c.ts)
            weight = 0.5 ** (max(before, 0.0) / half)
            sus.change = max(sus.change, weight)
            sus.changes.append({
                "id": c.id, "kind": c.kind.value, "version": c.version, "at": _iso(c.ts),
                "minutes_before_alarm": round(before / 60.0, 1), "description": c.description, "weight": round(weight, 3),
            })  # fmt: skip
        for sus in suspects.values():
            sus.changes.sort(key=lambda c: -float(c["weight"]))

    def _score_logs(
        self, suspects: dict[str, _Suspect], candidates: Sequence[str], start: datetime, alarm: datetime,
        end: datetime,
    ) -> int:  # fmt: skip
        services, bodies, ts = load_logs(self.store, candidates, start, end)
        if not bodies:
            return 0
        miner = TemplateMiner()
        ids = miner.add_many(bodies)
        alarm_s = _epoch(alarm)
        in_window = ts >= alarm_s - 60.0  # a minute of slack: logs often lead the first bad sample
        base_s = max(alarm_s - 60.0 - _epoch(start), 1.0)
        window_s = max(_epoch(end) - (alarm_s - 60.0), 60.0)
        svc = np.array(services, dtype=object)
        text = np.array(bodies, dtype=object)
        names = sorted(suspects, key=lambda n: (-len(n), n))  # longest first: "orders-db" before "orders"
        named_re = re.compile(r"(?<![\w-])(" + "|".join(re.escape(n) for n in names) + r")(?![\w-])")
        for service in sorted(set(services)):
            mine = svc == service
            base = Counter(ids[mine & ~in_window].tolist())
            window = Counter(ids[mine & in_window].tolist())
            for cid, count, base_count, ratio, is_new in surging_templates(base, window, base_s, window_s):
                entry = {"template": miner.template(int(cid)), "count": int(count), "baseline_count": int(base_count),
                         "ratio": _finite(float(ratio)), "new": bool(is_new)}  # fmt: skip
                # the raw lines, not the template: names with digits ("svc-007") are masked there
                sample = text[mine & in_window & (ids == cid)][:20]
                hits = Counter(m for line in sample for m in set(named_re.findall(line)) if m != service)
                named = [n for n, k in hits.items() if k * 2 >= len(sample)]
                if named:  # a caller reporting a failing call: evidence for the callee
                    for target in named:
                        suspects[target].mentions.append({"from": service, **entry})
                elif service in suspects:
                    suspects[service].templates.append(entry)
        for sus in suspects.values():
            own = sum(int(t["count"]) for t in sus.templates)
            told = sum(int(t["count"]) for t in sus.mentions)
            sus.logs = min(1.0, math.log1p(own + 0.5 * told) / math.log1p(50.0))
            sus.templates.sort(key=lambda t: -int(t["count"]))
            sus.mentions.sort(key=lambda t: -int(t["count"]))
        return len(bodies)

    def _score_onset(self, suspects: dict[str, _Suspect], alerts: Sequence[Alert]) -> None:
        onset: dict[str, float] = {}
        for a in alerts:
            if a.service in suspects and a.source != "slo":
                t = _epoch(a.starts_at)
                onset[a.service] = min(onset.get(a.service, t), t)
        for s, sus in suspects.items():
            if sus.scored is not None:
                times = [m.onset_ts for m in sus.scored.metrics if m.onset_ts is not None and m.score > 0]
                if times:
                    onset[s] = min(onset.get(s, min(times)), min(times))
        order = sorted(set(onset.values()))
        for s, t in onset.items():
            suspects[s].onset_at = t
            suspects[s].onset = 1.0 / (1 + order.index(t))

    def _score_similar(
        self,
        suspects: dict[str, _Suspect],
        incident: Incident,
        alerts: Sequence[Alert],
        past: Sequence[PastIncident],
    ) -> None:
        services = set(incident.services) | {a.service for a in alerts if a.service}
        names = {a.name for a in alerts if a.name}
        for p in past:
            sim = 0.7 * _jaccard(services, p.services) + 0.3 * _jaccard(names, p.alert_names)
            if sim < self.config.similar_min:
                continue
            entry = {"id": p.id, "similarity": round(sim, 3), "cause": p.top_service, "kind": p.top_kind,
                     "resolution": p.resolution}  # fmt: skip
            target = suspects.get(p.top_service)
            if target is not None:
                target.similar = max(target.similar, sim)
                target.similar_incidents.append(entry)
        for sus in suspects.values():
            sus.similar_incidents.sort(key=lambda e: -float(e["similarity"]))
            del sus.similar_incidents[3:]

    def _match_known_errors(
        self, suspects: dict[str, _Suspect], alerts: Sequence[Alert], known: Sequence[KnownError]
    ) -> None:
        """A known error whose signature appears in a suspect's evidence counts as a past incident."""
        if not known:
            return
        for sus in suspects.values():
            texts = [a.name for a in alerts if a.service == sus.service]
            texts += [str(t["template"]) for t in sus.templates + sus.mentions]
            texts += [str(c["description"]) for c in sus.changes]
            for ke in matching(known, sus.service, texts):
                sus.known_errors.append({"id": ke.id, "problem_id": ke.problem_id, "title": ke.title,
                                         "workaround": ke.workaround})  # fmt: skip
                sus.similar = 1.0

    # ------------------------------------------------------------------ hypotheses

    def _hypotheses(
        self, suspects: dict[str, _Suspect], alerts: Sequence[Alert], topo: Topology, members: Sequence[str],
        alarm: datetime, as_of: datetime,
    ) -> tuple[Hypothesis, ...]:  # fmt: skip
        w = self.config.weights
        ordered = sorted(suspects.values(), key=lambda s: (-s.total(w), s.service))
        ordered = [s for s in ordered if s.total(w) > 0][: self.config.max_hypotheses]
        out = []
        for rank, sus in enumerate(ordered, start=1):
            kind = _kind(sus, topo)
            metrics = [m for m in (sus.scored.metrics if sus.scored else ()) if m.score > 0][:3]
            evidence: dict[str, Any] = {
                "factors": {"metrics": round(sus.metric, 3), "change": round(sus.change, 3),
                            "logs": round(sus.logs, 3), "onset": round(sus.onset, 3),
                            "similar": round(sus.similar, 3), "traces": round(sus.trace, 3)},
                "metrics": [_metric_wire(m) for m in metrics],
                "changes": sus.changes[:3],
                "logs": sus.templates[:3],
                "traces": sus.operations[:3],
                "log_mentions": sus.mentions[:3],
                "onset": _iso(sus.onset_at),
                "alerts": sorted({a.name for a in alerts if a.service == sus.service})[:5],
                "callers_affected": sorted(m for m in members if m != sus.service and topo.depends_on(m, sus.service)),
                "similar_incidents": sus.similar_incidents,
                "known_errors": sus.known_errors,
                "in_incident": sus.service in members,
                "alarm_at": _iso(alarm),
                "as_of": _iso(as_of),
            }  # fmt: skip
            runbook = _runbook(sus.service, alerts, topo)
            if runbook:
                evidence["runbook"] = runbook
            component = (
                (sus.changes[0]["id"] if kind is HypothesisKind.CHANGE and sus.changes else "")
                or (metrics[0].metric if metrics else "")
                or (sus.templates[0]["template"] if sus.templates else "")
            )
            out.append(
                Hypothesis(
                    rank=rank,
                    service=sus.service,
                    kind=kind,
                    score=round(sus.total(w), 4),
                    evidence=evidence,
                    component=component,
                    recommendation=recommend(kind, sus.service, evidence),
                )
            )
        return tuple(out)


def _deps(topo: Topology, service: str) -> tuple[str, ...]:
    item = topo.items.get(service)
    return item.depends_on if item else ()


def _jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _metric_wire(m: MetricScore) -> dict[str, Any]:
    return {"metric": m.metric, "signal": m.signal, "baseline": _finite(m.baseline), "value": _finite(m.value),
            "score": round(m.score, 3), "onset": _iso(m.onset_ts)}  # fmt: skip


def _kind(sus: _Suspect, topo: Topology) -> HypothesisKind:
    """The kind of cause the strongest evidence points to."""
    item = topo.items.get(sus.service)
    ci_kind = str((item.attributes if item else {}).get("kind", "")).lower()
    if sus.change >= 0.25:
        return HypothesisKind.CHANGE
    if ci_kind in EXTERNAL_KINDS:
        return HypothesisKind.EXTERNAL
    metrics = [m for m in (sus.scored.metrics if sus.scored else ()) if m.score > 0]
    signal = metrics[0].signal if metrics else ""
    saturated = max((m.score for m in metrics if m.signal in ("saturation", "host")), default=0.0)
    if metrics and saturated >= RESOURCE_SHARE * metrics[0].score:
        return HypothesisKind.RESOURCE  # an exhausted resource explains the errors and latency beside it
    if ci_kind in DEPENDENCY_KINDS or signal in ("latency", "downstream_latency"):
        return HypothesisKind.DEPENDENCY  # slow: its callers wait on it
    traced_errors = not metrics and bool(sus.operations) and sus.operations[0]["signal"] == "errors"
    if signal == "errors" or traced_errors or (not metrics and sus.templates):
        return HypothesisKind.CODE  # failing requests, or failures only its logs show
    return HypothesisKind.DEPENDENCY


def _runbook(service: str, alerts: Sequence[Alert], topo: Topology) -> str:
    for a in alerts:
        if a.service == service:
            url = a.annotations.get("runbook_url") or a.annotations.get("runbook")
            if url:
                return str(url)
    item = topo.items.get(service)
    attrs: Mapping[str, Any] = item.attributes if item else {}
    return str(attrs.get("runbook_url") or attrs.get("runbook") or "")
