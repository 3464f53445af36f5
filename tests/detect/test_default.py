"""default_detector: the one configuration; fresh every call, calibrated across series."""

from __future__ import annotations

import numpy as np

from detect.base import PointBatch, process
from detect.default import default_detector


def test_every_call_builds_an_independent_detector() -> None:
    a, b = default_detector(), default_detector()
    assert a is not b
    process(a, PointBatch.of([0, 0], [0.0, 60.0], [1.0, 2.0]))
    assert not hasattr(b, "state")


def test_one_threshold_fits_series_of_very_different_scales() -> None:
    rng = np.random.default_rng(15)
    series, rounds = 8, 1500
    scale = 10.0 ** np.arange(-3, 5)
    values = rng.normal(0, 1, (rounds, series)) * scale
    spike_at = 1200
    values[spike_at] += 12 * scale
    slot = np.tile(np.arange(series), rounds)
    ts = np.repeat(np.arange(rounds) * 300.0, series)
    s = process(default_detector(), PointBatch.of(slot, ts, values.ravel())).score.reshape(rounds, series)
    # every series' spike beats every series' normal points after the warm-up
    normal = np.delete(s[200:], spike_at - 200, axis=0)
    assert s[spike_at].min() > np.percentile(normal, 99.9)


def test_the_band_contains_typical_points() -> None:
    rng = np.random.default_rng(16)
    t = np.arange(3000) * 300.0
    x = 20 + 5 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.5, len(t))
    s = process(default_detector(), PointBatch.of(np.zeros(len(t)), t, x))
    live = slice(500, None)
    inside = (x[live] >= s.lower[live]) & (x[live] <= s.upper[live])
    assert inside.mean() > 0.9
