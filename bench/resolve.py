"""Closed-loop Resolve bench: simulated faults, the bench's runbooks in autonomous mode, the real
executor, and a live estate whose faults end only when the right action reaches its actuator.

``opsloop bench resolve [--seeds 1-3] [--db PATH] [--json]`` (or ``python -m bench.resolve``),
per seed:

1. simulate the estate (``ingest.simulator``) and build its :class:`ingest.actuator.LiveEstate`
   from ``truth.json``, served on 127.0.0.1:18787 (the host and port the catalog names);
2. load ``bench/runbooks/estate.yaml`` into the store through :class:`resolve.catalog.Catalog`
   (the path ``opsloop runbooks load`` takes);
3. replay the scenario with ``execute=True`` (``api.replay``: ingest, detect, incidents,
   Diagnose, planner, executor, verifier, the server's own assembly), one sample at a time so
   the estate's clock follows event time;
4. score from the estate (which faults an action ended, which actions were wrong) and the
   store (actions outside the allowlist, incidents closed without a verified restoration,
   plans that failed verification and rolled back).

``mttr_s.auto`` is the mean, over remediable faults, of effective end - start (a fault no
action ended runs to its planned end); ``mttr_s.manual`` is the same faults restored by a
scripted operator ``OPERATOR_RESPONSE_S`` after opsloop paged for them (the first incident
touching the fault's services opened while it was on), or at the planned end if sooner or if
nothing paged. Both use the same detection, so the difference is what automation adds. Nothing here is tuned on the scored seeds: the catalog maps each class of
cause to its standard remedy and names no fault, service or seed.

Not closed yet (see the report of the change that added this): the simulator writes its files
before the replay starts, so the signals after an action still show the fault until its planned
end; the verifier then sees restoration only when the fault ends on its own. The estate's
effective fault ends are exact; feeding them back into the data needs the simulator to cut a
fault short (``simulate(..., fault_ends={id: ts})``) and a replay that regenerates the rest.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from statistics import fmean
from typing import Any
from urllib.parse import urlsplit

from api.replay import replay
from core.settings import Settings
from core.store import Store
from ingest.actuator import ActuatorServer, FaultState, LiveEstate, faults_from_truth
from ingest.simulator import simulate
from resolve.catalog import Catalog

__all__ = [
    "ACTUATOR_PORT",
    "CATALOG",
    "OPERATOR_RESPONSE_S",
    "manual_restore",
    "paged_at",
    "run_seed",
    "run_seeds",
    "score_store",
]

CATALOG = Path(__file__).resolve().parent / "runbooks" / "estate.yaml"
#: The actuator's port: the catalog's http steps name 127.0.0.1:18787 literally.
ACTUATOR_PORT = 18787
ALLOWED_HOSTS = frozenset({"127.0.0.1"})
#: The scripted operator: restores a fault this long after it became visible (paged, looked, fixed).
OPERATOR_RESPONSE_S = 1800.0
#: Seconds from the right action to the fault's end (the remedy taking effect).
RECOVERY_S = 60.0


def paged_at(fault: FaultState, incidents: list[tuple[datetime, tuple[str, ...]]]) -> datetime | None:
    """When opsloop paged for a fault: the first incident touching its services that opened
    while it was on (None: never paged, the fault runs its course).

    >>> t = datetime(2026, 1, 1)
    >>> f = FaultState("f1", "memory_leak", "cart", t, t + timedelta(hours=1), affected=("cart", "web"))
    >>> paged_at(f, [(t - timedelta(hours=2), ("web",)), (t + timedelta(minutes=9), ("web",))]) - t
    datetime.timedelta(seconds=540)
    """
    touched = {fault.root, *fault.affected}
    opened = [at for at, services in incidents if fault.start <= at < fault.end and touched & set(services)]
    return min(opened, default=None)


def manual_restore(
    fault: FaultState, paged: datetime | None, response_s: float = OPERATOR_RESPONSE_S
) -> datetime:
    """When the scripted operator restores a fault: paged + response, or its planned end if sooner.

    >>> t = datetime(2026, 1, 1)
    >>> f = FaultState("f1", "memory_leak", "cart", t, t + timedelta(hours=2))
    >>> manual_restore(f, t + timedelta(minutes=4), 1800) - t, manual_restore(f, None) - t
    (datetime.timedelta(seconds=2040), datetime.timedelta(seconds=7200))
    """
    if paged is None:
        return fault.end
    return min(fault.end, paged + timedelta(seconds=response_s))


def score_store(store: Store) -> dict[str, int]:
    """What the store says the executor did: actions outside the allowlist, unverified closes,
    plans whose verification failed (their rollback ran)."""
    rendered = store.query(
        "SELECT kind, rendered FROM resolve_actions WHERE status IN ('succeeded', 'failed', 'running')"
    )
    outside = 0
    for kind, text in rendered:
        request = json.loads(text) if isinstance(text, str) else (text or {})
        wire = request.get("request", {}) if isinstance(request, dict) else {}
        url = str(wire.get("url", "")) if isinstance(wire, dict) else ""
        if kind == "http" and urlsplit(url).hostname not in ALLOWED_HOSTS:
            outside += 1
        elif kind != "http":
            outside += 1  # the bench catalog has only http steps to the actuator
    # closed without a verified restoration: a 'restored' verdict that was not, or a plan whose
    # incident someone (an operator, the quiet timer) resolved while its signals still burned
    verdicts = store.query(
        "SELECT status, verdict FROM resolve_plans WHERE status IN ('restored', 'resolved_elsewhere')"
    )
    unverified = 0
    for _, verdict in verdicts:
        found = json.loads(verdict) if isinstance(verdict, str) else (verdict or {})
        unverified += 0 if found.get("restored") else 1
    # a plan whose verification failed rolls back (or has nothing to roll back): count each plan once
    rollbacks = store.query(
        "SELECT count(*) FROM resolve_plans p WHERE p.status IN ('verification_failed', 'rolling_back', 'rolled_back')"
        " OR EXISTS (SELECT 1 FROM resolve_actions a WHERE a.plan_id = p.id AND a.phase = 'rollback')"
    )[0][0]
    return {"outside_allowlist": outside, "closed_unverified": unverified, "rollbacks": int(rollbacks)}


def run_seed(seed: int, workdir: Path, *, days: float = 2.0, faults: int = 6, services: int = 12,
             db: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Simulate, serve the live estate, replay with execution, score one seed."""
    scenario = workdir / f"seed-{seed}"
    simulate(scenario, seed=seed, days=days, faults=faults, services=services, force=True)
    truth = json.loads((scenario / "truth.json").read_text())
    path = db or str(workdir / f"seed-{seed}.duckdb")
    settings = Settings(db=path)
    with Store(path) as store:
        Catalog(store).load_text(CATALOG.read_text(), str(CATALOG), by="bench")
    now = {"at": datetime.fromisoformat(truth["start"].replace("Z", ""))}
    estate = LiveEstate(faults_from_truth(truth), clock=lambda: now["at"], recovery_s=RECOVERY_S)

    def follow(_: int, at: datetime) -> None:
        now["at"] = at

    interval = float(truth.get("interval_s", 60))
    with ActuatorServer(estate, port=ACTUATOR_PORT):
        replay(scenario, path, settings=settings, execute=True, chunk_s=interval, progress=follow)
    counts = estate.summary()
    remediable = [f for f in estate.faults if f.remediable]
    with Store(path, read_only=True) as store:
        stored = score_store(store)
        incidents = [
            (at, tuple(services or ()))
            for at, services in store.query("SELECT opened_at, services FROM incidents")
        ]
    return {
        "seed": seed,
        "faults": counts["faults"],
        "remediable": counts["remediable"],
        "auto_restored": counts["restored"],
        "actions": counts["actions"],
        "wrong_actions": counts["wrong_actions"],
        **stored,
        "ttr_auto": [(f.effective_end - f.start).total_seconds() for f in remediable],
        "ttr_manual": [
            (manual_restore(f, paged_at(f, incidents)) - f.start).total_seconds() for f in remediable
        ],
    }


def run_seeds(seeds: list[int], workdir: Path, *, db: str | None = None, **kw: Any) -> dict[str, Any]:
    """Every seed, summed; MTTRs over all remediable faults."""
    per_seed = [run_seed(s, workdir, db=db if len(seeds) == 1 else None, **kw) for s in seeds]
    keys = ("faults", "remediable", "auto_restored", "actions", "wrong_actions", "outside_allowlist",
            "closed_unverified", "rollbacks")  # fmt: skip
    out: dict[str, Any] = {k: sum(int(r[k]) for r in per_seed) for k in keys}
    auto = [x for r in per_seed for x in r["ttr_auto"]]
    manual = [x for r in per_seed for x in r["ttr_manual"]]
    out["mttr_s"] = {"auto": round(fmean(auto), 1) if auto else None,
                     "manual": round(fmean(manual), 1) if manual else None}  # fmt: skip
    out["seeds"] = [{k: r[k] for k in ("seed", *keys)} for r in per_seed]
    return out


def parse_seeds(text: str) -> list[int]:
    """``3`` or ``1-5``.

    >>> parse_seeds("2-4"), parse_seeds("7")
    ([2, 3, 4], [7])
    """
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.resolve``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", default="101-103")
    parser.add_argument("--db", default=None, help="keep the database (one seed only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_seeds(parse_seeds(args.seeds), Path(tmp), db=args.db)
    print(json.dumps(result if args.json else {k: v for k, v in result.items() if k != "seeds"}, indent=2))


if __name__ == "__main__":
    main()
