"""A recommended course of action for each hypothesis, and for the incident as a whole.

A matching runbook (an alert's ``runbook_url`` annotation, or the service's ``runbook`` topology
attribute) comes first, a matching known error's workaround next, a similar past incident's
resolution after that; otherwise the first steps an
experienced SRE takes for that kind of cause. The incident's course of action walks the
hypotheses in rank order, so the quickest likely fix is tried first and the next one is ready.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.model import Hypothesis, HypothesisKind

__all__ = ["course_of_action", "recommend"]


def _metric_phrase(evidence: Mapping[str, Any]) -> str:
    metrics = evidence.get("metrics") or []
    if not metrics:
        return ""
    m = metrics[0]
    return f" ({m['metric']} {_num(m['value'])} against a baseline of {_num(m['baseline'])})"


def _num(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v != v:  # NaN
        return "n/a"
    return f"{v:.3g}"


def recommend(kind: HypothesisKind, service: str, evidence: Mapping[str, Any]) -> str:
    """What to do first if this hypothesis is right (plain text, one or two sentences).

    >>> recommend(HypothesisKind.CHANGE, "orders", {"changes": [{"id": "c1", "kind": "config", "version": "r2"}]})
    'Roll back config r2 of orders (change c1), then confirm its error rate and latency return to baseline.'
    """
    steps: list[str] = []
    runbook = evidence.get("runbook")
    if runbook:
        steps.append(f"Follow the runbook {runbook}.")
    for ke in (evidence.get("known_errors") or [])[:1]:
        steps.append(
            f"Known error {ke['id']}{' (' + ke['title'] + ')' if ke.get('title') else ''}: {ke['workaround']}"
        )
    if kind is HypothesisKind.CHANGE:
        changes = evidence.get("changes") or []
        c = changes[0] if changes else {}
        what = f"{c.get('kind', 'change')} {c.get('version', '')}".strip()
        steps.append(
            f"Roll back {what} of {service} (change {c.get('id', '?')}), "
            "then confirm its error rate and latency return to baseline."
        )
    elif kind is HypothesisKind.RESOURCE:
        steps.append(
            f"Relieve {service}'s resource pressure{_metric_phrase(evidence)}: scale out or restart it, "
            "and look for a leak, a noisy neighbour or a load spike."
        )
    elif kind is HypothesisKind.CODE:
        logs = evidence.get("logs") or []
        where = f" (new or surging: {logs[0]['template']!r})" if logs else ""
        steps.append(
            f"Inspect {service}'s failing code path{where}; disable the feature or roll back the last release "
            "if it started the failures."
        )
    elif kind is HypothesisKind.DEPENDENCY:
        steps.append(
            f"Check {service}'s health{_metric_phrase(evidence)} and its connection pools; its callers are waiting "
            "on it: fail over, shed load or raise its capacity."
        )
    else:
        steps.append(
            f"The provider behind {service} looks degraded{_metric_phrase(evidence)}: check its status page, "
            "switch to a fallback and open a ticket with the provider."
        )
    similar = evidence.get("similar_incidents") or []
    resolved = [s for s in similar if s.get("resolution")]
    if resolved:
        s = resolved[0]
        steps.append(f"Similar incident {s['id']} was resolved with: {s['resolution']}")
    return " ".join(steps)


def course_of_action(hypotheses: Sequence[Hypothesis], limit: int = 3) -> list[str]:
    """The incident's plan: each top hypothesis' first step, most likely first.

    >>> h = Hypothesis(1, "db", HypothesisKind.RESOURCE, 0.9, {}, "cpu", "Scale out db.")
    >>> course_of_action([h])
    ['1. db (resource, 0.90): Scale out db.']
    """
    return [
        f"{i}. {h.service} ({h.kind.value}, {h.score:.2f}): {h.recommendation}"
        for i, h in enumerate(hypotheses[:limit], start=1)
    ]
