"""Diagnose speed: one incident over ``services x series_per_service`` series and an hour of data.

:func:`write_incident` builds a synthetic estate in a store (a layered call graph, ten golden-
signal series per service on a ``interval_s`` grid, INFO chatter and failure logs, deploys), a
fault on one service that propagates to its callers, and the incident the pipeline would have
opened for it. :func:`run_diagnose_speed` times :meth:`Diagnoser.diagnose` on it (median of
``rounds``). The tests reuse :func:`write_incident` with small sizes and each fault kind.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from bench.correlation_speed import estate
from core.batch import LOGS_SCHEMA, POINTS_SCHEMA, SERIES_SCHEMA, WriteBatch
from core.model import Alert, AlertStatus, Change, ChangeKind, ConfigurationItem, Incident, IncidentStatus
from core.store import Store
from core.topology import Topology
from detect.incidents import repository as repo

__all__ = ["FAULTS", "SyntheticIncident", "run_diagnose_speed", "write_incident"]

#: Fault kinds :func:`write_incident` can inject, with the hypothesis kind each implies.
FAULTS: dict[str, str] = {"cpu": "resource", "deploy": "change", "errors": "code", "slow": "dependency"}
#: (name, unit, labels, base level, relative noise) of every service's series.
_METRICS: tuple[tuple[str, str, dict[str, str], float, float], ...] = (
    ("http_server_request_duration_p99_seconds", "s", {}, 0.2, 0.08),
    ("http_server_request_count:rate", "{request}/s", {"status_class": "2xx"}, 200.0, 0.05),
    ("http_server_request_count:rate", "{request}/s", {"status_class": "5xx"}, 0.5, 0.4),
    ("process_cpu_utilization", "1", {}, 0.3, 0.08),
    ("process_memory_usage_bytes", "By", {}, 4e8, 0.01),
    ("http_client_request_duration_p99_seconds", "s", {}, 0.1, 0.08),
    ("jvm_gc_pause_seconds_p99", "s", {}, 0.02, 0.2),
    ("process_threads", "1", {}, 120.0, 0.03),
    ("db_client_connections_usage", "1", {}, 12.0, 0.1),
    ("messaging_queue_depth", "1", {}, 30.0, 0.2),
)


@dataclass(frozen=True, slots=True)
class SyntheticIncident:
    """What :func:`write_incident` built: the incident, its true root cause and fault kind."""

    incident_id: str
    root: str
    fault: str
    alarm: datetime
    services: tuple[str, ...]
    series: int
    points: int
    log_lines: int


def _sid(service: str, name: str, labels: dict[str, str]) -> int:
    return xxhash.xxh3_64_intdigest(f"{service}\x00{name}\x00{sorted(labels.items())}".encode())


def write_incident(
    store: Store,
    *,
    services: int = 50,
    minutes: int = 60,
    interval_s: int = 10,
    fault: str = "cpu",
    seed: int = 1,
    incident_id: str = "INC-1",
    start: datetime = datetime(2026, 3, 2, 10, 0),
    open_incident: bool = True,
) -> SyntheticIncident:
    """Write an estate, an hour of signals with a fault on one service, and (unless
    ``open_incident`` is false, for tests that let the pipeline open it) its open incident."""
    if fault not in FAULTS:
        raise ValueError(f"fault: expected one of {', '.join(FAULTS)}, got {fault!r}")
    rng = np.random.default_rng(seed)
    items = estate(services, seed)
    topo = Topology(items)
    names = [i.name for i in items]
    # a root deep enough that many services call it (directly or not), picked by the seed
    busiest = sorted(names, key=lambda n: (-len(topo.callers_of(n)), n))[:5]
    root = busiest[int(rng.integers(len(busiest)))]
    callers = sorted(topo.callers_of(root))
    n_points = minutes * 60 // interval_s
    alarm_idx = n_points * 3 // 4
    alarm = start + timedelta(seconds=alarm_idx * interval_s)
    ts = np.array(
        [start + timedelta(seconds=k * interval_s) for k in range(n_points)], dtype="datetime64[us]"
    )
    series_rows: list[dict[str, Any]] = []
    sids: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for name in names:
        hops = 0 if name == root else (1 if name in callers else None)
        for metric, unit, labels, level, noise in _METRICS:
            sid = _sid(name, metric, labels)
            series_rows.append({"series_id": sid, "name": metric, "labels": list({"service": name, **labels}.items()),
                                "service": name, "kind": "gauge", "unit": unit})  # fmt: skip
            v = level * (1 + noise * rng.standard_normal(n_points))
            if hops is not None:
                v[alarm_idx:] *= _effect(fault, metric, labels, hops, rng)
            sids.append(np.full(n_points, sid, dtype=np.uint64))
            values.append(np.abs(v))
    points = pa.table(
        {"series_id": np.concatenate(sids), "ts": np.tile(ts, len(values)), "value": np.concatenate(values)},
        schema=POINTS_SCHEMA,
    )
    series = pa.Table.from_pylist(series_rows, schema=SERIES_SCHEMA)
    logs = _logs(rng, names, root, callers, fault, start, alarm, minutes)
    changes = [Change(id=f"chg-{seed}-herring", service=names[-1], kind=ChangeKind.DEPLOYED,
                      ts=alarm - timedelta(minutes=25), version="v1.0.1")]  # fmt: skip
    if fault == "deploy":
        changes.append(Change(id=f"chg-{seed}-root", service=root, kind=ChangeKind.DEPLOYED,
                              ts=alarm - timedelta(minutes=2), version="v2.0.0"))  # fmt: skip
    store.write(WriteBatch(source="bench", series=series, points=points, logs=logs, changes=changes,
                           topology=list(items)))  # fmt: skip
    members = [root, *callers]
    alerts = [
        Alert(id=f"{incident_id}-a{k}", fingerprint=f"anomaly:{k:016x}", name=f"{_alert_metric(fault, s == root)} high",
              status=AlertStatus.FIRING, starts_at=alarm + timedelta(seconds=interval_s * (0 if s == root else 1 + k % 2)),
              service=s, severity="warning", source="anomaly", incident_id=incident_id)
        for k, s in enumerate(members)
    ]  # fmt: skip
    opened = alarm + timedelta(minutes=2)
    incident = Incident(id=incident_id, title=f"{root}: trouble", status=IncidentStatus.OPEN, priority="P2",
                        opened_at=opened, services=tuple(sorted(members)), alert_count=len(alerts),
                        origin_service=root, updated_at=opened + timedelta(minutes=3))  # fmt: skip
    seq = int(incident_id.rsplit("-", 1)[-1]) if incident_id.rsplit("-", 1)[-1].isdigit() else 1
    if open_incident:
        repo.save_round(store, alerts, [(incident, seq)], [], [], opened)
    return SyntheticIncident(incident_id, root, fault, alarm, tuple(sorted(members)), len(series_rows),
                             points.num_rows, logs.num_rows)  # fmt: skip


def _effect(fault: str, metric: str, labels: dict[str, str], hops: int, rng: np.random.Generator) -> float:
    """The multiplier a fault applies to one series of the root (hops 0) or a caller (hops 1)."""
    latency = metric == "http_server_request_duration_p99_seconds"
    client = metric == "http_client_request_duration_p99_seconds"
    errors = labels.get("status_class") == "5xx"
    if hops == 0:
        if fault == "cpu":
            return {"process_cpu_utilization": 3.0, "http_server_request_duration_p99_seconds": 3.0}.get(
                metric, 1.0
            )
        if fault == "slow":
            return 6.0 if latency else 1.0
        if fault in ("deploy", "errors"):
            return 30.0 if errors else (1.5 if latency else 1.0)
        return 1.0
    # callers wait on the root: their own client and server latency rise, some errors pass through
    if latency or client:
        return 2.0 if fault in ("cpu", "slow") else 1.3
    if errors:
        return 6.0 if fault in ("deploy", "errors") else 2.0
    return 1.0


def _alert_metric(fault: str, on_root: bool) -> str:
    if on_root and fault == "cpu":
        return "process_cpu_utilization"
    if fault in ("deploy", "errors"):
        return 'http_server_request_count:rate{status_class="5xx"}'
    return "http_server_request_duration_p99_seconds"


def _logs(
    rng: np.random.Generator, names: list[str], root: str, callers: list[str], fault: str, start: datetime,
    alarm: datetime, minutes: int,
) -> pa.Table:  # fmt: skip
    rows: list[tuple[datetime, str, int, str, str]] = []
    total_s = minutes * 60
    for k in range(len(names) * minutes * 2):  # background: a WARN now and then everywhere
        at = start + timedelta(seconds=float(rng.uniform(0, total_s)))
        s = names[int(rng.integers(len(names)))]
        rows.append(
            (
                at,
                s,
                13,
                "WARN",
                f"slow request {int(rng.integers(1, 999))} took {int(rng.integers(200, 900))} ms",
            )
        )
        if k % 3 == 0:
            rows.append((at, s, 9, "INFO", f"GET /api/v1/items/{int(rng.integers(1_000_000))} -> 200"))
    after = (start + timedelta(seconds=total_s) - alarm).total_seconds()
    root_text = {"cpu": "worker pool saturated: {} tasks waiting", "slow": "slow query took {} ms",
                 "deploy": "NullPointerException in handler v2 request {}", "errors": "failed to render page {}"}[fault]  # fmt: skip
    for _ in range(40):
        at = alarm + timedelta(seconds=float(rng.uniform(0, after)))
        rows.append((at, root, 17, "ERROR", root_text.format(int(rng.integers(1, 10_000)))))
    for caller in callers:
        for _ in range(10):
            at = alarm + timedelta(seconds=float(rng.uniform(0, after)))
            rows.append(
                (at, caller, 17, "ERROR", f"call to {root} failed after {int(rng.integers(100, 5000))} ms")
            )
    rows.sort()
    n = len(rows)
    return pa.table(
        {
            "ts": pa.array([r[0] for r in rows], pa.timestamp("us")),
            "observed_ts": pa.array([r[0] for r in rows], pa.timestamp("us")),
            "service": [r[1] for r in rows],
            "severity_number": pa.array([r[2] for r in rows], pa.int16()),
            "severity_text": [r[3] for r in rows],
            "body": [r[4] for r in rows],
            "attributes": ["{}"] * n,
            "resource": ["{}"] * n,
            "scope": [""] * n,
            "trace_id": [""] * n,
            "span_id": [""] * n,
        },
        schema=LOGS_SCHEMA,
    )


def run_diagnose_speed(
    services: int = 50, minutes: int = 60, interval_s: int = 10, rounds: int = 5, seed: int = 1
) -> dict[str, Any]:
    """Time one diagnosis (median of ``rounds``) over the estate :func:`write_incident` builds."""
    from diagnose.diagnoser import Diagnoser

    with tempfile.TemporaryDirectory() as tmp, Store(str(Path(tmp) / "diagnose.duckdb")) as store:
        built = write_incident(store, services=services, minutes=minutes, interval_s=interval_s, seed=seed)
        diagnoser = Diagnoser(store)
        times = []
        result = None
        for _ in range(rounds):
            started = time.perf_counter()
            result = diagnoser.diagnose(built.incident_id)
            times.append(time.perf_counter() - started)
        assert result is not None
        top = result.hypotheses[0] if result.hypotheses else None
        return {
            "series": built.series,
            "points": built.points,
            "log_lines": built.log_lines,
            "series_read": result.series,
            "log_lines_read": result.log_lines,
            "candidates": len(result.candidates),
            "median_seconds": statistics.median(times),
            "max_seconds": max(times),
            "top_hypothesis": None if top is None else {"service": top.service, "kind": top.kind.value},
            "root_cause": built.root,
            "target_seconds": 1.0,
        }


def topology_items(services: int, seed: int) -> list[ConfigurationItem]:
    """The estate :func:`write_incident` uses (for tests that need the graph)."""
    return estate(services, seed)
