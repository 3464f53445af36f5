"""The bounded ingest queue: group commit, backpressure, isolation of a bad batch."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

from core.batch import WriteBatch
from core.errors import BackpressureError, StorageError
from core.store import Store, WriteResult
from ingest.points import PointsBuilder
from ingest.queue import IngestQueue


def batch(n: int, digest: str) -> WriteBatch:
    builder = PointsBuilder()
    builder.add("q", (("d", digest),), np.arange(n), np.ones(n))
    series, points = builder.build()
    return WriteBatch(source="test", digest=digest, series=series, points=points, samples=n)


def hold_commits(store: Store) -> threading.Event:
    """Make the store's commits wait until the returned event is set (a stalled disk)."""
    gate = threading.Event()
    original = store.write_many

    def gated(batches: list[WriteBatch]) -> list[WriteResult]:
        gate.wait(10)
        return original(batches)

    store.write_many = gated  # type: ignore[method-assign]
    return gate


def test_full_queue_refuses_instead_of_dropping(store: Store) -> None:
    gate = hold_commits(store)
    queue = IngestQueue(store, max_rows=250, linger_s=0)
    try:
        futures = [queue.submit_nowait(batch(100, "a")), queue.submit_nowait(batch(100, "b"))]
        with pytest.raises(BackpressureError) as info:
            for i in range(5):
                futures.append(queue.submit_nowait(batch(100, f"c{i}")))
        assert info.value.retry_after >= 1
        gate.set()
        accepted = [f.result(10) for f in futures]
    finally:
        queue.close()
    assert all(not r.duplicate for r in accepted)
    assert store.query("SELECT count(*) FROM points")[0][0] == 100 * len(accepted)


def test_one_bad_batch_does_not_sink_its_group(store: Store) -> None:
    bad = batch(3, "bad")
    bad.points = pa.table(
        {
            "series_id": pa.array([1], pa.uint64()),
            "ts": pa.array([None], pa.timestamp("us")),
            "value": pa.array([1.0]),
        }
    )
    gate = hold_commits(store)
    queue = IngestQueue(store, linger_s=0)
    try:
        first = queue.submit_nowait(batch(5, "first"))
        good, wrong = queue.submit_nowait(batch(5, "good")), queue.submit_nowait(bad)
        gate.set()
        first.result(10)
        assert good.result(10).rows == 5
        with pytest.raises(StorageError):
            wrong.result(10)
    finally:
        queue.close()
    assert store.query("SELECT count(*) FROM points")[0][0] == 10
