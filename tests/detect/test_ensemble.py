"""Ensemble: most surprised view wins, range rule graded, refractory damps repeats."""

from __future__ import annotations

import numpy as np
import pytest

from detect.base import PointBatch, process
from detect.ensemble import Ensemble
from detect.likelihood import AnomalyLikelihood
from detect.robust_ewm import RobustEWM


def one_series(x: np.ndarray) -> PointBatch:
    return PointBatch.of(np.zeros(len(x)), np.arange(len(x)) * 60.0, x)


def test_a_record_far_outside_the_range_outscores_one_just_outside() -> None:
    rng = np.random.default_rng(13)
    base = rng.uniform(0, 10, 400)
    near = process(Ensemble(refractory=0, warmup_s=0), one_series(np.r_[base, 10.5])).score[-1]
    far = process(Ensemble(refractory=0, warmup_s=0), one_series(np.r_[base, 30.0])).score[-1]
    assert far > near > 0


def test_the_range_rule_waits_for_the_warm_up() -> None:
    x = np.r_[np.linspace(0, 1, 50), 100.0]
    quiet = Ensemble(
        views=(AnomalyLikelihood(RobustEWM(), threshold=1e9),), warmup=100, refractory=0, warmup_s=0
    )
    loud = Ensemble(
        views=(AnomalyLikelihood(RobustEWM(), threshold=1e9),), warmup=10, refractory=0, warmup_s=0
    )
    assert process(quiet, one_series(x)).score[-1] == 0
    assert process(loud, one_series(x)).score[-1] > 0.5


def test_the_range_rule_waits_for_a_day_of_coverage() -> None:
    # a new diurnal series sets a new record every minute of its first rising morning
    t = np.arange(0.0, 2 * 86400.0, 600.0)
    x = 100.0 + 50.0 * np.sin(2 * np.pi * (t / 86400.0 - 0.25))  # trough at midnight

    def only_range(**kw: float) -> Ensemble:
        return Ensemble(views=(AnomalyLikelihood(RobustEWM(), threshold=1e9),), warmup=10, refractory=0, **kw)  # type: ignore[arg-type]

    day_one = t < 86400.0
    b = PointBatch.of(np.zeros(len(t)), t, x)
    assert np.all(process(only_range(), b).score[day_one] == 0), "no records are anomalies before a day"
    assert process(only_range(warmup_s=0), b).score[day_one].max() > 0.5, "points alone would page"
    spike = PointBatch.of(np.zeros(len(t) + 1), np.r_[t, t[-1] + 600.0], np.r_[x, 400.0])
    assert process(only_range(), spike).score[-1] > 0.5, "after a day a new record still counts"


def test_the_refractory_period_damps_a_second_alarm() -> None:
    rng = np.random.default_rng(14)
    x = rng.normal(0, 1, 600)
    x[400] = x[420] = 40.0
    plain = process(Ensemble(refractory=0), one_series(x)).score
    damped = process(Ensemble(refractory=100, damping=0.5), one_series(x)).score
    assert damped[400] == plain[400]
    assert damped[420] == 0.5 * plain[420]


def test_clone_gives_fresh_views() -> None:
    det = Ensemble()
    process(det, one_series(np.arange(200.0)))
    twin = det.clone()
    assert twin.views[0] is not det.views[0]
    assert not hasattr(twin.views[0], "state")


def test_the_default_threshold_is_the_alarm_level() -> None:
    assert Ensemble().default_threshold == Ensemble().alarm
    assert Ensemble(alarm=0.4).default_threshold == 0.4


def test_the_engine_alerts_at_the_ensembles_default_threshold() -> None:
    from core.settings import Settings
    from detect.engine import filter_from_settings

    det = Ensemble(alarm=0.3)
    assert filter_from_settings(Settings(), det).threshold == 0.3
    assert filter_from_settings(Settings(detect_threshold=0.7), det).threshold == 0.7


def test_each_point_reports_the_band_of_the_most_surprised_band_view() -> None:
    rng = np.random.default_rng(5)
    x = np.r_[rng.normal(10, 1, 300), 30.0, rng.normal(10, 1, 50), rng.normal(18, 1, 50)]
    slow, fast = RobustEWM(halflife=200.0), RobustEWM(halflife=2.0)
    only_fast = process(
        Ensemble(views=(AnomalyLikelihood(slow), AnomalyLikelihood(fast)), band_views=(1,)), one_series(x)
    )
    alone = process(AnomalyLikelihood(fast.clone()), one_series(x))
    np.testing.assert_array_equal(only_fast.expected, alone.expected)
    np.testing.assert_array_equal(only_fast.upper, alone.upper)

    either = process(
        Ensemble(views=(AnomalyLikelihood(slow.clone()), AnomalyLikelihood(fast.clone()))), one_series(x)
    )
    slow_alone = process(AnomalyLikelihood(slow.clone()), one_series(x))
    from_slow = either.expected == slow_alone.expected
    from_fast = either.expected == alone.expected
    assert np.all(from_slow | from_fast)
    # where no view is surprised the first band view's band is shown; where the fast view is
    # the more surprised one (around the level shift), its band takes over
    assert from_slow.mean() > 0.9 and (from_fast & ~from_slow)[340:].any()


def test_band_views_must_name_existing_views() -> None:
    with pytest.raises(ValueError, match="band_views"):
        Ensemble(views=(AnomalyLikelihood(RobustEWM()),), band_views=(1,))


def test_source_names_which_view_or_rule_judged_each_point() -> None:
    rng = np.random.default_rng(8)
    base = rng.uniform(0, 10, 400)
    x = np.r_[base, base.max() + 0.06 * np.ptp(base)]  # a new record, unremarkable as a deviation
    ens = Ensemble(refractory=0, warmup_s=0)
    s = process(ens, one_series(x))
    assert s.source is not None and len(s.source) == len(x)
    assert ens.source_names[s.source[-1]] == "range"
    assert ens.source_names[s.source[0]] == "RobustEWM"  # nothing surprising: the first view
    assert set(s.source.tolist()) <= set(range(len(ens.source_names)))
