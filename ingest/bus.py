"""Write batches on a message bus: their wire encoding, and their split into partitions.

In cluster mode a front end decodes and validates a request exactly as the single process
does, then publishes the resulting :class:`~core.batch.WriteBatch` instead of committing it.
The encoding keeps the columnar parts columnar: every Arrow table is an Arrow IPC stream,
the small parts (events, changes, alert commands, topology) are msgpack of the model's own
dataclasses, all in one msgpack envelope.

Partitioning is by series: ``partition = series_id % n`` (series ids are already a hash of
name and labels), so every point of a series, and so its detector state, lives on one
partition for good. The parts that are not per series (logs, spans, events, changes,
alerts, topology) go to partition 0 until the incident coordinator consumes them on their
own subject. Each part keeps the batch's digest with ``:p<partition>`` appended, so a
redelivered part is recognised by the worker's store (``ingest_batches``) and by JetStream's
duplicate window (the digest is the message id).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from core.batch import AlertCommand, WriteBatch
from core.errors import DecodeError
from core.model import Change, ConfigurationItem, Event

__all__ = ["SUBJECT", "decode_batch", "encode_batch", "partition_batch", "subject"]

#: Subject prefix of the point partitions: ``opsloop.points.<partition>``.
SUBJECT = "opsloop.points"
_TABLES = ("series", "points", "logs", "spans", "bands", "anomalies")
_VERSION = 1


class _Envelope(msgspec.Struct, array_like=True):
    version: int
    source: str
    digest: str | None
    samples: int
    tables: dict[str, bytes]
    events: list[Event]
    changes: list[Change]
    alerts: list[AlertCommand]
    topology: list[ConfigurationItem] | None


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Envelope)


def subject(partition: int) -> str:
    """The subject of one point partition.

    >>> subject(3)
    'opsloop.points.3'
    """
    return f"{SUBJECT}.{partition}"


def encode_batch(batch: WriteBatch) -> bytes:
    """The batch as bytes (see the module docstring); ``decode_batch`` gives it back."""
    tables: dict[str, bytes] = {}
    for name in _TABLES:
        table = getattr(batch, name)
        if table is not None:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            tables[name] = sink.getvalue().to_pybytes()
    envelope = _Envelope(
        _VERSION, batch.source, batch.digest, batch.samples, tables, list(batch.events), list(batch.changes),
        list(batch.alerts), list(batch.topology) if batch.topology is not None else None,
    )  # fmt: skip
    return _ENCODER.encode(envelope)


def decode_batch(data: bytes) -> WriteBatch:
    """A batch from ``encode_batch``'s bytes; anything else is a ``DecodeError``."""
    try:
        envelope = _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError("message", f"not an opsloop batch: {exc}") from exc
    if envelope.version != _VERSION:
        raise DecodeError("message.version", f"unknown batch encoding {envelope.version}")
    tables: dict[str, Any] = {}
    for name, raw in envelope.tables.items():
        if name not in _TABLES:
            raise DecodeError("message.tables", f"unknown table {name!r}")
        tables[name] = pa.ipc.open_stream(pa.py_buffer(raw)).read_all()
    return WriteBatch(
        source=envelope.source, digest=envelope.digest, samples=envelope.samples, events=envelope.events,
        changes=envelope.changes, alerts=envelope.alerts, topology=envelope.topology, **tables,
    )  # fmt: skip


def partition_batch(batch: WriteBatch, partitions: int) -> dict[int, WriteBatch]:
    """Split a batch by series (``series_id % partitions``); per-series-free parts go to 0.

    >>> from core.batch import POINTS_SCHEMA
    >>> points = pa.table({"series_id": pa.array([1, 2, 3, 4], pa.uint64()),
    ...                    "ts": pa.array([0, 0, 0, 0], pa.timestamp("us")),
    ...                    "value": [1.0, 2.0, 3.0, 4.0]}, schema=POINTS_SCHEMA)
    >>> parts = partition_batch(WriteBatch(source="x", digest="d", points=points, samples=4), 2)
    >>> {p: (b.digest, b.points.column("series_id").to_pylist()) for p, b in sorted(parts.items())}
    {0: ('d:p0', [2, 4]), 1: ('d:p1', [1, 3])}
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    by_series: dict[int, dict[str, pa.Table]] = {}
    for name in ("series", "points"):
        table = getattr(batch, name)
        if table is None or not table.num_rows:
            continue
        slot = table.column("series_id").to_numpy() % np.uint64(partitions)
        for p in np.unique(slot).tolist():
            by_series.setdefault(int(p), {})[name] = table.filter(pa.array(slot == p))
    rest = (
        any(x for x in (batch.logs, batch.spans, batch.events, batch.changes, batch.alerts))
        or batch.topology is not None
    )
    parts: dict[int, WriteBatch] = {}
    for p in sorted(set(by_series) | ({0} if rest else set())):
        tables = by_series.get(p, {})
        points = tables.get("points")
        fields: dict[str, Any] = {"series": tables.get("series"), "points": points}
        if p != 0:
            fields |= {
                "logs": None,
                "spans": None,
                "events": (),
                "changes": (),
                "alerts": (),
                "topology": None,
            }
        n = points.num_rows if points is not None else 0
        other = sum(t.num_rows for t in (batch.logs, batch.spans) if t is not None and p == 0)
        digest = f"{batch.digest}:p{p}" if batch.digest else None
        parts[p] = replace(batch, digest=digest, samples=n + other, bands=None, anomalies=None, **fields)
    return parts
