"""Series kinds from remote-write metadata, OTLP types and naming; rates of counters for detection."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import cramjam
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.series import series_id
from core.store import Store
from detect import repository
from ingest.otlp import decode_metrics
from ingest.rates import is_cumulative, rate_name
from ingest.remote_write import MESSAGES, RemoteWriteDecoder, encode_write_request, kind_of
from tests.conftest import LiveServer
from tests.integration.processes import wait_for

T0 = 1_700_000_000_000  # ms
RATE_ID = series_id("req:rate", {"job": "a"})


@pytest.mark.parametrize(
    ("name", "labels", "metadata", "kind"),
    [
        ("node_cpu_seconds_total", (("cpu", "0"),), {}, "counter"),
        ("http_duration_seconds_bucket", (("le", "0.5"),), {}, "histogram"),
        ("http_duration_seconds_count", (), {}, "histogram"),
        ("http_duration_seconds_sum", (), {}, "histogram"),
        ("rpc_seconds", (("quantile", "0.9"),), {}, "summary"),
        ("process_start_created", (), {}, "gauge"),
        ("node_load1", (), {}, "unknown"),
        ("node_load1", (), {"node_load1": "gauge"}, "gauge"),
        ("rpc_seconds_count", (), {"rpc_seconds": "summary"}, "summary"),
        ("weird_total", (), {"weird_total": "gauge"}, "gauge"),  # metadata beats the name
    ],
    ids=[
        "total",
        "bucket",
        "count",
        "sum",
        "quantile",
        "created",
        "plain",
        "meta-gauge",
        "meta-family",
        "meta-wins",
    ],
)
def test_kind_from_metadata_then_naming(
    name: str, labels: tuple[tuple[str, str], ...], metadata: dict[str, str], kind: str
) -> None:
    assert kind_of(name, labels, metadata) == kind


def metadata_request(families: dict[str, int]) -> bytes:
    """A metadata-only WriteRequest, as Prometheus sends every minute (type: 1 counter, 2 gauge)."""
    req = MESSAGES["WriteRequest"]()
    for name, kind in families.items():
        m = req.metadata.add()
        m.type = kind
        m.metric_family_name = name
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def test_metadata_sent_in_its_own_request_types_the_series_that_follow() -> None:
    decoder = RemoteWriteDecoder()
    decoder.decode(metadata_request({"node_load1": 2, "node_intr": 1}))
    batch = decoder.decode(
        encode_write_request(
            [({"__name__": "node_load1"}, [(T0, 0.5)]), ({"__name__": "node_intr"}, [(T0, 10.0)])]
        )
    )
    assert batch.series is not None
    kinds = dict(
        zip(batch.series.column("name").to_pylist(), batch.series.column("kind").to_pylist(), strict=True)
    )
    assert kinds == {"node_load1": "gauge", "node_intr": "counter"}


@given(
    steps=st.lists(st.tuples(st.floats(0, 1e4), st.booleans()), min_size=2, max_size=40),
    cut=st.integers(1, 39),
)
def test_rates_of_counters_match_prometheus_semantics_across_requests(
    steps: list[tuple[float, bool]], cut: int
) -> None:
    """Sample-to-sample rates with resets, the same whether the stream comes in one request or two."""
    values, v = [], 0.0
    for inc, reset in steps:
        v = inc if reset and inc < v else v + inc
        values.append(v)
    samples = [(T0 + 15_000 * i, val) for i, val in enumerate(values)]
    expected = [
        ((b if b < a else b - a) / 15.0) for a, b in pairwise(values)
    ]  # a drop is a reset: the increase is the new value
    decoder = RemoteWriteDecoder(derive_rates=True)
    cut = min(cut, len(samples) - 1)
    got: list[float] = []
    raw = 0
    for part in (samples[:cut], samples[cut:]):
        batch = decoder.decode(encode_write_request([({"__name__": "req_total", "job": "a"}, part)]))
        assert batch.points is not None
        ids = batch.points.column("series_id").to_numpy()
        got.extend(batch.points.column("value").to_numpy()[np.isin(ids, [RATE_ID])].tolist())
        raw += int((~np.isin(ids, [RATE_ID])).sum())
    assert raw == len(samples)  # the raw counter stays, for PromQL's rate()
    assert got == pytest.approx(expected)


def test_after_a_restart_a_known_counter_still_gets_rates_and_its_rate_series(tmp_path: Path) -> None:
    with Store(str(tmp_path / "k.duckdb")) as store:
        body = encode_write_request([({"__name__": "x_total"}, [(T0, 1.0), (T0 + 10_000, 11.0)])])
        store.write(RemoteWriteDecoder(known_series=store.known_series, derive_rates=True).decode(body))
        again = RemoteWriteDecoder(known_series=store.known_series, derive_rates=True)  # a new process
        batch = again.decode(
            encode_write_request([({"__name__": "x_total"}, [(T0 + 20_000, 31.0), (T0 + 30_000, 41.0)])])
        )
        store.write(batch)
        rows = store.query(
            "SELECT s.name, s.kind, count(*), max(p.value) FROM points p JOIN series s USING (series_id) "
            "GROUP BY ALL ORDER BY 1"
        )
    assert rows == [("x:rate", "gauge", 2, 1.0), ("x_total", "counter", 4, 41.0)]


def test_detection_reads_rates_never_raw_running_totals(tmp_path: Path) -> None:
    series = [
        (
            {"__name__": "node_cpu_seconds_total", "mode": "idle"},
            [(T0 + 15_000 * i, 100.0 + 15 * i) for i in range(4)],
        ),
        ({"__name__": "lat_seconds_bucket", "le": "+Inf"}, [(T0 + 15_000 * i, 5.0 * i) for i in range(4)]),
        ({"__name__": "lat_seconds_count"}, [(T0 + 15_000 * i, 5.0 * i) for i in range(4)]),
        ({"__name__": "node_load1"}, [(T0 + 15_000 * i, 0.5) for i in range(4)]),
    ]
    with Store(str(tmp_path / "d.duckdb")) as store:
        store.write(
            RemoteWriteDecoder(known_series=store.known_series, derive_rates=True).decode(
                encode_write_request(series)
            )
        )
        table = repository.read_points(store, 0, store.points_rows)
        names = {
            r[0]
            for r in store.query(
                "SELECT name FROM series WHERE series_id IN (SELECT unnest(?::UBIGINT[]))",
                [np.unique(table.column("series_id").to_numpy()).tolist()],
            )
        }
    assert names == {"node_load1", rate_name("node_cpu_seconds_total"), "lat_seconds_count:rate"}
    assert is_cumulative("counter", "node_cpu_seconds_total") and not is_cumulative("gauge", "node_load1")


def test_otlp_types_set_kinds() -> None:
    point = {"startTimeUnixNano": "1700000000000000000", "timeUnixNano": "1700000060000000000"}
    body = {
        "resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "requests", "sum": {"aggregationTemporality": 2, "isMonotonic": True,
                                         "dataPoints": [{**point, "asInt": "5"}]}},
            {"name": "inflight", "sum": {"aggregationTemporality": 2, "isMonotonic": False,
                                         "dataPoints": [{**point, "asInt": "2"}]}},
            {"name": "temperature", "gauge": {"dataPoints": [{**point, "asDouble": 21.5}]}},
            {"name": "latency", "histogram": {"aggregationTemporality": 2, "dataPoints": [
                {**point, "count": "2", "sum": 0.3, "bucketCounts": ["1", "1"], "explicitBounds": [0.1]}]}},
        ]}]}]
    }  # fmt: skip
    batch = decode_metrics(json.dumps(body).encode(), "application/json")
    assert batch.series is not None
    kinds = dict(
        zip(batch.series.column("name").to_pylist(), batch.series.column("kind").to_pylist(), strict=True)
    )
    assert kinds == {
        "requests_total": "counter",
        "inflight": "gauge",
        "temperature": "gauge",
        "latency_bucket": "histogram",
        "latency_sum": "histogram",
        "latency_count": "histogram",
    }


def test_a_live_server_scores_the_rate_of_a_counter_and_never_the_counter(live_server: LiveServer) -> None:
    counter = {"__name__": "jobs_done_total", "queue": "q1"}
    gauge = {"__name__": "queue_depth", "queue": "q1"}
    body = encode_write_request(
        [
            (counter, [(T0 + 15_000 * i, 1000.0 + 30.0 * i) for i in range(40)]),
            (gauge, [(T0 + 15_000 * i, 5.0) for i in range(40)]),
        ]
    )
    with live_server.client() as c:
        r = c.post(
            "/api/v1/write",
            content=body,
            headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
        )
        assert r.status_code == 204, r.text
    store = live_server.store
    ids = {n: series_id(n, {"queue": "q1"}) for n in ("jobs_done_total", "jobs_done:rate", "queue_depth")}

    def scored(name: str) -> int:
        return int(store.query("SELECT count(*) FROM bands WHERE series_id = ?", [ids[name]])[0][0])

    wait_for(
        "detection to score the rate and the gauge",
        lambda: scored("jobs_done:rate") == 39 and scored("queue_depth") == 40,
        30,
    )
    assert scored("jobs_done_total") == 0
    rates = store.query("SELECT DISTINCT value FROM points WHERE series_id = ?", [ids["jobs_done:rate"]])
    assert rates == [(2.0,)]  # 30 per 15 s
