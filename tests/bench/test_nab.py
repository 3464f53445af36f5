"""bench.nab: running all files at once as slots equals running each file alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.nab import PROFILE_KEYS, load_streams, run_nab, stream_scores
from detect.base import PointBatch, process
from detect.default import default_detector
from tests.bench.nab_corpus import write_corpus


def test_streaming_all_files_as_slots_equals_each_file_alone(tmp_path: Path) -> None:
    streams = load_streams(write_corpus(tmp_path))
    together, _ = stream_scores(streams, default_detector())
    for f in streams.files:
        ts = f.timestamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)
        alone = process(default_detector(), PointBatch.of(np.zeros(len(f)), ts, f.values)).score
        np.testing.assert_array_equal(together[f.key], alone)


def test_run_nab_reports_every_profile_and_finds_the_spikes(tmp_path: Path) -> None:
    result = run_nab(write_corpus(tmp_path)).as_dict()
    assert set(PROFILE_KEYS) <= set(result)
    assert set(result["thresholds"]) == set(PROFILE_KEYS)
    assert result["rows"] == 400 + 250 + 330 and result["files"] == 3
    assert result["points_per_s"] > 0
    # three clear spikes, one per window: a sound detector gets close to a perfect score
    assert result["standard"] > 80
