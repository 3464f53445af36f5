"""Nezha replayed live: each day's per-pod metrics as a scenario, through the whole pipeline, no alarm time.

``bench rca`` hands the ranker the fault's time. This bench does not: every Nezha day folder
under the data directory becomes a scenario directory (docs/scenario-format.md) that
:func:`api.replay.replay` streams through ingest, detection, incidents and Diagnose with the
shipped defaults, exactly as ``opsloop replay`` would; the figures are then read from the store.

Conversion (:func:`convert_day`), per ``<day>/metric/<pod>_metric.csv``:

- one long-format series per numeric column, named the Prometheus way by :func:`metric_name`
  (``CpuUsage(m)`` -> ``container_cpu_usage_millicores``, ``PodServerLatencyP99(s)`` ->
  ``pod_server_latency_p99_seconds``, ``NodeCpuUsageRate(%)`` -> ``node_cpu_usage_percent``),
  values as they are (these columns are gauges; nothing is turned into a rate), with labels
  ``service`` (the pod name without its ReplicaSet/pod hash) and ``pod``;
- times from the first 19 characters of ``Time`` read as UTC (``TimeStamp`` is never read: one
  pod's is off by 2e8 s; TrainTicket's ``Time`` is local wall clock, which is fine because the
  fault list's ``inject_time`` is the same clock and only relative alignment matters);
- ``topology.yaml`` from ``dependency.csv`` when the day has one (edges between services that
  have pods; endpoints such as bare IP addresses or the load generator are left out), else the
  services with no edges at all (the scenario reader still requires the file);
- the fault list is NOT written into the scenario: the product never sees a fault time.

Scoring (:func:`score_faults`), per fault injected at ``t`` into root service ``r``:

- *detected* when an incident opened in ``[t, t + 5 min]`` holding an alert of ``r`` that started
  inside the fault's window ``[t - 1 min, t + 3 min + 5 min]``; the first such incident counts;
- its *rank*: the 1-based position of ``r`` among that incident's stored hypotheses (Diagnose ran
  during the replay; the hypotheses as the replay left them); AC@k = faults ranked within the top
  k / all faults (an undetected fault is a miss);
- *precision*: incidents whose ``opened_at`` falls inside some fault's window / all incidents;
- ``mttd_s``: mean ``opened_at - t`` over detected faults.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import yaml

if TYPE_CHECKING:
    from api.replay import ReplayResult

from bench.rca_nezha import day_folders, fault_entries, fault_kind, pod_service, system_of, wall_time

__all__ = [
    "DETECT_WITHIN",
    "LiveFault",
    "NezhaScenario",
    "SystemScore",
    "convert_day",
    "metric_name",
    "read_faults",
    "run_nezha_live",
    "score_faults",
]

#: An incident must open this soon after the injection to detect the fault.
DETECT_WITHIN = timedelta(minutes=5)
#: How long each Nezha fault lasts (README: 3 minutes).
FAULT_LENGTH = timedelta(minutes=3)
#: Slack before the injection in a fault's window (samples are a minute apart).
BEFORE = timedelta(minutes=1)

#: Nezha's unit suffixes -> Prometheus-style unit words.
_UNITS = {"m": "millicores", "%": "percent", "Mi": "mebibytes", "s": "seconds", "Ops": "ops"}
_COLUMN = re.compile(r"^(?P<stem>[A-Za-z0-9]+)(?:\((?P<unit>[^)]*)\))?$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
#: Columns that are not metrics.
_NOT_METRICS = frozenset({"Time", "TimeStamp", "PodName"})


def metric_name(column: str) -> str:
    """The Prometheus-style series name of a Nezha per-pod column.

    ``Pod*`` and ``Node*`` columns keep their prefix; the rest are the container's. A ``Rate``
    just before a ``%`` unit is dropped (``percent`` says it), except in ``SuccessRate``.

    >>> metric_name("CpuUsage(m)"), metric_name("PodServerLatencyP99(s)")
    ('container_cpu_usage_millicores', 'pod_server_latency_p99_seconds')
    >>> metric_name("PodSuccessRate(%)"), metric_name("NodeCpuUsageRate(%)"), metric_name("SyscallRead")
    ('pod_success_rate_percent', 'node_cpu_usage_percent', 'container_syscall_read')
    """
    match = _COLUMN.match(column.strip())
    if match is None:
        raise ValueError(f"not a Nezha metric column: {column!r}")
    words = [w.lower() for w in _CAMEL.split(match["stem"]) if w]
    unit = match["unit"]
    if unit == "%" and len(words) > 1 and words[-1] == "rate" and words[-2] != "success":
        words.pop()
    if words[0] not in ("pod", "node"):
        words.insert(0, "container")
    if unit:
        words.append(_UNITS.get(unit, re.sub(r"[^a-z0-9]+", "_", unit.lower()).strip("_")))
    return "_".join(words)


@dataclass(frozen=True, slots=True)
class LiveFault:
    """One injected fault, kept by the harness (never written into the scenario)."""

    inject: datetime  # naive, the same wall clock as the metric Time strings
    service: str
    pod: str
    inject_type: str

    @property
    def kind(self) -> str:
        """``code`` (return/exception) or ``resource``."""
        return fault_kind(self.inject_type)


@dataclass(frozen=True, slots=True)
class NezhaScenario:
    """One converted day: where its scenario is, what it holds, and the faults to score it on."""

    day: str
    system: str
    root: Path
    services: tuple[str, ...]
    edges: int | None  # None: the day has no dependency file
    series: int
    points: int
    step_s: float
    faults: tuple[LiveFault, ...]


def read_faults(folder: Path) -> list[LiveFault]:
    """The day's faults from ``*fault_list.json``, by ``inject_time`` (``inject_timestamp`` is not read)."""
    faults = [
        LiveFault(
            wall_time(e["inject_time"]), pod_service(e["inject_pod"]), e["inject_pod"], e["inject_type"]
        )
        for e in fault_entries(folder)
    ]
    return sorted(faults, key=lambda f: f.inject)


def _pod_frame(path: Path) -> pl.DataFrame:
    """One pod's CSV as long rows ``ts, name, labels, value`` (sorted by time, nulls dropped)."""
    pod = path.name.removesuffix("_metric.csv")
    raw = pl.read_csv(path, infer_schema_length=0)  # all text: we parse what we use
    columns = [c for c in raw.columns if c not in _NOT_METRICS]
    labels = json.dumps({"pod": pod, "service": pod_service(pod)}, sort_keys=True)
    wide = raw.select(
        pl.col("Time").str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us").alias("ts"),
        *(pl.col(c).cast(pl.Float64, strict=False).alias(metric_name(c)) for c in columns),
    )
    wide = wide.drop_nulls("ts").unique("ts", keep="first").sort("ts")
    long = wide.unpivot(index="ts", variable_name="name", value_name="value")
    return (
        long.drop_nulls("value")
        .filter(pl.col("value").is_finite())
        .with_columns(pl.lit(labels).alias("labels"))
        .select("ts", "name", "labels", "value")
        .sort("ts", "name")
    )


def _topology(services: Sequence[str], dependency: Path | None) -> tuple[dict[str, Any], int | None]:
    """The topology document: services, and the calls between them when a dependency file exists."""
    calls: dict[str, set[str]] = {s: set() for s in services}
    edges: int | None = None
    if dependency is not None:
        graph = pl.read_csv(dependency, infer_schema_length=0)
        edges = 0
        for source, target in zip(graph["Source"].to_list(), graph["Target"].to_list(), strict=True):
            if source in calls and target in calls and source != target and target not in calls[source]:
                calls[source].add(target)
                edges += 1
    doc = {"services": [{"name": s, "depends_on": sorted(calls[s])} for s in services]}
    return doc, edges


def convert_day(folder: Path, out: Path) -> NezhaScenario:
    """Write the scenario of one Nezha day folder to ``out`` (see the module docstring)."""
    pods = sorted((folder / "metric").glob("*_metric.csv"))
    if not pods:
        raise FileNotFoundError(f"{folder / 'metric'} holds no *_metric.csv files")
    if out.exists():
        shutil.rmtree(out)
    (out / "metrics").mkdir(parents=True)
    names = [p.name.removesuffix("_metric.csv") for p in pods]
    services = tuple(sorted({pod_service(n) for n in names}))
    series = points = 0
    gaps: list[pl.Series] = []
    for path, pod in zip(pods, names, strict=True):
        frame = _pod_frame(path)
        frame.write_parquet(out / "metrics" / f"{pod}.parquet")
        series += frame["name"].n_unique()
        points += frame.height
        gaps.append(frame["ts"].unique().sort().diff().dt.total_seconds().drop_nulls())
    spacing = pl.concat(gaps)
    step_s = float(spacing.median() or 60.0) if spacing.len() else 60.0  # type: ignore[arg-type]
    dependency = folder / "metric" / "dependency.csv"
    doc, edges = _topology(services, dependency if dependency.is_file() else None)
    (out / "topology.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return NezhaScenario(
        day=folder.name,
        system=system_of(names),
        root=out,
        services=services,
        edges=edges,
        series=series,
        points=points,
        step_s=max(round(step_s), 1),
        faults=tuple(read_faults(folder)),
    )


@dataclass(slots=True)
class SystemScore:
    """Per-fault outcomes of one system (any number of days), and its incidents."""

    records: list[tuple[LiveFault, float | None, int]] = field(default_factory=list)  # (fault, ttd_s, rank)
    incidents: int = 0
    true_incidents: int = 0

    def extend(self, other: SystemScore) -> None:
        """Pool another day's outcomes into this one."""
        self.records += other.records
        self.incidents += other.incidents
        self.true_incidents += other.true_incidents

    def figures(self, records: Iterable[tuple[LiveFault, float | None, int]] | None = None) -> dict[str, Any]:
        """``n, recall, AC@1, AC@3, mttd_s`` over ``records`` (default: all of them)."""
        rows = list(self.records if records is None else records)
        n = len(rows)
        ttd = [t for _, t, _ in rows if t is not None]

        def ac(k: int) -> float:
            return sum(1 for _, _, r in rows if 0 < r <= k) / n if n else 0.0

        return {
            "n": n,
            "recall": len(ttd) / n if n else 0.0,
            "AC@1": ac(1),
            "AC@3": ac(3),
            "mttd_s": sum(ttd) / len(ttd) if ttd else None,
        }

    def as_dict(self) -> dict[str, Any]:
        """The JSON contract: recall, precision, AC@1, AC@3, n, mttd_s; plus splits and incident counts."""
        out = self.figures()
        out["precision"] = self.true_incidents / self.incidents if self.incidents else 0.0
        out["incidents"] = self.incidents
        out["median_ttd_s"] = _median([t for _, t, _ in self.records if t is not None])
        out["by_kind"] = {
            k: self.figures(r for r in self.records if r[0].kind == k)
            for k in sorted({f.kind for f, _, _ in self.records})
        }
        out["by_type"] = {
            k: self.figures(r for r in self.records if r[0].inject_type == k)
            for k in sorted({f.inject_type for f, _, _ in self.records})
        }
        return out


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def score_faults(
    faults: Sequence[LiveFault],
    incidents: Sequence[tuple[str, datetime, str]],
    alerts: Sequence[tuple[str, str, datetime, str]],
) -> SystemScore:
    """Score one replay: ``incidents`` as ``(id, opened_at, hypotheses JSON)``, ``alerts`` as
    ``(id, service, starts_at, incident id or '')`` (what :mod:`detect.incidents.repository` returns).

    >>> f = LiveFault(datetime(2022, 8, 22, 4, 0), "cart", "cart-1-a", "cpu_contention")
    >>> hyps = json.dumps([{"service": "frontend"}, {"service": "cart"}])
    >>> s = score_faults([f], [("i1", datetime(2022, 8, 22, 4, 2), hyps)],
    ...                  [("a1", "cart", datetime(2022, 8, 22, 4, 1), "i1")])
    >>> s.figures()["recall"], s.figures()["AC@3"], s.figures()["AC@1"], s.true_incidents
    (1.0, 1.0, 0.0, 1)
    """
    by_incident: dict[str, list[tuple[str, datetime]]] = {}
    for _, service, start, incident in alerts:
        if incident:
            by_incident.setdefault(incident, []).append((service, start))
    ordered = sorted(incidents, key=lambda i: (i[1], i[0]))
    score = SystemScore(incidents=len(ordered))
    windows = [(f.inject - BEFORE, f.inject + FAULT_LENGTH + DETECT_WITHIN) for f in faults]
    score.true_incidents = sum(1 for _, opened, _ in ordered if any(a <= opened <= b for a, b in windows))
    for fault, (low, high) in zip(faults, windows, strict=True):
        ttd: float | None = None
        rank = 0
        for incident, opened, hypotheses in ordered:
            if not fault.inject <= opened <= fault.inject + DETECT_WITHIN:
                continue
            members = by_incident.get(incident, [])
            if not any(s == fault.service and low <= t <= high for s, t in members):
                continue
            ttd = (opened - fault.inject).total_seconds()
            ranked = [h.get("service") for h in json.loads(hypotheses or "[]")]
            rank = ranked.index(fault.service) + 1 if fault.service in ranked else 0
            break
        score.records.append((fault, ttd, rank))
    return score


def _replay_day(
    scenario: NezhaScenario, db: Path, progress: Callable[[NezhaScenario, float], None] | None
) -> ReplayResult:
    """Replay one converted day into ``db`` with the shipped defaults, reporting the share done."""
    from api.replay import replay
    from ingest.scenario import open_scenario

    first, last = open_scenario(scenario.root).time_range()
    span = max((last - first).total_seconds(), 1.0)

    def report(_: int, at: datetime) -> None:
        if progress is not None:
            progress(scenario, min((at - first).total_seconds() / span, 1.0))

    result = replay(scenario.root, str(db), step_s=scenario.step_s, progress=report)
    if progress is not None:
        progress(scenario, 1.0)
    return result


def run_nezha_live(
    data: Path,
    *,
    keep: Path | None = None,
    on_day: Callable[[NezhaScenario], None] | None = None,
    progress: Callable[[NezhaScenario, float], None] | None = None,
) -> dict[str, Any]:
    """Convert, replay (shipped defaults) and score every Nezha day under ``data``.

    ``on_day`` hears of each converted day, ``progress`` of the replay's share done (0..1).
    With ``keep`` the scenarios and databases stay there (``<day>/`` and ``<day>.duckdb``).
    """
    from core.store import Store
    from detect.incidents import repository as repo

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="opsloop-nezha-live-")) if keep is None else keep
    work.mkdir(parents=True, exist_ok=True)
    systems: dict[str, SystemScore] = {}
    days: list[dict[str, Any]] = []
    try:
        for folder in day_folders(data):
            scenario = convert_day(folder, work / folder.name)
            if on_day is not None:
                on_day(scenario)
            db = work / f"{folder.name}.duckdb"
            for stale in (db, db.with_name(db.name + ".wal")):
                stale.unlink(missing_ok=True)
            result = _replay_day(scenario, db, progress)
            with Store(str(db), read_only=True) as store:
                score = score_faults(
                    scenario.faults, repo.incident_openings(store), repo.alert_memberships(store)
                )
            systems.setdefault(scenario.system, SystemScore()).extend(score)
            days.append({
                "day": scenario.day, "system": scenario.system, "series": scenario.series,
                "points": scenario.points, "edges": scenario.edges, "faults": len(scenario.faults),
                "incidents": score.incidents, "replay_s": round(result.seconds, 3),
                **{k: score.figures()[k] for k in ("recall", "AC@1", "AC@3")},
            })  # fmt: skip
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    out: dict[str, Any] = {name: systems[name].as_dict() for name in sorted(systems)}
    out["days"] = days
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out
