"""Combine calibrated views of a series into one anomaly score, with range and refractory rules.

Each view is an :class:`~detect.likelihood.AnomalyLikelihood` around one detector (a level
residual, a seasonal residual, a change point...). Because every view speaks in tail
probabilities for its own series, the views can be combined by taking the most surprised
one. Two rules from NAB's strongest entries sit on top:

* **range**: a value outside everything the series has shown so far (a new minimum or
  maximum, after a warm-up) is an anomaly whatever the models say, the more so the further
  it lands outside the old range;
* **refractory**: once the score has crossed an alarm level, the following points are
  damped for a while: the first alarm of an episode is the one that matters, repeats only
  add noise (and false positives once the episode is over).

The alarm level doubles as :attr:`Ensemble.default_threshold`, the probability a server
alerts at when no threshold is configured.
"""

from __future__ import annotations

from typing import Self

import numpy as np

from detect.base import F64, BatchDetector, PointBatch, Scores
from detect.likelihood import LN10, AnomalyLikelihood, surprise_score
from detect.robust_ewm import RobustEWM

__all__ = ["Ensemble"]


class Ensemble(BatchDetector):
    """Most surprised of several calibrated views, plus a range rule and a refractory period.

    Parameters
    ----------
    views
        Calibrated detectors; their log tail probabilities are combined by the minimum (the
        most surprised view wins).
    band_views
        Indices of the views whose band describes a normal range (default: all). Each point
        reports the band of the most surprised of these, so an anomaly that a seasonal view
        raised is shown against the seasonal band. A view whose "expected" value is not a
        normal level (e.g. ``LevelShift``'s short-term mean) is left out.
    range_tolerance
        A value is out of range once it passes the min/max seen so far by this fraction of
        the range (so noise nudging the record by a hair does not count).
    range_log10
        How surprising a value just beyond the min/max seen so far is, as ``-log10`` of a
        tail probability.
    range_slope
        Extra ``-log10`` probability per range-width beyond the old range (a new record far
        outside the old range is stranger than one that just touches it).
    warmup, warmup_s
        The range rule is off until a series has both this many points and this many seconds
        of its own history (default a day): before a series has covered a full daily cycle,
        a new maximum is what a rising morning looks like, not an anomaly.
    alarm
        Score at which an alarm starts the refractory period.
    refractory
        Points after an alarm during which scores are damped. Alarms in a series' first
        ``warmup`` points start no refractory period: a young series' chance alarm must not
        mute its first real anomaly.
    damping
        Factor applied to scores during the refractory period.

    Example
    -------
    >>> from detect.base import process
    >>> rng = np.random.default_rng(2)
    >>> values = np.r_[rng.normal(5, 1, 300), 25.0, rng.normal(5, 1, 20)]
    >>> b = PointBatch.of(slot=np.zeros(321), ts=np.arange(321) * 60.0, value=values)
    >>> s = process(Ensemble(), b)
    >>> bool(s.score[300] > 0.25), float(np.mean(s.score[100:300] > 0.25))
    (True, 0.0)
    """

    def __init__(
        self,
        views: tuple[AnomalyLikelihood, ...] | None = None,
        range_tolerance: float = 0.02,
        range_log10: float = 12.0,
        range_slope: float = 10.0,
        warmup: int = 100,
        alarm: float = 0.25,
        refractory: int = 100,
        damping: float = 0.5,
        band_views: tuple[int, ...] | None = None,
        warmup_s: float = 86400.0,
    ) -> None:
        self.views = views if views is not None else (AnomalyLikelihood(RobustEWM()),)
        self.band_views = band_views
        if band_views is not None and not (band_views and all(0 <= i < len(self.views) for i in band_views)):
            raise ValueError(f"band_views must name views 0..{len(self.views) - 1}; got {band_views}")
        self.range_tolerance = range_tolerance
        self.range_log10 = range_log10
        self.range_slope = range_slope
        self.warmup = warmup
        self.warmup_s = warmup_s
        self.alarm = alarm
        self.refractory = refractory
        self.damping = damping

    _cache: tuple[PointBatch, F64] | None

    @property
    def default_threshold(self) -> float:
        """The probability level a server should alert at: the refractory alarm level.

        The score's scale is the ensemble's own (``s / (s + 10)`` of a ``-log10`` tail
        probability), so a generic 0.5 would be far too strict. NAB's threshold sweep lands
        just above the alarm level (0.253 to 0.257 for the default detector), because the
        alarm level is where an episode starts and repeats begin to be damped.
        """
        return self.alarm

    @property
    def source_names(self) -> tuple[str, ...]:
        """What each ``Scores.source`` code means: the views' inner detectors, then the range rule."""
        return (*(type(v.detector).__name__ for v in self.views), "range")

    def clone(self) -> Self:
        """A fresh ensemble of fresh views."""
        params = self.params()
        params["views"] = tuple(v.clone() for v in self.views)
        return type(self)(**params)

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        return {
            "lo": ((), np.inf),
            "hi": ((), -np.inf),
            "n": ((), 0.0),
            "since": ((), np.inf),
            "first": ((), np.inf),
        }

    def score_batch(self, batch: PointBatch) -> Scores:
        self._ensure(batch)
        st, slot, x = self.state, batch.slot, batch.value
        tails = [view.log_tail(batch) for view in self.views]
        logq = tails[0][0]
        source = np.zeros(len(batch), dtype=np.int16)
        for i, (view_logq, _) in enumerate(tails[1:], start=1):
            wins = view_logq < logq
            logq = np.where(wins, view_logq, logq)
            source[wins] = i
        band_views = self.band_views if self.band_views is not None else range(len(tails))
        band_logq, band = tails[band_views[0]]
        expected, lower, upper = band.expected, band.lower, band.upper
        for i in band_views[1:]:
            view_logq, view = tails[i]
            wins = view_logq < band_logq
            if wins.any():
                band_logq = np.where(wins, view_logq, band_logq)
                expected = np.where(wins, view.expected, expected)
                lower = np.where(wins, view.lower, lower)
                upper = np.where(wins, view.upper, upper)
        lo, hi = st["lo"][slot], st["hi"][slot]
        with np.errstate(invalid="ignore"):  # inf - inf before the first point
            beyond = np.maximum(x - hi, lo - x) / np.maximum(hi - lo, 1e-12 * np.maximum(np.abs(hi), 1.0))
        warm = (st["n"][slot] >= self.warmup) & (batch.ts - st["first"][slot] >= self.warmup_s)
        outside = (beyond > self.range_tolerance) & warm
        range_logq = -(self.range_log10 + self.range_slope * np.minimum(beyond, 10.0)) * LN10
        by_range = outside & (range_logq < logq)
        logq = np.where(by_range, range_logq, logq)
        source[by_range] = len(self.views)
        score = surprise_score(logq)
        if self.refractory > 0:
            score = np.where(st["since"][slot] < self.refractory, score * self.damping, score)
        self._cache = (batch, score)
        return Scores(score, expected, lower, upper, source)

    def learn_batch(self, batch: PointBatch) -> None:
        self._ensure(batch)
        st, slot, x = self.state, batch.slot, batch.value
        cache = getattr(self, "_cache", None)
        score: F64 = cache[1] if cache is not None and cache[0] is batch else self.score_batch(batch).score
        self._cache = None
        for view in self.views:
            view.learn_batch(batch)
        st["lo"][slot] = np.minimum(st["lo"][slot], x)
        st["hi"][slot] = np.maximum(st["hi"][slot], x)
        st["n"][slot] += 1.0
        st["first"][slot] = np.minimum(st["first"][slot], batch.ts)
        # an alarm while the series is young starts no episode: it must not mute the first real one
        episode = (score >= self.alarm) & (st["n"][slot] >= self.warmup)
        st["since"][slot] = np.where(episode, 0.0, st["since"][slot] + 1.0)
