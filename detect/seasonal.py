"""Seasonal baseline: daily and weekly profiles, used only where a series shows them.

Each series keeps a slow level ``L`` (an EW mean with a time constant of about a day) and
two additive profiles of ``x - L`` by time of day (``day_buckets`` per day) and by time of
week. The prediction is ``L + P[bucket]``. Profiles learn at a rate set in *days*, not
points: every point moves its bucket by a weight proportional to the time it stands for, so
5-minute and hourly series forget at the same speed.

Seasonality is detected per series and all the time, not configured: the profile is used
only when its running squared error is below ``ratio`` times the variance around the flat
level (white noise gets a profile of noise, whose error is *above* the variance, so it is
never called seasonal). The weekly profile replaces the daily one the same way, once the
series has two weeks of history. Non-seasonal series score 0: the flat views of the
ensemble cover them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detect.base import F64, I64, BatchDetector, PointBatch, Scores
from detect.robust_ewm import MAD_TO_STD, clip_symmetric, spread_floor

__all__ = ["SeasonalBaseline"]

DAY = 86400.0
WEEK = 7 * DAY


class SeasonalBaseline(BatchDetector):
    """Additive daily/weekly profiles over a slow level, switched on where they explain the data.

    Parameters
    ----------
    day_buckets
        Buckets of the daily profile (24 = hours of the day).
    week_buckets_per_day
        Buckets per day of the weekly profile (24: the 168 hours of the week).
    level_days
        Time constant of the slow level, in days.
    profile_halflife_days
        Half-life of each daily bucket, in days of data (a weekly bucket, visited once a
        week, forgets over as many weeks).
    error_halflife_days
        Half-life of the running errors that decide whether a profile is used.
    ratio
        A profile is used when its mean squared error is below ``ratio`` times the
        alternative's (the flat level for the daily profile, the daily for the weekly).
    clip
        Residuals beyond ``clip`` spreads are clipped before they update the profile.
    width
        Half-width of the band, in robust standard deviations.

    Example
    -------
    A daily sine is found seasonal, and a point off the pattern (but inside the range) scores high:

    >>> from detect.base import process
    >>> t = np.arange(0, 6 * DAY, 600.0)
    >>> x = np.sin(2 * np.pi * t / DAY) + np.random.default_rng(3).normal(0, 0.05, len(t))
    >>> x[-1] += 1.0
    >>> det = SeasonalBaseline()
    >>> s = process(det, PointBatch.of(np.zeros(len(t)), t, x))
    >>> bool(det.seasonal(np.array([0]))[0]), bool(s.score[-1] > 4), bool(np.median(s.score[-100:]) < 2)
    (True, True, True)
    """

    def __init__(
        self,
        day_buckets: int = 24,
        week_buckets_per_day: int = 24,
        level_days: float = 1.0,
        profile_halflife_days: float = 7.0,
        error_halflife_days: float = 2.0,
        ratio: float = 0.7,
        clip: float = 4.0,
        width: float = 3.0,
    ) -> None:
        self.day_buckets = day_buckets
        self.week_buckets_per_day = week_buckets_per_day
        self.level_days = level_days
        self.profile_halflife_days = profile_halflife_days
        self.error_halflife_days = error_halflife_days
        self.ratio = ratio
        self.clip = clip
        self.width = width
        self._bucket_s = DAY / day_buckets
        self._k_level = -1.0 / (level_days * DAY)
        self._k_prof = -np.log(2.0) / (profile_halflife_days * self._bucket_s)
        self._k_err = -np.log(2.0) / (error_halflife_days * DAY)

    _cache: _Prediction | None
    profiles: dict[str, F64]

    _SCALARS = ("level", "err_flat", "err_day", "err_week", "mad", "scale", "first", "last", "n")

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        return {name: ((), 0.0) for name in self._SCALARS}

    def _ensure(self, batch: PointBatch) -> None:
        super()._ensure(batch)
        # Profiles (mean and visit count per bucket) are stored bucket-major, (bucket, slot):
        # the series of one batch mostly share a time bucket, so a batch reads and writes one
        # contiguous stretch instead of one cache line per series.
        profiles: dict[str, F64] = getattr(self, "profiles", {})
        if profiles and profiles["day"].shape[1] == self.n_slots:
            return
        sizes = {"day": self.day_buckets, "week": 7 * self.week_buckets_per_day}
        for name in ("day", "day_n", "week", "week_n"):
            grown = np.zeros((sizes[name.split("_")[0]], self.n_slots))
            old = profiles.get(name)
            if old is not None:
                grown[:, : old.shape[1]] = old
            profiles[name] = grown
        self.profiles = profiles

    def _buckets(self, ts: F64) -> tuple[I64, I64]:
        # int conversion truncates: floor first so times before 1970 bucket correctly too
        day = np.floor(ts * (1.0 / self._bucket_s)).astype(np.int64) % self.day_buckets
        # 1970-01-01 was a Thursday: +3 days makes Monday the first bucket of the week
        per_day = self.week_buckets_per_day
        week = np.floor((ts + 3 * DAY) * (per_day / DAY)).astype(np.int64) % (7 * per_day)
        return day, week

    def seasonal(self, slot: I64) -> I64:
        """0 = flat, 1 = daily profile in use, 2 = weekly, for each slot."""
        st = self.state
        span = st["last"][slot] - st["first"][slot]
        err_day = st["err_day"][slot]
        daily = (err_day < self.ratio * st["err_flat"][slot]) & (span >= 2 * DAY)
        weekly = daily & (st["err_week"][slot] < self.ratio * err_day) & (span >= 2 * WEEK)
        out: I64 = daily.astype(np.int64) + weekly
        return out

    def _predict(self, batch: PointBatch) -> _Prediction:
        cache: _Prediction | None = getattr(self, "_cache", None)
        if cache is not None and cache.batch is batch:
            return cache
        st, slot = self.state, batch.slot
        day, week = self._buckets(batch.ts)
        i_day = day * self.n_slots + slot
        i_week = week * self.n_slots + slot
        p_day = self.profiles["day"].reshape(-1)[i_day]
        p_week = self.profiles["week"].reshape(-1)[i_week]
        n = st["n"][slot]
        level = np.where(n == 0, batch.value, st["level"][slot])
        mode = self.seasonal(slot)
        season = np.where(mode == 2, p_week, p_day)
        expected = level + np.where(mode > 0, season, 0.0)
        spread = np.maximum(st["mad"][slot], spread_floor(expected, st["scale"][slot]))
        pred = _Prediction(batch, n, i_day, i_week, p_day, p_week, level, mode, season, expected, spread)
        self._cache = pred
        return pred

    def score_batch(self, batch: PointBatch) -> Scores:
        self._ensure(batch)
        p = self._predict(batch)
        std = MAD_TO_STD * p.spread
        score = np.where(p.mode > 0, np.abs(batch.value - p.expected) / std, 0.0)
        return Scores.from_expected(score, p.expected, std, self.width)

    def learn_batch(self, batch: PointBatch) -> None:
        self._ensure(batch)
        st, slot, x, ts = self.state, batch.slot, batch.value, batch.ts
        p = self._predict(batch)
        self._cache = None
        n = p.n
        fresh = n == 0
        last = np.where(fresh, ts, st["last"][slot])
        # the time this point stands for: its step, clipped to a bucket (gaps, repeats, backwards)
        dt = np.where(fresh, self._bucket_s, np.minimum(np.maximum(ts - last, 0.0), self._bucket_s))
        # warm start: a plain average until the EW weight is the smaller one
        a_level = np.maximum(-np.expm1(dt * self._k_level), 1.0 / (n + 1.0))
        # each bucket is visited (bucket / step) times a day: weight by dt so memory is in days
        a_prof = -np.expm1(dt * self._k_prof)
        a_err = -np.expm1(dt * self._k_err)
        mad = st["mad"][slot]
        bound = np.where(mad > 0, (self.clip * MAD_TO_STD) * p.spread, np.inf)
        dev = x - p.level
        r_day = clip_symmetric(dev - p.p_day, bound)
        r_week = clip_symmetric(dev - p.p_week, bound)
        resid = clip_symmetric(x - p.expected, bound)
        for name, sq in (("err_flat", np.minimum(dev * dev, bound * bound)), ("err_day", r_day * r_day)):
            old = st[name][slot]
            st[name][slot] = old + a_err * (sq - old)
        old = st["err_week"][slot]
        st["err_week"][slot] = old + a_err * (r_week * r_week - old)
        for name, index, prof, r in (("day", p.i_day, p.p_day, r_day), ("week", p.i_week, p.p_week, r_week)):
            visits_flat = self.profiles[name + "_n"].reshape(-1)
            visits = visits_flat[index] + 1.0
            self.profiles[name].reshape(-1)[index] = prof + np.maximum(a_prof, 1.0 / visits) * r
            visits_flat[index] = visits
        # Holt-Winters: the level follows the deseasonalised series, so it does not swing daily
        st["level"][slot] = p.level + a_level * clip_symmetric(dev - p.season, bound)
        st["mad"][slot] = mad + np.where(mad > 0, a_err, 1.0) * (np.abs(resid) - mad)
        scale = st["scale"][slot]
        st["scale"][slot] = scale + a_err * (np.abs(x) - scale)
        st["first"][slot] = np.where(fresh, ts, st["first"][slot])
        st["last"][slot] = np.maximum(last, ts)
        st["n"][slot] = n + 1.0


@dataclass(slots=True)
class _Prediction:
    """What score_batch worked out, kept for learn_batch on the same batch."""

    batch: PointBatch
    n: F64
    i_day: I64
    i_week: I64
    p_day: F64
    p_week: F64
    level: F64
    mode: I64
    season: F64
    expected: F64
    spread: F64
