"""Evaluate SLOs over the store: SLI, error budget, burn rates per alert window, state.

All SLOs are evaluated together, by SQL that DuckDB runs vectorised over the stored points
(the queries live in ``slo.repository``; this module builds their inputs and does the maths):

1. **Which series.** Each SLO's selectors are matched against the series dictionary (in
   Python, once per evaluation, indexed by metric name) into a small mapping table
   ``(slo, role, series_id)`` with roles ``good``, ``bad``, ``total`` (ratio SLIs) or
   ``metric`` (threshold SLIs).
2. **Per-slice counts.** Points in ``[start, at)`` are joined to the mapping and summed per
   SLO and slice (``timeslice_window``, one minute by default): ``good``, ``bad``,
   ``total`` for ratios (counters count as increases, a drop being a reset; gauges count
   their values); points meeting the threshold and all points for threshold SLIs; event
   counts for event SLIs. Slices inside the service's maintenance windows are dropped when
   the SLO asks for it.
3. **Per window.** The slices are summed over the SLO window and over every alert window
   (``5m`` .. ``3d``) with ``FILTER`` clauses in one pass. Occurrences use the summed
   events; Timeslices count slices that met ``timeslice_target`` (a threshold slice is good
   when all its points meet the threshold); RatioTimeslices average the per-slice ratios.
   Slices without data follow the SLO's ``missing`` policy (ignored by default).

From those come the SLI, the budget consumed and remaining, bad events and bad minutes,
the burn rate per window (error ratio over the window / error budget), the time to
exhaustion at the 1 h burn, the burn-rate tiers firing (``slo/windows.yaml``) and the
state: **exhausted** when nothing is left, **at risk** when a tier fires or less than
``at_risk_below`` (a quarter) of the budget is left, else **healthy**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from core.model import BudgetState, BudgetStatus, MaintenanceWindow
from core.store import Store
from detect.incidents.suppress import window_active
from slo import maths, repository
from slo.repository import save_snapshots
from slo.spec import (
    BudgetingMethod,
    EventRatioSli,
    RatioSli,
    Selector,
    SloSpec,
    ThresholdSli,
    parse_duration,
    window_bounds,
)
from slo.windows import AlertWindow, firing_tiers, load_windows

__all__ = ["EvaluationConfig", "SliceCache", "aggregate", "compute_slices", "evaluate", "save_snapshots"]

F64 = NDArray[np.float64]
_OPS = {"lte": "<=", "lt": "<", "gte": ">=", "gt": ">"}
_LABELS = (("5m", 5), ("30m", 30), ("1h", 60), ("2h", 120), ("6h", 360), ("1d", 1440), ("3d", 4320))


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    """What evaluation needs besides the SLOs: the alert windows and the at-risk level."""

    windows: tuple[AlertWindow, ...] = ()
    at_risk_below: float = 0.25

    @classmethod
    def default(cls) -> EvaluationConfig:
        """The SRE Workbook windows from ``slo/windows.yaml``."""
        return cls(windows=load_windows())


def _window_minutes(config: EvaluationConfig) -> list[tuple[str, int]]:
    """Every distinct alert window as (label, minutes), shortest first."""
    found: dict[str, int] = dict(_LABELS)
    for w in config.windows:
        for text in (w.long, w.short):
            found.setdefault(text, max(int(parse_duration(text).total_seconds() // 60), 1))
    return sorted(found.items(), key=lambda kv: kv[1])


def _series_index(store: Store, metrics: set[str]) -> dict[str, list[tuple[int, dict[str, str]]]]:
    if not metrics:
        return {}
    rows = store.series_named(sorted(metrics))
    index: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for sid, name, labels, service in rows:
        lab = dict(labels or {})
        lab["__name__"] = name
        if service and "service" not in lab:
            lab["service"] = service
        index.setdefault(name, []).append((int(sid), lab))
    return index


class _SeriesIndex:
    """Series by metric name, and by (name, label, value) for the selectors' equality matchers,
    so matching a thousand selectors against a thousand series of one metric stays cheap."""

    def __init__(self, by_name: dict[str, list[tuple[int, dict[str, str]]]]) -> None:
        self.by_name = by_name
        self._by_label: dict[tuple[str, str], dict[str, list[tuple[int, dict[str, str]]]]] = {}

    def candidates(self, selector: Selector) -> list[tuple[int, dict[str, str]]]:
        name = selector.metric
        equal = next((m for m in selector.matchers if m.op == "=" and m.name != "__name__" and m.value), None)
        if equal is None:
            return self.by_name.get(name, [])
        key = (name, equal.name)
        table = self._by_label.get(key)
        if table is None:
            table = {}
            for sid, lab in self.by_name.get(name, []):
                table.setdefault(lab.get(equal.name, ""), []).append((sid, lab))
            self._by_label[key] = table
        return table.get(equal.value, [])


def _matching(index: _SeriesIndex, selector: Selector) -> list[int]:
    return [sid for sid, lab in index.candidates(selector) if all(m.matches(lab) for m in selector.matchers)]


def _mapping(store: Store, specs: Sequence[SloSpec]) -> pa.Table:
    """``(slo, role, series_id, counter)`` rows for every metric-based SLO."""
    metrics: set[str] = set()
    for spec in specs:
        sli = spec.sli
        if isinstance(sli, RatioSli):
            metrics.update(s.metric for s in (sli.total, sli.good, sli.bad) if s is not None)
        elif isinstance(sli, ThresholdSli):
            metrics.add(sli.metric.metric)
    index = _SeriesIndex(_series_index(store, metrics))
    slo_idx: list[int] = []
    roles: list[str] = []
    ids: list[int] = []
    counters: list[bool] = []
    for i, spec in enumerate(specs):
        sli = spec.sli
        parts: list[tuple[str, Selector | None, bool]] = []
        if isinstance(sli, RatioSli):
            parts = [
                ("total", sli.total, sli.counter),
                ("good", sli.good, sli.counter),
                ("bad", sli.bad, sli.counter),
            ]
        elif isinstance(sli, ThresholdSli):
            parts = [("metric", sli.metric, False)]
        for role, selector, counter in parts:
            if selector is None:
                continue
            for sid in _matching(index, selector):
                slo_idx.append(i)
                roles.append(role)
                ids.append(sid)
                counters.append(counter)
    return pa.table(
        {
            "slo": pa.array(slo_idx, pa.int32()),
            "role": pa.array(roles, pa.string()),
            "series_id": pa.array(ids, pa.uint64()),
            "counter": pa.array(counters, pa.bool_()),
        }
    )


def _params(specs: Sequence[SloSpec], at: datetime) -> pa.Table:
    """Per-SLO parameters the SQL needs: slice length, window start, threshold, event types."""
    rows: dict[str, list[Any]] = {k: [] for k in ("slo", "slice_s", "start", "op", "threshold", "total_type",
                                                  "bad_type", "service", "target")}  # fmt: skip
    for i, spec in enumerate(specs):
        start, _ = window_bounds(spec.window, at)
        sli = spec.sli
        rows["slo"].append(i)
        rows["slice_s"].append(max(int(spec.timeslice_window.total_seconds()), 1))
        rows["start"].append(start)
        rows["op"].append(_OPS[sli.op] if isinstance(sli, ThresholdSli) else "")
        rows["threshold"].append(sli.threshold if isinstance(sli, ThresholdSli) else 0.0)
        rows["total_type"].append(sli.total_type if isinstance(sli, EventRatioSli) else "")
        rows["bad_type"].append(sli.bad_type if isinstance(sli, EventRatioSli) else "")
        rows["service"].append(sli.service if isinstance(sli, EventRatioSli) else "")
        rows["target"].append(spec.timeslice_target if spec.timeslice_target is not None else spec.objective)
    return pa.table(
        {
            "slo": pa.array(rows["slo"], pa.int32()),
            "slice_s": pa.array(rows["slice_s"], pa.int64()),
            "start": pa.array(rows["start"], pa.timestamp("us")),
            "op": pa.array(rows["op"], pa.string()),
            "threshold": pa.array(rows["threshold"], pa.float64()),
            "total_type": pa.array(rows["total_type"], pa.string()),
            "bad_type": pa.array(rows["bad_type"], pa.string()),
            "service": pa.array(rows["service"], pa.string()),
            "target": pa.array(rows["target"], pa.float64()),
        }
    )


def _excluded(
    specs: Sequence[SloSpec], windows: Sequence[MaintenanceWindow], start: datetime, at: datetime
) -> pa.Table:
    """(slo, from, to) intervals to leave out: maintenance windows of SLOs that exclude them."""
    slo_idx: list[int] = []
    froms: list[datetime] = []
    tos: list[datetime] = []
    for i, spec in enumerate(specs):
        if not spec.exclude_maintenance:
            continue
        for w in windows:
            if spec.service not in w.services:
                continue
            span = w.ends_at - w.starts_at
            period = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}.get(w.recurrence)
            begin = w.starts_at
            if period is not None and begin < start:
                begin += period * max(int((start - begin) / period) - 1, 0)
            while begin < at and (w.until is None or begin < w.until):
                if begin + span > start and window_active(w, begin):
                    slo_idx.append(i)
                    froms.append(begin)
                    tos.append(begin + span)
                if period is None:
                    break
                begin += period
    return pa.table(
        {
            "slo": pa.array(slo_idx, pa.int32()),
            "t_from": pa.array(froms, pa.timestamp("us")),
            "t_to": pa.array(tos, pa.timestamp("us")),
        }
    )


def _gauge_bands(
    store: Store, mapping: pa.Table, edges: list[datetime], start: datetime, at: datetime
) -> pa.Table:
    """Occurrences over gauges need no slices: one pass sums each series' points since every
    window start (alert windows and SLO windows: ``sum(value) FILTER (WHERE ts >= edge)``,
    grouped by series only), differences of those give the bands between consecutive starts,
    and the series add up per SLO and role. Rows are stamped with their band's start, so
    ``aggregate`` reads them exactly as it reads slices."""
    edges = sorted({*edges, start}, reverse=True)  # newest first; the scan start closes the list
    per_series = repository.sums_since(store, pc.unique(mapping["series_id"]), edges, start, at)
    index = {int(sid): k for k, sid in enumerate(per_series.column("series_id").to_pylist())}
    since = np.column_stack(
        [np.nan_to_num(per_series.column(f"s{k}").to_numpy(zero_copy_only=False).astype(np.float64))
         for k in range(len(edges))]
    ) if per_series.num_rows else np.zeros((0, len(edges)))  # fmt: skip
    bands = np.diff(np.column_stack([np.zeros(len(since)), since]), axis=1) if len(since) else since
    rows_slo, rows_slice, rows_role, rows_v = [], [], [], []
    for slo, role, sid in zip(mapping["slo"].to_pylist(), mapping["role"].to_pylist(),
                              mapping["series_id"].to_pylist(), strict=True):  # fmt: skip
        k = index.get(int(sid))
        if k is None:
            continue
        rows_slo.extend([slo] * len(edges))
        rows_slice.extend(edges)
        rows_role.extend([role] * len(edges))
        rows_v.append(bands[k])
    if not rows_slo:
        return pa.table(
            {c: pa.array([], t) for c, t in zip(_SLICE_COLUMNS, _SLICE_SCHEMA.types, strict=True)}
        )
    long = pa.table({
        "slo": pa.array(rows_slo, pa.int32()), "slice": pa.array(rows_slice, pa.timestamp("us")),
        "role": pa.array(rows_role, pa.string()), "v": pa.array(np.concatenate(rows_v)),
    })  # fmt: skip
    return repository.sum_bands(long)


_SLICE_COLUMNS = ["slo", "slice", "good", "bad", "total", "points", "points_good"]
_SLICE_SCHEMA = pa.schema(
    [("slo", pa.int32()), ("slice", pa.timestamp("us")), ("good", pa.float64()), ("bad", pa.float64()),
     ("total", pa.float64()), ("points", pa.int64()), ("points_good", pa.int64())]
)  # fmt: skip


def scan_start_for(specs: Sequence[SloSpec], at: datetime, config: EvaluationConfig) -> datetime:
    """The earliest time any SLO window or alert window at ``at`` reaches back to."""
    longest = max(minutes for _, minutes in _window_minutes(config))
    starts = [window_bounds(s.window, at)[0] for s in specs]
    return min(min(starts), at - timedelta(minutes=longest))


def compute_slices(
    store: Store,
    specs: Sequence[SloSpec],
    start: datetime,
    at: datetime,
    maintenance: Sequence[MaintenanceWindow] = (),
    mapping: pa.Table | None = None,
) -> pa.Table:
    """Per-SLO, per-slice counts of the points (and events) in ``[start, at)``.

    Columns: ``slo`` (index into ``specs``), ``slice``, ``good``, ``bad``, ``total``,
    ``points``, ``points_good``. A counter's first point in the range has no increase, so
    callers that extend earlier slices scan from a little before the slice they need.
    """
    mapping = mapping if mapping is not None else _mapping(store, specs)
    params = _params(specs, at)
    excluded = _excluded(specs, maintenance, start, at)
    return repository.slice_counts(store, mapping, params, excluded, start, at)


def aggregate(
    slices: pa.Table, specs: Sequence[SloSpec], at: datetime, config: EvaluationConfig
) -> list[BudgetStatus]:
    """Statuses at ``at`` from per-slice counts (``compute_slices``' columns).

    Vectorised: the slices are sorted by (SLO, time) once and turned into running sums, so
    each SLO's sum over each window is two ``searchsorted`` lookups.
    """
    labels = _window_minutes(config)
    n = slices.num_rows
    slo = slices.column("slo").to_numpy().astype(np.int64) if n else np.zeros(0, np.int64)
    ts = pc.cast(slices.column("slice"), pa.int64()).to_numpy() if n else np.zeros(0, np.int64)
    order = np.lexsort((ts, slo))
    slo, ts = slo[order], ts[order]

    def col(name: str) -> F64:
        if not n:
            return np.zeros(0)
        return np.asarray(slices.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)[order]

    good, bad, total, points, points_good = (
        col(c) for c in ("good", "bad", "total", "points", "points_good")
    )
    target = np.array([s.timeslice_target if s.timeslice_target is not None else s.objective for s in specs])
    with np.errstate(invalid="ignore", divide="ignore"):
        event_ratio = np.where(np.isnan(good), total - bad, good) / np.where(total > 0, total, np.nan)
        ratio = np.where(points > 0, points_good / np.where(points > 0, points, 1.0), event_ratio)
        good_slice = np.where(points > 0, points_good == points, ratio >= target[slo] if n else False)
    quantities = {
        "good": np.nan_to_num(good), "good_n": (~np.isnan(good)).astype(np.float64),
        "bad": np.nan_to_num(bad), "total": np.nan_to_num(total), "points": np.nan_to_num(points),
        "points_good": np.nan_to_num(points_good), "slices": np.ones(n), "good_slices": good_slice.astype(np.float64),
        "ratio": np.nan_to_num(ratio), "ratio_n": (~np.isnan(ratio)).astype(np.float64),
    }  # fmt: skip
    running = {k: np.concatenate([[0.0], np.cumsum(v)]) for k, v in quantities.items()}
    seg_lo = np.searchsorted(slo, np.arange(len(specs)), "left")
    seg_hi = np.searchsorted(slo, np.arange(len(specs)), "right")
    at_us = int((at - datetime(1970, 1, 1)).total_seconds() * 1e6)
    statuses = []
    for i, spec in enumerate(specs):
        lo, hi = int(seg_lo[i]), int(seg_hi[i])
        row: dict[str, Any] = {}
        start_us = int((window_bounds(spec.window, at)[0] - datetime(1970, 1, 1)).total_seconds() * 1e6)
        for key, cut in [
            ("slo", start_us),
            *((name, at_us - minutes * 60_000_000) for name, minutes in labels),
        ]:
            first = lo + int(np.searchsorted(ts[lo:hi], cut, "left"))

            def total_of(q: str, first: int = first, hi: int = hi) -> float:
                return float(running[q][hi] - running[q][first])

            row[f"good_{key}"] = total_of("good") if total_of("good_n") > 0 else None
            for q in ("bad", "total", "points", "points_good", "slices", "good_slices"):
                row[f"{q}_{key}"] = total_of(q)
            ratio_n = total_of("ratio_n")
            row[f"mean_ratio_{key}"] = total_of("ratio") / ratio_n if ratio_n > 0 else None
        statuses.append(_status(spec, row, at, labels, config))
    return statuses


def evaluate(
    store: Store,
    specs: Sequence[SloSpec],
    at: datetime,
    config: EvaluationConfig | None = None,
    maintenance: Sequence[MaintenanceWindow] = (),
) -> list[BudgetStatus]:
    """Evaluate every SLO at ``at`` (naive UTC); return their statuses in the order given."""
    if not specs:
        return []
    config = config or EvaluationConfig.default()
    start = scan_start_for(specs, at, config)
    mapping = _mapping(store, specs)
    excluded = _excluded(specs, maintenance, start, at)
    excluding = set(excluded.column("slo").to_pylist())
    fast = {
        i for i, spec in enumerate(specs)
        if spec.budgeting_method is BudgetingMethod.OCCURRENCES and isinstance(spec.sli, RatioSli)
        and not spec.sli.counter and i not in excluding
    }  # fmt: skip
    in_fast = pc.is_in(mapping["slo"], pa.array(sorted(fast), pa.int32()))
    tables = []
    if len(fast) < len(specs):
        tables.append(
            compute_slices(store, specs, start, at, maintenance, mapping.filter(pc.invert(in_fast)))
        )
    if fast:
        edges = {at - timedelta(minutes=minutes) for _, minutes in _window_minutes(config)}
        edges |= {window_bounds(specs[i].window, at)[0] for i in fast}
        tables.append(_gauge_bands(store, mapping.filter(in_fast), sorted(edges, reverse=True), start, at))
    slices = pa.concat_tables([t.select(_SLICE_COLUMNS).cast(_SLICE_SCHEMA) for t in tables])
    return aggregate(slices, specs, at, config)


class SliceCache:
    """Per-slice counts kept between evaluations, so each one reads only the new points.

    Slices before ``at - margin`` are final (their points are in); newer ones are read again.
    The cache is dropped when the SLOs change.
    """

    def __init__(self, margin: timedelta = timedelta(minutes=10)) -> None:
        self.margin = margin
        self._key: tuple[str, ...] = ()
        self._slices: pa.Table | None = None
        self._until: datetime | None = None
        self._mapping: tuple[int, pa.Table] | None = None  # (series known, mapping) for the current SLOs

    def statuses(
        self,
        store: Store,
        specs: Sequence[SloSpec],
        at: datetime,
        config: EvaluationConfig,
        maintenance: Sequence[MaintenanceWindow] = (),
    ) -> list[BudgetStatus]:
        """Evaluate at ``at``, reading only what changed since the previous call."""
        if not specs:
            return []
        key = tuple(repr(s) for s in specs)
        earliest = scan_start_for(specs, at, config)
        if key != self._key or self._slices is None or self._until is None or at < self._until:
            self._key, self._slices, self._mapping = key, None, None
            start = earliest
        else:
            # counters need the previous point: re-read one margin back, keep only the new slices
            start = max(self._until - self.margin, earliest)
        known = len(store.known_series)
        if self._mapping is None or self._mapping[0] != known or self._slices is None:
            self._mapping = (known, _mapping(store, specs))  # new series may match a selector
        back = self.margin if self._slices is not None else timedelta()
        fresh = compute_slices(store, specs, start - back, at, maintenance, self._mapping[1])
        if self._slices is not None:
            keep = self._slices.filter(pc.and_(
                pc.less(self._slices["slice"], pa.scalar(start, pa.timestamp("us"))),
                pc.greater_equal(self._slices["slice"], pa.scalar(earliest, pa.timestamp("us"))),
            ))  # fmt: skip
            fresh = fresh.filter(pc.greater_equal(fresh["slice"], pa.scalar(start, pa.timestamp("us"))))
            fresh = pa.concat_tables([keep, fresh.cast(keep.schema)], promote_options="default")
        self._slices = fresh
        self._until = at
        return aggregate(fresh, specs, at, config)


def _f(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _good_total(spec: SloSpec, row: dict[str, Any], key: str, minutes: float) -> tuple[float, float]:
    """(good, total) over one window in the SLO's budgeting method's units (events or slices)."""
    method = spec.budgeting_method
    slice_min = max(spec.timeslice_window.total_seconds() / 60.0, 1e-9)
    if method is BudgetingMethod.OCCURRENCES:
        if isinstance(spec.sli, ThresholdSli):
            return _f(row.get(f"points_good_{key}")), _f(row.get(f"points_{key}"))
        total = _f(row.get(f"total_{key}"))
        good = row.get(f"good_{key}")
        good_v = _f(good) if good is not None else total - _f(row.get(f"bad_{key}"))
        return max(good_v, 0.0), max(total, 0.0)
    slices = _f(row.get(f"slices_{key}"))
    if method is BudgetingMethod.TIMESLICES:
        good = _f(row.get(f"good_slices_{key}"))
    else:  # RatioTimeslices: the mean ratio, weighted as if every slice counted once
        mean = row.get(f"mean_ratio_{key}")
        good = _f(mean) * slices if mean is not None else 0.0
    if spec.missing != "ignore":
        expected = math.floor(minutes / slice_min)
        missing = max(expected - slices, 0.0)
        slices += missing
        if spec.missing == "good":
            good += missing
    return good, slices


def _status(
    spec: SloSpec, row: dict[str, Any], at: datetime, labels: list[tuple[str, int]], config: EvaluationConfig
) -> BudgetStatus:
    start, end = window_bounds(spec.window, at)
    window_min = (end - start).total_seconds() / 60.0
    elapsed_min = (at - start).total_seconds() / 60.0
    good, total = _good_total(spec, row, "slo", elapsed_min)
    sli = good / total if total > 0 else float("nan")
    bad = max(total - good, 0.0)
    consumed = maths.budget_consumed(bad, total, spec.objective) if total > 0 else 0.0
    burn: dict[str, float] = {}
    long_events: dict[str, float] = {}
    for name, minutes in labels:
        g, t = _good_total(spec, row, name, minutes)
        burn[name] = maths.burn_rate(1.0 - g / t, spec.objective) if t > 0 else 0.0
        long_events[name] = t
    # a burn-rate row whose long window outlasts the SLO window says nothing about this budget
    rows = [w for w in config.windows if parse_duration(w.long) <= end - start]
    tiers = firing_tiers(burn, rows, long_events, spec.min_events)
    remaining = 1.0 - consumed
    slice_min = spec.timeslice_window.total_seconds() / 60.0
    if spec.budgeting_method is BudgetingMethod.OCCURRENCES:
        bad_minutes = (bad / total) * elapsed_min if total > 0 else 0.0
    else:
        bad_minutes = bad * slice_min
    hour = burn.get("1h", 0.0)
    exhaustion = (
        maths.time_to_exhaustion(remaining, hour, timedelta(minutes=window_min)) if remaining > 0 else 0.0
    )
    exhaustion_s = exhaustion.total_seconds() if isinstance(exhaustion, timedelta) else exhaustion
    if total > 0 and remaining <= 0:
        state = BudgetState.EXHAUSTED
    elif tiers or (total > 0 and remaining < config.at_risk_below):
        state = BudgetState.AT_RISK
    else:
        state = BudgetState.HEALTHY
    return BudgetStatus(
        slo=spec.name, at=at, sli=sli, budget_remaining=remaining, burn_rates=burn, state=state,
        service=spec.service, objective=spec.objective, good=good, total=total, budget_consumed=consumed,
        bad_events=bad, bad_minutes=bad_minutes, exhaustion_s=exhaustion_s, alerts=tiers,
    )  # fmt: skip
