"""Trace evidence: where in the traces the time and the errors start.

For each span, its *self time* is its duration minus the time its children account for
(clamped at zero), so a caller waiting on a slow callee has normal self time and the callee
does not: the deepest span whose own time is abnormal stands out, not its callers. Per
(service, operation) the window's median self time and error share are compared with a
baseline of the same operation before the alarm:

- latency deviation ``z = (median_window - median_base) / (1.4826 * MAD_base + 1 ms * 0.05)``
  (a robust z-score: BARO's idea, per operation; the floor keeps sub-millisecond operations
  from turning jitter into a signal);
- error deviation: the window's error share minus the baseline's, in percentage points / 5.

A service scores its strongest operation, ``min(1, max(z_latency, z_errors) / 10)``; only
operations with at least ``min_spans`` spans in both windows count. The evidence names the
operation, the deviation, and example trace ids (the slowest, or failing, window traces).

Everything is one SQL query over the store's ``spans`` (DuckDB does the join and the
quantiles); nothing here knows a particular estate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.store import Store

__all__ = ["TraceConfig", "TraceScore", "score_traces", "traces_of"]


@dataclass(frozen=True, slots=True)
class TraceConfig:
    """Fixed before scoring; see the module docstring."""

    baseline_s: float = 86400.0  #: a day of spans before the alarm, so quiet operations have a baseline
    slack_s: float = 60.0  #: the window starts this long before the alarm (spans lead the first bad sample)
    min_spans: int = 5
    floor_us: float = 50.0  #: 0.05 ms: the smallest spread a median is measured against
    z_full: float = 10.0  #: a deviation of this many robust sigmas scores 1
    error_points: float = 5.0  #: this many percentage points more errors score 1 sigma


@dataclass
class TraceScore:
    """One service's trace evidence: its score in [0, 1] and the operations behind it."""

    service: str
    score: float = 0.0
    operations: list[dict[str, Any]] = field(default_factory=list)


def score_traces(
    store: Store,
    candidates: Sequence[str],
    alarm: datetime,
    end: datetime,
    config: TraceConfig | None = None,
) -> dict[str, TraceScore]:
    """Trace scores for the candidate services (services with no spans are left out)."""
    cfg = config or TraceConfig()
    if not candidates:
        return {}
    rows = store.query(
        """
        WITH win AS (
            SELECT * FROM spans
            WHERE start_ts >= ?::TIMESTAMP - to_microseconds(?::BIGINT) AND start_ts < ?::TIMESTAMP
        ), child AS (
            SELECT trace_id, parent_span_id AS span_id, sum(duration_us) AS busy
            FROM win WHERE coalesce(parent_span_id, '') <> '' GROUP BY ALL
        ), own AS (
            SELECT w.service, w.operation, coalesce(w.kind, '') AS kind, w.trace_id, w.status,
                   greatest(w.duration_us - coalesce(c.busy, 0), 0) AS self_us,
                   w.start_ts >= ?::TIMESTAMP - to_microseconds(?::BIGINT) AS in_window
            FROM win w LEFT JOIN child c USING (trace_id, span_id)
            WHERE w.service IN (SELECT unnest(?::VARCHAR[]))
        ), base AS (
            SELECT service, operation, kind, median(self_us) AS med, count(*) AS n,
                   avg((status = 'error')::INT) AS err
            FROM own WHERE NOT in_window GROUP BY ALL
        ), spread AS (
            SELECT o.service, o.operation, o.kind, median(abs(o.self_us - b.med)) AS mad
            FROM own o JOIN base b USING (service, operation, kind) WHERE NOT o.in_window GROUP BY ALL
        ), now AS (
            SELECT service, operation, kind, median(self_us) AS med, count(*) AS n,
                   avg((status = 'error')::INT) AS err,
                   arg_max(trace_id, self_us, 3) AS slowest,
                   list(DISTINCT trace_id) FILTER (WHERE status = 'error')[1:3] AS failing
            FROM own WHERE in_window GROUP BY ALL
        )
        SELECT n.service, n.operation, n.kind, n.med, b.med, s.mad, n.n, b.n, n.err, b.err, n.slowest, n.failing
        FROM now n JOIN base b USING (service, operation, kind) JOIN spread s USING (service, operation, kind)
        WHERE n.n >= ? AND b.n >= ?
        """,
        [
            alarm,
            int((cfg.baseline_s + cfg.slack_s) * 1e6),
            end,
            alarm,
            int(cfg.slack_s * 1e6),
            list(candidates),
            cfg.min_spans,
            cfg.min_spans,
        ],
    )
    out: dict[str, TraceScore] = {}
    for service, operation, kind, med, base_med, mad, n, base_n, err, base_err, slowest, failing in rows:
        z_latency = (float(med) - float(base_med)) / (1.4826 * float(mad or 0.0) + cfg.floor_us)
        z_errors = 100.0 * (float(err) - float(base_err)) / cfg.error_points
        z = max(z_latency, z_errors)
        score = out.setdefault(service, TraceScore(service))
        if z <= 0:
            continue
        signal = "errors" if z_errors >= z_latency else "latency"
        examples = list(failing or []) if signal == "errors" else list(slowest or [])
        score.operations.append({
            "operation": operation, "kind": kind, "signal": signal, "z": round(z, 2),
            "self_ms": round(float(med) / 1000.0, 3), "baseline_self_ms": round(float(base_med) / 1000.0, 3),
            "error_share": round(float(err), 4), "baseline_error_share": round(float(base_err), 4),
            "spans": int(n), "baseline_spans": int(base_n), "example_traces": examples[:3],
        })  # fmt: skip
    for score in out.values():
        score.operations.sort(key=lambda op: -float(op["z"]))
        del score.operations[5:]
        top = float(score.operations[0]["z"]) if score.operations else 0.0
        score.score = min(1.0, max(top, 0.0) / cfg.z_full)
    return out


def traces_of(
    store: Store, services: Sequence[str], start: datetime, end: datetime, limit: int = 5
) -> list[dict[str, Any]]:
    """A few representative traces of ``services`` in [start, end): failing ones first, then the slowest.

    Each is ``{"trace_id", "duration_ms", "error", "services", "spans": [...]}`` with spans in
    start order (ids, parent, service, operation, kind, start, duration, status).
    """
    if not services:
        return []
    picked = store.query(
        "SELECT trace_id, max(duration_us) AS longest, bool_or(status = 'error') AS failed FROM spans "
        "WHERE start_ts >= ? AND start_ts < ? AND service IN (SELECT unnest(?::VARCHAR[])) "
        "GROUP BY trace_id ORDER BY failed DESC, longest DESC, trace_id LIMIT ?",
        [start, end, list(services), limit],
    )
    if not picked:
        return []
    ids = [r[0] for r in picked]
    spans = store.query(
        "SELECT trace_id, span_id, parent_span_id, service, operation, kind, start_ts, duration_us, status, "
        "status_message FROM spans WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY trace_id, start_ts",
        [ids],
    )
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for tid, sid, parent, service, op, kind, ts, dur, status, message in spans:
        by_trace.setdefault(tid, []).append({
            "span_id": sid, "parent_span_id": parent or None, "service": service, "operation": op,
            "kind": kind, "start": ts.isoformat(timespec="microseconds") + "Z", "duration_ms": round(dur / 1000.0, 3),
            "status": status, "status_message": message or None,
        })  # fmt: skip
    return [
        {
            "trace_id": tid,
            "duration_ms": round(longest / 1000.0, 3),
            "error": bool(failed),
            "services": sorted({s["service"] for s in by_trace.get(tid, [])}),
            "spans": by_trace.get(tid, []),
        }
        for tid, longest, failed in picked
    ]
