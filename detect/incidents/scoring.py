"""Scoring a replayed scenario against its truth: the simulator's faults as ground truth.

The demo and ``opsloop bench incidents`` score the same way (nothing tuned per seed):

- an alert *belongs to* a fault when its service is among the fault's affected services and
  it started between ``start - tolerance`` and ``end + tolerance``;
- an incident *matches* a fault when one of its alerts belongs to it;
- fault recall, incident precision, pairwise F1 of alert grouping, time to detect, and the
  rank of the fault's root cause among the first matching incident's hypotheses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any

from core.store import Store
from detect.incidents import repository as repo

__all__ = ["EXPECTED_KIND", "Score", "pairwise", "score_scenario"]


#: The hypothesis kinds a simulator fault kind implies (a slow service is a dependency to its
#: callers, or an external provider when it is one).
EXPECTED_KIND: dict[str, frozenset[str]] = {
    "bad_deploy": frozenset({"change"}),
    "config_change": frozenset({"change"}),
    "cpu_saturation": frozenset({"resource"}),
    "memory_leak": frozenset({"resource"}),
    "slow_dependency": frozenset({"dependency", "external"}),
    "error_burst": frozenset({"code", "dependency", "external"}),
    "external_outage": frozenset({"external", "dependency"}),
}


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def pairwise(truth: Sequence[str], predicted: Sequence[str]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of a clustering against the truth.

    >>> pairwise(["a", "a", "b", "b"], ["x", "x", "y", "y"])
    (1.0, 1.0, 1.0)
    >>> pairwise(["a", "a", "b", "b"], ["x", "x", "x", "x"])
    (0.3333333333333333, 1.0, 0.5)
    """
    same_t = same_p = both = 0
    for (t1, p1), (t2, p2) in combinations(zip(truth, predicted, strict=True), 2):
        st, sp = t1 == t2, p1 == p2
        same_t += st
        same_p += sp
        both += st and sp
    precision = both / same_p if same_p else 1.0
    recall = both / same_t if same_t else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass(frozen=True, slots=True)
class Score:
    """One scenario's result."""

    faults: int
    detected: int
    incidents: int
    true_incidents: int
    alerts: int
    truth_labels: list[str]
    predicted_labels: list[str]
    ttd_intervals: list[float]
    kinds: dict[str, tuple[int, int]]  # kind -> (faults, detected)
    rca_ranks: list[int]  # per fault: 1-based rank of the root cause in the hypotheses, 0 = absent
    kind_hits: list[bool]  # per fault whose root cause ranks first: the kind agrees


def score_scenario(
    store: Store, truth: dict[str, Any], tolerance: timedelta = timedelta(minutes=10)
) -> Score:
    """Score the incidents in ``store`` against one scenario's truth."""
    interval = float(truth.get("interval_s", 60))
    faults = [
        {
            **f,
            "start": _ts(f["start"]),
            "end": _ts(f["end"]),
            "visible_at": _ts(f.get("visible_at") or f["start"]),
        }
        for f in truth["faults"]
    ]
    alerts = repo.alert_memberships(store)
    incidents = repo.incident_openings(store)
    opened = {i: t for i, t, _ in incidents}
    hypotheses = {i: json.loads(h or "[]") for i, _, h in incidents}

    def fault_of(service: str, start: datetime) -> str:
        for f in faults:
            if service in f["affected"] and f["start"] - tolerance <= start <= f["end"] + tolerance:
                return str(f["id"])
        return ""

    matched: dict[str, set[str]] = {}  # incident -> faults
    truth_labels, predicted = [], []
    for aid, service, start, incident in alerts:
        fid = fault_of(service or "", start)
        if incident:
            matched.setdefault(incident, set())
            if fid:
                matched[incident].add(fid)
        if fid or incident:
            truth_labels.append(fid or f"noise:{aid}")
            predicted.append(incident or f"alone:{aid}")
    ttd: list[float] = []
    kinds: dict[str, list[int]] = {}
    detected = 0
    ranks: list[int] = []
    kind_hits: list[bool] = []
    for f in faults:
        hits = [opened[i] for i, fs in matched.items() if f["id"] in fs]
        k = kinds.setdefault(str(f["kind"]), [0, 0])
        k[0] += 1
        rank = 0
        if hits:
            detected += 1
            k[1] += 1
            ttd.append(max((min(hits) - f["visible_at"]).total_seconds() / interval, 0.0))
            first = min((i for i, fs in matched.items() if f["id"] in fs), key=lambda i: (opened[i], i))
            services = [h["service"] for h in hypotheses.get(first, [])]
            rank = services.index(f["root_cause"]) + 1 if f["root_cause"] in services else 0
            if rank == 1:
                kind_hits.append(
                    hypotheses[first][0]["kind"] in EXPECTED_KIND.get(str(f["kind"]), frozenset())
                )
        ranks.append(rank)
    return Score(
        faults=len(faults),
        detected=detected,
        incidents=len(incidents),
        true_incidents=sum(1 for i, _, _ in incidents if matched.get(i)),
        alerts=len(alerts),
        truth_labels=truth_labels,
        predicted_labels=predicted,
        ttd_intervals=ttd,
        kinds={k: (v[0], v[1]) for k, v in kinds.items()},
        rca_ranks=ranks,
        kind_hits=kind_hits,
    )
