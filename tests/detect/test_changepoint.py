"""ChangePoint: level and variance shifts build up evidence; a lone outlier does not."""

from __future__ import annotations

import numpy as np
import pytest

from detect.base import PointBatch, process
from detect.changepoint import ChangePoint


def run(x: np.ndarray) -> np.ndarray:
    return process(ChangePoint(), PointBatch.of(np.zeros(len(x)), np.arange(len(x)) * 60.0, x)).score


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["up", "down"])
def test_a_level_shift_is_detected(sign: float) -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0, 1, 400), rng.normal(4 * sign, 1, 40)]
    s = run(x)
    assert np.median(s[400:406]) > 4 * np.median(s[100:400])
    assert s[400:410].max() > np.percentile(s[100:400], 99)


def test_a_variance_shift_is_detected() -> None:
    rng = np.random.default_rng(4)
    x = np.r_[rng.normal(0, 1, 400), rng.normal(0, 5, 60)]
    s = run(x)
    assert np.median(s[405:430]) > 3 * np.median(s[100:400])


def test_a_lone_outlier_does_not_leave_a_lasting_change() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 500)
    x[300] = 50.0
    s = run(x)
    assert s[300] >= 10
    # one clipped residual drains from the CUSUM within a few points
    assert np.median(s[310:330]) < 2 * np.median(s[100:300]) + 1
