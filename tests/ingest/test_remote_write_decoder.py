"""The vectorised remote-write decoder agrees with a plain protobuf decode on every encoding.

Payloads come from the real protobuf encoder (what Prometheus sends) and from a hand-rolled
encoder that writes legal but unusual wire forms: explicit zero fields, fields out of
order, labels after samples, unknown fields, long label values. Each payload is decoded
twice by one decoder, so both the first-sight walk and the cached tail match are checked.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import SchemaError
from ingest.protowire import field, varint
from ingest.remote_write import RemoteWriteDecoder, WriteRequest, write_request_proto

STALE_BITS = 0x7FF0000000000002
STALE = struct.unpack("<d", STALE_BITS.to_bytes(8, "little"))[0]

Series = tuple[dict[str, str], list[tuple[int, float]]]

label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True).filter(lambda s: s != "__name__")
metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
label_values = st.one_of(
    st.text(min_size=1, max_size=20),
    st.sampled_from(["\x12\x10\x09", "\x0a\x05", "\x12\x07\x10", "a" * 200, "b" * 17_000]),
)
timestamps = st.one_of(
    st.just(0),
    st.integers(min_value=1_600_000_000_000, max_value=1_900_000_000_000),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-5, max_value=200),
)
values = st.one_of(
    st.just(0.0),
    st.just(-0.0),
    st.just(STALE),
    st.floats(allow_nan=True, allow_infinity=True),
)
series_st = st.tuples(
    st.builds(
        lambda name, labels: {"__name__": name, **labels},
        metric_names,
        st.dictionaries(label_names, label_values, max_size=6),
    ),
    st.lists(st.tuples(timestamps, values), max_size=25),
)


def unusual_series(labels: dict[str, str], samples: list[tuple[int, float]], style: int) -> bytes:
    """Encode a TimeSeries in a legal but non-canonical form, chosen by ``style``."""
    label_fields = [field(1, field(1, k.encode()) + field(2, labels[k].encode())) for k in sorted(labels)]
    sample_fields = []
    for ts, value in samples:
        v = b"\x09" + struct.pack("<d", value)
        t = b"\x10" + varint(ts)
        body = {0: v + t, 1: t + v, 2: v + t + b"\x18\x07", 3: v + v + t}[style % 4]
        sample_fields.append(field(2, body))
    if style % 2:  # half the labels after the samples, and an unknown exemplar-like field
        half = len(label_fields) // 2
        return b"".join(label_fields[:half] + sample_fields + label_fields[half:]) + field(3, b"")
    return b"".join(label_fields + sample_fields)


def canonical_series(labels: dict[str, str], samples: list[tuple[int, float]]) -> bytes:
    return bytes(WriteRequest.FromString(canonical([(labels, samples)])).timeseries[0].SerializeToString())


def canonical(series: list[Series]) -> bytes:
    return write_request_proto(series)


def reference(raw: bytes) -> list[tuple[str, tuple[tuple[str, str], ...], int, int | None]]:
    """Rows a straightforward protobuf decode gives: name, labels, ts (ms), value bits (None: stale)."""
    rows = []
    for ts in WriteRequest.FromString(raw).timeseries:
        labels = {label.name: label.value for label in ts.labels}
        name = labels.pop("__name__")
        for s in ts.samples:
            bits = struct.unpack("<Q", struct.pack("<d", s.value))[0]
            rows.append(
                (name, tuple(sorted(labels.items())), s.timestamp, None if bits == STALE_BITS else bits)
            )
    return rows


def decoded(decoder: RemoteWriteDecoder, raw: bytes, names: dict[int, Any]) -> list[tuple[Any, ...]]:
    batch = decoder.decode_proto(raw)
    assert batch.points is not None
    for row in [] if batch.series is None else batch.series.to_pylist():
        names[row["series_id"]] = (row["name"], tuple(sorted(row["labels"])))
    points = batch.points
    ids = points.column("series_id").to_pylist()
    ts = points.column("ts").cast("int64").to_numpy(zero_copy_only=False)
    value_col = points.column("value")
    bits = value_col.fill_null(0.0).to_numpy().view(np.uint64)
    nulls = value_col.is_null().to_pylist()
    assert batch.samples == points.num_rows
    return [
        (*names[sid], int(t) // 1000, None if null else int(b))
        for sid, t, b, null in zip(ids, ts, bits, nulls, strict=True)
    ]


def wrap(series_bodies: list[bytes]) -> bytes:
    return b"".join(field(1, body) for body in series_bodies)


@settings(max_examples=120, deadline=None)
@given(st.lists(series_st, max_size=12))
def test_canonical_payloads_decode_like_protobuf(series: list[Series]) -> None:
    raw = canonical(series)
    expected = _us_roundtrip(reference(raw))
    decoder, names = RemoteWriteDecoder(), {}
    assert decoded(decoder, raw, names) == expected
    assert decoded(decoder, raw, names) == expected  # second time: cached label sets


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(series_st, st.integers(0, 7), st.booleans()), max_size=10))
def test_unusual_encodings_decode_like_protobuf(items: list[tuple[Series, int, bool]]) -> None:
    bodies = [
        unusual_series(labels, samples, style) if odd else canonical_series(labels, samples)
        for (labels, samples), style, odd in items
    ]
    raw = wrap(bodies)
    decoder, names = RemoteWriteDecoder(), {}
    expected = _us_roundtrip(reference(raw))
    assert decoded(decoder, raw, names) == expected
    assert decoded(decoder, raw, names) == expected


def _us_roundtrip(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Timestamps are stored in microseconds as int64: ms * 1000 wraps exactly like numpy does."""
    out = []
    for name, labels, ts, v in rows:
        us = np.array([ts], dtype=np.int64) * 1000
        out.append((name, labels, int(us[0]) // 1000, v))
    return out


def test_many_samples_per_series_and_repeated_label_sets() -> None:
    series: list[Series] = [
        ({"__name__": "m", "i": str(i % 3)}, [(1_700_000_000_000 + j, float(j % 2)) for j in range(i * 7)])
        for i in range(12)
    ]
    raw = canonical(series)
    decoder, names = RemoteWriteDecoder(), {}
    assert decoded(decoder, raw, names) == _us_roundtrip(reference(raw))


@pytest.mark.parametrize(
    ("body", "field_path"),
    [
        (field(1, b"\x0a\x05ab"), "timeseries[0]"),
        (field(1, field(1, field(1, b"__name__") + field(2, b"up")) + b"\x12\x10\x09"), "timeseries[0]"),
        (field(1, field(1, field(1, b"job") + field(2, b"x"))), "timeseries[0].labels"),
    ],
    ids=["truncated-label", "truncated-sample", "missing-name"],
)
def test_malformed_series_are_rejected_naming_the_series(body: bytes, field_path: str) -> None:
    with pytest.raises(SchemaError) as err:
        RemoteWriteDecoder().decode_proto(body)
    assert err.value.field.startswith(field_path)
