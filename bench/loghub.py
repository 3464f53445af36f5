"""Loghub 2k log-parsing bench: grouping accuracy of the default template miner, and its speed.

Every system folder under ``data`` that holds ``<S>_2k.log_structured.csv`` is parsed with a fresh
:class:`diagnose.templates.TemplateMiner` (default config for all: no per-system settings), fed the
``Content`` column line by line in file order. Grouping accuracy (GA) is logparser's
``evaluator.get_accuracy``: a parsed cluster counts iff its lines are exactly the lines of one
ground-truth event. The headline scores against Loghub-2.0's corrected ground truth
(``<S>_2k.log_structured_corrected.csv``); the original labels are scored too. Speed is all lines
over the summed parse time (masking + mining only: no CSV reading, no scoring).

Run it with ``python -m bench.loghub --data ../shared/benchmarks/loghub --json`` or
``opsloop bench logs``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diagnose import templates
from diagnose.templates import TemplateMiner

__all__ = [
    "DRAIN_PUBLISHED_GA",
    "LogBenchResult",
    "LogSystem",
    "grouping_accuracy",
    "load_system",
    "run_log_bench",
    "system_names",
]

#: Drain's GA on loghub_2k, original ground truth, as published in logparser's Drain README
#: (https://github.com/logpai/logparser, Drain benchmark table; copied in the data folder's README,
#: section 2.3 (a)). Its mean over the 16 systems is 0.865.
DRAIN_PUBLISHED_GA: dict[str, float] = {
    "HDFS": 0.9975,
    "Hadoop": 0.9475,
    "Spark": 0.92,
    "Zookeeper": 0.9665,
    "BGL": 0.9625,
    "HPC": 0.887,
    "Thunderbird": 0.955,
    "Windows": 0.997,
    "Linux": 0.69,
    "Android": 0.911,
    "HealthApp": 0.78,
    "Apache": 1.0,
    "Proxifier": 0.5265,
    "OpenSSH": 0.7875,
    "OpenStack": 0.7325,
    "Mac": 0.7865,
}


def grouping_accuracy(truth: Sequence[Hashable], parsed: Sequence[Hashable]) -> float:
    """Share of lines in parsed clusters that are exactly one ground-truth group (logparser's GA).

    A parsed cluster is correct iff all its lines carry one truth id *and* it holds every line with
    that id; GA = lines in correct clusters / all lines. Ids are compared for equality only.

    >>> grouping_accuracy(["a", "a", "b", "b"], [1, 1, 2, 2])
    1.0
    >>> grouping_accuracy(["a", "a", "b", "b"], [1, 1, 1, 2])  # cluster 1 mixes a and b
    0.0
    >>> grouping_accuracy(["a", "a", "b", "b"], [1, 1, 2, 3])  # b split in two: neither half counts
    0.5
    """
    if len(truth) != len(parsed):
        raise ValueError(f"{len(truth)} truth labels for {len(parsed)} parsed labels")
    if not truth:
        return 0.0
    _, t = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)
    _, p = np.unique(np.asarray(parsed, dtype=object).astype(str), return_inverse=True)
    t, p = t.ravel(), p.ravel()
    truth_size = np.bincount(t)
    order = np.argsort(p, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(p[order]) != 0])
    sizes = np.diff(np.r_[starts, len(order)])
    t_sorted = t[order]
    first = t_sorted[starts]
    # one truth id in the cluster: its min and max agree
    lo = np.minimum.reduceat(t_sorted, starts)
    hi = np.maximum.reduceat(t_sorted, starts)
    correct = (lo == hi) & (truth_size[first] == sizes)
    return float(sizes[correct].sum() / len(t))


@dataclass(frozen=True, slots=True)
class LogSystem:
    """One Loghub system: its log contents and both ground-truth event ids, line for line."""

    name: str
    content: list[str]
    truth: list[str]
    truth_original: list[str]


def _read_column(path: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    with path.open(newline="", encoding="utf-8") as fh:  # newline="": quoted fields span lines
        return [tuple(row[c] for c in columns) for row in csv.DictReader(fh)]


def system_names(data: Path) -> list[str]:
    """Folders under ``data`` laid out like Loghub's (``<S>/<S>_2k.log_structured.csv``), sorted."""
    if not data.is_dir():
        return []
    return sorted(
        d.name for d in data.iterdir() if d.is_dir() and (d / f"{d.name}_2k.log_structured.csv").is_file()
    )


def load_system(data: Path, name: str) -> LogSystem:
    """Read one system; the corrected truth falls back to the original where it is missing."""
    folder = data / name
    rows = _read_column(folder / f"{name}_2k.log_structured.csv", ("Content", "EventId"))
    corrected_path = folder / f"{name}_2k.log_structured_corrected.csv"
    corrected = [r[0] for r in _read_column(corrected_path, ("EventId",))] if corrected_path.is_file() else []
    original = [r[1] for r in rows]
    if len(corrected) != len(rows):
        corrected = original
    return LogSystem(name, [r[0] for r in rows], corrected, original)


@dataclass(frozen=True, slots=True)
class LogBenchResult:
    """GA per system (corrected and original truth), their means, and parse speed."""

    grouping_accuracy: dict[str, float]
    grouping_accuracy_original: dict[str, float]
    clusters: dict[str, int]
    n_lines: int
    parse_s: float
    published: dict[str, float] = field(default_factory=lambda: dict(DRAIN_PUBLISHED_GA))

    @property
    def mean_grouping_accuracy(self) -> float:
        """Mean GA over the systems, corrected truth (the headline)."""
        return float(np.mean(list(self.grouping_accuracy.values()))) if self.grouping_accuracy else 0.0

    @property
    def mean_grouping_accuracy_original(self) -> float:
        """Mean GA over the systems, original truth."""
        values = list(self.grouping_accuracy_original.values())
        return float(np.mean(values)) if values else 0.0

    @property
    def lines_per_s(self) -> float:
        """All lines over the summed parse time."""
        return self.n_lines / self.parse_s if self.parse_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The bench's JSON contract, plus ``original`` (original truth) and ``n_lines``."""
        return {
            "systems": {s: {"grouping_accuracy": round(v, 4)} for s, v in self.grouping_accuracy.items()},
            "mean_grouping_accuracy": round(self.mean_grouping_accuracy, 4),
            "lines_per_s": round(self.lines_per_s),
            "n_lines": self.n_lines,
            "original": {
                "systems": {
                    s: {"grouping_accuracy": round(v, 4)} for s, v in self.grouping_accuracy_original.items()
                },
                "mean_grouping_accuracy": round(self.mean_grouping_accuracy_original, 4),
            },
        }


def run_log_bench(
    data: Path,
    progress: Callable[[str], None] | None = None,
    systems: Collection[str] | None = None,
) -> LogBenchResult:
    """Parse every system under ``data`` (or only ``systems``) and score it; see the module doc."""
    names = [s for s in system_names(Path(data)) if systems is None or s in systems]
    ga: dict[str, float] = {}
    ga_original: dict[str, float] = {}
    clusters: dict[str, int] = {}
    n_lines, parse_s = 0, 0.0
    for name in names:
        system = load_system(Path(data), name)
        templates.clear_token_cache()  # each system parsed cold, as by a fresh process
        miner = TemplateMiner()
        start = time.perf_counter()
        ids = miner.add_many(system.content)
        parse_s += time.perf_counter() - start
        n_lines += len(system.content)
        ga[name] = grouping_accuracy(system.truth, ids.tolist())
        ga_original[name] = grouping_accuracy(system.truth_original, ids.tolist())
        clusters[name] = len(miner)
        if progress is not None:
            progress(
                f"{name}: GA {ga[name]:.4f} (original {ga_original[name]:.4f}), {clusters[name]} templates"
            )
    return LogBenchResult(ga, ga_original, clusters, n_lines, parse_s)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.loghub``: print the figures (a table, or the JSON contract)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/benchmarks/loghub"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    progress = None if args.json else (lambda msg: print(msg, file=sys.stderr))
    result = run_log_bench(args.data, progress=progress)
    print(json.dumps(result.as_dict(), indent=None if args.json else 1))


if __name__ == "__main__":  # pragma: no cover
    main()
