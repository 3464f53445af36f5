"""Ingest throughput per path, each against the physical anchor measured in the same run.

The anchor is the fastest a store can possibly take points: one DuckDB ``INSERT ... SELECT``
of a ready Arrow table with the points schema into a fresh table on the same disk. Every
path is reported in points per second and as a ratio to that anchor:

- ``bulk_parquet``, ``bulk_csv``: ``ingest.files.FileIngester`` on a long-format file
  (ts, name, labels JSON, value), in process;
- ``remote_write_http``, ``otlp_json_http``, ``otlp_protobuf_http``, ``otlp_traces_protobuf_http``
  (spans counted as points), ``cloudevents_http``:
  a real ``opsloop serve`` in its own process (uvicorn, 127.0.0.1, a temp database, auth
  on), fed by concurrent client threads in this process with distinct, realistic batches
  built before the clock starts. A point counts once the server acknowledged it (2xx means
  committed); afterwards the database is opened and the stored rows must match.

Shapes: remote-write alternates 5,000 series x 1 sample and 500 series x 10 samples
(Prometheus-like labels, ~10% zero values, the same series every request with advancing
timestamps); OTLP sends 5,000 gauge points per request (50 metrics x 100 attribute sets);
CloudEvents sends 500-event batches.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import cramjam
import duckdb
import httpx
import numpy as np
import pyarrow as pa

from core.batch import POINTS_SCHEMA
from core.store import Store
from ingest.protowire import varint as _varint

__all__ = ["FULL", "PATHS", "QUICK", "BenchResult", "PathResult", "Sizes", "run_ingest_bench"]

PATHS = (
    "bulk_parquet",
    "bulk_csv",
    "remote_write_http",
    "otlp_json_http",
    "otlp_protobuf_http",
    "otlp_traces_protobuf_http",
    "cloudevents_http",
)
T0_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
STEP_MS = 15_000


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each path sends; HTTP paths also stop at ``http_seconds`` of sending."""

    anchor_rows: int
    bulk_rows: int
    bulk_series: int
    rw_requests: int  # per remote-write shape
    otlp_requests: int
    ce_requests: int
    http_seconds: float
    clients: int = 3
    anchor_repeats: int = 3


FULL = Sizes(
    anchor_rows=1_000_000,
    bulk_rows=1_000_000,
    bulk_series=5_000,
    rw_requests=200,
    otlp_requests=200,
    ce_requests=400,
    http_seconds=20.0,
    clients=4,
)
QUICK = Sizes(
    anchor_rows=20_000,
    bulk_rows=20_000,
    bulk_series=500,
    rw_requests=3,
    otlp_requests=3,
    ce_requests=3,
    http_seconds=5.0,
    clients=2,
    anchor_repeats=1,
)


@dataclass(slots=True)
class PathResult:
    """What one path did: points acknowledged, seconds of wall time, and how it was fed."""

    points: int = 0
    seconds: float = 0.0
    shape: str = ""
    missing: str = ""  # why the path could not run (its module is absent)

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class BenchResult:
    """The anchor and every path; ``as_dict`` is the public JSON contract."""

    raw_arrow_rows_per_s: float
    anchor_rows: int
    raw_arrow_long_rows_per_s: float = 0.0
    paths: dict[str, PathResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``{"raw_arrow_rows_per_s": N, "paths": {path: {"points_per_s": N, "ratio_to_raw": r}}}``.

        Extensions beside the contract: ``raw_arrow_long_rows_per_s`` (the second anchor: the
        same rows inserted as they stand in a long-format file, strings on every row) and a
        ``shape`` per path saying what was sent.
        """
        raw = self.raw_arrow_rows_per_s
        paths: dict[str, Any] = {}
        for name in PATHS:
            res = self.paths.get(name, PathResult(missing="not run"))
            if res.missing:
                paths[name] = {"points_per_s": None, "ratio_to_raw": None, "missing": res.missing}
            else:
                pps = res.points_per_s
                paths[name] = {
                    "points_per_s": round(pps, 1),
                    "ratio_to_raw": round(pps / raw, 4),
                    "shape": res.shape,
                }
        return {
            "raw_arrow_rows_per_s": round(raw, 1),
            "raw_arrow_long_rows_per_s": round(self.raw_arrow_long_rows_per_s, 1),
            "paths": paths,
        }


Progress = Callable[[str], None]


def run_ingest_bench(
    quick: bool = False,
    *,
    sizes: Sizes | None = None,
    paths: Sequence[str] = PATHS,
    progress: Progress | None = None,
) -> BenchResult:
    """Measure the anchor, then every path in ``paths``; return the figures."""
    sizes = sizes or (QUICK if quick else FULL)
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp:
        work = Path(tmp)
        say(f"anchor: raw Arrow insert of {sizes.anchor_rows:,} rows")
        result = BenchResult(
            raw_arrow_rows_per_s=_anchor(work, sizes),
            anchor_rows=sizes.anchor_rows,
            raw_arrow_long_rows_per_s=_anchor_long(work, sizes),
        )
        runners: dict[str, Callable[[Path, Sizes], PathResult]] = {
            "bulk_parquet": lambda w, s: _bulk(w, s, "parquet"),
            "bulk_csv": lambda w, s: _bulk(w, s, "csv"),
            "remote_write_http": _remote_write,
            "otlp_json_http": lambda w, s: _otlp(w, s, protobuf=False),
            "otlp_protobuf_http": lambda w, s: _otlp(w, s, protobuf=True),
            "otlp_traces_protobuf_http": _otlp_traces,
            "cloudevents_http": _cloudevents,
        }
        for name in paths:
            missing = _missing_module(name)
            if missing:
                result.paths[name] = PathResult(missing=missing)
                say(f"{name}: missing ({missing})")
                continue
            say(f"{name} ...")
            path_dir = work / name
            path_dir.mkdir()
            result.paths[name] = runners[name](path_dir, sizes)
            say(f"{name}: {result.paths[name].points_per_s:,.0f} points/s")
    return result


_NEEDS = {
    "bulk_parquet": "ingest.files",
    "bulk_csv": "ingest.files",
    "remote_write_http": "ingest.remote_write",
    "otlp_json_http": "ingest.otlp",
    "otlp_protobuf_http": "ingest.otlp",
    "otlp_traces_protobuf_http": "ingest.traces",
    "cloudevents_http": "ingest.cloudevents",
}


def _missing_module(path: str) -> str:
    module = _NEEDS[path]
    return "" if find_spec(module) is not None else f"{module} is not available"


# --------------------------------------------------------------------------- anchor


def _points_arrow(rows: int, series: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = (np.arange(rows) % series).astype(np.uint64) + np.uint64(1 << 40)
    ts_us = (T0_MS + (np.arange(rows) // series) * STEP_MS) * 1000
    return pa.Table.from_arrays(
        [
            pa.array(ids, pa.uint64()),
            pa.array(ts_us, pa.int64()).cast(pa.timestamp("us")),
            pa.array(rng.normal(100.0, 10.0, rows), pa.float64()),
        ],
        schema=POINTS_SCHEMA,
    )


def _anchor(work: Path, sizes: Sizes) -> float:
    """Best of a few raw inserts of a ready Arrow table into a fresh on-disk points table."""
    table = _points_arrow(sizes.anchor_rows, max(1, sizes.bulk_series))
    best = 0.0
    for i in range(sizes.anchor_repeats):
        con = duckdb.connect(str(work / f"anchor{i}.duckdb"))
        try:
            con.execute(
                "CREATE TABLE points (series_id UBIGINT NOT NULL, ts TIMESTAMP NOT NULL, value DOUBLE)"
            )
            con.register("arrow_points", table)
            start = time.perf_counter()
            con.execute("BEGIN")
            con.execute("INSERT INTO points SELECT * FROM arrow_points")
            con.execute("COMMIT")
            best = max(best, table.num_rows / (time.perf_counter() - start))
        finally:
            con.close()
    return best


def _anchor_long(work: Path, sizes: Sizes) -> float:
    """Best of a few raw inserts of the bulk files' long-format rows (name and labels as text)."""
    long_rows = _long_table(sizes.bulk_rows, sizes.bulk_series)
    best = 0.0
    for i in range(sizes.anchor_repeats):
        con = duckdb.connect(str(work / f"anchor_long{i}.duckdb"))
        try:
            con.execute("CREATE TABLE samples (ts TIMESTAMPTZ, name VARCHAR, labels VARCHAR, value DOUBLE)")
            start = time.perf_counter()
            con.execute("BEGIN")
            con.execute("INSERT INTO samples SELECT * FROM long_rows")
            con.execute("COMMIT")
            best = max(best, long_rows.num_rows / (time.perf_counter() - start))
        finally:
            con.close()
    return best


# --------------------------------------------------------------------------- bulk files


def _long_table(rows: int, series: int) -> pa.Table:
    rng = np.random.default_rng(7)
    which = np.arange(rows) % series
    names = np.asarray([f"node_metric_{i % 40}" for i in range(series)], dtype=object)
    labels = np.asarray(
        [
            json.dumps(
                {"instance": f"host-{i % 500}:9100", "job": "node", "service": f"svc-{i % 50}", "i": str(i)}
            )
            for i in range(series)
        ],
        dtype=object,
    )
    ts = pa.array((T0_MS + (np.arange(rows) // series) * STEP_MS) * 1000, pa.int64()).cast(
        pa.timestamp("us", "UTC")
    )
    return pa.table(
        {
            "ts": ts,
            "name": pa.array(names[which], pa.string()),
            "labels": pa.array(labels[which], pa.string()),
            "value": rng.normal(100.0, 10.0, rows),
        }
    )


def _bulk(work: Path, sizes: Sizes, fmt: str) -> PathResult:
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from ingest.files import FileIngester

    table = _long_table(sizes.bulk_rows, sizes.bulk_series)
    path = work / f"points.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        rfc3339 = pc.strftime(table.column("ts"), format="%Y-%m-%dT%H:%M:%SZ")
        pa_csv.write_csv(table.set_column(0, "ts", rfc3339), path)
    with Store(str(work / "bulk.duckdb")) as store, FileIngester(store) as ingester:
        start = time.perf_counter()
        summary = ingester.ingest([str(path)])
        seconds = time.perf_counter() - start
        if summary.errors:
            raise RuntimeError(f"bulk {fmt} ingest failed: {summary.errors}")
        stored = store.query("SELECT count(*) FROM points")[0][0]
    if stored != sizes.bulk_rows:
        raise RuntimeError(f"bulk {fmt}: {stored} points stored, expected {sizes.bulk_rows}")
    shape = f"{sizes.bulk_rows:,} rows x {sizes.bulk_series:,} series, one file"
    return PathResult(points=summary.rows, seconds=seconds, shape=shape)


# --------------------------------------------------------------------------- HTTP server


@dataclass(frozen=True, slots=True)
class _Server:
    url: str
    token: str
    db: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(work: Path) -> Iterator[_Server]:
    """Run ``opsloop serve`` in a child process on a fresh database with an ingest token."""
    db = str(work / "server.duckdb")
    with Store(db) as store:
        token = store.create_token(["ingest", "read"], "bench")
    port = _free_port()
    log = (work / "server.log").open("wb")
    env = dict(os.environ, OPSLOOP_LOG_LEVEL="warning")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from api.cli import main; main()", "serve", "--db", db, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready in 60 s")
            time.sleep(0.1)
        yield _Server(url, token, db)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # graceful: commit what is queued, close the store
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@dataclass(frozen=True, slots=True)
class _Request:
    body: bytes
    points: int


def _send(
    server: _Server,
    endpoint: str,
    headers: dict[str, str],
    requests: list[_Request],
    sizes: Sizes,
    warmup: int,
) -> tuple[int, float, int]:
    """Send warm-up requests, then the rest from concurrent clients; return (points, seconds, acked total)."""
    auth = {"Authorization": f"Bearer {server.token}", **headers}
    acked = 0
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
        for req in requests[:warmup]:
            _post(client, endpoint, req)
            acked += req.points
    timed = requests[warmup:]
    lock = threading.Lock()
    cursor = iter(timed)
    done_points = [0]
    errors: list[BaseException] = []
    stop_at = time.perf_counter() + sizes.http_seconds

    def worker() -> None:
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
            while time.perf_counter() < stop_at:
                with lock:
                    req = next(cursor, None)
                if req is None:
                    return
                try:
                    _post(client, endpoint, req)
                except BaseException as exc:  # reported after the threads stop
                    errors.append(exc)
                    return
                with lock:
                    done_points[0] += req.points

    threads = [threading.Thread(target=worker) for _ in range(sizes.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{endpoint}: {errors[0]}") from errors[0]
    return done_points[0], seconds, acked + done_points[0]


def _post(client: httpx.Client, endpoint: str, req: _Request) -> None:
    for _ in range(100):
        r = client.post(endpoint, content=req.body)
        if r.status_code in (429, 503):  # backpressure: wait as told, send again
            time.sleep(float(r.headers.get("retry-after", "0.2")))
            continue
        if r.status_code >= 300:
            raise RuntimeError(f"POST {endpoint} -> {r.status_code}: {r.text[:300]}")
        return
    raise RuntimeError(f"POST {endpoint}: still refused after 100 tries")


def _check_stored(db: str, sql: str, expected: int, what: str) -> None:
    with Store(db) as store:
        stored = store.query(sql)[0][0]
    if stored != expected:
        raise RuntimeError(f"{what}: {stored} rows stored, {expected} acknowledged")


# --------------------------------------------------------------------------- remote write


def _remote_write_bodies(series: int, samples: int, requests: int, seed: int) -> list[_Request]:
    """Snappy WriteRequests of the same series with advancing timestamps (protobuf-encoded parts)."""
    from ingest.remote_write import MESSAGES

    time_series, sample_msg = MESSAGES["TimeSeries"], MESSAGES["Sample"]
    label_sets = []
    for i in range(series):
        ts = time_series()
        labels = {
            "__name__": f"node_metric_{i % 60}_total",
            "cpu": str(i % 8),
            "instance": f"host-{i // 60 % 500}.prod.example.com:9100",
            "job": "node",
            "mode": ("idle", "user", "system", "iowait")[i % 4],
            "region": "eu-west-1",
            "series": str(i),
        }
        for k in sorted(labels):
            ts.labels.add(name=k, value=labels[k])
        label_sets.append(ts.SerializeToString())
    rng = np.random.default_rng(seed)
    out = []
    for r in range(requests):
        values = np.round(rng.gamma(2.0, 50.0, (series, samples)), 3)
        values[rng.random((series, samples)) < 0.1] = 0.0
        base = T0_MS + r * samples * STEP_MS
        parts = []
        for i in range(series):
            body = label_sets[i] + b"".join(
                b"\x12" + _varint(len(s)) + s
                for s in (
                    sample_msg(value=float(values[i, j]), timestamp=base + j * STEP_MS).SerializeToString()
                    for j in range(samples)
                )
            )
            parts.append(b"\x0a" + _varint(len(body)) + body)
        out.append(_Request(bytes(cramjam.snappy.compress_raw(b"".join(parts))), series * samples))
    return out


def _remote_write(work: Path, sizes: Sizes) -> PathResult:
    from ingest.remote_write import REQUEST_HEADERS

    headers = {**REQUEST_HEADERS, "User-Agent": "opsloop-bench/1"}
    points = acked = 0
    seconds = 0.0
    each = []
    with _server(work) as server:
        for n, (series, samples) in enumerate(((5_000, 1), (500, 10))):
            reqs = _remote_write_bodies(series, samples, sizes.rw_requests + 2, seed=n)
            p, s, a = _send(server, "/api/v1/write", headers, reqs, sizes, warmup=2)
            points, seconds, acked = points + p, seconds + s, acked + a
            each.append(f"{series:,} series x {samples}: {p / s:,.0f}/s")
    # the server also stores ``:rate`` series it derives from counters: count what was sent
    sent = "SELECT count(*) FROM points JOIN series USING (series_id) WHERE series.name NOT LIKE '%:rate'"
    _check_stored(server.db, sent, acked, "remote_write")
    return PathResult(points, seconds, f"{'; '.join(each)}; {sizes.clients} clients")


# --------------------------------------------------------------------------- OTLP


def _otlp_bodies(requests: int, protobuf: bool) -> list[_Request]:
    """ExportMetricsServiceRequests of 5,000 gauge points (50 metrics x 100 attribute sets)."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    metrics, sets = 50, 100
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    kv = rm.resource.attributes.add(key="service.name")
    kv.value.string_value = "checkout"
    scope = rm.scope_metrics.add()
    scope.scope.name = "opsloop-bench"
    for m in range(metrics):
        metric = scope.metrics.add(name=f"app.metric_{m}", unit="1")
        for s in range(sets):
            dp = metric.gauge.data_points.add(time_unix_nano=1, as_double=1.0)
            for key, value in (("host", f"host-{s}"), ("region", "eu-west-1"), ("pod", f"pod-{s % 7}")):
                a = dp.attributes.add(key=key)
                a.value.string_value = value
    rng = np.random.default_rng(3)
    template = json_format.MessageToDict(req)
    out = []
    for r in range(requests):
        ns = (T0_MS + r * STEP_MS) * 1_000_000
        values = rng.gamma(2.0, 50.0, metrics * sets)
        if protobuf:
            k = 0
            for metric in scope.metrics:
                for dp in metric.gauge.data_points:
                    dp.time_unix_nano = ns
                    dp.as_double = float(values[k])
                    k += 1
            body = req.SerializeToString()
        else:
            k = 0
            for metric_d in template["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]:
                for dp_d in metric_d["gauge"]["dataPoints"]:
                    dp_d["timeUnixNano"] = str(ns)
                    dp_d["asDouble"] = float(values[k])
                    k += 1
            body = json.dumps(template, separators=(",", ":")).encode()
        out.append(_Request(body, metrics * sets))
    return out


def _otlp(work: Path, sizes: Sizes, protobuf: bool) -> PathResult:
    ctype = "application/x-protobuf" if protobuf else "application/json"
    reqs = _otlp_bodies(sizes.otlp_requests + 2, protobuf)
    with _server(work) as server:
        points, seconds, acked = _send(server, "/v1/metrics", {"Content-Type": ctype}, reqs, sizes, warmup=2)
    _check_stored(server.db, "SELECT count(*) FROM points", acked, "otlp")
    return PathResult(points, seconds, f"5,000 gauge points per request, {sizes.clients} clients")


# --------------------------------------------------------------------------- OTLP traces


def _otlp_trace_bodies(requests: int, per_request: int = 5_000) -> list[_Request]:
    """ExportTraceServiceRequests of 5,000 spans: 1,000 traces of 5 spans over 5 services."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    services = ("frontend", "checkout", "cart", "payment", "db")
    rng = np.random.default_rng(5)
    out = []
    for r in range(requests):
        req = ExportTraceServiceRequest()
        scopes = []
        for name in services:
            rs = req.resource_spans.add()
            kv = rs.resource.attributes.add(key="service.name")
            kv.value.string_value = name
            scopes.append(rs.scope_spans.add())
        base_ns = (T0_MS + r * STEP_MS) * 1_000_000
        durations = rng.gamma(2.0, 5e6, per_request).astype(np.int64)
        for t in range(per_request // len(services)):
            trace_id = (r * per_request + t + 1).to_bytes(16, "big")
            parent = b""
            for depth, scope in enumerate(scopes):
                span_id = ((r * per_request + t) * len(services) + depth + 1).to_bytes(8, "big")
                start = base_ns + t * 1_000_000 + depth * 10_000
                span = scope.spans.add(
                    trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=f"op-{depth}",
                    kind=2 if depth == 0 else 3, start_time_unix_nano=start,
                    end_time_unix_nano=start + int(durations[t * len(services) + depth]),
                )  # fmt: skip
                kv = span.attributes.add(key="http.route")
                kv.value.string_value = f"/api/{depth}"
                parent = span_id
        out.append(_Request(req.SerializeToString(), per_request))
    return out


def _otlp_traces(work: Path, sizes: Sizes) -> PathResult:
    reqs = _otlp_trace_bodies(sizes.otlp_requests + 2)
    with _server(work) as server:
        headers = {"Content-Type": "application/x-protobuf"}
        spans, seconds, acked = _send(server, "/v1/traces", headers, reqs, sizes, warmup=2)
    _check_stored(server.db, "SELECT count(*) FROM spans", acked, "otlp traces")
    return PathResult(spans, seconds, f"5,000 spans per request (points = spans), {sizes.clients} clients")


# --------------------------------------------------------------------------- CloudEvents


def _cloudevent_bodies(requests: int, per_batch: int = 500) -> list[_Request]:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    out = []
    for r in range(requests):
        events = [
            {
                "specversion": "1.0",
                "id": f"evt-{r}-{i}",
                "source": f"/shop/orders/{i % 20}",
                "type": "com.example.order.created",
                "time": (t0 + timedelta(milliseconds=r * per_batch + i)).isoformat().replace("+00:00", "Z"),
                "subject": f"order-{r * per_batch + i}",
                "datacontenttype": "application/json",
                "data": {"order": r * per_batch + i, "amount": round(12.5 + i % 90, 2), "currency": "EUR"},
            }
            for i in range(per_batch)
        ]
        out.append(_Request(json.dumps(events, separators=(",", ":")).encode(), per_batch))
    return out


def _cloudevents(work: Path, sizes: Sizes) -> PathResult:
    reqs = _cloudevent_bodies(sizes.ce_requests + 2)
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    with _server(work) as server:
        points, seconds, acked = _send(server, "/api/v1/events", headers, reqs, sizes, warmup=2)
    _check_stored(server.db, "SELECT count(*) FROM events", acked, "cloudevents")
    return PathResult(points, seconds, f"500 events per request, {sizes.clients} clients")
