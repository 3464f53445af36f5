"""The streaming engine over a real store: spikes become anomalies with bands; restarts resume exactly."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from core.batch import WriteBatch
from core.settings import Settings
from core.store import Store
from core.telemetry import REGISTRY
from detect import repository
from detect.base import Detector
from detect.default import default_detector
from detect.engine import DetectionEngine, arrival_rounds
from detect.filter import AnomalyFilter, Controls
from detect.robust_ewm import RobustEWM
from ingest.points import PointsBuilder
from ingest.queue import IngestQueue

STEP_US = 60_000_000
SERIES = 6
SPIKE_SERIES, SPIKE_AT = 2, 150


def wait_caught_up(eng: DetectionEngine, store: Store, timeout: float = 20) -> None:
    """Wait until the engine has scored every committed point (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while eng.watermark < store.points_rows and time.monotonic() < deadline:
        time.sleep(0.02)


def commits(rounds: int = 200, per_commit: int = 20, seed: int = 0) -> list[WriteBatch]:
    """Commits of SERIES noisy series, ``per_commit`` points each; one big spike."""
    rng = np.random.default_rng(seed)
    values = 100.0 + rng.normal(0, 1, (SERIES, rounds)) + np.arange(SERIES)[:, None] * 10
    if rounds > SPIKE_AT:
        values[SPIKE_SERIES, SPIKE_AT] += 60.0
    out = []
    for start in range(0, rounds, per_commit):
        b = PointsBuilder()
        for s in range(SERIES):
            idx = np.arange(start, min(start + per_commit, rounds))
            b.add("cpu", (("host", f"h{s}"),), idx * STEP_US, values[s, idx])
        series, points = b.build()
        out.append(WriteBatch(source="test", series=series, points=points))
    return out


def engine(store: Store, factory: Callable[[], Detector] = RobustEWM, **kw: object) -> DetectionEngine:
    f = AnomalyFilter(threshold=0.9999, default=Controls(warmup_points=20))
    settings = Settings(detect_snapshot_interval_s=3600.0, **kw)  # type: ignore[arg-type]
    return DetectionEngine(store, factory, f, settings)


def outputs(store: Store) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    bands = store.query(
        "SELECT series_id, ts, value, score, probability, expected, lower, upper FROM bands ORDER BY series_id, ts"
    )
    anomalies = store.query(
        "SELECT id, series_id, ts, value, probability, expected FROM anomalies ORDER BY id"
    )
    return bands, anomalies


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_arrival_rounds_keep_commit_order_within_each_series() -> None:
    slot = np.array([3, 1, 3, 3, 1, 0])
    rounds = [r.tolist() for r in arrival_rounds(slot)]
    assert sorted(i for r in rounds for i in r) == list(range(len(slot)))
    for r in rounds:
        assert len(set(slot[r].tolist())) == len(r)  # each slot at most once per round
    per_slot = {s: [i for r in rounds for i in r if slot[i] == s] for s in set(slot.tolist())}
    assert all(idx == sorted(idx) for idx in per_slot.values())


def test_spike_committed_through_the_queue_becomes_an_anomaly_with_its_band(store: Store) -> None:
    eng = engine(store)
    queue = IngestQueue(store, linger_s=0)
    queue.add_listener(eng.offer)
    lag_before = metric("opsloop_detect_lag_seconds_count")
    scored_before = metric("opsloop_detect_points_scored_total")
    eng.start()
    try:
        for batch in commits():
            queue.submit_nowait(batch).result(10)
        wait_caught_up(eng, store)
    finally:
        queue.close()
        eng.stop()
    found = repository.list_anomalies(store)
    assert [a.ts.minute + a.ts.hour * 60 for a in found] == [SPIKE_AT]
    (a,) = found
    assert abs(a.value - 180.0) < 5.0
    assert a.direction == "up" and a.probability >= a.threshold == 0.9999
    assert a.lower < a.expected < a.upper < a.value
    assert abs(a.expected - 120.0) < 2.0
    band = repository.band(store, a.series_id, None, None)
    assert band.num_rows == 200
    assert metric("opsloop_detect_points_scored_total") - scored_before == SERIES * 200
    assert metric("opsloop_detect_lag_seconds_count") - lag_before >= 1
    assert metric("opsloop_detect_backlog_points") == 0


@pytest.mark.parametrize("factory", [RobustEWM, default_detector], ids=["RobustEWM", "default_detector"])
def test_restart_from_snapshot_gives_the_same_output_as_a_continuous_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factory: Callable[[], Detector]
) -> None:
    batches = commits(rounds=240, per_commit=16)
    with Store(str(tmp_path / "continuous.duckdb")) as continuous:
        for batch in batches:
            continuous.write(batch)
        engine(continuous, factory).catch_up()
        expected = outputs(continuous)
    assert len(expected[0]) == 240 * SERIES
    if factory is RobustEWM:
        assert expected[1], "the stream has an anomaly to compare"

    path = str(tmp_path / "restarted.duckdb")
    with Store(path) as st:
        for batch in batches[:6]:
            st.write(batch)
        first = engine(st, factory)
        first.chunk_rows = 37  # chunking differs from the continuous run on purpose
        first.catch_up()
        first.snapshot()
        snapshot_at = first.watermark
        for batch in batches[6:9]:
            st.write(batch)
        first.catch_up()  # output committed after the snapshot, then a "crash": no new snapshot
    reads: list[tuple[int, int]] = []
    original = repository.read_points

    def spy(store: Store, start: int, end: int, since: datetime | None = None) -> pa.Table:
        reads.append((start, end))
        return original(store, start, end, since)

    monkeypatch.setattr(repository, "read_points", spy)
    with Store(path) as st:
        for batch in batches[9:]:
            st.write(batch)
        second = engine(st, factory)
        # resumed from the snapshot: only the rows after it were replayed (silently) to rebuild state
        assert reads and reads[0][0] == snapshot_at == 6 * 16 * SERIES
        assert second.watermark == 9 * 16 * SERIES
        second.catch_up()
        assert outputs(st) == expected


def test_overflowing_inbox_is_caught_up_from_the_store_not_dropped(store: Store) -> None:
    eng = engine(store, detect_max_backlog_rows=25)  # smaller than one commit: every offer overflows
    queue = IngestQueue(store, linger_s=0)
    queue.add_listener(eng.offer)
    try:
        for batch in commits(rounds=60, per_commit=10):
            queue.submit_nowait(batch).result(10)
        eng.start()
        wait_caught_up(eng, store)
    finally:
        queue.close()
        eng.stop()
    assert store.query("SELECT count(*) FROM bands")[0][0] == SERIES * 60


def test_stale_markers_are_not_scored(store: Store) -> None:
    b = PointsBuilder()
    b.add("up", (("job", "x"),), np.arange(5) * STEP_US, [1.0, None, 1.0, float("nan"), 1.0])
    series, points = b.build()
    store.write(WriteBatch(source="test", series=series, points=points))
    eng = engine(store)
    eng.catch_up()
    assert eng.watermark == 5
    assert store.query("SELECT count(*) FROM bands")[0][0] == 3


def test_feedback_is_recorded_and_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "fb.duckdb")
    with Store(path) as s:
        for batch in commits():
            s.write(batch)
        eng = engine(s)
        eng.catch_up()
        (a,) = repository.list_anomalies(s)
        result = eng.feedback(a.id, "false_positive", user="ann", comment="deploy")
        assert (result.threshold_before, result.threshold_after) == (0.9999, 0.99995)
        (fb,) = repository.feedback_of(s, a.id)
        assert (fb.verdict, fb.user, fb.threshold_after) == ("false_positive", "ann", 0.99995)
    with Store(path) as s:
        again = engine(s)  # no snapshot was taken: the threshold comes back from the feedback log
        slot = again.slots.slots(np.array([a.series_id], dtype=np.uint64))
        assert again.filter.thresholds(slot)[0] == 0.99995
        with pytest.raises(Exception, match="not found"):
            again.feedback("nope", "true_positive")


def test_controls_file_from_settings_applies_by_labels(store: Store, tmp_path: Path) -> None:
    controls = tmp_path / "controls.yaml"
    controls.write_text(f"- selector: 'cpu{{host=\"h{SPIKE_SERIES}\"}}'\n  direction: down\n")
    for batch in commits():
        store.write(batch)
    settings = Settings(detect_controls=controls, detect_threshold=0.9999)
    eng = DetectionEngine(store, RobustEWM, settings=settings)
    assert eng.filter.threshold == 0.9999 and len(eng.filter.rules) == 1
    eng.catch_up()
    spiked = [a for a in repository.list_anomalies(store) if a.value > 170]
    assert spiked == []  # the upward spike is on a series that only pages downwards
    eng.snapshot()
    again = DetectionEngine(store, RobustEWM, settings=settings)  # rules re-resolved on load
    slot = again.slots.slots(np.array([spiked_series_id(store)], dtype=np.uint64))
    assert again.filter.rule[slot].tolist() == [1]


def spiked_series_id(store: Store) -> int:
    rows = store.query("SELECT series_id FROM series WHERE labels['host'] = ?", [f"h{SPIKE_SERIES}"])
    return int(rows[0][0])


def test_anomalies_name_the_view_or_rule_of_the_default_detector_that_judged_them(store: Store) -> None:
    eng = DetectionEngine(store, default_detector, settings=Settings(detect_snapshot_interval_s=3600.0))
    for batch in commits():
        store.write(batch)
    eng.catch_up()
    found = repository.list_anomalies(store)
    names = eng.detector.source_names  # type: ignore[attr-defined]
    assert any(a.ts.minute + a.ts.hour * 60 == SPIKE_AT for a in found)
    assert found and all(a.detector.split("/")[0] == "Ensemble" for a in found)
    assert all(a.detector.split("/")[1] in names for a in found)
