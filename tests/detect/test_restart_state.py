"""Warm state survives a restart: a series warm before it alerts at once after it.

The closed loop (``api.loop.assemble``: engine + incident pipeline) scores a few hours of
one steady series, the process "stops" (engine snapshot, store closed), a new loop opens
the same DuckDB file, and the first far-out point after the restart must be flagged by the
engine and fire an alert right away, not wait for another warm-up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from api.loop import Loop, assemble
from core.batch import WriteBatch
from core.settings import Settings
from core.store import Store
from detect import repository
from detect.engine import DetectionEngine
from detect.filter import AnomalyFilter
from detect.incidents import repository as incidents_repo
from detect.robust_ewm import RobustEWM
from ingest.points import PointsBuilder

STEP_US = 60_000_000
T0_US = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1e6)
HISTORY = 240  # four hours at 60 s: far beyond every point-counted warm-up
LABELS = (("service", "checkout"),)


def write(store: Store, start: int, values: np.ndarray) -> None:
    """Commit points ``start, start+1, ...`` (in steps) of the one series."""
    b = PointsBuilder()
    b.add("latency_seconds", LABELS, T0_US + (start + np.arange(len(values))) * STEP_US, values, kind="gauge")
    series, points = b.build()
    store.write(WriteBatch(source="test", series=series, points=points))


def history(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.2 + 0.01 * rng.standard_normal(HISTORY)


def run(loop: Loop) -> None:
    """Score what the store holds and let the pipeline catch up to the newest point (event time)."""
    loop.engine.catch_up()
    newest = loop.store.query("SELECT max(ts) FROM points")[0][0]
    loop.incidents.process(newest)


def anomaly_alerts(store: Store) -> list[datetime]:
    return sorted(
        a.starts_at for a in incidents_repo.load_live_alerts(store) if a.fingerprint.startswith("anomaly:")
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_warm_series_alerts_on_its_first_anomalous_point_after_a_restart(tmp_path: Path, seed: int) -> None:
    db = str(tmp_path / "restart.duckdb")
    settings = Settings(db=db)
    with Store(db) as store:
        loop = assemble(store, settings, live=False)
        write(store, 0, history(seed))
        run(loop)
        assert repository.count_anomalies(store) == 0, "steady history must be quiet"
        loop.engine.snapshot()  # what stop() does on shutdown

    with Store(db) as store:  # the restarted server: same file, new objects
        loop = assemble(store, settings, live=False)
        write(store, HISTORY, np.array([2.0, 2.1, 2.0]))  # tenfold latency, the very first points
        run(loop)
        first_bad = datetime.fromtimestamp((T0_US + HISTORY * STEP_US) / 1e6, UTC).replace(tzinfo=None)
        flagged = [a.ts for a in repository.list_anomalies(store)]
        assert first_bad in flagged, "the engine lost its learned baseline in the restart"
        assert anomaly_alerts(store) == [first_bad], "the alerter went back to a warm-up after the restart"


def test_a_changed_detector_configuration_rebuilds_state_instead_of_going_cold(tmp_path: Path) -> None:
    db = str(tmp_path / "upgrade.duckdb")

    def engine(store: Store, halflife: float) -> DetectionEngine:
        return DetectionEngine(store, lambda: RobustEWM(halflife=halflife), AnomalyFilter(threshold=0.9999))

    with Store(db) as store:
        write(store, 0, history(3))
        before = engine(store, 5.0)
        before.catch_up()
        before.snapshot()
        scored = store.query("SELECT count(*) FROM bands")[0][0]
    with Store(db) as store:
        after = engine(store, 6.0)  # an upgrade changed the detector: the old snapshot does not fit
        assert after.watermark == HISTORY
        assert store.query("SELECT count(*) FROM bands")[0][0] == scored, "history is rebuilt silently"
        write(store, HISTORY, np.array([2.0]))
        after.catch_up()
        assert [round(a.value, 1) for a in repository.list_anomalies(store)] == [2.0]


def test_series_history_counts_what_the_engine_scored(tmp_path: Path) -> None:
    with Store(str(tmp_path / "h.duckdb")) as store:
        write(store, 0, history(4)[:50])
        write(store, 50, np.array([np.nan, 0.2]))  # a NaN is not scored
        DetectionEngine(store, RobustEWM, AnomalyFilter()).catch_up()
        ids, scored, first_us = repository.series_history(store)
        assert scored.tolist() == [51]
        assert first_us.tolist() == [T0_US]
        assert len(ids) == 1
