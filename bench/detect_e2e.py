"""End-to-end detection lag: remote-write points at a fixed rate -> their bands and anomalies stored.

A real ``opsloop serve`` runs in its own process (fresh database, auth on, detection on,
the default detector). This process sends Prometheus remote-write requests of
``series`` series x 1 sample on a fixed schedule (``rate`` points per second), each built
before the clock starts. The lag of a request is the time from its 2xx (the points are
committed) until the band of one of its points can be read back over the HTTP API: a
prober polls ``GET /api/v1/series/{id}/band`` for a sample of requests. One late request
carries a spike on a few series; the time until ``GET /api/v1/anomalies`` shows one of them
is the anomaly lag.
The server's own ``opsloop_detect_lag_seconds`` histogram (commit -> output committed) is
reported beside it. Target: p99 < 1 s at 100,000 points/s.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import cramjam
import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench.ingest import _server
from core.series import series_id
from ingest.protowire import varint
from ingest.remote_write import REQUEST_HEADERS

__all__ = ["E2EResult", "run_detect_e2e"]

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 15_000
#: Series that get the spike (several: a detector may rightly hold back on any single one, e.g.
#: in a refractory period after an earlier alarm).
SPIKED = 20


@dataclass(frozen=True, slots=True)
class E2EResult:
    """Figures of one run (seconds unless named otherwise)."""

    detector: str
    target_points_per_s: float
    points_per_s: float
    series: int
    seconds: float
    points_sent: int
    points_scored: int
    probes: int
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    anomaly_lag_s: float | None
    engine_lag_mean_s: float
    engine_lag_within_1s: float  # fraction of commits whose output was committed within 1 s
    drain_s: float
    meets_target: bool

    def as_dict(self) -> dict[str, Any]:
        """The JSON contract of ``opsloop bench e2e --json``."""
        return asdict(self)


def _label_blobs(series: int) -> tuple[list[bytes], list[int]]:
    """Encoded label sections and series ids of node-exporter-like series."""
    blobs, ids = [], []
    for i in range(series):
        labels = {
            "cpu": str(i % 8),
            "instance": f"host-{i // 64 % 500}.prod.example.com:9100",
            "job": "node",
            "mode": ("idle", "user", "system", "iowait")[i % 4],
            "series": str(i),
        }
        name = f"node_metric_{i % 50}"
        blob = b""
        for k, v in sorted({"__name__": name, **labels}.items()):
            pair = b"\x0a" + varint(len(k)) + k.encode() + b"\x12" + varint(len(v)) + v.encode()
            blob += b"\x0a" + varint(len(pair)) + pair
        blobs.append(blob)
        ids.append(series_id(name, labels))
    return blobs, ids


def _bodies(series: int, requests: int, spike_at: int) -> tuple[list[bytes], list[int]]:
    """One snappy WriteRequest per step: every series, one sample; a spike on the first few series."""
    blobs, ids = _label_blobs(series)
    rng = np.random.default_rng(7)
    level = rng.uniform(10, 1000, series)
    out = []
    for r in range(requests):
        values = level + rng.normal(0, 1, series) * level * 0.01
        if r == spike_at:
            values[:SPIKED] = level[:SPIKED] * 50
        ts = varint(T0_MS + r * STEP_MS)
        parts = []
        for blob, v in zip(blobs, values.tolist(), strict=True):
            sample = b"\x09" + struct.pack("<d", v) + b"\x10" + ts
            body = blob + b"\x12" + varint(len(sample)) + sample
            parts.append(b"\x0a" + varint(len(body)) + body)
        out.append(bytes(cramjam.snappy.compress_raw(b"".join(parts))))
    return out, ids


def _engine_lag(metrics_text: str) -> tuple[float, float, float]:
    """(count, sum, count within 1 s) of the server's detection lag histogram."""
    count = total = within = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "opsloop_detect_lag_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_count"):
                count = s.value
            elif s.name.endswith("_sum"):
                total = s.value
            elif s.name.endswith("_bucket") and s.labels.get("le") == "1.0":
                within = s.value
    return count, total, within


def _metric(metrics_text: str, name: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name:
                return float(s.value)
    return 0.0


def run_detect_e2e(
    quick: bool = False,
    *,
    rate: float | None = None,
    series: int | None = None,
    seconds: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> E2EResult:
    """Run the benchmark (``quick``: 1,000 series at 10k points/s for 5 s, a smoke test)."""
    series = series or (1_000 if quick else 10_000)
    rate = rate or (10_000.0 if quick else 100_000.0)
    seconds = seconds or (5.0 if quick else 15.0)
    say = progress or (lambda _msg: None)
    warmup = 3  # requests before the clock: they create the series dictionary
    interval = series / rate
    n_timed = max(int(seconds / interval), 1)
    spike_at = warmup + int(n_timed * 0.9)  # late: past the detectors' warm-up
    say(f"building {warmup + n_timed} remote-write requests of {series:,} series")
    bodies, ids = _bodies(series, warmup + n_timed, spike_at)
    probe_every = max(1, round(0.5 / interval))  # ~2 probes per second keeps the prober light
    with TemporaryDirectory(prefix="opsloop-e2e-") as tmp, _server(Path(tmp)) as server:
        auth = {"Authorization": f"Bearer {server.token}"}
        lags: list[float] = []
        anomaly_lag: list[float] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        done = threading.Event()  # set once detection drained: probers give up then

        def probe(client: httpx.Client, r: int, acked: float) -> None:
            sid = ids[(r * 7919) % series]
            ts = (T0_MS + r * STEP_MS) / 1000
            deadline = acked + 30
            while time.perf_counter() < deadline and not done.is_set():
                got = client.get(f"/api/v1/series/{sid}/band", params={"start": str(ts), "end": str(ts)})
                if got.status_code == 200 and got.json()["points"]:
                    with lock:
                        lags.append(time.perf_counter() - acked)
                    return
                time.sleep(0.01)
            errors.append(RuntimeError(f"request {r}: band never appeared"))

        def probe_anomaly(client: httpx.Client, acked: float) -> None:
            deadline = acked + 30
            while time.perf_counter() < deadline and not done.is_set():
                got = client.get(
                    "/api/v1/anomalies", params={"series_id": [str(i) for i in ids[:SPIKED]]}
                ).json()["items"]
                if any(a["value"] > 10 * abs(a["expected"]) for a in got):
                    anomaly_lag.append(time.perf_counter() - acked)
                    return
                time.sleep(0.01)

        with (
            httpx.Client(base_url=server.url, headers={**auth, **REQUEST_HEADERS}, timeout=60) as sender,
            httpx.Client(base_url=server.url, headers=auth, timeout=60) as reader,
            ThreadPoolExecutor(4) as probes,
        ):
            say("warm-up: creating the series")
            for body in bodies[:warmup]:
                sender.post("/api/v1/write", content=body).raise_for_status()
            time.sleep(1.0)
            say(f"sending {rate:,.0f} points/s for {seconds:.0f} s")
            start = time.perf_counter()
            for i, body in enumerate(bodies[warmup:]):
                r = warmup + i
                due = start + i * interval
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                answer = sender.post("/api/v1/write", content=body)
                acked = time.perf_counter()
                if answer.status_code != 204:
                    raise RuntimeError(f"POST /api/v1/write -> {answer.status_code}: {answer.text[:200]}")
                if r == spike_at:
                    probes.submit(probe_anomaly, reader, acked)
                elif i % probe_every == 0:
                    probes.submit(probe, reader, r, acked)
            elapsed = time.perf_counter() - start
            say("waiting for detection to drain")
            drain_start = time.perf_counter()
            sent = series * (warmup + n_timed)
            scored = 0.0
            while time.perf_counter() - drain_start < 60:
                text = reader.get("/metrics").text
                scored = _metric(text, "opsloop_detect_points_scored_total")
                if scored >= sent:
                    break
                time.sleep(0.05)
            drain = time.perf_counter() - drain_start
            time.sleep(1.0)  # let the probers see the last output, then stop them
            done.set()
        if errors:
            raise RuntimeError(str(errors[0])) from errors[0]
        count, total, within = _engine_lag(text)
    arr = np.array(lags) if lags else np.array([np.nan])
    achieved = series * n_timed / elapsed
    p99 = float(np.quantile(arr, 0.99))
    from detect.default import default_detector  # what the server ran

    return E2EResult(
        detector=type(default_detector()).__name__,
        target_points_per_s=rate,
        points_per_s=achieved,
        series=series,
        seconds=elapsed,
        points_sent=sent,
        points_scored=int(scored),
        probes=len(lags),
        lag_p50_s=float(np.quantile(arr, 0.5)),
        lag_p99_s=p99,
        lag_max_s=float(arr.max()),
        anomaly_lag_s=anomaly_lag[0] if anomaly_lag else None,
        engine_lag_mean_s=total / count if count else float("nan"),
        engine_lag_within_1s=within / count if count else float("nan"),
        drain_s=drain,
        meets_target=bool(p99 < 1.0 and achieved >= 0.95 * rate and scored >= sent),
    )
