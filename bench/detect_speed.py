"""Detector speed: points/s of the default detector on 10,000 series, against river and a numpy floor.

The stream: ``series`` series, one point each per round, timestamps 60 s apart, values with
a per-series level (log-normal), a daily cycle, Gaussian noise and rare spikes (0.1 % of
points). Every batch is built before the clock starts; the clock covers only
:func:`detect.base.process` (score, then learn) on one round after another, after a few
untimed warm-up rounds that grow the state arrays.

Three figures beside the default detector's, on the same generator:

- ``halfspacetrees_points_per_s``: river's Half-Space Trees, one model per series through
  :class:`~detect.river_adapter.RiverAdapter` (a Python call per point). It runs on the first
  ``hst_series`` series only (per-point cost does not depend on the number of series) and is
  timed after its first 250-point window, before which Half-Space Trees return 0 without
  looking at the trees. ``ratio_to_halfspacetrees`` is the default detector's points/s over it.
- ``ewz_points_per_s``: a minimal vectorised exponentially weighted z-score
  (:class:`EWZScore`) through the same ``process`` harness: what the protocol itself costs.
- ``ewz_raw_points_per_s``: the same arithmetic on bare numpy rows with no protocol (no
  batches, no slot gathers): the floor for any detector in Python.

Run: ``opsloop bench detect [--json] [--quick]`` or ``python -m bench.detect_speed``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detect.base import F64, BatchDetector, Detector, PointBatch, Scores, process
from detect.river_adapter import RiverAdapter

__all__ = ["DetectSpeedResult", "EWZScore", "run_detect_speed", "synthetic_values"]

T0 = 1_714_521_600.0  # 2024-05-01T00:00:00Z
STEP = 60.0
#: Half-Space Trees score 0 (without touching the trees) for their first window of 250 points.
HST_WINDOW = 250


def synthetic_values(series: int, rounds: int, seed: int = 11) -> F64:
    """``rounds`` x ``series`` values: level, daily cycle, noise and 0.1 % spikes; 60 s steps.

    >>> v = synthetic_values(3, 5)
    >>> v.shape, bool(np.isfinite(v).all())
    ((5, 3), True)
    """
    rng = np.random.default_rng(seed)
    level = rng.lognormal(4.0, 1.5, series)
    amplitude = level * rng.uniform(0.0, 0.4, series)
    noise = level * rng.uniform(0.01, 0.1, series)
    phase = rng.uniform(0.0, 2 * np.pi, series)
    r = np.arange(rounds, dtype=np.float64)[:, None]
    day = 2 * np.pi * r * STEP / 86_400.0
    values = level + amplitude * np.sin(day + phase) + noise * rng.standard_normal((rounds, series))
    spikes = rng.random((rounds, series)) < 1e-3
    return np.where(spikes, values + 8.0 * noise, values)


class EWZScore(BatchDetector):
    """The simplest vectorised detector: |z| against an exponentially weighted mean and variance.

    Parameters
    ----------
    alpha
        Weight of the newest point in the mean and variance.

    Example
    -------
    >>> values = np.r_[np.random.default_rng(0).normal(10, 1, 200), 20.0]
    >>> b = PointBatch.of(slot=np.zeros(201), ts=np.arange(201) * 60.0, value=values)
    >>> s = process(EWZScore(), b)
    >>> bool(s.score[-1] > 5 > s.score[100:-1].max())
    True
    """

    def __init__(self, alpha: float = 0.02) -> None:
        self.alpha = alpha

    def _state_spec(self) -> dict[str, tuple[tuple[int, ...], float]]:
        return {"mean": ((), np.nan), "var": ((), 0.0)}

    def score_batch(self, batch: PointBatch) -> Scores:
        self._ensure(batch)
        mean = self.state["mean"][batch.slot]
        mean = np.where(np.isnan(mean), batch.value, mean)
        std = np.sqrt(self.state["var"][batch.slot]) + 1e-9 * (1.0 + np.abs(mean))
        return Scores.from_expected(np.abs(batch.value - mean) / std, mean, std)

    def learn_batch(self, batch: PointBatch) -> None:
        self._ensure(batch)
        st, s, a = self.state, batch.slot, self.alpha
        mean = st["mean"][s]
        first = np.isnan(mean)
        diff = np.where(first, 0.0, batch.value - mean)
        st["var"][s] = (1 - a) * (st["var"][s] + a * diff * diff)
        st["mean"][s] = np.where(first, batch.value, mean + a * diff)


@dataclass(frozen=True, slots=True)
class DetectSpeedResult:
    """The figures of one run."""

    detector: str
    series: int
    rounds: int
    points_per_s: float
    halfspacetrees_series: int
    halfspacetrees_rounds: int
    halfspacetrees_points_per_s: float
    ewz_points_per_s: float
    ewz_raw_points_per_s: float

    @property
    def ratio_to_halfspacetrees(self) -> float:
        """How many times faster per point the default detector is than river's Half-Space Trees."""
        return self.points_per_s / self.halfspacetrees_points_per_s

    def as_dict(self) -> dict[str, Any]:
        """The bench's JSON."""
        return {
            "detector": self.detector,
            "series": self.series,
            "rounds": self.rounds,
            "points_per_s": round(self.points_per_s, 1),
            "halfspacetrees_series": self.halfspacetrees_series,
            "halfspacetrees_rounds": self.halfspacetrees_rounds,
            "halfspacetrees_points_per_s": round(self.halfspacetrees_points_per_s, 1),
            "ratio_to_halfspacetrees": round(self.ratio_to_halfspacetrees, 1),
            "ewz_points_per_s": round(self.ewz_points_per_s, 1),
            "ewz_raw_points_per_s": round(self.ewz_raw_points_per_s, 1),
        }


def _batches(values: F64) -> list[PointBatch]:
    slot = np.arange(values.shape[1], dtype=np.int64)
    return [
        PointBatch(slot, np.full(values.shape[1], T0 + i * STEP), np.ascontiguousarray(values[i]))
        for i in range(values.shape[0])
    ]


def _points_per_s(detector: Detector, batches: Sequence[PointBatch], warmup: int) -> float:
    """Run ``warmup`` batches untimed, then time ``process`` over the rest."""
    for b in batches[:warmup]:
        process(detector, b)
    timed = batches[warmup:]
    t0 = time.perf_counter()
    for b in timed:
        process(detector, b)
    spent = time.perf_counter() - t0
    return sum(len(b) for b in timed) / max(spent, 1e-9)


def _ewz_raw_points_per_s(values: F64, warmup: int, alpha: float = 0.02) -> float:
    """EWZScore's arithmetic on whole rows: no batches, no slot gathers or scatters."""
    mean = values[0].copy()
    var = np.zeros_like(mean)
    t0 = time.perf_counter()
    for i in range(1, values.shape[0]):
        if i == warmup:
            t0 = time.perf_counter()
        diff = values[i] - mean
        std = np.sqrt(var) + 1e-9 * (1.0 + np.abs(mean))
        _score = np.abs(diff) / std
        var = (1 - alpha) * (var + alpha * diff * diff)
        mean = mean + alpha * diff
    spent = time.perf_counter() - t0
    return float((values.shape[0] - warmup) * values.shape[1] / max(spent, 1e-9))


def run_detect_speed(
    n_series: int = 10_000,
    rounds: int = 100,
    quick: bool = False,
    detector_factory: Callable[[], Detector] | None = None,
    hst_series: int = 50,
    hst_rounds: int = 20,
    progress: Callable[[str], None] | None = None,
) -> DetectSpeedResult:
    """Measure points/s of the default detector (or ``detector_factory``), Half-Space Trees and EWZ.

    ``quick`` shrinks everything to a smoke test (500 series, 5 rounds; Half-Space Trees on
    5 series): the figures are then not a measurement.
    """
    if detector_factory is None:
        from detect.default import default_detector

        detector_factory = default_detector
    say = progress or (lambda _msg: None)
    warmup = 5
    if quick:
        n_series, rounds, hst_series, hst_rounds, warmup = min(n_series, 500), 5, 5, 2, 2
    hst_series = min(hst_series, n_series)
    # one matrix for everyone: Half-Space Trees read more rounds of its first columns
    total = max(warmup + rounds, HST_WINDOW + hst_rounds)
    say(f"generating {n_series:,} series x {total} rounds")
    values = synthetic_values(n_series, total)
    batches = _batches(values[: warmup + rounds])

    detector = detector_factory()
    say(f"timing {type(detector).__name__} on {n_series:,} series x {rounds} rounds")
    pps = _points_per_s(detector, batches, warmup)

    say("timing the vectorised EW z-score anchor")
    ewz = _points_per_s(EWZScore(), batches, warmup)
    ewz_raw = _ewz_raw_points_per_s(values[: warmup + rounds], warmup)

    say(f"timing river Half-Space Trees on {hst_series} series ({HST_WINDOW} warm-up rounds untimed)")
    hst_values = values[: HST_WINDOW + hst_rounds, :hst_series]
    hst = _points_per_s(RiverAdapter(), _batches(hst_values), HST_WINDOW)
    return DetectSpeedResult(
        detector=type(detector).__name__,
        series=n_series,
        rounds=rounds,
        points_per_s=pps,
        halfspacetrees_series=hst_series,
        halfspacetrees_rounds=hst_rounds,
        halfspacetrees_points_per_s=hst,
        ewz_points_per_s=ewz,
        ewz_raw_points_per_s=ewz_raw,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.detect_speed [--series N] [--rounds N] [--quick]``: print the JSON."""
    parser = argparse.ArgumentParser(description="Detector points/s against river's Half-Space Trees.")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run_detect_speed(
        args.series, args.rounds, args.quick, progress=lambda m: print(m, file=sys.stderr)
    )
    print(json.dumps(result.as_dict(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
