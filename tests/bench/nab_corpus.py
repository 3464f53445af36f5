"""A small NAB-shaped corpus for tests: ``data/mini/m<k>.csv`` plus ``labels/combined_windows.json``."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np


def write_corpus(root: Path, lengths: tuple[int, ...] = (400, 250, 330), irregular: bool = True) -> Path:
    """Files of the given lengths, each with one labelled spike 60 rows before its end.

    ``irregular`` draws 0/5/10-minute steps (repeated timestamps included), as real NAB has.
    """
    rng = np.random.default_rng(17)
    labels = {}
    (root / "data" / "mini").mkdir(parents=True)
    (root / "labels").mkdir()
    start = datetime(2024, 3, 1)
    for k, rows in enumerate(lengths):
        choices = [0, 5, 5, 5, 10] if irregular else [5]
        minutes = np.cumsum(rng.choice(choices, rows))
        stamps = [(start + timedelta(minutes=int(m))).strftime("%Y-%m-%d %H:%M:%S") for m in minutes]
        values = 5 + rng.normal(0, 1, rows)
        spike = rows - 60
        values[spike] += 20
        with (root / "data" / "mini" / f"m{k}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value"])
            w.writerows(zip(stamps, values.tolist(), strict=True))
        labels[f"mini/m{k}.csv"] = [[stamps[spike - 8] + ".000000", stamps[spike + 8] + ".000000"]]
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    return root
