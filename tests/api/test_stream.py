"""The live stream on a real server: Server-Sent Events from the store, resumed with Last-Event-ID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.events import Position, events_after, latest_position
from core.errors import SchemaError
from core.settings import Settings
from core.store import Store
from tests.api.alerting import incident, seed, utcnow
from tests.conftest import LiveServer, free_port, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("stream") / "stream.duckdb"
    with serving(Settings(db=str(path), port=free_port())) as live:
        yield live


def read_events(resp: httpx.Response, n: int) -> list[dict[str, Any]]:
    """The next ``n`` events of an open stream: ``{id, event, data}``."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in resp.iter_lines():
        if not line:
            if "data" in current:
                out.append(current)
                if len(out) == n:
                    return out
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            current[key] = value.removeprefix(" ")
            if key == "data":
                current["data"] = json.loads(current["data"])
    raise AssertionError(f"stream ended after {out}")


def note(client: httpx.Client, iid: str, text: str) -> None:
    assert client.post(f"/api/v1/incidents/{iid}/note", json={"text": text}).status_code == 201


def test_a_client_that_disconnects_and_resumes_misses_nothing(server: LiveServer) -> None:
    seed(server.store, [incident("ST-1", utcnow(), "streamed")])
    start = str(latest_position(server.store))
    with server.client() as client:
        with client.stream("GET", "/api/v1/stream", params={"last_event_id": start}) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            for k in range(3):
                note(client, "ST-1", f"step {k}")
            first = read_events(resp, 2)
        for k in range(3, 6):  # written while no client listens
            note(client, "ST-1", f"step {k}")
        assert client.post("/api/v1/incidents/ST-1/resolve", json={}).status_code == 200
        with client.stream("GET", "/api/v1/stream", headers={"Last-Event-ID": first[-1]["id"]}) as resp:
            rest = read_events(resp, 5)
    texts = [e["data"]["text"] for e in first + rest if e["event"] == "incident.updated"]
    assert texts == [f"step {k}" for k in range(6)]
    assert rest[-1]["event"] == "incident.resolved" and rest[-1]["data"]["to"] == "resolved"
    ids = [e["id"] for e in first + rest]
    assert len(set(ids)) == len(ids)


def test_the_stream_needs_a_token_and_a_well_formed_id(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/api/v1/stream").status_code == 401
    with server.client() as client:
        resp = client.get("/api/v1/stream", headers={"Last-Event-ID": "not-an-id"})
    assert resp.status_code == 422 and "Last-Event-ID" in resp.text


@given(st.tuples(*[st.integers(min_value=-1, max_value=2**62)] * 3))
def test_a_position_reads_back_what_it_writes(values: tuple[int, int, int]) -> None:
    assert Position.parse(str(Position(*values))) == Position(*values)


@given(st.text(max_size=30))
def test_any_other_id_is_refused_naming_the_header_or_reads_cleanly(text: str) -> None:
    try:
        pos = Position.parse(text)
    except SchemaError as exc:
        assert exc.field == "Last-Event-ID"
    else:
        assert Position.parse(str(pos)) == pos


def test_slo_events_are_state_changes_only_and_anomalies_stream(store: Store) -> None:
    t0 = datetime(2026, 3, 1)
    states = ["healthy", "healthy", "warning", "warning", "exhausted", "healthy"]
    with store.transaction() as con:
        for k, state in enumerate(states):
            con.execute(
                "INSERT INTO slo_snapshots (slo, \"at\", state, budget_remaining) VALUES ('api', ?, ?, ?)",
                [t0 + timedelta(minutes=k), state, 1.0 - k / 10],
            )
        con.execute(
            "INSERT INTO anomalies (id, series_id, ts, value, probability) VALUES ('an-1', 7, ?, 3.5, 0.9999)",
            [t0 + timedelta(seconds=90)],
        )
    got = [e for e, _ in events_after(store, Position()) if e.type]
    assert [(e.type, e.data.get("state")) for e in got] == [
        ("slo.state", "healthy"), ("anomaly", None), ("slo.state", "warning"),
        ("slo.state", "exhausted"), ("slo.state", "healthy"),
    ]  # fmt: skip
    # resuming after every position yields exactly the remaining events
    positions = [p for _, p in events_after(store, Position())]
    for k, p in enumerate(positions):
        later = [e.rowid for e, _ in events_after(store, p) if e.type]
        assert later == [e.rowid for e, _ in list(events_after(store, Position()))[k + 1 :] if e.type]
