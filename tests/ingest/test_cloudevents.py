"""CloudEvents 1.0 intake: payloads from the CloudEvents Python SDK, CDEvents -> changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.cloudevents import BATCH, STRUCTURED, change_id
from tests.conftest import LiveServer

PATH = "/api/v1/events"

# wire-formats.md section 7, verbatim
GOLDEN: dict[str, Any] = {
    "specversion": "1.0",
    "id": "b6f9a1f2-6a2e-4c1e-9a0e-1e2f3a4b5c6d",
    "source": "/aiops/incidents",
    "type": "com.example.aiops.incident.acknowledged",
    "subject": "42",
    "time": "2025-01-15T10:07:31Z",
    "datacontenttype": "application/json",
    "aiopsseverity": "sev2",
    "data": {
        "incident_id": 42,
        "service": "checkout",
        "status": "acknowledged",
        "by": "alice",
        "via": "slack",
    },
}


def cdevent(verb: str, event_id: str, service_id: str = "service/cart", **content: Any) -> CloudEvent:
    """A CDEvents service event as the CDEvents CloudEvents binding carries it."""
    ce_type = f"dev.cdevents.service.{verb}.0.3.0"
    data = {
        "context": {"version": "0.4.1", "id": event_id, "source": "/tekton/prod", "type": ce_type},
        "subject": {"id": service_id, "source": "/tekton/prod", "type": "service", "content": content},
    }
    attributes = {
        "id": event_id,
        "source": "/tekton/prod",
        "type": ce_type,
        "subject": service_id,
        "time": datetime(2025, 1, 15, 9, 58, tzinfo=UTC),
    }
    return CloudEvent(attributes, data)


def batch_body(events: list[CloudEvent]) -> bytes:
    fmt = JSONFormat()
    return b"[" + b",".join(fmt.write(e) for e in events) + b"]"


def post(server: LiveServer, body: bytes | str, content_type: str = BATCH) -> httpx.Response:
    with server.client() as c:
        return c.post(PATH, content=body, headers={"Content-Type": content_type})


def counts(server: LiveServer) -> tuple[int, int]:
    row = server.store.query("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM changes)")[0]
    return int(row[0]), int(row[1])


def test_golden_event_in_structured_mode(live_server: LiveServer) -> None:
    r = post(live_server, json.dumps(GOLDEN), STRUCTURED)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 1, "changes": 0, "events": 1}
    row = live_server.store.query(
        "SELECT source, id, type, ts, subject, service, data, attributes FROM events"
    )[0]
    assert row[:6] == (
        "/aiops/incidents",
        "b6f9a1f2-6a2e-4c1e-9a0e-1e2f3a4b5c6d",
        "com.example.aiops.incident.acknowledged",
        datetime(2025, 1, 15, 10, 7, 31),
        "42",
        "checkout",
    )
    assert json.loads(row[6])["by"] == "alice"
    assert json.loads(row[7]) == {"aiopsseverity": "sev2", "datacontenttype": "application/json"}


def test_sdk_structured_event_with_extension_and_default_time(live_server: LiveServer) -> None:
    event = CloudEvent({"type": "com.example.flag.toggled", "source": "/flags", "flagowner": "web"}, {"x": 1})
    message = to_structured_event(event)
    with live_server.client() as c:
        r = c.post(PATH, content=message.body, headers=message.headers)
    assert r.status_code == 202, r.text
    (attributes,) = live_server.store.query("SELECT attributes FROM events")[0]
    assert json.loads(attributes) == {"flagowner": "web"}


def test_cdevents_service_events_become_changes(live_server: LiveServer) -> None:
    events = [
        cdevent(
            "deployed",
            "d-1",
            environment={"id": "prod", "source": "/clusters/prod"},
            artifactId="pkg:oci/cart@sha256%3A0b31b1c02ff4?repository_url=registry.example/cart",
        ),
        cdevent(
            "upgraded",
            "d-2",
            environment={"id": "prod"},
            artifactId="pkg:golang/mygit.com/myorg/cart@v1.4.2",
        ),
        cdevent("rolledback", "d-3", environment={"id": "prod"}, artifactId="pkg:golang/x/cart@v1.4.1"),
        cdevent("removed", "d-4", service_id="daemonset/legacy-cart", environment={"id": "staging"}),
        cdevent("published", "d-5", environment={"id": "prod"}),  # not a change: an event
        CloudEvent({"type": "com.example.build.done", "source": "/ci", "id": "b-1"}, {"service": "cart"}),
    ]
    r = post(live_server, batch_body(events))
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 6, "changes": 4, "events": 2}
    rows = live_server.store.query(
        "SELECT id, service, kind, ts, version, environment, source FROM changes ORDER BY ts, kind"
    )
    assert sorted((r[1], r[2], r[4], r[5]) for r in rows) == [
        ("cart", "deployed", "sha256:0b31b1c02ff4", "prod"),
        ("cart", "rolledback", "v1.4.1", "prod"),
        ("cart", "upgraded", "v1.4.2", "prod"),
        ("legacy-cart", "removed", "", "staging"),
    ]
    assert {r[0] for r in rows} >= {change_id("/tekton/prod", "d-1")}
    assert {r[3] for r in rows} == {datetime(2025, 1, 15, 9, 58)}
    events_rows = live_server.store.query("SELECT id, service FROM events ORDER BY id")
    assert events_rows == [("b-1", "cart"), ("d-5", "cart")]


def test_dedup_on_source_and_id_within_and_across_batches(live_server: LiveServer) -> None:
    first = dict(GOLDEN, id="1")
    same_id_other_source = dict(GOLDEN, id="1", source="/elsewhere")
    r = post(live_server, json.dumps([first, first, same_id_other_source]), "application/json")
    assert r.status_code == 202, r.text
    deploy = cdevent("deployed", "d-1", environment={"id": "prod"}, artifactId="pkg:npm/cart@2.0.0")
    for _ in range(2):
        assert post(live_server, batch_body([deploy])).status_code == 202
    again = dict(first, data={"changed": True})  # a different body with a known source+id
    assert post(live_server, json.dumps(again), STRUCTURED).status_code == 202
    assert counts(live_server) == (2, 1)
    (data,) = live_server.store.query("SELECT data FROM events WHERE source = '/aiops/incidents'")[0]
    assert json.loads(data)["by"] == "alice"  # the first delivery wins


def _bad(index: int, **changes: Any) -> list[dict[str, Any]]:
    events = [dict(GOLDEN, id=str(i)) for i in range(5)]
    for key, value in changes.items():
        if value is KeyError:
            events[index].pop(key, None)
        else:
            events[index][key] = value
    return events


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (_bad(3, time="2025-01-15T10:07:31"), "[3].time"),
        (_bad(3, time="15/01/2025"), "[3].time"),
        (_bad(1, specversion="0.3"), "[1].specversion"),
        (_bad(2, id=KeyError), "[2].id"),
        (_bad(2, source=""), "[2].source"),
        (_bad(4, type=7), "[4].type"),
        (_bad(0, **{"Bad-Name": "x"}), "[0].Bad-Name"),
        (_bad(0, myext={"nested": True}), "[0].myext"),
        (_bad(0, data_base64="aGk="), "[0].data_base64"),
        (_bad(0, subject=5), "[0].subject"),
        ([*_bad(0), 5], "[5]"),
        (
            [dict(GOLDEN, type="dev.cdevents.service.deployed.0.3.0", data={"subject": {"content": {}}})],
            "[0].data.subject.id",
        ),
    ],
    ids=[
        "time-no-offset",
        "time-garbage",
        "specversion",
        "no-id",
        "empty-source",
        "type-int",
        "extension-name",
        "extension-object",
        "data-and-base64",
        "subject-int",
        "not-an-object",
        "cdevent-no-subject-id",
    ],
)
def test_one_invalid_event_rejects_the_batch_naming_the_field(
    live_server: LiveServer, events: list[Any], field: str
) -> None:
    r = post(live_server, json.dumps(events))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert counts(live_server) == (0, 0)


def test_media_types_and_body_shapes(live_server: LiveServer) -> None:
    one = json.dumps(GOLDEN)
    assert post(live_server, one, "text/plain").status_code == 415
    assert post(live_server, one, BATCH).status_code == 422  # batch mode needs an array
    assert post(live_server, f"[{one}]", STRUCTURED).status_code == 422  # structured mode is one event
    assert post(live_server, "[", BATCH).status_code == 400
    assert post(live_server, "[]", BATCH).json() == {"accepted": 0, "changes": 0, "events": 0}
    binary = dict(GOLDEN, id="bin", data_base64="aGVsbG8=")
    del binary["data"]
    assert post(live_server, json.dumps(binary), f"{STRUCTURED}; charset=utf-8").status_code == 202
    with httpx.Client(base_url=live_server.url) as anon:
        assert anon.post(PATH, content=one, headers={"Content-Type": STRUCTURED}).status_code == 401
    assert counts(live_server) == (1, 0)


_value = st.one_of(st.text(max_size=8), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False))
_event = st.fixed_dictionaries(
    {},
    optional={
        "specversion": st.one_of(_value, st.just("1.0")),
        "id": _value,
        "source": _value,
        "type": st.one_of(_value, st.sampled_from(["dev.cdevents.service.deployed.0.3.0", "x.y"])),
        "time": st.one_of(_value, st.sampled_from(["2025-01-15T10:07:31Z", "0001-01-01T00:00:00+14:00"])),
        "data": st.one_of(
            _value, st.dictionaries(st.sampled_from(["subject", "service", "context"]), _value)
        ),
        "data_base64": _value,
        "subject": _value,
    },
).flatmap(lambda d: st.dictionaries(st.text(max_size=6), _value, max_size=2).map(lambda ext: {**ext, **d}))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.lists(_event, max_size=3).map(json.dumps), _event.map(json.dumps), st.text(max_size=30)
    ),
    content_type=st.sampled_from([BATCH, STRUCTURED, "application/json"]),
)
def test_malformed_events_get_4xx_never_5xx_and_write_nothing(
    live_server: LiveServer, body: str, content_type: str
) -> None:
    before = counts(live_server)
    r = post(live_server, body, content_type)
    assert r.status_code < 500, r.text
    if r.status_code == 202:  # an accidentally valid batch is fine
        return
    assert 400 <= r.status_code < 500
    assert counts(live_server) == before
