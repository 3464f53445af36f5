"""Where Resolve meets the SLO stage: problems and post-mortem action items filed as backlog
items, and the SLO budget an incident consumed.

``resolve`` may not import ``slo``, so the assembly (``api/loop.py``) injects these: a
:class:`BacklogFiler` as the problem manager's ``filer`` and :func:`slo_impact_source` as the
post-mortem's ``impact``. A problem is one backlog item (cause ``problem:<id>``, no SLO) that
is written again only on a material change (status, member incidents, title, workaround) and
delivered through the same tracker connectors as the error-budget policy's items
(``slo.trackers``), so a tracker holds one issue per problem, updated as it recurs and closed
when it is resolved. Priority is the policy's WSJF with no burn (time criticality 1), the
risk reduction of its recurrences and the job size of its leading cause's kind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from core.model import BacklogItem, BudgetState, Incident
from core.settings import Settings
from core.store import Store
from resolve.postmortem import ImpactSource, PostMortemReport, SloImpact, build_postmortem
from resolve.problems import Problem, ProblemState
from slo import backlog_repository as backlog
from slo.backlog_repository import StoredItem
from slo.policy import PolicyConfig, capacity_share_of, item_id_of, time_criticality_of, wsjf_parts
from slo.repository import latest_statuses
from slo.trackers import Tracker, deliver_pending, trackers_from_settings

__all__ = ["BacklogFiler", "postmortem_for", "slo_impact_source"]

log = logging.getLogger(__name__)

#: Job size (as a policy cause kind) of each post-mortem action-item kind.
_ACTION_CAUSE = {"fix": "code", "prevention": "change", "detection": "service", "response": "service",
                 "automation": "service", "problem": "code", "observability": "service"}  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class BacklogFiler:
    """File problems and post-mortem action items as backlog items, then deliver them."""

    def __init__(self, store: Store, settings: Settings, trackers: Sequence[Tracker] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.config = PolicyConfig.from_settings(settings)
        self.trackers = list(trackers) if trackers is not None else trackers_from_settings(settings)

    def __call__(self, problem: Problem) -> BacklogItem | None:
        """The problem's item as now stored (None when it never had one and is already resolved)."""
        return self.file_problem(problem)

    def _profile(self, services: Sequence[str]) -> Any:
        profiles = [p for s in services if (p := backlog.service_profile(self.store, s)) is not None]
        return min(profiles, key=lambda p: (p.tier, not p.consumer_facing), default=None)

    def _upsert(self, item: BacklogItem, material: tuple[Any, ...]) -> BacklogItem:
        old = backlog.item_by_id(self.store, item.id)
        if old is not None and _material(old.item) == material:
            return old.item
        if old is None and item.status == "closed":
            return item
        created = old.item.created_at if old is not None else item.updated_at
        item = BacklogItem(
            id=item.id, slo=item.slo, cause=item.cause, title=item.title, priority_score=item.priority_score,
            status=item.status, evidence={**item.evidence, "material": list(material)}, service=item.service,
            capacity_share=item.capacity_share, created_at=created, updated_at=item.updated_at,
            closed_at=item.updated_at if item.status == "closed" else None,
        )  # fmt: skip
        backlog.save_items(self.store, [StoredItem(item, (old.revision + 1) if old is not None else 1)])
        if self.trackers:
            deliver_pending(self.store, self.trackers, attempts=2, backoff_s=0.2)
        return item

    def file_problem(self, problem: Problem) -> BacklogItem | None:
        """Create or update the one backlog item of ``problem`` (closed once it is resolved)."""
        cause = f"problem:{problem.id}"
        status = "closed" if problem.state is ProblemState.RESOLVED else "open"
        leading = problem.leading_cause or f"service:{problem.services[0] if problem.services else ''}"
        wsjf = wsjf_parts(
            self._profile(problem.services), time_criticality_of(0.0, None, False), 1.0,
            len(problem.incident_ids), self.config.recurrence_min, leading,
        )  # fmt: skip
        base = self.settings.public_url.rstrip("/")
        item = BacklogItem(
            id=item_id_of("", cause), slo="", cause=cause, title=f"Problem {problem.id}: {problem.title}",
            priority_score=wsjf["score"] if status == "open" else 0.0, status=status,
            evidence={
                "state": f"problem {problem.state.value}", "reasons": ["recurring"], "wsjf": wsjf,
                "problem": {"id": problem.id, "state": problem.state.value, "leading_cause": problem.leading_cause,
                            "workaround": problem.workaround, "known_error": problem.known_error_id},
                "incidents": [{"id": i, "url": f"{base}/api/v1/incidents/{i}"} for i in problem.incident_ids],
                "links": {"item": f"{base}/api/v1/backlog/{item_id_of('', cause)}",
                          "problem": f"{base}/api/v1/problems/{problem.id}"},
            },
            service=problem.services[0] if problem.services else "",
            capacity_share=capacity_share_of(status, BudgetState.HEALTHY, ["recurring"], self.config),
            updated_at=_now(),
        )  # fmt: skip
        material = (status, tuple(problem.incident_ids), item.title, problem.workaround, problem.state.value)
        return self._upsert(item, material)

    def file_action_items(self, report: PostMortemReport) -> list[BacklogItem]:
        """One backlog item per action item of a post-mortem (re-filing changes nothing)."""
        out = []
        base = self.settings.public_url.rstrip("/")
        incident = report.incident
        for action in report.action_items:
            cause = f"postmortem:{incident.id}:{action.kind}:{action.service}"
            kind_cause = f"{_ACTION_CAUSE.get(action.kind, 'service')}:{action.service}"
            wsjf = wsjf_parts(
                self._profile([action.service] if action.service else incident.services),
                time_criticality_of(0.0, None, False), 1.0, len(report.problem_incidents) or 1,
                self.config.recurrence_min, kind_cause,
            )  # fmt: skip
            item = BacklogItem(
                id=item_id_of("", cause), slo="", cause=cause, title=action.title, priority_score=wsjf["score"],
                status="open",
                evidence={"state": "post-mortem action", "reasons": ["postmortem"], "why": action.why,
                          "wsjf": wsjf, "incidents": [{"id": incident.id, "priority": incident.priority,
                                                       "title": incident.title,
                                                       "url": f"{base}/api/v1/incidents/{incident.id}"}],
                          "links": {"item": f"{base}/api/v1/backlog/{item_id_of('', cause)}",
                                    "postmortem": f"{base}/api/v1/incidents/{incident.id}/postmortem"}},
                service=action.service, capacity_share=0.0, updated_at=_now(),
            )  # fmt: skip
            out.append(self._upsert(item, ("open", action.title, action.why)))
        return out


def _material(item: BacklogItem) -> tuple[Any, ...]:
    return tuple(tuple(x) if isinstance(x, list) else x for x in item.evidence.get("material", ()))


def slo_impact_source(store: Store) -> ImpactSource:
    """The post-mortem's ``impact``: per SLO of an affected service, the rise of budget consumed
    and of bad events between the last snapshots at or before the incident's impact start and
    its end (the rolling window's movement over the incident). Without a snapshot before the
    impact start the cost is not known (None), rather than the whole window's."""

    def impact(incident: Incident, start: datetime, end: datetime) -> list[SloImpact]:
        after = latest_statuses(store, at=end)
        before = latest_statuses(store, at=start)
        out = []
        for name, last in sorted(after.items()):
            if last.service not in incident.services or last.at < start:
                continue
            first = before.get(name)
            profile = backlog.service_profile(store, last.service)
            out.append(SloImpact(
                slo=name, service=last.service,
                budget_consumed=max(0.0, last.budget_consumed - first.budget_consumed) if first else None,
                bad_events=max(0.0, last.bad_events - first.bad_events) if first else None,
                consumer_facing=bool(profile and profile.consumer_facing),
            ))  # fmt: skip
        return out

    return impact


def postmortem_for(store: Store, settings: Settings, incident_id: str) -> PostMortemReport:
    """The post-mortem of an incident with its SLO impact and the configured escalation times
    (what the API and ``opsloop postmortem`` both answer)."""
    return build_postmortem(
        store,
        incident_id,
        impact=slo_impact_source(store),
        escalate_after_s=settings.escalate_after_s,
        now=_now(),
    )
