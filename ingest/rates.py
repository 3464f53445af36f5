"""Monotonic cumulative counters -> per-second rates, across batches, without per-point Python.

A counter's raw value (requests served since the process started) is rarely what an
operator or a detector wants; its per-second rate is. ``CumulativeToRate`` keeps the last
sample of every counter series in arrays indexed by a dense slot, so the rates of a batch
are a handful of numpy operations whatever the number of series, and converting a stream
in one go or chunk by chunk gives the same rates.

Prometheus' ``rate()`` semantics, sample by sample:

- rate = (v - v_prev) / (t - t_prev) seconds;
- a value below the previous one is a counter reset: the counter restarted from zero,
  so the increase is ``v`` itself (rate = v / dt);
- the first sample of a series yields no rate (nothing to difference against);
- a NULL (stale marker, OTLP ``NO_RECORDED_VALUE``) or NaN value yields no rate and
  forgets the previous sample: the next sample starts afresh;
- a sample not later than the previous one of its series yields no rate (a duplicate
  keeps the later-listed value as the new reference; one older than the previous batch
  is dropped).

Rates become new series named ``<name without _total>:rate`` (the Prometheus recording
rule convention ``level:metric:operation``, minus the level), with the counter's labels,
kind ``gauge`` and unit ``<unit>/s`` (``1/s`` for dimensionless counters). By default the
counter's own series and points are replaced by the rate's; with ``keep_raw`` (the live
server, whose PromQL API needs the raw counters for ``rate()``) both are kept, and
detection skips the raw cumulative series (``CUMULATIVE_SQL``) to score the rates only.
With ``histograms`` the ``_count`` and ``_sum`` of histograms and summaries (cumulative
too) get rates as well: request rate and the rate of the observed total.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.batch import POINTS_SCHEMA, WriteBatch
from core.model import MetricKind
from core.series import series_id
from ingest.points import LabelItems, series_table

__all__ = [
    "CUMULATIVE_SQL",
    "CumulativeToRate",
    "WithoutRunningTotals",
    "is_cumulative",
    "rate_name",
    "rate_unit",
]

_COUNTER = MetricKind.COUNTER.value
_PARTS = (MetricKind.HISTOGRAM.value, MetricKind.SUMMARY.value)
_CUMULATIVE_SUFFIXES = ("_bucket", "_count", "_sum")

#: SQL over ``series`` true for raw cumulative series (counters, and histogram/summary
#: ``_bucket``/``_count``/``_sum``): values that only make sense as rates, never as levels.
CUMULATIVE_SQL = (
    "(kind = 'counter' OR (kind IN ('histogram', 'summary') AND "
    "(suffix(name, '_bucket') OR suffix(name, '_count') OR suffix(name, '_sum'))))"
)


def is_cumulative(kind: str, name: str) -> bool:
    """Whether a series' values are running totals (``CUMULATIVE_SQL`` in Python).

    >>> is_cumulative("counter", "x_total"), is_cumulative("histogram", "lat_count")
    (True, True)
    >>> is_cumulative("summary", "lat"), is_cumulative("gauge", "queue_sum")
    (False, False)
    """
    return kind == _COUNTER or (kind in _PARTS and name.endswith(_CUMULATIVE_SUFFIXES))


_US_PER_S = 1_000_000.0


def rate_name(counter_name: str) -> str:
    """Return the name of a counter's rate series.

    >>> rate_name("http_server_request_count_total"), rate_name("bytes_sent")
    ('http_server_request_count:rate', 'bytes_sent:rate')
    """
    base = counter_name[: -len("_total")] if counter_name.endswith("_total") else counter_name
    return f"{base}:rate"


def rate_unit(counter_unit: str) -> str:
    """Return the unit of a counter's rate (UCUM): per second.

    >>> rate_unit(""), rate_unit("1"), rate_unit("By"), rate_unit("{request}")
    ('1/s', '1/s', 'By/s', '{request}/s')
    """
    return "1/s" if counter_unit in ("", "1") else f"{counter_unit}/s"


class CumulativeToRate:
    """Turn the points of cumulative counters into per-second rates, batch after batch.

    Series rows (``SERIES_SCHEMA``) tell it which series are counters (kind ``counter``,
    as ``ingest.otlp`` marks monotonic cumulative sums); their points are replaced by
    rate points of the rate series, everything else passes through untouched. A counter's
    series row must arrive with or before its first points (every ingest decoder sends
    them together); points of a series it has not seen are passed through as they are.

    State is one slot per counter series (last timestamp, last value, whether there is
    one), grown as new counters appear; the maths is vectorised over the whole batch.

    Examples
    --------
    >>> from ingest.points import points_table, series_table
    >>> conv = CumulativeToRate()
    >>> series = series_table([(7, ("req_total", (("service", "web"),), "counter", "1"))])
    >>> ts = np.array([0, 60, 120, 180], dtype=np.int64) * 1_000_000
    >>> points = points_table(np.full(4, 7, np.uint64), ts, np.array([0.0, 600.0, 1200.0, 300.0]))
    >>> new_series, rates = conv.convert(series, points)
    >>> new_series.column("name").to_pylist(), new_series.column("unit").to_pylist()
    (['req:rate'], ['1/s'])
    >>> rates.column("value").to_pylist()  # the first sample has no rate; 300 < 1200 is a reset
    [10.0, 10.0, 5.0]
    """

    def __init__(self, *, keep_raw: bool = False, histograms: bool = False) -> None:
        self.keep_raw = keep_raw
        self.histograms = histograms
        self._rate_rows: dict[int, tuple[str, LabelItems, str, str]] = {}  # rate id -> row
        self._slot_of: dict[int, int] = {}
        self._rate_sid = np.empty(0, dtype=np.uint64)  # by slot
        self._last_ts = np.empty(0, dtype=np.int64)  # microseconds
        self._last_value = np.empty(0, dtype=np.float64)
        self._has_last = np.empty(0, dtype=bool)
        # sorted counter ids and their slots, for a vectorised id -> slot lookup
        self._sorted_ids = np.empty(0, dtype=np.uint64)
        self._sorted_slots = np.empty(0, dtype=np.int64)

    @property
    def counters(self) -> int:
        """How many counter series it has seen."""
        return len(self._slot_of)

    def convert_batch(self, batch: WriteBatch) -> WriteBatch:
        """Return ``batch`` with its counters' series and points replaced by rates (in place)."""
        if batch.series is None and batch.points is None:
            return batch
        series, points = self.convert(batch.series, batch.points)
        batch.series = series if series is not None and series.num_rows else None
        batch.points = points if points is not None and points.num_rows else None
        return batch

    def convert(
        self, series: pa.Table | None, points: pa.Table | None
    ) -> tuple[pa.Table | None, pa.Table | None]:
        """Register the counters among ``series``; return (series, points) with counters as rates.

        The returned series hold the non-counter rows and the rows of rate series new to
        this converter; the points hold the non-counter points and the rate points (at
        the timestamp of the later sample of each pair).
        """
        if series is not None and series.num_rows:
            series = self._register(series)
        if points is None or not points.num_rows or not self._slot_of:
            return series, points
        ids = points.column("series_id").to_numpy()
        pos = np.searchsorted(self._sorted_ids, ids)
        pos_clipped = np.minimum(pos, len(self._sorted_ids) - 1)
        is_counter = self._sorted_ids[pos_clipped] == ids
        if not is_counter.any():
            return series, points
        others = points.filter(pa.array(~is_counter))
        counter_rows = np.flatnonzero(is_counter)
        slots = self._sorted_slots[pos_clipped[counter_rows]]
        ts = points.column("ts").cast(pa.int64()).to_numpy()[counter_rows]
        values_arr = points.column("value").take(pa.array(counter_rows))
        values = values_arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
        if values_arr.null_count:
            values[values_arr.is_null().to_numpy(zero_copy_only=False)] = np.nan
        rates = self._rates(slots, ts, values)
        if self.keep_raw:
            return series, pa.concat_tables([points, rates])
        if others.num_rows == 0:
            return series, rates
        return series, pa.concat_tables([others, rates])

    # ------------------------------------------------------------------ internals

    def _register(self, series: pa.Table) -> pa.Table:
        """Give new counters a slot; return the series rows with counters swapped for rates."""
        kinds = series.column("kind")
        is_counter = pc.fill_null(pc.equal(kinds, _COUNTER), False)
        if self.histograms:
            names = series.column("name")
            part = pc.and_(
                pc.is_in(kinds, pa.array(_PARTS)),
                pc.or_(
                    pc.or_(pc.ends_with(names, "_bucket"), pc.ends_with(names, "_count")),
                    pc.ends_with(names, "_sum"),
                ),
            )
            # bucket rates stay out: quantiles, not per-bucket rates, are what to watch
            part = pc.and_(part, pc.invert(pc.ends_with(names, "_bucket")))
            is_counter = pc.or_(is_counter, pc.fill_null(part, False))
        if not pc.any(is_counter).as_py():
            return series
        counters = series.filter(is_counter)
        rows: list[tuple[int, tuple[str, LabelItems, str, str]]] = []
        new_ids: list[int] = []
        rate_ids: list[int] = []
        for sid, name, labels, unit in zip(
            counters.column("series_id").to_pylist(),
            counters.column("name").to_pylist(),
            counters.column("labels").to_pylist(),
            counters.column("unit").to_pylist(),
            strict=True,
        ):  # one iteration per counter row of the batch; Python work only for new counters
            if sid in self._slot_of:
                continue
            items: LabelItems = tuple(sorted(labels or ()))
            name_r = rate_name(name)
            rate_sid = series_id(name_r, items)
            self._slot_of[sid] = len(self._slot_of)
            new_ids.append(sid)
            rate_ids.append(rate_sid)
            rows.append((rate_sid, (name_r, items, MetricKind.GAUGE.value, rate_unit(unit or ""))))
            self._rate_rows[rate_sid] = rows[-1][1]
        if new_ids:
            self._grow(new_ids, rate_ids)
        kept = series if self.keep_raw else series.filter(pc.invert(is_counter))
        if not rows:
            return kept
        return pa.concat_tables([kept, series_table(rows).cast(series.schema)])

    def rate_rows(self, rate_ids: Sequence[int]) -> pa.Table:
        """Series rows of the given rate series (to send again when a store may lack them)."""
        return series_table([(sid, self._rate_rows[sid]) for sid in rate_ids if sid in self._rate_rows])

    def _grow(self, new_ids: Sequence[int], rate_ids: Sequence[int]) -> None:
        n = len(new_ids)
        self._rate_sid = np.concatenate([self._rate_sid, np.asarray(rate_ids, dtype=np.uint64)])
        self._last_ts = np.concatenate([self._last_ts, np.zeros(n, dtype=np.int64)])
        self._last_value = np.concatenate([self._last_value, np.zeros(n, dtype=np.float64)])
        self._has_last = np.concatenate([self._has_last, np.zeros(n, dtype=bool)])
        ids = np.fromiter(self._slot_of.keys(), dtype=np.uint64, count=len(self._slot_of))
        slots = np.fromiter(self._slot_of.values(), dtype=np.int64, count=len(self._slot_of))
        order = np.argsort(ids, kind="stable")
        self._sorted_ids, self._sorted_slots = ids[order], slots[order]

    def _rates(self, slots: np.ndarray, ts: np.ndarray, values: np.ndarray) -> pa.Table:
        """The rate points of counter samples (any order); updates the per-slot state."""
        # Samples older than their series' last sample of an earlier batch are dropped.
        fresh = ~(self._has_last[slots] & (ts < self._last_ts[slots]))
        if not fresh.all():
            slots, ts, values = slots[fresh], ts[fresh], values[fresh]
        order = np.lexsort((ts, slots))  # by series, then time; stable for equal stamps
        slots, ts, values = slots[order], ts[order], values[order]
        n = len(slots)
        first = np.ones(n, dtype=bool)
        first[1:] = slots[1:] != slots[:-1]
        prev_ts = np.empty(n, dtype=np.int64)
        prev_value = np.empty(n, dtype=np.float64)
        prev_ok = np.empty(n, dtype=bool)
        prev_ts[1:], prev_value[1:] = ts[:-1], values[:-1]
        prev_ok[1:] = ~np.isnan(values[:-1])
        # the first sample of each series in this batch differences against the carried state
        head = slots[first]
        prev_ts[first] = self._last_ts[head]
        prev_value[first] = self._last_value[head]
        prev_ok[first] = self._has_last[head]
        dt = ts - prev_ts
        emit = prev_ok & ~np.isnan(values) & (dt > 0)
        increase = np.where(values >= prev_value, values - prev_value, values)
        rate = increase[emit] / (dt[emit] / _US_PER_S)
        # the new state of each series is its last sample in this batch
        last = np.ones(n, dtype=bool)
        last[:-1] = slots[1:] != slots[:-1]
        tail = slots[last]
        self._last_ts[tail] = ts[last]
        self._last_value[tail] = values[last]
        self._has_last[tail] = ~np.isnan(values[last])
        return pa.Table.from_arrays(
            [
                pa.array(self._rate_sid[slots[emit]], pa.uint64()),
                pa.array(ts[emit], pa.int64()).cast(pa.timestamp("us")),
                pa.array(rate, pa.float64()),
            ],
            schema=POINTS_SCHEMA,
        )


class WithoutRunningTotals:
    """Wrap a commit listener so raw running totals reach it as NULL (which detection skips).

    The live path hands committed points straight to detection; this keeps their rowids
    (so its bookkeeping stays exact) but blanks the values of cumulative series, whose
    ``:rate`` series carry what is worth scoring. ``lookup(ids)`` answers which of the ids
    are cumulative (``CUMULATIVE_SQL``); answers are cached, so a known series costs nothing.

    >>> seen = []
    >>> wrap = WithoutRunningTotals(lambda ids: {7}, seen.append)
    >>> from ingest.points import points_table
    >>> from ingest.queue import CommittedPoints
    >>> pts = points_table(np.array([7, 8], np.uint64), np.array([0, 0]), np.array([1.0, 2.0]))
    >>> wrap(CommittedPoints(0, pts, 0.0))
    >>> seen[0].points.column("value").to_pylist()
    [None, 2.0]
    """

    def __init__(self, lookup: Callable[[list[int]], set[int]], listener: Callable[[Any], None]) -> None:
        self._lookup = lookup
        self._listener = listener
        self._known = np.empty(0, dtype=np.uint64)  # sorted ids already classified
        self._cumulative = np.empty(0, dtype=np.uint64)  # sorted ids that are running totals

    def __call__(self, committed: Any) -> None:
        points: pa.Table = committed.points
        ids = points.column("series_id").to_numpy()
        unique = np.unique(ids)
        new = unique[~np.isin(unique, self._known)]
        if len(new):
            found = self._lookup([int(i) for i in new.tolist()])
            self._known = np.union1d(self._known, new)
            if found:
                self._cumulative = np.union1d(self._cumulative, np.fromiter(found, np.uint64, len(found)))
        blank = np.isin(ids, self._cumulative)
        if blank.any():
            values = pc.if_else(pa.array(blank), pa.nulls(len(ids), pa.float64()), points.column("value"))
            points = points.set_column(points.schema.get_field_index("value"), "value", values)
            committed = replace(committed, points=points)
        self._listener(committed)
