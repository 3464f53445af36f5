"""Every detector exported by ``detect`` passes every conformance check (``detect/checks.py``).

Detectors are found, not listed: any class in ``detect.__all__`` that builds with no
arguments and has a concrete ``score_batch``/``learn_batch``/``clone`` is one. A new
detector is therefore checked the moment it is exported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pytest

import detect
from detect import checks
from detect.base import BatchDetector, Detector, PointBatch, Scores


def exported_detectors() -> list[type]:
    """Classes in ``detect.__all__`` that are concrete detectors buildable with no arguments."""
    found = []
    for name in getattr(detect, "__all__", []):
        obj = getattr(detect, name)
        if not isinstance(obj, type) or obj is BatchDetector:
            continue
        if getattr(obj, "score_batch", None) in (None, BatchDetector.score_batch):
            continue
        try:
            instance = obj()
        except TypeError:  # needs arguments (or is a protocol): not a ready detector
            continue
        if isinstance(instance, Detector):
            found.append(obj)
    return found


DETECTORS = exported_detectors()
CASES = [
    pytest.param(cls, check, id=f"{cls.__name__}-{check.__name__.removeprefix('check_')}")
    for cls in DETECTORS
    for check in checks.ALL_CHECKS
]


@pytest.mark.parametrize(("cls", "check"), CASES)
def test_detector_conforms(cls: type[Detector], check: Callable[[checks.DetectorFactory], None]) -> None:
    check(cls)


def test_the_suite_finds_the_river_adapter() -> None:
    from detect.river_adapter import RiverAdapter

    assert "RiverAdapter" in detect.__all__
    assert RiverAdapter in DETECTORS


def test_yield_checks_binds_every_check_to_a_clone() -> None:
    from detect.river_adapter import RiverAdapter

    det = RiverAdapter(seed=3)
    bound = list(checks.yield_checks(det))
    assert [b.__name__ for b in bound] == [c.__name__ for c in checks.ALL_CHECKS]
    bound[checks.ALL_CHECKS.index(checks.check_finite_scores)]()
    assert not hasattr(det, "state"), "the checks must run on clones, never on the detector given"


# --- the checks themselves: each one catches the fault it exists for -------------------------


class EWZ(BatchDetector):
    """A sound toy detector: |z| against an exponentially weighted mean and variance."""

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        return {"n": ((), 0.0), "mean": ((), 0.0), "var": ((), 0.0)}

    def score_batch(self, batch: PointBatch) -> Scores:
        self._ensure(batch)
        seen = self.state["n"][batch.slot] > 0
        mean = np.where(seen, self.state["mean"][batch.slot], batch.value)
        std = np.sqrt(self.state["var"][batch.slot]) + 1e-9 * (1.0 + np.abs(mean))
        return Scores.from_expected(np.abs(batch.value - mean) / std, mean, std)

    def learn_batch(self, batch: PointBatch) -> None:
        self._ensure(batch)
        st, s, a = self.state, batch.slot, self.alpha
        first = st["n"][s] == 0
        diff = batch.value - st["mean"][s]
        st["var"][s] = np.where(first, 0.0, (1 - a) * (st["var"][s] + a * diff * diff))
        st["mean"][s] = np.where(first, batch.value, st["mean"][s] + a * diff)
        st["n"][s] += 1.0


class CloneKeepsState(EWZ):
    def clone(self) -> CloneKeepsState:
        return copy.deepcopy(self)


class Unpicklable(EWZ):
    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__(alpha)
        self.hook = lambda x: x


class GlobalRandom(EWZ):
    def score_batch(self, batch: PointBatch) -> Scores:
        s = super().score_batch(batch)
        return Scores(s.score + np.random.random(len(batch)), s.expected, s.lower, s.upper)


class NanScores(EWZ):
    def score_batch(self, batch: PointBatch) -> Scores:
        s = super().score_batch(batch)
        return Scores(
            np.where(batch.value > np.median(batch.value), np.nan, s.score), s.expected, s.lower, s.upper
        )


class LearnsWhileScoring(EWZ):
    def score_batch(self, batch: PointBatch) -> Scores:
        s = super().score_batch(batch)
        super().learn_batch(batch)
        return s


class SharesStateAcrossInstances(EWZ):
    """Scales scores by the largest value any instance ever saw: one run leaks into the next."""

    biggest = 1.0

    def learn_batch(self, batch: PointBatch) -> None:
        super().learn_batch(batch)
        type(self).biggest = max(type(self).biggest, float(np.abs(batch.value).max()))

    def score_batch(self, batch: PointBatch) -> Scores:
        s = super().score_batch(batch)
        return Scores(s.score / type(self).biggest, s.expected, s.lower, s.upper)


class ShuffledBand(EWZ):
    def score_batch(self, batch: PointBatch) -> Scores:
        s = super().score_batch(batch)
        return Scores(s.score, s.expected, s.upper, s.lower)


class SeededNoise(EWZ):
    """Deterministic, finite, pickles: but its scores are noise."""

    def score_batch(self, batch: PointBatch) -> Scores:
        s = super().score_batch(batch)
        noise = np.random.default_rng([len(batch), int(batch.ts[0])]).random(len(batch))
        return Scores(noise, s.expected, s.lower, s.upper)


def test_a_sound_detector_passes_every_check() -> None:
    for check in checks.yield_checks(EWZ()):
        check()


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (CloneKeepsState, checks.check_clone),
        (Unpicklable, checks.check_pickle),
        (GlobalRandom, checks.check_seeded_determinism),
        (NanScores, checks.check_finite_scores),
        (LearnsWhileScoring, checks.check_no_lookahead),
        (SharesStateAcrossInstances, checks.check_no_lookahead),
        (ShuffledBand, checks.check_band),
        (SeededNoise, checks.check_auc_above_chance),
    ],
    ids=lambda v: v.__name__,
)
def test_each_check_catches_its_fault(
    cls: type[EWZ], check: Callable[[checks.DetectorFactory], None]
) -> None:
    with pytest.raises(AssertionError):
        check(cls)
