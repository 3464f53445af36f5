"""Signals derived from spans: per-service and per-call-edge RED series, and the learned call graph.

What the OpenTelemetry Collector's ``spanmetrics`` and ``servicegraph`` connectors do, over
the store: every closed minute of spans becomes ordinary series, so Detect, alerts,
incidents and SLOs use them unchanged (an SLO can point at ``span_server_error_ratio``).

Per service (its server and consumer spans, and root spans):

- ``span_server_requests_per_second{service}``
- ``span_server_error_ratio{service}`` (spans with status ``error`` / all)
- ``span_server_duration_seconds{service, quantile="0.5"|"0.95"|"0.99"}``

Per call edge, client service -> server service (a client or producer span and its server
child in the same trace; without a child, the server the span names in ``peer.service``),
seen from the client, so the client's waiting is told apart from its own work:

- ``span_client_requests_per_second{service=<client>, server}``
- ``span_client_error_ratio{service=<client>, server}`` (either side failed)
- ``span_client_duration_seconds{service=<client>, server, quantile}``

A minute is derived once it is ``grace_s`` older than the newest span (late spans after
that are not counted: the same trade the connectors make with their flush interval); the
derived points and the watermark are committed in one batch, so a restart neither repeats
nor skips a minute. Minutes without spans give no point (not a zero rate).

The edges also go to ``learned_edges`` (first and last seen), which :func:`learned_topology`
turns into topology items for services the declared topology does not list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TypeVar

import numpy as np

from core.batch import WriteBatch
from core.model import ConfigurationItem
from core.store import Store
from ingest.points import PointsBuilder

__all__ = ["PROGRESS_NAME", "QUANTILES", "SpanDeriver", "learned_topology", "merge_topology"]

#: The ``detector_progress`` row that holds the derived watermark (microseconds, a minute edge).
PROGRESS_NAME = "span_metrics"
QUANTILES = (0.5, 0.95, 0.99)
MINUTE_US = 60_000_000
K = TypeVar("K")
_SERVER_KINDS = "('server', 'consumer')"
_CLIENT_KINDS = "('client', 'producer')"


@dataclass(frozen=True, slots=True)
class DeriveResult:
    """What one round derived: the minutes ``[start_us, end_us)``, points written, edges seen."""

    start_us: int
    end_us: int
    points: int
    edges: int


class SpanDeriver:
    """Derive closed minutes of spans into series (see the module docstring).

    ``submit`` commits a batch and returns once it is durable (the live server passes the
    ingest queue, so detection sees the points as it sees any ingest; a replay passes
    ``store.write``). ``max_minutes`` bounds one round so a large backlog is derived in steps.
    """

    def __init__(
        self,
        store: Store,
        submit: Callable[[WriteBatch], object] | None = None,
        *,
        grace_s: float = 60.0,
        max_minutes: int = 60,
    ) -> None:
        self.store = store
        self._submit = submit or store.write
        self.grace_us = int(grace_s * 1_000_000)
        self.max_minutes = max_minutes
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after a round that learned a call edge not seen before."""
        self._listeners.append(listener)

    def watermark(self) -> int | None:
        """The first minute (microseconds) not derived yet, or None before the first round."""
        rows = self.store.query("SELECT watermark FROM detector_progress WHERE name = ?", [PROGRESS_NAME])
        return int(rows[0][0]) if rows else None

    def step(self) -> bool:
        """Derive the next closed minutes; True when more closed minutes remain."""
        with self._lock:
            result = self._derive_next()
        return result is not None and result.end_us < self._closed_until()

    def run_pending(self) -> list[DeriveResult]:
        """Derive every closed minute now (replay and tests)."""
        done = []
        with self._lock:
            while (result := self._derive_next()) is not None:
                done.append(result)
        return done

    # ------------------------------------------------------------------ internals

    def _closed_until(self) -> int:
        row = self.store.query("SELECT epoch_us(max(start_ts)) FROM spans")
        newest = row[0][0] if row else None
        if newest is None:
            return 0
        return (int(newest) - self.grace_us) // MINUTE_US * MINUTE_US

    def _derive_next(self) -> DeriveResult | None:
        closed = self._closed_until()
        start = self.watermark()
        if start is None:
            row = self.store.query("SELECT epoch_us(min(start_ts)) FROM spans")
            if not row or row[0][0] is None:
                return None
            start = int(row[0][0]) // MINUTE_US * MINUTE_US
        if start >= closed:
            return None
        end = min(closed, start + self.max_minutes * MINUTE_US)
        builder = PointsBuilder()
        self._services(builder, start, end)
        edges = self._edges(builder, start, end)
        series, table = builder.build()
        batch = WriteBatch(
            source="span_metrics",
            series=series if series.num_rows else None,
            points=table if table.num_rows else None,
            samples=table.num_rows,
            detect_progress=(PROGRESS_NAME, end),
        )
        self._submit(batch)
        if edges and self._remember_edges(edges):
            for listener in self._listeners:
                listener()
        return DeriveResult(start, end, table.num_rows, len(edges))

    def _services(self, builder: PointsBuilder, start: int, end: int) -> int:
        table = self.store.arrow(
            "SELECT service, epoch_us(time_bucket(INTERVAL 1 minute, start_ts)) AS minute, count(*) AS n, "
            "count(*) FILTER (WHERE status = 'error') AS errors, "
            f"quantile_cont(duration_us, {list(QUANTILES)}) AS q "
            "FROM spans WHERE start_ts >= make_timestamp(?) AND start_ts < make_timestamp(?) "
            f"AND (kind IN {_SERVER_KINDS} OR coalesce(parent_span_id, '') = '') "
            "GROUP BY ALL ORDER BY service, minute",
            [start, end],
        )
        if not table.num_rows:
            return 0
        for key, rows in _groups(table.column("service").to_pylist()):
            ts, n, errors, q = _columns(table, rows)
            labels = (("service", key),)
            builder.add("span_server_requests_per_second", labels, ts, n / 60.0, "gauge", "1/s")
            builder.add("span_server_error_ratio", labels, ts, errors / n, "gauge", "1")
            for j, quantile in enumerate(QUANTILES):
                builder.add(
                    "span_server_duration_seconds",
                    (("quantile", _fmt(quantile)), ("service", key)),
                    ts,
                    q[:, j] / 1e6,
                    "gauge",
                    "s",
                )
        return int(table.num_rows)

    def _edges(self, builder: PointsBuilder, start: int, end: int) -> list[tuple[str, str, int, int]]:
        table = self.store.arrow(
            "SELECT c.service AS client, coalesce(s.service, c.peer_service) AS server, "
            "epoch_us(time_bucket(INTERVAL 1 minute, c.start_ts)) AS minute, count(*) AS n, "
            "count(*) FILTER (WHERE c.status = 'error' OR s.status = 'error') AS errors, "
            f"quantile_cont(c.duration_us, {list(QUANTILES)}) AS q "
            "FROM spans c LEFT JOIN spans s ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id "
            f"AND s.kind IN {_SERVER_KINDS} "
            "AND s.start_ts >= make_timestamp(?) - INTERVAL 10 minute "
            "AND s.start_ts < make_timestamp(?) + INTERVAL 10 minute "
            f"WHERE c.kind IN {_CLIENT_KINDS} "
            "AND c.start_ts >= make_timestamp(?) AND c.start_ts < make_timestamp(?) "
            "AND coalesce(s.service, c.peer_service) IS NOT NULL "
            "AND coalesce(s.service, c.peer_service) <> c.service "
            "GROUP BY ALL ORDER BY client, server, minute",
            [start, end, start, end],
        )
        if not table.num_rows:
            return []
        keys = list(zip(table.column("client").to_pylist(), table.column("server").to_pylist(), strict=True))
        seen: list[tuple[str, str, int, int]] = []
        for (client, server), rows in _groups(keys):
            ts, n, errors, q = _columns(table, rows)
            labels = (("server", server), ("service", client))
            builder.add("span_client_requests_per_second", labels, ts, n / 60.0, "gauge", "1/s")
            builder.add("span_client_error_ratio", labels, ts, errors / n, "gauge", "1")
            for j, quantile in enumerate(QUANTILES):
                builder.add(
                    "span_client_duration_seconds",
                    (("quantile", _fmt(quantile)), ("server", server), ("service", client)),
                    ts,
                    q[:, j] / 1e6,
                    "gauge",
                    "s",
                )
            seen.append((client, server, int(ts[0]), int(ts[-1]) + MINUTE_US))
        return seen

    def _remember_edges(self, edges: Sequence[tuple[str, str, int, int]]) -> bool:
        """Upsert the edges (idempotent: first and last seen only); True when one was new."""
        with self.store.transaction() as con:
            before = con.execute("SELECT count(*) FROM learned_edges").fetchone()
            con.executemany(
                "INSERT INTO learned_edges VALUES (?, ?, make_timestamp(?), make_timestamp(?)) "
                "ON CONFLICT (client, server) DO UPDATE SET "
                "first_seen = least(learned_edges.first_seen, excluded.first_seen), "
                "last_seen = greatest(learned_edges.last_seen, excluded.last_seen)",
                [list(edge) for edge in edges],
            )
            after = con.execute("SELECT count(*) FROM learned_edges").fetchone()
        return bool(before and after and after[0] > before[0])


def learned_topology(store: Store) -> list[ConfigurationItem]:
    """The call graph learned from spans, one item per calling service (``attributes.learned``)."""
    rows = store.query(
        "SELECT client, list(server ORDER BY server), max(last_seen) FROM learned_edges GROUP BY client ORDER BY client"
    )
    servers = {s for _, deps, _ in rows for s in deps}
    items = [
        ConfigurationItem(
            name=client,
            depends_on=tuple(deps),
            attributes={
                "learned": True,
                "last_seen": last.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
            },
        )
        for client, deps, last in rows
    ]
    callers = {client for client, _, _ in rows}
    items += [ConfigurationItem(name=s, attributes={"learned": True}) for s in sorted(servers - callers)]
    return items


def merge_topology(
    declared: Sequence[ConfigurationItem], learned: Sequence[ConfigurationItem]
) -> list[ConfigurationItem]:
    """The declared topology, plus learned services it does not list (a declared service wins).

    >>> d = [ConfigurationItem("web", depends_on=("api",))]
    >>> l = [ConfigurationItem("web", depends_on=("cache",)), ConfigurationItem("api", depends_on=("db",))]
    >>> [(i.name, i.depends_on) for i in merge_topology(d, l)]
    [('api', ('db',)), ('web', ('api',))]
    """
    names = {item.name for item in declared}
    merged = list(declared) + [item for item in learned if item.name not in names]
    return sorted(merged, key=lambda item: item.name)


# ---------------------------------------------------------------------- helpers


def _groups(keys: Sequence[K]) -> list[tuple[K, np.ndarray]]:
    """Row indices of each run of equal keys (the query orders by key)."""
    out: list[tuple[K, np.ndarray]] = []
    begin = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[begin]:
            out.append((keys[begin], np.arange(begin, i)))
            begin = i
    return out


def _columns(table: object, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    part = table.take(rows)  # type: ignore[attr-defined]
    ts = part.column("minute").to_numpy().astype(np.int64)
    n = part.column("n").to_numpy().astype(np.float64)
    errors = part.column("errors").to_numpy().astype(np.float64)
    q = np.asarray(part.column("q").to_pylist(), dtype=np.float64).reshape(len(rows), len(QUANTILES))
    return ts, n, errors, q


def _fmt(q: float) -> str:
    return f"{q:g}"
