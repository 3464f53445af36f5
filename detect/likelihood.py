"""Anomaly likelihood: raw scores -> a calibrated probability, comparable across series.

Raw scores mean different things on different series: a spiky series throws 5-sigma
residuals every day, a smooth one never. One global threshold needs every series to speak
the same language, so each raw score is judged against the series' *own* recent history of
raw scores, in the spirit of Numenta's anomaly likelihood. Raw score distributions of real
metrics are heavy-tailed, so instead of a Gaussian we fit the tail by *peaks over
threshold* (the approach of extreme value theory, as in SPOT): with ``f`` the recent rate at
which raw scores exceed ``threshold``, the probability of a score ``s > threshold`` is
``f`` times the survival function of a generalised Pareto distribution (GPD) at the excess
``y = s - threshold``: ``(1 + xi * y / sigma) ** (-1 / xi)``. Its shape ``xi`` and scale
``sigma`` come from the mean and variance of the recent excesses (the method of moments,
``xi = (1 - mean**2 / var) / 2``), with ``xi`` kept in ``[0, max_shape]``: ``xi = 0`` is the
exponential tail of light-tailed residuals, ``xi > 0`` a power-law tail for series whose big
residuals come in all sizes (spikes of counts, bursts of latency). An exponential fitted to
such a series would call its next big spike astronomically unlikely. All moments are
exponentially weighted sums started from a weak prior (an exponential tail), so the state is
eight numbers per series. Upward and downward residuals have separate tails (a count series
spikes up far more often than it drops), using the sign of ``value - expected``.

The score is a monotone map of that probability to [0, 1) (:func:`surprise_score`): it does
not round to 1.0 for the strongest alarms, which a global threshold needs to rank. The inner
detector's ``expected``, ``lower`` and ``upper`` pass through unchanged.
"""

from __future__ import annotations

import numpy as np

from detect.base import F64, BatchDetector, PointBatch, Scores
from detect.robust_ewm import RobustEWM

__all__ = ["AnomalyLikelihood", "surprise_score"]

LN10 = float(np.log(10.0))
#: Half-lives after which the undecayed sums are renormalised (keep**-n must stay finite).
RENORMALISE_AFTER = 500.0


def surprise_score(logq: F64) -> F64:
    """Map a log tail probability to [0, 1): ``s / (s + 10)`` with ``s = -log10 Q``.

    Monotone in the probability (so a threshold means the same on every series) but, unlike
    ``1 - Q``, it does not round to exactly 1.0 once Q < 1e-16. Q = 1 maps to 0, Q = 1e-10 to 0.5.

    >>> [round(float(v), 3) for v in surprise_score(np.log(np.array([1.0, 1e-10, 1e-30])))]
    [0.0, 0.5, 0.75]
    """
    s = np.maximum(-logq / LN10, 0.0)
    out: F64 = s / (s + 10.0)
    return out


class AnomalyLikelihood(BatchDetector):
    """Wrap a detector; score = how improbable its raw score is for this series (tail fit).

    Parameters
    ----------
    detector
        The detector whose raw scores are calibrated (default: :class:`RobustEWM`).
    threshold
        Raw scores above this (in the inner detector's units, standard deviations for the
        baselines here) are peaks; the tail is fitted to them.
    halflife
        Half-life, in points, of the peak rate and mean excess.
    prior_points, prior_rate, prior_excess
        The weak prior the tail starts from: as if ``prior_points`` points had been seen,
        a ``prior_rate`` fraction of them peaks with mean excess ``prior_excess`` (and the
        second moment of an exponential tail). The default excess is a Gaussian's: beyond
        ``u`` sigmas its mean excess is about ``1/u``.
    max_shape
        Upper bound of the GPD shape ``xi`` (0 keeps the exponential tail). The method of
        moments needs a finite variance, hence ``xi < 1/2``.
    warmup
        A series' first points, during which the inner detector's spread rests on a handful
        of residuals: their raw scores are neither scored nor fitted. Without it the third
        point of a new series (a residual measured against one earlier residual) routinely
        looks like a 10-sigma peak, fattens the young tail and hides the series' first real
        anomaly; after it, the prior carries the fit until real peaks outweigh it.

    Example
    -------
    >>> from detect.base import process
    >>> rng = np.random.default_rng(1)
    >>> values = np.r_[rng.normal(0, 1, 400), 12.0]
    >>> b = PointBatch.of(slot=np.zeros(401), ts=np.arange(401) * 300.0, value=values)
    >>> s = process(AnomalyLikelihood(), b)
    >>> bool(0.0 <= s.score.min() and s.score.max() < 1.0), int(np.argmax(s.score))
    (True, 400)
    """

    def __init__(
        self,
        detector: BatchDetector | None = None,
        threshold: float = 3.0,
        halflife: float = 2000.0,
        prior_points: float = 50.0,
        prior_rate: float = 0.01,
        prior_excess: float = 1.0 / 3.0,
        max_shape: float = 0.45,
        warmup: int = 5,
    ) -> None:
        if not 0.0 <= max_shape < 0.5:
            raise ValueError("max_shape must be in [0, 0.5)")
        self.detector = detector if detector is not None else RobustEWM()
        self.threshold = threshold
        self.halflife = halflife
        self.prior_points = prior_points
        self.prior_rate = prior_rate
        self.prior_excess = prior_excess
        self.max_shape = max_shape
        self.warmup = warmup
        self._keep = 0.5 ** (1.0 / halflife)
        self._log_keep = float(np.log(self._keep))

    _cache: tuple[PointBatch, F64] | None

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        # n: points learned. Per tail (column 0 up, 1 down): EW sums of peaks, of their
        # excess and of its square, stored *undecayed* (scaled by keep**-n), so learning a
        # point touches only the series that peaked: the true sum is the stored one times keep**n.
        return {"n": ((), 0.0), "peaks": ((2,), 0.0), "excess": ((2,), 0.0), "excess2": ((2,), 0.0)}

    def _signed(self, batch: PointBatch) -> tuple[F64, Scores]:
        inner = self.detector.score_batch(batch)
        signed = np.where(batch.value >= inner.expected, inner.score, -inner.score)
        return signed, inner

    def log_tail(self, batch: PointBatch) -> tuple[F64, Scores]:
        """Natural log of each point's tail probability (<= 0), and the inner scores; no learning.

        Combiners use the log probability to compare views without rounding.
        """
        signed, inner = self._signed(batch)
        self._ensure(batch)
        self._cache = (batch, signed)
        st, slot = self.state, batch.slot
        excess = np.where(st["n"][slot] >= self.warmup, np.abs(signed) - self.threshold, 0.0)
        logq = np.zeros(len(signed))
        hot = np.flatnonzero(excess > 0)  # only peaks have a tail probability below 1
        if len(hot) == 0:
            return logq, inner
        n = st["n"][slot[hot]]
        decay = np.exp(n * self._log_keep)  # keep**n
        seen = (1.0 - decay) / (1.0 - self._keep)  # sum of keep**j over the n points seen
        index = 2 * slot[hot] + (signed[hot] < 0)
        prior_peaks = self.prior_points * self.prior_rate
        peaks = st["peaks"].reshape(-1)[index] * decay + prior_peaks
        mean = (st["excess"].reshape(-1)[index] * decay + prior_peaks * self.prior_excess) / peaks
        y = excess[hot]
        log_survival = -y / mean  # exponential tail: the GPD with shape 0
        if self.max_shape > 0.0:
            second = st["excess2"].reshape(-1)[index] * decay + prior_peaks * 2.0 * self.prior_excess**2
            var = np.maximum(second / peaks - mean * mean, 1e-12 * mean * mean)
            # method of moments, clipped to [0, max_shape]; the scale keeps the GPD's mean
            shape = np.minimum(np.maximum(0.5 * (1.0 - mean * mean / var), 0.0), self.max_shape)
            heavy = shape > 1e-9
            if heavy.any():
                k, z = shape[heavy], y[heavy] / (mean[heavy] * (1.0 - shape[heavy]))
                log_survival[heavy] = -np.log1p(k * z) / k
        logq[hot] = np.log(peaks / (seen + self.prior_points)) + log_survival
        return logq, inner

    def score_batch(self, batch: PointBatch) -> Scores:
        logq, inner = self.log_tail(batch)
        return Scores(surprise_score(logq), inner.expected, inner.lower, inner.upper)

    def learn_batch(self, batch: PointBatch) -> None:
        self._ensure(batch)
        st, slot = self.state, batch.slot
        cache = getattr(self, "_cache", None)
        # score_batch has usually just scored this very batch: reuse its raw scores
        signed = cache[1] if cache is not None and cache[0] is batch else self._signed(batch)[0]
        self._cache = None
        self.detector.learn_batch(batch)
        n = st["n"][slot] + 1.0
        excess = np.where(n > self.warmup, np.abs(signed) - self.threshold, 0.0)
        peaked = np.flatnonzero(excess > 0)
        if len(peaked):
            # true sum after this point: keep * old + x, i.e. stored + x * keep**-n
            grow = np.exp(-n[peaked] * self._log_keep)
            index = 2 * slot[peaked] + (signed[peaked] < 0)
            st["peaks"].reshape(-1)[index] += grow  # a slot appears once per batch
            st["excess"].reshape(-1)[index] += excess[peaked] * grow
            st["excess2"].reshape(-1)[index] += excess[peaked] ** 2 * grow
        old = n > RENORMALISE_AFTER * self.halflife
        if old.any():
            # keep keep**-n finite (2**500 at most): fold the decay of all but the last 50
            # half-lives into the sums, whose true values do not change
            which = slot[old]
            shift = n[old] - 50.0 * self.halflife
            factor = np.exp(shift * self._log_keep)[:, None]
            st["peaks"][which] *= factor
            st["excess"][which] *= factor
            st["excess2"][which] *= factor
            n[old] -= shift
        st["n"][slot] = n
