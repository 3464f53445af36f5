"""Cold start: a new series is useful within its first hour, and quiet while it warms up.

Warm-up is per series and per view, counted in points (the flat views) or in coverage (the
seasonal profiles need days of their own history), not one fixed day for everything.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from detect.base import PointBatch, process
from detect.default import default_detector
from detect.ensemble import Ensemble
from detect.incidents.alerts import AnomalyAlerter
from detect.seasonal import DAY, SeasonalBaseline

STEP = 60.0  # seconds between points


def bands(series: np.ndarray, ts: np.ndarray, value: np.ndarray, s: object) -> pa.Table:
    """The engine's band table for scored points (what the alerter reads)."""
    return pa.table(
        {
            "series_id": pa.array(series.astype(np.uint64)),
            "ts": pa.array((ts * 1e6).astype(np.int64), pa.timestamp("us")),
            "value": value,
            "probability": s.score,  # type: ignore[attr-defined]
            "expected": s.expected,  # type: ignore[attr-defined]
            "lower": s.lower,  # type: ignore[attr-defined]
            "upper": s.upper,  # type: ignore[attr-defined]
        }
    )


def run(values: np.ndarray) -> tuple[object, list[bool]]:
    """Score one brand-new series with the default detector; the alerter's fire transitions."""
    det = default_detector()
    assert isinstance(det, Ensemble)
    n = len(values)
    ts = np.arange(n) * STEP
    s = process(det, PointBatch.of(np.zeros(n), ts, values))
    flagged = s.score >= det.default_threshold
    t = AnomalyAlerter().observe(bands(np.zeros(n), ts, values, s), flagged)
    return s, t.firing.tolist()


@settings(max_examples=20, deadline=None)
@given(
    level=st.floats(0.5, 1e4),
    noise=st.floats(0.01, 0.2),
    at=st.integers(35, 50),
    seed=st.integers(0, 2**16),
)
def test_a_new_series_alerts_on_a_clear_shift_within_its_first_hour(
    level: float, noise: float, at: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = level * (1.0 + noise * rng.standard_normal(60))
    values[at:] = level * (4.0 + noise * rng.standard_normal(60 - at))  # a fourfold step
    s, fired = run(values)
    assert fired and fired[0], "a clear, sustained step within the first hour must alert"
    assert s.score[at] >= default_detector().default_threshold  # type: ignore[attr-defined]


@settings(max_examples=30, deadline=None)
@given(level=st.floats(0.1, 1e4), noise=st.floats(0.0, 0.3), seed=st.integers(0, 2**16))
def test_no_alert_while_a_clean_series_warms_up(level: float, noise: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = level * (1.0 + noise * rng.standard_normal(240))  # four clean hours at 60 s
    _, fired = run(values)
    assert not fired, "a clean series must not page while its baselines are young"


def test_the_alerter_waits_for_warm_points_then_alerts() -> None:
    n = 12
    ts = np.arange(n) * STEP
    value = np.r_[np.zeros(4), np.full(8, 9.0)]
    table = pa.table(
        {
            "series_id": pa.array(np.full(n, 3, dtype=np.uint64)),
            "ts": pa.array((ts * 1e6).astype(np.int64), pa.timestamp("us")),
            "value": value,
            "probability": np.where(value > 0, 0.9, 0.0),
            "expected": np.zeros(n),
            "lower": np.full(n, -1.0),
            "upper": np.full(n, 1.0),
        }
    )
    flagged = pa.array(value > 0)
    assert AnomalyAlerter(warm_points=4).observe(table, flagged).firing.tolist() == [True]
    assert len(AnomalyAlerter(warm_points=n).observe(table, flagged)) == 0, "never warm: no alert"


def test_a_seasonal_view_does_not_contribute_before_a_day_of_history() -> None:
    t = np.arange(0.0, 3 * DAY, 600.0)
    x = 10.0 + 5.0 * np.sin(2 * np.pi * t / DAY) + np.random.default_rng(4).normal(0, 0.05, len(t))
    x[len(t) // 4] += 8.0  # off the pattern, six hours in
    det = SeasonalBaseline()
    day_one = t < DAY
    s = process(det, PointBatch.of(np.zeros(len(t)), t, x))
    assert np.all(s.score[day_one] == 0.0), "no profile may score before it has its own day"
    assert bool(det.seasonal(np.array([0]))[0]), "after days of a clear cycle it is seasonal"
    assert s.score[~day_one].max() > 0.0
