"""Prometheus text 0.0.4 / OpenMetrics 1.0 push endpoint, with text from the real prometheus_client."""

from __future__ import annotations

import gzip
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from core.errors import DecodeError, SchemaError
from ingest.exposition import ExpositionParser, parse_exposition
from tests.conftest import LiveServer

URL = "/api/v1/import/prometheus"


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    requests = Counter("http_requests", "Requests.", ["method", "code"], registry=reg)
    requests.labels("get", "200").inc(7)
    requests.labels("post", "500").inc(2)
    Gauge("queue_depth", "Depth.", ["queue"], registry=reg, unit="items").labels("orders").set(12.5)
    latency = Histogram("request_latency_seconds", "Latency.", registry=reg, buckets=(0.1, 0.5, 1.0))
    for v in (0.05, 0.3, 0.7, 2.0):
        latency.observe(v)
    Summary("payload_bytes", "Payload size.", registry=reg).observe(512)
    return reg


def stored(live: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, str, str]]:
    rows = live.store.query(
        "SELECT s.name, s.labels, p.value, s.kind, s.unit FROM points p JOIN series s USING (series_id)"
    )
    return {(r[0], tuple(sorted(r[1].items()))): (r[2], r[3], r[4]) for r in rows}


def test_text_format_from_prometheus_client_lands_with_kinds_and_le(live_server: LiveServer) -> None:
    before = time.time()
    with live_server.client() as c:
        r = c.post(
            URL, content=generate_latest(registry()), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )
    assert r.status_code == 204, r.text
    data = stored(live_server)
    assert data[("http_requests_total", (("code", "200"), ("method", "get")))] == (7.0, "counter", "")
    assert data[("http_requests_total", (("code", "500"), ("method", "post")))][0] == 2.0
    assert data[("queue_depth_items", (("queue", "orders"),))] == (12.5, "gauge", "")
    assert data[("request_latency_seconds_bucket", (("le", "0.5"),))] == (2.0, "histogram", "")
    assert data[("request_latency_seconds_bucket", (("le", "+Inf"),))][0] == 4.0
    assert data[("request_latency_seconds_count", ())] == (4.0, "histogram", "")
    assert data[("payload_bytes_sum", ())] == (512.0, "summary", "")
    # 0.0.4 has no families: prometheus_client exposes *_created as gauges of their own
    assert data[("http_requests_created", (("code", "200"), ("method", "get")))][1] == "gauge"
    # no timestamps in the text: the receive time is used
    (ts,) = live_server.store.query("SELECT DISTINCT epoch_us(ts) FROM points")[0]
    assert before - 1 <= ts / 1e6 <= time.time() + 1


def test_openmetrics_from_prometheus_client_skips_created_and_keeps_units(live_server: LiveServer) -> None:
    with live_server.client() as c:
        r = c.post(URL, content=generate_openmetrics(registry()), headers={"Content-Type": OPENMETRICS})
    assert r.status_code == 204, r.text
    data = stored(live_server)
    assert data[("http_requests_total", (("code", "200"), ("method", "get")))] == (7.0, "counter", "")
    assert data[("queue_depth_items", (("queue", "orders"),))] == (12.5, "gauge", "items")
    assert data[("request_latency_seconds_bucket", (("le", "1.0"),))] == (3.0, "histogram", "")
    assert not [name for name, _ in data if name.endswith("_created")]


def test_timestamps_quantiles_extra_labels_and_gzip(live_server: LiveServer) -> None:
    text = (
        "# TYPE rpc_duration_seconds summary\n"
        'rpc_duration_seconds{quantile="0.99",job="app"} 0.25 1700000000000\n'
        "rpc_duration_seconds_count 10 1700000000000\n"
    )
    openmetrics = (
        "# TYPE rpc_duration_seconds summary\n"
        'rpc_duration_seconds{quantile="0.99",job="app"} 0.25 1700000000.000\n'
        "# EOF\n"
    )
    with live_server.client() as c:
        r = c.post(
            URL + "?extra_label=env=prod&extra_label=job=pushed",
            content=gzip.compress(text.encode()),
            headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 204, r.text
        r = c.post(URL, content=openmetrics, headers={"Content-Type": OPENMETRICS})
        assert r.status_code == 204, r.text
    rows = live_server.store.query(
        "SELECT s.name, s.labels, s.kind, p.ts FROM points p JOIN series s USING (series_id) ORDER BY 1, 2"
    )
    assert sorted((r[0], sorted(r[1].items()), r[2]) for r in rows) == [
        ("rpc_duration_seconds", [("env", "prod"), ("job", "pushed"), ("quantile", "0.99")], "summary"),
        ("rpc_duration_seconds", [("job", "app"), ("quantile", "0.99")], "summary"),
        ("rpc_duration_seconds_count", [("env", "prod"), ("job", "pushed")], "summary"),
    ]
    assert {r[3].isoformat() for r in rows} == {"2023-11-14T22:13:20"}  # ms (0.0.4) and s (OM) agree


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("ok 1\nbad{a=1} 2\n", 2, "invalid label"),
        ("ok 1\n\n# TYPE x gauge\n1x 3\n", 4, "invalid metric name"),
        ('m{a="b"} one\n', 1, "invalid sample value"),
        ('m{a="b",a="c"} 1\n', 1, "duplicate label"),
        ("# TYPE m gauge\n# TYPE m counter\nm 1\n", 2, "second '# TYPE'"),
        ("# TYPE m histogramm\n", 1, "unknown metric type"),
        ("m 1 1.5\n", 1, "invalid timestamp"),
        ('m{a="\\x"} 1\n', 1, "invalid escape"),
        ("m 1 2 3\n", 1, "expected 'value [timestamp]'"),
    ],
    ids=[
        "label-unquoted",
        "bad-name",
        "bad-value",
        "dup-label",
        "dup-type",
        "bad-type",
        "float-ms",
        "escape",
        "extra",
    ],
)
def test_malformed_text_gets_422_naming_the_line_and_writes_nothing(
    live_server: LiveServer, body: str, line: int, words: str
) -> None:
    with live_server.client() as c:
        r = c.post(URL, content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 422, r.text
    assert r.json()["error"].startswith(f"line {line}: ")
    assert words in r.json()["error"]
    assert live_server.store.query("SELECT count(*) FROM points")[0][0] == 0


def test_openmetrics_needs_eof_and_nothing_after_it(live_server: LiveServer) -> None:
    with live_server.client() as c:
        r = c.post(URL, content="a_total 1\n", headers={"Content-Type": OPENMETRICS})
        assert r.status_code == 422 and "# EOF" in r.json()["error"]
        r = c.post(URL, content="a 1\n# EOF\nb 2\n", headers={"Content-Type": OPENMETRICS})
        assert r.status_code == 422 and r.json()["error"].startswith("line 3: ")
    assert live_server.store.query("SELECT count(*) FROM points")[0][0] == 0


def test_auth_media_type_and_bad_extra_label(live_server: LiveServer) -> None:
    import httpx

    with httpx.Client(base_url=live_server.url) as anon:
        assert anon.post(URL, content="m 1\n").status_code == 401
    with live_server.client() as c:
        assert c.post(URL, content="m 1\n", headers={"Content-Type": "application/json"}).status_code == 415
        r = c.post(URL + "?extra_label=novalue", content="m 1\n")
        assert r.status_code == 422 and r.json()["field"] == "extra_label[0]"
        assert c.post(URL, content=b"m 1\n\xff\xfe 2\n").status_code == 400


def test_non_utf8_names_the_line() -> None:
    with pytest.raises(DecodeError, match="line 2"):
        parse_exposition(b"m 1\n\xff 2\n")


def test_exemplars_are_dropped_and_repeat_parses_hit_the_cache() -> None:
    text = '# TYPE a counter\na_total{x="1"} 3 # {trace_id="abc"} 1.0 1700000000.1\n# EOF\n'
    parser = ExpositionParser()
    first = parser.parse(text, default_ts_us=1)
    second = parser.parse(text, default_ts_us=2)
    assert first.points.column("value").to_pylist() == second.points.column("value").to_pylist() == [3.0]
    assert first.digest != second.digest  # no sample timestamp: a later push is a new observation


label_values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(label_values, min_size=1, max_size=5, unique=True), openmetrics=st.booleans())
def test_label_values_with_escapes_round_trip(values: list[str], openmetrics: bool) -> None:
    reg = CollectorRegistry()
    gauge = Gauge("roundtrip", "Round trip.", ["v"], registry=reg)
    for i, value in enumerate(values):
        gauge.labels(value).set(i)
    text = generate_openmetrics(reg) if openmetrics else generate_latest(reg)
    batch = ExpositionParser().parse(text, openmetrics=openmetrics, default_ts_us=0)
    assert batch.series is not None and batch.points is not None
    got = {
        dict(labels)["v"]: sid
        for sid, labels in zip(
            batch.series.column("series_id").to_pylist(),
            batch.series.column("labels").to_pylist(),
            strict=True,
        )
    }
    assert sorted(got) == sorted(values)
    by_sid = dict(
        zip(
            batch.points.column("series_id").to_pylist(),
            batch.points.column("value").to_pylist(),
            strict=True,
        )
    )
    assert [by_sid[got[v]] for v in values] == [float(i) for i in range(len(values))]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_a_schema_error_naming_a_line(text: str) -> None:
    try:
        parse_exposition(text)
    except SchemaError as exc:
        assert exc.field.startswith("line ") or exc.field == "extra_label"
