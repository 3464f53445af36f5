"""Error-budget policy: turn budget burn and recurring problems into product backlog items.

``apply_policy`` reads the latest ``BudgetStatus`` of each SLO and the incidents that
overlap the SLO window on the SLO's service, and keeps **exactly one** backlog item per
(SLO, contributing cause):

* **cause** of an incident: its top hypothesis as ``<kind>:<service>`` once Diagnose ranks
  hypotheses, else its origin service: ``service:<slo service>`` when the origin is the SLO's
  own service, ``dependency:<origin>`` otherwise. A burn no incident explains is
  ``unattributed-burn``.
* **created / updated / reopened** while the item is *active*: the SLO is ``at_risk`` or
  ``exhausted`` and the cause has incidents in the window (or the burn is unattributed), or
  the cause recurs (``recurrence_min`` incidents or more in the window, even on a healthy
  budget).
* **downgraded** when a budget item goes inactive because the SLO is healthy again, and
  **closed** once ``budget_remaining`` is back at or above ``close_above`` (hysteresis: a
  budget that hovers near the at-risk line does not open and close items in turn); a
  recurring-only item closes when the recurrence is gone.
* **idempotent**: the item id is a stable hash of (SLO, cause), and an item is rewritten (with
  ``revision + 1``) only on a *material* change: its status, the budget state, the reasons
  (budget / recurring), the set of incidents, its title, or budget consumption moving by
  ``update_budget_step`` or more. Re-applying the same statuses writes nothing, so the tracker
  connectors (``slo.trackers``) have nothing new to deliver.

Priority: WSJF (weighted shortest job first, SAFe) = cost of delay / job size, each part on a
1-10 scale::

    cost of delay = business value + time criticality x cause share + risk reduction

* business value, from the topology: tier 1 -> 8, tier 2 -> 5, tier 3+ -> 3, unknown -> 5;
  +2 when consumer-facing; at most 10.
* time criticality, from the burn: 10 once the budget is exhausted; else the larger of
  ``10 x burn / 14.4`` (the long-window burn rate, where 14.4 is the SRE-workbook fast-burn
  page that spends 2 % of a 30-day budget in an hour) and the time to exhaustion (<= 1 day
  -> 10, <= 3 days -> 7, <= 7 days -> 4, later -> 2); at least 1. It is scaled by the cause's
  share of incident time in the window (1 for a sole or unattributed cause).
* risk reduction, from recurrence: ``5 x incidents / recurrence_min`` (at most 10) from two
  incidents on; 0 for a one-off.
* job size by cause kind: ``change`` 2 (revert or fix a deploy), ``service``/``code``/
  ``resource`` 3 (work inside the owning team), ``dependency`` 5 (work across teams),
  ``external`` and ``unattributed-burn`` 8 (a third party, or investigation first).

Worked example: checkout is tier 1 and consumer-facing (value 8 + 2 = 10); its 1 h burn rate
is 7.2 (criticality 10 x 7.2 / 14.4 = 5); the sole cause is its database dependency (job 5)
with a single incident (risk reduction 0):

>>> parts = wsjf_parts(ServiceProfile(1, True), time_criticality_of(7.2, None, False), 1.0, 1, 3,
...                    "dependency:payments-db")
>>> parts["cost_of_delay"], parts["job_size"], parts["score"]
(15.0, 5.0, 3.0)

Recommended capacity share (of the owning team's capacity, for reliability work; a level
per SLO, not to be summed over its items): exhausted 50 % (the SRE error-budget policy
freezes feature work until the budget recovers; half of the capacity is Google SRE's cap on
operational work), at risk 25 % (one engineer in four stops the slide before a freeze is
needed), recurring problem on a healthy budget 20 % (problem management: remove the cause
before it costs budget), downgraded 10 % (finish and verify the fix), closed 0.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from core.model import Alert, BacklogItem, BudgetState, BudgetStatus, Incident
from core.settings import Settings
from core.store import Store
from slo import backlog_repository as repo
from slo.backlog_repository import ServiceProfile, StoredItem, naive_utc
from slo.spec import SloSpec

if TYPE_CHECKING:
    from slo.trackers import Tracker

__all__ = [
    "UNATTRIBUTED",
    "BacklogChange",
    "ChangeKind",
    "PolicyConfig",
    "apply_policy",
    "business_value_of",
    "capacity_share_of",
    "cause_of",
    "item_id_of",
    "job_size_of",
    "policy_hook",
    "risk_reduction_of",
    "time_criticality_of",
    "window_length",
    "wsjf_parts",
]

UNATTRIBUTED = "unattributed-burn"
FAST_BURN = 14.4  # SRE workbook: 2 % of a 30-day budget in one hour
OPEN, DOWNGRADED, CLOSED = "open", "downgraded", "closed"
BUDGET, RECURRING = "budget", "recurring"
_JOB_SIZES = {"change": 2.0, "service": 3.0, "code": 3.0, "resource": 3.0, "dependency": 5.0, "external": 8.0}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "Q": 91 * 86400,
          "Y": 365 * 86400}  # fmt: skip
_DURATION = re.compile(r"^(\d+)([smhdwMQY])$")


class ChangeKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    REOPENED = "reopened"
    DOWNGRADED = "downgraded"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class BacklogChange:
    """One change ``apply_policy`` made: the item as now stored, and its new revision."""

    kind: ChangeKind
    item: BacklogItem
    revision: int
    previous_status: str = ""


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The policy's knobs (``from_settings`` reads the ``backlog_*`` settings).

    ``close_above``: budget fraction remaining at which an item closes; ``recurrence_min``:
    incidents of one cause in the window that make a recurring problem; ``update_budget_step``:
    budget-consumption movement that is worth a new revision; ``default_window``: the SLO
    window when no spec is given; ``public_url``: base of the links in the evidence.
    """

    close_above: float = 0.5
    recurrence_min: int = 3
    update_budget_step: float = 0.05
    default_window: timedelta = timedelta(days=28)
    public_url: str = "http://127.0.0.1:8080"
    share_exhausted: float = 0.5
    share_at_risk: float = 0.25
    share_recurring: float = 0.2
    share_downgraded: float = 0.1
    #: how long a burn may go unexplained before it gets an ``unattributed-burn`` item of its
    #: own (incidents usually explain it within minutes; one item per cause, not a placeholder too)
    attribution_grace: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if not 0.0 <= self.close_above <= 1.0:
            raise ConfigError(f"backlog_close_above must be within [0, 1], got {self.close_above}")
        if self.recurrence_min < 2:
            raise ConfigError(f"backlog_recurrence_min must be at least 2, got {self.recurrence_min}")
        if self.update_budget_step <= 0.0:
            raise ConfigError(f"backlog_update_step must be positive, got {self.update_budget_step}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyConfig:
        """The policy configured by ``settings``."""
        return cls(
            close_above=settings.backlog_close_above,
            recurrence_min=settings.backlog_recurrence_min,
            update_budget_step=settings.backlog_update_step,
            public_url=settings.public_url,
        )


# ------------------------------------------------------------------ pure parts


def item_id_of(slo: str, cause: str) -> str:
    """The stable id of the item for (SLO, cause).

    >>> item_id_of("checkout-availability", "dependency:payments-db") == item_id_of(
    ...     "checkout-availability", "dependency:payments-db")
    True
    >>> item_id_of("a", "b").startswith("BLI-")
    True
    """
    return "BLI-" + hashlib.sha256(f"{slo}\x00{cause}".encode()).hexdigest()[:16]


def window_length(duration: str) -> timedelta:
    """The length of an OpenSLO duration; calendar units are approximated (1M = 30 d, 1Q = 91 d).

    >>> window_length("28d"), window_length("1M").days
    (datetime.timedelta(days=28), 30)
    """
    match = _DURATION.match(duration.strip())
    if match is None:
        raise ConfigError(f"unknown window duration {duration!r}")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def cause_of(incident: Incident, slo_service: str) -> str:
    """The contributing cause an incident stands for (see the module docstring).

    >>> from core.model import IncidentStatus
    >>> inc = Incident("INC-1", "t", IncidentStatus.OPEN, "P2", datetime(2026, 1, 1),
    ...                services=("checkout", "payments-db"), origin_service="payments-db")
    >>> cause_of(inc, "checkout"), cause_of(inc, "payments-db")
    ('dependency:payments-db', 'service:payments-db')
    """
    if incident.hypotheses:
        top = min(incident.hypotheses, key=lambda h: h.rank)
        return f"{top.kind.value}:{top.service}"
    origin = incident.origin_service or slo_service
    return f"service:{origin}" if origin == slo_service else f"dependency:{origin}"


def business_value_of(profile: ServiceProfile | None) -> float:
    """User-business value from the service's tier and whether users see it (1-10).

    >>> business_value_of(ServiceProfile(1, True)), business_value_of(ServiceProfile(3, False))
    (10.0, 3.0)
    >>> business_value_of(None)
    5.0
    """
    if profile is None:
        return 5.0
    base = 8.0 if profile.tier <= 1 else 5.0 if profile.tier == 2 else 3.0
    return min(10.0, base + (2.0 if profile.consumer_facing else 0.0))


def time_criticality_of(burn: float, exhaustion_s: float | None, exhausted: bool) -> float:
    """Time criticality from the burn rate and the time left until the budget is gone (1-10).

    >>> time_criticality_of(7.2, None, False), time_criticality_of(1.0, 2 * 86400, False)
    (5.0, 7.0)
    >>> time_criticality_of(0.0, None, True)
    10.0
    """
    if exhausted:
        return 10.0
    by_burn = 10.0 * min(1.0, max(0.0, burn) / FAST_BURN) if math.isfinite(burn) else 0.0
    by_time = 0.0
    if exhaustion_s is not None and math.isfinite(exhaustion_s):
        days = exhaustion_s / 86400.0
        by_time = 10.0 if days <= 1 else 7.0 if days <= 3 else 4.0 if days <= 7 else 2.0
    return round(max(1.0, by_burn, by_time), 2)


def risk_reduction_of(incidents: int, recurrence_min: int) -> float:
    """Risk reduction from fixing a cause that keeps coming back (0-10).

    >>> risk_reduction_of(1, 3), risk_reduction_of(3, 3), risk_reduction_of(9, 3)
    (0.0, 5.0, 10.0)
    """
    if incidents < 2:
        return 0.0
    return round(min(10.0, 5.0 * incidents / recurrence_min), 2)


def job_size_of(cause: str) -> float:
    """Relative job size by cause kind (Fibonacci-like 2, 3, 5, 8).

    >>> job_size_of("change:checkout"), job_size_of("dependency:db"), job_size_of(UNATTRIBUTED)
    (2.0, 5.0, 8.0)
    """
    if cause == UNATTRIBUTED:
        return 8.0
    return _JOB_SIZES.get(cause.partition(":")[0], 5.0)


def wsjf_parts(
    profile: ServiceProfile | None,
    time_criticality: float,
    cause_share: float,
    incidents: int,
    recurrence_min: int,
    cause: str,
) -> dict[str, float]:
    """WSJF and its parts: business value, time criticality (scaled by the cause's share), risk
    reduction, cost of delay, job size and the score (cost of delay / job size)."""
    value = business_value_of(profile)
    critical = round(time_criticality * min(1.0, max(0.0, cause_share)), 2)
    risk = risk_reduction_of(incidents, recurrence_min)
    cost = round(value + critical + risk, 2)
    size = job_size_of(cause)
    return {
        "business_value": value,
        "time_criticality": critical,
        "risk_reduction": risk,
        "cost_of_delay": cost,
        "job_size": size,
        "score": round(cost / size, 2),
    }


def capacity_share_of(status: str, state: BudgetState, reasons: Sequence[str], config: PolicyConfig) -> float:
    """The recommended share of team capacity for reliability work (see the module docstring).

    >>> capacity_share_of("open", BudgetState.EXHAUSTED, ["budget"], PolicyConfig())
    0.5
    >>> capacity_share_of("open", BudgetState.HEALTHY, ["recurring"], PolicyConfig())
    0.2
    """
    if status == CLOSED:
        return 0.0
    if status == DOWNGRADED:
        return config.share_downgraded
    shares = [config.share_recurring if RECURRING in reasons else 0.0]
    if BUDGET in reasons or state != BudgetState.HEALTHY:
        shares.append(config.share_exhausted if state == BudgetState.EXHAUSTED else config.share_at_risk)
    return max(shares)


def _long_burn(burn_rates: Mapping[str, float]) -> float:
    """The largest burn over windows of an hour or more (short windows are noisy); else any."""
    long: list[float] = []
    short: list[float] = []
    for window, rate in burn_rates.items():
        if rate is None or not math.isfinite(rate):
            continue
        match = _DURATION.match(window)
        seconds = int(match[1]) * _UNITS[match[2]] if match else 0
        (long if seconds >= 3600 else short).append(float(rate))
    return max(long or short or [0.0])


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


# ------------------------------------------------------------------ evidence


@dataclass(frozen=True, slots=True)
class _Cause:
    incidents: tuple[Incident, ...]
    seconds: float  # incident time inside the window


def _overlap_s(incident: Incident, start: datetime, end: datetime) -> float:
    stop = min(naive_utc(incident.resolved_at or incident.closed_at or end), end)
    return max(0.0, (stop - max(naive_utc(incident.opened_at), start)).total_seconds())


def _top_factors(
    incidents: Sequence[Incident], alerts: Sequence[Alert], end: datetime
) -> list[dict[str, Any]]:
    """Services and alert names behind the cause, ranked by count then duration."""
    tally: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for a in alerts:
        seconds = max(0.0, (min(naive_utc(a.ends_at or end), end) - naive_utc(a.starts_at)).total_seconds())
        for key in (("service", a.service), ("alert", a.name)):
            if key[1]:
                tally[key][0] += 1
                tally[key][1] += seconds
    if not alerts:
        for inc in incidents:
            for svc in inc.services:
                tally[("service", svc)][0] += 1
                tally[("service", svc)][1] += _overlap_s(inc, naive_utc(inc.opened_at), end)
    ranked = sorted(tally.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    return [
        {"kind": kind, "name": name, "count": int(c), "duration_s": round(s, 1)}
        for (kind, name), (c, s) in ranked[:8]
    ]


def _evidence(
    status: BudgetStatus,
    reasons: list[str],
    found: _Cause,
    total_seconds: float,
    window: tuple[datetime, datetime, str],
    alerts: Sequence[Alert],
    wsjf: dict[str, float],
    item_id: str,
    config: PolicyConfig,
) -> dict[str, Any]:
    start, end, duration = window
    base = config.public_url.rstrip("/")
    incidents = [
        {"id": i.id, "title": i.title, "priority": i.priority, "opened_at": naive_utc(i.opened_at).isoformat(),
         "resolved_at": naive_utc(i.resolved_at).isoformat() if i.resolved_at else None,
         "duration_s": round(_overlap_s(i, naive_utc(i.opened_at), end), 1), "origin_service": i.origin_service,
         "url": f"{base}/api/v1/incidents/{i.id}"}
        for i in found.incidents
    ]  # fmt: skip
    share = found.seconds / total_seconds if total_seconds > 0 else 1.0
    return {
        "reasons": reasons,
        "state": status.state.value,
        "at": naive_utc(status.at).isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat(), "duration": duration},
        "budget": {
            "objective": status.objective,
            "sli": _finite(status.sli),
            "consumed": round(status.budget_consumed, 6),
            "remaining": round(status.budget_remaining, 6),
            "bad_events": status.bad_events,
            "bad_minutes": status.bad_minutes,
            "exhaustion_s": _finite(status.exhaustion_s),
        },
        "burn_rates": {k: _finite(v) for k, v in status.burn_rates.items()},
        "burn_alerts": list(status.alerts),
        "incidents": incidents,
        "cause_share": round(share, 4),
        "top_factors": _top_factors(found.incidents, alerts, end),
        "wsjf": wsjf,
        "links": {
            "item": f"{base}/api/v1/backlog/{item_id}",
            "slo": f"{base}/api/v1/slos/{status.slo}",
            "incidents": [i["url"] for i in incidents],
        },
    }


def _title(
    slo: str, cause: str, reasons: Sequence[str], state: BudgetState, incidents: int, window: str
) -> str:
    what = cause.replace(":", " ", 1) if cause != UNATTRIBUTED else "burn not explained by any incident"
    if BUDGET in reasons:
        level = "exhausted" if state == BudgetState.EXHAUSTED else "at risk"
        return f"[opsloop] {slo}: error budget {level} — {what}"
    return f"[opsloop] {slo}: recurring problem — {what} ({incidents} incidents / {window})"


def _material(old: StoredItem, new: BacklogItem, config: PolicyConfig) -> bool:
    """Whether ``new`` differs from the stored item enough to be a new revision."""
    before, after = old.item.evidence, new.evidence
    if old.item.status != new.status or old.item.title != new.title:
        return True
    for key in ("state", "reasons"):
        if before.get(key) != after.get(key):
            return True
    if [i["id"] for i in before.get("incidents", [])] != [i["id"] for i in after.get("incidents", [])]:
        return True
    consumed_before = float(before.get("budget", {}).get("consumed", 0.0))
    consumed_after = float(after.get("budget", {}).get("consumed", 0.0))
    return abs(consumed_after - consumed_before) >= config.update_budget_step


# ------------------------------------------------------------------ the flow


def _latest(statuses: Sequence[BudgetStatus]) -> list[BudgetStatus]:
    latest: dict[str, BudgetStatus] = {}
    for s in statuses:
        if s.slo not in latest or naive_utc(s.at) >= naive_utc(latest[s.slo].at):
            latest[s.slo] = s
    return [latest[k] for k in sorted(latest)]


def apply_policy(
    store: Store,
    statuses: Sequence[BudgetStatus],
    specs: Mapping[str, SloSpec] | None,
    at: datetime,
    config: PolicyConfig,
) -> list[BacklogChange]:
    """Create, update, downgrade or close backlog items from the SLOs' latest budget statuses.

    Only the latest status of each SLO counts. Every change is stored in one transaction and
    returned; an evaluation that changes nothing material writes nothing.
    """
    now = naive_utc(at)
    latest = _latest(statuses)
    existing = repo.load_items(store, [s.slo for s in latest])
    changes: list[BacklogChange] = []
    for status in latest:
        changes += _apply_one(store, status, (specs or {}).get(status.slo), existing, now, config)
    repo.save_items(store, [StoredItem(c.item, c.revision) for c in changes])
    return changes


def _apply_one(
    store: Store,
    status: BudgetStatus,
    spec: SloSpec | None,
    existing: Mapping[tuple[str, str], StoredItem],
    now: datetime,
    config: PolicyConfig,
) -> list[BacklogChange]:
    service = status.service or (spec.service if spec else "")
    duration = spec.window.duration if spec else f"{int(config.default_window.total_seconds() // 86400)}d"
    length = window_length(duration) if spec else config.default_window
    start = now - length
    incidents = repo.incidents_overlapping(store, service, start, now) if service else []
    by_cause: dict[str, list[Incident]] = defaultdict(list)
    for inc in incidents:
        by_cause[cause_of(inc, service)].append(inc)
    causes = {
        c: _Cause(tuple(incs), sum(_overlap_s(i, start, now) for i in incs)) for c, incs in by_cause.items()
    }
    total_seconds = sum(c.seconds for c in causes.values())

    active: dict[str, list[str]] = {}
    burning = status.state != BudgetState.HEALTHY
    if burning and causes:
        for cause in causes:
            active[cause] = [BUDGET]
    elif burning:
        placeholder = existing.get((status.slo, UNATTRIBUTED))
        already = placeholder is not None and placeholder.item.status != CLOSED
        # a burn whose incidents have left the window is still theirs: an item is open for it
        explained = any(
            slo == status.slo and cause != UNATTRIBUTED and old.item.status == OPEN
            for (slo, cause), old in existing.items()
        )
        since = repo.burning_since(store, status.slo, now)
        if already or (not explained and (since is None or now - since >= config.attribution_grace)):
            active[UNATTRIBUTED] = [BUDGET]
    for cause, found in causes.items():
        if len(found.incidents) >= config.recurrence_min:
            active.setdefault(cause, []).append(RECURRING)

    profile = repo.service_profile(store, service) if service else None
    window = (start, now, duration)
    critical = time_criticality_of(
        _long_burn(status.burn_rates), status.exhaustion_s,
        status.state == BudgetState.EXHAUSTED or status.budget_remaining <= 0,
    )  # fmt: skip

    def build(cause: str, reasons: list[str], item_status: str, old: StoredItem | None) -> BacklogItem:
        found = causes.get(cause, _Cause((), 0.0))
        share = (
            1.0 if cause == UNATTRIBUTED else (found.seconds / total_seconds if total_seconds > 0 else 0.0)
        )
        parts = wsjf_parts(profile, critical, share, len(found.incidents), config.recurrence_min, cause)
        item_id = item_id_of(status.slo, cause)
        alerts = repo.alerts_of_incidents(store, [i.id for i in found.incidents])
        evidence = _evidence(status, reasons, found, total_seconds, window, alerts, parts, item_id, config)
        if old is not None and item_status != OPEN and not found.incidents:
            # a closing item whose incidents left the window keeps them as its history
            previous = old.item.evidence
            evidence["incidents"] = previous.get("incidents", [])
            evidence["top_factors"] = previous.get("top_factors", [])
            evidence["links"]["incidents"] = previous.get("links", {}).get("incidents", [])
        title = (
            _title(status.slo, cause, reasons, status.state, len(found.incidents), duration)
            if item_status == OPEN or old is None
            else old.item.title
        )
        return BacklogItem(
            id=item_id, slo=status.slo, cause=cause, title=title, priority_score=parts["score"],
            status=item_status, evidence=evidence, service=service,
            capacity_share=capacity_share_of(item_status, status.state, reasons, config),
            created_at=old.item.created_at if old else now, updated_at=now,
            closed_at=now if item_status == CLOSED else None,
        )  # fmt: skip

    changes: list[BacklogChange] = []
    for cause, reasons in sorted(active.items()):
        old = existing.get((status.slo, cause))
        item = build(cause, reasons, OPEN, old)
        if old is None:
            changes.append(BacklogChange(ChangeKind.CREATED, replace(item, evidence={**item.evidence,
                                         "change": ChangeKind.CREATED.value}), 1))  # fmt: skip
        elif _material(old, item, config):
            kind = ChangeKind.REOPENED if old.item.status == CLOSED else ChangeKind.UPDATED
            changes.append(_revise(kind, item, old))
    for (slo, cause), old in sorted(existing.items()):
        if slo != status.slo or cause in active or old.item.status == CLOSED:
            continue
        reasons = list(old.item.evidence.get("reasons", [BUDGET]))
        recovered = status.budget_remaining >= config.close_above
        attributed = cause == UNATTRIBUTED and bool(causes)  # incidents now explain the burn
        if BUDGET not in reasons or recovered or attributed:
            changes.append(_revise(ChangeKind.CLOSED, build(cause, reasons, CLOSED, old), old))
        elif status.state == BudgetState.HEALTHY and old.item.status == OPEN:
            changes.append(_revise(ChangeKind.DOWNGRADED, build(cause, reasons, DOWNGRADED, old), old))
    return changes


def _revise(kind: ChangeKind, item: BacklogItem, old: StoredItem) -> BacklogChange:
    item = replace(item, evidence={**item.evidence, "change": kind.value})
    return BacklogChange(kind, item, old.revision + 1, old.item.status)


def policy_hook(
    settings: Settings, trackers: Sequence[Tracker] | None = None
) -> Callable[[Store, Sequence[BudgetStatus], Sequence[SloSpec], datetime], list[BacklogChange]]:
    """The policy as the SLO engine calls it after each evaluation: apply, then deliver.

    ``trackers`` default to those ``settings`` configure (``slo.trackers``); a delivery that
    fails recoverably is retried at the next evaluation.
    """
    from slo.trackers import deliver_pending, trackers_from_settings

    config = PolicyConfig.from_settings(settings)
    targets = list(trackers) if trackers is not None else trackers_from_settings(settings)

    def hook(
        store: Store, statuses: Sequence[BudgetStatus], specs: Sequence[SloSpec], at: datetime
    ) -> list[BacklogChange]:
        changes = apply_policy(store, statuses, {s.name: s for s in specs}, at, config)
        if targets:
            deliver_pending(store, targets, attempts=2, backoff_s=0.2)
        return changes

    return hook
