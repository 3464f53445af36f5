"""The public status page on a real server: component states during and after an incident, Statuspage
shapes, and nothing internal on public pages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.statuspage import INDICATOR, STATES
from core.model import Alert, AlertStatus, IncidentStatus
from core.settings import Settings
from tests.api.alerting import incident, seed, utcnow
from tests.conftest import LiveServer, free_port, serving

TOPOLOGY = {"services": [
    {"name": "storefront", "tier": 1, "consumer_facing": True, "depends_on": ["orders-db"]},
    {"name": "payments", "tier": 1, "depends_on": ["orders-db"]},
    {"name": "orders-db", "tier": 2},
]}  # fmt: skip
SECRET_BITS = (
    "orders-db",
    "ip-10-0-3-17.internal",
    "pod=orders-db-7f9c",
    "connection pool exhausted",
    "SF-1",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("status") / "status.duckdb"
    with serving(Settings(db=str(path), port=free_port())) as live:
        with live.client() as client:
            assert client.put("/api/v1/topology", json=TOPOLOGY).status_code == 200
        yield live


def check_summary_shape(summary: dict[str, Any]) -> None:
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert {"id", "name", "url", "time_zone", "updated_at"} <= set(summary["page"])
    assert summary["status"]["indicator"] in set(INDICATOR.values())
    for c in summary["components"]:
        assert {"id", "name", "status", "created_at", "updated_at", "position", "group_id", "page_id"} <= set(
            c
        )
        assert c["status"] in STATES
    for i in summary["incidents"]:
        assert i["status"] in ("investigating", "identified", "monitoring", "resolved", "postmortem")
        assert i["impact"] in ("none", "minor", "major", "critical")
        assert {
            "id",
            "name",
            "created_at",
            "updated_at",
            "incident_updates",
            "components",
            "shortlink",
        } <= set(i)


def public_texts(server: LiveServer) -> dict[str, str]:
    paths = ["/status", "/status/history", "/status/feed.atom", "/api/v2/summary.json", "/api/v2/status.json",
             "/api/v2/components.json", "/api/v2/incidents.json"]  # fmt: skip
    out = {}
    for path in paths:
        resp = httpx.get(f"{server.url}{path}")  # no token: the page is public
        assert resp.status_code == 200, (path, resp.text)
        out[path] = resp.text
    return out


def test_component_states_during_and_after_an_incident_and_nothing_internal_leaks(server: LiveServer) -> None:
    before = httpx.get(f"{server.url}/api/v2/summary.json").json()
    check_summary_shape(before)
    assert {c["name"]: c["status"] for c in before["components"]} == {
        "storefront": "operational",
        "payments": "operational",
    }
    assert before["status"]["indicator"] == "none"

    inc = replace(incident("SF-1", utcnow() - timedelta(minutes=3), "storefront", priority="P1"),
                  title="storefront: connection pool exhausted on ip-10-0-3-17.internal",
                  services=("storefront", "orders-db"))  # fmt: skip
    alert = Alert("al-1", "fp-1", "HighErrorRate", AlertStatus.FIRING, inc.opened_at, service="orders-db",
                  labels={"pod": "orders-db-7f9c", "instance": "ip-10-0-3-17.internal"}, incident_id="SF-1")  # fmt: skip
    seed(server.store, [inc], [alert])
    during = httpx.get(f"{server.url}/api/v2/summary.json").json()
    check_summary_shape(during)
    states = {c["name"]: c["status"] for c in during["components"]}
    assert states == {"storefront": "major_outage", "payments": "operational"}
    assert during["status"]["indicator"] == "critical"
    [public] = during["incidents"]
    assert public["status"] == "investigating" and [c["name"] for c in public["components"]] == ["storefront"]
    page = httpx.get(f"{server.url}/status").text
    assert 'data-component="storefront" data-status="major_outage"' in page
    for path, text in public_texts(server).items():
        for bit in SECRET_BITS:
            assert bit not in text, (path, bit)

    with server.client() as client:
        assert client.post("/api/v1/incidents/SF-1/ack", json={}).status_code == 200
        assert httpx.get(f"{server.url}/api/v2/summary.json").json()["incidents"][0]["status"] == "identified"
        assert client.post("/api/v1/incidents/SF-1/resolve", json={}).status_code == 200
    after = httpx.get(f"{server.url}/api/v2/summary.json").json()
    assert {c["status"] for c in after["components"]} == {"operational"} and after["incidents"] == []
    history = httpx.get(f"{server.url}/api/v2/incidents.json").json()["incidents"]
    assert [i["status"] for i in history] == ["resolved"]
    assert "resolved" in httpx.get(f"{server.url}/status/history").text
    for path, text in public_texts(server).items():
        for bit in SECRET_BITS:
            assert bit not in text, (path, bit)


def test_a_maintenance_window_shows_under_maintenance(server: LiveServer) -> None:
    now = utcnow()
    window = {"services": ["payments"], "start": (now - timedelta(minutes=1)).isoformat() + "Z",
              "end": (now + timedelta(hours=1)).isoformat() + "Z", "reason": "db upgrade on ip-10-0-3-17.internal"}  # fmt: skip
    with server.client() as client:
        created = client.post("/api/v1/maintenance", json=window)
        assert created.status_code == 201
        states = {
            c["name"]: c["status"]
            for c in httpx.get(f"{server.url}/api/v2/components.json").json()["components"]
        }
        assert states["payments"] == "under_maintenance"
        assert "ip-10-0-3-17" not in httpx.get(f"{server.url}/status").text
        assert client.delete(f"/api/v1/maintenance/{created.json()['id']}").status_code == 204


def test_an_incident_on_no_component_is_not_published(server: LiveServer) -> None:
    seed(
        server.store,
        [replace(incident("DB-ONLY", utcnow(), "orders-db", priority="P1"), status=IncidentStatus.OPEN)],
    )
    summary = httpx.get(f"{server.url}/api/v2/summary.json").json()
    assert summary["incidents"] == [] and summary["status"]["indicator"] == "none"
