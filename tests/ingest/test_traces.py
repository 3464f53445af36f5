"""Traces: OTLP JSON and protobuf spans, Zipkin v2, validation that names the field, and the served paths."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.errors import SchemaError
from ingest.traces import SPAN_KINDS, STATUS_CODES, decode_traces, decode_zipkin
from tests.conftest import LiveServer

T0 = 1_700_000_000_000_000_000  # ns
JSON_HEADERS = {"Content-Type": "application/json"}
PB_HEADERS = {"Content-Type": "application/x-protobuf"}

ids = st.binary(min_size=8, max_size=8).filter(any)
trace_ids = st.binary(min_size=16, max_size=16).filter(any)
span_st = st.fixed_dictionaries(
    {
        "trace_id": trace_ids,
        "span_id": ids,
        "parent": st.one_of(st.just(b""), ids),
        "name": st.text(max_size=20),
        "kind": st.integers(0, 5),
        "start": st.integers(1, 2**62),
        "duration_ns": st.integers(0, 10**12),
        "code": st.integers(0, 2),
        "message": st.text(max_size=10),
        "attrs": st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3),
    }
)
resources = st.lists(
    st.tuples(
        st.sampled_from(["cart", "checkout", "", "frontend"]), st.lists(span_st, min_size=1, max_size=4)
    ),
    min_size=1,
    max_size=3,
)


def _pb(resource_spans: list[tuple[str, list[dict[str, Any]]]]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for service, spans in resource_spans:
        rs = request.resource_spans.add()
        if service:
            kv = rs.resource.attributes.add(key="service.name")
            kv.value.string_value = service
        ss = rs.scope_spans.add()
        ss.scope.name = "lib"
        for s in spans:
            span = ss.spans.add(
                trace_id=s["trace_id"],
                span_id=s["span_id"],
                parent_span_id=s["parent"],
                name=s["name"],
                kind=s["kind"],
                start_time_unix_nano=s["start"],
                end_time_unix_nano=s["start"] + s["duration_ns"],
            )
            span.status.code = s["code"]
            span.status.message = s["message"]
            for key, value in s["attrs"].items():
                span.attributes.add(key=key).value.string_value = value
    return request


def _json(resource_spans: list[tuple[str, list[dict[str, Any]]]]) -> bytes:
    """The same request in the OTLP JSON mapping (hex ids, integer enums, 64-bit ints as strings)."""
    out = []
    for service, spans in resource_spans:
        resource = (
            {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]} if service else {}
        )
        rows = [
            {
                "traceId": s["trace_id"].hex(),
                "spanId": s["span_id"].hex(),
                "parentSpanId": s["parent"].hex(),
                "name": s["name"],
                "kind": s["kind"],
                "startTimeUnixNano": str(s["start"]),
                "endTimeUnixNano": str(s["start"] + s["duration_ns"]),
                "status": {"code": s["code"], "message": s["message"]},
                "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in s["attrs"].items()],
            }
            for s in spans
        ]
        out.append({"resource": resource, "scopeSpans": [{"scope": {"name": "lib"}, "spans": rows}]})
    return json.dumps({"resourceSpans": out}).encode()


@given(resources)
def test_protobuf_and_json_decode_to_the_same_rows(
    resource_spans: list[tuple[str, list[dict[str, Any]]]],
) -> None:
    pb = decode_traces(_pb(resource_spans).SerializeToString(), "application/x-protobuf").spans
    js = decode_traces(_json(resource_spans), "application/json").spans
    assert pb is not None and js is not None
    assert pb.to_pylist() == js.to_pylist()
    flat = [(svc, s) for svc, spans in resource_spans for s in spans]
    assert pb.num_rows == len(flat)
    for row, (svc, s) in zip(pb.to_pylist(), flat, strict=True):
        assert row["trace_id"] == s["trace_id"].hex() and row["span_id"] == s["span_id"].hex()
        assert row["parent_span_id"] == s["parent"].hex()
        assert row["service"] == (svc or "unknown")
        assert row["kind"] == SPAN_KINDS[s["kind"]] and row["status"] == STATUS_CODES[s["code"]]
        assert row["duration_us"] == s["duration_ns"] // 1000
        assert row["start_ts"].timestamp() == pytest.approx(s["start"] // 1000 / 1e6, abs=1e-3)
        assert json.loads(row["attributes"]) == s["attrs"]


# each bad value, where it goes, and the field path the error must name
BAD = [
    ("traceId", "abc", "traceId"),
    ("traceId", "00" * 16, "traceId"),
    ("traceId", "ab" * 8, "traceId"),
    ("spanId", "", "spanId"),
    ("spanId", "zz" * 8, "spanId"),
    ("parentSpanId", "ab" * 3, "parentSpanId"),
    ("kind", 9, "kind"),
    ("endTimeUnixNano", "1", "endTimeUnixNano"),
    ("startTimeUnixNano", "-5", "startTimeUnixNano"),
    ("status", {"code": 7}, "status.code"),
]


@given(st.sampled_from(BAD), st.integers(0, 2))
def test_a_bad_span_is_refused_naming_its_field(bad: tuple[str, Any, str], which: int) -> None:
    key, value, path = bad
    good = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "op",
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 1000),
    }
    spans = [dict(good) for _ in range(3)]
    spans[which][key] = value
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    with pytest.raises(SchemaError) as err:
        decode_traces(body, "application/json")
    assert err.value.field == f"resourceSpans[0].scopeSpans[0].spans[{which}].{path}"


def test_zipkin_spans_keep_kind_peer_and_error() -> None:
    body = json.dumps(
        [
            {
                "traceId": "5b8efff798038103d269b633813fc60c",
                "id": "eee19b7ec3c1b174",
                "parentId": "a2fb4a1d1a96d312",
                "name": "get /cart",
                "kind": "SERVER",
                "timestamp": T0 // 1000,
                "duration": 2500,
                "localEndpoint": {"serviceName": "cart"},
                "tags": {"http.status_code": "200"},
            },
            {
                "traceId": "463ac35c9f6413ad",
                "id": "a2fb4a1d1a96d312",
                "name": "get",
                "kind": "CLIENT",
                "timestamp": T0 // 1000,
                "duration": 3000,
                "localEndpoint": {"serviceName": "frontend"},
                "remoteEndpoint": {"serviceName": "cart"},
                "tags": {"error": "boom"},
            },
        ]
    ).encode()
    rows = decode_zipkin(body).spans.to_pylist()  # type: ignore[union-attr]
    assert [r["kind"] for r in rows] == ["server", "client"]
    assert rows[0]["parent_span_id"] == "a2fb4a1d1a96d312" and rows[0]["duration_us"] == 2500
    assert rows[1]["trace_id"] == "0000000000000000463ac35c9f6413ad"
    assert rows[1]["peer_service"] == "cart" and rows[1]["status"] == "error"
    assert rows[0]["status"] == "unset" and rows[0]["peer_service"] is None


@pytest.mark.parametrize(
    ("span", "path"),
    [
        ({"id": "eee19b7ec3c1b174", "timestamp": 1}, "[0].traceId"),
        ({"traceId": "ab" * 8, "id": "ab", "timestamp": 1}, "[0].id"),
        ({"traceId": "ab" * 8, "id": "ab" * 8}, "[0].timestamp"),
        ({"traceId": "ab" * 8, "id": "ab" * 8, "timestamp": 1, "kind": "SIDEWAYS"}, "[0].kind"),
        ({"traceId": "ab" * 8, "id": "ab" * 8, "timestamp": 1, "duration": -1}, "[0].duration"),
    ],
)
def test_bad_zipkin_spans_name_the_field(span: dict[str, Any], path: str) -> None:
    with pytest.raises(SchemaError) as err:
        decode_zipkin(json.dumps([span]).encode())
    assert err.value.field == path


def test_served_traces_commit_once_and_bad_ones_write_nothing(live_server: LiveServer) -> None:
    spans = [
        {
            "trace_id": bytes.fromhex("5b8efff798038103d269b633813fc60c"),
            "span_id": bytes([1] * 8),
            "parent": b"",
            "name": "GET /",
            "kind": 2,
            "start": T0,
            "duration_ns": 5_000_000,
            "code": 0,
            "message": "",
            "attrs": {},
        },
        {
            "trace_id": bytes.fromhex("5b8efff798038103d269b633813fc60c"),
            "span_id": bytes([2] * 8),
            "parent": bytes([1] * 8),
            "name": "SELECT",
            "kind": 3,
            "start": T0 + 1_000_000,
            "duration_ns": 2_000_000,
            "code": 2,
            "message": "timeout",
            "attrs": {"peer.service": "db"},
        },
    ]
    with live_server.client() as c:
        pb = _pb([("cart", spans)]).SerializeToString()
        r = c.post("/v1/traces", content=pb, headers=PB_HEADERS)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-protobuf")
        assert c.post("/v1/traces", content=pb, headers=PB_HEADERS).status_code == 200  # redelivery
        assert c.post("/v1/traces", content=_json([("web", spans)]), headers=JSON_HEADERS).json() == {}
        bad = json.loads(_json([("web", spans)]))
        bad["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = "00"
        r = c.post("/v1/traces", content=json.dumps(bad), headers=JSON_HEADERS)
        assert r.status_code == 422 and "spans[1].spanId" in r.json()["message"]
        zipkin = [{"traceId": "ab" * 16, "id": "cd" * 8, "timestamp": T0 // 1000, "duration": 7, "name": "x"}]
        assert c.post("/api/v2/spans", json=zipkin).status_code == 202
        r = c.post("/api/v2/spans", json=[{"traceId": "ab" * 16, "id": "cd"}])
        assert r.status_code == 422 and "[0].id" in r.text
        assert (
            c.post(
                "/v1/traces", content=pb, headers=PB_HEADERS | {"Authorization": "Bearer nope"}
            ).status_code
            == 401
        )
    rows = live_server.store.query(
        "SELECT service, operation, kind, status, peer_service, duration_us FROM spans ORDER BY service, start_ts"
    )
    assert rows == [
        ("cart", "GET /", "server", "unset", None, 5000),
        ("cart", "SELECT", "client", "error", "db", 2000),
        ("unknown", "x", "unspecified", "unset", None, 7),
        ("web", "GET /", "server", "unset", None, 5000),
        ("web", "SELECT", "client", "error", "db", 2000),
    ]
