"""Turn decoded samples into Arrow tables keyed by stable series ids, without per-point Python.

Per series there is a little Python (label canonicalisation, one dict lookup in the
interner); per point there is none: timestamps and values are appended as whole lists or
arrays and converted with numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from core.batch import POINTS_SCHEMA, SERIES_SCHEMA
from core.model import service_of
from core.series import series_id

LabelItems = tuple[tuple[str, str], ...]

#: Prometheus' stale marker: a NaN with this exact bit pattern (not just any NaN).
STALE_NAN_BITS = np.uint64(0x7FF0000000000002)


class SeriesInterner:
    """Cache of series key -> id, so a hot series costs one dict lookup per batch."""

    def __init__(self, max_entries: int = 2_000_000) -> None:
        self._ids: dict[tuple[str, LabelItems], int] = {}
        self._max = max_entries

    def intern(self, name: str, labels: LabelItems) -> tuple[int, bool]:
        """Return (series id, whether this process saw it for the first time); labels sorted."""
        key = (name, labels)
        sid = self._ids.get(key)
        if sid is not None:
            return sid, False
        if len(self._ids) >= self._max:
            self._ids.clear()
        sid = series_id(name, labels)
        self._ids[key] = sid
        return sid, True


DEFAULT_INTERNER = SeriesInterner()


class PointsBuilder:
    """Collect series and samples of one payload; ``build`` returns (series, points) tables."""

    def __init__(
        self, interner: SeriesInterner | None = None, *, ts_unit: str = "us", stale_nan_bits: bool = False
    ) -> None:
        self._interner = interner or DEFAULT_INTERNER
        self._ts_scale = {"us": 1, "ms": 1000, "s": 1_000_000}[ts_unit]
        self._stale_bits = stale_nan_bits
        self._series: dict[int, tuple[str, LabelItems, str, str]] = {}
        self._ids: list[int] = []
        self._counts: list[int] = []
        self._ts: list[Any] = []
        self._values: list[Any] = []
        self.samples = 0

    def add(
        self,
        name: str,
        labels: LabelItems,
        ts_us: Sequence[int] | np.ndarray,
        values: Sequence[float | None] | np.ndarray,
        kind: str = "unknown",
        unit: str = "",
    ) -> int:
        """Add samples of one series (labels already sorted, without ``__name__``); return its id."""
        sid, _ = self._interner.intern(name, labels)
        if sid not in self._series:
            self._series[sid] = (name, labels, kind, unit)
        n = len(ts_us)
        self._ids.append(sid)
        self._counts.append(n)
        self._ts.append(ts_us)
        self._values.append(values)
        self.samples += n
        return sid

    def add_one(
        self,
        name: str,
        labels: LabelItems,
        ts_us: int,
        value: float | None,
        kind: str = "unknown",
        unit: str = "",
    ) -> None:
        """Add a single sample (convenience for text formats)."""
        self.add(name, labels, (ts_us,), (value,), kind, unit)

    def build(self) -> tuple[pa.Table, pa.Table]:
        """Return the series dictionary rows and the points of everything added."""
        return series_table(self._series.items()), self._points()

    def _points(self) -> pa.Table:
        if not self._ids:
            return POINTS_SCHEMA.empty_table()
        ids = np.repeat(np.asarray(self._ids, dtype=np.uint64), self._counts)
        ts = np.concatenate([np.asarray(t, dtype=np.int64) for t in self._ts])
        if self._ts_scale != 1:
            ts = ts * self._ts_scale
        values = _concat_values(self._values)
        return points_table(ids, ts, values, stale_nan_bits=self._stale_bits)


def points_table(
    ids: np.ndarray, ts_us: np.ndarray, values: np.ndarray | pa.Array, stale_nan_bits: bool = False
) -> pa.Table:
    """Build a points table from column arrays; optionally map stale-marker NaNs to null."""
    if stale_nan_bits and isinstance(values, np.ndarray):
        stale = values.view(np.uint64) == STALE_NAN_BITS
        values = pa.array(values, pa.float64(), mask=stale if stale.any() else None)
    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.uint64()),
            pa.array(ts_us, pa.int64()).cast(pa.timestamp("us")),
            values if isinstance(values, pa.Array) else pa.array(values, pa.float64()),
        ],
        schema=POINTS_SCHEMA,
    )


def _concat_values(chunks: list[Any]) -> pa.Array:
    """Concatenate value chunks; None (a stale marker from a text format) becomes null."""
    if any(isinstance(c, np.ndarray) for c in chunks):
        chunks = [
            c
            if isinstance(c, np.ndarray)
            else np.asarray([np.nan if v is None else v for v in c], dtype=np.float64)
            for c in chunks
        ]
        return pa.array(np.concatenate(chunks).astype(np.float64, copy=False), pa.float64())
    flat = list(chain.from_iterable(chunks))
    if None not in flat:
        return pa.array(np.asarray(flat, dtype=np.float64), pa.float64())
    mask = np.fromiter((v is None for v in flat), dtype=bool, count=len(flat))
    values = np.asarray([np.nan if v is None else v for v in flat], dtype=np.float64)
    return pa.array(values, pa.float64(), mask=mask)


def series_table(rows: Iterable[tuple[int, tuple[str, LabelItems, str, str]]]) -> pa.Table:
    """Build series dictionary rows: id, name, labels map, service, kind, unit."""
    ids: list[int] = []
    names: list[str] = []
    labels: list[list[tuple[str, str]]] = []
    services: list[str | None] = []
    kinds: list[str] = []
    units: list[str] = []
    for sid, (name, items, kind, unit) in rows:
        ids.append(sid)
        names.append(name)
        labels.append(list(items))
        services.append(service_of(dict(items)))
        kinds.append(kind)
        units.append(unit)
    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.uint64()),
            pa.array(names, pa.string()),
            pa.array(labels, pa.map_(pa.string(), pa.string())),
            pa.array(services, pa.string()),
            pa.array(kinds, pa.string()),
            pa.array(units, pa.string()),
        ],
        schema=SERIES_SCHEMA,
    )


def sorted_items(labels: Mapping[str, str]) -> LabelItems:
    """Return labels as a sorted tuple of pairs (the interner's key form)."""
    return tuple(sorted(labels.items()))
