"""Read what a diagnosis needs from the store, bounded in time, as arrays.

Every query is bounded by the incident's alarm and the diagnosis' ``as_of`` time, so a diagnosis
made during a replay at event time *T* reads exactly what a live server would have had at *T*.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from core.model import Change, ChangeKind
from core.store import Store
from detect.incidents.repository import resolved_incidents_before
from diagnose.rank import SeriesInfo
from diagnose.signals import classify

__all__ = [
    "CALL_LABELS",
    "MetricMatrix",
    "PastIncident",
    "learned_edges",
    "load_changes",
    "load_logs",
    "load_metrics",
    "past_incidents",
]

#: Labels through which call metrics name the other side of a call (OTel, Istio, Linkerd, ...).
CALL_LABELS: tuple[str, ...] = (
    "peer_service", "peer.service", "server_address", "server.address", "destination_service",
    "destination_service_name", "destination_workload", "dst_service", "callee", "upstream", "target_service",
)  # fmt: skip


_CHANGE_KINDS = frozenset(k.value for k in ChangeKind)


@dataclass(frozen=True, slots=True)
class MetricMatrix:
    """Series of the candidate services on one time grid (seconds), NaN where a point is missing."""

    ts: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    series: tuple[SeriesInfo, ...]
    labels: tuple[dict[str, str], ...]


@dataclass(frozen=True, slots=True)
class PastIncident:
    """A resolved incident as the similarity search sees it."""

    id: str
    services: frozenset[str]
    alert_names: frozenset[str]
    opened_at: datetime
    resolved_at: datetime | None
    top_service: str
    top_kind: str
    resolution: str


def load_metrics(store: Store, services: Sequence[str], start: datetime, end: datetime) -> MetricMatrix:
    """Every non-cumulative series of ``services`` with its points in ``[start, end]``, on a grid.

    Cumulative counters are skipped: their derived ``:rate`` series carry the same information in
    a form whose deviations mean something. The grid step is the median spacing of the points.
    """
    empty = MetricMatrix(np.zeros(0), np.zeros((0, 0)), (), ())
    if not services:
        return empty
    rows = store.gauge_series_of(services)
    if not rows:
        return empty
    ids = np.array([r[0] for r in rows], dtype=np.uint64)
    table = store.points_between(ids.tolist(), start, end)
    sid = np.asarray(table.column("series_id").to_numpy(zero_copy_only=False), dtype=np.uint64)
    t = np.asarray(table.column("t").to_numpy(zero_copy_only=False), dtype=np.float64)
    v = np.asarray(table.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)
    infos = tuple(classify(r[1], dict(r[2] or {}), r[4] or "", r[3] or "") for r in rows)
    labels = tuple(dict(r[2] or {}) for r in rows)
    if t.size == 0:
        return MetricMatrix(np.zeros(0), np.zeros((len(rows), 0)), infos, labels)
    grid_t = np.unique(t)
    step = float(np.median(np.diff(grid_t))) if grid_t.size > 1 else 60.0
    step = step if step > 0 else 60.0
    t0 = float(grid_t[0])
    n_cols = round((float(grid_t[-1]) - t0) / step) + 1
    cols = np.clip(np.rint((t - t0) / step).astype(np.int64), 0, n_cols - 1)
    rows_idx = np.searchsorted(ids, sid)
    values = np.full((len(rows), n_cols), np.nan)
    values[rows_idx, cols] = v  # the later point wins a slot, as in a scrape
    grid = t0 + step * np.arange(n_cols, dtype=np.float64)
    return MetricMatrix(grid, values, infos, labels)


def learned_edges(matrix: MetricMatrix, services: Iterable[str]) -> list[tuple[str, str]]:
    """Caller -> callee pairs read from call metrics' peer labels (when no topology is given)."""
    known = set(services)
    edges: set[tuple[str, str]] = set()
    for info, labels in zip(matrix.series, matrix.labels, strict=True):
        for key in CALL_LABELS:
            peer = labels.get(key, "")
            if peer in known and peer != info.service and info.service:
                edges.add((info.service, peer))
    return sorted(edges)


def load_changes(store: Store, services: Sequence[str], start: datetime, end: datetime) -> list[Change]:
    """Deploys and config changes on ``services`` with ``start <= ts <= end``, oldest first."""
    if not services:
        return []
    rows = store.changes_between(services, start, end)
    out = []
    for r in rows:
        kind = ChangeKind(r[2]) if r[2] in _CHANGE_KINDS else ChangeKind.DEPLOYED
        out.append(Change(id=r[0], service=r[1], kind=kind, ts=r[3], version=r[4] or "",
                          environment=r[5] or "", source=r[6] or "", description=r[7] or ""))  # fmt: skip
    return out


def load_logs(
    store: Store, services: Sequence[str], start: datetime, end: datetime, limit: int = 200_000
) -> tuple[list[str], list[str], npt.NDArray[np.float64]]:
    """Warning-and-worse log bodies of ``services`` in ``[start, end]``: (services, bodies, ts seconds).

    Only WARN and above: they carry the failures a diagnosis looks for, and keep the read small
    on chatty services. Lines without a severity count when their text says error/warn.
    """
    if not services:
        return [], [], np.zeros(0)
    rows = store.warning_logs(services, start, end, limit)
    return (
        [r[0] or "" for r in rows],
        [r[1] or "" for r in rows],
        np.array([float(r[2]) for r in rows], dtype=np.float64),
    )


def past_incidents(store: Store, before: datetime, exclude: str, limit: int = 500) -> list[PastIncident]:
    """Incidents resolved before ``before`` (newest first), with how each was resolved: the last
    operator note, or an operator's comment on a lifecycle step (automatic steps say nothing)."""
    rows = resolved_incidents_before(store, before, exclude, limit)
    out = []
    for r in rows:
        hyps = json.loads(r[4] or "[]")
        top = hyps[0] if hyps else {}
        out.append(
            PastIncident(
                id=r[0],
                services=frozenset(r[1] or ()),
                alert_names=frozenset(n for n in (r[5] or ()) if n),
                opened_at=r[2],
                resolved_at=r[3],
                top_service=str(top.get("service", "")),
                top_kind=str(top.get("kind", "")),
                resolution=r[6] or "",
            )
        )
    return out
