"""The store: migrations, atomic batches, idempotent re-delivery, series dictionary, tokens."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.batch import WriteBatch
from core.errors import ConfigError, NotFoundError, StorageError
from core.series import series_id
from core.store import MIGRATIONS, Store
from ingest.points import PointsBuilder


def batch_of(name: str, n: int, digest: str | None = None, start: int = 0) -> WriteBatch:
    builder = PointsBuilder()
    builder.add(name, (("job", "x"),), np.arange(start, start + n) * 1_000_000, np.arange(n, dtype=float))
    series, points = builder.build()
    return WriteBatch(source="test", digest=digest, series=series, points=points, samples=n)


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    path = str(tmp_path / "m.duckdb")
    with Store(path) as first:
        assert first.migrate() == MIGRATIONS[-1][0]
    with Store(path) as again:
        versions = again.query("SELECT version FROM schema_migrations ORDER BY version")
    assert [v for (v,) in versions] == [m[0] for m in MIGRATIONS]


def test_same_digest_is_stored_once_even_within_one_group(store: Store) -> None:
    results = store.write_many([batch_of("a", 10, "d1"), batch_of("a", 10, "d1"), batch_of("b", 5, "d2")])
    assert [r.duplicate for r in results] == [False, True, False]
    assert store.write(batch_of("a", 10, "d1")).duplicate
    assert store.query("SELECT count(*) FROM points")[0][0] == 15


def test_batches_without_digest_are_always_written(store: Store) -> None:
    store.write(batch_of("a", 3))
    store.write(batch_of("a", 3))
    assert store.query("SELECT count(*) FROM points")[0][0] == 6


def test_series_dictionary_holds_each_series_once_with_sorted_labels(store: Store) -> None:
    store.write_many([batch_of("cpu", 2, "x"), batch_of("cpu", 2, "y", start=2)])
    rows = store.query("SELECT series_id, name, labels FROM series")
    assert len(rows) == 1
    sid, name, labels = rows[0]
    assert sid == series_id("cpu", {"job": "x"}) and name == "cpu" and labels == {"job": "x"}


def test_a_failing_batch_writes_nothing(store: Store) -> None:
    good = batch_of("ok", 4, "g")
    bad = batch_of("bad", 4, "b")
    bad.points = pa.table(
        {
            "series_id": pa.array([1], pa.uint64()),
            "ts": pa.array([None], pa.timestamp("us")),
            "value": pa.array([1.0]),
        }
    )  # NOT NULL ts violated
    with pytest.raises(StorageError):
        store.write_many([good, bad])
    assert store.query("SELECT count(*) FROM points")[0][0] == 0
    assert store.query("SELECT count(*) FROM ingest_batches")[0][0] == 0
    assert not store.write(good).duplicate  # the good one can still go in


def test_acknowledged_writes_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "d.duckdb")
    s = Store(path)
    s.write(batch_of("keep", 7, "k"))
    del s  # no close, no checkpoint: the WAL must carry it
    with Store(path) as again:
        assert again.query("SELECT count(*) FROM points")[0][0] == 7


def test_tokens_are_hashed_scoped_and_revocable(store: Store) -> None:
    token = store.create_token(["ingest", "read"], "ci")
    assert store.token_scopes(token) == {"ingest", "read"}
    assert token not in str(store.query("SELECT * FROM tokens"))
    (tid,) = store.query("SELECT id FROM tokens")[0]
    store.revoke_token(tid)
    assert store.token_scopes(token) is None
    with pytest.raises(NotFoundError):
        store.revoke_token("nope")
    with pytest.raises(ConfigError):
        store.create_token(["root"])


@given(
    st.lists(st.tuples(st.integers(-(10**12), 10**12), st.floats(allow_nan=False)), min_size=1, max_size=50)
)
def test_points_round_trip(samples: list[tuple[int, float]]) -> None:
    with Store(":memory:") as s:
        builder = PointsBuilder()
        builder.add("m", (), [t for t, _ in samples], [v for _, v in samples])
        series, points = builder.build()
        s.write(WriteBatch(source="t", series=series, points=points))
        rows = s.query("SELECT epoch_us(ts), value FROM points ORDER BY rowid")
    assert [(int(t), v) for t, v in rows] == samples


def test_readers_see_committed_data_while_the_writer_works(store: Store) -> None:
    store.write(batch_of("a", 100, "r1"))
    with store.reader() as cur:
        before = cur.execute("SELECT count(*) FROM points").fetchone()
        store.write(batch_of("a", 100, "r2", start=100))
        after = cur.execute("SELECT count(*) FROM points").fetchone()
    assert before == (100,) and after == (200,)
    assert isinstance(store.query("SELECT max(ts) FROM points")[0][0], datetime)
