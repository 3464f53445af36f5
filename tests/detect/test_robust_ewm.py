"""RobustEWM: follows level shifts, shrugs off outliers, scale-free, band around typical points."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from detect.base import PointBatch, process
from detect.robust_ewm import RobustEWM, clip_symmetric


def one_series(values: np.ndarray, step: float = 60.0) -> PointBatch:
    return PointBatch.of(np.zeros(len(values)), np.arange(len(values)) * step, values)


def test_a_level_shift_scores_high_at_once_and_is_then_absorbed() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(10, 1, 300), rng.normal(20, 1, 300)]
    s = process(RobustEWM(), one_series(x))
    assert s.score[300] > 5 * np.percentile(s.score[100:300], 99) / 3
    # after many half-lives the new level is the expected value again
    assert abs(s.expected[-1] - 20) < 1.5
    assert np.median(s.score[-100:]) < 2


def test_one_outlier_barely_moves_the_baseline() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 400)
    spiked = x.copy()
    spiked[300] = 1000.0
    clean = process(RobustEWM(), one_series(x))
    dirty = process(RobustEWM(), one_series(spiked))
    assert dirty.score[300] > 100
    # the level moved by at most a few spreads, and the band did not blow up
    assert abs(dirty.expected[301] - clean.expected[301]) < 3
    width_clean = clean.upper[310] - clean.lower[310]
    width_dirty = dirty.upper[310] - dirty.lower[310]
    assert width_dirty < 1.5 * width_clean


def test_the_band_contains_typical_points() -> None:
    rng = np.random.default_rng(2)
    x = 50 + rng.normal(0, 2, 2000)
    s = process(RobustEWM(), one_series(x))
    inside = (x[200:] >= s.lower[200:]) & (x[200:] <= s.upper[200:])
    assert inside.mean() > 0.95
    assert np.all(s.lower <= s.expected) and np.all(s.expected <= s.upper)


def test_a_constant_series_scores_zero_and_its_first_wobble_is_finite() -> None:
    x = np.r_[np.full(100, 7.0), 7.5]
    s = process(RobustEWM(), one_series(x))
    assert np.all(s.score[:100] == 0)
    assert np.isfinite(s.score[100]) and s.score[100] > 10


@given(st.floats(1e-6, 1e6), st.integers(0, 2**16))
def test_scores_do_not_depend_on_the_unit(scale: float, seed: int) -> None:
    x = np.random.default_rng(seed).normal(3, 1, 80)
    a = process(RobustEWM(), one_series(x)).score
    b = process(RobustEWM(), one_series(x * scale)).score
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20), st.floats(0, 1e6))
def test_clip_symmetric_is_np_clip(values: list[float], bound: float) -> None:
    v = np.array(values)
    b = np.full(len(v), bound)
    np.testing.assert_array_equal(clip_symmetric(v, b), np.clip(v, -bound, bound))
