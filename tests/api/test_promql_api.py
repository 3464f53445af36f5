"""The Prometheus query API on a served app: shapes, errors, form posts, scopes and band series."""

from __future__ import annotations

import math

import httpx
import pytest

from core.series import series_id
from ingest.remote_write import encode_write_request
from tests.conftest import LiveServer
from tests.integration.processes import wait_for

T0 = 1_700_000_000_000  # ms
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


@pytest.fixture
def loaded(live_server: LiveServer) -> LiveServer:
    """Two gauges of 40 samples (15 s apart) written through remote-write, scored by detection."""
    series = [
        ({"__name__": "queue_depth", "queue": q}, [(T0 + 15_000 * i, base + (i % 3)) for i in range(40)])
        for q, base in (("a", 5.0), ("b", 50.0))
    ]
    with live_server.client() as c:
        assert (
            c.post("/api/v1/write", content=encode_write_request(series), headers=HEADERS).status_code == 204
        )
    sid = series_id("queue_depth", {"queue": "a"})
    store = live_server.store
    wait_for(
        "detection bands",
        lambda: store.query("SELECT count(*) FROM bands WHERE series_id = ?", [sid])[0][0] == 40,
        30,
    )
    return live_server


def test_instant_and_range_shapes(loaded: LiveServer) -> None:
    with loaded.client() as c:
        body = c.get(
            "/api/v1/query", params={"query": "sum(queue_depth)", "time": (T0 + 60_000) / 1000}
        ).json()
        assert body == {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": {}, "value": [(T0 + 60_000) // 1000, "57"]}],
            },
        }
        scalar = c.post("/api/v1/query", data={"query": "1 + 1", "time": "1700000000.5"}).json()
        assert scalar["data"] == {"resultType": "scalar", "result": [1700000000.5, "2"]}
        rng = c.post(
            "/api/v1/query_range",
            data={
                "query": 'queue_depth{queue="a"}',
                "start": T0 / 1000,
                "end": (T0 + 30_000) / 1000,
                "step": "15s",
            },
        ).json()
        assert rng["data"]["resultType"] == "matrix"
        (only,) = rng["data"]["result"]
        assert only["metric"] == {"__name__": "queue_depth", "queue": "a"}
        assert only["values"] == [[T0 // 1000, "5"], [T0 // 1000 + 15, "6"], [T0 // 1000 + 30, "7"]]
        raw = c.get(
            "/api/v1/query", params={"query": 'queue_depth{queue="b"}[30s]', "time": (T0 + 30_000) / 1000}
        )
        assert [v[1] for v in raw.json()["data"]["result"][0]["values"]] == ["50", "51", "52"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"query": "sum("}, "unclosed left parenthesis"),
        ({"query": "queue_depth", "time": "yesterday"}, 'invalid parameter "time"'),
        ({"query": "topk(1, queue_depth)"}, "not supported"),
        ({}, 'invalid parameter "query"'),
    ],
    ids=["syntax", "time", "unsupported", "missing"],
)
def test_errors_use_prometheus_error_body(loaded: LiveServer, params: dict[str, str], fragment: str) -> None:
    with loaded.client() as c:
        r = c.get("/api/v1/query", params=params)
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "error" and body["errorType"] == "bad_data" and fragment in body["error"]


def test_range_query_limits_and_step(loaded: LiveServer) -> None:
    with loaded.client() as c:
        too_many = c.get("/api/v1/query_range", params={"query": "1", "start": 0, "end": 20_000, "step": 1})
        zero = c.get("/api/v1/query_range", params={"query": "1", "start": 0, "end": 10, "step": 0})
    assert too_many.status_code == zero.status_code == 400
    assert "11,000 points" in too_many.json()["error"]


def test_labels_values_series_and_metadata(loaded: LiveServer) -> None:
    with loaded.client() as c:
        labels = c.get("/api/v1/labels", params={"match[]": "queue_depth"}).json()["data"]
        values = c.get("/api/v1/label/queue/values").json()["data"]
        names = c.get("/api/v1/label/__name__/values").json()["data"]
        series = c.post("/api/v1/series", data={"match[]": 'queue_depth{queue=~"a"}'}).json()["data"]
        no_match = c.get("/api/v1/series")
        meta = c.get("/api/v1/metadata").json()["data"]
    assert labels == ["__name__", "queue"]
    assert values == ["a", "b"]
    assert {"queue_depth", "opsloop_band_lower", "opsloop_band_upper", "opsloop_score"} <= set(names)
    assert series == [{"__name__": "queue_depth", "queue": "a"}]
    assert no_match.status_code == 400 and no_match.json()["error"] == "no match[] parameter provided"
    assert meta["queue_depth"][0]["type"] == "unknown"  # no metadata sent, no telling suffix


def test_band_series_carry_the_scored_series_labels_and_its_band(loaded: LiveServer) -> None:
    sid = series_id("queue_depth", {"queue": "a"})
    band = dict(
        loaded.store.query("SELECT epoch_ms(ts), upper FROM bands WHERE series_id = ? ORDER BY ts", [sid])
    )
    with loaded.client() as c:
        body = c.get(
            "/api/v1/query_range",
            params={
                "query": 'opsloop_band_upper{opsloop_metric="queue_depth", queue="a"}',
                "start": T0 / 1000,
                "end": (T0 + 39 * 15_000) / 1000,
                "step": 15,
            },
        ).json()
    (only,) = body["data"]["result"]
    assert only["metric"] == {"__name__": "opsloop_band_upper", "opsloop_metric": "queue_depth", "queue": "a"}
    got = {int(float(t) * 1000): float(v) for t, v in only["values"]}
    finite = {t: u for t, u in band.items() if u is not None and math.isfinite(u)}
    assert finite and got == pytest.approx(finite)


def test_query_api_needs_the_read_scope(loaded: LiveServer) -> None:
    ingest_only = loaded.store.create_token(["ingest"], "ingest only")
    with httpx.Client(base_url=loaded.url) as anonymous:
        assert anonymous.get("/api/v1/query", params={"query": "1"}).status_code == 401
    with loaded.client(ingest_only) as c:
        assert c.get("/api/v1/query", params={"query": "1"}).status_code == 403
    with httpx.Client(base_url=loaded.url, auth=("grafana", loaded.token)) as basic:
        assert basic.get("/api/v1/query", params={"query": "1"}).json()["status"] == "success"
