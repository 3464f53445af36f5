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

Families (``run_family_bench``, ``opsloop bench incidents --families tune|report|all``): the
same scoring over randomised simulator families (``ingest.simulator.draw_family``: naming,
topology or none, traffic, noise, fault magnitude, history, surges, counter resets, jitter,
estate size, interval, external outages). The *tune* split (family indices
:data:`FAMILY_SPLITS` ``["tune"]``) is where configuration may be fixed; the *report* split is
only measured; ``all`` prints both and the gap (report minus tune). Each family member is
capped at :data:`FAMILY_MAX_POINTS` series x samples so the bench stays affordable.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.store import Store
from detect.incidents.scoring import EXPECTED_KIND, Score, pairwise, score_scenario

__all__ = [
    "EXPECTED_KIND",
    "FAMILY_MAX_POINTS",
    "FAMILY_SPLITS",
    "Score",
    "family_gap",
    "pairwise",
    "run_family_bench",
    "run_incident_bench",
    "score_scenario",
]

#: family indices per split: configuration is fixed on ``tune`` and only measured on ``report``
FAMILY_SPLITS: dict[str, tuple[int, ...]] = {"tune": tuple(range(1, 6)), "report": tuple(range(101, 106))}
FAMILY_MAX_POINTS = 400_000
#: the figures whose report-minus-tune gap is printed
GAP_FIGURES = ("fault_recall", "incident_precision", "AC@1", "AC@3")


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
        from ingest.simulator import simulate as write_scenario

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


def run_family_bench(
    split: str,
    *,
    keep: Path | None = None,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Simulate, replay and score one split of :data:`FAMILY_SPLITS`; the figures plus each member's draw."""
    from ingest.simulator import draw_family
    from ingest.simulator import simulate as write_scenario

    if split not in FAMILY_SPLITS:
        raise ValueError(f"split must be one of {', '.join(FAMILY_SPLITS)}")
    draws = {i: draw_family(i, FAMILY_MAX_POINTS) for i in FAMILY_SPLITS[split]}

    def simulate(out: Path, index: int) -> None:
        d = draws[index]
        write_scenario(
            out, seed=index, days=d.days, interval_s=d.interval_s, faults=d.faults,
            services=d.services, family=d.family, force=True,
        )  # fmt: skip

    result = run_incident_bench(tuple(draws), simulate=simulate, keep=keep, progress=progress)
    result["split"] = split
    result["families"] = [d.to_json() for d in draws.values()]
    return result


def family_gap(tune: dict[str, Any], report: dict[str, Any]) -> dict[str, float]:
    """Report minus tune for :data:`GAP_FIGURES` (negative: the figure drops on unseen families).

    >>> family_gap({"fault_recall": 1.0, "incident_precision": 0.9, "rca": {"AC@1": 0.8, "AC@3": 1.0}},
    ...            {"fault_recall": 0.75, "incident_precision": 0.9, "rca": {"AC@1": 0.5, "AC@3": 1.0}})
    {'fault_recall': -0.25, 'incident_precision': 0.0, 'AC@1': -0.3, 'AC@3': 0.0}
    """

    def figure(r: dict[str, Any], key: str) -> float:
        return float(r["rca"][key] if key.startswith("AC@") else r[key])

    return {k: round(figure(report, k) - figure(tune, k), 6) for k in GAP_FIGURES}


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
