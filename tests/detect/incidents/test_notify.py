"""Notification delivery: the pipeline's outbox rows POSTed to a local receiver, retried, recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from core.model import IncidentStatus
from core.settings import Settings
from core.store import Store
from detect.incidents.notify import Notifier
from detect.incidents.pipeline import IncidentPipeline
from ingest.alertmanager import decode_webhook
from tests.conftest import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers scripted status codes per path (then 200)."""

    url: str
    script: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            rec = box[0]
            rec.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            codes = rec.script.get(self.path) or []
            code = codes.pop(0) if codes else 200
            reply = b'{"ok": true}' if code < 300 else b'{"error": "scripted"}'
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{httpd.server_address[1]}"))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def open_incident(store: Store, hooks: list[dict[str, str]], service: str = "payments") -> IncidentPipeline:
    """Drive a pipeline with one critical Alertmanager alert: it opens an incident and queues messages."""
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "opsloop",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "ErrorsHigh", "service": service, "severity": "critical"},
                "annotations": {"summary": "5xx above 5%"},
                "startsAt": (utcnow() - timedelta(minutes=1)).isoformat() + "Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "00000000000000aa",
            }
        ],
    }
    pipeline = IncidentPipeline(store, Settings(public_url="http://ops.example"), webhooks=hooks)
    pipeline.offer_batch(decode_webhook(json.dumps(payload).encode()))
    pipeline.process(utcnow())
    return pipeline


def outbox(store: Store) -> list[tuple[Any, ...]]:
    return store.query(
        "SELECT event, channel, target, status, attempts, last_error, sent_at FROM notifications "
        "ORDER BY created_at, event, target"
    )


@pytest.fixture
def notifier(store: Store) -> Iterator[Notifier]:
    n = Notifier(store, max_attempts=5, base_delay_s=1.0, timeout_s=5.0)
    try:
        yield n
    finally:
        n.stop()


def test_5xx_is_retried_with_backoff_until_sent(store: Store, receiver: Receiver, notifier: Notifier) -> None:
    receiver.script["/cd"] = [500, 500]
    open_incident(store, [{"url": receiver.url + "/cd", "format": "cdevents"}])
    assert [r[:5] for r in outbox(store)] == [
        ("incident.detected", "cdevents", receiver.url + "/cd", "pending", 0)
    ]
    t = utcnow() + timedelta(seconds=1)
    assert notifier.deliver_due(t) == 0
    assert outbox(store)[0][3:5] == ("pending", 1) and "500" in outbox(store)[0][5]
    assert notifier.deliver_due(t + timedelta(seconds=0.5)) == 0  # backing off: nothing sent
    assert len(receiver.received) == 1
    assert notifier.deliver_due(t + timedelta(seconds=1)) == 0  # second try after base_delay_s
    assert notifier.deliver_due(t + timedelta(seconds=2.5)) == 0  # next try waits 2 * base_delay_s
    assert len(receiver.received) == 2
    assert notifier.deliver_due(t + timedelta(seconds=3)) == 1
    event, _, _, status, attempts, _, sent_at = outbox(store)[0]
    assert (event, status, attempts) == ("incident.detected", "sent", 3) and sent_at is not None
    assert notifier.deliver_due(t + timedelta(hours=1)) == 0
    bodies = {r.body for r in receiver.on("/cd")}
    assert len(receiver.on("/cd")) == 3 and len(bodies) == 1  # the same message, every time


def test_4xx_is_dropped_as_failed_at_once(store: Store, receiver: Receiver, notifier: Notifier) -> None:
    receiver.script["/bad"] = [400]
    open_incident(store, [{"url": receiver.url + "/bad", "format": "slack"}])
    t = utcnow() + timedelta(seconds=1)
    assert notifier.deliver_due(t) == 0
    assert outbox(store)[0][3:5] == ("failed", 1) and "400" in outbox(store)[0][5]
    assert notifier.deliver_due(t + timedelta(hours=1)) == 0
    assert len(receiver.received) == 1


def test_unreachable_receivers_are_retried_then_given_up(store: Store) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    open_incident(store, [{"url": dead, "format": "cdevents"}])
    notifier = Notifier(store, max_attempts=2, base_delay_s=1.0, timeout_s=2.0)
    try:
        t = utcnow() + timedelta(seconds=1)
        notifier.deliver_due(t)
        assert outbox(store)[0][3:5] == ("pending", 1) and "Connect" in outbox(store)[0][5]
        notifier.deliver_due(t + timedelta(seconds=1))
        assert outbox(store)[0][3:5] == ("failed", 2)
    finally:
        notifier.stop()


def test_cdevents_payload_is_a_valid_cloudevent(store: Store, receiver: Receiver, notifier: Notifier) -> None:
    pipeline = open_incident(store, [{"url": receiver.url + "/cd", "format": "cdevents"}], service="checkout")
    (incident_id,) = [r[0] for r in store.query("SELECT id FROM incidents")]
    pipeline.transition(incident_id, IncidentStatus.RESOLVED, "ann")
    assert notifier.deliver_due(utcnow() + timedelta(seconds=1)) == 2
    detected, resolved = receiver.on("/cd")
    for got, ce_type in (
        (detected, "dev.cdevents.incident.detected.0.2.0"),
        (resolved, "dev.cdevents.incident.resolved.0.2.0"),
    ):
        assert got.headers["content-type"] == "application/cloudevents+json"
        # the SDK validates the required attributes and rejects anything that is not a CloudEvent
        event = from_http_event(HTTPMessage(got.headers, got.body))
        assert event.get_specversion() == "1.0" and event.get_type() == ce_type
        assert event.get_id() and event.get_source() == "http://ops.example/api/v1/incidents"
        assert event.get_subject() == incident_id and event.get_time() is not None
        cd = event.get_data()
        assert isinstance(cd, dict)
        assert cd["context"]["type"] == ce_type and cd["context"]["id"] == event.get_id()
        assert cd["subject"]["id"] == incident_id and cd["subject"]["type"] == "incident"
        assert cd["subject"]["content"]["service"]["id"] == "service/checkout"
        assert cd["customData"]["url"] == f"http://ops.example/api/v1/incidents/{incident_id}"
    assert detected.json()["id"] != resolved.json()["id"]
    assert resolved.json()["data"]["customData"]["status"] == "resolved"


def test_slack_payload_has_text_and_blocks(store: Store, receiver: Receiver, notifier: Notifier) -> None:
    open_incident(store, [{"url": receiver.url + "/slack", "format": "slack"}], service="search")
    (incident_id, priority) = store.query("SELECT id, priority FROM incidents")[0]
    assert notifier.deliver_due(utcnow() + timedelta(seconds=1)) == 1
    (got,) = receiver.on("/slack")
    assert got.headers["content-type"] == "application/json"
    msg = got.json()
    assert incident_id in msg["text"] and f"[{priority}]" in msg["text"] and "search" in msg["text"]
    assert msg["blocks"] and all(
        b["type"] in ("section", "context", "header", "divider") for b in msg["blocks"]
    )
    links = json.dumps(msg["blocks"])
    assert f"http://ops.example/api/v1/incidents/{incident_id}" in links


def test_every_webhook_gets_its_own_message(store: Store, receiver: Receiver, notifier: Notifier) -> None:
    hooks = [
        {"url": receiver.url + "/cd", "format": "cdevents"},
        {"url": receiver.url + "/slack", "format": "slack"},
    ]
    open_incident(store, hooks)
    assert notifier.deliver_due(utcnow() + timedelta(seconds=1)) == 2
    assert {r.path for r in receiver.received} == {"/cd", "/slack"}
    assert all(r[3] == "sent" for r in outbox(store))


def test_a_served_app_pages_its_webhooks_when_an_incident_opens(receiver: Receiver, tmp_path: Any) -> None:
    """End to end: Alertmanager webhook -> incident -> outbox -> CDEvents and Slack receivers."""
    from tests.api.alerting import am_webhook, post_webhook, wait_for
    from tests.conftest import serving

    hooks = [
        {"url": f"{receiver.url}/ce", "format": "cdevents"},
        {"url": f"{receiver.url}/slack", "format": "slack"},
    ]
    settings = Settings(db=str(tmp_path / "served.duckdb"), port=free_port(), notify_webhooks=hooks)
    with serving(settings) as live, live.client() as c:
        post_webhook(c, am_webhook("paged-svc"))
        wait_for(lambda: True if receiver.on("/ce") and receiver.on("/slack") else None)
        incident = c.get("/api/v1/incidents", params={"service": "paged-svc"}).json()["items"][0]
    (ce,) = receiver.on("/ce")
    assert ce.headers["content-type"] == "application/cloudevents+json"
    assert (
        ce.json()["type"] == "dev.cdevents.incident.detected.0.2.0" and ce.json()["subject"] == incident["id"]
    )
    assert incident["id"] in receiver.on("/slack")[0].json()["text"]
