"""What the routers and the CLI share: time and id parameters, status filters, cursor paging,
incident reads and who acts. Errors are ``SchemaError`` naming the parameter (a 422 on the wire,
a clear message on the command line)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import Query, Request

from api.auth import credentials
from api.convert import incident_detail_to_wire, incident_to_wire
from core.errors import NotFoundError, SchemaError
from core.model import IncidentStatus
from core.store import Store
from detect.incidents import repository as repo

__all__ = [
    "ACTIVE",
    "ACTIVE_STATUSES",
    "CURSOR_PARAM",
    "PRIORITIES",
    "SCAN_ROWS",
    "actor_of",
    "cursor_page",
    "decode_cursor",
    "encode_cursor",
    "incident_detail",
    "incident_page",
    "parse_priorities",
    "parse_series_id",
    "parse_statuses",
    "parse_time",
    "time_key",
]

ACTIVE = "active"
ACTIVE_STATUSES = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)
PRIORITIES = ("P1", "P2", "P3", "P4")


def parse_time(field: str, text: str | None) -> datetime | None:
    """RFC 3339 or Unix seconds -> naive UTC (the store's convention); 422 naming ``field``.

    >>> parse_time("start", "1700000000")
    datetime.datetime(2023, 11, 14, 22, 13, 20)
    >>> parse_time("start", "1e100")
    Traceback (most recent call last):
    ...
    core.errors.SchemaError: start: Unix seconds out of range: '1e100'
    """
    if text is None or text == "":
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        try:
            return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError) as exc:  # beyond year 9999, or NaN
            raise SchemaError(field, f"Unix seconds out of range: {text!r}") from exc
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SchemaError(field, f"expected RFC 3339 or Unix seconds, got {text!r}") from exc
    return ts if ts.tzinfo is None else ts.astimezone(UTC).replace(tzinfo=None)


def parse_series_id(field: str, text: str) -> int:
    """A series id (decimal, 63-bit)."""
    if not text.isdigit() or int(text) >= 1 << 64:
        raise SchemaError(field, f"expected a decimal series id, got {text!r}")
    return int(text)


def parse_statuses(field: str, values: Sequence[str]) -> list[str]:
    """Literal statuses, ``active`` expanded; repeated or comma-separated; 422 naming ``field``.

    >>> parse_statuses("status", ["active", "closed"])
    ['open', 'acknowledged', 'mitigated', 'closed']
    """
    known = {s.value for s in IncidentStatus}
    out: list[str] = []
    for value in values:
        for part in (p.strip().lower() for p in value.split(",")):
            if not part:
                continue
            if part == ACTIVE:
                expanded = [s.value for s in ACTIVE_STATUSES]
            elif part in known:
                expanded = [part]
            else:
                raise SchemaError(
                    field, f"unknown status {part!r} (expected active or one of {sorted(known)})"
                )
            out += [s for s in expanded if s not in out]
    return out


def parse_priorities(field: str, values: Sequence[str]) -> list[str]:
    """Priorities ``P1``..``P4`` (case-insensitive, repeated or comma-separated); 422 naming ``field``."""
    out: list[str] = []
    for value in values:
        for part in (p.strip().upper() for p in value.split(",")):
            if not part:
                continue
            if part not in PRIORITIES:
                raise SchemaError(
                    field, f"unknown priority {part!r} (expected one of {', '.join(PRIORITIES)})"
                )
            if part not in out:
                out.append(part)
    return out


def encode_cursor(opened_at: datetime, incident_id: str) -> str:
    """The opaque cursor after an incident: URL-safe base64 of ``opened_at|id``.

    >>> decode_cursor(encode_cursor(datetime(2026, 1, 2, 3, 4, 5, 6), "INC-7"))
    (datetime.datetime(2026, 1, 2, 3, 4, 5, 6), 'INC-7')
    """
    raw = f"{opened_at.isoformat()}|{incident_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> tuple[datetime, str]:
    """The (opened_at, id) a cursor stands for; 422 naming ``field`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, sep, incident_id = raw.partition("|")
        opened_at = datetime.fromisoformat(stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise SchemaError(field, "not a cursor this server issued") from exc
    if not sep or not incident_id or opened_at.tzinfo is not None:
        raise SchemaError(field, "not a cursor this server issued")
    return opened_at, incident_id


#: Most rows a list endpoint reads from the store to page through in memory.
SCAN_ROWS = 100_000
#: The ``cursor`` query parameter every list endpoint takes (``next_cursor`` of the previous page).
CURSOR_PARAM = Query(default=None, max_length=4096, description="next_cursor of the previous page")

Key = tuple[str | int | float | bool | None, ...]


def time_key(text: str | None) -> str:
    """A wire time (RFC 3339 with ``Z``) as a string that sorts in time order (fixed precision).

    >>> time_key("2024-05-01T11:30:00Z") < time_key("2024-05-01T11:30:00.5Z")
    True
    """
    stamp = (text or "").removesuffix("Z")
    return stamp if "." in stamp or not stamp else stamp + ".000000"


def cursor_page(
    items: Sequence[dict[str, Any]],
    *,
    key: Callable[[dict[str, Any]], Key],
    limit: int,
    cursor: str | None = None,
    reverse: bool = False,
    field: str = "cursor",
) -> dict[str, Any]:
    """One page of a list endpoint: ``{items, next_cursor, total}``, the shape every list answers.

    ``items`` are ordered by ``key`` (descending with ``reverse``); ``key`` must be unique per
    item (end it with the id). The opaque cursor carries the last key shown, so the next page
    starts after it even when items were added or removed meanwhile; ``next_cursor`` is null on
    the last page and ``total`` counts every item, wherever the cursor stands.

    >>> rows = [{"id": str(i)} for i in range(5)]
    >>> first = cursor_page(rows, key=lambda r: (r["id"],), limit=2)
    >>> [r["id"] for r in first["items"]], first["total"]
    (['0', '1'], 5)
    >>> [r["id"] for r in cursor_page(rows, key=lambda r: (r["id"],), limit=9, cursor=first["next_cursor"])["items"]]
    ['2', '3', '4']
    """
    ordered = sorted(items, key=key, reverse=reverse)
    if cursor:
        after = _decode_key(cursor, field)
        try:
            ordered = [i for i in ordered if (key(i) < after if reverse else key(i) > after)]
        except TypeError as exc:
            raise SchemaError(field, "not a cursor of this list") from exc
    page = ordered[:limit]
    more = len(ordered) > limit
    return {
        "items": page,
        "next_cursor": _encode_key(key(page[-1])) if more and page else None,
        "total": len(items),
    }


def _encode_key(key: Key) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return "k" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_key(cursor: str, field: str) -> Key:
    try:
        if not cursor.startswith("k"):
            raise ValueError(cursor)
        raw = base64.urlsafe_b64decode(cursor[1:] + "=" * (-len(cursor[1:]) % 4))
        values = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise SchemaError(field, "not a cursor this server issued") from exc
    if not isinstance(values, list) or not all(
        v is None or isinstance(v, str | int | float | bool) for v in values
    ):
        raise SchemaError(field, "not a cursor this server issued")
    return tuple(values)


def incident_page(
    store: Store,
    *,
    status: Sequence[str] = (),
    service: str | None = None,
    priority: Sequence[str] = (),
    since: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One page of incidents, newest first: ``{items, next_cursor, total}``."""
    after = decode_cursor(cursor) if cursor else None
    filters: dict[str, Any] = {
        "status": status,
        "service": service or None,
        "priority": priority,
        "since": since,
    }
    found = repo.list_incidents(store, **filters, limit=limit + 1, after=after)
    page = found[:limit]
    more = len(found) > limit
    return {
        "items": [incident_to_wire(i) for i in page],
        "next_cursor": encode_cursor(page[-1].opened_at, page[-1].id) if more and page else None,
        "total": repo.count_incidents(store, **filters),
    }


def incident_detail(store: Store, incident_id: str) -> dict[str, Any]:
    """An incident with its alerts and timeline; ``NotFoundError`` naming the id."""
    incident = repo.incident_by_id(store, incident_id)
    if incident is None:
        raise NotFoundError(f"incident {incident_id!r} not found")
    return incident_detail_to_wire(
        incident, repo.alerts_of(store, incident_id), repo.timeline_of(store, incident_id)
    )


def actor_of(request: Request, given: str | None = None) -> str:
    """Who acts: ``given`` if set, else the token's name (its id when unnamed), else ``anonymous``."""
    if given and given.strip():
        return given.strip()
    token = credentials(request)
    if not token:
        return "anonymous"
    store: Store = request.app.state.store
    return store.token_name(token) or "anonymous"
