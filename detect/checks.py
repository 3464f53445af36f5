"""The conformance suite every detector passes: plain functions that take a detector factory.

Each check builds fresh detectors with ``factory()``, runs them through
:func:`detect.base.process` on a short labelled synthetic stream and raises ``AssertionError``
with a message naming what broke. The checks are what ``STYLE.md`` promises of a detector:

- :func:`check_clone`: ``clone()`` is a fresh, untrained twin with the same parameters;
- :func:`check_pickle`: a pickled, trained detector carries on exactly where it stopped;
- :func:`check_seeded_determinism`: two detectors from the factory agree bit for bit, whatever
  the global random state;
- :func:`check_finite_scores`: scores are finite and >= 0, also on constant, huge and tiny series;
- :func:`check_no_lookahead`: changing the future never changes a past score, and scoring never
  learns;
- :func:`check_auc_above_chance`: on several series with injected spikes and level shifts the
  scores rank anomalies above normal points (ROC AUC above 0.5 by a margin);
- :func:`check_band`: ``lower <= expected <= upper``, all finite after the warm-up.

:data:`ALL_CHECKS` lists them; :func:`yield_checks` binds them to a detector (river's idiom).

The stream (:func:`labelled_stream`) is small on purpose (6 series x 480 points, 15-minute
steps, so five days of a daily cycle) so the whole suite runs in seconds, even for the
per-point :class:`~detect.river_adapter.RiverAdapter`. Anomalies are injected only after
``warmup`` rounds (three days: time for seasonal baselines and Half-Space Trees' first window).

Example
-------
>>> from detect.robust_ewm import RobustEWM
>>> for check in yield_checks(RobustEWM()):
...     check()
"""

from __future__ import annotations

import copy
import functools
import pickle
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from detect.base import F64, BatchDetector, Detector, PointBatch, Scores, process

__all__ = [
    "ALL_CHECKS",
    "DetectorFactory",
    "LabelledStream",
    "check_auc_above_chance",
    "check_band",
    "check_clone",
    "check_finite_scores",
    "check_no_lookahead",
    "check_pickle",
    "check_seeded_determinism",
    "labelled_stream",
    "roc_auc",
    "yield_checks",
]

DetectorFactory = Callable[[], Detector]

#: How far above chance (0.5) a detector's ROC AUC must be on the labelled stream.
AUC_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class LabelledStream:
    """Points round by round (``rounds`` x ``series``, round-major) and which are anomalies.

    ``label[i]`` marks an injected spike or the first points after an injected level shift.
    No anomaly lies in the first ``warmup`` rounds.
    """

    batch: PointBatch
    label: NDArray[np.bool_]
    round: NDArray[np.int64]
    series: int
    rounds: int
    warmup: int

    def head(self, rounds: int) -> PointBatch:
        """The points of the first ``rounds`` rounds."""
        return self.batch.take(np.flatnonzero(self.round < rounds))

    def tail(self, rounds: int) -> PointBatch:
        """The points from round ``rounds`` on."""
        return self.batch.take(np.flatnonzero(self.round >= rounds))


@functools.cache
def labelled_stream(
    series: int = 6, rounds: int = 480, step: float = 900.0, warmup: int = 288, seed: int = 0
) -> LabelledStream:
    """A small labelled stream: levels, daily cycles and noise per series, plus anomalies.

    Each series gets three spikes (6 to 12 noise sigmas, either sign) and one level shift
    (6 sigmas, labelled for its first 4 points) at random rounds after ``warmup``.

    >>> s = labelled_stream()
    >>> len(s.batch), int(s.label.sum()), bool(s.label[s.round < s.warmup].any())
    (2880, 42, False)
    """
    rng = np.random.default_rng(seed)
    r = np.arange(rounds)
    ts = 1_714_521_600.0 + r * step
    per_day = 86_400.0 / step
    level = rng.lognormal(3.0, 1.0, series)
    noise = level * rng.uniform(0.02, 0.08, series)
    amplitude = level * rng.uniform(0.0, 0.3, series)
    phase = rng.uniform(0, 2 * np.pi, series)
    values = (
        level[None, :]
        + amplitude[None, :] * np.sin(2 * np.pi * r[:, None] / per_day + phase[None, :])
        + noise[None, :] * rng.standard_normal((rounds, series))
    )
    label = np.zeros((rounds, series), dtype=bool)
    span = rounds - warmup - 12
    for j in range(series):
        # four well separated onsets: three spikes and one level shift, in random order
        onsets = warmup + 6 + np.sort(rng.choice(span // 12, 4, replace=False)) * 12
        shift_at = int(rng.choice(onsets))
        for t in onsets.tolist():
            if t == shift_at:
                values[t:, j] += 6.0 * noise[j] * rng.choice([-1.0, 1.0])
                label[t : t + 4, j] = True
            else:
                values[t, j] += rng.uniform(6.0, 12.0) * noise[j] * rng.choice([-1.0, 1.0])
                label[t, j] = True
    slot = np.tile(np.arange(series, dtype=np.int64), rounds)
    batch = PointBatch.of(slot=slot, ts=np.repeat(ts, series), value=values.ravel())
    rnd = np.repeat(r, series).astype(np.int64)
    stream = LabelledStream(batch, label.ravel(), rnd, series, rounds, warmup)
    for array in (batch.slot, batch.ts, batch.value, stream.label, stream.round):
        array.setflags(write=False)  # cached and shared by every check: nobody may edit it
    return stream


def roc_auc(score: F64, label: NDArray[np.bool_]) -> float:
    """Area under the ROC curve: the chance a random anomaly outscores a random normal point (ties: 1/2).

    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    from scipy.stats import rankdata

    pos = int(label.sum())
    neg = len(label) - pos
    if pos == 0 or neg == 0:
        raise ValueError("need both anomalies and normal points")
    ranks = rankdata(score)
    return float((ranks[label].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _run(detector: Detector, batch: PointBatch) -> Scores:
    return process(detector, batch)


def _assert_same(a: Scores, b: Scores, what: str) -> None:
    for name in ("score", "expected", "lower", "upper"):
        x: F64 = getattr(a, name)
        y: F64 = getattr(b, name)
        if x.shape != y.shape:
            raise AssertionError(f"{what}: {name} has shape {x.shape} against {y.shape}")
        if not np.array_equal(x, y, equal_nan=True):
            bad = np.flatnonzero(~((x == y) | (np.isnan(x) & np.isnan(y))))[:5]
            raise AssertionError(f"{what}: {name} differs (first differing points {bad.tolist()})")


def check_clone(factory: DetectorFactory) -> None:
    """``clone()`` gives a new, untrained detector of the same type and parameters, sharing no state."""
    stream = labelled_stream()
    fresh = _run(factory(), stream.batch)
    trained = factory()
    _run(trained, stream.head(stream.warmup))
    twin = trained.clone()
    assert twin is not trained and type(twin) is type(trained), "clone() must return a new detector"
    if isinstance(trained, BatchDetector) and isinstance(twin, BatchDetector):
        assert repr(twin.params()) == repr(trained.params()), f"clone() changed parameters: {twin!r}"
    before = copy.deepcopy(trained)
    _assert_same(_run(twin, stream.batch), fresh, "a clone of a trained detector is not untrained")
    _assert_same(
        _run(trained, stream.tail(stream.warmup)),
        _run(before, stream.tail(stream.warmup)),
        "running the clone changed the original",
    )


def _round_trip(detector: Detector) -> Detector:
    try:
        restored: Detector = pickle.loads(pickle.dumps(detector))
    except Exception as exc:  # any failure to pickle is the finding, whatever its type
        raise AssertionError(f"{type(detector).__name__} does not pickle: {exc!r}") from exc
    return restored


def check_pickle(factory: DetectorFactory) -> None:
    """A detector survives pickling, untrained and trained, and carries on exactly where it stopped."""
    stream = labelled_stream()
    untrained = _round_trip(factory())
    _assert_same(_run(untrained, stream.batch), _run(factory(), stream.batch), "pickled untrained")
    det = factory()
    _run(det, stream.head(stream.warmup))
    restored = _round_trip(det)
    assert type(restored) is type(det)
    tail = stream.tail(stream.warmup)
    _assert_same(_run(restored, tail), _run(det, tail), "pickled after training")


def check_seeded_determinism(factory: DetectorFactory) -> None:
    """Two detectors from the same factory give identical results, whatever the global RNG state."""
    stream = labelled_stream()
    runs = []
    for seed in (1, 2):
        random.seed(seed)
        np.random.seed(seed)  # a detector must not lean on the legacy global RNG
        runs.append(_run(factory(), stream.batch))
    _assert_same(runs[0], runs[1], "two identically built detectors disagree")


def check_finite_scores(factory: DetectorFactory) -> None:
    """Scores are finite and >= 0, one per point, on the stream and on awkward series.

    Awkward: a constant series, one far from zero (1e9 + noise), one of tiny values
    (1e-9 scale) and one that is zero then jumps.
    """
    stream = labelled_stream()
    rng = np.random.default_rng(3)
    n = 200
    awkward = np.stack(
        [
            np.full(n, 5.0),
            1e9 + rng.normal(0, 1, n),
            1e-9 * rng.normal(1, 0.1, n),
            np.r_[np.zeros(n - 20), np.full(20, 3.0)],
        ],
        axis=1,
    )
    odd = PointBatch.of(
        slot=np.tile(np.arange(4), n), ts=np.repeat(np.arange(n) * 60.0, 4), value=awkward.ravel()
    )
    for name, batch in (("the labelled stream", stream.batch), ("awkward series", odd)):
        s = _run(factory(), batch)
        assert len(s) == len(batch), f"{name}: {len(s)} scores for {len(batch)} points"
        bad = np.flatnonzero(~np.isfinite(s.score) | (s.score < 0))
        assert len(bad) == 0, f"{name}: non-finite or negative scores at {bad[:5].tolist()}"


def check_no_lookahead(factory: DetectorFactory) -> None:
    """Future points never change past results, and scoring a batch does not learn it."""
    stream = labelled_stream()
    cut = stream.rounds // 2
    changed = stream.batch.value.copy()
    late = stream.round >= cut
    changed[late] = changed[late] * -3.0 + 1e3
    other = PointBatch(stream.batch.slot, stream.batch.ts, changed)
    a, b = _run(factory(), stream.batch), _run(factory(), other)
    early = np.flatnonzero(~late)
    _assert_same(a.take(early), b.take(early), "changing later points changed earlier results")
    det = factory()
    _run(det, stream.head(cut))
    nxt = stream.batch.take(np.flatnonzero(stream.round == cut))
    _assert_same(det.score_batch(nxt), det.score_batch(nxt), "scoring the same batch twice")


def check_auc_above_chance(factory: DetectorFactory, margin: float = AUC_MARGIN) -> None:
    """Scores after the warm-up rank the injected anomalies above normal points: AUC > 0.5 + margin."""
    stream = labelled_stream()
    s = _run(factory(), stream.batch)
    live = stream.round >= stream.warmup
    auc = roc_auc(s.score[live], stream.label[live])
    assert auc > 0.5 + margin, f"ROC AUC {auc:.3f} is not above chance by {margin}"


def check_band(factory: DetectorFactory) -> None:
    """``lower <= expected <= upper`` wherever defined, and all three finite after the warm-up."""
    stream = labelled_stream()
    s = _run(factory(), stream.batch)
    with np.errstate(invalid="ignore"):
        disordered = (s.lower > s.expected) | (s.expected > s.upper)
    bad = np.flatnonzero(disordered)
    assert len(bad) == 0, f"band out of order at points {bad[:5].tolist()}"
    live = stream.round >= stream.warmup
    for name in ("expected", "lower", "upper"):
        values = getattr(s, name)[live]
        missing = np.flatnonzero(~np.isfinite(values))
        assert len(missing) == 0, f"{name} not finite after warm-up at {missing[:5].tolist()}"


#: Every check, in the order the suite runs them.
ALL_CHECKS: list[Callable[[DetectorFactory], None]] = [
    check_clone,
    check_pickle,
    check_seeded_determinism,
    check_finite_scores,
    check_no_lookahead,
    check_auc_above_chance,
    check_band,
]


def yield_checks(detector: Detector) -> Iterator[Callable[[], None]]:
    """Every check bound to ``detector``'s parameters (it is cloned, never run itself)."""
    for check in ALL_CHECKS:
        bound = functools.partial(check, detector.clone)
        functools.update_wrapper(bound, check)
        yield bound
