"""The domain model shared by every stage: frozen dataclasses, no I/O, no wire concerns.

Wire models (msgspec/pydantic) live in ``ingest/`` and ``api/``; ``api/convert.py`` and the
ingest decoders are the only places where wire meets domain. Bulk data (metric points, log
records) moves between stages as Arrow tables, not as lists of these objects: the
dataclasses describe one row and are used at the edges (tests, API answers, notebooks).

Lifecycle vocabularies follow ../shared/docs/domain-requirements.md (IT4IT Operate, ITIL 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

Labels = Mapping[str, str]


# --------------------------------------------------------------------------- signals


class MetricKind(StrEnum):
    """How a series' values behave: counters only go up (resets aside), gauges go anywhere."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Series:
    """One time series: a metric name and its full, sorted label set, keyed by a stable id."""

    series_id: int
    name: str
    labels: Labels
    kind: MetricKind = MetricKind.UNKNOWN
    unit: str = ""

    @property
    def service(self) -> str | None:
        """The service the series belongs to, from the usual labels."""
        return service_of(self.labels)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One sample. ``value`` is None for a Prometheus stale marker (the series ended)."""

    series_id: int
    ts: datetime
    value: float | None


class Severity(StrEnum):
    """Log and alert severities, aligned with OpenTelemetry's severity ranges."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log line with its service, severity and structured attributes."""

    ts: datetime
    service: str
    body: str
    severity_number: int = 0
    severity_text: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    resource: Mapping[str, Any] = field(default_factory=dict)
    trace_id: str = ""
    span_id: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened (a CloudEvent that is not a change): append-only, keyed by source+id."""

    id: str
    source: str
    type: str
    ts: datetime
    subject: str = ""
    service: str = ""
    data: Any = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


class ChangeKind(StrEnum):
    """What a change did to a service (CDEvents service.* verbs plus plain config changes)."""

    DEPLOYED = "deployed"
    UPGRADED = "upgraded"
    ROLLED_BACK = "rolledback"
    REMOVED = "removed"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class Change:
    """A deployment or configuration change in production: drives suppression and diagnosis."""

    id: str
    service: str
    kind: ChangeKind
    ts: datetime
    version: str = ""
    environment: str = ""
    source: str = ""
    description: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfigurationItem:
    """A service in the topology (a lightweight CMDB record)."""

    name: str
    tier: int = 3
    owner: str = ""
    depends_on: tuple[str, ...] = ()
    consumer_facing: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)


class ExternalAlertStatus(StrEnum):
    """Lifecycle of an alert raised by another tool (Alertmanager, PagerDuty, CloudEvents)."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class ExternalAlert:
    """An alert another tool raised; ``dedup_key`` identifies it across re-deliveries."""

    id: str
    source: str
    dedup_key: str
    status: ExternalAlertStatus
    name: str
    starts_at: datetime
    severity: str = ""
    summary: str = ""
    service: str = ""
    fingerprint: str = ""
    labels: Labels = field(default_factory=dict)
    annotations: Labels = field(default_factory=dict)
    ends_at: datetime | None = None
    updated_at: datetime | None = None
    url: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------ shapes for later stages


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A scored point outside its learned normal range: how strange, and the band it left."""

    id: str
    series_id: int
    name: str | None
    service: str | None
    ts: datetime
    value: float
    score: float
    probability: float
    expected: float
    lower: float
    upper: float
    threshold: float
    detector: str
    direction: str
    created_at: datetime


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    """opsloop's own alert: from an anomaly, an SLO burn or an external alert, fingerprinted.

    ``fingerprint`` names the condition (one per series, SLO tier or external alert); ``id``
    names one firing episode of it. ``suppressed_by`` (``silence:<id>``, ``maintenance:<id>``)
    keeps it from paging, ``held_until`` holds it through a deploy's grace period,
    ``inhibited_by`` names the dependency alert whose incident it joined, and ``flapping``
    says notifications are held because it changed state too often.
    """

    id: str
    fingerprint: str
    name: str
    status: AlertStatus
    starts_at: datetime
    service: str = ""
    severity: str = ""
    source: str = ""
    labels: Labels = field(default_factory=dict)
    annotations: Labels = field(default_factory=dict)
    ends_at: datetime | None = None
    last_seen: datetime | None = None
    incident_id: str = ""
    suppressed_by: str = ""
    inhibited_by: str = ""
    change_id: str = ""
    held_until: datetime | None = None
    flapping: bool = False
    transitions: int = 0
    value: float | None = None
    score: float | None = None


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"


class HypothesisKind(StrEnum):
    CHANGE = "change"
    RESOURCE = "resource"
    DEPENDENCY = "dependency"
    CODE = "code"
    EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One ranked contributing factor with the evidence behind it."""

    rank: int
    service: str
    kind: HypothesisKind
    score: float
    evidence: Mapping[str, Any] = field(default_factory=dict)
    component: str = ""
    recommendation: str = ""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an incident's timeline: a state change, an alert, a change, a note."""

    at: datetime
    kind: str
    actor: str = "opsloop"
    text: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Incident:
    """Correlated alerts that need one response, prioritised and assigned."""

    id: str
    title: str
    status: IncidentStatus
    priority: str
    opened_at: datetime
    services: tuple[str, ...] = ()
    team: str = ""
    major: bool = False
    alert_count: int = 0
    resolved_at: datetime | None = None
    hypotheses: tuple[Hypothesis, ...] = ()
    priority_reason: str = ""
    origin_service: str = ""
    assignee: str = ""
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    closed_at: datetime | None = None
    escalated_at: datetime | None = None
    updated_at: datetime | None = None
    change_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SilenceMatcher:
    """One Alertmanager silence matcher: ``name`` equal (or not) to ``value``, maybe as a regex."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @property
    def op(self) -> str:
        """The PromQL operator this matcher stands for: ``=``, ``!=``, ``=~`` or ``!~``."""
        return ("=~" if self.is_equal else "!~") if self.is_regex else ("=" if self.is_equal else "!=")


@dataclass(frozen=True, slots=True)
class Silence:
    """Mute alerts whose labels match every matcher between ``starts_at`` and ``ends_at``."""

    id: str
    matchers: tuple[SilenceMatcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Planned work on services: their alerts are suppressed (kept, annotated) while it runs.

    ``recurrence`` is empty for a one-off window, or ``daily``/``weekly``: the window
    ``[starts_at, ends_at)`` then repeats every day or week until ``until`` (open-ended if None).
    """

    id: str
    services: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    reason: str = ""
    created_by: str = ""
    recurrence: str = ""
    until: datetime | None = None
    source: str = "api"


class ActionState(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ActionRun:
    """One execution (or dry run) of a runbook step, with its approval and outcome."""

    id: str
    incident_id: str
    action: str
    state: ActionState
    dry_run: bool
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None = None
    output: str = ""


class ProblemStatus(StrEnum):
    IDENTIFIED = "identified"
    INVESTIGATING = "investigating"
    KNOWN_ERROR = "known_error"
    FIX_REQUESTED = "fix_requested"
    RESOLVED = "resolved"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Problem:
    """The cause behind one or more incidents."""

    id: str
    title: str
    status: ProblemStatus
    incident_ids: tuple[str, ...] = ()
    services: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KnownError:
    """A problem with a documented workaround, and the signature that recognises it again.

    ``signature`` is a regular expression searched in an incident's evidence texts (alert
    names, log templates, change descriptions); ``services`` limits it to those services.
    """

    id: str
    problem_id: str
    signature: str
    workaround: str
    title: str = ""
    services: tuple[str, ...] = ()
    created_by: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SLO:
    """A service level objective over an SLI, in OpenSLO terms."""

    name: str
    service: str
    objective: float
    window: str
    budgeting_method: str
    sli: Mapping[str, Any] = field(default_factory=dict)


class BudgetState(StrEnum):
    HEALTHY = "healthy"
    AT_RISK = "at_risk"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """An SLO's error budget at one moment (budget = 100% - SLO).

    ``sli`` is the good fraction over the SLO window (NaN with no data); ``good``/``total``
    count events (Occurrences) or slices (timeslice methods). ``budget_remaining`` is the
    fraction of the budget left (negative once overspent); ``bad_events`` and ``bad_minutes``
    say the same in units people use. ``burn_rates`` maps alert windows (``5m``, ``1h``, ...)
    to how many times faster than sustainable the budget burns; ``alerts`` names the burn-rate
    tiers firing (``page``, ``ticket``); ``exhaustion_s`` is the time left at the current
    (1 h) burn, None when not burning.
    """

    slo: str
    at: datetime
    sli: float
    budget_remaining: float
    burn_rates: Mapping[str, float]
    state: BudgetState
    service: str = ""
    objective: float = 0.0
    good: float = 0.0
    total: float = 0.0
    budget_consumed: float = 0.0
    bad_events: float = 0.0
    bad_minutes: float = 0.0
    exhaustion_s: float | None = None
    alerts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BacklogItem:
    """Reliability work for the product backlog, with the evidence that justifies it.

    One item per (SLO, contributing cause); ``status`` is ``open``, ``downgraded`` or
    ``closed``; ``priority_score`` is WSJF (cost of delay over job size, see ``slo.policy``);
    ``capacity_share`` the recommended share of team capacity for reliability work;
    ``links`` maps tracker names to the created issue's URL.
    """

    id: str
    slo: str
    cause: str
    title: str
    priority_score: float
    status: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    service: str = ""
    capacity_share: float = 0.0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where one tracker holds an item: its issue id/key and URL, and the revision pushed there.

    ``status``: ``synced`` (revision delivered), ``retry`` (a recoverable failure; tried again
    on the next run), ``failed`` (the tracker refused this revision; not retried until the item
    changes) or ``skipped`` (closed before it was ever delivered, so no issue was opened).
    """

    item_id: str
    tracker: str
    external_id: str
    url: str
    status: str
    revision: int
    attempts: int = 0
    last_error: str = ""
    synced_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PostMortem:
    """A blameless record of an incident: impact, timeline, causes, follow-up actions."""

    incident_id: str
    summary: str
    impact: str
    causes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which object, and when."""

    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    detail: Mapping[str, Any] = field(default_factory=dict)


SERVICE_LABELS = ("service", "service_name", "service.name", "app", "job")


def service_of(labels: Labels) -> str | None:
    """Return the service a label set names, trying the conventional labels in order.

    >>> service_of({"job": "node", "service": "checkout"})
    'checkout'
    >>> service_of({"instance": "x"}) is None
    True
    """
    for key in SERVICE_LABELS:
        value = labels.get(key)
        if value:
            return value
    return None
