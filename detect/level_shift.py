"""Level shift: a short-term mean of *clipped* deviations, judged against a slower baseline.

A spike and a shift look alike on their first point; what tells them apart is whether the
next points stay away. Averaging the raw deviations over a few points would not do it: one
huge spike drags a short average as far as a shift does. So each deviation from a slow
robust baseline (:class:`~detect.robust_ewm.RobustEWM`) is first clipped to ``fast_clip``
standard deviations, then averaged over the last few points (an EW mean with half-life
``fast_halflife``). A lone spike moves that average by at most ``fast_clip`` times the
newest point's weight; a sustained shift pushes it all the way to ``fast_clip``. The score
is the average in its own standard errors: under white noise an EW mean with weight ``a``
has variance ``a / (2 - a)`` times the noise's. Slow drifts and moderate shifts that no
single point makes surprising add up here, so this view catches what a pointwise residual
misses, while its own tail fit (:class:`~detect.likelihood.AnomalyLikelihood`) learns how
often a series shifts anyway.
"""

from __future__ import annotations

import numpy as np

from detect.base import F64, PointBatch, Scores
from detect.robust_ewm import MAD_TO_STD, RobustEWM, clip_symmetric

__all__ = ["LevelShift"]


class LevelShift(RobustEWM):
    """Robust slow baseline plus a short EW mean of clipped deviations from it.

    Parameters
    ----------
    halflife
        Half-life of the slow baseline's level, in points (what "the usual level" means).
        The default suits the detector used alone on series with daily cycles, which a
        slow level would lag; the default ensemble, whose seasonal view covers cycles,
        uses 50 points.
    spread_halflife
        Half-life of the spread (mean absolute deviation), in points.
    fast_halflife
        Half-life of the short-term mean of deviations, in points (how long a shift must
        last to count as one).
    fast_clip
        Deviations are clipped to this many standard deviations before they are averaged,
        so one spike cannot pass for a shift.
    clip
        Residuals beyond ``clip`` spreads are clipped before they update the baseline.
    warmup
        Points before which the score is 0 (the spread is still being learned).
    width
        Half-width of the reported band around the baseline, in robust standard deviations.

    Example
    -------
    With the ensemble's slow baseline, a shift of three standard deviations scores far higher
    than a single spike of thirty:

    >>> from detect.base import process
    >>> rng = np.random.default_rng(4)
    >>> x = rng.normal(0, 1, 600)
    >>> x[300] += 30.0
    >>> x[450:] += 3.0
    >>> det = LevelShift(halflife=50.0, fast_halflife=3.0)
    >>> s = process(det, PointBatch.of(np.zeros(600), np.arange(600) * 60.0, x))
    >>> bool(s.score[450:470].max() > 6), bool(s.score[300:310].max() < 3)
    (True, True)
    """

    def __init__(
        self,
        halflife: float = 5.0,
        spread_halflife: float = 200.0,
        fast_halflife: float = 2.0,
        fast_clip: float = 4.0,
        clip: float = 3.0,
        warmup: int = 30,
        width: float = 3.0,
    ) -> None:
        super().__init__(halflife=halflife, spread_halflife=spread_halflife, clip=clip, width=width)
        self.fast_halflife = fast_halflife
        self.fast_clip = fast_clip
        self.warmup = warmup
        self._f = 1.0 - 0.5 ** (1.0 / fast_halflife)
        self._standard_error = float(np.sqrt(self._f / (2.0 - self._f)))  # of an EW mean, in stds

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        return {**super()._state_spec(), "fast": ((), 0.0)}

    _fast_cache: tuple[PointBatch, tuple[F64, F64, F64, F64]] | None

    def _fast(self, batch: PointBatch) -> tuple[F64, F64, F64, F64]:
        """Points seen, slow level, standard deviation and the updated short-term mean (cached)."""
        cache: tuple[PointBatch, tuple[F64, F64, F64, F64]] | None = getattr(self, "_fast_cache", None)
        if cache is not None and cache[0] is batch:
            return cache[1]
        n, level, _, _, spread = self._baseline(batch)
        std = MAD_TO_STD * spread
        old = self.state["fast"][batch.slot]
        deviation = clip_symmetric(batch.value - level, self.fast_clip * std)
        out = n, level, std, old + self._f * (deviation - old)
        self._fast_cache = (batch, out)
        return out

    def score_batch(self, batch: PointBatch) -> Scores:
        self._ensure(batch)
        n, level, std, fast = self._fast(batch)
        score = np.where(n > self.warmup, np.abs(fast) / (self._standard_error * std), 0.0)
        return Scores.from_expected(score, level + fast, std, self.width)

    def learn_batch(self, batch: PointBatch) -> None:
        self._ensure(batch)
        n, _, _, fast = self._fast(batch)  # before the baseline learns this point
        self._fast_cache = None
        super().learn_batch(batch)
        self.state["fast"][batch.slot] = np.where(n == 0, 0.0, fast)
