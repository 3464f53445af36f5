"""Alertmanager webhook v4 receiver: golden payload, lifecycle, validation, auth, garbage."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer

PATH = "/api/v1/alerts/alertmanager"

# wire-formats.md section 1a, verbatim
GOLDEN: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity="page"}:{alertname="HighErrorRate", service="checkout"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "aiops",
    "groupLabels": {"alertname": "HighErrorRate", "service": "checkout"},
    "commonLabels": {
        "alertname": "HighErrorRate",
        "service": "checkout",
        "severity": "page",
        "job": "checkout",
    },
    "commonAnnotations": {"summary": "5xx ratio above 2% for 10m"},
    "externalURL": "http://alertmanager.example:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "HighErrorRate",
                "service": "checkout",
                "severity": "page",
                "job": "checkout",
                "instance": "10.0.0.12:8080",
            },
            "annotations": {
                "summary": "5xx ratio above 2% for 10m",
                "runbook_url": "https://runbooks.example/checkout-5xx",
            },
            "startsAt": "2025-01-15T10:02:13.512Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=...",
            "fingerprint": "c5a1f2e3b4d59687",
        }
    ],
}
COLUMNS = (
    "id, source, dedup_key, status, name, severity, summary, service, starts_at, ends_at, url, event_count"
)


def resolved(payload: dict[str, Any], ends_at: str = "2025-01-15T10:20:00.123456789Z") -> dict[str, Any]:
    doc = copy.deepcopy(payload)
    doc["status"] = "resolved"
    for alert in doc["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = ends_at
    return doc


def alerts(server: LiveServer) -> list[dict[str, Any]]:
    rows = server.store.query(f"SELECT {COLUMNS} FROM external_alerts ORDER BY id")
    return [dict(zip(COLUMNS.split(", "), r, strict=True)) for r in rows]


def post(server: LiveServer, payload: Any, **kw: Any) -> httpx.Response:
    with server.client() as c:
        return c.post(PATH, content=json.dumps(payload), headers={"Content-Type": "application/json"}, **kw)


def test_golden_payload_becomes_a_firing_external_alert(live_server: LiveServer) -> None:
    r = post(live_server, GOLDEN)
    assert r.status_code == 200, r.text
    (row,) = alerts(live_server)
    assert row["source"] == "alertmanager"
    assert row["dedup_key"] == "c5a1f2e3b4d59687"
    assert row["status"] == "firing"
    assert (row["name"], row["severity"], row["service"]) == ("HighErrorRate", "page", "checkout")
    assert row["summary"] == "5xx ratio above 2% for 10m"
    assert row["starts_at"] == datetime(2025, 1, 15, 10, 2, 13, 512000)
    assert row["ends_at"] is None  # Go's zero time means unset
    assert row["url"] == "http://prometheus.example:9090/graph?g0.expr=..."
    labels, details = live_server.store.query("SELECT labels, details FROM external_alerts")[0]
    assert json.loads(labels)["instance"] == "10.0.0.12:8080"
    assert json.loads(details)["receiver"] == "aiops"


def test_resolved_updates_the_same_row_and_resends_are_idempotent(live_server: LiveServer) -> None:
    assert post(live_server, GOLDEN).status_code == 200
    assert post(live_server, GOLDEN).status_code == 200  # repeat_interval re-send: same body
    (firing,) = alerts(live_server)
    assert firing["event_count"] == 1
    done = resolved(GOLDEN)
    for _ in range(2):
        assert post(live_server, done).status_code == 200
    (row,) = alerts(live_server)
    assert row["id"] == firing["id"]
    assert row["status"] == "resolved"
    assert row["ends_at"] == datetime(2025, 1, 15, 10, 20, 0, 123457)  # nanoseconds parsed, rounded
    # a late firing notification from before the resolve must not reopen the alert
    late = copy.deepcopy(GOLDEN)
    late["receiver"] = "aiops-retry"
    assert post(live_server, late).status_code == 200
    assert alerts(live_server)[0]["status"] == "resolved"


def test_refiring_after_resolve_is_a_new_alert(live_server: LiveServer) -> None:
    assert post(live_server, GOLDEN).status_code == 200
    assert post(live_server, resolved(GOLDEN)).status_code == 200
    again = copy.deepcopy(GOLDEN)
    again["alerts"][0]["startsAt"] = "2025-01-15T11:00:00.000000001+01:00"
    assert post(live_server, again).status_code == 200
    rows = alerts(live_server)
    assert sorted(r["status"] for r in rows) == ["firing", "resolved"]
    assert {r["dedup_key"] for r in rows} == {"c5a1f2e3b4d59687"}
    assert datetime(2025, 1, 15, 10, 0) in [r["starts_at"] for r in rows]  # +01:00 stored as UTC


def test_summary_falls_back_to_description_and_fingerprint_to_labels(live_server: LiveServer) -> None:
    doc = copy.deepcopy(GOLDEN)
    alert = doc["alerts"][0]
    alert["annotations"] = {"description": "disk almost full"}
    del alert["fingerprint"]
    alert["labels"] = {"alertname": "DiskFull", "app": "db"}
    assert post(live_server, doc).status_code == 200
    (row,) = alerts(live_server)
    assert (row["summary"], row["service"], row["severity"]) == ("disk almost full", "db", "")
    assert len(row["dedup_key"]) == 16


def _with_alerts(n: int) -> dict[str, Any]:
    doc = copy.deepcopy(GOLDEN)
    base = doc["alerts"][0]
    doc["alerts"] = []
    for i in range(n):
        alert = copy.deepcopy(base)
        alert["fingerprint"] = f"{i:016x}"
        doc["alerts"].append(alert)
    return doc


def _break(path: str, value: Any) -> dict[str, Any]:
    doc = _with_alerts(4)
    target: Any = doc
    keys: list[Any] = [
        int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")
    ]
    for key in keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("alerts[2].startsAt", "yesterday"),
        ("alerts[2].startsAt", "2025-01-15T10:02:13"),
        ("alerts[2].startsAt", KeyError),
        ("alerts[1].status", "pending"),
        ("alerts[3].labels.alertname", KeyError),
        ("alerts[0].endsAt", 17),
        ("version", "3"),
        ("alerts", {"not": "a list"}),
    ],
    ids=[
        "bad-time",
        "no-offset",
        "missing-startsAt",
        "bad-status",
        "no-alertname",
        "endsAt-int",
        "v3",
        "alerts",
    ],
)
def test_invalid_payload_gets_422_naming_the_path_and_writes_nothing(
    live_server: LiveServer, path: str, value: Any
) -> None:
    r = post(live_server, _break(path, value))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == path
    assert alerts(live_server) == []


def test_bad_json_is_400(live_server: LiveServer) -> None:
    with live_server.client() as c:
        r = c.post(
            PATH, content=b'{"version": "4", "alerts": [', headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 400
    assert alerts(live_server) == []


def test_auth_bearer_basic_and_scopes(live_server: LiveServer) -> None:
    body = json.dumps(GOLDEN)
    with httpx.Client(base_url=live_server.url) as anon:
        assert anon.post(PATH, content=body).status_code == 401
        assert anon.post(PATH, content=body, auth=("alertmanager", "wrong")).status_code == 401
        assert anon.post(PATH, content=body, auth=("alertmanager", live_server.token)).status_code == 200
    reader = live_server.store.create_token(["read"], "reader")
    with live_server.client(reader) as c:
        assert c.post(PATH, content=body).status_code == 403
    assert len(alerts(live_server)) == 1


_text = st.text(max_size=12)
_alert = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "", "FIRING"]),
        "labels": st.dictionaries(_text, st.one_of(_text, st.integers())),
        "annotations": st.dictionaries(_text, _text),
        "startsAt": st.one_of(
            _text,
            st.sampled_from(
                ["2025-01-15T10:02:13.512Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59"]
            ),
        ),
        "endsAt": st.one_of(_text, st.none(), st.just("0001-01-01T00:00:00+14:00")),
        "fingerprint": st.one_of(_text, st.integers()),
    },
)
_payload = st.one_of(
    st.fixed_dictionaries(
        {"alerts": st.lists(_alert, max_size=3)},
        optional={"version": st.sampled_from(["4", "3", 4]), "truncatedAlerts": st.integers(-2, 2)},
    ),
    st.lists(st.integers(), max_size=2),
    st.none(),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(_payload.map(json.dumps), st.text(max_size=40)))
def test_malformed_payloads_get_4xx_never_5xx_and_write_nothing(
    live_server: LiveServer, payload: str
) -> None:
    before = live_server.store.query("SELECT count(*), coalesce(sum(event_count), 0) FROM external_alerts")[0]
    with live_server.client() as c:
        r = c.post(PATH, content=payload.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code == 200:  # an accidentally valid payload is fine
        return
    assert 400 <= r.status_code < 500
    after = live_server.store.query("SELECT count(*), coalesce(sum(event_count), 0) FROM external_alerts")[0]
    assert after == before
