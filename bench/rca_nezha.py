"""Metric-only root-cause ranking on the Nezha data (OnlineBoutique, TrainTicket): AC@1/3/5, Avg@5.

Layout read (any number of day folders, either system)::

    <data>/<day>/<day>-fault_list.json       hour -> [{inject_time, inject_pod, inject_type, ...}]
    <data>/<day>/metric/<pod>_metric.csv     one per pod, rows 60 s apart
    <data>/<day>/metric/dependency.csv       optional call graph (Source, Target)

What the method sees, per fault: the per-pod metric series only (not ``front_service.csv``, not
the per-edge latency matrices, no logs or traces), mapped to golden-signal roles by
:data:`COLUMN_SIGNALS`, and the call graph when the day has one. The fault's ``inject_time`` is
used only as the alarm time ``alarm_ts`` handed to :func:`diagnose.rank.rank_services`, which
reads the baseline ``[alarm_ts - 60 min, alarm_ts)`` and the evidence ``[alarm_ts, alarm_ts + 3
min]`` (the fault's length: the 2 samples a 2-sample-sustain detector needs before it fires, plus
one refresh as evidence arrives), and nothing later. The baseline may hold earlier faults (they
come every 8-9 minutes); the median/IQR baseline is what copes with that. The fault's type and
pod are read only to score the answer and to split the figures (resource vs code).

Data quirks handled (see the folder's README): times come from the first 19 characters of the
metric ``Time`` column, compared with ``inject_time`` as wall clock (``TimeStamp`` and
``inject_timestamp`` are never read); the root-cause service is the pod name without its
ReplicaSet/pod hash; the system is told from the pods (all ``ts-*`` -> TrainTicket).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from core.batch import SPANS_SCHEMA, WriteBatch
from core.store import Store
from diagnose.diagnoser import DiagnoseConfig
from diagnose.rank import RankConfig, SeriesInfo, Signal, rank_services
from diagnose.traces import score_traces

__all__ = [
    "COLUMN_SIGNALS",
    "Day",
    "Fault",
    "RcaBenchResult",
    "accuracy",
    "fault_kind",
    "load_day",
    "pod_service",
    "run_rca_bench",
    "system_of",
    "wall_clock",
]

#: Nezha per-pod columns -> (golden-signal role, higher is worse). Columns not listed are not read.
COLUMN_SIGNALS: dict[str, tuple[Signal, bool]] = {
    "CpuUsage(m)": ("saturation", True),
    "CpuUsageRate(%)": ("saturation", True),
    "MemoryUsage(Mi)": ("saturation", True),
    "MemoryUsageRate(%)": ("saturation", True),
    "SyscallRead": ("saturation", True),
    "SyscallWrite": ("saturation", True),
    "NetworkReceiveBytes": ("traffic", True),
    "NetworkTransmitBytes": ("traffic", True),
    "PodClientLatencyP90(s)": ("downstream_latency", True),
    "PodClientLatencyP95(s)": ("downstream_latency", True),
    "PodClientLatencyP99(s)": ("downstream_latency", True),
    "PodServerLatencyP90(s)": ("latency", True),
    "PodServerLatencyP95(s)": ("latency", True),
    "PodServerLatencyP99(s)": ("latency", True),
    "PodWorkload(Ops)": ("traffic", True),
    "PodSuccessRate(%)": ("errors", False),
    "NodeCpuUsageRate(%)": ("host", True),
    "NodeMemoryUsageRate(%)": ("host", True),
    "NodeNetworkReceiveBytes": ("host", True),
}
#: Fault types whose cause is code (the rest are resource faults).
CODE_FAULTS = frozenset({"return", "exception"})
#: Published service-level top-k accuracy on this data (Nezha paper, Table 3): AC@1, AC@3, AC@5.
PUBLISHED: dict[str, dict[str, tuple[float, float, float]]] = {
    "MicroRCA (metrics)": {
        "OnlineBoutique": (0.1607, 0.6250, 0.9275),
        "TrainTicket": (0.2000, 0.3111, 0.4444),
    },
    "Nezha (all data)": {
        "OnlineBoutique": (0.9286, 0.9643, 0.9643),
        "TrainTicket": (0.8667, 0.9778, 0.9778),
    },
}
SPLITS = ("all", "resource", "code")
KS = (1, 2, 3, 4, 5)

_POD_HASH = re.compile(r"-[0-9a-z]{5,10}-[0-9a-z]{5}$")
_STATEFUL = re.compile(r"-\d+$")


def pod_service(pod: str) -> str:
    """The service a pod belongs to: its name without the ReplicaSet/pod hash.

    >>> pod_service("ts-food-service-f5756978c-k8vqf"), pod_service("frontend-579b9bff58-t2dbm")
    ('ts-food-service', 'frontend')
    """
    stripped = _POD_HASH.sub("", pod)
    return stripped if stripped != pod else _STATEFUL.sub("", pod)


def system_of(pods: Sequence[str]) -> str:
    """TrainTicket when every pod is ``ts-*``, OnlineBoutique otherwise.

    >>> system_of(["ts-order-service-1"]), system_of(["frontend-1", "ts-x"])
    ('TrainTicket', 'OnlineBoutique')
    """
    return "TrainTicket" if pods and all(p.startswith("ts-") for p in pods) else "OnlineBoutique"


def fault_entries(folder: Path) -> list[dict[str, str]]:
    """Every ``{inject_time, inject_pod, inject_type, ...}`` entry of a day's ``*fault_list.json`` files."""
    return [
        e
        for path in sorted(folder.glob("*fault_list.json"))
        for entries in json.loads(path.read_text()).values()
        for e in entries
    ]


def wall_time(text: str) -> datetime:
    """The naive wall-clock time of the first 19 characters of a Nezha time string."""
    return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S")


def wall_clock(text: str) -> float:
    """Seconds for the first 19 characters of a Nezha time (``YYYY-MM-DD HH:MM:SS``), read as UTC.

    >>> wall_clock("2022-08-22 03:51:19.640328427 +0000 UTC m=+0.14") - wall_clock("2022-08-22 03:50:19")
    60.0
    """
    return wall_time(text).replace(tzinfo=UTC).timestamp()


def fault_kind(inject_type: str) -> str:
    """``code`` for return/exception faults, ``resource`` for every other kind."""
    return "code" if inject_type in CODE_FAULTS else "resource"


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: the alarm time the method gets, and the answer it is scored against."""

    alarm_ts: float
    service: str
    inject_type: str

    @property
    def kind(self) -> str:
        return fault_kind(self.inject_type)


@dataclass(frozen=True, slots=True)
class Day:
    """One day folder on a shared 60 s grid: ``values[i]`` is series ``series[i]`` at times ``ts``."""

    name: str
    system: str
    ts: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    series: tuple[SeriesInfo, ...]
    edges: tuple[tuple[str, str], ...] | None
    faults: tuple[Fault, ...]


def _read_pods(metric_dir: Path) -> list[tuple[str, pl.DataFrame]]:
    pods = []
    for path in sorted(metric_dir.glob("*_metric.csv")):
        frame = pl.read_csv(path, infer_schema_length=0)  # all text: parse what we use ourselves
        pods.append((path.name.removesuffix("_metric.csv"), frame))
    return pods


def load_day(folder: Path, step_s: float = 60.0) -> Day:
    """Read one day folder into a :class:`Day` (see the module docstring for the quirks handled)."""
    pods = _read_pods(folder / "metric")
    if not pods:
        raise FileNotFoundError(f"{folder / 'metric'} holds no *_metric.csv files")
    times = [np.array([wall_clock(t) for t in frame["Time"].to_list()]) for _, frame in pods]
    t0 = min(float(t.min()) for t in times if t.size)
    t1 = max(float(t.max()) for t in times if t.size)
    n_points = round((t1 - t0) / step_s) + 1
    ts = t0 + step_s * np.arange(n_points, dtype=np.float64)
    rows: list[npt.NDArray[np.float64]] = []
    series: list[SeriesInfo] = []
    for (pod, frame), t in zip(pods, times, strict=True):
        slot = np.rint((t - t0) / step_s).astype(np.int64)
        service = pod_service(pod)
        for column, (signal, worse_up) in COLUMN_SIGNALS.items():
            if column not in frame.columns:
                continue
            row = np.full(n_points, np.nan)
            row[slot] = frame[column].cast(pl.Float64, strict=False).to_numpy()
            rows.append(row)
            series.append(SeriesInfo(service, column, signal, worse_up))
    names = [pod for pod, _ in pods]
    dep = folder / "metric" / "dependency.csv"
    edges = None
    if dep.is_file():
        graph = pl.read_csv(dep, infer_schema_length=0)
        edges = tuple(zip(graph["Source"].to_list(), graph["Target"].to_list(), strict=True))
    faults = [
        Fault(wall_clock(e["inject_time"]), pod_service(e["inject_pod"]), e["inject_type"])
        for e in fault_entries(folder)
    ]
    values = np.vstack(rows) if rows else np.zeros((0, n_points))
    faults.sort(key=lambda f: f.alarm_ts)
    return Day(folder.name, system_of(names), ts, values, tuple(series), edges, tuple(faults))


def accuracy(ranks: Sequence[int | None]) -> dict[str, float]:
    """AC@1..5 and Avg@5 for single-root-cause faults, given each truth's 1-based rank (None: absent).

    >>> accuracy([1, 3, None, 2])
    {'n': 4, 'AC@1': 0.25, 'AC@2': 0.5, 'AC@3': 0.75, 'AC@4': 0.75, 'AC@5': 0.75, 'Avg@5': 0.6}
    """
    n = len(ranks)
    out: dict[str, float] = {"n": n}
    for k in KS:
        out[f"AC@{k}"] = sum(1 for r in ranks if r is not None and r <= k) / n if n else 0.0
    out["Avg@5"] = sum(out[f"AC@{k}"] for k in KS) / len(KS)
    return out


@dataclass(slots=True)
class RcaBenchResult:
    """Per fault: system, kind, the truth's rank, fault type and UTC hour; plus the run's wall time."""

    records: list[tuple[str, str, int | None]] = field(default_factory=list)
    details: list[tuple[str, int]] = field(default_factory=list)
    seconds: float = 0.0
    #: faults whose day has traces for them: (system, rank with metrics only, rank with metrics + traces)
    ablation: list[tuple[str, int | None, int | None]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON contract: system -> all|resource|code -> n, AC@1, AC@3, AC@5, Avg@5 (+ seconds)."""
        out: dict[str, Any] = {}
        for system in sorted({s for s, _, _ in self.records}):
            out[system] = {}
            for split in SPLITS:
                ranks = [r for s, kind, r in self.records if s == system and split in ("all", kind)]
                acc = accuracy(ranks)
                out[system][split] = {key: acc[key] for key in ("n", "AC@1", "AC@3", "AC@5", "Avg@5")}
        out["seconds"] = round(self.seconds, 3)
        if self.ablation:
            keep = ("n", "AC@1", "AC@3", "AC@5", "Avg@5")
            out["ablation"] = {}
            for system in sorted({r[0] for r in self.ablation}):
                mine = [r for r in self.ablation if r[0] == system]
                only = accuracy([metric for _, metric, _ in mine])
                both = accuracy([traced for _, _, traced in mine])
                out["ablation"][system] = {
                    "metrics": {k: only[k] for k in keep},
                    "metrics+traces": {k: both[k] for k in keep},
                }
        return out

    def spread(self) -> dict[str, Any]:
        """Per system, the figures per fault type and per UTC hour of injection (n, AC@1, AC@3).

        Nothing in the ranker is fitted on this data, so there is no held-out split to report;
        the spread over hours and fault types is the honest measure of how much figures move.
        """
        out: dict[str, Any] = {}
        rows = [(s, r, t, h) for (s, _, r), (t, h) in zip(self.records, self.details, strict=True)]
        for system in sorted({s for s, _, _, _ in rows}):
            groups: dict[str, dict[str, list[int | None]]] = {"type": {}, "hour": {}}
            for s, r, t, h in rows:
                if s == system:
                    groups["type"].setdefault(t, []).append(r)
                    groups["hour"].setdefault(f"{h:02d}", []).append(r)
            out[system] = {
                by: {
                    key: {k: round(v, 3) for k, v in accuracy(ranks).items() if k in ("n", "AC@1", "AC@3")}
                    for key, ranks in sorted(group.items())
                }
                for by, group in groups.items()
            }
        return out


def day_folders(data: Path) -> list[Path]:
    """The day folders under ``data``: those with a ``metric/`` folder and a fault list."""
    return [
        d
        for d in sorted(data.iterdir())
        if d.is_dir() and (d / "metric").is_dir() and any(d.glob("*fault_list.json"))
    ]


def load_spans(folder: Path, store: Store) -> int:
    """Write a day's ``trace/*_trace.csv[.gz]`` files into the store's ``spans`` (pods -> services).

    Nezha spans carry no kind or status: they are stored as ``unspecified`` / ``unset``, and a
    root span (``ParentID`` = ``root``) has no parent.
    """
    paths = sorted((folder / "trace").glob("*_trace.csv*"))
    if not paths:
        return 0
    frame = pl.concat([pl.read_csv(p, infer_schema_length=0) for p in paths]).unique(
        ["TraceID", "SpanID"], keep="first", maintain_order=True
    )
    services = {pod: pod_service(pod) for pod in frame["PodName"].unique().to_list()}
    start_ns = frame["StartTimeUnixNano"].cast(pl.Int64)
    n = frame.height
    table = pl.DataFrame(
        {
            "trace_id": frame["TraceID"],
            "span_id": frame["SpanID"],
            "parent_span_id": frame["ParentID"].replace("root", ""),
            "service": frame["PodName"].replace_strict(services),
            "operation": frame["OperationName"],
            "kind": ["unspecified"] * n,
            "start_ts": (start_ns // 1000).cast(pl.Datetime("us")),
            "duration_us": frame["Duration"].cast(pl.Int64) // 1000,
            "status": ["unset"] * n,
            "status_message": [""] * n,
            "attributes": ["{}"] * n,
            "resource": ["{}"] * n,
            "scope": [""] * n,
            "peer_service": pl.Series([None] * n, dtype=pl.Utf8),
        }
    ).to_arrow()
    store.write(WriteBatch(source="nezha", spans=table.cast(SPANS_SCHEMA)))
    return n


def _with_traces(
    store: Store, ranking: Sequence[Any], services: Sequence[str], alarm_ts: float, config: DiagnoseConfig
) -> list[str] | None:
    """Services ranked by the Diagnoser's metric and trace weights; None when no spans cover the alarm."""
    alarm = datetime.fromtimestamp(alarm_ts, UTC).replace(tzinfo=None)
    end = datetime.fromtimestamp(alarm_ts + config.rank.after_s, UTC).replace(tzinfo=None)
    covered = store.query("SELECT count(*) FROM spans WHERE start_ts >= ? AND start_ts < ?", [alarm, end])
    if not covered or not covered[0][0]:
        return None
    traced = score_traces(store, services, alarm, end, config.traces)
    top = max((r.score for r in ranking), default=0.0)
    metric = {r.service: (r.score / top if top > 0 else 0.0) for r in ranking}
    total = {
        s: config.weights[0] * metric.get(s, 0.0)
        + config.trace_weight * (traced[s].score if s in traced else 0.0)
        for s in set(metric) | set(traced)
    }
    return sorted(total, key=lambda s: (-total[s], s))


def run_rca_bench(
    data: Path, progress: Callable[[str], None] | None = None, config: RankConfig | None = None
) -> RcaBenchResult:
    """Rank every fault of every day folder under ``data`` and record where the truth landed.

    The ranker and its configuration are the Diagnoser's own (``DiagnoseConfig().rank``, what the
    server ships), fed the bench's documented inputs: the series, the call graph when the day
    has one, and the fault's time as the alarm.
    """
    shipped = DiagnoseConfig()
    config = config or shipped.rank
    start = time.perf_counter()
    result = RcaBenchResult()
    for folder in day_folders(data):
        day = load_day(folder)
        if progress:
            progress(f"{day.name}: {day.system}, {len(day.faults)} faults, {len(day.series)} series")
        with tempfile.TemporaryDirectory() as tmp, Store(str(Path(tmp) / "spans.duckdb")) as store:
            has_spans = load_spans(folder, store) > 0
            services = sorted({s.service for s in day.series})
            for fault in day.faults:
                ranking = rank_services(day.ts, day.values, day.series, fault.alarm_ts, day.edges, config)
                names = [r.service for r in ranking]
                rank = names.index(fault.service) + 1 if fault.service in names else None
                result.records.append((day.system, fault.kind, rank))
                result.details.append((fault.inject_type, datetime.fromtimestamp(fault.alarm_ts, UTC).hour))
                combined = (
                    _with_traces(store, ranking, services, fault.alarm_ts, shipped) if has_spans else None
                )
                if combined is not None:
                    both = combined.index(fault.service) + 1 if fault.service in combined else None
                    result.ablation.append((day.system, rank, both))
    result.seconds = time.perf_counter() - start
    return result


if __name__ == "__main__":  # python -m bench.rca_nezha [DATA]: the figures plus their spread
    import sys

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/benchmarks/rca/nezha")
    bench = run_rca_bench(folder)
    print(json.dumps({"figures": bench.as_dict(), "spread": bench.spread()}, indent=1))
