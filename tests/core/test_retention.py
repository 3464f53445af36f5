"""Retention deletes only rows past their table's age, counted back from the newest row."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.retention import enforce
from core.store import Store

T0 = datetime(2024, 5, 1)


@settings(max_examples=25)
@given(
    offsets=st.lists(st.integers(0, 30 * 86400), min_size=1, max_size=30),
    age=st.integers(0, 20 * 86400),
)
def test_only_rows_older_than_the_age_before_the_newest_go(
    tmp_path_factory: pytest.TempPathFactory, offsets: list[int], age: int
) -> None:
    with Store(str(tmp_path_factory.mktemp("r") / "r.duckdb")) as store:
        with store.transaction() as con:
            for i, off in enumerate(offsets):
                ts = T0 + timedelta(seconds=off)
                con.execute("INSERT INTO logs (ts, body) VALUES (?, ?)", [ts, f"l{i}"])
                con.execute(
                    "INSERT INTO spans (trace_id, span_id, start_ts, duration_us) VALUES ('t', ?, ?, 1)",
                    [f"s{i}", ts],
                )
        deleted = enforce(store, {"logs": age, "spans": 0})
        newest = max(offsets)
        kept = sorted(f"l{i}" for i, off in enumerate(offsets) if age == 0 or off >= newest - age)
        assert sorted(r[0] for r in store.query("SELECT body FROM logs")) == kept
        assert deleted.get("logs", 0) == (len(offsets) - len(kept) if age else 0)
        assert store.query("SELECT count(*) FROM spans")[0][0] == len(offsets)  # 0 keeps everything


def test_an_unknown_table_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="points"):
        enforce(store, {"points": 1.0})
