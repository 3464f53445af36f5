"""Blameless post-mortems, written from what the store knows about an incident.

:func:`build_postmortem` gathers the facts (the incident, its alerts, its timeline, its
hypotheses, its problem and the SLO budget it cost) into a :class:`PostMortemReport`;
:func:`render` turns that into Markdown or HTML through the Jinja2 templates in
``postmortem_templates/``. Every generated sentence is about systems, signals and timings:
people appear only as the ``actor`` of their own timeline entries, never in the summary,
the findings or the action items.

Sections: summary; impact (duration from impact start to restoration, SLO budget consumed
and failed requests per SLO of an affected service where SLO snapshots exist, affected
services); detection (which signal, time to detect and to acknowledge); the timeline;
contributing factors (the ranked hypotheses); what went well and what went badly (each a
rule over those facts, see :func:`findings`); action items, each of which the assembly can
file as a backlog item.

The SLO impact comes from an injected :data:`ImpactSource`, since ``resolve`` cannot read the
SLO stage; without one the impact section says the budget is not known.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from core.errors import NotFoundError, SchemaError
from core.model import Alert, Hypothesis, HypothesisKind, Incident, TimelineEntry
from core.store import Store
from detect.incidents import repository as incidents_repo
from resolve import problems_repository as problems_repo
from resolve.operations import IncidentFacts, facts_from_rows
from resolve.operations_repository import changes_by_id, incident_facts

__all__ = [
    "FORMATS",
    "ActionItem",
    "ImpactSource",
    "PostMortemReport",
    "SloImpact",
    "build_postmortem",
    "findings",
    "render",
]

FORMATS = ("md", "html")
TEMPLATES = Path(__file__).resolve().parent / "postmortem_templates"
_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class SloImpact:
    """What an incident cost one SLO between its impact start and its restoration.

    ``budget_consumed`` is the fraction of the SLO's error budget spent in that span (the rise
    of the rolling window's consumption); ``bad_events`` the failed requests (or bad slices)
    counted in it; None where the snapshots do not say.
    """

    slo: str
    service: str
    budget_consumed: float | None
    bad_events: float | None = None
    consumer_facing: bool = False


#: ``impact(incident, start, end)``: the SLO cost of an incident over ``[start, end]``.
ImpactSource = Callable[[Incident, datetime, datetime], Sequence[SloImpact]]


@dataclass(frozen=True, slots=True)
class ActionItem:
    """Follow-up work the post-mortem asks for: what, why (the finding behind it), on which service."""

    title: str
    why: str
    service: str = ""
    kind: str = "improvement"


@dataclass(frozen=True, slots=True)
class PostMortemReport:
    """Everything one post-mortem says, as data (rendered by :func:`render`)."""

    incident: Incident
    generated_at: datetime
    summary: str
    impact_start: datetime
    restored_at: datetime | None
    duration_s: float | None
    ttd_s: float
    tta_s: float | None
    detected_by: str
    first_signal: str
    slo_impacts: tuple[SloImpact, ...]
    timeline: tuple[TimelineEntry, ...]
    contributing_factors: tuple[Hypothesis, ...]
    went_well: tuple[str, ...]
    went_badly: tuple[str, ...]
    action_items: tuple[ActionItem, ...]
    problem_id: str = ""
    problem_incidents: tuple[str, ...] = ()
    automated: bool = False
    alerts: tuple[Alert, ...] = field(default=())

    @property
    def failed_requests(self) -> float | None:
        """Failed requests over every SLO that counted them (None when none did)."""
        counts = [s.bad_events for s in self.slo_impacts if s.bad_events is not None]
        return sum(counts) if counts else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (times as ISO strings)."""
        i = self.incident
        return {
            "incident": i.id, "title": i.title, "priority": i.priority, "status": i.status.value,
            "summary": self.summary,
            "impact": {
                "start": _iso(self.impact_start), "restored_at": _iso(self.restored_at),
                "duration_s": self.duration_s, "services": list(i.services),
                "failed_requests": self.failed_requests,
                "slos": [{"slo": s.slo, "service": s.service, "budget_consumed": s.budget_consumed,
                          "bad_events": s.bad_events, "consumer_facing": s.consumer_facing}
                         for s in self.slo_impacts],
            },
            "detection": {"ttd_s": self.ttd_s, "tta_s": self.tta_s, "detected_by": self.detected_by,
                          "first_signal": self.first_signal},
            "timeline": [{"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "text": e.text} for e in self.timeline],
            "contributing_factors": [{"rank": h.rank, "service": h.service, "kind": h.kind.value, "score": h.score,
                                      "component": h.component, "recommendation": h.recommendation}
                                     for h in self.contributing_factors],
            "went_well": list(self.went_well), "went_badly": list(self.went_badly),
            "action_items": [{"title": a.title, "why": a.why, "service": a.service, "kind": a.kind}
                             for a in self.action_items],
            "problem": {"id": self.problem_id, "incidents": list(self.problem_incidents)} if self.problem_id else None,
            "restored_by_automation": self.automated,
            "generated_at": _iso(self.generated_at),
        }  # fmt: skip


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() + "Z" if ts is not None else None


def duration_text(seconds: float | None) -> str:
    """A duration for people.

    >>> duration_text(45), duration_text(754), duration_text(7380), duration_text(None)
    ('45 s', '12 min 34 s', '2 h 3 min', 'not restored')
    """
    if seconds is None:
        return "not restored"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _detected_by(first: Alert | None) -> tuple[str, str]:
    if first is None:
        return "an incident opened without alerts (by hand or by an external event)", ""
    if first.source == "anomaly" or first.score is not None:
        how = "opsloop's anomaly detection"
    elif first.source == "slo":
        how = "an SLO burn-rate alert"
    else:
        how = f"an alert from {first.source or 'an external tool'}"
    return how, f"{first.name} on {first.service or 'an unnamed service'}"


def findings(
    incident: Incident,
    facts: IncidentFacts,
    alerts: Sequence[Alert],
    slo_impacts: Sequence[SloImpact],
    problem_incidents: Sequence[str],
    escalate_after_s: Mapping[str, float],
) -> tuple[list[str], list[str]]:
    """What went well and what went badly, each a fact about the systems.

    * detection before any SLO burn-rate alert fired (well) or after one (badly);
    * restoration verified after an automated action (well);
    * acknowledged within the priority's escalation time (well), escalated or never
      acknowledged (badly);
    * Diagnose ranked causes (well), or had none (badly); a known error's workaround was
      offered (well);
    * the incident recurs as part of a problem (badly);
    * an SLO budget was spent, most of all on a consumer-facing SLO (badly).
    """
    well: list[str] = []
    badly: list[str] = []
    slo_alerts = [a for a in alerts if a.source == "slo"]
    first_slo = min((a.starts_at for a in slo_alerts), default=None)
    if first_slo is None or first_slo >= incident.opened_at:
        if alerts:
            well.append("The incident opened before any SLO burn-rate alert fired.")
    else:
        lead = (incident.opened_at - first_slo).total_seconds()
        badly.append(f"An SLO burn-rate alert fired {duration_text(lead)} before the incident opened.")
    if facts.automated:
        well.append("Service was restored by an automated action, and the restoration was verified.")
    target = escalate_after_s.get(incident.priority)
    if (
        facts.tta_s is not None
        and target is not None
        and facts.tta_s <= target
        and incident.escalated_at is None
    ):
        well.append(
            f"Acknowledged {duration_text(facts.tta_s)} after opening, within the {incident.priority} "
            f"escalation time of {duration_text(target)}."
        )
    if incident.escalated_at is not None:
        badly.append(
            f"The incident escalated: it was not acknowledged within the {incident.priority} escalation time."
        )
    elif facts.acknowledged_at is None and facts.restored_at is not None and not facts.automated:
        badly.append("The incident was never acknowledged.")
    if incident.hypotheses:
        top = incident.hypotheses[0]
        well.append(f"Diagnose ranked {len(incident.hypotheses)} contributing factor(s); the leading one was "
                    f"{top.kind.value} in {top.service}.")  # fmt: skip
        if any((h.evidence or {}).get("known_errors") for h in incident.hypotheses):
            well.append("A known error's workaround was offered with the diagnosis.")
    else:
        badly.append("Diagnose ranked no contributing factor (too little evidence in the store).")
    if len(problem_incidents) > 1:
        badly.append(
            f"This failure recurs: it is one of {len(problem_incidents)} incidents of the same problem."
        )
    for s in slo_impacts:
        if s.budget_consumed is not None and s.budget_consumed > 0:
            who = " (consumer-facing)" if s.consumer_facing else ""
            badly.append(f"SLO {s.slo}{who} spent {s.budget_consumed:.1%} of its error budget.")
    return well, badly


def _action_items(
    incident: Incident,
    facts: IncidentFacts,
    alerts: Sequence[Alert],
    well: Sequence[str],
    badly: Sequence[str],
    problem_id: str,
    problem_incidents: Sequence[str],
) -> list[ActionItem]:
    items: list[ActionItem] = []
    top = incident.hypotheses[0] if incident.hypotheses else None
    if top is not None:
        items.append(ActionItem(
            f"Remove the contributing factor: {top.kind.value} in {top.service}"
            + (f" ({top.component})" if top.component else ""),
            top.recommendation or "the leading hypothesis of the diagnosis", top.service, "fix",
        ))  # fmt: skip
        if top.kind is HypothesisKind.CHANGE:
            items.append(ActionItem(
                f"Gate {top.service}'s deployments on the signals that fired in this incident",
                "a change is the leading contributing factor", top.service, "prevention",
            ))  # fmt: skip
    if any(line.startswith("An SLO burn-rate alert fired") for line in badly):
        service = facts.services[0] if facts.services else ""
        items.append(ActionItem(
            f"Detect {service or 'the failure'} before its SLO burns: alert on the leading signal",
            "an SLO burn-rate alert fired before the incident opened", service, "detection",
        ))  # fmt: skip
    if incident.escalated_at is not None:
        items.append(ActionItem(
            f"Review the paging path of {incident.team or 'the owning team'} for {incident.priority} incidents",
            "the incident escalated before anyone acknowledged it", incident.origin_service, "response",
        ))  # fmt: skip
    if not facts.automated and facts.restored_at is not None and top is not None:
        items.append(ActionItem(
            f"Automate the restoration of {top.service} as a runbook",
            "service was restored by hand", top.service, "automation",
        ))  # fmt: skip
    if problem_id and len(problem_incidents) > 1:
        items.append(ActionItem(
            f"Fix problem {problem_id} ({len(problem_incidents)} incidents)",
            "the same failure keeps coming back", top.service if top else "", "problem",
        ))  # fmt: skip
    if top is None and alerts:
        items.append(ActionItem(
            f"Give Diagnose the evidence it lacked for {alerts[0].service or 'this service'} (metrics, logs, changes)",
            "no contributing factor was ranked", alerts[0].service, "observability",
        ))  # fmt: skip
    return items


def _timeline(store: Store, incident: Incident, entries: Sequence[TimelineEntry]) -> list[TimelineEntry]:
    """The incident's timeline, with the changes its correlation or hypotheses name added where
    the pipeline did not record them, and assignments told by team (people stay in ``actor``)."""
    named = list(incident.change_ids) + [
        str(c["id"])
        for h in incident.hypotheses
        for c in (h.evidence or {}).get("changes") or []
        if c.get("id")
    ]
    recorded = {str(e.detail.get("change_id")) for e in entries if e.kind == "change"}
    added = [
        TimelineEntry(ts, "change", source or "cd", f"{kind} {version} of {service}".replace("  ", " ")
                      + (f": {description}" if description else ""), {"change_id": cid, "service": service})
        for cid, service, kind, ts, version, source, description in changes_by_id(store, list(dict.fromkeys(named)))
        if cid not in recorded
    ]  # fmt: skip
    out = [
        TimelineEntry(e.at, e.kind, e.actor, f"assigned to {e.detail.get('team') or 'a team'}", e.detail)
        if e.kind == "assigned" else e
        for e in entries
    ]  # fmt: skip
    return sorted([*out, *added], key=lambda e: e.at)  # stable: entries at one time keep their order


def build_postmortem(
    store: Store,
    incident_id: str,
    *,
    impact: ImpactSource | None = None,
    escalate_after_s: Mapping[str, float] | None = None,
    now: datetime | None = None,
) -> PostMortemReport:
    """Gather the post-mortem of ``incident_id``; ``NotFoundError`` naming it when unknown."""
    incident = incidents_repo.incident_by_id(store, incident_id)
    if incident is None:
        raise NotFoundError(f"incident {incident_id!r} not found")
    (facts,) = facts_from_rows(incident_facts(store, ids=[incident_id]))
    alerts = incidents_repo.alerts_of(store, incident_id)
    timeline = _timeline(store, incident, incidents_repo.timeline_of(store, incident_id))
    end = facts.restored_at or now or incident.updated_at or incident.opened_at
    slo_impacts = tuple(impact(incident, facts.impact_start, end)) if impact is not None else ()
    # a file opened read-only may predate the problem tables
    has_problems = problems_repo.table_exists(store, "problem_incidents")
    membership = problems_repo.memberships(store, [incident_id]) if has_problems else {}
    problem_id = membership.get(incident_id, "")
    members = tuple(problems_repo.members_of(store, problem_id)) if problem_id else ()
    first = min(alerts, key=lambda a: (a.starts_at, a.id), default=None)
    detected_by, first_signal = _detected_by(first)
    targets = escalate_after_s if escalate_after_s is not None else {"P1": 300.0, "P2": 900.0, "P3": 3600.0}
    well, badly = findings(incident, facts, alerts, slo_impacts, members, targets)
    duration = facts.ttr_s
    summary = (
        f"{incident.priority} incident {incident.id} affected {', '.join(incident.services) or 'no named service'} "
        f"for {duration_text(duration)}"
        + (f"; the leading contributing factor was {incident.hypotheses[0].kind.value} in "
           f"{incident.hypotheses[0].service}" if incident.hypotheses else "")
        + (f". It was detected by {detected_by} {duration_text(facts.ttd_s)} after impact began"
           + ("" if facts.restored_at is None else
              ", and restored " + ("by automation" if facts.automated else "by hand")) + ".")
    )  # fmt: skip
    return PostMortemReport(
        incident=incident,
        generated_at=now or incident.updated_at or incident.opened_at,
        summary=summary,
        impact_start=facts.impact_start,
        restored_at=facts.restored_at,
        duration_s=duration,
        ttd_s=facts.ttd_s,
        tta_s=facts.tta_s,
        detected_by=detected_by,
        first_signal=first_signal,
        slo_impacts=slo_impacts,
        timeline=tuple(timeline),
        contributing_factors=incident.hypotheses,
        went_well=tuple(well),
        went_badly=tuple(badly),
        action_items=tuple(_action_items(incident, facts, alerts, well, badly, problem_id, members)),
        problem_id=problem_id,
        problem_incidents=members,
        automated=facts.automated,
        alerts=tuple(alerts),
    )


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC") if ts is not None else "-"


def _pct(x: float | None) -> str:
    return "not known" if x is None else f"{x:.1%}"


def _count(x: float | None) -> str:
    return "not counted" if x is None else f"{x:,.0f}"


def render(report: PostMortemReport, fmt: str = "md") -> str:
    """The post-mortem as Markdown (``md``) or a standalone HTML page (``html``)."""
    if fmt not in FORMATS:
        raise SchemaError("format", f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
    template = _ENV.get_template(f"postmortem.{fmt}.j2" if fmt == "md" else "postmortem.html")
    return template.render(
        r=report, i=report.incident, when=_when, duration=duration_text, pct=_pct, count=_count,
    )  # fmt: skip
