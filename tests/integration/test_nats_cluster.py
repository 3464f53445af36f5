"""Cluster mode against a real NATS JetStream: a front end, two partition workers, one killed mid-stream.

Every point a client got a 2xx for ends up in exactly one worker's store exactly once, even
when a worker is SIGKILLed while batches are in flight and started again; a stream that is
full answers 429.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from core.store import Store
from tests.conftest import free_port
from tests.integration.processes import OpsloopServer, Process, opsloop_command, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 4
T0_NS = 1_714_521_600_000_000_000


def nats_server() -> str:
    path = shutil.which("nats-server")
    if path is None:
        pytest.skip("nats-server not installed: run `make integration-deps` (apt-get install nats-server)")
    return path


def otlp_body(request: int, series: int = 40) -> bytes:
    """One OTLP/JSON request: ``series`` gauges, one point each at this request's minute."""
    points = [
        {"asDouble": float(request * 1000 + s), "timeUnixNano": str(T0_NS + request * 60_000_000_000),
         "attributes": [{"key": "host", "value": {"stringValue": f"h{s}"}}]}
        for s in range(series)
    ]  # fmt: skip
    return json.dumps(
        {"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                              "scopeMetrics": [{"metrics": [{"name": "queue.depth", "gauge": {"dataPoints": points}}]}]}]}
    ).encode()  # fmt: skip


def stored_points(db: Path) -> tuple[int, int]:
    """(points, distinct (series, ts)) in a stopped worker's store."""
    with Store(str(db)) as store:
        row = store.query("SELECT count(*), count(DISTINCT (series_id, ts)) FROM points")[0]
    return int(row[0]), int(row[1])


def test_acknowledged_points_survive_a_killed_worker_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    nats = Process(
        "nats-server",
        [nats_server(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
        tmp_path / "nats.log",
    )
    nats.start()
    url = f"nats://127.0.0.1:{port}"
    env = {
        **os.environ,
        "OPSLOOP_BUS": url,
        "OPSLOOP_BUS_PARTITIONS": str(PARTITIONS),
        "OPSLOOP_LOG_LEVEL": "warning",
    }
    front = OpsloopServer(tmp_path / "front.duckdb", free_port(), tmp_path / "front.log", env)
    workers = [
        Process(
            f"worker-{i}",
            [*opsloop_command(), "worker", "--partitions", parts, "--db", str(tmp_path / f"w{i}.duckdb")],
            tmp_path / f"w{i}.log",
            env,
        )
        for i, parts in enumerate(("0-1", "2-3"))
    ]
    with Store(str(tmp_path / "front.duckdb")) as store:  # the front end's own file: tokens only
        token = store.create_token(["ingest"], "cluster test")
    try:
        wait_for("nats-server", lambda: nats.alive() and port_open(port), timeout=15)
        front.start()
        for w in workers:
            w.start()
        sent = 0
        with httpx.Client(base_url=front.url, headers={"Authorization": f"Bearer {token}",
                                                       "Content-Type": "application/json"}, timeout=30) as c:  # fmt: skip
            for r in range(60):
                if r == 20:
                    workers[1].kill()  # mid-stream: its unacknowledged messages are redelivered later
                if r == 40:
                    workers[1].start()
                resp = c.post("/v1/metrics", content=otlp_body(r))
                assert resp.status_code == 200, resp.text
                sent += 40
            # a redelivered request (same body, same digest) is not stored twice
            assert c.post("/v1/metrics", content=otlp_body(5)).status_code == 200
        # wait until the workers drained the stream: their consumers have nothing pending
        wait_for("workers to drain", lambda: drained(url), timeout=60, every=0.5)
        for w in workers:
            assert w.stop(), w.tail()
        counts = [stored_points(tmp_path / f"w{i}.duckdb") for i in range(2)]
        assert sum(n for n, _ in counts) == sent
        assert all(n == distinct for n, distinct in counts)  # nothing twice
        assert all(n > 0 for n, _ in counts)  # both workers own series
    finally:
        for w in workers:
            w.kill()
        front.kill()
        nats.kill()


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def drained(url: str) -> bool:
    import asyncio

    import nats as nats_client
    from nats.js.errors import NotFoundError

    async def pending() -> int:
        nc = await nats_client.connect(url)
        try:
            js = nc.jetstream()
            total = 0
            for p in range(PARTITIONS):
                try:
                    info = await js.consumer_info("OPSLOOP", f"opsloop-p{p}")
                except NotFoundError:  # its worker has not subscribed yet
                    return -1
                total += info.num_pending + info.num_ack_pending
            return total
        finally:
            await nc.close()

    return asyncio.run(pending()) == 0


def test_a_full_stream_answers_429_with_retry_after(tmp_path: Path) -> None:
    port = free_port()
    nats = Process(
        "nats-server",
        [nats_server(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
        tmp_path / "nats.log",
    )
    nats.start()
    env = {**os.environ, "OPSLOOP_BUS": f"nats://127.0.0.1:{port}", "OPSLOOP_BUS_MAX_BYTES": str(1 << 20),
           "OPSLOOP_LOG_LEVEL": "warning"}  # fmt: skip
    with Store(str(tmp_path / "front.duckdb")) as store:
        token = store.create_token(["ingest"], "cluster test")
    front = OpsloopServer(tmp_path / "front.duckdb", free_port(), tmp_path / "front.log", env)
    try:
        wait_for("nats-server", lambda: nats.alive() and port_open(port), timeout=15)
        front.start()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=front.url, headers=headers, timeout=30) as c:
            codes = []
            for r in range(100):  # no worker consumes: the stream fills up
                resp = c.post("/v1/metrics", content=otlp_body(r, series=2000))
                codes.append(resp.status_code)
                if resp.status_code != 200:
                    break
        assert codes[0] == 200 and codes[-1] == 429, codes
        assert float(resp.headers["retry-after"]) > 0
    finally:
        front.kill()
        nats.kill()
