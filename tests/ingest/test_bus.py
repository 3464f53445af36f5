"""Batches on the bus: the encoding round-trips, and partitions split points by series, losing none."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.batch import POINTS_SCHEMA, SERIES_SCHEMA, WriteBatch
from core.errors import DecodeError
from core.model import Change, ChangeKind, ConfigurationItem
from ingest.bus import decode_batch, encode_batch, partition_batch

ids = st.integers(0, 2**64 - 1)


def _batch(series_ids: list[int]) -> WriteBatch:
    points = pa.table(
        {"series_id": pa.array(series_ids, pa.uint64()), "ts": pa.array(range(len(series_ids)), pa.timestamp("us")),
         "value": [float(i) for i in range(len(series_ids))]},
        schema=POINTS_SCHEMA,
    )  # fmt: skip
    unique = sorted(set(series_ids))
    series = pa.table(
        {"series_id": pa.array(unique, pa.uint64()), "name": [f"m{i}" for i in unique],
         "labels": pa.array([[("service", "a")]] * len(unique), pa.map_(pa.string(), pa.string())),
         "service": ["a"] * len(unique), "kind": ["gauge"] * len(unique), "unit": [""] * len(unique)},
        schema=SERIES_SCHEMA,
    )  # fmt: skip
    change = Change("c1", "cart", ChangeKind.DEPLOYED, datetime(2024, 5, 1), version="v2")
    return WriteBatch(source="test", digest="abc", series=series, points=points, samples=len(series_ids),
                      changes=[change], topology=[ConfigurationItem("cart", depends_on=("db",))])  # fmt: skip


@given(st.lists(ids, max_size=50))
def test_the_encoding_round_trips(series_ids: list[int]) -> None:
    batch = _batch(series_ids)
    back = decode_batch(encode_batch(batch))
    assert back.points is not None and back.points.equals(batch.points)
    assert back.series is not None and back.series.equals(batch.series)
    assert list(back.changes) == list(batch.changes) and back.topology == batch.topology
    assert (back.source, back.digest, back.samples) == ("test", "abc", batch.samples)


@given(st.lists(ids, min_size=1, max_size=80), st.integers(1, 8))
def test_partitions_hold_every_point_once_by_series(series_ids: list[int], n: int) -> None:
    parts = partition_batch(_batch(series_ids), n)
    seen = []
    for p, part in parts.items():
        assert part.digest == f"abc:p{p}"
        if part.points is not None:
            sids = part.points.column("series_id").to_pylist()
            assert all(s % n == p for s in sids)
            assert set(part.series.column("series_id").to_pylist()) == set(sids)  # type: ignore[union-attr]
            seen += part.points.column("value").to_pylist()
        assert (part.changes != ()) == (p == 0)  # what is not per series goes to partition 0
    assert sorted(seen) == [float(i) for i in range(len(series_ids))]


@given(st.binary(max_size=64))
def test_other_bytes_are_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_batch(data)
