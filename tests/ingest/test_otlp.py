"""OTLP/HTTP metrics and logs, with payloads from the real opentelemetry-proto classes."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from core.errors import DecodeError, SchemaError
from core.store import Store
from ingest.otlp import decode_metrics, read_jsonl
from ingest.protowire import field
from tests.conftest import LiveServer

T0 = 1_700_000_000_000_000_000  # ns
JSON_HEADERS = {"Content-Type": "application/json"}
PB_HEADERS = {"Content-Type": "application/x-protobuf"}
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")

# The two examples of wire-formats.md section 3, verbatim.
SPEC_METRICS = """{
  "resourceMetrics": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
    "scopeMetrics": [{
      "scope": {"name": "checkout.http", "version": "1.0.0"},
      "metrics": [
        {"name": "http.server.request.count", "unit": "1",
         "sum": {"aggregationTemporality": 2, "isMonotonic": true,
                 "dataPoints": [{"asInt": "1027", "startTimeUnixNano": "1700000000000000000", "timeUnixNano": "1700000060000000000",
                                 "attributes": [{"key": "http.route", "value": {"stringValue": "/pay"}}]}]}},
        {"name": "queue.depth", "unit": "1",
         "gauge": {"dataPoints": [{"asDouble": 42, "timeUnixNano": "1700000060000000000"}]}},
        {"name": "http.server.request.duration", "unit": "s",
         "histogram": {"aggregationTemporality": 2,
                       "dataPoints": [{"startTimeUnixNano": "1700000000000000000", "timeUnixNano": "1700000060000000000",
                                       "count": "3", "sum": 0.6, "bucketCounts": ["1", "1", "1"], "explicitBounds": [0.1, 0.5],
                                       "min": 0.05, "max": 0.4}]}}
      ]
    }]
  }]
}"""
SPEC_LOGS = """{
  "resourceLogs": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
    "scopeLogs": [{
      "scope": {"name": "checkout.db"},
      "logRecords": [{
        "timeUnixNano": "1700000000000000000",
        "observedTimeUnixNano": "1700000000100000000",
        "severityNumber": 17, "severityText": "ERROR",
        "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
        "body": {"stringValue": "db timeout after 5s"},
        "attributes": [{"key": "db.system", "value": {"stringValue": "postgresql"}},
                       {"key": "retry", "value": {"intValue": "2"}}]
      }]
    }]
  }]
}"""


# ----------------------------------------------------------------------------- payload builders


def attrs(target: Any, **values: Any) -> None:
    """Append attributes (keys use ``__`` for ``.``) to a repeated KeyValue field."""
    for key, value in values.items():
        kv: KeyValue = target.add()
        kv.key = key.replace("__", ".")
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = value


def metrics_request() -> ExportMetricsServiceRequest:
    """Gauge, cumulative monotonic sum, delta sum and a histogram from one resource."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    attrs(rm.resource.attributes, service__name="checkout", service__instance__id="pod-1", host__name="n1")
    sm = rm.scope_metrics.add()
    sm.scope.name = "checkout.http"

    gauge = sm.metrics.add(name="system.memory.usage", unit="By")
    for i, value in enumerate((100.0, 150.0)):
        dp = gauge.gauge.data_points.add(time_unix_nano=T0 + i * 15_000_000_000, as_double=value)
        attrs(dp.attributes, state="used")

    total = sm.metrics.add(name="http.server.requests", unit="{request}")
    total.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    total.sum.is_monotonic = True
    for route, value in (("/pay", 7), ("/cart", 3)):
        dp = total.sum.data_points.add(start_time_unix_nano=T0 - 1, time_unix_nano=T0, as_int=value)
        attrs(dp.attributes, http__route=route)

    delta = sm.metrics.add(name="queue.processed", unit="1")
    delta.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    delta.sum.is_monotonic = True
    delta.sum.data_points.add(time_unix_nano=T0, as_int=5)

    hist = sm.metrics.add(name="http.server.request.duration", unit="s")
    hist.histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    dp = hist.histogram.data_points.add(time_unix_nano=T0, count=6, sum=1.25)
    dp.bucket_counts.extend([1, 2, 3])
    dp.explicit_bounds.extend([0.1, 0.5])
    attrs(dp.attributes, http__route="/pay")
    return req


def logs_request() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    attrs(rl.resource.attributes, service__name="payments", deployment__environment="prod")
    sl = rl.scope_logs.add()
    sl.scope.name = "payments.db"
    rec = sl.log_records.add(
        time_unix_nano=T0,
        observed_time_unix_nano=T0 + 1_000,
        severity_number=17,
        severity_text="ERROR",
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
    )
    rec.body.string_value = "db timeout after 5s"
    attrs(rec.attributes, db__system="postgresql", retry=2)
    structured = sl.log_records.add(observed_time_unix_nano=T0 + 5_000_000, severity_number=9)
    attrs(structured.body.kvlist_value.values, user="u1", ok=True)
    return req


def otlp_json(message: Message) -> bytes:
    """OTLP/JSON from the real classes: integer enums, and hex (not base64) trace/span ids."""
    doc = json.loads(json_format.MessageToJson(message, use_integers_for_enums=True))

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("traceId", "spanId"):
                if key in node:
                    node[key] = base64.b64decode(node[key]).hex().upper()
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(doc)
    return json.dumps(doc).encode()


def encode(message: Message, encoding: str) -> tuple[bytes, dict[str, str]]:
    if encoding == "json":
        return otlp_json(message), JSON_HEADERS
    return message.SerializeToString(), PB_HEADERS


def points(server: LiveServer) -> list[tuple[Any, ...]]:
    return server.store.query(
        "SELECT s.name, s.labels, s.kind, s.unit, s.service, p.ts, p.value "
        "FROM points p JOIN series s USING (series_id) ORDER BY s.name, p.ts, p.value"
    )


def count(server: LiveServer, table: str) -> int:
    return int(server.store.query(f"SELECT count(*) FROM {table}")[0][0])


# ----------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_metric_types_land_as_prometheus_series(live_server: LiveServer, encoding: str) -> None:
    body, headers = encode(metrics_request(), encoding)
    with live_server.client() as c:
        r = c.post("/v1/metrics", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(headers["Content-Type"])
    assert r.content == (b"{}" if encoding == "json" else b"")

    rows = points(live_server)
    by_name: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_name.setdefault(row[0], []).append(row)
    assert sorted(by_name) == [
        "http_server_request_duration_seconds_bucket",
        "http_server_request_duration_seconds_count",
        "http_server_request_duration_seconds_sum",
        "http_server_requests_total",
        "queue_processed",
        "system_memory_usage_bytes",
    ]
    resource = {"service": "checkout", "instance": "pod-1", "host_name": "n1"}

    gauge = by_name["system_memory_usage_bytes"]
    assert [(r[1], r[2], r[3], r[4], r[6]) for r in gauge] == [
        ({**resource, "state": "used"}, "gauge", "By", "checkout", 100.0),
        ({**resource, "state": "used"}, "gauge", "By", "checkout", 150.0),
    ]
    assert [r[5] for r in gauge] == [datetime(2023, 11, 14, 22, 13, 20), datetime(2023, 11, 14, 22, 13, 35)]

    counter = by_name["http_server_requests_total"]
    assert sorted((r[1]["http_route"], r[2], r[6]) for r in counter) == [
        ("/cart", "counter", 3.0),
        ("/pay", "counter", 7.0),
    ]
    assert all(r[1].keys() == {*resource, "http_route"} for r in counter)

    (delta,) = by_name["queue_processed"]
    assert (delta[2], delta[6]) == ("gauge", 5.0)  # a delta sum is stored as given, not accumulated

    buckets = by_name["http_server_request_duration_seconds_bucket"]
    assert sorted((r[1]["le"], r[6]) for r in buckets) == [("+Inf", 6.0), ("0.1", 1.0), ("0.5", 3.0)]
    assert {r[2] for r in buckets} == {"histogram"}
    assert by_name["http_server_request_duration_seconds_sum"][0][6] == 1.25
    assert by_name["http_server_request_duration_seconds_sum"][0][3] == "s"
    assert by_name["http_server_request_duration_seconds_count"][0][6] == 6.0
    assert "le" not in by_name["http_server_request_duration_seconds_count"][0][1]


def test_spec_examples_verbatim(live_server: LiveServer) -> None:
    with live_server.client() as c:
        assert c.post("/v1/metrics", content=SPEC_METRICS, headers=JSON_HEADERS).json() == {}
        assert c.post("/v1/logs", content=SPEC_LOGS, headers=JSON_HEADERS).json() == {}
    got = {(r[0], r[1].get("le", "")): (r[2], r[6]) for r in points(live_server)}
    assert got == {
        ("http_server_request_count_total", ""): ("counter", 1027.0),
        ("queue_depth", ""): ("gauge", 42.0),
        ("http_server_request_duration_seconds_bucket", "0.1"): ("histogram", 1.0),
        ("http_server_request_duration_seconds_bucket", "0.5"): ("histogram", 2.0),
        ("http_server_request_duration_seconds_bucket", "+Inf"): ("histogram", 3.0),
        ("http_server_request_duration_seconds_sum", ""): ("histogram", 0.6),
        ("http_server_request_duration_seconds_count", ""): ("histogram", 3.0),
    }
    (labels,) = live_server.store.query(
        "SELECT labels FROM series WHERE name = 'http_server_request_count_total'"
    )[0]
    assert labels == {"service": "checkout", "http_route": "/pay"}  # scope is not a label
    assert {r[5] for r in points(live_server)} == {datetime(2023, 11, 14, 22, 14, 20)}

    log = live_server.store.query(
        "SELECT ts, observed_ts, service, severity_number, severity_text, body, attributes, resource, "
        "scope, trace_id, span_id FROM logs"
    )
    assert len(log) == 1
    ts, observed, service, number, text, body, attributes, resource, scope, trace, span = log[0]
    assert (ts, observed) == (datetime(2023, 11, 14, 22, 13, 20), datetime(2023, 11, 14, 22, 13, 20, 100000))
    assert (service, number, text, body, scope) == (
        "checkout",
        17,
        "ERROR",
        "db timeout after 5s",
        "checkout.db",
    )
    assert json.loads(attributes) == {"db.system": "postgresql", "retry": 2}
    assert json.loads(resource) == {"service.name": "checkout"}
    assert (trace, span) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_logs_land_with_service_severity_body_and_trace(live_server: LiveServer, encoding: str) -> None:
    body, headers = encode(logs_request(), encoding)
    with live_server.client() as c:
        r = c.post("/v1/logs", content=body, headers=headers)
    assert r.status_code == 200, r.text
    rows = live_server.store.query(
        "SELECT ts, observed_ts, service, severity_number, severity_text, body, attributes, trace_id, span_id "
        "FROM logs ORDER BY ts"
    )
    assert len(rows) == 2
    first, second = rows
    assert first[0] == datetime(2023, 11, 14, 22, 13, 20)
    assert first[2:6] == ("payments", 17, "ERROR", "db timeout after 5s")
    assert json.loads(first[6]) == {"db.system": "postgresql", "retry": 2}
    assert first[7:] == (TRACE_ID.hex(), SPAN_ID.hex())
    # no timeUnixNano: the observed time is used; a structured body is stored as compact JSON
    assert second[0] == second[1] == datetime(2023, 11, 14, 22, 13, 20, 5000)
    assert json.loads(second[5]) == {"user": "u1", "ok": True}
    assert second[7:] == ("", "")


def test_summary_and_exponential_histogram(live_server: LiveServer) -> None:
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    summary = sm.metrics.add(name="rpc.duration", unit="ms")
    dp = summary.summary.data_points.add(time_unix_nano=T0, count=10, sum=55.0)
    dp.quantile_values.add(quantile=0.5, value=4.0)
    dp.quantile_values.add(quantile=0.99, value=9.5)
    expo = sm.metrics.add(name="db.latency", unit="s")
    expo.exponential_histogram.aggregation_temporality = 2
    expo.exponential_histogram.data_points.add(time_unix_nano=T0, count=4, sum=2.0, scale=1)
    with live_server.client() as c:
        assert c.post("/v1/metrics", content=req.SerializeToString(), headers=PB_HEADERS).status_code == 200
    got = {(r[0], r[1].get("quantile", "")): (r[2], r[6]) for r in points(live_server)}
    assert got == {
        ("rpc_duration_milliseconds", "0.5"): ("summary", 4.0),
        ("rpc_duration_milliseconds", "0.99"): ("summary", 9.5),
        ("rpc_duration_milliseconds_sum", ""): ("summary", 55.0),
        ("rpc_duration_milliseconds_count", ""): ("summary", 10.0),
        ("db_latency_seconds_sum", ""): ("histogram", 2.0),
        ("db_latency_seconds_count", ""): ("histogram", 4.0),
    }


def test_gzip_and_redelivery_stored_once(live_server: LiveServer) -> None:
    body = gzip.compress(otlp_json(metrics_request()))
    headers = {**JSON_HEADERS, "Content-Encoding": "gzip"}
    with live_server.client() as c:
        for _ in range(3):
            assert c.post("/v1/metrics", content=body, headers=headers).status_code == 200
        logs = logs_request().SerializeToString()
        for _ in range(2):
            assert c.post("/v1/logs", content=logs, headers=PB_HEADERS).status_code == 200
    assert count(live_server, "points") == 10
    assert count(live_server, "logs") == 2


# ----------------------------------------------------------------------------- rejections


def bad_histogram() -> ExportMetricsServiceRequest:
    req = metrics_request()
    hist = req.resource_metrics[0].scope_metrics[0].metrics[3].histogram.data_points[0]
    hist.bucket_counts.append(9)  # 4 counts for 2 bounds
    return req


def zero_timestamp() -> ExportMetricsServiceRequest:
    req = metrics_request()
    req.resource_metrics[0].scope_metrics[0].metrics[1].sum.data_points[1].time_unix_nano = 0
    return req


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (bad_histogram, "resourceMetrics[0].scopeMetrics[0].metrics[3].histogram.dataPoints[0].bucketCounts"),
        (zero_timestamp, "resourceMetrics[0].scopeMetrics[0].metrics[1].sum.dataPoints[1].timeUnixNano"),
    ],
    ids=["histogram-buckets", "zero-timestamp"],
)
def test_invalid_fields_get_422_naming_the_field(
    live_server: LiveServer, encoding: str, make: Any, field: str
) -> None:
    body, headers = encode(make(), encoding)
    with live_server.client() as c:
        r = c.post("/v1/metrics", content=body, headers=headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(headers["Content-Type"])
    if encoding == "json":
        assert r.json()["code"] == 3
        assert r.json()["message"].startswith(field + ":")
    else:
        assert field.encode() in r.content  # google.rpc.Status.message, protobuf-encoded
    assert count(live_server, "points") == 0


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda d: d["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1]["gauge"]["dataPoints"][
                0
            ].update(timeUnixNano="soon"),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[0].timeUnixNano",
        ),
        (
            lambda d: d["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1]["gauge"]["dataPoints"][
                0
            ].update(timeUnixNano=1.5e18),
            "resourceMetrics[0].scopeMetrics[0].metrics[1].gauge.dataPoints[0].timeUnixNano",
        ),
        (
            lambda d: d["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"][0][
                "attributes"
            ][0].update(value={"intValue": "x"}),
            "resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].attributes[0].value.intValue",
        ),
        (
            lambda d: d["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][2]["histogram"]["dataPoints"][
                0
            ].update(explicitBounds=[0.5, 0.1]),
            "resourceMetrics[0].scopeMetrics[0].metrics[2].histogram.dataPoints[0].explicitBounds[1]",
        ),
    ],
    ids=["timestamp-text", "timestamp-float", "attribute-int", "bounds-order"],
)
def test_json_field_errors_name_the_path(live_server: LiveServer, edit: Any, field: str) -> None:
    doc = json.loads(SPEC_METRICS)
    edit(doc)
    with live_server.client() as c:
        r = c.post("/v1/metrics", json=doc)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(field + ":")
    assert count(live_server, "points") == 0


def test_undecodable_unsupported_and_unauthenticated(live_server: LiveServer) -> None:
    with live_server.client() as c:
        assert c.post("/v1/metrics", content=b"{not json", headers=JSON_HEADERS).status_code == 400
        assert c.post("/v1/metrics", content=b"[1, 2]", headers=JSON_HEADERS).status_code == 400
        r = c.post("/v1/logs", content=b"\x0a\xff\xff", headers=PB_HEADERS)
        assert r.status_code == 400
        assert r.headers["content-type"] == "application/x-protobuf"
        r = c.post("/v1/metrics", content=SPEC_METRICS, headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        assert r.json()["code"] == 3
        big = gzip.compress(b" " * (live_server.settings.max_body_bytes + 10))
        r = c.post("/v1/metrics", content=big, headers={**JSON_HEADERS, "Content-Encoding": "gzip"})
        assert r.status_code == 413
    with httpx.Client(base_url=live_server.url) as anon:
        assert anon.post("/v1/metrics", content=SPEC_METRICS, headers=JSON_HEADERS).status_code == 401
    assert count(live_server, "points") == 0


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
VALID_JSON = json.loads(otlp_json(metrics_request()))
VALID_PB = metrics_request().SerializeToString()


@st.composite
def mutated_json(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(VALID_JSON)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _leaves(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = draw(JSON_VALUES)
    return json.dumps(doc).encode()


@st.composite
def mutated_pb(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID_PB)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    case=st.one_of(
        st.tuples(st.just("application/json"), mutated_json()),
        st.tuples(st.just("application/json"), st.binary(max_size=200)),
        st.tuples(st.just("application/json"), JSON_VALUES.map(lambda v: json.dumps(v).encode())),
        st.tuples(st.just("application/x-protobuf"), mutated_pb()),
        st.tuples(st.just("application/x-protobuf"), st.binary(max_size=200)),
    ),
    signal=st.sampled_from(["metrics", "logs"]),
)
def test_malformed_bodies_get_4xx_never_5xx_and_write_nothing(
    live_server: LiveServer, case: tuple[str, bytes], signal: str
) -> None:
    ctype, body = case
    before = count(live_server, "points"), count(live_server, "logs")
    with live_server.client() as c:
        r = c.post(f"/v1/{signal}", content=body, headers={"Content-Type": ctype})
    if r.status_code == 200:  # a mutation that is still a valid request is fine
        return
    assert 400 <= r.status_code < 500, r.text
    assert r.content
    assert (count(live_server, "points"), count(live_server, "logs")) == before


# ----------------------------------------------------------------------------- file exporter


def test_read_jsonl_coalesces_lines_and_is_idempotent(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "otel.jsonl"
    lines = [
        otlp_json(metrics_request()),
        b"",
        otlp_json(logs_request()),
        SPEC_METRICS.replace("\n", "").encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")

    whole = list(read_jsonl(path))
    assert len(whole) == 1
    assert whole[0].points is not None and whole[0].points.num_rows == 10 + 7
    assert whole[0].logs is not None and whole[0].logs.num_rows == 2
    assert not store.write(whole[0]).duplicate
    assert store.write(next(iter(read_jsonl(str(path))))).duplicate

    per_line = list(read_jsonl(path, batch_target=1))
    assert [b.samples for b in per_line] == [10, 2, 7]
    assert [store.write(b).duplicate for b in per_line] == [False, False, False]
    assert [store.write(b).duplicate for b in read_jsonl(path, batch_target=1)] == [True, True, True]


def test_read_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    doc = json.loads(SPEC_METRICS)
    doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][2]["histogram"]["dataPoints"][0][
        "bucketCounts"
    ] = ["1"]
    path = tmp_path / "bad.jsonl"
    path.write_text(
        SPEC_METRICS.replace("\n", "") + "\n" + SPEC_LOGS.replace("\n", "") + "\n" + json.dumps(doc) + "\n"
    )
    with pytest.raises(SchemaError) as info:
        list(read_jsonl(path, batch_target=1))
    assert str(info.value).startswith(
        "line 3: resourceMetrics[0].scopeMetrics[0].metrics[2].histogram.dataPoints[0].bucketCounts:"
    )
    path.write_text(SPEC_LOGS.replace("\n", "") + "\n{oops\n")
    with pytest.raises(DecodeError, match=r"^line 2: body: invalid JSON"):
        list(read_jsonl(path))
    path.write_text('{"something": "else"}\n')
    with pytest.raises(SchemaError, match=r"^line 1: body: expected an object with resourceMetrics"):
        list(read_jsonl(path))


# ----------------------------------------------------------------------------- protobuf == JSON

I64 = st.integers(-(2**63), 2**63 - 1)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True)
# keys that clash after sanitising ("a.b" / "a_b"), the renamed service keys, and an empty one
ATTRIBUTE_KEYS = st.sampled_from(
    ["a.b", "a_b", "host", "service.name", "service.instance.id", "2xx", "k", ""]
)
SCALARS = st.one_of(
    st.tuples(st.just("string_value"), st.text(max_size=4)),
    st.tuples(st.just("bool_value"), st.booleans()),
    st.tuples(st.just("int_value"), I64),
    st.tuples(st.just("double_value"), DOUBLES),
    st.tuples(st.just("bytes_value"), st.binary(max_size=4)),
    st.tuples(st.just("none"), st.none()),
)
ATTRIBUTE_VALUES = st.one_of(
    SCALARS,
    st.tuples(st.just("array_value"), st.lists(SCALARS, max_size=3)),
    st.tuples(st.just("kvlist_value"), st.lists(st.tuples(ATTRIBUTE_KEYS, SCALARS), max_size=2)),
)
ATTRIBUTES = st.lists(st.tuples(ATTRIBUTE_KEYS, ATTRIBUTE_VALUES), max_size=4)
VALID_TIMES = st.integers(1, 2**63 - 1)
TIMES = st.one_of(VALID_TIMES, VALID_TIMES, VALID_TIMES, st.sampled_from([0, 2**63, 2**64 - 1]))


def set_any(target: Any, value: tuple[str, Any]) -> None:
    field, content = value
    if field == "array_value":
        target.array_value.SetInParent()
        for item in content:
            set_any(target.array_value.values.add(), item)
    elif field == "kvlist_value":
        target.kvlist_value.SetInParent()
        for key, item in content:
            set_any(target.kvlist_value.values.add(key=key).value, item)
    elif field != "none":
        setattr(target, field, content)


def add_attributes(target: Any, pairs: list[tuple[str, tuple[str, Any]]]) -> None:
    for key, value in pairs:
        kv: KeyValue = target.add(key=key)
        set_any(kv.value, value)


@st.composite
def number_point(draw: st.DrawFn, container: Any, attribute_sets: list[Any]) -> None:
    dp = container.data_points.add(time_unix_nano=draw(TIMES), start_time_unix_nano=draw(TIMES))
    value = draw(st.sampled_from(["double", "int", "none"]))
    if value == "double":
        dp.as_double = draw(DOUBLES)
    elif value == "int":
        dp.as_int = draw(I64)
    dp.flags = draw(st.sampled_from([0, 0, 1, 2]))
    add_attributes(dp.attributes, draw(st.sampled_from(attribute_sets)))
    if draw(st.integers(0, 9)) == 0:  # an exemplar: the point is left to protobuf
        ex = dp.exemplars.add(time_unix_nano=1, as_double=0.5, span_id=SPAN_ID)
        add_attributes(ex.filtered_attributes, [("trace", ("string_value", "x"))])


@st.composite
def histogram_point(draw: st.DrawFn, container: Any, attribute_sets: list[Any]) -> None:
    bounds = sorted(set(draw(st.lists(st.floats(-1e6, 1e6) | st.just(float("inf")), max_size=3))))
    counts = draw(st.lists(st.integers(0, 2**40), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    dp = container.data_points.add(time_unix_nano=draw(st.integers(1, 2**63 - 1)), count=sum(counts))
    if bounds or draw(st.booleans()):
        dp.bucket_counts.extend(counts)
        dp.explicit_bounds.extend(bounds)
    if draw(st.booleans()):
        dp.sum = draw(st.floats(allow_nan=False))
    dp.flags = draw(st.sampled_from([0, 1]))
    add_attributes(dp.attributes, draw(st.sampled_from(attribute_sets)))


@st.composite
def random_request(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    attribute_sets = draw(st.lists(ATTRIBUTES, min_size=1, max_size=4))  # shared: series repeat
    for _ in range(draw(st.integers(1, 2))):
        rm = req.resource_metrics.add()
        rm.resource.SetInParent()  # always present, as the hand-made encoding has it
        add_attributes(rm.resource.attributes, draw(ATTRIBUTES))
        sm = rm.scope_metrics.add()
        sm.scope.name = "s"
        for m in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["gauge", "sum", "histogram", "exponential", "summary"]))
            metric = sm.metrics.add(name=f"m.{m % 2}", unit=draw(st.sampled_from(["", "s", "By", "1"])))
            points = draw(st.integers(0, 4))
            if kind in ("gauge", "sum"):
                data = getattr(metric, kind)
                data.SetInParent()
                if kind == "sum":
                    data.is_monotonic = draw(st.booleans())
                    data.aggregation_temporality = draw(st.sampled_from([1, 2]))
                for _ in range(points):
                    draw(number_point(data, attribute_sets))
            elif kind == "histogram":
                metric.histogram.aggregation_temporality = draw(st.sampled_from([1, 2]))
                for _ in range(points):
                    draw(histogram_point(metric.histogram, attribute_sets))
            elif kind == "exponential":
                metric.exponential_histogram.aggregation_temporality = draw(st.sampled_from([1, 2]))
                for _ in range(points):
                    dp = metric.exponential_histogram.data_points.add(
                        time_unix_nano=draw(st.integers(1, 2**63 - 1)),
                        count=draw(st.integers(0, 99)),
                        scale=1,
                    )
                    if draw(st.booleans()):
                        dp.sum = draw(st.floats(allow_nan=False))
                    add_attributes(dp.attributes, draw(st.sampled_from(attribute_sets)))
            else:
                for _ in range(points):
                    dp = metric.summary.data_points.add(
                        time_unix_nano=draw(st.integers(1, 2**63 - 1)), count=3, sum=draw(st.floats(0, 1e9))
                    )
                    for q in sorted(set(draw(st.lists(st.floats(0, 1), max_size=2)))):
                        dp.quantile_values.add(quantile=q, value=draw(st.floats(allow_nan=False)))
                    add_attributes(dp.attributes, draw(st.sampled_from(attribute_sets)))
    return req


def shuffled_point(dp: Any, rnd: Any) -> bytes:
    """A NumberDataPoint's encoding with its fields in a random order; attributes keep theirs.

    Concatenated encodings of one message merge, so each field is serialized on its own.
    """
    point = type(dp)
    parts = [
        point(time_unix_nano=dp.time_unix_nano).SerializeToString(),
        point(start_time_unix_nano=dp.start_time_unix_nano).SerializeToString(),
        point(flags=dp.flags).SerializeToString(),
        point(exemplars=dp.exemplars).SerializeToString(),
    ]
    value = dp.WhichOneof("value")
    decoy = b""
    if value:
        parts.append(point(**{value: getattr(dp, value)}).SerializeToString())
        if rnd.random() < 0.3:  # the other value field first: the last one wins
            decoy = point(**{"as_int" if value == "as_double" else "as_double": 7}).SerializeToString()
    rnd.shuffle(parts)
    attributes = [field(7, kv.SerializeToString()) for kv in dp.attributes]
    if rnd.random() < 0.5:  # all in one run
        parts.insert(rnd.randint(0, len(parts)), b"".join(attributes))
    else:  # spread out among the other fields
        at = 0
        for attribute in attributes:
            at = rnd.randint(at, len(parts))
            parts.insert(at, attribute)
            at += 1
    return decoy + b"".join(parts)


def shuffled_encoding(req: ExportMetricsServiceRequest, rnd: Any) -> bytes:
    """The request, encoded by hand with ``shuffled_point`` for gauge and sum points."""
    out = b""
    for rm in req.resource_metrics:
        scopes = b""
        for sm in rm.scope_metrics:
            metrics = b""
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind not in ("gauge", "sum"):
                    metrics += field(2, metric.SerializeToString())
                    continue
                data = getattr(metric, kind)
                head = type(data)()
                head.CopyFrom(data)
                del head.data_points[:]
                body = head.SerializeToString()
                body += b"".join(field(1, shuffled_point(dp, rnd)) for dp in data.data_points)
                name_unit = type(metric)(name=metric.name, unit=metric.unit).SerializeToString()
                metrics += field(2, name_unit + field({"gauge": 5, "sum": 7}[kind], body))
            scopes += field(2, field(1, sm.scope.SerializeToString()) + metrics)
        out += field(1, field(1, rm.resource.SerializeToString()) + scopes)
    return out


def decoded(body: bytes, content_type: str) -> tuple[str, Any]:
    """What ``decode_metrics`` makes of a body: its tables, or its error type and field."""
    try:
        batch = decode_metrics(body, content_type)
    except SchemaError as exc:  # DecodeError too
        return type(exc).__name__, exc.field
    assert batch.series is not None and batch.points is not None
    series = sorted(batch.series.to_pylist(), key=lambda row: row["series_id"])
    points = [
        (row["series_id"], row["ts"], "NaN" if row["value"] != row["value"] else row["value"])
        for row in batch.points.to_pylist()
    ]
    return "ok", (series, points)


@settings(max_examples=300, deadline=None)
@given(req=random_request(), rnd=st.randoms(use_true_random=False))
def test_protobuf_decodes_like_json(req: ExportMetricsServiceRequest, rnd: Any) -> None:
    """The numpy-scanned protobuf path and the JSON path agree on any request, errors included."""
    want = decoded(otlp_json(req), "application/json")
    assert decoded(req.SerializeToString(), "application/x-protobuf") == want
    assert decoded(req.SerializeToString(), "application/x-protobuf") == want  # again, series cached
    shuffled = shuffled_encoding(req, rnd)
    assert ExportMetricsServiceRequest.FromString(shuffled) == req
    assert decoded(shuffled, "application/x-protobuf") == want


@pytest.mark.parametrize(
    ("point", "where"),
    [
        (b"\x19" + bytes(7), "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]"),
        (
            b"\x3a\x05\x0a\x03\xff\xfe\xfd",
            "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].attributes",
        ),
        (b"\x3a\x09\x0a\x01k\x3a", "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]"),
        (b"\x2a\x02\x0a\x01", "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0]"),
    ],
    ids=["truncated-time", "key-not-utf8", "attribute-overruns-point", "bad-exemplar"],
)
def test_protobuf_points_the_real_classes_reject_are_400(point: bytes, where: str) -> None:
    time_and_value = b"\x19" + T0.to_bytes(8, "little") + b"\x21" + bytes(8)
    metric = field(1, b"m") + field(5, field(1, time_and_value + point))
    body = field(1, field(2, field(2, metric)))
    with pytest.raises(Exception):  # noqa: B017 - any error: the real classes refuse this body
        ExportMetricsServiceRequest.FromString(body)
    with pytest.raises(DecodeError) as info:
        decode_metrics(body, "application/x-protobuf")
    assert info.value.field == where
