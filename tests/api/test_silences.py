"""Silences (Alertmanager's shapes) and maintenance windows on a real server, and what they mute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from tests.api.alerting import (
    alerts_of_service,
    am_webhook,
    assert_needs_scope,
    post_webhook,
    utcnow,
    wait_for,
)
from tests.conftest import LiveServer, free_port, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for the module; every test works on its own services."""
    path: Path = tmp_path_factory.mktemp("silences") / "silences.duckdb"
    with serving(Settings(db=str(path), port=free_port())) as live:
        yield live


def iso(minutes: float) -> str:
    """Now plus ``minutes``, as RFC 3339 UTC."""
    return (utcnow() + timedelta(minutes=minutes)).isoformat() + "Z"


def silence_body(service: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "matchers": [{"name": "service", "value": service, "isRegex": False, "isEqual": True}],
        "startsAt": iso(-5),
        "endsAt": iso(60),
        "createdBy": "ann",
        "comment": "planned upgrade",
    }
    body.update(changes)
    return body


def window_body(service: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"services": [service], "start": iso(-5), "end": iso(60), "reason": "db upgrade"}
    body.update(changes)
    return body


def incidents_of(c: httpx.Client, service: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = c.get("/api/v1/incidents", params={"service": service}).json()["items"]
    return items


# ------------------------------------------------------------------ silences


def test_silence_crud_in_alertmanager_shapes(server: LiveServer) -> None:
    with server.client() as c:
        created = c.post("/api/v1/silences", json=silence_body("crud", matchers=[
            {"name": "service", "value": "crud", "isRegex": False, "isEqual": True},
            {"name": "severity", "value": "info|debug", "isRegex": True, "isEqual": False},
        ]))  # fmt: skip
        assert created.status_code == 200, created.text
        sid = created.json()["silenceID"]
        got = c.get(f"/api/v1/silences/{sid}").json()
        assert got["id"] == sid and got["status"] == {"state": "active"}
        assert got["createdBy"] == "ann" and got["comment"] == "planned upgrade"
        assert got["matchers"][1] == {
            "name": "severity",
            "value": "info|debug",
            "isRegex": True,
            "isEqual": False,
        }
        assert got["endsAt"].endswith("Z") and got["startsAt"] < got["endsAt"]
        assert sid in [s["id"] for s in c.get("/api/v1/silences").json()["items"]]

        updated = c.post("/api/v1/silences", json=silence_body("crud", id=sid, comment="longer upgrade"))
        assert updated.json() == {"silenceID": sid}
        assert c.get(f"/api/v1/silences/{sid}").json()["comment"] == "longer upgrade"
        pending = c.post("/api/v1/silences", json=silence_body("crud", startsAt=iso(30))).json()["silenceID"]

        expired = c.delete(f"/api/v1/silences/{sid}")
        assert expired.status_code == 200 and expired.json()["status"] == {"state": "expired"}
        listed = c.get("/api/v1/silences").json()["items"]
        states = {s["id"]: s["status"]["state"] for s in listed}
        assert states[sid] == "expired" and states[pending] == "pending"
        order = {"active": 0, "pending": 1, "expired": 2}
        assert [order[s["status"]["state"]] for s in listed] == sorted(
            order[s["status"]["state"]] for s in listed
        )

        # a pending silence expires before it ever starts
        assert c.delete(f"/api/v1/silences/{pending}").json()["status"] == {"state": "expired"}
        assert c.get(f"/api/v1/silences/{pending}").json()["status"] == {"state": "expired"}

        # updating an expired silence makes a new one, as Alertmanager does
        renewed = c.post("/api/v1/silences", json=silence_body("crud", id=sid)).json()["silenceID"]
        assert renewed != sid and c.get(f"/api/v1/silences/{renewed}").json()["status"]["state"] == "active"
        assert c.get(f"/api/v1/silences/{sid}").json()["status"]["state"] == "expired"


def test_unknown_silences_are_404_naming_the_id(server: LiveServer) -> None:
    with server.client() as c:
        for r in (
            c.get("/api/v1/silences/ghost-1"),
            c.delete("/api/v1/silences/ghost-1"),
            c.post("/api/v1/silences", json=silence_body("x", id="ghost-1")),
        ):
            assert r.status_code == 404, r.text
            assert "ghost-1" in r.json()["error"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"matchers": []}, "matchers"),
        ({"matchers": [{"name": "service", "value": "(", "isRegex": True}]}, "matchers"),
        ({"matchers": [{"name": "service", "value": ".*", "isRegex": True}]}, "matchers"),
        ({"matchers": [{"name": "", "value": "x"}]}, "matchers[0].name"),
        ({"matchers": [{"name": "service"}]}, "matchers.0.value"),
        ({"endsAt": iso(-10)}, "endsAt"),
        ({"startsAt": iso(120)}, "endsAt"),
        ({"startsAt": "tomorrow"}, "startsAt"),
        ({"createdBy": ""}, "createdBy"),
        ({"comment": " "}, "comment"),
    ],
    ids=[
        "no-matchers", "bad-regex", "matches-everything", "nameless", "valueless", "ended", "ends-before-start",
        "bad-time", "no-author", "no-comment",
    ],
)  # fmt: skip
def test_bad_silences_are_422_naming_the_field(
    server: LiveServer, changes: dict[str, Any], field: str
) -> None:
    with server.client() as c:
        r = c.post("/api/v1/silences", json=silence_body("bad", **changes))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_a_silenced_alert_is_kept_but_opens_no_incident(server: LiveServer) -> None:
    with server.client() as c:
        sid = c.post("/api/v1/silences", json=silence_body("quiet")).json()["silenceID"]
        post_webhook(c, am_webhook("quiet"))
        (alert,) = wait_for(lambda: alerts_of_service(c, "quiet"))
        assert alert["suppressed_by"] == f"silence:{sid}" and alert["incident_id"] is None
        assert alert["severity"] == "critical"
        assert incidents_of(c, "quiet") == []

        # expiring the silence un-mutes the next alert
        assert c.delete(f"/api/v1/silences/{sid}").status_code == 200
        post_webhook(c, am_webhook("quiet", name="LatencyHigh"))
        opened = wait_for(lambda: incidents_of(c, "quiet") or None)
    assert len(opened) == 1 and "LatencyHigh" in opened[0]["title"]


def test_a_silence_on_another_service_does_not_mute(server: LiveServer) -> None:
    with server.client() as c:
        c.post("/api/v1/silences", json=silence_body("someone-else"))
        post_webhook(c, am_webhook("loud"))
        opened = wait_for(lambda: incidents_of(c, "loud") or None)
        (alert,) = alerts_of_service(c, "loud") or []
    assert alert["suppressed_by"] is None and alert["incident_id"] == opened[0]["id"]


# ------------------------------------------------------------------ maintenance windows


def test_maintenance_window_crud(server: LiveServer) -> None:
    with server.client() as c:
        created = c.post(
            "/api/v1/maintenance", json=window_body("db", recurrence="weekly", until=iso(60 * 24 * 30))
        )
        assert created.status_code == 201, created.text
        w = created.json()
        assert w["services"] == ["db"] and w["recurrence"] == "weekly" and w["reason"] == "db upgrade"
        assert w["created_by"] == "tests" and w["source"] == "api" and w["until"]
        assert c.get(f"/api/v1/maintenance/{w['id']}").json() == w
        assert w in c.get("/api/v1/maintenance").json()["items"]
        assert c.delete(f"/api/v1/maintenance/{w['id']}").status_code == 204
        for r in (c.get(f"/api/v1/maintenance/{w['id']}"), c.delete(f"/api/v1/maintenance/{w['id']}")):
            assert r.status_code == 404 and w["id"] in r.json()["error"]
        assert w["id"] not in [x["id"] for x in c.get("/api/v1/maintenance").json()["items"]]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"services": []}, "services"),
        ({"services": [""]}, "services"),
        ({"end": iso(-10)}, "end"),
        ({"start": "soon"}, "start"),
        ({"recurrence": "monthly"}, "recurrence"),
        ({"recurrence": "daily", "end": iso(60 * 25)}, "end"),
        ({"until": iso(-60)}, "until"),
        ({"reason": 3}, "reason"),
    ],
    ids=["no-services", "blank-service", "ends-before-start", "bad-start", "monthly", "longer-than-a-day",
         "until-before-start", "reason-not-text"],
)  # fmt: skip
def test_bad_windows_are_422_naming_the_field(
    server: LiveServer, changes: dict[str, Any], field: str
) -> None:
    with server.client() as c:
        r = c.post("/api/v1/maintenance", json=window_body("db", **changes))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_an_alert_during_maintenance_is_kept_but_opens_no_incident(server: LiveServer) -> None:
    with server.client() as c:
        wid = c.post("/api/v1/maintenance", json=window_body("maint")).json()["id"]
        post_webhook(c, am_webhook("maint"))
        (alert,) = wait_for(lambda: alerts_of_service(c, "maint"))
        assert incidents_of(c, "maint") == []
    assert alert["suppressed_by"] == f"maintenance:{wid}" and alert["incident_id"] is None


# ------------------------------------------------------------------ scopes

ENDPOINTS = [
    ("GET", "/api/v1/silences", None, "read"),
    ("GET", "/api/v1/silences/x", None, "read"),
    ("POST", "/api/v1/silences", silence_body("scoped"), "write"),
    ("DELETE", "/api/v1/silences/x", None, "write"),
    ("GET", "/api/v1/maintenance", None, "read"),
    ("GET", "/api/v1/maintenance/x", None, "read"),
    ("POST", "/api/v1/maintenance", window_body("scoped"), "write"),
    ("DELETE", "/api/v1/maintenance/x", None, "write"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_every_endpoint_needs_its_scope(
    server: LiveServer, method: str, path: str, body: dict[str, Any] | None, scope: str
) -> None:
    assert_needs_scope(server, method, path, body, scope)
