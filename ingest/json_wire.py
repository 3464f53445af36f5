"""Shared pieces of the JSON intakes: decoding, msgspec errors as field paths, timestamps.

Every JSON format (Alertmanager, PagerDuty, CloudEvents, topology) reports a bad field by
its path in the payload (``alerts[2].startsAt``, ``[3].time``), whatever found the fault:
msgspec's typed decoding or our own checks.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from core.errors import DecodeError, SchemaError

_AWARE_DATETIME = Annotated[datetime, msgspec.Meta(tz=True)]
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_ISO_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")


def field_path(base: str, name: str | int) -> str:
    """Join a path and a key or index the way error messages spell them.

    >>> field_path("", "alerts"), field_path("alerts", 2), field_path("alerts[2]", "labels")
    ('alerts', 'alerts[2]', 'alerts[2].labels')
    """
    if isinstance(name, int):
        return f"{base}[{name}]"
    return f"{base}.{name}" if base else name


def schema_error(exc: msgspec.ValidationError) -> SchemaError:
    """Turn a msgspec validation error into ours, naming the field path without the ``$``.

    >>> class A(msgspec.Struct):
    ...     x: int
    >>> class B(msgspec.Struct):
    ...     items: list[int]
    >>> try:
    ...     msgspec.json.decode(b'{"items": [1, "no"]}', type=B)
    ... except msgspec.ValidationError as exc:
    ...     print(schema_error(exc).field)
    items[1]
    >>> try:
    ...     msgspec.json.decode(b'[{}]', type=list[A])
    ... except msgspec.ValidationError as exc:
    ...     print(schema_error(exc))
    [0].x: missing required field
    """
    match = _AT.match(str(exc))
    message = match.group("msg") if match else str(exc)
    path = (match.group("path") or "") if match else ""
    path = path[1:] if path.startswith(".") else path
    missing = _MISSING.match(message)
    if missing:
        return SchemaError(field_path(path, missing.group("field")), "missing required field")
    return SchemaError(path or "body", message)


def decode_json(body: bytes, type_: Any = Any) -> Any:
    """Decode JSON (optionally into a msgspec type); 400 for bad JSON, 422 naming the field."""
    if not body.strip():
        raise DecodeError("body", "empty body: expected JSON")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise schema_error(exc) from exc
    except msgspec.DecodeError as exc:
        raise DecodeError("body", f"invalid JSON: {exc}") from exc


def naive_utc(value: datetime, field: str) -> datetime:
    """Return a timezone-aware datetime as naive UTC (the store's convention)."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError as exc:
        raise SchemaError(field, "timestamp out of range") from exc


def parse_rfc3339(value: object, field: str) -> datetime:
    """Parse an RFC 3339 timestamp (offset required, any fraction digits) to naive UTC.

    >>> parse_rfc3339("2025-01-15T10:02:13.123456789+01:00", "time")
    datetime.datetime(2025, 1, 15, 9, 2, 13, 123457)
    >>> parse_rfc3339("2025-01-15T10:02:13", "time")
    Traceback (most recent call last):
    ...
    core.errors.SchemaError: time: not an RFC 3339 timestamp with offset: '2025-01-15T10:02:13'
    """
    if not isinstance(value, str):
        raise SchemaError(field, "must be an RFC 3339 timestamp string")
    try:
        parsed: datetime = msgspec.convert(value, _AWARE_DATETIME)
    except msgspec.ValidationError as exc:
        raise SchemaError(field, f"not an RFC 3339 timestamp with offset: {value[:64]!r}") from exc
    return naive_utc(parsed, field)


def parse_iso8601(value: object, field: str) -> datetime:
    """Parse an ISO 8601 timestamp leniently (``+0000`` offsets; no offset means UTC).

    >>> parse_iso8601("2025-01-15T10:05:00.000+0000", "payload.timestamp")
    datetime.datetime(2025, 1, 15, 10, 5)
    >>> parse_iso8601("2025-01-15T10:05:00", "payload.timestamp")
    datetime.datetime(2025, 1, 15, 10, 5)
    """
    if not isinstance(value, str):
        raise SchemaError(field, "must be an ISO 8601 timestamp string")
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    text = _ISO_OFFSET.sub(r"\1:\2", text) if "T" in text or "t" in text else text
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SchemaError(field, f"not an ISO 8601 timestamp: {value[:64]!r}") from exc
    return naive_utc(parsed, field)


def utcnow() -> datetime:
    """Now, as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)
