"""Alertmanager webhook receiver, payload ``version: "4"``.

Source: prometheus/alertmanager ``notify/webhook/webhook.go`` and ``template/template.go``.
Each alert becomes an ``upsert`` of an external alert whose id is derived from its
``fingerprint`` and ``startsAt``: Alertmanager re-sends the whole group on every
``group_interval``/``repeat_interval``, and a resolved notification updates the row the
firing one created. An alert that fires again after resolving has a new ``startsAt``, so it
is a new row. ``endsAt`` of Go's zero time (``0001-01-01T00:00:00Z``) means unset.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec

from core.batch import AlertCommand, WriteBatch, digest_of
from core.errors import SchemaError
from core.model import ExternalAlert, ExternalAlertStatus, service_of
from ingest.json_wire import decode_json, naive_utc, utcnow

FORMAT = "alertmanager"
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class WebhookAlert(msgspec.Struct):
    """One entry of ``alerts[]`` (field names as on the wire)."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    startsAt: AwareDatetime
    annotations: dict[str, str] = {}
    endsAt: AwareDatetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class WebhookMessage(msgspec.Struct):
    """The webhook body: ``template.Data`` plus version, group key and truncation count."""

    alerts: list[WebhookAlert]
    version: str = "4"
    groupKey: str = ""
    truncatedAlerts: Annotated[int, msgspec.Meta(ge=0)] = 0
    status: str = ""
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""


def alert_id(fingerprint: str, starts_at: datetime) -> str:
    """Return the stable id of one firing period of an alert.

    >>> alert_id("c5a1f2e3b4d59687", datetime(2025, 1, 15, 10, 2, 13, 512000))
    'am-c5a1f2e3b4d59687-1736935333512000'
    """
    micros = (starts_at - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    return f"am-{fingerprint}-{micros}"


def label_fingerprint(labels: dict[str, str]) -> str:
    """Fingerprint a label set when the sender left ``fingerprint`` out (16 hex chars)."""
    h = hashlib.blake2b(digest_size=8)
    for key in sorted(labels):
        h.update(key.encode())
        h.update(b"\xff")
        h.update(labels[key].encode())
        h.update(b"\xff")
    return h.hexdigest()


def decode_webhook(body: bytes) -> WriteBatch:
    """Decode one webhook body into alert upserts; raise ``SchemaError`` naming the field.

    >>> batch = decode_webhook(
    ...     b'{"version": "4", "status": "firing", "alerts": [{"status": "firing",'
    ...     b' "labels": {"alertname": "Down", "service": "cart"}, "annotations": {"summary": "down"},'
    ...     b' "startsAt": "2025-01-15T10:02:13.512345678Z", "endsAt": "0001-01-01T00:00:00Z",'
    ...     b' "fingerprint": "c5a1f2e3b4d59687"}]}'
    ... )
    >>> alert = batch.alerts[0].alert
    >>> alert.name, alert.service, alert.summary, alert.ends_at, alert.status
    ('Down', 'cart', 'down', None, <ExternalAlertStatus.FIRING: 'firing'>)
    """
    message: WebhookMessage = decode_json(body, WebhookMessage)
    if message.version != "4":
        raise SchemaError("version", f"unsupported webhook payload version {message.version!r}; expected '4'")
    now = utcnow()
    details = {
        "groupKey": message.groupKey,
        "receiver": message.receiver,
        "externalURL": message.externalURL,
        "truncatedAlerts": message.truncatedAlerts,
    }
    commands: list[AlertCommand] = []
    for i, wire in enumerate(message.alerts):
        where = f"alerts[{i}]"
        name = wire.labels.get("alertname", "")
        if not name:
            raise SchemaError(f"{where}.labels.alertname", "missing alertname label")
        starts_at = naive_utc(wire.startsAt, f"{where}.startsAt")
        ends_at = None
        if wire.endsAt is not None and wire.endsAt.year > 1:  # Go's zero time: unset
            ends_at = naive_utc(wire.endsAt, f"{where}.endsAt")
        fingerprint = wire.fingerprint or label_fingerprint(wire.labels)
        status = ExternalAlertStatus.RESOLVED if wire.status == "resolved" else ExternalAlertStatus.FIRING
        annotations = wire.annotations
        commands.append(
            AlertCommand(
                "upsert",
                ExternalAlert(
                    id=alert_id(fingerprint, starts_at),
                    source=FORMAT,
                    dedup_key=fingerprint,
                    status=status,
                    name=name,
                    starts_at=starts_at,
                    severity=wire.labels.get("severity", ""),
                    summary=annotations.get("summary") or annotations.get("description") or "",
                    service=service_of(wire.labels) or "",
                    fingerprint=fingerprint,
                    labels=dict(wire.labels),
                    annotations=dict(annotations),
                    ends_at=ends_at,
                    updated_at=now,
                    url=wire.generatorURL,
                    details=details,
                ),
            )
        )
    return WriteBatch(source=FORMAT, digest=digest_of(FORMAT, body), alerts=commands, samples=len(commands))
