"""AnomalyLikelihood: probabilities in [0, 1), calibrated per series, monotone in the residual."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detect.base import PointBatch, process
from detect.likelihood import AnomalyLikelihood, surprise_score
from detect.robust_ewm import RobustEWM


def trained_twins(n: int, history: np.ndarray) -> AnomalyLikelihood:
    """A likelihood detector whose slots 0..n-1 all saw the same history."""
    det = AnomalyLikelihood()
    for i, v in enumerate(history):
        b = PointBatch.of(np.arange(n), np.full(n, i * 60.0), np.full(n, v))
        det.score_batch(b)
        det.learn_batch(b)
    return det


def test_scores_are_in_the_unit_interval_and_pass_the_band_through() -> None:
    rng = np.random.default_rng(10)
    x = np.r_[rng.standard_t(2, 3000), 1000.0]
    b = PointBatch.of(np.zeros(len(x)), np.arange(len(x)) * 60.0, x)
    s = process(AnomalyLikelihood(), b)
    inner = process(RobustEWM(), b)
    assert np.all((s.score >= 0) & (s.score < 1))
    np.testing.assert_array_equal(s.expected, inner.expected)
    np.testing.assert_array_equal(s.upper, inner.upper)
    # a heavy tail is learned (GPD shape > 0), so only points after the warm-up are outdone
    assert s.score[-1] > s.score[500:-1].max()


def test_the_score_grows_with_the_residual() -> None:
    rng = np.random.default_rng(11)
    det = trained_twins(6, rng.normal(0, 1, 500))
    candidates = np.array([0.0, 2.0, 4.0, 6.0, 10.0, 30.0])
    s = det.score_batch(PointBatch.of(np.arange(6), np.full(6, 1e6), candidates)).score
    assert np.all(np.diff(s) >= 0) and s[-1] > s[2]


def test_the_same_residual_is_less_surprising_on_a_spiky_series() -> None:
    rng = np.random.default_rng(12)
    calm = rng.normal(0, 1, 3000)
    spiky = calm.copy()
    spiky[rng.choice(3000, 150, replace=False)] += rng.choice([-8.0, 8.0], 150)
    stamps = np.arange(3001) * 60.0
    scores = []
    for series in (calm, spiky):
        x = np.r_[series, 9.0]
        scores.append(process(AnomalyLikelihood(), PointBatch.of(np.zeros(3001), stamps, x)).score[-1])
    assert scores[0] > scores[1]


@given(st.lists(st.floats(-1e4, 0.0), min_size=2, max_size=30))
def test_surprise_score_is_monotone_and_below_one(logq: list[float]) -> None:
    q = np.sort(np.array(logq))[::-1]  # decreasing log-probabilities: increasing surprise
    s = surprise_score(q)
    assert np.all((s >= 0) & (s < 1))
    assert np.all(np.diff(s) >= 0)


def reference_log_tail(signed: np.ndarray, det: AnomalyLikelihood) -> np.ndarray:
    """The tail fit written the slow, obvious way: decay every sum at every point."""
    k = 0.5 ** (1.0 / det.halflife)
    seen, peaks, total, total2 = 0.0, [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
    pp = det.prior_points * det.prior_rate
    out = np.zeros(len(signed))
    for i, z in enumerate(signed):
        side = int(z < 0)
        excess = abs(z) - det.threshold
        if excess > 0:
            rate = (peaks[side] + pp) / (seen + det.prior_points)
            mean = (total[side] + pp * det.prior_excess) / (peaks[side] + pp)
            second = (total2[side] + pp * 2 * det.prior_excess**2) / (peaks[side] + pp)
            shape = min(max(0.5 * (1 - mean**2 / (second - mean**2)), 0.0), det.max_shape)
            scale = mean * (1 - shape)
            if shape > 1e-9:
                out[i] = np.log(rate) - np.log1p(shape * excess / scale) / shape
            else:
                out[i] = np.log(rate) - excess / scale
        seen = k * seen + 1.0
        for s in (0, 1):
            hit = s == side and excess > 0
            peaks[s] = k * peaks[s] + (1.0 if hit else 0.0)
            total[s] = k * total[s] + (excess if hit else 0.0)
            total2[s] = k * total2[s] + (excess**2 if hit else 0.0)
    return out


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from([3.0, 50.0, 2000.0]), st.sampled_from([0.0, 0.45]))
def test_the_tail_fit_matches_the_textbook_recursion(seed: int, halflife: float, max_shape: float) -> None:
    # halflife 3 runs past the renormalisation point (500 half-lives) within the stream
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, 1700)
    det = AnomalyLikelihood(halflife=halflife, max_shape=max_shape, warmup=0)
    b = PointBatch.of(np.zeros(len(x)), np.arange(len(x)) * 60.0, x)
    logq = np.empty(len(x))
    for i in range(len(x)):
        one = b.take(np.array([i]))
        logq[i] = det.log_tail(one)[0][0]
        det.learn_batch(one)
    inner = process(RobustEWM(), b)
    signed = np.where(x >= inner.expected, inner.score, -inner.score)
    np.testing.assert_allclose(logq, reference_log_tail(signed, det), rtol=1e-9, atol=1e-9)


def test_the_first_points_of_a_series_neither_score_nor_fatten_the_tail() -> None:
    # the third point is judged against a spread of one residual: a large raw score by chance
    rng = np.random.default_rng(50000)
    x = np.r_[1.0 + 0.125 * rng.standard_normal(35), 4.0]  # then a fourfold step
    b = PointBatch.of(np.zeros(len(x)), np.arange(len(x)) * 60.0, x)
    inner = RobustEWM(halflife=3.0, spread_halflife=200.0)
    assert process(inner.clone(), b).score[:10].max() > 5.0, "the young spread does produce a big raw score"
    guarded = process(AnomalyLikelihood(inner.clone(), warmup=10), b).score
    naive = process(AnomalyLikelihood(inner.clone(), warmup=0), b).score
    assert np.all(guarded[:10] == 0.0)
    assert guarded[-1] > naive[-1] + 0.1, "the young outlier must not make the real anomaly look ordinary"
