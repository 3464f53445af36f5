"""Rank services by how well their metrics explain an alarm (metric-based root-cause analysis).

The ranker is generic: it sees series on a shared time grid, each tagged with the service it
belongs to and a golden-signal *role* the caller assigns (see :data:`Signal`). It never knows
metric or service names beyond those tags.

What the method sees
--------------------
Only two stretches of each series, both relative to ``alarm_ts`` (the moment the online
detector fired):

* the **baseline**: points with ``alarm_ts - baseline_s <= t < alarm_ts`` (default 60 min), from
  which a robust centre (median) and spread (IQR, with MAD and a relative floor as fall-backs)
  are taken, as BARO and N-Sigma do;
* the **analysis window**: points with ``alarm_ts <= t <= alarm_ts + after_s`` (default 180 s,
  the evidence that has arrived when diagnosis refreshes).

Nothing later than ``alarm_ts + after_s`` is read, and no labels of any kind.

The score
---------
1. Per series: the robust deviation ``z = (x - median) / spread`` in the direction that is bad
   for its role (up for latency, errors, saturation; down when ``higher_is_worse=False``; both
   ways for traffic and other), taken at its largest over the analysis window and compressed
   with ``log1p`` so that one near-constant series cannot drown all others.
2. Per service: the best evidence over its roles, weighted by :data:`DEFAULT_WEIGHTS`. Server
   latency counts only by how much it rose *beyond* the service's own client (downstream)
   latency: a service whose server latency rises with its client latency is waiting on someone
   else; one whose server latency rises alone is where the time is spent. A host series that is
   identical for k services (they share the node) counts 1/k for each of them, since it says
   little about which one is at fault.
3. With a call graph (caller -> callee edges): a callee's fault reaches its callers as latency
   and errors, so that part of a caller's score (not its CPU or memory) is discounted by the
   share of it that its most anomalous callee explains, both measured above the median service
   score of the moment (the level every service reaches by chance). Conversely, client
   latency that none of a service's callees' server latency accounts for was spent on the
   service's own network path (a delay on its interface): it counts as that service's evidence,
   at ``network_weight`` (half, like traffic: it also moves with load). Without a call graph
   client latency is never a service's own evidence, since nothing tells who it waits on.

Ties are broken by service name, so the result does not depend on the order of the series.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_WEIGHTS",
    "SIGNALS",
    "MetricScore",
    "RankConfig",
    "SeriesInfo",
    "ServiceScore",
    "Signal",
    "rank_services",
    "series_deviation",
]

Signal = Literal["latency", "downstream_latency", "errors", "traffic", "saturation", "host", "other"]
#: Every golden-signal role, in a fixed order (the columns of the per-service evidence matrix).
SIGNALS: tuple[Signal, ...] = get_args(Signal)

#: Roles through which a callee's fault shows up at its callers.
PROPAGATED: frozenset[Signal] = frozenset({"latency", "errors"})

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What one row of ``values`` is: its service, metric name and golden-signal role.

    ``higher_is_worse=False`` flips the bad direction (e.g. a success rate under ``errors``).
    """

    service: str
    metric: str
    signal: Signal
    higher_is_worse: bool = True


@dataclass(frozen=True, slots=True)
class MetricScore:
    """One series' evidence: its deviation score, baseline median and the value at its peak."""

    service: str
    metric: str
    signal: Signal
    score: float
    baseline: float
    value: float
    onset_ts: float | None


@dataclass(frozen=True, slots=True)
class ServiceScore:
    """A ranked service and the metric evidence behind its score, strongest first."""

    service: str
    score: float
    metrics: tuple[MetricScore, ...]


#: Per-role weight of the evidence. Client (downstream) latency is evidence of waiting on someone
#: else, so it only ever lowers a service's own latency evidence; traffic and other count half
#: because they move with the load as much as with a fault.
DEFAULT_WEIGHTS: tuple[tuple[Signal, float], ...] = (
    ("latency", 1.0),
    ("downstream_latency", 0.0),
    ("errors", 1.0),
    ("traffic", 0.5),
    ("saturation", 1.0),
    ("host", 1.0),
    ("other", 0.5),
)


@dataclass(frozen=True, slots=True)
class RankConfig:
    """The ranker's one fixed configuration (seconds for windows).

    Attributes
    ----------
    baseline_s, after_s
        The baseline before the alarm and the analysis window after it (see the module docstring).
    min_baseline_points
        Series with fewer baseline points carry no evidence.
    rel_floor
        The spread is at least this fraction of ``|median|`` (and a tiny absolute floor), so a flat
        baseline does not turn noise into an infinite deviation.
    onset_z
        A point counts as deviating (for ``onset_ts``) once its deviation passes this.
    weights
        Per-role weight of the evidence in the service score.
    callee_discount
        With edges: the largest fraction of a caller's score an anomalous callee can explain away.
    two_sided
        Roles whose deviation counts both ways (a drop in traffic is as telling as a surge).
    network_weight
        With edges: the weight of client latency that no callee's server latency explains.
    """

    baseline_s: float = 3600.0
    after_s: float = 180.0
    min_baseline_points: int = 10
    rel_floor: float = 0.01
    onset_z: float = 3.0
    weights: tuple[tuple[Signal, float], ...] = DEFAULT_WEIGHTS
    callee_discount: float = 0.5
    two_sided: frozenset[Signal] = frozenset({"traffic", "other"})
    network_weight: float = 0.5


def series_deviation(
    ts: FloatArray, values: FloatArray, alarm_ts: float, two_sided: npt.NDArray[np.bool_], config: RankConfig
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-series robust deviation over the analysis window, vectorised across series.

    ``values`` must already be oriented so that up is bad. Returns ``(score, baseline, peak_value,
    onset_ts)``: score is ``log1p`` of the largest deviation (0 without evidence), onset is NaN when
    no point passes ``config.onset_z``.

    >>> ts = np.arange(100.0) * 60
    >>> v = np.vstack([np.ones(100), np.ones(100)]) + np.sin(np.arange(100))[None, :] * 0.1
    >>> v[0, 80:] += 5
    >>> score, base, peak, onset = series_deviation(ts, v, 80 * 60.0, np.zeros(2, bool), RankConfig())
    >>> bool(score[0] > score[1]), float(onset[0]) == 80 * 60.0
    (True, True)
    """
    base_mask = (ts >= alarm_ts - config.baseline_s) & (ts < alarm_ts)
    win_mask = (ts >= alarm_ts) & (ts <= alarm_ts + config.after_s)
    n = values.shape[0]
    nan = np.full(n, np.nan)
    if not base_mask.any() or not win_mask.any():
        return np.zeros(n), nan, nan, nan.copy()
    base = values[:, base_mask]
    win = values[:, win_mask]
    enough = np.sum(~np.isnan(base), axis=1) >= config.min_baseline_points
    safe = np.where(enough[:, None], base, 0.0)  # all-NaN rows would warn; they carry no evidence anyway
    q25, med, q75 = np.nanpercentile(safe, [25.0, 50.0, 75.0], axis=1)
    mad = np.nanmedian(np.abs(safe - med[:, None]), axis=1) * 1.4826
    spread = np.maximum.reduce([(q75 - q25) / 1.349, mad, config.rel_floor * np.abs(med), np.full(n, 1e-9)])
    z = (win - med[:, None]) / spread[:, None]
    z = np.where(two_sided[:, None], np.abs(z), z)
    z = np.where(np.isnan(z) | ~enough[:, None], -np.inf, z)
    peak_at = np.argmax(z, axis=1)
    peak = z[np.arange(n), peak_at]
    has = np.isfinite(peak)
    score = np.where(has, np.log1p(np.clip(peak, 0.0, None)), 0.0)
    win_ts = ts[win_mask]
    over = z >= config.onset_z
    onset = np.where(over.any(axis=1), win_ts[np.argmax(over, axis=1)], np.nan)
    peak_value = np.where(has, win[np.arange(n), peak_at], np.nan)
    return score, np.where(enough, med, np.nan), peak_value, onset


def rank_services(
    ts: npt.ArrayLike,
    values: npt.ArrayLike,
    series: Sequence[SeriesInfo],
    alarm_ts: float,
    edges: Iterable[tuple[str, str]] | None = None,
    config: RankConfig = RankConfig(),
) -> list[ServiceScore]:
    """Rank the services of ``series`` as root-cause candidates for an alarm at ``alarm_ts``.

    Parameters
    ----------
    ts
        ``(n_points,)`` grid times in seconds, shared by every series.
    values
        ``(n_series, n_points)``; NaN marks a missing point.
    series
        One :class:`SeriesInfo` per row of ``values``.
    alarm_ts
        When the online detector fired; see the module docstring for the windows read around it.
    edges
        Optional call graph as ``(caller, callee)`` service pairs.

    Returns
    -------
    list[ServiceScore]
        Every service, most likely root cause first.

    Examples
    --------
    >>> ts = np.arange(120.0) * 60
    >>> rng = np.random.default_rng(0)
    >>> values = 1 + 0.1 * rng.standard_normal((3, 120))
    >>> values[1, 100:] += 3  # b's CPU jumps at the alarm
    >>> series = [SeriesInfo(s, "cpu", "saturation") for s in "abc"]
    >>> top = rank_services(ts, values, series, alarm_ts=100 * 60.0)[0]
    >>> top.service, round(top.metrics[0].baseline, 1), round(top.metrics[0].value, 1)
    ('b', 1.0, 4.1)
    """
    if not series:
        return []
    grid = np.asarray(ts, dtype=np.float64)
    data = np.array(values, dtype=np.float64, ndmin=2)
    if data.shape != (len(series), grid.size):
        raise ValueError(f"values has shape {data.shape}, expected ({len(series)}, {grid.size})")
    # Everything below sees only the baseline and the analysis window, nothing later.
    visible = (grid >= alarm_ts - config.baseline_s) & (grid <= alarm_ts + config.after_s)
    grid, data = grid[visible], data[:, visible]
    flip = np.array([not s.higher_is_worse for s in series])
    data = np.where(flip[:, None], -data, data)
    two_sided = np.array([s.signal in config.two_sided for s in series])
    score, baseline, peak, onset = series_deviation(grid, data, float(alarm_ts), two_sided, config)
    peak = np.where(flip, -peak, peak)
    baseline = np.where(flip, -baseline, baseline)

    services = sorted({s.service for s in series})
    svc_index = {name: i for i, name in enumerate(services)}
    role_index = {role: j for j, role in enumerate(SIGNALS)}
    rows = np.array([svc_index[s.service] for s in series])
    cols = np.array([role_index[s.signal] for s in series])
    evidence = np.zeros((len(services), len(SIGNALS)))
    np.maximum.at(evidence, (rows, cols), score / _sharing(data, series, rows))

    lat, down = role_index["latency"], role_index["downstream_latency"]
    has_down = np.zeros(len(services), dtype=bool)
    has_down[rows[cols == down]] = True
    # Time spent in the service itself: server latency beyond what its own calls explain.
    server_latency = evidence[:, lat].copy()
    own_latency = np.clip(evidence[:, lat] - evidence[:, down], 0.0, None)
    evidence[:, lat] = np.where(has_down, own_latency, evidence[:, lat])
    weights = dict(config.weights)
    weighted = evidence * np.array([weights.get(role, 0.0) for role in SIGNALS])[None, :]
    svc_score = weighted.max(axis=1)
    if edges is not None:
        # A callee's fault reaches its callers as latency and errors, not as their CPU or memory:
        # only that part of a caller's score can be explained away by an anomalous callee.
        carried_roles = np.array([role in PROPAGATED for role in SIGNALS])
        local = np.where(carried_roles[None, :], 0.0, weighted).max(axis=1)
        carried = np.where(carried_roles[None, :], weighted, 0.0).max(axis=1)
        explained = _callee_max(svc_score, svc_index, edges)
        svc_score = np.maximum(local, _discount(carried, explained, svc_score, config.callee_discount))
        # Client latency that no callee's server latency accounts for is spent on this service's
        # own network path (a delay on its interface), so it is this service's evidence.
        callee_latency = _callee_max(server_latency, svc_index, edges)
        own_network = np.clip(evidence[:, down] - callee_latency, 0.0, None)
        svc_score = np.maximum(svc_score, config.network_weight * own_network)

    order = sorted(range(len(services)), key=lambda i: (-svc_score[i], services[i]))
    per_service: list[list[MetricScore]] = [[] for _ in services]
    for k, info in enumerate(series):
        per_service[rows[k]].append(
            MetricScore(
                service=info.service,
                metric=info.metric,
                signal=info.signal,
                score=float(score[k]),
                baseline=float(baseline[k]),
                value=float(peak[k]),
                onset_ts=None if np.isnan(onset[k]) else float(onset[k]),
            )
        )
    return [
        ServiceScore(
            service=services[i],
            score=float(svc_score[i]),
            metrics=tuple(sorted(per_service[i], key=lambda m: (-m.score, m.metric, m.signal))),
        )
        for i in order
    ]


def _sharing(data: FloatArray, series: Sequence[SeriesInfo], rows: npt.NDArray[np.intp]) -> FloatArray:
    """How many services share each series: >1 for host series identical across services (same node)."""
    shared = np.ones(len(series))
    host = np.flatnonzero([s.signal == "host" for s in series])
    if host.size < 2:
        return shared
    metric_ids = np.unique([series[int(i)].metric for i in host], return_inverse=True)[1]
    # A host series is the same node's when the metric and every visible value agree.
    keys = np.column_stack([metric_ids, np.round(np.nan_to_num(data[host], nan=np.inf), 9)])
    group = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
    pairs = np.unique(np.column_stack([group, rows[host]]), axis=0)  # (group, service), once each
    services_per_group = np.bincount(pairs[:, 0], minlength=int(group.max()) + 1)
    shared[host] = services_per_group[group]
    return shared


def _callee_max(score: FloatArray, index: dict[str, int], edges: Iterable[tuple[str, str]]) -> FloatArray:
    """Per service, the largest score among its callees (0 without callees)."""
    explained = np.zeros_like(score)
    pairs = [(index[a], index[b]) for a, b in edges if a in index and b in index and a != b]
    if pairs:
        caller, callee = np.array(pairs).T
        np.maximum.at(explained, caller, score[callee])
    return explained


def _discount(
    carried: FloatArray, explained: FloatArray, everyone: FloatArray, discount: float
) -> FloatArray:
    """Lower ``carried`` by the share of it a callee's score explains.

    Both are measured above the median service score: every service deviates a little by chance
    at any moment, and only what stands out above that level is evidence.
    """
    level = float(np.median(everyone))
    own, callee = np.clip(carried - level, 0.0, None), np.clip(explained - level, 0.0, None)
    share = np.divide(callee, own, out=np.zeros_like(own), where=own > 0)
    result: FloatArray = carried * (1.0 - discount * np.clip(share, 0.0, 1.0))
    return result
