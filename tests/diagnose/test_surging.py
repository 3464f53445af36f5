"""``surging_templates``: new templates and rate rises beyond Poisson noise, per service window."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diagnose.templates import Surge, surging_templates

HOUR, FIVE_MIN = 3600.0, 300.0


@pytest.mark.parametrize(
    ("base", "window", "flagged"),
    [
        ({1: 600}, {1: 50}, []),  # 10/min before, 10/min now: steady
        ({1: 600}, {1: 60}, []),  # a 20% rise is noise at this volume
        ({1: 60}, {1: 40}, [1]),  # 1/min -> 8/min
        ({1: 12}, {1: 4}, []),  # 0.2/min -> 0.8/min but only 4 lines: below the minimum count
        ({1: 12}, {1: 9}, [1]),  # 0.2/min -> 1.8/min with 9 lines
        ({}, {7: 1}, [7]),  # never seen before: new
        ({1: 5}, {}, []),  # gone quiet is not a surge
    ],
    ids=["steady", "small-rise", "big-rise", "too-few", "rare-but-rising", "new", "quiet"],
)
def test_flags_what_rose_beyond_noise(
    base: dict[int, int], window: dict[int, int], flagged: list[int]
) -> None:
    assert [s.cid for s in surging_templates(base, window, HOUR, FIVE_MIN)] == flagged


def test_a_surge_carries_its_counts_ratio_and_newness() -> None:
    (surge,) = surging_templates({3: 60}, {3: 40}, HOUR, FIVE_MIN)
    assert isinstance(surge, Surge) and surge.ratio == pytest.approx(8.0)
    cid, count, base_count, _, is_new = surge  # a plain tuple for callers that unpack
    assert (cid, count, base_count, is_new) == (3, 40, 60, False)
    (new,) = surging_templates({}, {9: 3}, HOUR, FIVE_MIN)
    assert new.is_new and math.isinf(new.ratio) and new.base_count == 0


def test_new_templates_come_first_then_the_steepest_rises() -> None:
    out = surging_templates({1: 60, 2: 60}, {1: 20, 2: 60, 3: 2}, HOUR, FIVE_MIN)
    assert [s.cid for s in out] == [3, 2, 1]


def test_min_new_and_thresholds_are_honoured() -> None:
    assert surging_templates({}, {4: 1}, HOUR, FIVE_MIN, min_new=2) == []
    # 5 expected, 20 seen: a ratio of 4 and far beyond Poisson noise
    assert [s.cid for s in surging_templates({1: 60}, {1: 20}, HOUR, FIVE_MIN, min_ratio=4.0)] == [1]
    assert surging_templates({1: 60}, {1: 20}, HOUR, FIVE_MIN, min_ratio=4.5) == []
    assert surging_templates({1: 60}, {1: 20}, HOUR, FIVE_MIN, min_count=21) == []
    assert surging_templates({1: 60}, {1: 20}, HOUR, FIVE_MIN, alpha=1e-12) == []
    with pytest.raises(ValueError, match="window_s"):
        surging_templates({}, {}, HOUR, 0.0)


@given(st.floats(0.01, 50.0), st.integers(0, 2**32 - 1))
def test_steady_poisson_traffic_rarely_surges(rate_per_min: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = {c: int(rng.poisson(rate_per_min * 60)) for c in range(20)}
    window = {c: int(rng.poisson(rate_per_min * 5)) for c in range(20)}
    rises = [s for s in surging_templates(base, window, HOUR, FIVE_MIN) if not s.is_new]
    assert len(rises) <= 1  # alpha 1e-4 over 20 templates: one false alarm would already be rare


@given(st.integers(1, 200), st.integers(1, 50))
def test_more_window_lines_never_unflag(base_count: int, window_count: int) -> None:
    flagged = bool(surging_templates({1: base_count}, {1: window_count}, HOUR, FIVE_MIN))
    more = bool(surging_templates({1: base_count}, {1: window_count + 1}, HOUR, FIVE_MIN))
    assert more or not flagged
