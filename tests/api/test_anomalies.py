"""Anomalies over HTTP on a real server: remote-write points with a spike -> anomaly, band, feedback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from core.store import Store
from ingest.remote_write import encode_write_request
from tests.conftest import LiveServer, free_port, serving, start_server

RW = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
T0_MS = 1_700_000_000_000
STEP_MS = 60_000
SPIKE_AT = 150


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose threshold sits well below any detector's verdict on a 1000x spike."""
    settings = Settings(
        db=str(tmp_path / "anomalies.duckdb"),
        port=free_port(),
        detect_threshold=0.6,
        detect_threshold_min=0.5,
        detect_feedback_step=2.0,  # a false positive halves the tail: 0.6 -> 0.8
    )
    with serving(settings) as live:
        yield live


def post_stream(c: httpx.Client, points: int = 200) -> None:
    series = []
    for i, service in enumerate(("checkout", "search", "search")):
        values = [100.0 + (0.5 if t % 2 else -0.5) for t in range(points)]
        if i == 1:
            values[SPIKE_AT] = 100_000.0
        labels = {"__name__": "latency_ms", "service": service, "pod": f"p{i}"}
        series.append((labels, [(T0_MS + t * STEP_MS, v) for t, v in enumerate(values)]))
    r = c.post("/api/v1/write", content=encode_write_request(series), headers=RW)
    assert r.status_code == 204, r.text


def wait_for_spike(c: httpx.Client, timeout: float = 20.0) -> dict[str, Any]:
    spike_ts = datetime.fromtimestamp((T0_MS + SPIKE_AT * STEP_MS) / 1000, UTC).replace(tzinfo=None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for a in c.get("/api/v1/anomalies", params={"limit": 1000}).json()["items"]:
            if a["ts"] == spike_ts.isoformat() + "Z":
                return dict(a)
        time.sleep(0.05)
    raise AssertionError("the spike never became an anomaly")


def test_spike_becomes_an_anomaly_with_a_queryable_band(server: LiveServer) -> None:
    with server.client() as c:
        post_stream(c)
        a = wait_for_spike(c)
        assert a["value"] == 100_000.0 and a["direction"] == "up" and a["probability"] >= 0.6
        assert a["lower"] <= a["expected"] <= a["upper"] < a["value"]
        assert a["service"] == "search"
        band = c.get(f"/api/v1/series/{a['series_id']}/band").json()
        assert len(band["points"]) == 200
        assert all(p["lower"] <= p["expected"] <= p["upper"] for p in band["points"][50:])
        window = c.get(
            f"/api/v1/series/{a['series_id']}/band",
            params={"start": a["ts"], "end": str((T0_MS + (SPIKE_AT + 9) * STEP_MS) / 1000)},
        ).json()["points"]
        assert [p["ts"] for p in window][:1] == [a["ts"]] and len(window) == 10

        by_series = c.get("/api/v1/anomalies", params={"series_id": a["series_id"], "limit": 1000}).json()[
            "items"
        ]
        assert by_series and {x["series_id"] for x in by_series} == {a["series_id"]}
        assert all(
            x["service"] == "checkout"
            for x in c.get("/api/v1/anomalies", params={"service": "checkout"}).json()["items"]
        )
        assert c.get("/api/v1/anomalies", params={"since": "2099-01-01T00:00:00Z"}).json()["items"] == []
        assert len(c.get("/api/v1/anomalies", params={"limit": 1}).json()["items"]) == 1
        bad = c.get("/api/v1/anomalies", params={"since": "yesterday"})
        assert bad.status_code == 422 and bad.json()["field"] == "since"
        metrics = c.get("/metrics").text
    names = {f.name for f in text_string_to_metric_families(metrics)}
    assert {
        "opsloop_detect_points_scored",
        "opsloop_detect_lag_seconds",
        "opsloop_anomalies",
        "opsloop_detect_backlog_points",
    } <= names


def test_feedback_moves_the_threshold_and_is_recorded(server: LiveServer) -> None:
    with server.client() as c:
        post_stream(c)
        a = wait_for_spike(c)
        fp = c.post(
            f"/api/v1/anomalies/{a['id']}/feedback", json={"verdict": "false_positive", "user": "ann"}
        )
        assert fp.status_code == 200, fp.text
        assert fp.json()["threshold_before"] == 0.6 and fp.json()["threshold"] == 0.8
        tp = c.post(
            f"/api/v1/anomalies/{a['id']}/feedback", json={"verdict": "true_positive", "comment": "real"}
        )
        assert tp.json()["threshold_before"] == 0.8 and tp.json()["threshold"] == 0.6
        assert tp.json()["threshold"] >= server.settings.detect_threshold_min
    rows = server.store.query(
        'SELECT verdict, "user", comment, threshold_before, threshold_after FROM anomaly_feedback '
        'WHERE anomaly_id = ? ORDER BY "at"',
        [a["id"]],
    )
    assert rows == [("false_positive", "ann", None, 0.6, 0.8), ("true_positive", None, "real", 0.8, 0.6)]


def test_feedback_errors_name_the_object_or_field(server: LiveServer) -> None:
    reader = server.store.create_token(["read"], "reader")
    with server.client() as c:
        missing = c.post("/api/v1/anomalies/nope/feedback", json={"verdict": "true_positive"})
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        bad = c.post("/api/v1/anomalies/nope/feedback", json={"verdict": "meh"})
        assert bad.status_code == 422 and bad.json()["field"] == "verdict"
        assert c.post("/api/v1/anomalies/x/feedback", json={}).json()["field"] == "verdict"
        assert c.get("/api/v1/series/abc/band").status_code == 422
    with server.client(reader) as c:
        assert c.get("/api/v1/anomalies").status_code == 200
        denied = c.post("/api/v1/anomalies/nope/feedback", json={"verdict": "true_positive"})
        assert denied.status_code == 403 and "write" in denied.text
    with httpx.Client(base_url=server.url) as anon:
        assert anon.get("/api/v1/anomalies").status_code == 401


def test_detection_can_be_switched_off(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "off.duckdb"), port=free_port(), auth=False, detect_enabled=False)
    store = Store(settings.db)
    uv, thread = start_server(settings, store)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.port}") as c:
            post_stream(c)
            time.sleep(0.5)
            assert c.get("/api/v1/anomalies").json()["items"] == []
        assert store.query("SELECT count(*) FROM bands")[0][0] == 0
    finally:
        uv.should_exit = True
        thread.join(15)
        store.close()
