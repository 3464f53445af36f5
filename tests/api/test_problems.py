"""Problems, post-mortems and operational metrics on a real server: lifecycle, scopes, formats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.model import Alert, AlertStatus, IncidentStatus, TimelineEntry
from core.settings import Settings
from tests.api.alerting import assert_needs_scope, incident, seed, utcnow, wait_for
from tests.conftest import LiveServer, free_port, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for the module; every test works on its own services."""
    path: Path = tmp_path_factory.mktemp("problems") / "problems.duckdb"
    with serving(Settings(db=str(path), port=free_port())) as live:
        yield live


def _alert(iid: str, service: str, at: datetime, name: str = "HighErrorRate") -> Alert:
    return Alert(f"{iid}-a", f"fp-{iid}", name, AlertStatus.RESOLVED, at, service=service, source="alertmanager",
                 incident_id=iid, ends_at=at + timedelta(minutes=20))  # fmt: skip


def _seed_pair(server: LiveServer, service: str, first_status: IncidentStatus = IncidentStatus.RESOLVED) -> tuple[str, str]:  # fmt: skip
    """Two incidents of the same alert on ``service``, a day apart; the second is open."""
    now = utcnow()
    a, b = f"{service}-1", f"{service}-2"
    seed(server.store, [incident(a, now - timedelta(days=1), service, first_status)],
         [_alert(a, service, now - timedelta(days=1, minutes=3))])  # fmt: skip
    seed(server.store, [incident(b, now - timedelta(minutes=5), service)],
         [_alert(b, service, now - timedelta(minutes=8))])  # fmt: skip
    return a, b


def _problem_of(c: httpx.Client, incident_id: str) -> dict[str, Any] | None:
    found = [p for p in c.get("/api/v1/problems").json()["items"] if incident_id in p["incident_ids"]]
    return found[0] if found else None


def _in_state(c: httpx.Client, incident_id: str, state: str) -> dict[str, Any] | None:
    found = _problem_of(c, incident_id)
    return found if found is not None and found["state"] == state else None


def test_a_recurrence_becomes_a_problem_filed_as_one_backlog_item(server: LiveServer) -> None:
    first, second = _seed_pair(server, "recurring")
    with server.client() as c:
        # any change the pipeline makes to the incident (here an acknowledgement) reaches the problem worker
        assert c.post(f"/api/v1/incidents/{second}/ack").status_code == 200
        problem = wait_for(lambda: _problem_of(c, second))
        assert problem["incident_ids"] == [first, second]
        assert problem["state"] == "open" and problem["recurrences"] == 1
        assert problem["services"] == ["recurring"] and problem["alert_names"] == ["HighErrorRate"]
        # the problem's backlog item is filed by the same worker right after it
        items = wait_for(lambda: [i for i in c.get("/api/v1/backlog", params={"limit": 500}).json()["items"]
                                  if i["cause"] == f"problem:{problem['id']}"] or None)  # fmt: skip
        assert len(items) == 1 and items[0]["status"] == "open"
        detail = c.get(f"/api/v1/problems/{problem['id']}").json()
        assert [e["kind"] for e in detail["events"]][:2] == ["opened", "recurrence"]
        # the operator's resolution note becomes the workaround: the problem is a known error now
        assert (
            c.post(f"/api/v1/incidents/{second}/note", json={"text": "drained the bad node"}).status_code
            == 201
        )
        assert c.post(f"/api/v1/incidents/{second}/resolve").status_code == 200
        known = wait_for(lambda: _in_state(c, second, "known_error"))
        assert "drained the bad node" in known["workaround"]
        kes = {k["id"]: k for k in c.get("/api/v1/known-errors").json()["items"]}
        assert kes[known["known_error_id"]]["problem_id"] == known["id"]
        # resolving the problem closes its backlog item
        moved = c.post(f"/api/v1/problems/{known['id']}/transition", json={"state": "resolved"})
        assert moved.status_code == 200 and moved.json()["state"] == "resolved"
        items = [i for i in c.get("/api/v1/backlog", params={"limit": 500, "status": "closed"}).json()["items"]
                 if i["cause"] == f"problem:{known['id']}"]  # fmt: skip
        assert len(items) == 1


def test_open_by_hand_then_walk_the_lifecycle(server: LiveServer) -> None:
    first, second = _seed_pair(server, "byhand")
    with server.client() as c:
        r = c.post(
            "/api/v1/problems", json={"title": "byhand keeps failing", "incident_ids": [first, second]}
        )
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert c.post("/api/v1/problems", json={"title": "again", "incident_ids": [first]}).status_code == 409
        assert c.post("/api/v1/problems", json={"title": "x", "incident_ids": ["nope"]}).status_code == 404
        assert c.get(f"/api/v1/problems/{pid}").json()["incident_ids"] == [first, second]
        step = c.post(f"/api/v1/problems/{pid}/transition",
                      json={"state": "known_error", "comment": "fail over to the replica"})  # fmt: skip
        assert step.status_code == 200 and step.json()["workaround"] == "fail over to the replica"
        assert c.post(f"/api/v1/problems/{pid}/transition", json={"state": "open"}).status_code == 409
        bad = c.post(f"/api/v1/problems/{pid}/transition", json={"state": "fixed"})
        assert bad.status_code == 422 and "state" in bad.text
        assert c.post("/api/v1/problems/PRB-404/transition", json={"state": "resolved"}).status_code == 404
        assert c.get("/api/v1/problems", params={"state": "known_error"}).json()["items"][0]["id"] == pid
        assert c.get("/api/v1/problems", params={"state": "bogus"}).status_code == 422


def test_postmortem_formats(server: LiveServer) -> None:
    now = utcnow()
    inc = incident("PM-1", now - timedelta(hours=1), "pmsvc", IncidentStatus.RESOLVED)
    note = TimelineEntry(now - timedelta(minutes=30), "note", "someone", "restarted the pmsvc workers")
    seed(
        server.store,
        [inc],
        [_alert("PM-1", "pmsvc", now - timedelta(hours=1, minutes=2))],
        [("PM-1", 0, note)],
    )
    with server.client() as c:
        md = c.get("/api/v1/incidents/PM-1/postmortem")
        assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
        assert "# Post-mortem: PM-1" in md.text and "restarted the pmsvc workers" in md.text
        page = c.get("/api/v1/incidents/PM-1/postmortem", headers={"Accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html") and "<h2>Timeline</h2>" in page.text
        data = c.get("/api/v1/incidents/PM-1/postmortem", params={"format": "json"}).json()
        assert data["incident"] == "PM-1" and data["impact"]["services"] == ["pmsvc"]
        assert data["detection"]["ttd_s"] == 120
        assert c.get("/api/v1/incidents/PM-1/postmortem", params={"format": "pdf"}).status_code == 422
        assert c.get("/api/v1/incidents/NOPE/postmortem").status_code == 404
        filed = c.post("/api/v1/incidents/PM-1/postmortem/actions")
        assert filed.status_code == 201
        again = c.post("/api/v1/incidents/PM-1/postmortem/actions").json()
        assert [i["id"] for i in again] == [i["id"] for i in filed.json()]
        assert [i["revision"] for i in c.get("/api/v1/backlog", params={"limit": 500}).json()["items"]
                if i["id"] in {x["id"] for x in again}] == [1] * len(again)  # fmt: skip


def test_operations_metrics_and_gauges(server: LiveServer) -> None:
    now = utcnow()
    opened = now - timedelta(hours=2)
    seed(server.store, [incident("OPS-1", opened, "opssvc", IncidentStatus.RESOLVED)],
         [_alert("OPS-1", "opssvc", opened - timedelta(minutes=4))])  # fmt: skip
    with server.client() as c:
        r = c.get("/api/v1/metrics/operations", params={"service": "opssvc"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["estate"]["scope"] == "filtered" and body["estate"]["incidents"] == 1
        assert body["estate"]["mttd_s"] == 240
        assert set(body["definitions"]) >= {"mttd_s", "mtta_s", "mtrs_s", "mtbf_s", "change_failure_rate"}
        since = (now - timedelta(minutes=30)).isoformat() + "Z"
        assert c.get("/api/v1/metrics/operations", params={"service": "opssvc", "since": since}).json()[
            "estate"]["incidents"] == 0  # fmt: skip
        assert c.get("/api/v1/metrics/operations", params={"since": "yesterday"}).status_code == 422
        metrics = c.get("/metrics").text
        assert "opsloop_operations_seconds" in metrics and "opsloop_problems" in metrics


ENDPOINTS = [
    ("GET", "/api/v1/problems", None, "read"),
    ("GET", "/api/v1/problems/PRB-1", None, "read"),
    ("POST", "/api/v1/problems", {"title": "x", "incident_ids": ["x"]}, "write"),
    ("POST", "/api/v1/problems/PRB-1/transition", {"state": "resolved"}, "write"),
    ("GET", "/api/v1/incidents/INC-1/postmortem", None, "read"),
    ("POST", "/api/v1/incidents/INC-1/postmortem/actions", None, "write"),
    ("GET", "/api/v1/metrics/operations", None, "read"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_every_endpoint_needs_its_scope(
    server: LiveServer, method: str, path: str, body: dict[str, Any] | None, scope: str
) -> None:
    assert_needs_scope(server, method, path, body, scope)
