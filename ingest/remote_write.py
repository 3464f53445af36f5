"""Prometheus remote-write 1.0: snappy (block) compressed protobuf ``WriteRequest``.

Spec: prometheus/docs remote_write_spec.md. 400 for anything invalid (senders do not retry
4xx), 415 for remote-write 2.0 bodies, stale markers (NaN with bits 0x7ff0000000000002)
stored as NULL values.

Speed: protobuf wrapper objects cost microseconds per series, so the hot path uses
protobuf only at the top level (``WriteRequest.timeseries`` declared as ``repeated bytes``)
and finds everything inside the series bodies with numpy, all series at once:

- steady state (``_Located.match_tails``): a body that is a cached label section followed
  by one sample in the usual fixed layout is decoded from one gather of its tail bytes;
  the cache lookup of all ``body[:-18]`` prefixes runs in C (``map`` over ``dict.get``);
- otherwise (``_Located.walk``): label and sample fields are walked field by field, all
  series in step, accepting the encodings senders produce (labels, then samples made of
  an optional ``0x09`` double and an optional ``0x10`` varint timestamp, in that order);
- anything else (fields out of order or repeated, unknown fields, very long labels, more
  than 16 samples) goes to the plain protobuf decoder (``_decode_series``), which also
  names the field of a malformed series. Every valid encoding decodes the same way
  (``tests/ingest/test_remote_write_decoder.py`` checks this against protobuf).

Label sets are decoded and validated once per process (the raw label section is the
cache key); the re-delivery digest hashes the compressed body, eight times shorter.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter

import cramjam
import numpy as np
import pyarrow as pa
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message

from core.batch import WriteBatch, digest_of
from core.errors import DecodeError, PayloadTooLargeError, SchemaError, UnsupportedMediaError
from core.series import series_id
from ingest.points import LabelItems, points_table, series_table
from ingest.rates import CumulativeToRate

FORMAT = "remote_write"
#: The headers a Prometheus 1.0 remote-write sender puts on every request.
REQUEST_HEADERS: dict[str, str] = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
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
            ("timeseries", 1, _F.TYPE_BYTES, rep, ""),
            ("metadata", 3, _F.TYPE_MESSAGE, rep, ".opsloop.prompb.MetricMetadata"),
        ],
    )
    msg("RawLabels", [("labels", 1, _F.TYPE_BYTES, rep, "")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    names = (
        "Label",
        "Sample",
        "TimeSeries",
        "RawTimeSeries",
        "RawLabels",
        "WriteRequest",
        "RawWriteRequest",
        "MetricMetadata",
    )
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"opsloop.prompb.{n}")) for n in names
    }


MESSAGES = _build_messages()
WriteRequest = MESSAGES["WriteRequest"]
_RawWriteRequest = MESSAGES["RawWriteRequest"]
_RawTimeSeries = MESSAGES["RawTimeSeries"]
_RawLabels = MESSAGES["RawLabels"]
_Label = MESSAGES["Label"]
_METADATA_KIND = {1: "counter", 2: "gauge", 3: "histogram", 4: "histogram", 5: "summary"}
#: Kinds a metadata entry may name; UNKNOWN, INFO and STATESET leave it to the naming rules.
_MAX_FAMILIES = 100_000


def kind_of(name: str, labels: LabelItems, metadata: dict[str, str]) -> str:
    """A series' kind: its family's remote-write metadata, else Prometheus' naming conventions.

    ``_total`` is a counter, ``_bucket`` with ``le`` a histogram bucket, ``_count``/``_sum``
    the running totals of a histogram (or summary: both are cumulative alike), ``quantile``
    a summary's quantile, ``_created`` a creation timestamp (a gauge); others stay unknown.

    >>> kind_of("node_cpu_seconds_total", (), {}), kind_of("lat_bucket", (("le", "1"),), {})
    ('counter', 'histogram')
    >>> kind_of("rpc_count", (), {"rpc": "summary"}), kind_of("node_load1", (), {"node_load1": "gauge"})
    ('summary', 'gauge')
    >>> kind_of("x_created", (), {}), kind_of("node_load1", (), {})
    ('gauge', 'unknown')
    """
    known = metadata.get(name) or metadata.get(_family(name))
    if known:
        return known
    if name.endswith("_total"):
        return "counter"
    if name.endswith("_created"):
        return "gauge"
    if name.endswith("_bucket") and any(k == "le" for k, _ in labels):
        return "histogram"
    if name.endswith(("_count", "_sum")):
        return "histogram"
    if any(k == "quantile" for k, _ in labels):
        return "summary"
    return "unknown"


SeriesRow = tuple[str, LabelItems, str, str]


class _SeriesCache:
    """Label sections this process has validated, each in a numbered slot.

    A key is the raw label section of a series (a run of complete Label fields, as the
    walk or ``_label_field`` produced it). Slots hold series ids in an array, so a whole
    request's ids come from one C-level ``map`` and one numpy gather, with no Python per
    series. ``confirmed`` marks slots whose series the store is known to have.
    """

    def __init__(self, max_entries: int = 2_000_000) -> None:
        self.max_entries = max_entries
        self.slot_of: dict[bytes, int] = {}
        self.rows: list[SeriesRow] = []
        self.sids = np.empty(1024, dtype=np.uint64)
        self.confirmed = np.zeros(1024, dtype=bool)

    def lookup(self, keys: list[bytes]) -> np.ndarray:
        """Slot of every key, -1 where unknown."""
        return np.fromiter(map(self.slot_of.get, keys, repeat(-1)), dtype=np.int64, count=len(keys))

    def lookup_prefixes(self, bodies: list[bytes], cut: int) -> np.ndarray:
        """Slot of every ``body[:-cut]``, -1 where unknown (slicing and lookup stay in C)."""
        keys = map(itemgetter(slice(None, -cut)), bodies)
        return np.fromiter(map(self.slot_of.get, keys, repeat(-1)), dtype=np.int64, count=len(bodies))

    def add(self, key: bytes, sid: int, row: SeriesRow) -> int:
        """Remember a validated label section; return its slot."""
        slot = len(self.rows)
        if slot == len(self.sids):
            self.sids = np.concatenate([self.sids, np.empty(slot, dtype=np.uint64)])
            self.confirmed = np.concatenate([self.confirmed, np.zeros(slot, dtype=bool)])
        self.sids[slot] = sid
        self.confirmed[slot] = False
        self.rows.append(row)
        self.slot_of[key] = slot
        return slot

    def trim(self) -> None:
        """Forget everything once over the bound (called between requests, never inside one)."""
        if len(self.rows) >= self.max_entries:
            self.slot_of.clear()
            self.rows.clear()


class RemoteWriteDecoder:
    """Decode remote-write bodies into ``WriteBatch``es, remembering label sets it has checked.

    ``known_series`` is the store's set of committed series ids: a batch carries
    dictionary rows only for series the store does not have yet.
    """

    def __init__(
        self,
        max_bytes: int = 32 * 1024 * 1024,
        known_series: AbstractSet[int] = frozenset(),
        *,
        derive_rates: bool = False,
    ) -> None:
        self.max_bytes = max_bytes
        self._known_series = known_series
        self._cache = _SeriesCache()
        # Prometheus sends metadata in requests of its own, every minute: remember it
        self._metadata: dict[str, str] = {}
        self._fresh: list[int] = []
        #: With ``derive_rates`` (the server) counters and histogram totals also get
        #: ``:rate`` series, which detection scores instead of the raw running totals.
        self.rates = CumulativeToRate(keep_raw=True, histograms=True) if derive_rates else None

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
        return self.decode_proto(self.decompress(body), digest=digest_of(FORMAT, b"snappy", body))

    def decode_proto(self, raw: bytes, digest: str | None = None) -> WriteBatch:
        """Decode an uncompressed ``WriteRequest`` (hot path: no protobuf object per series).

        ``digest`` is the re-delivery key; by default a hash of ``raw`` (``decode`` passes a
        hash of the compressed body, which is eight times shorter to hash).
        """
        req = _RawWriteRequest()
        try:
            req.ParseFromString(raw)
        except ProtoDecodeError as exc:
            raise DecodeError("body", f"not a remote-write WriteRequest protobuf: {exc}") from exc
        for m in req.metadata:
            kind = _METADATA_KIND.get(m.type)
            if kind is not None and m.metric_family_name:
                if len(self._metadata) >= _MAX_FAMILIES:
                    self._metadata.clear()
                self._metadata[m.metric_family_name] = kind
        kinds = self._metadata
        self._fresh = []
        cache = self._cache
        cache.trim()
        loc = _Located(list(req.timeseries))
        loc.walk(loc.match_tails(cache), cache)
        slots, fast = loc.slots, loc.fast
        ids: list[np.ndarray] = []
        stamps: list[np.ndarray] = []
        values: list[np.ndarray] = []
        offsets: list[np.ndarray] = []
        # in payload order, so the first bad series is the one an error names
        for i in np.flatnonzero((slots < 0) | ~fast).tolist():
            if fast[i]:
                slots[i] = self._first_sight(loc.keys[i], i, kinds)
                continue
            slot, ts_ms, vals = self._decode_series(loc.bodies[i], i, kinds)
            slots[i] = slot
            ids.append(np.full(len(ts_ms), cache.sids[slot], dtype=np.uint64))
            stamps.append(ts_ms)
            values.append(vals)
            offsets.append(int(loc.starts[i]) + np.arange(len(ts_ms), dtype=np.int64))
        series, fast_stamps, fast_values, fast_offsets = loc.samples()
        ids.append(cache.sids[slots[series]])
        stamps.append(fast_stamps)
        values.append(fast_values)
        offsets.append(fast_offsets)
        ids_a, stamps_a, values_a = np.concatenate(ids), np.concatenate(stamps), np.concatenate(values)
        at = np.concatenate(offsets)
        if at.size > 1 and (np.diff(at) < 0).any():  # found out of order: back to payload order
            perm = np.argsort(at, kind="stable")
            ids_a, stamps_a, values_a = ids_a[perm], stamps_a[perm], values_a[perm]
        new_rows = self._new_rows(slots)
        batch = WriteBatch(
            source=FORMAT,
            digest=digest or digest_of(FORMAT, raw),
            series=series_table(new_rows.items()) if new_rows else None,
            points=points_table(ids_a, stamps_a * 1000, values_a, stale_nan_bits=True),
            samples=len(ids_a),
        )
        return self._with_rates(batch) if self.rates is not None else batch

    def _with_rates(self, batch: WriteBatch) -> WriteBatch:
        """Add the rates of the batch's cumulative series (their raw points stay)."""
        assert self.rates is not None
        cache = self._cache
        # every series first seen by this process registers, even one the store has
        seen = {int(cache.sids[slot]): cache.rows[slot] for slot in self._fresh}
        series, points = self.rates.convert(series_table(seen.items()) if seen else None, batch.points)
        if points is not None and batch.points is not None and points.num_rows > batch.points.num_rows:
            rate_ids = np.unique(points.column("series_id").to_numpy()[batch.points.num_rows :])
            missing = [int(i) for i in rate_ids.tolist() if int(i) not in self._known_series]
            extra = self.rates.rate_rows(missing)  # again, in case an earlier batch failed to commit
            tables = [t for t in (series, extra) if t is not None and t.num_rows]
            series = pa.concat_tables(tables) if tables else None
        batch.series = series if series is not None and series.num_rows else None
        batch.points = points
        return batch

    def _new_rows(self, slots: np.ndarray) -> dict[int, SeriesRow]:
        """Dictionary rows for the series of ``slots`` that the store does not have yet."""
        cache = self._cache
        known = self._known_series
        rows: dict[int, SeriesRow] = {}
        for slot in np.unique(slots[~cache.confirmed[slots]]).tolist():
            sid = int(cache.sids[slot])
            if sid in known:
                cache.confirmed[slot] = True
            else:
                rows[sid] = cache.rows[slot]
        return rows

    def _decode_series(
        self, body: bytes, index: int, kinds: dict[str, str]
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """Decode one series with protobuf (the path for unusual encodings); return its slot too."""
        ts = _RawTimeSeries()
        try:
            ts.ParseFromString(body)
        except ProtoDecodeError as exc:
            raise DecodeError(f"timeseries[{index}]", f"bad TimeSeries message: {exc}") from exc
        slot = self._first_sight(b"".join(_label_field(blob) for blob in ts.labels), index, kinds)
        samples = ts.samples
        ts_ms = np.fromiter((s.timestamp for s in samples), dtype=np.int64, count=len(samples))
        vals = np.fromiter((s.value for s in samples), dtype=np.float64, count=len(samples))
        return slot, ts_ms, vals

    def _first_sight(self, key: bytes, index: int, kinds: dict[str, str]) -> int:
        """Return the slot of label section ``key``, validating and caching it when new."""
        slot = self._cache.slot_of.get(key)
        if slot is not None:  # seen earlier in this request, or a fallback series' labels
            return slot
        labels = _RawLabels()
        try:
            labels.ParseFromString(key)
        except ProtoDecodeError as exc:  # the walk checked the framing, so this is not expected
            raise DecodeError(f"timeseries[{index}].labels", f"bad labels: {exc}") from exc
        name, items = _validate_labels(list(labels.labels), index)
        row = (name, items, kind_of(name, items, kinds), "")
        slot = self._cache.add(key, series_id(name, items), row)
        self._fresh.append(slot)
        return slot


def _label_field(blob: bytes) -> bytes:
    """Encode one Label as field 1 of a TimeSeries (tag, varint length, body)."""
    out = bytearray(b"\x0a")
    n = len(blob)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + blob


_PAD = 32  # zero bytes after the joined series, so fixed-width reads never leave the buffer
_MAX_SAMPLE_STEPS = 16  # series with more samples than this go to the protobuf decoder


@dataclass(frozen=True, slots=True)
class _Tail:
    """A fixed one-sample tail: ``12 <len>``, then the Sample fields, timestamp a 6-byte varint.

    Senders write these for millisecond timestamps of 1971-2039: ``12 10 09 <double> 10
    <varint>`` (18 bytes) and, for a 0.0 value (omitted by proto3), ``12 07 10 <varint>``.
    """

    size: int
    fixed: tuple[tuple[int, int], ...]  # (offset, byte) that must match exactly
    value_at: int  # offset of the 8-byte double, or -1 for an omitted (0.0) value
    varint_at: int  # offset of the 6-byte timestamp varint


_TAILS = (
    _Tail(18, ((0, 0x12), (1, 0x10), (2, 0x09), (11, 0x10)), value_at=3, varint_at=12),
    _Tail(9, ((0, 0x12), (1, 0x07), (2, 0x10)), value_at=-1, varint_at=3),
)


class _Located:
    """The series bodies of one request in a single buffer, with label keys and samples found.

    ``fast[i]`` is False for a series whose encoding the vectorised walk does not take;
    ``slots[i]`` is its cache slot once known (-1 before). Samples are decoded in chunks of
    (series index, field offset, timestamp ms, value) as they are found.
    """

    def __init__(self, bodies: list[bytes]) -> None:
        n = len(bodies)
        self.bodies = bodies
        lens = np.fromiter(map(len, bodies), dtype=np.int64, count=n)
        self.ends = np.cumsum(lens)
        self.starts = self.ends - lens
        self.buf = np.frombuffer(b"".join(bodies) + bytes(_PAD), dtype=np.uint8)
        self.fast = np.ones(n, dtype=bool)
        self.slots = np.full(n, -1, dtype=np.int64)
        self.keys: dict[int, bytes] = {}
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def match_tails(self, cache: _SeriesCache) -> np.ndarray:
        """Take series whose body is a cached label section plus one usual sample; return the rest.

        Sound by construction: a cache key is a run of complete Label fields, so the bytes
        after it start a field, and the pattern check proves they are exactly one Sample.
        """
        bodies = self.bodies
        todo = np.arange(len(bodies))
        for tail in _TAILS:
            if not todo.size:
                break
            size = tail.size
            subset = bodies if todo.size == len(bodies) else list(map(bodies.__getitem__, todo.tolist()))
            got = cache.lookup_prefixes(subset, size)
            hit = got >= 0
            idx = todo[hit]
            field = np.maximum(self.ends[idx] - size, self.starts[idx])
            rows = self.buf[field[:, None] + np.arange(size)]  # one gather: every tail as a row
            ok = self.ends[idx] - size >= self.starts[idx]
            for offset, byte in tail.fixed:
                ok &= rows[:, offset] == byte
            varint = rows[:, tail.varint_at : tail.varint_at + 6]
            ok &= (varint[:, :5] >= 0x80).all(axis=1) & (varint[:, 5] < 0x80)
            hit[hit] = ok
            self.slots[todo[hit]] = got[hit]
            rows, varint = rows[ok], varint[ok].astype(np.int64) & 0x7F
            stamps = varint @ (np.int64(1) << (7 * np.arange(6, dtype=np.int64)))
            if tail.value_at < 0:
                values = np.zeros(len(rows), dtype=np.float64)
            else:
                values = np.ascontiguousarray(rows[:, tail.value_at : tail.value_at + 8]).view("<f8")[:, 0]
            self._chunks.append((idx[ok], field[ok], stamps, values))
            todo = todo[~hit]
        return todo

    def walk(self, series: np.ndarray, cache: _SeriesCache) -> None:
        """Find label sections and samples of the given series, vectorised across them."""
        buf, ends = self.buf, self.ends
        label_ends = self.starts.copy()
        # label fields: tag 0x0a, varint length of one or two bytes
        active, pos = series, self.starts[series]
        while active.size:
            is_label = (pos < ends[active]) & (buf[pos] == 0x0A)
            active, pos = active[is_label], pos[is_label]
            if not active.size:
                break
            b1 = buf[pos + 1].astype(np.int64)
            b2 = buf[pos + 2].astype(np.int64)
            long = b1 >= 0x80
            pos = pos + np.where(long, 3 + ((b1 & 0x7F) | (b2 << 7)), 2 + b1)
            bad = (long & (b2 >= 0x80)) | (pos > ends[active])
            self.fast[active[bad]] = False
            active, pos = active[~bad], pos[~bad]
            label_ends[active] = pos
        bodies = self.bodies
        cut = (label_ends - self.starts)[series].tolist()
        self.keys = {i: bodies[i][:k] for i, k in zip(series.tolist(), cut, strict=True)}
        self.slots[series] = cache.lookup(list(self.keys.values()))
        # sample fields: tag 0x12, one-byte length (a Sample is at most 20 bytes)
        active = series[self.fast[series]]
        pos = label_ends[active]
        for _ in range(_MAX_SAMPLE_STEPS):
            more = pos < ends[active]
            active, pos = active[more], pos[more]
            if not active.size:
                break
            length = buf[pos + 1].astype(np.int64)
            bad = (buf[pos] != 0x12) | (length >= 0x80) | (pos + 2 + length > ends[active])
            self.fast[active[bad]] = False
            active, pos, length = active[~bad], pos[~bad], length[~bad]
            self._add_samples(active, pos + 2, length)
            pos = pos + 2 + length
        self.fast[active[pos < ends[active]]] = False  # samples left after the step limit

    def _add_samples(self, series: np.ndarray, start: np.ndarray, length: np.ndarray) -> None:
        self.fast[series[_check_samples(self.buf, start, length)]] = False
        stamps, values = _decode_samples(self.buf, start, length)  # bad ones are dropped later
        self._chunks.append((series, start - 2, stamps, values))

    def samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Samples of fast series: series index, timestamps (ms), values, field offsets."""
        if not self._chunks:
            none = np.empty(0, dtype=np.int64)
            return none, none, np.empty(0, dtype=np.float64), none
        series, offsets, stamps, values = (np.concatenate(c) for c in zip(*self._chunks, strict=True))
        keep = self.fast[series]
        return series[keep], stamps[keep], values[keep], offsets[keep]


def _sample_layout(
    buf: np.ndarray, start: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each sample's parts are: has a value, varint start, varint length (0: none)."""
    has_value = (length >= 9) & (buf[start] == 0x09)
    rest = start + 9 * has_value
    rest_len = length - 9 * has_value
    return has_value, rest + 1, np.maximum(rest_len - 1, 0)


def _check_samples(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Mask of samples that are not ``[0x09 double] [0x10 varint]`` exactly filling the field."""
    if not start.size:
        return np.zeros(0, dtype=bool)
    has_value, vstart, vlen = _sample_layout(buf, start, length)
    rest_len = length - 9 * has_value
    bad = (rest_len > 0) & ((buf[vstart - 1] != 0x10) | (vlen < 1) | (vlen > 10))
    # varint: continuation bit on every byte but the last; a 10th byte carries one bit only
    width = int(vlen.max(initial=0))
    for k in range(min(width, 10)):
        byte = buf[vstart + k]
        inside = vlen > k
        last = vlen == k + 1
        bad |= inside & ~last & (byte < 0x80)
        bad |= inside & last & (byte >= 0x80)
        if k == 9:
            bad |= inside & (byte > 1)
    return np.asarray(bad, dtype=bool)


def _decode_samples(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (ms) and values of checked samples; omitted fields are proto3 zeros."""
    has_value, vstart, vlen = _sample_layout(buf, start, length)
    values = np.zeros(start.size, dtype=np.float64)
    if has_value.any():
        at = start[has_value] + 1
        raw = buf[at[:, None] + np.arange(8)]
        values[has_value] = np.ascontiguousarray(raw).view("<f8")[:, 0]
    stamps = np.zeros(start.size, dtype=np.uint64)
    for k in range(int(vlen.max(initial=0))):
        byte = buf[vstart + k].astype(np.uint64) & np.uint64(0x7F)
        stamps |= np.where(vlen > k, byte << np.uint64(7 * k), np.uint64(0))
    return stamps.view(np.int64), values


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
    return bytes(cramjam.snappy.compress_raw(write_request_proto(series)))


def write_request_proto(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    """Serialise an uncompressed WriteRequest with the standard protobuf encoder, labels sorted."""
    req = WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k in sorted(labels):
            ts.labels.add(name=k, value=labels[k])
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return bytes(req.SerializeToString())
