"""The one place domain objects become wire JSON (API answers and ``--json`` CLI output).

Times are ISO 8601 UTC with a ``Z``; 63-bit series ids are strings, because JavaScript
numbers lose precision above 2^53.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from core.model import (
    Alert,
    Anomaly,
    BudgetStatus,
    Hypothesis,
    Incident,
    MaintenanceWindow,
    Silence,
    TimelineEntry,
)
from core.wire import backlog_item_to_wire, iso_or_none, iso_utc
from diagnose.diagnoser import Diagnosis
from diagnose.recommend import course_of_action
from slo.spec import RatioSli, SloSpec, ThresholdSli

__all__ = [
    "alert_to_wire",
    "anomaly_to_wire",
    "backlog_item_to_wire",
    "budget_point_to_wire",
    "diagnosis_to_wire",
    "hypothesis_to_wire",
    "incident_detail_to_wire",
    "incident_to_wire",
    "indicator_to_wire",
    "iso_utc",
    "silence_to_wire",
    "slo_to_wire",
    "timeline_to_wire",
    "window_to_wire",
]


def anomaly_to_wire(a: Anomaly) -> dict[str, Any]:
    """An anomaly as JSON: every field, ids as strings, times as ISO 8601 UTC."""
    out = {f.name: getattr(a, f.name) for f in fields(a)}
    out["ts"] = iso_utc(a.ts)
    out["created_at"] = iso_utc(a.created_at)
    out["series_id"] = str(a.series_id)
    return out


def hypothesis_to_wire(h: Hypothesis) -> dict[str, Any]:
    """A ranked contributing factor: ``{rank, service, kind, score, evidence, component, recommendation}``."""
    return {
        "rank": h.rank,
        "service": h.service,
        "kind": h.kind.value,
        "score": h.score,
        "evidence": dict(h.evidence),
        "component": h.component,
        "recommendation": h.recommendation,
    }


def incident_to_wire(i: Incident) -> dict[str, Any]:
    """An incident as the API and ``opsloop incidents --json`` print it."""
    return {
        "id": i.id,
        "title": i.title,
        "status": i.status.value,
        "priority": i.priority,
        "priority_reason": i.priority_reason,
        "opened_at": iso_utc(i.opened_at),
        "acknowledged_at": iso_or_none(i.acknowledged_at),
        "mitigated_at": iso_or_none(i.mitigated_at),
        "resolved_at": iso_or_none(i.resolved_at),
        "closed_at": iso_or_none(i.closed_at),
        "escalated_at": iso_or_none(i.escalated_at),
        "updated_at": iso_or_none(i.updated_at),
        "services": list(i.services),
        "origin_service": i.origin_service,
        "team": i.team,
        "assignee": i.assignee,
        "alert_count": i.alert_count,
        "major": i.major,
        "change_ids": list(i.change_ids),
        "hypotheses": [hypothesis_to_wire(h) for h in i.hypotheses],
        "course_of_action": course_of_action(i.hypotheses),
    }


def diagnosis_to_wire(d: Diagnosis) -> dict[str, Any]:
    """One diagnosis run: the ranked hypotheses, the plan, and what it read to get there."""
    return {
        "incident_id": d.incident_id,
        "as_of": iso_utc(d.as_of),
        "alarm_at": iso_utc(d.alarm_at),
        "hypotheses": [hypothesis_to_wire(h) for h in d.hypotheses],
        "course_of_action": d.course_of_action,
        "candidates": list(d.candidates),
        "series": d.series,
        "log_lines": d.log_lines,
        "seconds": round(d.seconds, 4),
    }


def alert_to_wire(a: Alert) -> dict[str, Any]:
    """An alert with its lifecycle and why it did (not) page."""
    return {
        "id": a.id,
        "fingerprint": a.fingerprint,
        "name": a.name,
        "status": "flapping" if a.flapping and a.status.value == "firing" else a.status.value,
        "starts_at": iso_utc(a.starts_at),
        "ends_at": iso_or_none(a.ends_at),
        "last_seen": iso_or_none(a.last_seen),
        "service": a.service,
        "severity": a.severity,
        "source": a.source,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "incident_id": a.incident_id or None,
        "suppressed_by": a.suppressed_by or None,
        "inhibited_by": a.inhibited_by or None,
        "change_id": a.change_id or None,
        "held_until": iso_or_none(a.held_until),
        "flapping": a.flapping,
        "value": a.value,
        "score": a.score,
    }


def timeline_to_wire(e: TimelineEntry) -> dict[str, Any]:
    """One timeline entry."""
    return {"at": iso_utc(e.at), "kind": e.kind, "actor": e.actor, "text": e.text, "detail": dict(e.detail)}


def silence_to_wire(s: Silence, now: datetime) -> dict[str, Any]:
    """A silence in Alertmanager's ``gettableSilence`` shape (``status.state``: pending/active/expired)."""
    if now >= s.ends_at or s.ends_at <= s.starts_at:  # an expired pending silence ends where it starts
        state = "expired"
    else:
        state = "pending" if now < s.starts_at else "active"
    return {
        "id": s.id,
        "matchers": [
            {"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal}
            for m in s.matchers
        ],
        "startsAt": iso_utc(s.starts_at),
        "endsAt": iso_utc(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
        "updatedAt": iso_or_none(s.updated_at),
        "status": {"state": state},
    }


def window_to_wire(w: MaintenanceWindow) -> dict[str, Any]:
    """A maintenance window."""
    return {
        "id": w.id,
        "services": list(w.services),
        "start": iso_utc(w.starts_at),
        "end": iso_utc(w.ends_at),
        "reason": w.reason,
        "created_by": w.created_by,
        "recurrence": w.recurrence or None,
        "until": iso_or_none(w.until),
        "source": w.source,
    }


def incident_detail_to_wire(
    i: Incident, alerts: Sequence[Alert], timeline: Sequence[TimelineEntry]
) -> dict[str, Any]:
    """An incident with its ``alerts`` and ``timeline`` (``GET /api/v1/incidents/{id}``, ``incident show``)."""
    return {
        **incident_to_wire(i),
        "alerts": [alert_to_wire(a) for a in alerts],
        "timeline": [timeline_to_wire(e) for e in timeline],
    }


def _finite(x: float | None) -> float | None:
    return None if x is None or x != x or x in (float("inf"), float("-inf")) else x


def indicator_to_wire(spec: SloSpec) -> dict[str, Any]:
    """An SLO's indicator, as a reader wants it: its kind and selectors or event types."""
    sli = spec.sli
    if isinstance(sli, RatioSli):
        return {
            "kind": "ratio",
            "good": sli.good.text if sli.good else None,
            "bad": sli.bad.text if sli.bad else None,
            "total": sli.total.text,
            "counter": sli.counter,
        }
    if isinstance(sli, ThresholdSli):
        return {"kind": "threshold", "metric": sli.metric.text, "op": sli.op, "threshold": sli.threshold}
    return {"kind": "events", "total_type": sli.total_type, "bad_type": sli.bad_type, "service": sli.service}


def slo_to_wire(spec: SloSpec, status: BudgetStatus | None) -> dict[str, Any]:
    """An SLO with its latest status (``opsloop slo status --json`` and ``GET /api/v1/slos``).

    ``sli`` is the measured good fraction over the SLO window (null without data);
    ``budget_remaining`` the fraction of the error budget left (negative once overspent);
    ``burn_rates`` maps each alert window to its burn rate.
    """
    return {
        "name": spec.name,
        "service": spec.service,
        "objective": spec.objective,
        "window": spec.window.duration,
        "rolling": spec.window.rolling,
        "budgeting_method": spec.budgeting_method.value,
        "indicator": indicator_to_wire(spec),
        "sli": _finite(status.sli) if status else None,
        "error_budget": 1.0 - spec.objective,
        "budget_remaining": status.budget_remaining if status else None,
        "budget_consumed": status.budget_consumed if status else None,
        "bad_events": status.bad_events if status else None,
        "bad_minutes": status.bad_minutes if status else None,
        "burn_rates": dict(status.burn_rates) if status else {},
        "alerts": list(status.alerts) if status else [],
        "exhaustion_s": _finite(status.exhaustion_s) if status else None,
        "state": status.state.value if status else None,
        "evaluated_at": iso_utc(status.at) if status else None,
    }


def budget_point_to_wire(s: BudgetStatus) -> dict[str, Any]:
    """One point of an SLO's history."""
    return {
        "at": iso_utc(s.at),
        "sli": _finite(s.sli),
        "budget_remaining": s.budget_remaining,
        "burn_rates": dict(s.burn_rates),
        "state": s.state.value,
        "alerts": list(s.alerts),
    }
