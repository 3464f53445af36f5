"""PagerDuty Events API v2 compatible intake (``POST /v2/enqueue``).

Source: PagerDuty/developer-docs ``docs/events-API-v2/02-Trigger-Events.md``. A ``trigger``
opens an alert unless one with the same ``dedup_key`` (and routing key) is open, in which
case it is appended to it; ``acknowledge``/``resolve`` act on the open alert and are
dropped when none is open; after a resolve, a trigger opens a *new* alert.

The ``routing_key`` is the caller's credential and also scopes dedup keys: two
integrations that both send ``dedup_key: "db-down"`` keep separate alerts. Events are
actions, not data, so no batch digest is set: an identical trigger sent after a resolve
must open a new alert.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from core.batch import AlertCommand, WriteBatch
from core.errors import DecodeError, PayloadTooLargeError, SchemaError
from core.model import ExternalAlert, ExternalAlertStatus, service_of
from ingest.json_wire import decode_json, parse_iso8601, schema_error, utcnow

FORMAT = "pagerduty"
SOURCE = "pagerduty"
MAX_BYTES = 512 * 1024

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class Image(msgspec.Struct):
    src: NonEmpty
    href: str = ""
    alt: str = ""


class Link(msgspec.Struct):
    href: NonEmpty
    text: str = ""


class Payload(msgspec.Struct):
    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    source: NonEmpty
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    class_: str | None = msgspec.field(default=None, name="class")
    custom_details: dict[str, Any] | None = None


class EventV2(msgspec.Struct):
    """One Events API v2 alert event (field names as on the wire)."""

    routing_key: NonEmpty
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    payload: Payload | None = None
    images: list[Image] = []
    links: list[Link] = []
    client: str | None = None
    client_url: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one event turned into: the batch to commit and the caller's own dedup key."""

    batch: WriteBatch
    dedup_key: str


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode the JSON object (400 if it is not one); validation of fields comes after auth."""
    if len(body) > MAX_BYTES:
        raise PayloadTooLargeError(len(body), MAX_BYTES)
    raw = decode_json(body)
    if not isinstance(raw, dict):
        raise DecodeError("body", "the event must be a JSON object")
    return raw


def routing_key_of(raw: dict[str, Any]) -> str:
    """Return the routing key (the credential) or raise naming ``routing_key``."""
    key = raw.get("routing_key")
    if not isinstance(key, str) or not key:
        raise SchemaError("routing_key", "missing or not a non-empty string")
    return key


def scoped_dedup_key(routing_key: str, dedup_key: str) -> str:
    """Return the stored dedup key: the caller's, prefixed by a hash of its routing key.

    >>> scoped_dedup_key("R0UTINGKEY", "db-down")
    '524df98b69ad:db-down'
    """
    return f"{hashlib.sha256(routing_key.encode()).hexdigest()[:12]}:{dedup_key}"


def decode_event(raw: dict[str, Any]) -> Decoded:
    """Validate one event and turn it into an alert command; raise ``SchemaError`` naming the field."""
    try:
        event = msgspec.convert(raw, EventV2)
    except msgspec.ValidationError as exc:
        raise schema_error(exc) from exc
    now = utcnow()
    if event.event_action == "trigger":
        if event.payload is None:
            raise SchemaError("payload", "missing required field for a trigger event")
        dedup_key = event.dedup_key or uuid.uuid4().hex
        alert = _trigger_alert(event, event.payload, scoped_dedup_key(event.routing_key, dedup_key), now)
    else:
        if event.dedup_key is None:
            raise SchemaError("dedup_key", f"required for a {event.event_action} event")
        dedup_key = event.dedup_key
        alert = ExternalAlert(
            id="",
            source=SOURCE,
            dedup_key=scoped_dedup_key(event.routing_key, dedup_key),
            status=ExternalAlertStatus.ACKNOWLEDGED
            if event.event_action == "acknowledge"
            else ExternalAlertStatus.RESOLVED,
            name="",
            starts_at=now,
            updated_at=now,
        )
    batch = WriteBatch(source=FORMAT, alerts=[AlertCommand(event.event_action, alert)], samples=1)
    return Decoded(batch, dedup_key)


def _trigger_alert(event: EventV2, payload: Payload, dedup_key: str, now: Any) -> ExternalAlert:
    starts_at = now
    if payload.timestamp is not None:
        starts_at = parse_iso8601(payload.timestamp, "payload.timestamp")
    for i, image in enumerate(event.images):
        if not image.src.startswith("https://"):
            raise SchemaError(f"images[{i}].src", "must be an https URL")
    custom = payload.custom_details or {}
    named = {k: v for k, v in custom.items() if isinstance(v, str)}
    service = service_of(named) or payload.component or ""
    labels = {
        key: value
        for key, value in (
            ("source", payload.source),
            ("component", payload.component),
            ("group", payload.group),
            ("class", payload.class_),
        )
        if value
    }
    details: dict[str, Any] = {
        "custom_details": custom,
        "links": [msgspec.to_builtins(link) for link in event.links],
        "images": [msgspec.to_builtins(image) for image in event.images],
        "client": event.client or "",
        "client_url": event.client_url or "",
    }
    url = event.client_url or (event.links[0].href if event.links else "")
    return ExternalAlert(
        id=uuid.uuid4().hex,
        source=SOURCE,
        dedup_key=dedup_key,
        status=ExternalAlertStatus.FIRING,
        name=payload.class_ or payload.summary[:200],
        starts_at=starts_at,
        severity=payload.severity,
        summary=payload.summary,
        service=service,
        labels=labels,
        updated_at=now,
        url=url,
        details=details,
    )
