"""Helpers for the incident and silence API tests: seeding the store, Alertmanager webhooks, polling."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from core.model import Alert, Incident, IncidentStatus, TimelineEntry
from core.store import Store
from detect.incidents import repository as repo

if TYPE_CHECKING:
    from tests.conftest import LiveServer

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def seed(
    store: Store,
    incidents: list[Incident],
    alerts: list[Alert] | None = None,
    timeline: list[tuple[str, int, TimelineEntry]] | None = None,
) -> None:
    """Write incidents straight to the store, as one pipeline round would."""
    repo.save_round(store, alerts or [], [(i, 0) for i in incidents], timeline or [], [], utcnow())


def incident(
    iid: str,
    opened_at: datetime,
    service: str,
    status: IncidentStatus = IncidentStatus.OPEN,
    priority: str = "P3",
) -> Incident:
    return Incident(
        iid,
        f"{service}: trouble",
        status,
        priority,
        opened_at,
        services=(service,),
        team="core",
        alert_count=1,
    )


def am_webhook(service: str, severity: str = "critical", name: str = "HighErrorRate") -> dict[str, Any]:
    """An Alertmanager v4 notification with one firing alert, started half a minute ago."""
    labels = {"alertname": name, "service": service, "severity": severity}
    starts = (utcnow() - timedelta(seconds=30)).isoformat() + "Z"
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{name} on {service}"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": uuid.uuid4().hex[:16],
    }
    return {
        "version": "4",
        "groupKey": f"{{}}:{{service={service!r}}}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "opsloop",
        "groupLabels": {"service": service},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [alert],
    }


def post_webhook(c: httpx.Client, payload: dict[str, Any]) -> None:
    r = c.post(
        "/api/v1/alerts/alertmanager",
        content=json.dumps(payload),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


def wait_for(probe: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll ``probe`` until it returns something (the pipeline thread works about every second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the pipeline")


def alerts_of_service(c: httpx.Client, service: str) -> list[dict[str, Any]] | None:
    found = [
        a
        for a in c.get("/api/v1/alerts", params={"limit": 10_000}).json()["items"]
        if a["service"] == service
    ]
    return found or None


def assert_needs_scope(
    server: LiveServer, method: str, path: str, body: dict[str, Any] | None, scope: str
) -> None:
    """``401`` without a token and ``403`` naming ``scope`` with a token that lacks it."""
    other = "write" if scope == "read" else "read"
    lacking = server.store.create_token([other, "ingest"], "lacking")
    with httpx.Client(base_url=server.url) as anon:
        assert anon.request(method, path, json=body).status_code == 401
    with server.client(lacking) as c:
        denied = c.request(method, path, json=body)
    assert denied.status_code == 403 and scope in denied.json()["error"]
