"""Operational metrics (MTTx, change failure rate, automation share) from incidents and changes.

Definitions (times in seconds; an incident counts in a window when it *opened* in it; a scope
is the estate, one service (an incident counts for each of its services) or one team (the
incident's team; a deployment's team is its service's topology owner)):

* **impact start** of an incident: its first alert's start, or its opening if earlier.
* **restored at**, for an incident mitigated, resolved or closed: the first of its mitigation,
  resolution and closing, or earlier the moment its last alert cleared when none still fires;
  never before the impact start. Open and acknowledged incidents are not restored.
* **MTTD** (time to detect): mean of opened - impact start.
* **MTTA** (time to acknowledge): mean of acknowledged - opened, over acknowledged incidents.
* **MTRS** (time to restore service): mean of restored - impact start, over restored incidents.
* **MTBF** (time between failures): mean, over consecutive incidents of the scope ordered by
  impact start, of next impact start - previous restored (0 when the next began before the
  previous was restored); pairs whose first incident is not restored are left out.
* **change failure rate**: deployments (changes of kind ``deployed``, ``upgraded`` or
  ``config``; rollbacks and removals are remediation, not changes under test) made in the
  window whose id an incident *links*, over all such deployments. An incident links a change
  when the pipeline correlated it (one of its alerts fired on the changed service within
  ``deploy_window_s`` of the change: the incident's ``change_ids``) or when its **leading**
  hypothesis is of kind ``change`` and names it. Incidents that merely happened after a
  deploy count for nothing.
* **automation share**: restored incidents whose restoration the Resolve executor verified
  after an automated action, over restored incidents (0 while no executor records any).

A mean with nothing to average is None (NaN on ``/metrics``).

Example: two incidents of one service, detected in 60 s and 120 s, acknowledged after 30 s
and 60 s, restored 600 s and 900 s after their impact started:

>>> t = datetime(2026, 1, 1)
>>> a = IncidentFacts("I1", ("cart",), "web", t, t + timedelta(seconds=60), t + timedelta(seconds=90),
...                   t + timedelta(seconds=600))
>>> b = IncidentFacts("I2", ("cart",), "web", t + timedelta(hours=1), t + timedelta(hours=1, seconds=120),
...                   t + timedelta(hours=1, seconds=180), t + timedelta(hours=1, seconds=900))
>>> m = summarize([a, b], [], scope="estate", name="")
>>> m.mttd_s, m.mtta_s, m.mtrs_s, m.mtbf_s
(90.0, 45.0, 750.0, 3000.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from statistics import fmean
from typing import Any

from core.store import Store
from core.telemetry import OPERATIONS_RATIO, OPERATIONS_SECONDS
from core.worker import Worker
from resolve import operations_repository as repo

__all__ = [
    "DEFINITIONS",
    "DEPLOYMENT_KINDS",
    "Deployment",
    "IncidentFacts",
    "OperationalMetrics",
    "OperationsGauges",
    "OperationsReport",
    "default_window",
    "facts_from_rows",
    "failed_deployments",
    "mean_time_between_failures",
    "operations_report",
    "publish_gauges",
    "summarize",
]

#: Change kinds that are deployments under test for the change failure rate.
DEPLOYMENT_KINDS: tuple[str, ...] = ("deployed", "upgraded", "config")


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """The moments of one incident the metrics need, and what it links to."""

    id: str
    services: tuple[str, ...]
    team: str
    impact_start: datetime
    opened_at: datetime
    acknowledged_at: datetime | None = None
    restored_at: datetime | None = None
    automated: bool = False
    linked_changes: tuple[str, ...] = ()

    @property
    def ttd_s(self) -> float:
        """Seconds from impact start to opening (>= 0)."""
        return max(0.0, (self.opened_at - self.impact_start).total_seconds())

    @property
    def tta_s(self) -> float | None:
        """Seconds from opening to acknowledgement, None when never acknowledged."""
        if self.acknowledged_at is None:
            return None
        return max(0.0, (self.acknowledged_at - self.opened_at).total_seconds())

    @property
    def ttr_s(self) -> float | None:
        """Seconds from impact start to restoration, None while not restored."""
        if self.restored_at is None:
            return None
        return max(0.0, (self.restored_at - self.impact_start).total_seconds())


@dataclass(frozen=True, slots=True)
class Deployment:
    """A change to production that the change failure rate counts."""

    id: str
    service: str
    ts: datetime
    team: str = ""


@dataclass(frozen=True, slots=True)
class OperationalMetrics:
    """The metrics of one scope (``estate``, ``service`` or ``team`` named ``name``)."""

    scope: str
    name: str
    incidents: int
    mttd_s: float | None
    mtta_s: float | None
    mtrs_s: float | None
    mtbf_s: float | None
    acknowledged: int
    restored: int
    restored_by_automation: int
    automation_share: float | None
    deployments: int
    failed_deployments: int
    change_failure_rate: float | None
    failed_deployment_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OperationsReport:
    """The estate's metrics and each service's and team's, over ``[since, until)``."""

    since: datetime
    until: datetime
    estate: OperationalMetrics
    services: tuple[OperationalMetrics, ...] = ()
    teams: tuple[OperationalMetrics, ...] = ()
    definitions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (times as ISO strings) for JSON."""
        return {
            "since": self.since.isoformat() + "Z",
            "until": self.until.isoformat() + "Z",
            "estate": _wire(self.estate),
            "services": [_wire(m) for m in self.services],
            "teams": [_wire(m) for m in self.teams],
            "definitions": dict(self.definitions),
        }


DEFINITIONS: dict[str, str] = {
    "mttd_s": "mean of opened - impact start (first alert's start, or the opening if earlier)",
    "mtta_s": "mean of acknowledged - opened, over acknowledged incidents",
    "mtrs_s": "mean of restored (first of mitigated, resolved, last alert cleared) - impact start",
    "mtbf_s": "mean gap from one incident's restoration to the next one's impact start in the scope",
    "change_failure_rate": "deployments in the window that an incident links (pipeline correlation or its"
    " leading change hypothesis) / deployments in the window",
    "automation_share": "restored incidents whose restoration was verified after an automated action / restored",
}


def _wire(m: OperationalMetrics) -> dict[str, Any]:
    out = asdict(m)
    out["failed_deployment_ids"] = list(m.failed_deployment_ids)
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return fmean(present) if present else None


def mean_time_between_failures(incidents: Sequence[IncidentFacts]) -> float | None:
    """Mean failure-free gap between consecutive incidents (see the module docstring).

    >>> t = datetime(2026, 1, 1)
    >>> one = IncidentFacts("I1", (), "", t, t, restored_at=t + timedelta(seconds=100))
    >>> two = IncidentFacts("I2", (), "", t + timedelta(seconds=400), t + timedelta(seconds=400))
    >>> mean_time_between_failures([two, one])
    300.0
    """
    ordered = sorted(incidents, key=lambda f: (f.impact_start, f.id))
    gaps = [
        max(0.0, (nxt.impact_start - prev.restored_at).total_seconds())
        for prev, nxt in pairwise(ordered)
        if prev.restored_at is not None
    ]
    return fmean(gaps) if gaps else None


def failed_deployments(deployments: Iterable[Deployment], incidents: Iterable[IncidentFacts]) -> list[str]:
    """Ids of the deployments some incident links, in deployment order.

    >>> t = datetime(2026, 1, 1)
    >>> d = [Deployment("c1", "cart", t), Deployment("c2", "cart", t)]
    >>> failed_deployments(d, [IncidentFacts("I1", ("cart",), "", t, t, linked_changes=("c2",))])
    ['c2']
    """
    linked = {c for f in incidents for c in f.linked_changes}
    return [d.id for d in sorted(deployments, key=lambda d: (d.ts, d.id)) if d.id in linked]


def summarize(
    incidents: Sequence[IncidentFacts],
    deployments: Sequence[Deployment],
    *,
    scope: str,
    name: str,
    linking: Sequence[IncidentFacts] | None = None,
) -> OperationalMetrics:
    """The metrics of one scope: ``incidents`` and ``deployments`` already filtered to it.

    ``linking`` are the incidents whose links decide which deployments failed (default
    ``incidents``): a deployment of one service may break another.
    """
    restored = [f for f in incidents if f.restored_at is not None]
    automated = sum(1 for f in restored if f.automated)
    failed = failed_deployments(deployments, incidents if linking is None else linking)
    return OperationalMetrics(
        scope=scope,
        name=name,
        incidents=len(incidents),
        mttd_s=_mean(f.ttd_s for f in incidents),
        mtta_s=_mean(f.tta_s for f in incidents),
        mtrs_s=_mean(f.ttr_s for f in incidents),
        mtbf_s=mean_time_between_failures(incidents),
        acknowledged=sum(1 for f in incidents if f.acknowledged_at is not None),
        restored=len(restored),
        restored_by_automation=automated,
        automation_share=automated / len(restored) if restored else None,
        deployments=len(deployments),
        failed_deployments=len(failed),
        change_failure_rate=len(failed) / len(deployments) if deployments else None,
        failed_deployment_ids=tuple(failed),
    )


def operations_report(
    store: Store,
    *,
    since: datetime,
    until: datetime,
    service: str | None = None,
    team: str | None = None,
) -> OperationsReport:
    """The metrics over ``[since, until)`` from the store: estate, every service and every team
    (or only the given ``service``/``team``)."""
    facts = facts_from_rows(repo.incident_facts(store, since=since, until=until))
    # links may come from incidents opened after the window (a deploy late in it breaks things later)
    linking = facts_from_rows(repo.incident_facts(store, since=since, until=None))
    deploys = [
        Deployment(*row) for row in repo.deployments(store, kinds=DEPLOYMENT_KINDS, since=since, until=until)
    ]
    services = sorted({s for f in facts for s in f.services} | {d.service for d in deploys})
    teams = sorted({f.team for f in facts if f.team} | {d.team for d in deploys if d.team})
    if service:
        services = [service]
    if team:
        teams = [team]
    estate = summarize(facts, deploys, scope="estate", name="", linking=linking)
    per_service = tuple(
        summarize([f for f in facts if s in f.services], [d for d in deploys if d.service == s],
                  scope="service", name=s, linking=linking)
        for s in services
    )  # fmt: skip
    per_team = tuple(
        summarize([f for f in facts if f.team == t], [d for d in deploys if d.team == t],
                  scope="team", name=t, linking=linking)
        for t in teams
    )  # fmt: skip
    if service or team:
        scoped = [f for f in facts if (not service or service in f.services) and (not team or f.team == team)]
        scoped_deploys = [
            d for d in deploys if (not service or d.service == service) and (not team or d.team == team)
        ]
        estate = summarize(
            scoped, scoped_deploys, scope="filtered", name=service or team or "", linking=linking
        )
    return OperationsReport(since, until, estate, per_service, per_team, dict(DEFINITIONS))


def facts_from_rows(rows: Sequence[tuple[Any, ...]]) -> list[IncidentFacts]:
    """Facts from the repository's rows (``operations_repository.incident_facts``)."""
    out = []
    for iid, services, team, start, opened, acked, restored, auto, changes, leading_change in rows:
        impact = start or opened
        links = tuple(dict.fromkeys([*(changes or ()), *([leading_change] if leading_change else [])]))
        out.append(
            IncidentFacts(
                id=str(iid),
                services=tuple(services or ()),
                team=str(team),
                impact_start=impact,
                opened_at=opened,
                acknowledged_at=acked,
                restored_at=max(restored, impact) if restored is not None else None,
                automated=bool(auto),
                linked_changes=links,
            )
        )
    return out


def publish_gauges(report: OperationsReport) -> None:
    """Set the ``/metrics`` gauges from a report: the estate (``service=""``) and each service."""
    for m in (report.estate, *report.services):
        label = m.name if m.scope == "service" else ""
        for metric, value in (("mttd", m.mttd_s), ("mtta", m.mtta_s), ("mtrs", m.mtrs_s), ("mtbf", m.mtbf_s)):
            OPERATIONS_SECONDS.labels(metric, label).set(math.nan if value is None else value)
        for metric, value in (
            ("change_failure_rate", m.change_failure_rate),
            ("automation_share", m.automation_share),
        ):
            OPERATIONS_RATIO.labels(metric, label).set(math.nan if value is None else value)


def default_window(now: datetime, days: float = 30.0) -> tuple[datetime, datetime]:
    """The window the gauges and the endpoint use without ``since``: the last 30 days."""
    return now - timedelta(days=days), now


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class OperationsGauges:
    """Keep the ``/metrics`` operations gauges current: recompute the last ``days`` every ``poll_s``."""

    def __init__(self, store: Store, *, days: float = 30.0, clock: Callable[[], datetime] = _utcnow) -> None:
        self.store = store
        self.days = days
        self.clock = clock
        self._worker: Worker | None = None

    def refresh(self) -> OperationsReport:
        """Recompute the report and set the gauges from it."""
        since, until = default_window(self.clock(), self.days)
        report = operations_report(self.store, since=since, until=until)
        publish_gauges(report)
        return report

    def _step(self) -> None:
        self.refresh()

    def start(self, poll_s: float = 60.0) -> None:
        """Refresh at once, then every ``poll_s``."""
        if self._worker is None:
            self._worker = Worker(
                "operations", self._step, poll_s=poll_s, drain_on_stop=False, wait_first=False
            )
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop refreshing."""
        if self._worker is not None:
            self._worker.stop(timeout)
