"""LevelShift: sustained shifts score high, lone spikes do not, scale-free, state per series."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detect.base import PointBatch, process
from detect.level_shift import LevelShift
from detect.robust_ewm import RobustEWM


def one_series(values: np.ndarray) -> PointBatch:
    return PointBatch.of(np.zeros(len(values)), np.arange(len(values)) * 60.0, values)


@pytest.mark.parametrize("shift", [2.0, 4.0, -3.0], ids=["up-2sd", "up-4sd", "down-3sd"])
def test_a_moderate_shift_outscores_every_normal_point(shift: float) -> None:
    rng = np.random.default_rng(20)
    x = rng.normal(0, 1, 800)
    x[600:] += shift
    s = process(LevelShift(), one_series(x)).score
    assert s[600:610].max() > s[100:600].max()


def test_a_lone_spike_is_not_a_shift_however_big() -> None:
    rng = np.random.default_rng(21)
    x = rng.normal(0, 1, 500)
    x[400] = 1e6
    shift = process(LevelShift(), one_series(x)).score
    pointwise = process(RobustEWM(), one_series(x)).score
    assert pointwise[400] > 1e4
    assert shift[400:405].max() < 5


def test_the_shift_view_sees_what_the_pointwise_residual_misses() -> None:
    # a 2-sigma shift: no single point is extreme, their run is
    rng = np.random.default_rng(22)
    x = rng.normal(0, 1, 700)
    x[500:] += 2.0
    shift = process(LevelShift(), one_series(x)).score
    pointwise = process(RobustEWM(halflife=50.0, spread_halflife=200.0), one_series(x)).score
    assert shift[500:520].max() / shift[100:500].max() > pointwise[500:520].max() / pointwise[100:500].max()


def test_no_score_during_the_warm_up() -> None:
    x = np.r_[np.zeros(10), np.full(10, 100.0)]
    assert process(LevelShift(warmup=30), one_series(x)).score.max() == 0.0


@settings(max_examples=20, deadline=None)
@given(st.floats(1e-6, 1e6), st.integers(0, 2**16))
def test_scores_do_not_depend_on_units(scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, 200)
    x[150:] += 3.0
    a = process(LevelShift(), one_series(x)).score
    b = process(LevelShift(), one_series(scale * x)).score
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5)


def test_series_are_independent() -> None:
    rng = np.random.default_rng(23)
    x = rng.normal(0, 1, (300, 2))
    x[200:, 1] += 5.0
    slot = np.tile([0, 1], 300)
    ts = np.repeat(np.arange(300) * 60.0, 2)
    both = process(LevelShift(), PointBatch.of(slot, ts, x.ravel())).score.reshape(300, 2)
    alone = process(LevelShift(), one_series(x[:, 0])).score
    np.testing.assert_array_equal(both[:, 0], alone)
