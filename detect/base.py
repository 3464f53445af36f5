"""The detector protocol: batch-first, prequential, state held in arrays indexed by series.

River's ``score_one``/``learn_one`` is the right vocabulary, but a Python call per point is
too slow for thousands of series. A detector here sees a :class:`PointBatch` (many series,
at most one point each) and keeps its state in numpy arrays indexed by a dense series
*slot*. For every batch the caller scores first and learns second, so a point is never
judged by a model that has already seen it (prequential evaluation, no look-ahead).

:func:`process` does that dance for batches that hold several points of one series: it
splits them into rounds in time order. :class:`SlotMap` turns the store's 63-bit series ids
into dense slots.

Example
-------
>>> import numpy as np
>>> class Mean(BatchDetector):
...     '''Toy detector: distance from the running mean.'''
...     def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
...         return {"sum": ((), 0.0), "n": ((), 0.0)}
...     def score_batch(self, batch: PointBatch) -> Scores:
...         self._ensure(batch)
...         n = self.state["n"][batch.slot]
...         mean = np.where(n > 0, self.state["sum"][batch.slot] / np.maximum(n, 1), batch.value)
...         return Scores.from_expected(np.abs(batch.value - mean), mean, 1.0)
...     def learn_batch(self, batch: PointBatch) -> None:
...         self._ensure(batch)
...         np.add.at(self.state["sum"], batch.slot, batch.value)
...         np.add.at(self.state["n"], batch.slot, 1.0)
>>> b = PointBatch.of(slot=[0, 0, 1], ts=[0, 60, 0], value=[1.0, 3.0, 5.0])
>>> process(Mean(), b).score.tolist()
[0.0, 2.0, 0.0]
"""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

__all__ = ["BatchDetector", "Detector", "PointBatch", "Scores", "SlotMap", "process", "split_rounds"]


@dataclass(frozen=True, slots=True)
class PointBatch:
    """Points of many series: dense series slot, time (seconds since the epoch, UTC), value.

    Detectors assume each slot appears at most once (use :func:`split_rounds` otherwise).
    """

    slot: I64
    ts: F64
    value: F64

    @classmethod
    def of(cls, slot: ArrayLike, ts: ArrayLike, value: ArrayLike) -> PointBatch:
        """Build a batch from anything array-like, checking shapes."""
        s = np.asarray(slot, dtype=np.int64)
        t = np.asarray(ts, dtype=np.float64)
        v = np.asarray(value, dtype=np.float64)
        if not (s.ndim == t.ndim == v.ndim == 1 and len(s) == len(t) == len(v)):
            raise ValueError("slot, ts and value must be 1-d arrays of one length")
        if len(s) and s.min() < 0:
            raise ValueError("slot must be >= 0")
        return cls(s, t, v)

    def __len__(self) -> int:
        return len(self.slot)

    def take(self, index: I64) -> PointBatch:
        """The points at ``index``, in that order."""
        return PointBatch(self.slot[index], self.ts[index], self.value[index])


@dataclass(frozen=True, slots=True)
class Scores:
    """What a detector says about each point of a batch, in the batch's order.

    ``score`` is the raw anomaly score (>= 0, larger is stranger; a post-processor such as
    ``AnomalyLikelihood`` turns it into a probability in [0, 1]). ``expected``, ``lower`` and
    ``upper`` are the learned normal value and range, so analysts can plot the band.
    """

    score: F64
    expected: F64
    lower: F64
    upper: F64
    #: which part of the detector judged each point: an index into its ``source_names``
    #: (e.g. the ensemble view or rule that was most surprised); None for single-source detectors
    source: NDArray[np.int16] | None = None

    @classmethod
    def from_expected(cls, score: F64, expected: F64, spread: F64 | float, width: float = 3.0) -> Scores:
        """Scores with a symmetric band of ``width`` spreads around ``expected``."""
        half = width * np.asarray(spread, dtype=np.float64)
        return cls(score, expected, expected - half, expected + half)

    @classmethod
    def concat(cls, parts: Sequence[Scores]) -> Scores:
        """Join the scores of consecutive batches."""
        if not parts:
            e = np.empty(0)
            return cls(e, e, e, e)
        sources = [p.source for p in parts]
        return cls(
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.expected for p in parts]),
            np.concatenate([p.lower for p in parts]),
            np.concatenate([p.upper for p in parts]),
            None if any(s is None for s in sources) else np.concatenate(sources),  # type: ignore[arg-type]
        )

    def take(self, index: I64) -> Scores:
        """The scores at ``index``."""
        source = None if self.source is None else self.source[index]
        return Scores(self.score[index], self.expected[index], self.lower[index], self.upper[index], source)

    def __len__(self) -> int:
        return len(self.score)


@runtime_checkable
class Detector(Protocol):
    """Anything that scores a batch before learning it, and can be cloned and pickled."""

    def score_batch(self, batch: PointBatch) -> Scores:
        """Score every point against the state before this batch (no learning)."""
        ...

    def learn_batch(self, batch: PointBatch) -> None:
        """Update the state of each point's series with that point."""
        ...

    def clone(self) -> Self:
        """A fresh, untrained detector with the same parameters."""
        ...


class BatchDetector(ABC):
    """Base class: parameters from ``__init__``, state arrays grown on demand by slot.

    Subclasses declare their per-series arrays in :meth:`_state_spec` (extra shape and
    fill value) and call :meth:`_ensure` at the top of ``score_batch``/``learn_batch``.
    ``clone`` rebuilds from the constructor arguments, which every subclass stores under
    the same names as attributes (the river/scikit-learn convention).
    """

    state: dict[str, NDArray[Any]]

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        return {}

    def _ensure(self, batch: PointBatch) -> None:
        need = int(batch.slot.max()) + 1 if len(batch) else 0
        if not hasattr(self, "state"):
            self.state = {}
            self.n_slots = 0
        if need <= self.n_slots and len(self.state) == len(self._state_spec()):
            return
        size = max(need, 2 * self.n_slots, 16)
        for name, (shape, fill) in self._state_spec().items():
            grown = np.full((size, *shape), fill, dtype=np.float64)
            old = self.state.get(name)
            if old is not None:
                grown[: len(old)] = old
            self.state[name] = grown
        self.n_slots = size

    @abstractmethod
    def score_batch(self, batch: PointBatch) -> Scores:
        """Score every point against the state before this batch (no learning)."""

    @abstractmethod
    def learn_batch(self, batch: PointBatch) -> None:
        """Update the state of each point's series with that point."""

    def params(self) -> dict[str, Any]:
        """The constructor arguments, read back from attributes of the same name."""
        sig = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name, p in sig.parameters.items()
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def clone(self) -> Self:
        """A fresh, untrained detector with the same parameters (nested detectors cloned too)."""
        params = {
            k: v.clone() if isinstance(v, BatchDetector) else copy.deepcopy(v)
            for k, v in self.params().items()
        }
        return type(self)(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def split_rounds(batch: PointBatch) -> Iterator[I64]:
    """Yield index arrays into ``batch``: round r holds each series' r-th point in time order.

    >>> b = PointBatch.of(slot=[1, 0, 1, 1], ts=[20, 5, 10, 30], value=[0, 0, 0, 0])
    >>> [r.tolist() for r in split_rounds(b)]
    [[1, 2], [0], [3]]
    """
    n = len(batch)
    if n == 0:
        return
    order = np.lexsort((batch.ts, batch.slot))
    slots = batch.slot[order]
    starts = np.flatnonzero(np.r_[True, slots[1:] != slots[:-1]])
    if len(starts) == n:  # the common case: one point per series
        yield np.arange(n, dtype=np.int64)
        return
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
    for r in range(len(bounds) - 1):
        yield order[by_rank[bounds[r] : bounds[r + 1]]]


def process(detector: Detector, batch: PointBatch) -> Scores:
    """Score then learn every point of ``batch``, round by round; scores in batch order."""
    n = len(batch)
    out = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    source: NDArray[np.int16] | None = None
    for index in split_rounds(batch):
        part = batch.take(index)
        s = detector.score_batch(part)
        detector.learn_batch(part)
        for dst, src in zip(out, (s.score, s.expected, s.lower, s.upper), strict=True):
            dst[index] = src
        if s.source is not None:
            if source is None:
                source = np.zeros(n, dtype=np.int16)
            source[index] = s.source
    return Scores(*out, source=source)


class SlotMap:
    """Dense slots for 64-bit series ids, assigned in order of first sight; vectorised.

    >>> m = SlotMap()
    >>> m.slots(np.array([70, 3, 70], dtype=np.uint64)).tolist()
    [0, 1, 0]
    >>> m.slots(np.array([3, 9], dtype=np.uint64)).tolist()
    [1, 2]
    >>> m.ids()[2]
    np.uint64(9)
    """

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.uint64)  # sorted ids
        self._vals = np.empty(0, dtype=np.int64)  # their slots
        self._by_slot = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._by_slot)

    def slots(self, ids: NDArray[np.uint64]) -> I64:
        """The slot of every id, assigning new slots to ids never seen."""
        ids = np.asarray(ids, dtype=np.uint64)
        pos = np.searchsorted(self._keys, ids)
        pos_c = np.minimum(pos, max(len(self._keys) - 1, 0))
        known = (
            (pos < len(self._keys)) & (self._keys[pos_c] == ids)
            if len(self._keys)
            else np.zeros(len(ids), bool)
        )
        if not known.all():
            new, first = np.unique(ids[~known], return_index=True)
            new = new[np.argsort(first)]  # first-seen order keeps slots deterministic
            new_slots = np.arange(len(self._by_slot), len(self._by_slot) + len(new), dtype=np.int64)
            self._by_slot = np.concatenate([self._by_slot, new])
            keys = np.concatenate([self._keys, new])
            vals = np.concatenate([self._vals, new_slots])
            order = np.argsort(keys, kind="stable")
            self._keys, self._vals = keys[order], vals[order]
            pos = np.searchsorted(self._keys, ids)
        return self._vals[pos]

    def ids(self) -> NDArray[np.uint64]:
        """Series ids by slot."""
        return self._by_slot
