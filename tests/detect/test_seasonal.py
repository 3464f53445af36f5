"""SeasonalBaseline: finds daily and weekly patterns by itself, and only where they exist."""

from __future__ import annotations

import numpy as np
import pytest

from detect.base import PointBatch, process
from detect.seasonal import DAY, SeasonalBaseline

START = 1_700_000_000.0 - 1_700_000_000.0 % DAY  # a midnight


def run(t: np.ndarray, x: np.ndarray) -> tuple[SeasonalBaseline, np.ndarray]:
    det = SeasonalBaseline()
    s = process(det, PointBatch.of(np.zeros(len(t)), t, x))
    return det, s.score


def mode(det: SeasonalBaseline) -> int:
    return int(det.seasonal(np.array([0]))[0])


@pytest.mark.parametrize("step", [300.0, 3600.0], ids=["5min", "hourly"])
def test_a_daily_pattern_is_detected_and_an_off_pattern_point_scores_high(step: float) -> None:
    rng = np.random.default_rng(6)
    t = START + np.arange(0, 8 * DAY, step)
    x = 100 + 30 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 2, len(t))
    # at the daily peak, a value from the trough: still well inside the range seen so far
    peak = int(np.argmin(np.abs((t - START) % DAY - DAY / 4) + (t < START + 7 * DAY) * 1e9))
    x[peak] = 75.0
    det, s = run(t, x)
    assert mode(det) >= 1
    assert s[peak] > 5
    assert s[peak] > 3 * np.percentile(s[len(t) // 2 : peak], 99) / 2


def test_white_noise_is_not_called_seasonal() -> None:
    rng = np.random.default_rng(7)
    t = START + np.arange(0, 20 * DAY, 300.0)
    det, s = run(t, rng.normal(0, 1, len(t)))
    assert mode(det) == 0
    assert np.all(s == 0)  # non-seasonal series leave scoring to the flat views


def test_a_weekly_pattern_is_detected() -> None:
    rng = np.random.default_rng(8)
    t = START + np.arange(0, 28 * DAY, 1800.0)
    weekday = ((t // DAY).astype(int) + 3) % 7
    daily = 20 * np.sin(2 * np.pi * t / DAY)
    x = 100 + np.where(weekday >= 5, 0.2, 1.0) * daily + rng.normal(0, 1, len(t))
    det, _ = run(t, x)
    assert mode(det) == 2


def test_irregular_steps_duplicates_and_a_backwards_step_keep_scores_finite() -> None:
    rng = np.random.default_rng(9)
    steps = rng.choice([0.0, 300.0, 300.0, 900.0, 7200.0], 3000)
    steps[1500] = -3300.0  # one backwards step, as in NAB's machine_temperature
    t = START + np.cumsum(steps)
    x = 10 + np.sin(2 * np.pi * t / DAY) + rng.normal(0, 0.1, len(t))
    det = SeasonalBaseline()
    s = process(det, PointBatch(np.zeros(len(t), dtype=np.int64), t, x))
    assert np.all(np.isfinite(s.score)) and np.all(np.isfinite(s.expected))
    assert mode(det) >= 1
