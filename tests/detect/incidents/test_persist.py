"""A lasting, relatively large shift pages even when the detector never flagged a point of it
(scores damped after an earlier episode); short or small stretches do not."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from detect.incidents.alerts import AnomalyAlerter

STEP_US = 60_000_000


def observe(alerter: AnomalyAlerter, value: np.ndarray, level: float) -> tuple[list[bool], list[int]]:
    n = len(value)
    table = pa.table(
        {
            "series_id": pa.array(np.full(n, 5, dtype=np.uint64)),
            "ts": pa.array(np.arange(n, dtype=np.int64) * STEP_US, pa.timestamp("us")),
            "value": value,
            "probability": np.zeros(n),  # damped: no point is surprising
            "expected": np.full(n, level),
            "lower": np.full(n, level * 0.95),
            "upper": np.full(n, level * 1.05),
        }
    )
    t = alerter.observe(table, pa.array(np.zeros(n, dtype=bool)))  # and none is flagged
    return [bool(f) for f in t.firing], [int(x) // STEP_US for x in t.started]


@settings(max_examples=30, deadline=None)
@given(level=st.floats(0.1, 1e4), factor=st.floats(1.2, 30.0), length=st.integers(1, 30))
def test_an_unflagged_stretch_fires_once_it_lasts_persist_points(
    level: float, factor: float, length: int
) -> None:
    value = np.r_[np.full(40, level), np.full(length, level * factor), np.full(10, level)]
    fired, started = observe(AnomalyAlerter(warm_points=30, persist=10), value, level)
    if length >= 10:
        assert fired == [True, False] and started[0] == 40, "fires, dated from the stretch's first point"
    else:
        assert fired == [], "a short stretch is left to the flagged path"


@settings(max_examples=20, deadline=None)
@given(level=st.floats(1.0, 1e4), rise=st.floats(0.06, 0.09))
def test_a_lasting_but_small_stretch_does_not_fire(level: float, rise: float) -> None:
    value = np.r_[np.full(40, level), np.full(30, level * (1 + rise))]
    assert observe(AnomalyAlerter(warm_points=30, persist=10), value, level)[0] == []


def test_persist_zero_turns_the_rule_off() -> None:
    value = np.r_[np.full(40, 1.0), np.full(30, 3.0)]
    assert observe(AnomalyAlerter(warm_points=30, persist=0), value, 1.0)[0] == []
