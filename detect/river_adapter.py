"""Any river anomaly detector, one model per series: the slow path for algorithms with no vectorised form.

River models score and learn one point at a time, so this adapter makes one Python call per
point (``score_one`` in :meth:`RiverAdapter.score_batch`, ``learn_one`` in
:meth:`RiverAdapter.learn_batch`) on the model of that point's series. That is the documented
exception to batch-first: it runs at river's speed (thousands of points per second), which is
fine for a few hundred series and a reference for the vectorised detectors (``opsloop bench
detect`` prints the ratio). Everything around the river call is vectorised.

Features. A river model sees ``{"x": u}``, where ``u`` is the point's value rescaled into
[0, 1] by the series' running minimum and maximum (the ``MinMaxScaler`` in river's own
HalfSpaceTrees example), computed from the points *before* this one: the range seen so far
maps to [``margin``, 1 − ``margin``] and anything outside is clipped to [0, 1]. So a value
beyond every value seen lands in the sparse outer band, where Half-Space Trees (which assume
features in [0, 1]) find little mass and score high. The range only grows: a lasting level
shift or a huge spike widens it for good, which compresses later normal values (a known
weakness of min/max scaling; the adapter is a reference, not the default detector).

Band. ``expected``, ``lower`` and ``upper`` come from an exponentially weighted mean and
standard deviation per series (``halflife`` points), ``expected ± width·std``, so the band is
comparable with the vectorised detectors' whatever the river model is.

Seeds. Slot ``s`` gets a model built by ``model_factory(seed + s)``, so runs are repeatable
and series do not share random trees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from river import anomaly

from detect.base import F64, BatchDetector, PointBatch, Scores

__all__ = ["RiverAdapter", "half_space_trees"]


def half_space_trees(seed: int) -> anomaly.HalfSpaceTrees:
    """River's Half-Space Trees with its default size (10 trees of height 8, windows of 250 points).

    The first window of a series scores 0: the trees have no reference mass yet.
    """
    return anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=seed)


class RiverAdapter(BatchDetector):
    """One river anomaly detector per series, fed min/max-scaled values; one Python call per point.

    Parameters
    ----------
    model_factory
        Called with an integer seed, returns a fresh river anomaly detector
        (``score_one``/``learn_one`` on dict features, larger scores stranger; negative
        scores are clipped to 0). Use a module-level function or a ``functools.partial`` so
        the adapter pickles. Default: :func:`half_space_trees`.
    seed
        Slot ``s`` gets ``model_factory(seed + s)``.
    margin
        The range seen so far maps to [margin, 1 − margin]; values beyond it fall in the
        outer bands (clipped to [0, 1]).
    halflife
        Half-life, in points, of the exponentially weighted mean and variance behind the band.
    width
        Half-width of the band in standard deviations.

    Example
    -------
    A spike after 300 quiet points of one series scores higher than every quiet point did:

    >>> from detect.base import process
    >>> rng = np.random.default_rng(0)
    >>> values = np.r_[10 + rng.normal(0, 1, 300), 25.0]
    >>> b = PointBatch.of(slot=np.zeros(301), ts=np.arange(301) * 60.0, value=values)
    >>> s = process(RiverAdapter(seed=1), b)
    >>> bool(s.score[-1] > s.score[:-1].max())
    True
    >>> bool(s.lower[-1] < 10 < s.upper[-1])
    True
    """

    def __init__(
        self,
        model_factory: Callable[[int], Any] = half_space_trees,
        seed: int = 0,
        margin: float = 0.2,
        halflife: float = 50.0,
        width: float = 3.0,
    ) -> None:
        if not 0.0 <= margin < 0.5:
            raise ValueError("margin must lie in [0, 0.5)")
        if halflife <= 0 or width <= 0:
            raise ValueError("halflife and width must be positive")
        self.model_factory = model_factory
        self.seed = seed
        self.margin = margin
        self.halflife = halflife
        self.width = width
        self.models: list[Any] = []

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        return {
            "n": ((), 0.0),
            "lo": ((), np.inf),
            "hi": ((), -np.inf),
            "mean": ((), 0.0),
            "var": ((), 0.0),
        }

    def _ensure(self, batch: PointBatch) -> None:
        super()._ensure(batch)
        if len(self.models) < self.n_slots:
            start = len(self.models)
            self.models.extend(self.model_factory(self.seed + s) for s in range(start, self.n_slots))

    def _features(self, batch: PointBatch) -> F64:
        """Each value scaled by its series' range so far into [0, 1] (0.5 while the range is empty)."""
        lo = self.state["lo"][batch.slot]
        hi = self.state["hi"][batch.slot]
        span = hi - lo
        ok = np.isfinite(span) & (span > 0)
        rel = np.divide(batch.value - lo, span, out=np.full(len(batch), 0.5), where=ok)
        u = self.margin + (1.0 - 2.0 * self.margin) * rel
        # a point beside a constant series (span 0): above, below or on it
        flat = np.isfinite(span) & (span == 0)
        u = np.where(flat, 0.5 + np.sign(batch.value - lo) * (0.5 - self.margin / 2), u)
        clipped: F64 = np.clip(u, 0.0, 1.0)
        return clipped

    def score_batch(self, batch: PointBatch) -> Scores:
        """Score each point with its series' model (one ``score_one`` call per point)."""
        self._ensure(batch)
        u = self._features(batch)
        models = self.models
        score = np.fromiter(
            (models[s].score_one({"x": x}) for s, x in zip(batch.slot.tolist(), u.tolist(), strict=True)),
            dtype=np.float64,
            count=len(batch),
        )
        n = self.state["n"][batch.slot]
        seen = n > 0
        expected = np.where(seen, self.state["mean"][batch.slot], batch.value)
        std = np.sqrt(np.where(seen, self.state["var"][batch.slot], 0.0))
        return Scores.from_expected(np.maximum(score, 0.0), expected, std, self.width)

    def learn_batch(self, batch: PointBatch) -> None:
        """Teach each series' model its point, then update the series' range and band."""
        self._ensure(batch)
        u = self._features(batch)
        models = self.models
        for s, x in zip(batch.slot.tolist(), u.tolist(), strict=True):
            models[s].learn_one({"x": x})
        slot, v = batch.slot, batch.value
        st = self.state
        st["lo"][slot] = np.minimum(st["lo"][slot], v)
        st["hi"][slot] = np.maximum(st["hi"][slot], v)
        alpha = 1.0 - 0.5 ** (1.0 / self.halflife)
        n = st["n"][slot]
        first = n == 0
        mean = st["mean"][slot]
        diff = v - mean
        new_mean = np.where(first, v, mean + alpha * diff)
        new_var = np.where(first, 0.0, (1.0 - alpha) * (st["var"][slot] + alpha * diff * diff))
        st["mean"][slot] = new_mean
        st["var"][slot] = new_var
        st["n"][slot] = n + 1.0
