"""Reads for detection: points by rowid, series labels, anomalies, bands, feedback.

The SQL of the detect domain lives here (writes go through the store's single writer in
``core/store.py``), so the engine, the routers and the CLI share one set of queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from core.model import Anomaly
from core.store import Store
from ingest.rates import CUMULATIVE_SQL

__all__ = [
    "Anomaly",
    "Feedback",
    "anomaly_by_id",
    "band",
    "count_anomalies",
    "feedback_of",
    "latest_thresholds",
    "list_anomalies",
    "read_points",
    "rebuild_since",
    "series_history",
    "series_labels",
]

_ANOMALY_COLUMNS = (
    "a.id, a.series_id, s.name, s.service, a.ts, a.value, a.score, a.probability, a.expected, "
    "a.lower, a.upper, a.threshold, a.detector, a.direction, a.created_at"
)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One recorded operator verdict."""

    anomaly_id: str
    series_id: int
    verdict: str
    user: str | None
    comment: str | None
    at: datetime
    threshold_before: float
    threshold_after: float


def read_points(store: Store, start: int, end: int, since: datetime | None = None) -> pa.Table:
    """Points with rowids in ``[start, end)``, in commit order (optionally only ``ts >= since``).

    Raw running totals (counters, histogram parts) are left out: their ``:rate`` series,
    which ingest derives, are what detection scores.
    """
    extra = " AND ts >= ?" if since is not None else ""
    params: list[Any] = [start, end] + ([since] if since is not None else [])
    return store.arrow(
        f"SELECT series_id, ts, value FROM points WHERE rowid >= ? AND rowid < ?{extra} "
        f"AND series_id NOT IN (SELECT series_id FROM series WHERE {CUMULATIVE_SQL}) ORDER BY rowid",
        params,
    )


def rebuild_since(store: Store, history_s: float) -> datetime | None:
    """The time ``history_s`` before the newest stored point (None: no points)."""
    rows = store.query("SELECT max(ts) FROM points")
    newest = rows[0][0] if rows else None
    return newest - timedelta(seconds=history_s) if newest is not None else None


def cumulative_ids(store: Store, ids: list[int]) -> set[int]:
    """Which of ``ids`` are raw running totals (``CUMULATIVE_SQL``)."""
    rows = store.query(
        f"SELECT series_id FROM series WHERE series_id IN (SELECT unnest(?::UBIGINT[])) AND {CUMULATIVE_SQL}",
        [ids],
    )
    return {int(r[0]) for r in rows}


def series_labels(store: Store, ids: NDArray[np.uint64]) -> list[dict[str, str]]:
    """Labels of each series in ``ids`` (``__name__`` and ``service`` included), in that order."""
    if not len(ids):
        return []
    rows = store.query(
        "SELECT series_id, name, labels, service FROM series WHERE series_id IN (SELECT unnest(?::UBIGINT[]))",
        [[int(i) for i in ids]],
    )
    found: dict[int, dict[str, str]] = {}
    for sid, name, labels, service in rows:
        lab = dict(labels or {})
        lab["__name__"] = name
        if service and "service" not in lab:
            lab["service"] = service
        found[int(sid)] = lab
    return [found.get(int(i), {}) for i in ids]


def series_history(store: Store) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]]:
    """Each scored series' history so far: (ids, points scored, first scored ts in µs).

    Read from the bands the engine committed (one row per scored point), so a process that
    restarts, or starts after ``opsloop backfill``, knows which series are already warm
    without having watched them itself.
    """
    table = store.arrow(
        "SELECT series_id, count(*) AS n, epoch_us(min(ts)) AS first_us FROM bands GROUP BY series_id"
    )
    return (
        table.column("series_id").to_numpy().astype(np.uint64),
        table.column("n").to_numpy().astype(np.int64),
        table.column("first_us").to_numpy().astype(np.int64),
    )


def _anomaly(row: tuple[Any, ...]) -> Anomaly:
    return Anomaly(row[0], int(row[1]), *row[2:])


def list_anomalies(
    store: Store,
    *,
    series_ids: Iterable[int] = (),
    service: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Anomaly]:
    """Newest anomalies first, filtered by series, service (column or label) and time."""
    where, params = ["true"], list[Any]()
    ids = [int(i) for i in series_ids]
    if ids:
        where.append("a.series_id IN (SELECT unnest(?::UBIGINT[]))")
        params.append(ids)
    if service:
        where.append("(s.service = ? OR s.labels['service'] = ?)")
        params += [service, service]
    if since is not None:
        where.append("a.ts >= ?")
        params.append(since)
    params.append(limit)
    rows = store.query(
        f"SELECT {_ANOMALY_COLUMNS} FROM anomalies a LEFT JOIN series s USING (series_id) "
        f"WHERE {' AND '.join(where)} ORDER BY a.ts DESC, a.id LIMIT ?",
        params,
    )
    return [_anomaly(r) for r in rows]


def anomaly_by_id(store: Store, anomaly_id: str) -> Anomaly | None:
    """One anomaly, or None."""
    rows = store.query(
        f"SELECT {_ANOMALY_COLUMNS} FROM anomalies a LEFT JOIN series s USING (series_id) WHERE a.id = ?",
        [anomaly_id],
    )
    return _anomaly(rows[0]) if rows else None


def band(store: Store, series_id: int, start: datetime | None, end: datetime | None) -> pa.Table:
    """The scored points of one series in ``[start, end]``: ts, value, expected, lower, upper, probability."""
    where, params = ["series_id = ?"], list[Any]([series_id])
    if start is not None:
        where.append("ts >= ?")
        params.append(start)
    if end is not None:
        where.append("ts <= ?")
        params.append(end)
    return store.arrow(
        "SELECT ts, value, expected, lower, upper, probability, score FROM bands "
        f"WHERE {' AND '.join(where)} ORDER BY ts",
        params,
    )


def latest_thresholds(store: Store) -> tuple[NDArray[np.uint64], NDArray[np.float64]]:
    """Each series' threshold after its most recent feedback (ids, thresholds)."""
    table = store.arrow(
        'SELECT series_id, arg_max(threshold_after, "at") AS threshold FROM anomaly_feedback '
        "GROUP BY series_id"
    )
    return (
        table.column("series_id").to_numpy().astype(np.uint64),
        table.column("threshold").to_numpy().astype(np.float64),
    )


def feedback_of(store: Store, anomaly_id: str) -> list[Feedback]:
    """Verdicts recorded on one anomaly, oldest first."""
    rows = store.query(
        'SELECT anomaly_id, series_id, verdict, "user", comment, "at", threshold_before, threshold_after '
        'FROM anomaly_feedback WHERE anomaly_id = ? ORDER BY "at"',
        [anomaly_id],
    )
    return [Feedback(r[0], int(r[1]), *r[2:]) for r in rows]


def count_anomalies(store: Store) -> int:
    """Count the stored anomalies."""
    return int(store.query("SELECT count(*) FROM anomalies")[0][0])
