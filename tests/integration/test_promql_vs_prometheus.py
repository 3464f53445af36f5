"""The acceptance of the query API: the same PromQL against opsloop and a real Prometheus agrees.

A real Debian Prometheus scrapes node exporter (and itself, for a histogram) every second
and remote-writes every sample to opsloop, so both hold the *same* samples; each query is
then asked of both as a range query on the same grid and compared value by value at
every step where opsloop has received the data.

Tolerance: the samples are identical (remote-write carries Prometheus' own float64 values
and millisecond timestamps), so the only differences are floating-point ones from the
order of summation (numpy versus Go): a relative 1e-9 (plus 1e-12 absolute, for values
near zero) is many orders above that and far below any semantic difference (one sample
more or less in a 10 s window changes a rate by percent).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, free_port
from tests.integration.processes import Process, answers, wait_for
from tests.integration.test_prometheus_alertmanager import binary, write_yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REL, ABS = 1e-9, 1e-12
STEP_S = 2

#: One query per supported feature; the id names what it exercises.
QUERIES = [
    ("selector", "node_load1"),
    ("matcher-ne", 'node_cpu_seconds_total{mode!="idle"}'),
    ("matcher-re", 'node_cpu_seconds_total{mode=~"user|system"}'),
    ("matcher-nre", 'node_cpu_seconds_total{mode!~"idle|iowait|steal"}'),
    ("rate", "rate(node_cpu_seconds_total[10s])"),
    ("increase", "increase(node_network_receive_bytes_total[15s])"),
    ("irate", "irate(node_context_switches_total[10s])"),
    ("sum-by", "sum by (mode) (rate(node_cpu_seconds_total[10s]))"),
    ("avg-without", "avg without (cpu) (rate(node_cpu_seconds_total[10s]))"),
    ("max", "max(node_filesystem_avail_bytes)"),
    ("min-by", "min by (mode) (node_cpu_seconds_total)"),
    ("count", "count by (job) (up)"),
    (
        "histogram-quantile",
        "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[10s])))",
    ),
    ("vector-vector", "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100"),
    ("on", "node_filesystem_avail_bytes / on(device, mountpoint) node_filesystem_size_bytes"),
    ("scalar-left", "1 - rate(node_cpu_seconds_total{mode='idle'}[10s])"),
    ("comparison", "node_load1 >= 0"),
    ("bool", "up == bool 1"),
    ("or", "node_load1 or vector(0)"),
    ("offset", "node_load1 offset 5s"),
]


class PromStack:
    """Node exporter and Prometheus remote-writing to one opsloop server."""

    def __init__(self, opsloop: LiveServer, workdir: Path) -> None:
        self.opsloop = opsloop
        self.workdir = workdir
        self.node_port, self.prom_port = free_port(), free_port()
        self.prom_url = f"http://127.0.0.1:{self.prom_port}"
        self.processes: list[Process] = []

    def start(self) -> None:
        node_exporter = binary("prometheus-node-exporter", "node_exporter")
        prometheus = binary("prometheus")
        target = self.opsloop.url.removeprefix("http://")
        node = self._spawn(
            "node-exporter",
            [node_exporter, f"--web.listen-address=127.0.0.1:{self.node_port}", "--no-collector.systemd"],
        )
        config = write_yaml(
            self.workdir / "prometheus.yml",
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{self.node_port}"]}]},
                    {
                        "job_name": "prometheus",
                        "static_configs": [{"targets": [f"127.0.0.1:{self.prom_port}"]}],
                    },
                ],
                "remote_write": [
                    {
                        "url": f"http://{target}/api/v1/write",
                        "authorization": {"credentials": self.opsloop.token},
                        "queue_config": {
                            "batch_send_deadline": "1s",
                            "min_backoff": "100ms",
                            "max_backoff": "1s",
                        },
                    }
                ],
            },
        )
        prom = self._spawn(
            "prometheus",
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
            ],
        )
        node.wait_until("/metrics", lambda: answers(f"http://127.0.0.1:{self.node_port}/metrics"), 20)
        prom.wait_until("/-/ready", lambda: answers(f"{self.prom_url}/-/ready"), 30)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=10)

    def _spawn(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.workdir / f"{name}.log")
        self.processes.append(process)
        process.start()
        return process


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, httpx.Client, float]]:
    """(opsloop client, Prometheus client, end of the comparable span) after ~40 s of scraping."""
    from core.settings import Settings
    from tests.conftest import serving

    workdir = tmp_path_factory.mktemp("promql")
    with serving(Settings(db=str(workdir / "opsloop.duckdb"), port=free_port())) as live:
        stack = PromStack(live, workdir)
        stack.start()
        ops, prom = live.client(), httpx.Client(base_url=stack.prom_url, timeout=30)
        try:
            started = time.time()
            time.sleep(40)
            end = math.floor(time.time()) - 6  # remote-write sends within ~1 s: leave a margin
            end -= end % STEP_S
            # opsloop must hold the last scrape before ``end`` before anything is compared
            wait_for(
                "opsloop to receive the samples up to the comparison's end",
                lambda: _newest(ops, "up") >= end - 1,
                timeout=30,
                every=0.5,
            )
            assert end > started + 25, "too little data to compare"
            yield ops, prom, float(end)
        finally:
            ops.close()
            prom.close()
            stack.stop()


def _newest(client: httpx.Client, metric: str) -> float:
    """Timestamp of the newest sample of ``metric`` (an instant query of a range selector)."""
    body = client.get("/api/v1/query", params={"query": f"{metric}[30s]"}).json()
    return max((float(v[0]) for s in body["data"]["result"] for v in s["values"]), default=0.0)


def _matrix(
    client: httpx.Client, query: str, start: float, end: float
) -> dict[tuple[Any, ...], dict[float, float]]:
    r = client.get("/api/v1/query_range", params={"query": query, "start": start, "end": end, "step": STEP_S})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    assert body["data"]["resultType"] == "matrix"
    return {
        tuple(sorted(s["metric"].items())): {float(t): float(v) for t, v in s["values"]}
        for s in body["data"]["result"]
    }


def _label_sets(items: list[dict[str, str]]) -> list[tuple[tuple[str, str], ...]]:
    return sorted(tuple(sorted(s.items())) for s in items)


@pytest.mark.parametrize(("what", "query"), QUERIES, ids=[q[0] for q in QUERIES])
def test_same_promql_same_answer(
    both: tuple[httpx.Client, httpx.Client, float], what: str, query: str
) -> None:
    ops, prom, end = both
    start = end - 20  # the data began ~40 s before end; windows of up to 15 s fit inside it
    theirs = _matrix(prom, query, start, end)
    ours = _matrix(ops, query, start, end)
    assert theirs, f"Prometheus answered nothing for {query}: the comparison would be empty"
    assert set(ours) == set(theirs), f"{what}: series differ: {set(ours) ^ set(theirs)}"
    compared = 0
    for labels, values in theirs.items():
        assert set(ours[labels]) == set(values), f"{what} {labels}: steps differ"
        for t, v in values.items():
            got = ours[labels][t]
            if math.isnan(v):
                assert math.isnan(got), f"{what} {labels} @ {t}: Prometheus NaN, opsloop {got}"
                continue
            assert got == pytest.approx(v, rel=REL, abs=ABS), f"{what} {labels} @ {t}"
            compared += 1
    assert compared > 0


def test_instant_query_labels_series_and_error_shape(both: tuple[httpx.Client, httpx.Client, float]) -> None:
    ops, prom, end = both
    for client in (ops, prom):
        r = client.post(
            "/api/v1/query", data={"query": "sum(rate(node_cpu_seconds_total[10s]))", "time": end}
        )
        assert r.status_code == 200
    a = ops.post(
        "/api/v1/query", data={"query": "sum by (mode) (node_cpu_seconds_total)", "time": end}
    ).json()
    b = prom.post(
        "/api/v1/query", data={"query": "sum by (mode) (node_cpu_seconds_total)", "time": end}
    ).json()
    assert a["data"]["resultType"] == b["data"]["resultType"] == "vector"
    ours = {s["metric"]["mode"]: float(s["value"][1]) for s in a["data"]["result"]}
    theirs = {s["metric"]["mode"]: float(s["value"][1]) for s in b["data"]["result"]}
    assert ours.keys() == theirs.keys()
    assert all(ours[k] == pytest.approx(theirs[k], rel=REL) for k in ours)
    # opsloop also holds the :rate series it derives for detection: compare the scraped ones
    match = {"match[]": '{job="node", __name__=~"node_cpu.*_total"}'}
    for path in ("/api/v1/labels", "/api/v1/label/mode/values"):
        assert ops.get(path, params=match).json()["data"] == prom.get(path, params=match).json()["data"]
    series: dict[str, str | float] = {**match, "start": end - 20, "end": end}
    assert _label_sets(ops.get("/api/v1/series", params=series).json()["data"]) == _label_sets(
        prom.get("/api/v1/series", params=series).json()["data"]
    )
    bad_ours, bad_theirs = (
        ops.get("/api/v1/query", params={"query": "sum("}),
        prom.get("/api/v1/query", params={"query": "sum("}),
    )
    assert bad_ours.status_code == bad_theirs.status_code == 400
    assert set(bad_ours.json()) == set(bad_theirs.json()) == {"status", "errorType", "error"}
    assert bad_ours.json()["errorType"] == bad_theirs.json()["errorType"] == "bad_data"


def test_remote_written_series_have_kinds_and_counters_have_rates(
    both: tuple[httpx.Client, httpx.Client, float],
) -> None:
    """Counters are typed (metadata or ``_total``), and detection's ``:rate`` series exist beside them."""
    ops, _prom, end = both
    kinds = {name: entries[0]["type"] for name, entries in ops.get("/api/v1/metadata").json()["data"].items()}
    assert kinds["node_cpu_seconds_total"] == "counter"
    assert kinds["prometheus_http_request_duration_seconds_bucket"] == "histogram"
    assert kinds["node_cpu_seconds:rate"] == "gauge"
    counters = ops.get("/api/v1/series", params={"match[]": "node_cpu_seconds_total"}).json()["data"]
    rates = ops.get("/api/v1/series", params={"match[]": "{__name__='node_cpu_seconds:rate'}"}).json()["data"]
    assert {tuple(sorted((k, v) for k, v in s.items() if k != "__name__")) for s in rates} == {
        tuple(sorted((k, v) for k, v in s.items() if k != "__name__")) for s in counters
    }
    # a derived rate is the counter's sample-to-sample rate: never negative, even across resets
    body = ops.get("/api/v1/query", params={"query": "min(node_cpu_seconds:rate)", "time": end}).json()
    assert float(body["data"]["result"][0]["value"][1]) >= 0
