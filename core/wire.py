"""Wire conversions that more than one stage needs (notifications, tracker webhooks, the API).

Times are ISO 8601 UTC with a ``Z``. The API's own converters (``api.convert``) build on these,
so an incident or backlog item reads the same in a webhook as in ``GET /api/v1/...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from core.model import BacklogItem, Delivery

__all__ = ["backlog_item_to_wire", "iso_or_none", "iso_utc"]


def iso_utc(ts: datetime) -> str:
    """A naive-UTC or aware time as ISO 8601 with ``Z``.

    >>> iso_utc(datetime(2024, 5, 1, 11, 30))
    '2024-05-01T11:30:00Z'
    """
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.isoformat() + "Z"


def iso_or_none(ts: datetime | None) -> str | None:
    """:func:`iso_utc`, or None for no time."""
    return iso_utc(ts) if ts is not None else None


def backlog_item_to_wire(
    item: BacklogItem, revision: int | None = None, deliveries: Sequence[Delivery] = ()
) -> dict[str, Any]:
    """A reliability backlog item (``GET /api/v1/backlog``, tracker webhooks); with ``deliveries``,
    ``links`` names each tracker's issue URL and ``deliveries`` says what each tracker holds."""
    links = {**dict(item.links), **{d.tracker: d.url for d in deliveries if d.url}}
    out: dict[str, Any] = {
        "id": item.id,
        "slo": item.slo,
        "cause": item.cause,
        "service": item.service,
        "title": item.title,
        "status": item.status,
        "priority_score": item.priority_score,
        "capacity_share": item.capacity_share,
        "revision": revision,
        "created_at": iso_or_none(item.created_at),
        "updated_at": iso_or_none(item.updated_at),
        "closed_at": iso_or_none(item.closed_at),
        "links": links,
        "evidence": dict(item.evidence),
    }
    if deliveries:
        out["deliveries"] = [
            {"tracker": d.tracker, "external_id": d.external_id or None, "url": d.url or None,
             "status": d.status, "revision": d.revision, "attempts": d.attempts,
             "last_error": d.last_error or None, "synced_at": iso_or_none(d.synced_at)}
            for d in deliveries
        ]  # fmt: skip
    return out
