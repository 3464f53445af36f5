"""Priority P1-P4 from impact and urgency, with the reason spelled out.

ITIL's matrix: priority = f(impact, urgency), each high (1), medium (2) or low (3);
``P = impact + urgency - 1`` capped to 1..4, so high/high is P1, high/medium P2,
medium/medium P3 and anything low/low P4 (a P5 would never page, so it folds into P4).

- **Impact** is high when a tier-1 consumer-facing service is affected, or at least
  ``wide`` services are, or an SLO's page-tier burn is firing; medium for a tier-1/2
  service or two or more services; low otherwise.
- **Urgency** is high when an alert is critical (or an SLO page), medium for a sustained
  anomaly or a warning, low for info-level signals.

A major incident has many services (``major_services``) or a tier-1 consumer-facing
service at P1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.model import Alert
from core.topology import Topology

__all__ = ["Assessment", "assess"]

_CRITICAL = {"critical", "page", "error", "p1", "sev1", "high"}
_INFO = {"info", "informational", "low", "none"}


@dataclass(frozen=True, slots=True)
class Assessment:
    """An incident's priority, whether it is major, and why."""

    priority: str
    major: bool
    impact: int
    urgency: int
    reason: str


def assess(
    services: Iterable[str],
    alerts: Iterable[Alert],
    topology: Topology,
    *,
    wide: int = 4,
    major_services: int = 5,
) -> Assessment:
    """Prioritise an incident from its services and alerts.

    >>> from datetime import datetime
    >>> from core.model import AlertStatus, ConfigurationItem
    >>> topo = Topology([ConfigurationItem("web", tier=1, consumer_facing=True), ConfigurationItem("batch", tier=4)])
    >>> a = Alert("a", "f", "latency high", AlertStatus.FIRING, datetime(2026, 1, 1), service="web", severity="warning")
    >>> r = assess(["web"], [a], topo)
    >>> r.priority, r.reason
    ('P2', 'impact high (tier-1 consumer-facing web); urgency medium (warning or sustained anomaly)')
    >>> assess(["batch"], [Alert("b", "g", "x", AlertStatus.FIRING, datetime(2026, 1, 1), "batch", "info")], topo).priority
    'P4'
    """
    services = sorted(set(services))
    alerts = list(alerts)
    facing1 = [s for s in services if topology.consumer_facing(s) and topology.tier(s) == 1]
    slo_page = any(a.source == "slo" and a.severity in _CRITICAL for a in alerts)
    if facing1:
        impact, why_impact = 1, f"tier-1 consumer-facing {', '.join(facing1)}"
    elif len(services) >= wide:
        impact, why_impact = 1, f"{len(services)} services"
    elif slo_page:
        impact, why_impact = 1, "SLO page-tier burn"
    elif any(topology.tier(s) <= 2 for s in services) or len(services) >= 2:
        best = min(topology.tier(s) for s in services) if services else 3
        impact, why_impact = 2, f"tier-{best} service" if len(services) < 2 else f"{len(services)} services"
    else:
        impact, why_impact = 3, "one low-tier service"
    severities = {a.severity.lower() for a in alerts}
    if severities & _CRITICAL:
        urgency, why_urgency = 1, "critical alert"
    elif severities and severities <= _INFO:
        urgency, why_urgency = 3, "informational alerts only"
    else:
        urgency, why_urgency = 2, "warning or sustained anomaly"
    level = min(max(impact + urgency - 1, 1), 4)
    major = len(services) >= major_services or (bool(facing1) and level == 1)
    names = {1: "high", 2: "medium", 3: "low"}
    reason = f"impact {names[impact]} ({why_impact}); urgency {names[urgency]} ({why_urgency})"
    if major:
        reason += "; major incident"
    return Assessment(f"P{level}", major, impact, urgency, reason)
