"""Prometheus remote-write 1.0: snappy (block) compressed protobuf ``WriteRequest``.

Spec: prometheus/docs remote_write_spec.md. 400 for anything invalid (senders do not retry
4xx), 415 for remote-write 2.0 bodies, stale markers (NaN with bits 0x7ff0000000000002)
stored as NULL values.

Speed: the protobuf schema used for decoding declares ``TimeSeries.labels`` as raw
``bytes`` (wire-identical to the Label submessage), so the label set of a known series is
a C-level join used as a cache key; labels are decoded and validated only the first time
a series is seen by this process.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet

import cramjam
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message

from core.batch import WriteBatch, digest_of
from core.errors import DecodeError, PayloadTooLargeError, SchemaError, UnsupportedMediaError
from core.series import series_id
from ingest.points import LabelItems, points_table, series_table

FORMAT = "remote_write"
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_F = descriptor_pb2.FieldDescriptorProto


def _build_messages() -> dict[str, type[Message]]:
    """Declare the remote-write messages in code (no generated modules to keep in sync)."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="opsloop_prompb.proto", package="opsloop.prompb", syntax="proto3"
    )

    def msg(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    msg("Label", [("name", 1, _F.TYPE_STRING, opt, ""), ("value", 2, _F.TYPE_STRING, opt, "")])
    msg("Sample", [("value", 1, _F.TYPE_DOUBLE, opt, ""), ("timestamp", 2, _F.TYPE_INT64, opt, "")])
    msg(
        "TimeSeries",
        [
            ("labels", 1, _F.TYPE_MESSAGE, rep, ".opsloop.prompb.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, rep, ".opsloop.prompb.Sample"),
        ],
    )
    msg(
        "RawTimeSeries",
        [
            ("labels", 1, _F.TYPE_BYTES, rep, ""),
            ("samples", 2, _F.TYPE_MESSAGE, rep, ".opsloop.prompb.Sample"),
        ],
    )
    msg(
        "MetricMetadata",
        [
            ("type", 1, _F.TYPE_INT32, opt, ""),
            ("metric_family_name", 2, _F.TYPE_STRING, opt, ""),
            ("help", 4, _F.TYPE_STRING, opt, ""),
            ("unit", 5, _F.TYPE_STRING, opt, ""),
        ],
    )
    msg(
        "WriteRequest",
        [
            ("timeseries", 1, _F.TYPE_MESSAGE, rep, ".opsloop.prompb.TimeSeries"),
            ("metadata", 3, _F.TYPE_MESSAGE, rep, ".opsloop.prompb.MetricMetadata"),
        ],
    )
    msg(
        "RawWriteRequest",
        [
            ("timeseries", 1, _F.TYPE_MESSAGE, rep, ".opsloop.prompb.RawTimeSeries"),
            ("metadata", 3, _F.TYPE_MESSAGE, rep, ".opsloop.prompb.MetricMetadata"),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    names = ("Label", "Sample", "TimeSeries", "WriteRequest", "RawWriteRequest", "MetricMetadata")
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"opsloop.prompb.{n}")) for n in names
    }


MESSAGES = _build_messages()
WriteRequest = MESSAGES["WriteRequest"]
_RawWriteRequest = MESSAGES["RawWriteRequest"]
_Label = MESSAGES["Label"]
_METADATA_KIND = {1: "counter", 2: "gauge", 3: "histogram", 4: "histogram", 5: "summary"}


SeriesRow = tuple[str, LabelItems, str, str]


class RemoteWriteDecoder:
    """Decode remote-write bodies into ``WriteBatch``es, remembering label sets it has checked.

    ``known_series`` is the store's set of committed series ids: a batch carries
    dictionary rows only for series the store does not have yet.
    """

    def __init__(
        self, max_bytes: int = 32 * 1024 * 1024, known_series: AbstractSet[int] = frozenset()
    ) -> None:
        self.max_bytes = max_bytes
        self._known_series = known_series
        self._cache: dict[bytes, tuple[int, SeriesRow]] = {}

    def decompress(self, body: bytes) -> bytes:
        """Snappy block decompression with the declared size checked first (413 over the cap)."""
        if not body:
            raise DecodeError("body", "empty body")
        size, shift = 0, 0
        for i, byte in enumerate(body[:10]):
            size |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if i == 9:
                raise DecodeError("body", "snappy: bad length preamble")
        if size > self.max_bytes:
            raise PayloadTooLargeError(size, self.max_bytes)
        try:
            return bytes(cramjam.snappy.decompress_raw(body))
        except Exception as exc:  # cramjam raises its own DecompressionError
            raise DecodeError("body", f"snappy block decompression failed: {exc}") from exc

    def decode(
        self, body: bytes, content_type: str = "application/x-protobuf", content_encoding: str = "snappy"
    ) -> WriteBatch:
        """Decode one HTTP body; raise ``SchemaError`` (400) naming the field at fault."""
        check_media(content_type, content_encoding)
        return self.decode_proto(self.decompress(body))

    def decode_proto(self, raw: bytes) -> WriteBatch:
        """Decode an uncompressed ``WriteRequest`` (hot path: a few list appends per series)."""
        req = _RawWriteRequest()
        try:
            req.ParseFromString(raw)
        except ProtoDecodeError as exc:
            raise DecodeError("body", f"not a remote-write WriteRequest protobuf: {exc}") from exc
        kinds = {m.metric_family_name: _METADATA_KIND.get(m.type, "unknown") for m in req.metadata}
        cache, known = self._cache, self._known_series
        new_rows: dict[int, SeriesRow] = {}
        ids: list[int] = []
        stamps: list[int] = []
        values: list[float] = []
        for i, ts in enumerate(req.timeseries):
            key = b"\x00".join(ts.labels)
            entry = cache.get(key)
            if entry is None:
                entry = self._first_sight(key, ts.labels, i, kinds)
            sid, row = entry
            if sid not in known:
                new_rows[sid] = row
            samples = ts.samples
            n = len(samples)
            if n == 1:
                sample = samples[0]
                ids.append(sid)
                stamps.append(sample.timestamp)
                values.append(sample.value)
            elif n:
                ids.extend([sid] * n)
                stamps.extend([x.timestamp for x in samples])
                values.extend([x.value for x in samples])
        points = points_table(
            np.asarray(ids, dtype=np.uint64),
            np.asarray(stamps, dtype=np.int64) * 1000,
            np.asarray(values, dtype=np.float64),
            stale_nan_bits=True,
        )
        return WriteBatch(
            source=FORMAT,
            digest=digest_of(FORMAT, raw),
            series=series_table(new_rows.items()),
            points=points,
            samples=len(ids),
        )

    def _first_sight(
        self, key: bytes, raw_labels: list[bytes], index: int, kinds: dict[str, str]
    ) -> tuple[int, SeriesRow]:
        name, items = _validate_labels(raw_labels, index)
        entry = (
            series_id(name, items),
            (name, items, kinds.get(name, kinds.get(_family(name), "unknown")), ""),
        )
        if len(self._cache) > 2_000_000:
            self._cache.clear()
        self._cache[key] = entry
        return entry


def _family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _validate_labels(raw_labels: list[bytes], index: int) -> tuple[str, LabelItems]:
    """Decode and check one label set: __name__ present and valid, names valid and unique."""
    where = f"timeseries[{index}].labels"
    pairs: dict[str, str] = {}
    for j, blob in enumerate(raw_labels):
        label = _Label()
        try:
            label.ParseFromString(blob)
        except ProtoDecodeError as exc:
            raise DecodeError(f"{where}[{j}]", f"bad Label message: {exc}") from exc
        if not label.name:
            raise SchemaError(f"{where}[{j}].name", "empty label name")
        if label.name in pairs:
            raise SchemaError(f"{where}[{j}].name", f"duplicate label {label.name!r}")
        if label.name != "__name__" and not LABEL_NAME_RE.match(label.name):
            raise SchemaError(f"{where}[{j}].name", f"invalid label name {label.name!r}")
        if label.value == "":
            raise SchemaError(f"{where}[{j}].value", f"empty value for label {label.name!r}")
        pairs[label.name] = label.value
    name = pairs.pop("__name__", None)
    if name is None:
        raise SchemaError(where, "missing __name__ label")
    if not METRIC_NAME_RE.match(name):
        raise SchemaError(f"{where}.__name__", f"invalid metric name {name!r}")
    return name, tuple(sorted(pairs.items()))


def check_media(content_type: str, content_encoding: str) -> None:
    """Accept remote-write 1.0 only; 2.0 bodies get 415 as the 2.0 spec asks."""
    ctype = content_type.lower()
    if "io.prometheus.write.v2" in ctype:
        raise UnsupportedMediaError(
            "remote-write 2.0 (io.prometheus.write.v2.Request) is not supported; send 1.0"
        )
    if ctype and not ctype.startswith("application/x-protobuf"):
        raise UnsupportedMediaError(f"Content-Type must be application/x-protobuf, got {content_type!r}")
    if content_encoding and content_encoding.lower() != "snappy":
        raise UnsupportedMediaError(f"Content-Encoding must be snappy, got {content_encoding!r}")


def encode_write_request(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    """Encode and snappy-compress a WriteRequest (for tests, benchmarks and the demo).

    >>> body = encode_write_request([({"__name__": "up", "job": "x"}, [(1700000000000, 1.0)])])
    >>> batch = RemoteWriteDecoder().decode(body)
    >>> batch.points.num_rows
    1
    """
    req = WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k in sorted(labels):
            ts.labels.add(name=k, value=labels[k])
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
