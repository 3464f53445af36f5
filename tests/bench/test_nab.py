"""bench.nab: running all files at once as slots equals running each file alone."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from bench.nab import PROFILE_KEYS, load_streams, run_nab, stream_scores
from detect.base import PointBatch, process
from detect.default import default_detector


def corpus(root: Path, lengths: tuple[int, ...] = (400, 250, 330)) -> Path:
    """A NAB-shaped corpus of files of different lengths, each with one labelled spike."""
    rng = np.random.default_rng(17)
    labels = {}
    (root / "data" / "mini").mkdir(parents=True)
    (root / "labels").mkdir()
    start = datetime(2024, 3, 1)
    for k, rows in enumerate(lengths):
        steps = np.cumsum(rng.choice([0, 5, 5, 5, 10], rows))  # irregular, with repeats
        stamps = [(start + timedelta(minutes=int(m))).strftime("%Y-%m-%d %H:%M:%S") for m in steps]
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


def test_streaming_all_files_as_slots_equals_each_file_alone(tmp_path: Path) -> None:
    streams = load_streams(corpus(tmp_path))
    together, _ = stream_scores(streams, default_detector())
    for f in streams.files:
        ts = f.timestamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)
        alone = process(default_detector(), PointBatch.of(np.zeros(len(f)), ts, f.values)).score
        np.testing.assert_array_equal(together[f.key], alone)


def test_run_nab_reports_every_profile_and_finds_the_spikes(tmp_path: Path) -> None:
    result = run_nab(corpus(tmp_path)).as_dict()
    assert set(PROFILE_KEYS) <= set(result)
    assert set(result["thresholds"]) == set(PROFILE_KEYS)
    assert result["rows"] == 400 + 250 + 330 and result["files"] == 3
    assert result["points_per_s"] > 0
    # three clear spikes, one per window: a sound detector gets close to a perfect score
    assert result["standard"] > 80
