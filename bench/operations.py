"""Problems and operational metrics on simulated days, against the simulator's truth.

``python -m bench.operations [--seeds 1-5] [--days 4] [--faults 10] [--services 12] [--json]`` simulates each
seed, replays it through the whole pipeline (``api.replay``), groups the stored incidents into
problems with the shipped ``problem_*`` defaults (``opsloop problems regroup``'s path) and
reads ``resolve.operations``' report, then scores:

* **change failure rate**: the simulator knows which deploys were bad (``bad_deploy`` and
  ``config_change`` faults name their change); the linked rate (only deployments an incident
  links) and the naive rate most tools report (any deployment followed within
  ``deploy_window_s`` by an incident touching its service) are both compared with the true
  rate, and the linked failed set is scored for precision and recall.
* **problem grouping**: two incidents *truly recur* when the faults they match share root
  cause and kind (``grouping_*``), or, more loosely, root cause alone (``grouping_*_root``:
  the same component failing again, whatever the mechanism); pairwise precision and recall of
  "same problem" against each, over the incidents that match a fault.
* **MTTD**: the report's (impact start = first alert) next to the true one (fault start to
  opening, for incidents opened after their fault began).

Nothing is tuned here: the settings are the shipped defaults, and every seed is only measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path
from statistics import fmean
from typing import Any

from api.replay import replay
from core.settings import Settings
from core.store import Store
from ingest.simulator import simulate
from resolve.operations import DEPLOYMENT_KINDS, operations_report
from resolve.problems import ProblemConfig, ProblemManager

__all__ = ["run_seed"]

BAD_CHANGE_FAULTS = ("bad_deploy", "config_change")


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def _fault_of(faults: list[dict[str, Any]], services: tuple[str, ...], alerts: list[tuple[str, datetime]],
              tolerance: timedelta) -> dict[str, Any] | None:  # fmt: skip
    """The fault an incident matches (as ``detect.incidents.scoring`` matches them): its first alert's."""
    for service, at in sorted(alerts, key=lambda a: a[1]):
        for f in faults:
            if service in f["affected"] and _ts(f["start"]) - tolerance <= at <= _ts(f["end"]) + tolerance:
                return f
    return None


def run_seed(seed: int, days: float, faults: int, services: int, workdir: Path) -> dict[str, Any]:
    """Simulate, replay, group and score one seed."""
    scenario = workdir / f"seed-{seed}"
    simulate(scenario, seed=seed, days=days, faults=faults, services=services)
    truth = json.loads((scenario / "truth.json").read_text())
    db = str(workdir / f"seed-{seed}.duckdb")
    settings = Settings(db=db)
    replay(scenario, db, settings=settings)
    with Store(db) as store:
        ProblemManager(store, ProblemConfig.from_settings(settings)).regroup()
        start, end = _ts(truth["start"]), _ts(truth["end"])
        report = operations_report(store, since=start, until=end + timedelta(days=1))
        incidents = store.query(
            "SELECT i.id, i.opened_at, i.services, coalesce(p.problem_id, ''), "
            "  (SELECT list((a.service, a.starts_at)) FROM alerts a WHERE a.incident_id = i.id) "
            "FROM incidents i LEFT JOIN problem_incidents p ON p.incident_id = i.id ORDER BY i.opened_at"
        )
        deploys = store.query(
            "SELECT id, service, ts FROM changes WHERE kind IN (SELECT unnest(?::VARCHAR[])) AND ts >= ? AND ts < ?",
            [list(DEPLOYMENT_KINDS), start, end + timedelta(days=1)],
        )
    tolerance = timedelta(minutes=10)
    matched = []
    for iid, opened, touched, problem, alerts in incidents:
        pairs = [(str(s), t) for s, t in (alerts or []) if s]
        fault = _fault_of(truth["faults"], tuple(touched or ()), pairs, tolerance)
        matched.append((iid, opened, tuple(touched or ()), problem, fault))
    # grouping: pairs of incidents that match a fault
    same_truth = same_pred = both = same_root = both_root = 0
    diagnosed = [(m[3], m[4]) for m in matched if m[4] is not None]
    for (p1, f1), (p2, f2) in combinations(diagnosed, 2):
        assert f1 is not None and f2 is not None
        t = (f1["root_cause"], f1["kind"]) == (f2["root_cause"], f2["kind"])
        p = bool(p1) and p1 == p2
        root = f1["root_cause"] == f2["root_cause"]
        same_truth += t
        same_pred += p
        both += t and p
        same_root += root
        both_root += root and p
    bad = {f["change_id"] for f in truth["faults"] if f["kind"] in BAD_CHANGE_FAULTS and f.get("change_id")}
    ids = {str(d[0]) for d in deploys}
    window = timedelta(seconds=settings.deploy_window_s)
    naive = {
        str(cid) for cid, service, ts in deploys
        if any(ts <= opened <= ts + window and service in touched for _, opened, touched, _, _ in matched)
    }  # fmt: skip
    linked = set(report.estate.failed_deployment_ids)
    # an incident already open when the fault began absorbed it: its opening says nothing of detection
    true_ttd = [
        (opened - _ts(f["start"])).total_seconds()
        for _, opened, _, _, f in matched
        if f is not None and opened >= _ts(f["start"])
    ]
    e = report.estate
    return {
        "seed": seed,
        "incidents": len(matched),
        "faults": len(truth["faults"]),
        "deployments": len(ids),
        "bad_deployments": len(bad & ids),
        "cfr_true": len(bad & ids) / len(ids) if ids else None,
        "cfr_linked": e.change_failure_rate,
        "cfr_naive": len(naive) / len(ids) if ids else None,
        "linked_tp": len(linked & bad),
        "linked_fp": len(linked - bad),
        "naive_fp": len(naive - bad),
        "problems": len({m[3] for m in matched if m[3]}),
        "pairs_true": same_truth,
        "pairs_grouped": same_pred,
        "pairs_both": both,
        "pairs_true_root": same_root,
        "pairs_both_root": both_root,
        "mttd_s": e.mttd_s,
        "mttd_true_s": fmean(true_ttd) if true_ttd else None,
        "mtrs_s": e.mtrs_s,
        "mtbf_s": e.mtbf_s,
    }


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    """Print the per-seed rows and the totals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-5")
    parser.add_argument("--days", type=float, default=4.0)
    parser.add_argument("--faults", type=int, default=10)
    parser.add_argument(
        "--services", type=int, default=12, help="fewer services, more faults: more true recurrences"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_seed(s, args.days, args.faults, args.services, Path(tmp)) for s in _seeds(args.seeds)]
    total = {k: sum(r[k] for r in rows) for k in ("deployments", "bad_deployments", "linked_tp", "linked_fp",
                                                    "naive_fp", "pairs_true", "pairs_grouped", "pairs_both",
                                                    "pairs_true_root", "pairs_both_root")}  # fmt: skip
    naive_failed = sum(round((r["cfr_naive"] or 0) * r["deployments"]) for r in rows)
    summary = {
        "seeds": args.seeds,
        "cfr_true": total["bad_deployments"] / total["deployments"] if total["deployments"] else None,
        "cfr_linked": (total["linked_tp"] + total["linked_fp"]) / total["deployments"] if total["deployments"] else None,
        "cfr_naive": naive_failed / total["deployments"] if total["deployments"] else None,
        "linked_precision": total["linked_tp"] / (total["linked_tp"] + total["linked_fp"])
        if total["linked_tp"] + total["linked_fp"] else None,
        "linked_recall": total["linked_tp"] / total["bad_deployments"] if total["bad_deployments"] else None,
        "grouping_precision": total["pairs_both"] / total["pairs_grouped"] if total["pairs_grouped"] else None,
        "grouping_recall": total["pairs_both"] / total["pairs_true"] if total["pairs_true"] else None,
        "grouping_precision_root": total["pairs_both_root"] / total["pairs_grouped"] if total["pairs_grouped"] else None,
        "grouping_recall_root": total["pairs_both_root"] / total["pairs_true_root"] if total["pairs_true_root"] else None,
        **total,
    }  # fmt: skip
    if args.json:
        print(json.dumps({"seeds": rows, "summary": summary}, indent=2, default=str))
        return
    for r in rows:
        print(json.dumps(r, default=str))
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
