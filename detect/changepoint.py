"""Change-point detector: shifts of level and of variance, found by accumulating evidence.

A lone outlier is one large residual; a change point is many moderate residuals of the same
sign (a level shift) or of the same size (a variance shift). Against a robust baseline
(level and spread as in :class:`~detect.robust_ewm.RobustEWM`), a two-sided CUSUM sums
standardised residuals (each clipped, so one wild point cannot fake a change) beyond a
slack ``k``, and a fast EW mean of squared residuals watches the variance. The CUSUM drains
by ``k`` per point once the baseline has caught up, so an old change stops scoring. The
score is the strongest of the point's own residual, the CUSUMs and the variance excess,
all in standard deviations.
"""

from __future__ import annotations

import numpy as np

from detect.base import BatchDetector, PointBatch, Scores
from detect.robust_ewm import MAD_TO_STD, clip_symmetric, spread_floor

__all__ = ["ChangePoint"]


class ChangePoint(BatchDetector):
    """Two-sided CUSUM of robust residuals (level shifts) plus a variance-ratio statistic.

    Parameters
    ----------
    halflife
        Half-life, in points, of the baseline level the residuals are measured against.
    spread_halflife
        Half-life, in points, of the baseline spread: long, so a variance shift shows up as
        wide residuals for a while instead of being absorbed at once.
    slack
        CUSUM slack ``k``, in standard deviations: drift smaller than this is ignored.
    var_halflife
        Half-life, in points, of the fast mean of squared residuals (variance shifts).
    cap
        Cap on both statistics, in standard deviations.
    clip
        Residuals beyond ``clip`` spreads are clipped before updating the baseline.
    width
        Half-width of the reported band, in robust standard deviations.

    Example
    -------
    >>> from detect.base import process
    >>> rng = np.random.default_rng(4)
    >>> values = np.r_[rng.normal(0, 1, 300), rng.normal(4, 1, 30)]
    >>> s = process(ChangePoint(), PointBatch.of(np.zeros(330), np.arange(330.0), values))
    >>> bool(np.median(s.score[300:306]) > 4 * np.median(s.score[100:300]))
    True
    """

    def __init__(
        self,
        halflife: float = 10.0,
        spread_halflife: float = 100.0,
        slack: float = 1.0,
        var_halflife: float = 10.0,
        cap: float = 20.0,
        clip: float = 3.0,
        width: float = 3.0,
    ) -> None:
        self.halflife = halflife
        self.spread_halflife = spread_halflife
        self._s = 1.0 - 0.5 ** (1.0 / spread_halflife)
        self.slack = slack
        self.var_halflife = var_halflife
        self.cap = cap
        self.clip = clip
        self.width = width
        self._a = 1.0 - 0.5 ** (1.0 / halflife)
        self._v = 1.0 - 0.5 ** (1.0 / var_halflife)

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        return {
            "level": ((), 0.0),
            "mad": ((), 0.0),
            "scale": ((), 0.0),
            "up": ((), 0.0),
            "down": ((), 0.0),
            "var": ((), 1.0),
            "n": ((), 0.0),
        }

    def _z(self, batch: PointBatch) -> tuple[np.ndarray, ...]:
        st, slot = self.state, batch.slot
        n = st["n"][slot]
        level = np.where(n > 0, st["level"][slot], batch.value)
        std = MAD_TO_STD * np.maximum(st["mad"][slot], spread_floor(level, st["scale"][slot]))
        z = np.where(n > 1, (batch.value - level) / std, 0.0)
        # one wild point adds at most ``clip`` to the sums: a change is many points, not one
        zc = np.minimum(np.maximum(z, -self.clip), self.clip)
        up = np.minimum(np.maximum(st["up"][slot] + zc - self.slack, 0.0), self.cap)
        down = np.minimum(np.maximum(st["down"][slot] - zc - self.slack, 0.0), self.cap)
        var = st["var"][slot] + self._v * (zc * zc - st["var"][slot])
        return n, level, std, z, up, down, var

    def score_batch(self, batch: PointBatch) -> Scores:
        self._ensure(batch)
        _, level, std, z, up, down, var = self._z(batch)
        # a variance ratio v means residuals ~sqrt(v) times wider: score the excess in sd units;
        # the point's own residual counts too, so the first point of a shift already scores
        shift = np.maximum(np.maximum(up, down), np.minimum(np.abs(z), self.cap))
        score = np.maximum(shift, 2.0 * np.maximum(np.sqrt(var) - 1.0, 0.0))
        return Scores.from_expected(score, level, std, self.width)

    def learn_batch(self, batch: PointBatch) -> None:
        self._ensure(batch)
        st, slot, x = self.state, batch.slot, batch.value
        n, level, std, _, up, down, var = self._z(batch)
        spread = std / MAD_TO_STD
        bound = np.where(n < 3, np.inf, self.clip * spread)
        r = clip_symmetric(x - level, bound)
        a = np.maximum(self._a, 1.0 / (n + 1.0))
        st["level"][slot] = level + a * r
        mad = st["mad"][slot]
        st["mad"][slot] = np.where(
            n == 0, 0.0, mad + np.maximum(self._s, 1.0 / np.maximum(n, 1.0)) * (np.abs(r) - mad)
        )
        st["scale"][slot] += np.maximum(self._s, 1.0 / (n + 1.0)) * (np.abs(x) - st["scale"][slot])
        # once the baseline has absorbed a shift the residuals change sign: the CUSUM resets itself
        st["up"][slot] = up
        st["down"][slot] = down
        st["var"][slot] = np.where(n > 1, var, 1.0)
        st["n"][slot] = n + 1.0
