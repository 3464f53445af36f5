"""What ingest hands to the store: Arrow tables for bulk rows, small lists for the rest.

One ``WriteBatch`` is one acknowledged unit: it is committed whole or not at all, and a
batch whose ``digest`` was committed before is skipped (idempotent re-delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import xxhash

from core.model import Change, ConfigurationItem, Event, ExternalAlert

SERIES_SCHEMA = pa.schema(
    [
        ("series_id", pa.uint64()),
        ("name", pa.string()),
        ("labels", pa.map_(pa.string(), pa.string())),
        ("service", pa.string()),
        ("kind", pa.string()),
        ("unit", pa.string()),
    ]
)
POINTS_SCHEMA = pa.schema([("series_id", pa.uint64()), ("ts", pa.timestamp("us")), ("value", pa.float64())])
LOGS_SCHEMA = pa.schema(
    [
        ("ts", pa.timestamp("us")),
        ("observed_ts", pa.timestamp("us")),
        ("service", pa.string()),
        ("severity_number", pa.int16()),
        ("severity_text", pa.string()),
        ("body", pa.string()),
        ("attributes", pa.string()),
        ("resource", pa.string()),
        ("scope", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
    ]
)
#: One row per span (OTLP or Zipkin): times in microseconds, ids as lowercase hex.
SPANS_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("service", pa.string()),
        ("operation", pa.string()),
        ("kind", pa.string()),
        ("start_ts", pa.timestamp("us")),
        ("duration_us", pa.int64()),
        ("status", pa.string()),
        ("status_message", pa.string()),
        ("attributes", pa.string()),
        ("resource", pa.string()),
        ("scope", pa.string()),
        ("peer_service", pa.string()),
    ]
)

EVENTS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("id", pa.string()),
        ("type", pa.string()),
        ("ts", pa.timestamp("us")),
        ("subject", pa.string()),
        ("service", pa.string()),
        ("data", pa.string()),
        ("attributes", pa.string()),
    ]
)
CHANGES_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("service", pa.string()),
        ("kind", pa.string()),
        ("ts", pa.timestamp("us")),
        ("version", pa.string()),
        ("environment", pa.string()),
        ("source", pa.string()),
        ("description", pa.string()),
        ("attributes", pa.string()),
    ]
)
TOPOLOGY_SCHEMA = pa.schema(
    [
        ("service", pa.string()),
        ("tier", pa.int32()),
        ("owner", pa.string()),
        ("depends_on", pa.list_(pa.string())),
        ("consumer_facing", pa.bool_()),
        ("attributes", pa.string()),
        ("updated_at", pa.timestamp("us")),
    ]
)
#: One row per scored point: the learned normal range, so analysts can plot the band.
BANDS_SCHEMA = pa.schema(
    [
        ("series_id", pa.uint64()),
        ("ts", pa.timestamp("us")),
        ("value", pa.float64()),
        ("score", pa.float64()),
        ("probability", pa.float64()),
        ("expected", pa.float64()),
        ("lower", pa.float64()),
        ("upper", pa.float64()),
    ]
)
#: An anomaly is a scored point (the band's columns) plus its id and what flagged it.
ANOMALIES_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        *BANDS_SCHEMA,
        ("threshold", pa.float64()),
        ("detector", pa.string()),
        ("direction", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)


@dataclass(frozen=True, slots=True)
class AlertCommand:
    """One lifecycle step for an external alert.

    ``upsert``: insert or update by ``alert.id`` (Alertmanager: id from fingerprint+startsAt).
    ``trigger`` / ``acknowledge`` / ``resolve``: PagerDuty semantics on the open alert with
    the same ``alert.dedup_key`` (a trigger opens a new alert when none is open; acknowledge
    and resolve with no open alert are dropped, as PagerDuty does).
    """

    op: str
    alert: ExternalAlert


@dataclass(slots=True)
class WriteBatch:
    """One unit of ingest, committed atomically by the store's single writer."""

    source: str
    digest: str | None = None
    series: pa.Table | None = None
    points: pa.Table | None = None
    logs: pa.Table | None = None
    spans: pa.Table | None = None
    events: Sequence[Event] = ()
    changes: Sequence[Change] = ()
    alerts: Sequence[AlertCommand] = ()
    topology: Sequence[ConfigurationItem] | None = None
    samples: int = field(default=0)
    #: detection output (``BANDS_SCHEMA``, ``ANOMALIES_SCHEMA``) and how far it got:
    #: (engine name, next points row) committed in the same transaction
    bands: pa.Table | None = None
    anomalies: pa.Table | None = None
    detect_progress: tuple[str, int] | None = None

    @property
    def rows(self) -> int:
        """Rows this batch writes (points + logs + spans + events + changes + alerts + detection output)."""
        n = len(self.events) + len(self.changes) + len(self.alerts)
        for table in (self.points, self.logs, self.spans, self.bands, self.anomalies):
            if table is not None:
                n += table.num_rows
        if self.topology is not None:
            n += len(self.topology)
        return n


def digest_of(source: str, *parts: bytes) -> str:
    """Return the re-delivery key of a payload: a 128-bit hash of its source and bytes.

    XXH3-128 hashes at tens of GB/s (blake2b managed ~400 MB/s, a visible share of a
    megabyte-sized OTLP request); 128 bits make an accidental collision, which would
    drop a batch as a duplicate, vanishingly unlikely.

    >>> digest_of("otlp", b"abc") == digest_of("otlp", b"abc") != digest_of("otlp", b"abd")
    True
    """
    h = xxhash.xxh3_128(source.encode() + b"\x00")
    for part in parts:
        h.update(part)
    return h.hexdigest()
