"""Remote-write 1.0 receiver, exercised with bodies from the real snappy encoder."""

from __future__ import annotations

import math
import struct

import httpx
import pytest
import snappy  # python-snappy: the reference block-format encoder Prometheus-compatible clients use
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.remote_write import REQUEST_HEADERS, encode_write_request, write_request_proto
from tests.conftest import LiveServer

HEADERS = {**REQUEST_HEADERS, "User-Agent": "opsloop-tests/1"}
STALE = struct.unpack("<d", bytes.fromhex("020000000000f07f"))[0]


def body_of(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    """Compress with python-snappy, the independent block-format encoder, not our own code."""
    return bytes(snappy.compress(write_request_proto(series)))


def test_samples_land_with_labels_and_stale_markers(live_server: LiveServer) -> None:
    body = body_of(
        [
            (
                {"__name__": "node_load1", "instance": "a:9100", "job": "node"},
                [(1_700_000_000_000, 0.5), (1_700_000_015_000, STALE)],
            ),
            ({"__name__": "up", "instance": "a:9100", "job": "node"}, [(1_700_000_000_000, 1.0)]),
        ]
    )
    with live_server.client() as c:
        r = c.post("/api/v1/write", content=body, headers=HEADERS)
    assert r.status_code == 204, r.text
    rows = live_server.store.query(
        "SELECT s.name, s.labels['job'], s.service, p.ts, p.value FROM points p JOIN series s USING (series_id) "
        "ORDER BY s.name, p.ts"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [("node_load1", "node", "node")] * 2 + [
        ("up", "node", "node")
    ]
    assert rows[0][4] == 0.5
    assert rows[1][4] is None  # stale marker stored as NULL
    assert rows[2][3].isoformat() == "2023-11-14T22:13:20"


def test_plain_nan_is_a_value_not_a_stale_marker(live_server: LiveServer) -> None:
    body = body_of([({"__name__": "x"}, [(1, float("nan"))])])
    with live_server.client() as c:
        assert c.post("/api/v1/write", content=body, headers=HEADERS).status_code == 204
    (value,) = live_server.store.query("SELECT value FROM points")[0]
    assert value is not None and math.isnan(value)


def test_redelivery_is_stored_once(live_server: LiveServer) -> None:
    body = encode_write_request([({"__name__": "m", "a": "b"}, [(t, float(t)) for t in range(100)])])
    with live_server.client() as c:
        for _ in range(3):
            assert c.post("/api/v1/write", content=body, headers=HEADERS).status_code == 204
    assert live_server.store.query("SELECT count(*) FROM points")[0][0] == 100


@pytest.mark.parametrize(
    ("series", "field"),
    [
        ([({"job": "x"}, [(1, 1.0)])], "timeseries[0].labels"),
        (
            [({"__name__": "ok"}, [(1, 1.0)]), ({"__name__": "1bad"}, [(1, 1.0)])],
            "timeseries[1].labels.__name__",
        ),
        ([({"__name__": "m", "bad-name": "v"}, [(1, 1.0)])], "timeseries[0].labels[1].name"),
        ([({"__name__": "m", "a": ""}, [(1, 1.0)])], "timeseries[0].labels[1].value"),
    ],
    ids=["missing-name", "bad-metric-name", "bad-label-name", "empty-label-value"],
)
def test_invalid_series_get_400_naming_the_field_and_write_nothing(
    live_server: LiveServer, series: list[tuple[dict[str, str], list[tuple[int, float]]]], field: str
) -> None:
    with live_server.client() as c:
        r = c.post("/api/v1/write", content=body_of(series), headers=HEADERS)
    assert r.status_code == 400
    assert field in r.text
    assert live_server.store.query("SELECT count(*) FROM points")[0][0] == 0


def test_auth_and_media_types(live_server: LiveServer) -> None:
    body = encode_write_request([({"__name__": "m"}, [(1, 1.0)])])
    with httpx.Client(base_url=live_server.url) as anon:
        assert anon.post("/api/v1/write", content=body, headers=HEADERS).status_code == 401
        basic = anon.post(
            "/api/v1/write", content=body, headers=HEADERS, auth=("prometheus", live_server.token)
        )
        assert basic.status_code == 204
    with live_server.client() as c:
        v2 = dict(HEADERS, **{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"})
        assert c.post("/api/v1/write", content=body, headers=v2).status_code == 415
        big = snappy.compress(b"\x00" * (live_server.settings.max_body_bytes + 10))
        assert c.post("/api/v1/write", content=big, headers=HEADERS).status_code == 413


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(snappy.compress),
        st.binary(min_size=1, max_size=200).map(lambda b: snappy.compress(b"\x0a" + bytes([len(b) + 5]) + b)),
    )
)
def test_garbage_gets_4xx_never_5xx_and_writes_nothing(live_server: LiveServer, payload: bytes) -> None:
    before = live_server.store.query("SELECT count(*) FROM points")[0][0]
    with live_server.client() as c:
        r = c.post("/api/v1/write", content=payload, headers=HEADERS)
    if r.status_code == 204:  # an accidentally valid (possibly empty) WriteRequest is fine
        return
    assert 400 <= r.status_code < 500, r.text
    assert r.text.strip()
    assert live_server.store.query("SELECT count(*) FROM points")[0][0] == before
