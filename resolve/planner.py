"""Planning: an incident and its leading hypothesis -> the runbooks that match, rendered as plans.

A runbook matches when every condition it gives holds: one of the incident's alerts satisfies
all ``alert_labels`` matchers (anchored regexes on the alert's labels, ``alertname`` and
``service`` included, a missing label reading ``""``, as Alertmanager does), ``service``
matches the leading hypothesis' service or one of the incident's services, and
``hypothesis_kind`` is the leading hypothesis' kind. Each match is rendered in full (a dry
run) and stored as a plan. A plan is made again only when it would differ (new runbook
version, new leading hypothesis, other values): the same plan is never repeated while its
incident stays open.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.model import Alert, Hypothesis, HypothesisKind, Incident, IncidentStatus
from core.selectors import Matcher
from core.store import Store
from detect.incidents import repository as incidents_repo
from resolve import actions_repository as repo
from resolve.audit import AuditLog
from resolve.catalog import Catalog
from resolve.runbooks import RenderedStep, RenderError, Runbook, TemplateContext, render_step

__all__ = ["DraftPlan", "Planner", "context_for", "matches"]

Note = Callable[[str, str, str], object]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def leading(incident: Incident) -> Hypothesis | None:
    """The rank-1 hypothesis, if Diagnose gave any."""
    return min(incident.hypotheses, key=lambda h: h.rank) if incident.hypotheses else None


def _change_id(h: Hypothesis | None, incident: Incident) -> str:
    if h is None:
        return ""
    changes = h.evidence.get("changes") or []
    if changes and isinstance(changes[0], Mapping) and changes[0].get("id"):
        return str(changes[0]["id"])
    if h.kind is HypothesisKind.CHANGE:
        return h.component or (incident.change_ids[0] if incident.change_ids else "")
    return ""


def _alert_labels(a: Alert) -> dict[str, str]:
    labels = dict(a.labels)
    labels.setdefault("alertname", a.name)
    if a.service:
        labels.setdefault("service", a.service)
    return labels


def matches(runbook: Runbook, incident: Incident, alerts: Sequence[Alert]) -> tuple[str, Alert | None] | None:
    """``(service, alert)`` the runbook matched on, or None.

    >>> from resolve.runbooks import parse_runbooks
    >>> rb = parse_runbooks('''{apiVersion: opsloop/v1, kind: Runbook, metadata: {name: r},
    ...   spec: {match: {alert_labels: {alertname: "High.*"}, service: "cart"},
    ...          steps: [{name: s, http: {url: "http://d.local/x"}}]}}''', "x")[0]
    >>> from core.model import AlertStatus
    >>> inc = Incident("I", "t", IncidentStatus.OPEN, "P3", datetime(2026, 1, 1), services=("cart",))
    >>> a = Alert("a", "f", "HighLatency", AlertStatus.FIRING, datetime(2026, 1, 1), service="cart")
    >>> matches(rb, inc, [a])[0]
    'cart'
    >>> matches(rb, inc, [Alert("b", "f", "XHighLatency", AlertStatus.FIRING, datetime(2026, 1, 1))]) is None
    True
    """
    m = runbook.spec.match
    lead = leading(incident)
    if m.hypothesis_kind is not None and (lead is None or lead.kind is not m.hypothesis_kind):
        return None
    candidates = [
        s for s in ((lead.service if lead else ""), incident.origin_service, *incident.services) if s
    ]
    if m.service is not None:
        pattern = re.compile(m.service)
        candidates = [s for s in candidates if pattern.fullmatch(s)]
        if not candidates:
            return None
    service = candidates[0] if candidates else ""
    matchers = [Matcher(k, "=~", v, re.compile(v)) for k, v in m.alert_labels.items()]
    if not matchers:
        return service, (alerts[0] if alerts else None)
    for a in alerts:
        labels = _alert_labels(a)
        if all(mt.matches(labels) for mt in matchers):
            return service, a
    return None


def context_for(
    incident: Incident, service: str, alert: Alert | None, change: Mapping[str, str] | None = None
) -> TemplateContext:
    """The values templates may read for this incident (``change``: the hypothesis' change record)."""
    lead = leading(incident)
    hyp = {"service": lead.service if lead else "", "kind": lead.kind.value if lead else "",
           "change_id": _change_id(lead, incident)}  # fmt: skip
    inc = {"id": incident.id, "title": incident.title, "priority": incident.priority,
           "services": list(incident.services), "status": incident.status.value}  # fmt: skip
    labels = _alert_labels(alert) if alert else {}
    annotations = dict(alert.annotations) if alert else {}
    return TemplateContext(service, inc, labels, annotations, hyp, dict(change or {}))


@dataclass(frozen=True, slots=True)
class DraftPlan:
    """A rendered plan (dry run) before it is stored; ``error`` when a value was refused."""

    runbook: Runbook
    service: str
    steps: tuple[RenderedStep, ...] = ()
    rollback: tuple[RenderedStep, ...] = ()
    error: str = ""
    plan_hash: str = field(default="")

    def to_wire(self) -> dict[str, Any]:
        return {"runbook": self.runbook.name, "version": self.runbook.version, "mode": self.runbook.mode,
                "service": self.service, "steps": [s.to_wire() for s in self.steps],
                "rollback": [s.to_wire() for s in self.rollback], "error": self.error,
                "verify_window_s": self.runbook.spec.verify.window}  # fmt: skip


def draft(
    runbook: Runbook, incident: Incident, alerts: Sequence[Alert], change: Mapping[str, str] | None = None
) -> DraftPlan | None:
    """Render ``runbook`` for ``incident`` when it matches."""
    hit = matches(runbook, incident, alerts)
    if hit is None:
        return None
    service, alert = hit
    ctx = context_for(incident, service, alert, change)
    try:
        steps = tuple(render_step(runbook, s, ctx) for s in runbook.spec.steps)
        rollback = tuple(render_step(runbook, s, ctx) for s in runbook.spec.rollback)
        error = ""
    except RenderError as exc:
        steps, rollback, error = (), (), exc.message
    body = json.dumps([runbook.hash, [s.to_wire() for s in steps], [s.to_wire() for s in rollback], error],
                      sort_keys=True, default=str)  # fmt: skip
    return DraftPlan(runbook, service, steps, rollback, error, hashlib.sha256(body.encode()).hexdigest()[:16])


class Planner:
    """Turn incidents into plans (stored, audited); the executor takes them from there."""

    def __init__(self, store: Store, catalog: Catalog, *, note: Note | None = None,
                 clock: Callable[[], datetime] = _now) -> None:  # fmt: skip
        self.store = store
        self.catalog = catalog
        self.note = note
        self.clock = clock

    def preview(self, incident_id: str) -> list[DraftPlan]:
        """Every matching runbook rendered for the incident, stored or not (a dry run)."""
        incident = incidents_repo.incident_by_id(self.store, incident_id)
        if incident is None:
            return []
        alerts = incidents_repo.alerts_of(self.store, incident_id)
        change = self._change(incident)
        return [d for rb in self.catalog.runbooks() if (d := draft(rb, incident, alerts, change)) is not None]

    def _change(self, incident: Incident) -> dict[str, str]:
        change_id = _change_id(leading(incident), incident)
        return repo.change_with_previous(self.store, change_id) if change_id else {}

    def plan(self, incident_id: str) -> list[repo.PlanRow]:
        """Store a plan for each matching runbook whose plan changed; return the new plans."""
        incident = incidents_repo.incident_by_id(self.store, incident_id)
        if incident is None or incident.status not in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED):
            return []
        alerts = incidents_repo.alerts_of(self.store, incident_id)
        existing = repo.plans(self.store, incident=incident_id)
        change = self._change(incident)
        made: list[repo.PlanRow] = []
        for rb in self.catalog.runbooks():
            d = draft(rb, incident, alerts, change)
            if d is None:
                continue
            mine = [p for p in existing if p.runbook == rb.name]
            if any(p.plan_hash == d.plan_hash for p in mine):
                continue  # the same plan already exists for this incident: never repeat it
            if any(p.status in ("running", "rolling_back", "verifying") for p in mine):
                continue  # a plan of this runbook is acting on the incident: let it finish first
            made.append(self._store_plan(incident, d, [p for p in mine if p.status in repo.ACTIVE_PLAN]))
        return made

    def _store_plan(
        self, incident: Incident, d: DraftPlan, superseded: Sequence[repo.PlanRow]
    ) -> repo.PlanRow:
        now = self.clock()
        rb = d.runbook
        status = "refused" if d.error else {"suggest": "suggested", "approve": "pending_approval",
                                             "autonomous": "queued"}[rb.mode]  # fmt: skip
        plan = repo.PlanRow(repo.new_id("plan"), incident.id, rb.name, rb.version, d.plan_hash, rb.mode, status,
                            d.service, [s.to_wire() for s in d.steps], [s.to_wire() for s in d.rollback],
                            rb.spec.verify.window, d.error, "", now, now, None, None, None, None, None)  # fmt: skip
        with self.store.transaction() as con:
            for old in superseded:
                repo.update_plan(con, old.id, status="superseded", finished_at=now, updated_at=now)
                con.execute("DELETE FROM resolve_outbox WHERE action_id IN "
                            "(SELECT id FROM resolve_actions WHERE plan_id = ? AND status = 'queued')", [old.id])  # fmt: skip
                con.execute("UPDATE resolve_actions SET status = 'superseded' WHERE plan_id = ? "
                            "AND status IN ('queued', 'pending_approval')", [old.id])  # fmt: skip
            repo.insert_plan(con, plan)
            if d.steps and status in ("pending_approval", "queued"):
                first = d.steps[0]
                action = repo.ActionRow(repo.new_id("act"), plan.id, incident.id, rb.name, d.service, "run", 0,
                                        first.name, first.kind, status, first.to_wire(), "", 0, "", "", now, None,
                                        None)  # fmt: skip
                repo.insert_action(con, action, enqueue=status == "queued")
            AuditLog(con).append("plan", incident.id, {"plan": plan.id, "runbook": rb.name, "version": rb.version,
                                                       "mode": rb.mode, "status": status, **d.to_wire()})  # fmt: skip
        if self.note is not None:
            text = (f"runbook {rb.name} v{rb.version} refused: {d.error}" if d.error
                    else f"runbook {rb.name} v{rb.version} planned ({rb.mode}): "
                         + ", ".join(s.name for s in d.steps))  # fmt: skip
            with contextlib.suppress(Exception):  # the incident may have moved on; the plan stands
                self.note(incident.id, "opsloop/resolve", text)
        return plan
