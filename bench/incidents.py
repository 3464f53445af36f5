"""Incident bench: simulate seeds, replay each, score the incidents against the simulator's truth.

Scoring (all from ``truth.json`` and the store, nothing tuned per seed):

- an alert *belongs to* a fault when its service is among the fault's affected services and
  it started between ``start - tolerance`` and ``end + tolerance``;
- an incident *matches* a fault when one of its alerts belongs to it;
- **fault recall**: faults matched by at least one incident / faults;
- **incident precision**: incidents that match some fault / incidents;
- **pairwise F1** of alert grouping: over alerts that belong to a fault or sit in an
  incident, the truth cluster is the fault (or the alert alone), the predicted cluster the
  incident (or the alert alone); precision and recall over pairs of alerts;
- **alerts per incident** (noise reduction): every alert raised / incidents opened;
- **time to detect**: first matching incident's ``opened_at`` minus the fault's
  ``visible_at``, in sample intervals (median and p90 over detected faults);
- **root cause** (Diagnose): for each detected fault, the rank of its ``root_cause`` among the
  first matching incident's stored hypotheses (as the replay left them); AC@k = share of
  faults ranked within the top k (undetected faults count as misses), Avg@5 the mean of
  AC@1..AC@5; **kind agreement**: the top hypothesis' kind is the one the fault kind implies
  (:data:`EXPECTED_KIND`), over faults whose root cause is ranked first.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from core.store import Store

__all__ = ["EXPECTED_KIND", "Score", "pairwise", "run_incident_bench", "score_scenario"]

#: The hypothesis kinds a simulator fault kind implies (a slow service is a dependency to its
#: callers, or an external provider when it is one).
EXPECTED_KIND: dict[str, frozenset[str]] = {
    "bad_deploy": frozenset({"change"}),
    "config_change": frozenset({"change"}),
    "cpu_saturation": frozenset({"resource"}),
    "memory_leak": frozenset({"resource"}),
    "slow_dependency": frozenset({"dependency", "external"}),
    "error_burst": frozenset({"code", "dependency", "external"}),
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
    alerts = store.query("SELECT id, service, starts_at, coalesce(incident_id, '') FROM alerts")
    incidents = store.query("SELECT id, opened_at FROM incidents")
    opened = {i: t for i, t in incidents}
    hypotheses = {i: json.loads(h or "[]") for i, h in store.query("SELECT id, hypotheses FROM incidents")}

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
        true_incidents=sum(1 for i, _ in incidents if matched.get(i)),
        alerts=len(alerts),
        truth_labels=truth_labels,
        predicted_labels=predicted,
        ttd_intervals=ttd,
        kinds={k: (v[0], v[1]) for k, v in kinds.items()},
        rca_ranks=ranks,
        kind_hits=kind_hits,
    )


def run_incident_bench(
    seeds: Sequence[int] = tuple(range(1, 11)),
    *,
    simulate: Callable[[Path, int], None] | None = None,
    keep: Path | None = None,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Simulate, replay and score every seed; return the figures (see the module docstring)."""
    from api.replay import replay

    if simulate is None:
        from bench.simulator import simulate as write_scenario

        def simulate(out: Path, seed: int) -> None:
            write_scenario(out, seed=seed, force=True)

    work = Path(tempfile.mkdtemp(prefix="opsloop-incidents-")) if keep is None else keep
    scores: list[Score] = []
    truth_labels: list[str] = []
    predicted: list[str] = []
    points = 0
    replay_s = 0.0
    try:
        for n, seed in enumerate(seeds):
            scenario = work / f"seed-{seed}"
            db = work / f"seed-{seed}.duckdb"
            if db.exists():
                db.unlink()
            simulate(scenario, seed)
            result = replay(scenario, str(db))
            points += result.points
            replay_s += result.seconds
            truth = json.loads((scenario / "truth.json").read_text())
            with Store(str(db), read_only=True) as store:
                s = score_scenario(store, truth)
            scores.append(s)
            # labels are per scenario: prefix them so clusters never span seeds
            truth_labels += [f"{seed}/{t}" for t in s.truth_labels]
            predicted += [f"{seed}/{p}" for p in s.predicted_labels]
            if progress is not None:
                progress(
                    n + 1,
                    {"seed": seed, "faults": s.faults, "detected": s.detected, "incidents": s.incidents},
                )
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    faults = sum(s.faults for s in scores)
    incidents = sum(s.incidents for s in scores)
    ttd = [t for s in scores for t in s.ttd_intervals]
    precision, recall, f1 = pairwise(truth_labels, predicted)
    kinds: Counter[str] = Counter()
    kinds_hit: Counter[str] = Counter()
    for s in scores:
        for k, (total, hit) in s.kinds.items():
            kinds[k] += total
            kinds_hit[k] += hit
    alerts = sum(s.alerts for s in scores)
    ranks = [r for s in scores for r in s.rca_ranks]
    kind_hits = [h for s in scores for h in s.kind_hits]
    return {
        "seeds": len(scores),
        "faults": faults,
        "fault_recall": sum(s.detected for s in scores) / faults if faults else 0.0,
        "incidents": incidents,
        "incident_precision": sum(s.true_incidents for s in scores) / incidents if incidents else 0.0,
        "pairwise_precision": precision,
        "pairwise_recall": recall,
        "pairwise_f1": f1,
        "alerts": alerts,
        "alerts_per_incident": alerts / incidents if incidents else 0.0,
        "median_ttd_intervals": float(np.median(ttd)) if ttd else None,
        "p90_ttd_intervals": float(np.percentile(ttd, 90)) if ttd else None,
        "per_kind": {k: {"faults": kinds[k], "recall": kinds_hit[k] / kinds[k]} for k in sorted(kinds)},
        "rca": rca_figures(ranks, kind_hits),
        "replay_points_per_s": points / replay_s if replay_s else 0.0,
        "seconds": replay_s,
    }


def rca_figures(ranks: Sequence[int], kind_hits: Sequence[bool]) -> dict[str, Any]:
    """AC@1/3/5 and Avg@5 from 1-based ranks (0 = not ranked), and the kind agreement.

    >>> rca_figures([1, 2, 0, 1], [True, False])["AC@1"], rca_figures([1, 2, 0, 1], [True])["AC@3"]
    (0.5, 0.75)
    """
    n = len(ranks)

    def ac(k: int) -> float:
        return sum(1 for r in ranks if 0 < r <= k) / n if n else 0.0

    return {
        "n": n,
        "AC@1": ac(1),
        "AC@3": ac(3),
        "AC@5": ac(5),
        "Avg@5": sum(ac(k) for k in range(1, 6)) / 5,
        "kind_agreement": sum(kind_hits) / len(kind_hits) if kind_hits else None,
    }


def _main() -> None:  # pragma: no cover - manual runs
    started = time.perf_counter()
    print(json.dumps(run_incident_bench(), indent=2), f"{time.perf_counter() - started:.1f}s")


if __name__ == "__main__":  # pragma: no cover
    _main()
