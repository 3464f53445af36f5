"""The one place domain objects become wire JSON (API answers and ``--json`` CLI output).

Times are ISO 8601 UTC with a ``Z``; 63-bit series ids are strings, because JavaScript
numbers lose precision above 2^53.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from core.model import Anomaly

__all__ = ["anomaly_to_wire", "iso_utc"]


def iso_utc(ts: datetime) -> str:
    """A naive-UTC or aware time as ISO 8601 with ``Z``.

    >>> iso_utc(datetime(2024, 5, 1, 11, 30))
    '2024-05-01T11:30:00Z'
    """
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.isoformat() + "Z"


def anomaly_to_wire(a: Anomaly) -> dict[str, Any]:
    """An anomaly as JSON: every field, ids as strings, times as ISO 8601 UTC."""
    out = {f.name: getattr(a, f.name) for f in fields(a)}
    out["ts"] = iso_utc(a.ts)
    out["created_at"] = iso_utc(a.created_at)
    out["series_id"] = str(a.series_id)
    return out
