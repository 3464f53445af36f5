"""SLO maths (slo/maths.py): the hand-computed acceptance cases, then properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from slo.maths import (
    Missing,
    allowed_bad_events,
    allowed_bad_minutes,
    budget_consumed,
    budget_consumed_by,
    budget_remaining,
    burn_rate,
    error_budget,
    occurrences_sli,
    ratio_timeslices_sli,
    time_to_exhaustion,
    timeslices_sli,
)
from slo.spec import TimeWindow, window_bounds

policies: st.SearchStrategy[Missing] = st.sampled_from(["ignore", "good", "bad"])
objectives = st.integers(0, 99999).map(lambda k: k / 100000)
windows = st.integers(1, 400 * 24).map(lambda h: timedelta(hours=h))


# --------------------------------------------------------------------------- acceptance cases


def test_three_nines_leave_a_tenth_of_a_percent() -> None:
    assert error_budget(0.999) == pytest.approx(0.001)
    assert allowed_bad_events(1_000_000, 0.999) == pytest.approx(1000)
    assert allowed_bad_minutes("30d", 0.999) == pytest.approx(43.2)  # 43 200 minutes x 0.001


def test_fast_burn_for_an_hour_spends_two_percent_of_thirty_days() -> None:
    # 14.4 x (1 h / 720 h) = 0.02
    assert budget_consumed_by(14.4, "1h", "30d") == pytest.approx(0.02)
    assert budget_consumed_by(14.4, timedelta(hours=1), timedelta(days=30)) == pytest.approx(0.02)
    # the same from counts: 1.44 % errors against a 0.1 % budget
    assert burn_rate(0.0144, 0.999) == pytest.approx(14.4)


def test_budget_accounting_from_counts() -> None:
    # 1 000 000 requests at 99.9 % allow 1000 bad ones; 250 bad use a quarter.
    assert budget_consumed(250, 1_000_000, 0.999) == pytest.approx(0.25)
    assert budget_remaining(250, 1_000_000, 0.999) == pytest.approx(0.75)
    # 3000 bad overspend threefold: remaining goes negative
    assert budget_remaining(3000, 1_000_000, 0.999) == pytest.approx(-2.0)
    assert budget_consumed(0, 0, 0.999) == 0.0


def test_time_to_exhaustion() -> None:
    # half the 30-day budget left, burning at 6x: 30 d x 0.5 / 6 = 2.5 d
    assert time_to_exhaustion(0.5, 6.0, "30d") == timedelta(days=2, hours=12)
    assert time_to_exhaustion(-0.1, 6.0, "30d") == timedelta(0)
    assert time_to_exhaustion(0.5, 0.0, "30d") is None
    assert time_to_exhaustion(0.5, -1.0, "30d") is None


def test_occurrences_and_timeslices_differ_on_bursty_data() -> None:
    """Ten one-minute slices; nine quiet ones with 100 good requests each, then a burst
    of 1000 requests of which 500 fail:

    =============  =======  ====  ============
    slice          total    good  ratio
    =============  =======  ====  ============
    1 .. 9         100      100   1.0
    10 (burst)     1000     500   0.5
    =============  =======  ====  ============

    - Occurrences weighs every request: (9 x 100 + 500) / (9 x 100 + 1000) = 1400 / 1900
      = 0.7368...: the burst dominates because it holds most of the traffic.
    - Timeslices (slice good at >= 99 %) weighs every minute: 9 good slices of 10 = 0.9.
    - RatioTimeslices averages the slice ratios: (9 x 1.0 + 0.5) / 10 = 0.95.

    Against a 99 % objective all three breach, but Occurrences says the minute of failures
    cost 26 % of requests while Timeslices says it cost one minute in ten.
    """
    good = [100] * 9 + [500]
    total = [100] * 9 + [1000]
    assert occurrences_sli(good, total) == pytest.approx(1400 / 1900)
    assert timeslices_sli(good, total, timeslice_target=0.99) == pytest.approx(0.9)
    assert ratio_timeslices_sli(good, total) == pytest.approx(0.95)


@pytest.mark.parametrize(
    ("missing", "timeslices", "ratio"),
    [
        ("ignore", 1 / 2, (1.0 + 0.8) / 2),
        ("good", 2 / 3, (1.0 + 0.8 + 1.0) / 3),
        ("bad", 1 / 3, (1.0 + 0.8 + 0.0) / 3),
    ],
    ids=["ignore", "good", "bad"],
)
def test_missing_data_policy_for_empty_slices(missing: Missing, timeslices: float, ratio: float) -> None:
    # slices: 100/100 good, 80/100 good (below the 0.9 slice target), empty
    good, total = [100, 80, 0], [100, 100, 0]
    assert occurrences_sli(good, total, missing) == pytest.approx(0.9)  # an empty slice holds no events
    assert timeslices_sli(good, total, 0.9, missing) == pytest.approx(timeslices)
    assert ratio_timeslices_sli(good, total, missing) == pytest.approx(ratio)


def test_no_data_at_all() -> None:
    assert occurrences_sli([0, 0], [0, 0]) is None
    assert timeslices_sli([], [], 0.9) is None
    assert ratio_timeslices_sli([0], [0]) is None
    assert occurrences_sli([0], [0], "good") == 1.0
    assert timeslices_sli([0], [0], 0.9, "bad") == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: error_budget(1.0),
        lambda: error_budget(-0.1),
        lambda: budget_consumed(5, 4, 0.99),
        lambda: occurrences_sli([5], [4]),
        lambda: occurrences_sli([1, 2], [3]),
        lambda: timeslices_sli([1], [1], 0.0),
        lambda: ratio_timeslices_sli([1], [1], cast(Missing, "maybe")),
        lambda: budget_consumed_by(1.0, "1h", "0d"),
    ],
    ids=[
        "objective-1",
        "objective-negative",
        "bad-over-total",
        "good-over-total",
        "shapes",
        "target-0",
        "policy",
        "zero-window",
    ],
)
def test_out_of_domain_arguments_raise(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


def test_calendar_month_boundaries_via_window_bounds() -> None:
    # the budget period of a calendar-month SLO: February 2024 has 29 days, so its
    # 99.9 % allowance is 41.76 minutes against January's 44.64
    feb = window_bounds(TimeWindow("1M", rolling=False), datetime(2024, 2, 10))
    jan = window_bounds(TimeWindow("1M", rolling=False), datetime(2024, 1, 31, 23, 59))
    assert feb == (datetime(2024, 2, 1), datetime(2024, 3, 1))
    assert allowed_bad_minutes(feb[1] - feb[0], 0.999) == pytest.approx(41.76)
    assert allowed_bad_minutes(jan[1] - jan[0], 0.999) == pytest.approx(44.64)


# --------------------------------------------------------------------------- properties


@given(st.integers(0, 10**9), st.integers(1, 10**9), objectives)
def test_remaining_is_one_minus_consumed(bad: int, total: int, objective: float) -> None:
    assume(bad <= total)
    consumed = budget_consumed(bad, total, objective)
    assert budget_remaining(bad, total, objective) == pytest.approx(1.0 - consumed)
    assert consumed == pytest.approx(bad / allowed_bad_events(total, objective))


@given(objectives, windows)
def test_burn_one_for_the_whole_window_spends_exactly_the_budget(objective: float, window: timedelta) -> None:
    rate = burn_rate(error_budget(objective), objective)
    assert rate == pytest.approx(1.0)
    assert budget_consumed_by(rate, window, window) == pytest.approx(1.0)
    # the same in events: an error ratio equal to the budget uses it all
    assert budget_consumed(error_budget(objective) * 10**6, 10**6, objective) == pytest.approx(1.0)


@given(st.floats(0.0, 1000.0), st.floats(0.0, 1000.0), windows, windows)
def test_spending_grows_with_burn_and_duration(
    rate_a: float, rate_b: float, span: timedelta, window: timedelta
) -> None:
    low, high = sorted((rate_a, rate_b))
    assert budget_consumed_by(low, span, window) <= budget_consumed_by(high, span, window)
    assert budget_consumed_by(high, span, window) <= budget_consumed_by(high, span * 2, window)


@given(st.integers(0, 1000), st.integers(1, 1000), objectives, objectives)
def test_stricter_objectives_consume_more(bad: int, total: int, a: float, b: float) -> None:
    assume(bad <= total)
    loose, strict = sorted((a, b))
    assert budget_consumed(bad, total, loose) <= budget_consumed(bad, total, strict)
    assert budget_consumed(bad, total, loose) <= budget_consumed(min(bad + 1, total), total, loose)


@given(st.floats(0.0, 1.0), st.floats(0.01, 100.0), st.floats(0.01, 100.0), windows)
def test_faster_burn_exhausts_sooner(remaining: float, a: float, b: float, window: timedelta) -> None:
    slow, fast = sorted((a, b))
    slow_time, fast_time = (
        time_to_exhaustion(remaining, slow, window),
        time_to_exhaustion(remaining, fast, window),
    )
    assert slow_time is not None and fast_time is not None
    assert fast_time <= slow_time
    # spending at that rate for that long uses exactly what remained
    if fast_time > timedelta(0):
        assert budget_consumed_by(fast, fast_time, window) == pytest.approx(remaining, abs=1e-6)


slices = st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=1, max_size=50).map(
    lambda pairs: ([min(g, t) for g, t in pairs], [t for _, t in pairs])
)


@given(slices, st.floats(0.01, 1.0), st.floats(0.01, 1.0), policies)
def test_timeslices_fall_as_the_slice_target_rises(
    data: tuple[list[int], list[int]], a: float, b: float, missing: Missing
) -> None:
    good, total = data
    low, high = sorted((a, b))
    easy = timeslices_sli(good, total, low, missing)
    hard = timeslices_sli(good, total, high, missing)
    assert (easy is None) == (hard is None)
    if easy is not None and hard is not None:
        assert 0.0 <= hard <= easy <= 1.0


@given(slices)
def test_missing_policy_orders_the_slis(data: tuple[list[int], list[int]]) -> None:
    good, total = data
    policies: tuple[Missing, ...] = ("good", "ignore", "bad")
    values = {m: ratio_timeslices_sli(good, total, m) for m in policies}
    assert values["good"] is not None and values["bad"] is not None
    assert values["bad"] <= values["good"]
    if values["ignore"] is not None:
        assert values["bad"] - 1e-12 <= values["ignore"] <= values["good"] + 1e-12


@given(st.integers(1, 1000), st.lists(st.integers(0, 1000), min_size=1, max_size=30))
def test_occurrences_equal_ratio_timeslices_when_traffic_is_flat(per_slice: int, goods: list[int]) -> None:
    good = [min(g, per_slice) for g in goods]
    total = [per_slice] * len(goods)
    occurrences = occurrences_sli(good, total)
    ratio = ratio_timeslices_sli(good, total)
    assert occurrences is not None and ratio is not None
    assert math.isclose(occurrences, ratio, rel_tol=1e-9, abs_tol=1e-12)
