"""opsloop's own CloudEvents: config changes become changes, maintenance windows are checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import SchemaError
from core.model import ChangeKind
from ingest.cloudevents import (
    BATCH,
    CONFIG_CHANGED,
    MAINTENANCE_SCHEDULED,
    STRUCTURED,
    change_id,
    decode_events,
)

T = datetime(2026, 1, 6, 3, 0, tzinfo=UTC)


def body(ce_type: str, data: Any, **extra: Any) -> bytes:
    event = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/deployer",
        "type": ce_type,
        "time": "2026-01-06T03:00:00Z",
    }
    event.update(extra)
    if data is not None:
        event["data"] = data
    return json.dumps(event).encode()


def stamp(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_config_change_becomes_a_config_change() -> None:
    data = {"service": "payments", "id": "cfg-9", "description": "timeout 5s -> 50ms", "version": "r12"}
    batch = decode_events(body(CONFIG_CHANGED, data), STRUCTURED)
    assert batch.events == []
    (change,) = batch.changes
    assert (change.id, change.service, change.kind, change.version) == (
        "cfg-9",
        "payments",
        ChangeKind.CONFIG,
        "r12",
    )
    assert change.description == "timeout 5s -> 50ms"
    assert change.ts == datetime(2026, 1, 6, 3, 0)
    assert change.attributes["ce_id"] == "e1"


def test_config_change_without_its_own_id_gets_the_event_id() -> None:
    (change,) = decode_events(body(CONFIG_CHANGED, {"service": "cart"}), STRUCTURED).changes
    assert change.id == change_id("/deployer", "e1")
    assert "cart" in change.description


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (None, "data"),
        ("text", "data"),
        ({}, "data.service"),
        ({"service": ""}, "data.service"),
        ({"service": 3}, "data.service"),
        ({"service": "a", "version": 2}, "data.version"),
        ({"service": "a", "id": ["x"]}, "data.id"),
    ],
    ids=[
        "no-data",
        "string-data",
        "no-service",
        "empty-service",
        "numeric-service",
        "numeric-version",
        "list-id",
    ],
)
def test_bad_config_changes_name_the_field(data: Any, field: str) -> None:
    with pytest.raises(SchemaError) as info:
        decode_events(body(CONFIG_CHANGED, data), STRUCTURED)
    assert info.value.field == field


def test_batch_errors_carry_the_index() -> None:
    good = json.loads(body(CONFIG_CHANGED, {"service": "a"}))
    bad = json.loads(body(MAINTENANCE_SCHEDULED, {"service": "a", "start": "soon", "end": stamp(T)}))
    with pytest.raises(SchemaError) as info:
        decode_events(json.dumps([good, bad]).encode(), BATCH)
    assert info.value.field == "[1].data.start"


def test_maintenance_stays_an_event() -> None:
    data = {
        "services": ["db", "cache"],
        "start": stamp(T),
        "end": stamp(T + timedelta(hours=1)),
        "reason": "upgrade",
    }
    batch = decode_events(body(MAINTENANCE_SCHEDULED, data), STRUCTURED)
    assert batch.changes == []
    (event,) = batch.events
    assert event.type == MAINTENANCE_SCHEDULED
    assert json.loads(bytes(event.data))["reason"] == "upgrade"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"service": "db", "end": "2026-01-06T04:00:00Z"}, "data.start"),
        ({"service": "db", "start": "2026-01-06T04:00:00Z"}, "data.end"),
        ({"service": "db", "start": "2026-01-06T04:00:00", "end": "2026-01-06T05:00:00Z"}, "data.start"),
        ({"start": "2026-01-06T04:00:00Z", "end": "2026-01-06T05:00:00Z"}, "data.service"),
        ({"services": [], "start": "2026-01-06T04:00:00Z", "end": "2026-01-06T05:00:00Z"}, "data.services"),
        (
            {"services": ["a", 1], "start": "2026-01-06T04:00:00Z", "end": "2026-01-06T05:00:00Z"},
            "data.services[1]",
        ),
    ],
    ids=["no-start", "no-end", "start-without-offset", "no-service", "empty-services", "numeric-service"],
)
def test_bad_maintenance_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(SchemaError) as info:
        decode_events(body(MAINTENANCE_SCHEDULED, data), STRUCTURED)
    assert info.value.field == field


@given(st.integers(-3 * 3600, 3 * 3600), st.sampled_from(["+00:00", "+02:00", "-05:30", "Z"]))
def test_maintenance_end_must_follow_start(delta_s: int, offset: str) -> None:
    start = T
    end_utc = T + timedelta(seconds=delta_s)
    tz = UTC if offset == "Z" else datetime.strptime(offset, "%z").tzinfo
    end = end_utc.astimezone(tz).isoformat().replace("+00:00", "Z") if offset != "Z" else stamp(end_utc)
    data = {"service": "db", "start": stamp(start), "end": end}
    if delta_s > 0:
        assert len(decode_events(body(MAINTENANCE_SCHEDULED, data), STRUCTURED).events) == 1
    else:
        with pytest.raises(SchemaError) as info:
            decode_events(body(MAINTENANCE_SCHEDULED, data), STRUCTURED)
        assert info.value.field == "data.end"
