"""NAB run: opsloop's default detector over all 58 files as streams, scored by NAB's rules.

All files run at once as the slots of one detector: round ``i`` holds row ``i`` of every
file still running, scored first and learned second (prequential), so the detector sees
each row exactly once, in order, with no labels, file names or per-file settings. The
anomaly scores are then scored by :mod:`bench.nab_score` (NAB's own threshold sweep, one
threshold per profile for the whole corpus).

Run it with ``python -m bench.nab --data ../shared/benchmarks/nab --json`` (or
``opsloop bench nab`` once wired).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.nab_score import PROFILES, NabFile, load_corpus, score_corpus
from detect.base import F64, Detector, PointBatch
from detect.default import default_detector

__all__ = ["NabResult", "Streams", "load_streams", "run_nab", "stream_scores"]

#: Our profile names -> the scorer's.
PROFILE_KEYS = {
    "standard": "standard",
    "reward_low_FP": "reward_low_FP_rate",
    "reward_low_FN": "reward_low_FN_rate",
}


@dataclass(frozen=True, slots=True)
class Streams:
    """The corpus as a rectangle: ``values[i, j]`` is row ``i`` of file ``order[j]``.

    Columns are sorted by file length, longest first, so the files still running at round
    ``i`` are exactly the first ``active[i]`` columns.
    """

    files: list[NabFile]
    order: list[int]
    ts: F64
    values: F64
    active: np.ndarray[Any, np.dtype[np.int64]]


@functools.cache
def _load(root: str) -> Streams:
    files = load_corpus(root)
    order = sorted(range(len(files)), key=lambda k: -len(files[k]))
    rounds = len(files[order[0]])
    ts = np.zeros((rounds, len(files)))
    values = np.zeros((rounds, len(files)))
    for j, k in enumerate(order):
        f = files[k]
        seconds = f.timestamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)
        ts[: len(f), j] = seconds
        values[: len(f), j] = f.values
    lengths = np.array([len(files[k]) for k in order])
    active = (lengths[None, :] > np.arange(rounds)[:, None]).sum(axis=1).astype(np.int64)
    return Streams(files, order, ts, values, active)


def load_streams(data: Path) -> Streams:
    """Load (once per process) NAB's corpus under ``data`` as :class:`Streams`."""
    return _load(str(Path(data).resolve()))


def stream_scores(streams: Streams, detector: Detector) -> tuple[dict[str, F64], float]:
    """Run ``detector`` over every file as a stream; anomaly scores by file key, and seconds spent."""
    out = np.zeros_like(streams.values)
    slots = np.arange(streams.values.shape[1], dtype=np.int64)
    spent = 0.0
    for i in range(streams.values.shape[0]):
        k = int(streams.active[i])
        batch = PointBatch(slots[:k], streams.ts[i, :k], streams.values[i, :k])
        t0 = time.perf_counter()
        s = detector.score_batch(batch)
        detector.learn_batch(batch)
        spent += time.perf_counter() - t0
        out[i, :k] = s.score
    scores = {}
    for j, k in enumerate(streams.order):
        f = streams.files[k]
        scores[f.key] = out[: len(f), j].copy()
    return scores, spent


@dataclass(frozen=True, slots=True)
class NabResult:
    """NAB scores per profile, their thresholds, and the detector's speed on the corpus."""

    scores: dict[str, float]
    thresholds: dict[str, float]
    points_per_s: float
    rows: int
    files: int
    per_file: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The bench's JSON: the three profile scores, thresholds, points/s, files and rows."""
        return {
            **{k: round(v, 3) for k, v in self.scores.items()},
            "thresholds": self.thresholds,
            "points_per_s": round(self.points_per_s, 1),
            "files": self.files,
            "rows": self.rows,
        }


def score_streams(files: Sequence[NabFile], scores: dict[str, F64]) -> tuple[dict[str, float], ...]:
    """NAB's three profile scores, thresholds and per-file raw scores for given anomaly scores."""
    result: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    per_file: dict[str, dict[str, float]] = {}
    for name, key in PROFILE_KEYS.items():
        c = score_corpus(files, scores, PROFILES[key])
        result[name] = c.score
        thresholds[name] = c.threshold
        per_file[name] = {f.key: f.raw for f in c.files}
    return result, thresholds, per_file  # type: ignore[return-value]


def run_nab(
    data: Path,
    detector_factory: Callable[[], Detector] = default_detector,
    progress: Callable[[str], None] | None = None,
) -> NabResult:
    """Stream all of NAB through a fresh detector and score it with NAB's three profiles."""
    say = progress or (lambda _msg: None)
    say(f"loading NAB from {data}")
    streams = load_streams(data)
    rows = sum(len(f) for f in streams.files)
    say(f"streaming {rows:,} rows of {len(streams.files)} files")
    scores, spent = stream_scores(streams, detector_factory())
    say(f"scoring ({spent:.1f} s in the detector)")
    result, thresholds, per_file = score_streams(streams.files, scores)
    return NabResult(
        result,
        thresholds,
        rows / max(spent, 1e-9),
        rows,
        len(streams.files),
        per_file,  # type: ignore[arg-type]
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.nab --data DIR [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("../shared/benchmarks/nab"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run_nab(args.data, progress=None if args.json else lambda m: print(m, file=sys.stderr))
    print(json.dumps(result.as_dict(), indent=None if args.json else 2))


if __name__ == "__main__":  # pragma: no cover
    main()
