"""PagerDuty Events API v2 intake, driven by PagerDuty's own Python client where it can be."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2  # the HTTP library PagerDuty's client is built on
import pagerduty  # PagerDuty's official client library (EventsApiV2Client)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.pagerduty import scoped_dedup_key
from tests.conftest import LiveServer

PATH = "/v2/enqueue"
COLUMNS = "id, dedup_key, status, name, severity, summary, service, ends_at, event_count"

# wire-formats.md section 4, with the routing key replaced by a live token
GOLDEN_TRIGGER: dict[str, Any] = {
    "event_action": "trigger",
    "dedup_key": "aiops-incident-42",
    "payload": {
        "summary": "[checkout] 5xx ratio 4.1% (SLO burn 14.4x) - incident #42",
        "source": "checkout.prod.example",
        "severity": "critical",
        "timestamp": "2025-01-15T10:05:00.000+0000",
        "component": "checkout-api",
        "group": "payments",
        "class": "slo_burn_rate",
        "custom_details": {
            "slo": "checkout-availability",
            "burn_rate_1h": 15.2,
            "alert_fingerprints": ["c5a1f2e3b4d59687"],
        },
    },
    "links": [{"href": "https://aiops.example/incidents/42", "text": "AIOps incident #42"}],
    "client": "AIOps",
    "client_url": "https://aiops.example",
}


def rows(server: LiveServer) -> list[dict[str, Any]]:
    found = server.store.query(f"SELECT {COLUMNS} FROM external_alerts ORDER BY starts_at, updated_at")
    return [dict(zip(COLUMNS.split(", "), r, strict=True)) for r in found]


class ToLiveServer(httpx2.BaseTransport):
    """Carry the client's requests to the plain-HTTP test server (the client insists on https)."""

    def __init__(self, url: str) -> None:
        self._target = httpx2.URL(url)
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(scheme="http", host=self._target.host, port=self._target.port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def client(server: LiveServer, routing_key: str | None = None) -> pagerduty.EventsApiV2Client:
    """PagerDuty's client as an integration would configure it, pointed at our intake."""
    return pagerduty.EventsApiV2Client(
        routing_key or server.token,
        base_url="https://events.opsloop.test",
        transport=ToLiveServer(server.url),
    )


def send(server: LiveServer, event: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        return c.post(
            PATH, content=json.dumps(event), headers=headers or {"Content-Type": "application/json"}
        )


def test_golden_trigger_answers_202_with_the_callers_dedup_key(live_server: LiveServer) -> None:
    r = send(live_server, dict(GOLDEN_TRIGGER, routing_key=live_server.token))
    assert r.status_code == 202, r.text
    assert r.json() == {"status": "success", "message": "Event processed", "dedup_key": "aiops-incident-42"}
    (row,) = rows(live_server)
    assert row["dedup_key"] == scoped_dedup_key(live_server.token, "aiops-incident-42")
    assert (row["status"], row["severity"], row["name"]) == ("firing", "critical", "slo_burn_rate")
    assert row["summary"].startswith("[checkout] 5xx ratio")
    assert row["service"] == "checkout-api"
    starts_at, details, url = live_server.store.query("SELECT starts_at, details, url FROM external_alerts")[
        0
    ]
    assert starts_at.isoformat() == "2025-01-15T10:05:00"
    assert json.loads(details)["custom_details"]["burn_rate_1h"] == 15.2
    assert url == "https://aiops.example"


def test_lifecycle_with_the_official_client(live_server: LiveServer) -> None:
    with client(live_server) as pd:
        lifecycle(live_server, pd)


def lifecycle(live_server: LiveServer, pd: pagerduty.EventsApiV2Client) -> None:
    key = pd.trigger("db-1 disk 91% full", "db-1.prod", dedup_key="db-1-disk", severity="warning")
    assert key == "db-1-disk"
    assert pd.trigger("db-1 disk 95% full", "db-1.prod", dedup_key="db-1-disk", severity="error") == key
    (row,) = rows(live_server)
    assert (row["status"], row["summary"], row["severity"], row["event_count"]) == (
        "firing",
        "db-1 disk 95% full",
        "error",
        2,
    )
    assert pd.acknowledge(key) == key
    assert rows(live_server)[0]["status"] == "acknowledged"
    assert pd.resolve(key) == key
    (row,) = rows(live_server)
    assert row["status"] == "resolved"
    assert row["ends_at"] is not None
    # after a resolve: ack/resolve are dropped, and the same trigger opens a NEW alert
    assert pd.acknowledge(key) == key
    assert pd.resolve(key) == key
    assert [r["status"] for r in rows(live_server)] == ["resolved"]
    pd.trigger("db-1 disk 91% full", "db-1.prod", dedup_key="db-1-disk", severity="warning")
    assert [r["status"] for r in rows(live_server)] == ["resolved", "firing"]


def test_ack_or_resolve_without_an_open_alert_is_dropped(live_server: LiveServer) -> None:
    with client(live_server) as pd:
        assert pd.acknowledge("never-triggered") == "never-triggered"
        assert pd.resolve("never-triggered") == "never-triggered"
    assert rows(live_server) == []


def test_trigger_without_dedup_key_gets_a_fresh_one_each_time(live_server: LiveServer) -> None:
    with client(live_server) as pd:
        first = pd.trigger("cpu hot", "web-1")
        second = pd.trigger("cpu hot", "web-1")
    assert first != second
    assert len(first) == 32
    assert {r["dedup_key"] for r in rows(live_server)} == {
        scoped_dedup_key(live_server.token, first),
        scoped_dedup_key(live_server.token, second),
    }


def test_dedup_keys_are_scoped_per_routing_key(live_server: LiveServer) -> None:
    other = live_server.store.create_token(["ingest"], "second integration")
    with client(live_server) as first, client(live_server, other) as second:
        first.trigger("a down", "a", dedup_key="same")
        second.trigger("b down", "b", dedup_key="same")
        second.resolve("same")
    assert sorted(r["status"] for r in rows(live_server)) == ["firing", "resolved"]


def test_routing_key_is_the_credential(live_server: LiveServer) -> None:
    event = {"event_action": "resolve", "dedup_key": "x"}
    unknown = send(live_server, dict(event, routing_key="R0UTINGKEY0000000000000000000000"))
    assert unknown.status_code == 401
    assert unknown.json()["status"] == "unauthorized"
    reader = live_server.store.create_token(["read"], "reader")
    assert send(live_server, dict(event, routing_key=reader)).status_code == 403
    # a bearer header is accepted too; the routing key then only scopes the dedup key
    bearer = {"Authorization": f"Bearer {live_server.token}", "Content-Type": "application/json"}
    ok = send(live_server, dict(GOLDEN_TRIGGER, routing_key="R0UTINGKEY0000000000000000000000"), bearer)
    assert ok.status_code == 202
    assert rows(live_server)[0]["dedup_key"] == scoped_dedup_key(
        "R0UTINGKEY0000000000000000000000", "aiops-incident-42"
    )


def _without(doc: dict[str, Any], path: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    del target[last]
    return doc


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (_without(GOLDEN_TRIGGER, "payload.summary"), "payload.summary"),
        (_without(GOLDEN_TRIGGER, "payload.source"), "payload.source"),
        (dict(GOLDEN_TRIGGER, payload=dict(GOLDEN_TRIGGER["payload"], severity="page")), "payload.severity"),
        (_without(GOLDEN_TRIGGER, "payload"), "payload"),
        (dict(GOLDEN_TRIGGER, event_action="escalate"), "event_action"),
        (_without(GOLDEN_TRIGGER, "event_action"), "event_action"),
        ({"event_action": "resolve"}, "dedup_key"),
        (dict(GOLDEN_TRIGGER, dedup_key="k" * 256), "dedup_key"),
        (
            dict(GOLDEN_TRIGGER, payload=dict(GOLDEN_TRIGGER["payload"], timestamp="soon")),
            "payload.timestamp",
        ),
        (dict(GOLDEN_TRIGGER, links=[{"text": "no href"}]), "links[0].href"),
    ],
    ids=[
        "no-summary",
        "no-source",
        "bad-severity",
        "no-payload",
        "bad-action",
        "no-action",
        "resolve-no-key",
        "long-key",
        "bad-timestamp",
        "link-no-href",
    ],
)
def test_invalid_events_get_pagerduty_style_400(
    live_server: LiveServer, event: dict[str, Any], field: str
) -> None:
    r = send(live_server, dict(event, routing_key=live_server.token))
    assert r.status_code == 400, r.text
    body = r.json()
    assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
    assert body["errors"][0].startswith(f"{field}:")
    assert rows(live_server) == []


def test_bad_json_missing_routing_key_and_size_limit(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as c:
        bad = c.post(PATH, content=b'{"routing_key": ')
        assert bad.status_code == 400
        assert bad.json()["status"] == "invalid event"
        no_key = c.post(PATH, json={"event_action": "trigger"})
        assert no_key.status_code == 400
        assert no_key.json()["errors"][0].startswith("routing_key:")
        big = dict(GOLDEN_TRIGGER, routing_key=live_server.token)
        big["payload"] = dict(big["payload"], custom_details={"blob": "x" * 530_000})
        assert c.post(PATH, json=big).status_code == 413
    assert rows(live_server) == []


_value = st.one_of(st.text(max_size=10), st.integers(), st.none(), st.booleans())
_payload = st.fixed_dictionaries(
    {},
    optional={
        "summary": _value,
        "source": _value,
        "severity": st.one_of(_value, st.sampled_from(["critical", "info"])),
        "timestamp": st.one_of(_value, st.just("2025-01-15T10:05:00.000+0000")),
        "custom_details": st.one_of(_value, st.dictionaries(st.text(max_size=5), _value)),
    },
)
_event = st.fixed_dictionaries(
    {},
    optional={
        "event_action": st.one_of(_value, st.sampled_from(["trigger", "acknowledge", "resolve"])),
        "dedup_key": _value,
        "payload": st.one_of(_value, _payload),
        "links": st.one_of(_value, st.lists(st.dictionaries(st.sampled_from(["href", "text"]), _value))),
        "images": st.one_of(_value, st.lists(st.dictionaries(st.sampled_from(["src", "alt"]), _value))),
    },
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=_event, raw=st.one_of(st.none(), st.text(max_size=30)))
def test_malformed_events_get_4xx_never_5xx_and_write_nothing(
    live_server: LiveServer, event: dict[str, Any], raw: str | None
) -> None:
    before = live_server.store.query("SELECT count(*), coalesce(sum(event_count), 0) FROM external_alerts")[0]
    body = raw if raw is not None else json.dumps(dict(event, routing_key=live_server.token))
    with httpx.Client(base_url=live_server.url) as c:
        r = c.post(PATH, content=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code == 202:  # an accidentally valid event is fine
        return
    assert r.json()["status"] in ("invalid event", "unauthorized")
    after = live_server.store.query("SELECT count(*), coalesce(sum(event_count), 0) FROM external_alerts")[0]
    assert after == before
