"""The incident API on a real server: listing, keyset pagination, detail, lifecycle, scopes, alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.common import decode_cursor, encode_cursor, parse_statuses
from core.errors import SchemaError
from core.model import Alert, AlertStatus, Incident, IncidentStatus, TimelineEntry
from core.settings import Settings
from tests.api.alerting import am_webhook, assert_needs_scope, incident, post_webhook, seed, utcnow, wait_for
from tests.conftest import LiveServer, free_port, serving

T0 = datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for the module; every test works on its own services."""
    path: Path = tmp_path_factory.mktemp("incidents") / "incidents.duckdb"
    with serving(Settings(db=str(path), port=free_port())) as live:
        yield live


# ------------------------------------------------------------------ cursor and parameters


@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
    st.text(min_size=1, max_size=40),
)
def test_a_cursor_decodes_to_what_it_encodes(opened_at: datetime, iid: str) -> None:
    cursor = encode_cursor(opened_at, iid)
    assert decode_cursor(cursor) == (opened_at, iid)
    assert cursor.isascii() and "=" not in cursor


@given(st.text(max_size=60))
def test_any_other_text_is_rejected_naming_the_cursor_or_decodes_cleanly(text: str) -> None:
    try:
        opened_at, iid = decode_cursor(text)
    except SchemaError as exc:
        assert exc.field == "cursor"
    else:  # base64 decoding is lenient: whatever it accepts must be a well-formed position
        assert iid and opened_at.tzinfo is None
        assert decode_cursor(encode_cursor(opened_at, iid)) == (opened_at, iid)


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        (["open"], ["open"]),
        (["active"], ["open", "acknowledged", "mitigated"]),
        (["open,closed"], ["open", "closed"]),
        (["Resolved", "resolved"], ["resolved"]),
        ([], []),
    ],
    ids=["literal", "active", "comma", "dedup-case", "none"],
)
def test_status_parameter(given_: list[str], expected: list[str]) -> None:
    assert parse_statuses("status", given_) == expected


# ------------------------------------------------------------------ listing


def test_pagination_is_stable_while_new_incidents_arrive(server: LiveServer) -> None:
    svc = "paged"
    # 24 incidents, three per second, so the id has to break ties inside the cursor
    first = [incident(f"PG-{k:03d}", T0 + timedelta(seconds=k // 3), svc) for k in range(24)]
    seed(server.store, first)
    expected = sorted(first, key=lambda i: (i.opened_at, i.id), reverse=True)
    late: list[Incident] = []
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    with server.client() as c:
        while True:
            params: dict[str, Any] = {"service": svc, "limit": 5}
            if cursor:
                params["cursor"] = cursor
            r = c.get("/api/v1/incidents", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            if pages == 0:
                assert body["total"] == 24
            seen += [i["id"] for i in body["items"]]
            cursor = body["next_cursor"]
            pages += 1
            # between pages: one newer incident, and one older than everything seen so far
            newer = incident(f"PG-new-{pages}", T0 + timedelta(hours=1, seconds=pages), svc)
            older = incident(f"PG-old-{pages}", T0 - timedelta(hours=1, seconds=pages), svc)
            seed(server.store, [newer, older])
            late += [older]
            if cursor is None:
                break
            assert pages < 20
    # every incident that existed, and every older one that arrived, exactly once, newest first;
    # newer arrivals sit before the cursor and are (rightly) not served by this walk
    older_seen = [i for i in late if i.id in seen]
    want = [i.id for i in expected] + [
        i.id for i in sorted(older_seen, key=lambda i: i.opened_at, reverse=True)
    ]
    assert seen == want
    assert len(seen) == len(set(seen))
    # every older arrival but the one seeded after the last page was read
    assert [i.id for i in older_seen] == [i.id for i in late[:-1]]


def test_filters_by_status_priority_service_and_since(server: LiveServer) -> None:
    svc = "filtered"
    statuses = list(IncidentStatus)
    seeded = [
        incident(f"FL-{k}", T0 + timedelta(minutes=k), svc, status, f"P{k % 4 + 1}")
        for k, status in enumerate(statuses)
    ]
    seed(server.store, seeded)

    def ids(**params: Any) -> list[str]:
        r = c.get("/api/v1/incidents", params={"service": svc, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == len(body["items"])
        return sorted(i["id"] for i in body["items"])

    by_status = {i.status.value: i.id for i in seeded}
    with server.client() as c:
        assert ids() == sorted(by_status.values())
        assert ids(status="open") == [by_status["open"]]
        assert ids(status="active") == sorted(by_status[s] for s in ("open", "acknowledged", "mitigated"))
        assert ids(status=["resolved", "closed"]) == sorted([by_status["resolved"], by_status["closed"]])
        assert ids(priority="P2") == ["FL-1"]
        assert ids(priority=["P1", "p4"]) == ["FL-0", "FL-3", "FL-4"]
        assert ids(since=(T0 + timedelta(minutes=3)).isoformat() + "Z") == ["FL-3", "FL-4"]
        assert ids(status="active", priority="P1") == ["FL-0"]
        assert c.get("/api/v1/incidents", params={"service": "no-such-service"}).json() == {
            "items": [],
            "next_cursor": None,
            "total": 0,
        }
        item = c.get("/api/v1/incidents", params={"service": svc, "status": "open"}).json()["items"][0]
    for key in ("id", "title", "status", "priority", "opened_at", "resolved_at", "services", "team"):
        assert key in item
    assert item["opened_at"] == "2026-03-01T12:00:00Z" and item["services"] == [svc]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"priority": "P9"}, "priority"),
        ({"since": "last tuesday"}, "since"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": encode_cursor(T0, "x")[:-3]}, "cursor"),
        ({"limit": 0}, "query.limit"),
    ],
    ids=["status", "priority", "since", "cursor-garbage", "cursor-truncated", "limit"],
)
def test_bad_parameters_are_422_naming_the_parameter(
    server: LiveServer, params: dict[str, Any], field: str
) -> None:
    with server.client() as c:
        r = c.get("/api/v1/incidents", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


# ------------------------------------------------------------------ one incident


def test_lifecycle_walk_records_every_step_on_the_timeline(server: LiveServer) -> None:
    opened = utcnow() - timedelta(minutes=10)
    alert = Alert(
        "life-alert-1", "alertmanager:life", "DiskFull", AlertStatus.FIRING, opened, service="life",
        severity="critical", source="alertmanager", incident_id="LIFE-1",
    )  # fmt: skip
    seed(
        server.store,
        [incident("LIFE-1", opened, "life")],
        [alert],
        [("LIFE-1", 0, TimelineEntry(opened, "opened", "opsloop", "opened: a critical alert"))],
    )
    with server.client() as c:
        acked = c.post("/api/v1/incidents/LIFE-1/ack")
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged" and acked.json()["acknowledged_at"]
        mitigated = c.post("/api/v1/incidents/LIFE-1/mitigate", json={"by": "ann", "comment": "rolled back"})
        assert mitigated.json()["status"] == "mitigated" and mitigated.json()["mitigated_at"]
        conflict = c.post("/api/v1/incidents/LIFE-1/close")
        assert conflict.status_code == 409
        assert "LIFE-1" in conflict.json()["error"] and "mitigated" in conflict.json()["error"]
        resolved = c.post("/api/v1/incidents/LIFE-1/resolve", json={})
        assert resolved.json()["status"] == "resolved" and resolved.json()["resolved_at"]
        assigned = c.post("/api/v1/incidents/LIFE-1/assign", json={"team": "storage", "assignee": "bob"})
        assert assigned.status_code == 200, assigned.text
        assert (assigned.json()["team"], assigned.json()["assignee"]) == ("storage", "bob")
        noted = c.post("/api/v1/incidents/LIFE-1/note", json={"text": "  disk was 99% full  "})
        assert noted.status_code == 201, noted.text
        assert noted.json()["kind"] == "note" and noted.json()["text"] == "disk was 99% full"
        assert noted.json()["actor"] == "tests"
        closed = c.post("/api/v1/incidents/LIFE-1/close", json={"comment": "postmortem filed"})
        assert closed.json()["status"] == "closed" and closed.json()["closed_at"]
        again = c.post("/api/v1/incidents/LIFE-1/ack")
        assert again.status_code == 409 and "closed" in again.json()["error"]
        assert c.post("/api/v1/incidents/LIFE-1/assign", json={"team": "x"}).status_code == 409
        detail = c.get("/api/v1/incidents/LIFE-1").json()
        listed = c.get("/api/v1/incidents", params={"service": "life"}).json()["items"]
    assert detail["status"] == "closed" and [a["id"] for a in detail["alerts"]] == ["life-alert-1"]
    assert listed == [{k: v for k, v in detail.items() if k not in ("alerts", "timeline")}]
    steps = [
        (e["detail"].get("to"), e["actor"], e["text"]) for e in detail["timeline"] if e["kind"] == "status"
    ]
    assert steps == [
        ("acknowledged", "tests", "open -> acknowledged"),
        ("mitigated", "ann", "rolled back"),
        ("resolved", "tests", "mitigated -> resolved"),
        ("closed", "tests", "postmortem filed"),
    ]
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds == ["opened", "status", "status", "status", "assigned", "note", "status"]
    times = [e["at"] for e in detail["timeline"]]
    assert times[1:] == sorted(times[1:])


def test_unknown_incidents_are_404_naming_the_id(server: LiveServer) -> None:
    with server.client() as c:
        for method, path, body in [
            ("GET", "/api/v1/incidents/INC-404", None),
            ("POST", "/api/v1/incidents/INC-404/ack", None),
            ("POST", "/api/v1/incidents/INC-404/close", {"by": "ann"}),
            ("POST", "/api/v1/incidents/INC-404/assign", {"assignee": "bob"}),
            ("POST", "/api/v1/incidents/INC-404/note", {"text": "hello"}),
        ]:
            r = c.request(method, path, json=body)
            assert r.status_code == 404, (path, r.text)
            assert "INC-404" in r.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("assign", {}, "team"),
        ("assign", {"team": " ", "assignee": ""}, "team"),
        ("note", {"text": "   "}, "text"),
        ("note", {}, "text"),
        ("ack", {"by": 5}, "by"),
    ],
    ids=["assign-empty", "assign-blank", "note-blank", "note-missing", "ack-bad-actor"],
)
def test_bad_command_bodies_are_422_naming_the_field(
    server: LiveServer, path: str, body: dict[str, Any], field: str
) -> None:
    seed(server.store, [incident("BAD-1", T0, "bad-bodies")])
    with server.client() as c:
        r = c.post(f"/api/v1/incidents/BAD-1/{path}", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    if path == "assign":
        assert "assignee" in r.json()["error"]


ENDPOINTS = [
    ("GET", "/api/v1/incidents", None, "read"),
    ("GET", "/api/v1/incidents/INC-1", None, "read"),
    ("GET", "/api/v1/alerts", None, "read"),
    ("POST", "/api/v1/incidents/INC-1/ack", None, "write"),
    ("POST", "/api/v1/incidents/INC-1/mitigate", None, "write"),
    ("POST", "/api/v1/incidents/INC-1/resolve", None, "write"),
    ("POST", "/api/v1/incidents/INC-1/close", None, "write"),
    ("POST", "/api/v1/incidents/INC-1/assign", {"team": "x"}, "write"),
    ("POST", "/api/v1/incidents/INC-1/note", {"text": "x"}, "write"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_every_endpoint_needs_its_scope(
    server: LiveServer, method: str, path: str, body: dict[str, Any] | None, scope: str
) -> None:
    assert_needs_scope(server, method, path, body, scope)


# ------------------------------------------------------------------ alerts from Alertmanager


def test_a_critical_alertmanager_alert_opens_an_incident(server: LiveServer) -> None:
    with server.client() as c:
        post_webhook(c, am_webhook("checkout-crit"))

        def opened() -> dict[str, Any] | None:
            items = c.get("/api/v1/incidents", params={"service": "checkout-crit"}).json()["items"]
            return items[0] if items else None

        inc = wait_for(opened)
        detail = c.get(f"/api/v1/incidents/{inc['id']}").json()
        firing = c.get("/api/v1/alerts", params={"status": "firing"}).json()["items"]
        assert c.get("/api/v1/alerts", params={"status": "resolved"}).json()["items"] == [
            a for a in c.get("/api/v1/alerts").json()["items"] if a["status"] == "resolved"
        ]
        bad = c.get("/api/v1/alerts", params={"status": "burning"})
    assert inc["status"] == "open" and inc["alert_count"] == 1 and "HighErrorRate" in inc["title"]
    assert [a["service"] for a in detail["alerts"]] == ["checkout-crit"]
    assert detail["alerts"][0]["incident_id"] == inc["id"] and detail["alerts"][0]["suppressed_by"] is None
    assert [e["kind"] for e in detail["timeline"]] == ["alert", "opened"]
    mine = [a for a in firing if a["service"] == "checkout-crit"]
    assert len(mine) == 1 and mine[0]["incident_id"] == inc["id"]
    assert all(a["status"] in ("firing", "flapping") for a in firing)
    assert bad.status_code == 422 and bad.json()["field"] == "status"
