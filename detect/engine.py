"""The streaming detection engine: committed points in, bands and anomalies out, state kept.

Flow (one thread, the only user of the detector):

1. The ingest writer hands every commit's points to :meth:`DetectionEngine.offer` (non
   blocking; a bounded inbox). Points are identified by their ``points`` rowids, which one
   commit assigns consecutively, so the engine's progress is a single *watermark*: every
   point with a rowid below it has been scored.
2. The thread takes the inbox in order. Whatever it does not hold in memory — points that
   arrived while the inbox was full, points written by other writers (files, scrapes), or
   everything after a restart — it re-reads from the store by rowid: nothing is dropped,
   at worst it is read twice from disk.
3. Each chunk is scored then learned series by series in *commit order* (so the outcome
   does not depend on how points were chunked), thresholded by :class:`AnomalyFilter`,
   and its bands, anomalies and the new watermark are committed in one transaction.
4. Every ``detect_snapshot_interval_s`` and on stop the detector, slot map and filter are
   pickled to ``detector_state``. On start the newest snapshot is loaded and points after
   its watermark are replayed: those already committed as output (``detector_progress``)
   only rebuild the state, the rest are scored as usual. A restart therefore produces the
   same bands and anomalies as an uninterrupted run, without relearning history.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from numpy.typing import NDArray

from core.batch import ANOMALIES_SCHEMA, BANDS_SCHEMA, WriteBatch
from core.errors import NotFoundError, StorageError
from core.settings import Settings
from core.store import Store
from core.telemetry import ANOMALIES, DETECT_BACKLOG, DETECT_LAG, DETECT_POINTS
from core.worker import Worker
from detect import repository
from detect.base import F64, I64, Detector, PointBatch, Scores, SlotMap
from detect.filter import AnomalyFilter, Controls, Verdict, load_rules, to_probability
from ingest.queue import CommittedPoints

__all__ = ["DetectionEngine", "FeedbackResult", "arrival_rounds", "default_factory", "filter_from_settings"]

log = logging.getLogger(__name__)

_SNAPSHOT_VERSION = 1

#: How much stored history rebuilds a detector whose snapshot no longer fits: a week (the
#: seasonal view's weekly profile) and a day, so every view is warm again after an upgrade.
REBUILD_HISTORY_S = 8 * 86400.0


def default_factory() -> Callable[[], Detector]:
    """opsloop's default detector factory (imported late: the detect package grows)."""
    from detect.default import default_detector

    return default_detector


def is_calibrated(detector: Detector) -> bool:
    """Whether the detector's score already is a probability (an anomaly likelihood)."""
    flag = getattr(detector, "calibrated", None)
    if flag is not None:
        return bool(flag)
    try:
        from detect.ensemble import Ensemble
        from detect.likelihood import AnomalyLikelihood
    except ImportError:  # pragma: no cover - the detectors ship together
        return False
    return isinstance(detector, AnomalyLikelihood | Ensemble)


def filter_from_settings(settings: Settings, detector: Detector | None = None) -> AnomalyFilter:
    """The filter the settings describe; with no threshold set, the detector's suggestion.

    A detector may carry ``default_threshold`` (a calibrated score's scale is its own);
    without one: 0.5 for a calibrated score (an anomaly likelihood's "very surprising"),
    0.999 for raw scores read as Gaussian probabilities (|z| > 3.3).
    """
    threshold = settings.detect_threshold
    if threshold is None:
        hint = getattr(detector, "default_threshold", None)
        if hint is not None:
            threshold = float(hint)
        else:
            threshold = 0.5 if detector is not None and is_calibrated(detector) else 0.999
    rules = load_rules(settings.detect_controls) if settings.detect_controls else []
    return AnomalyFilter(
        threshold=threshold,
        rules=rules,
        default=Controls(),
        min_threshold=settings.detect_threshold_min,
        max_threshold=settings.detect_threshold_max,
        step=settings.detect_feedback_step,
    )


def arrival_rounds(slot: I64) -> Iterator[I64]:
    """Index arrays: round r holds each slot's r-th point in the order given (commit order).

    Unlike :func:`detect.base.split_rounds` this does not sort by time: a stream is judged
    in the order it arrived, which makes the result independent of chunking.

    >>> [r.tolist() for r in arrival_rounds(np.array([1, 0, 1, 1]))]
    [[0, 1], [2], [3]]
    """
    n = len(slot)
    if n == 0:
        return
    order = np.argsort(slot, kind="stable")
    s = slot[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    if len(starts) == n:
        yield np.arange(n, dtype=np.int64)
        return
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)
    by_rank = order[np.argsort(rank, kind="stable")]
    bounds = np.searchsorted(np.sort(rank), np.arange(int(rank.max()) + 2))
    for r in range(len(bounds) - 1):
        yield np.sort(by_rank[bounds[r] : bounds[r + 1]])


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What a verdict did to its series."""

    anomaly_id: str
    series_id: int
    verdict: str
    threshold_before: float
    threshold_after: float
    at: datetime


@dataclass(frozen=True, slots=True)
class _Chunk:
    start: int
    points: pa.Table
    committed_at: tuple[float, ...]  # commit times of the offers in it (for the lag metric)


class DetectionEngine:
    """Score committed points as they arrive; write bands and anomalies; snapshot state.

    Parameters
    ----------
    store
        The store to read points from and write output to.
    detector_factory
        Builds the detector (default: :func:`detect.default.default_detector`).
    anomaly_filter
        Thresholding (default: from ``settings``).
    settings
        Snapshot interval, backlog bound, thresholds and controls.
    name
        Names this engine's snapshots and progress (one engine per name).
    chunk_rows
        Most points scored and committed in one step.

    Example
    -------
    >>> import tempfile, os
    >>> from detect.robust_ewm import RobustEWM
    >>> from ingest.points import PointsBuilder
    >>> path = os.path.join(tempfile.mkdtemp(), "doc.duckdb")
    >>> store = Store(path)
    >>> b = PointsBuilder()
    >>> values = np.r_[np.sin(np.arange(100) / 5.0), 40.0]
    >>> _ = b.add("load", (("host", "a"),), np.arange(101) * 60_000, values)
    >>> series, points = b.build()
    >>> _ = store.write(WriteBatch(source="doc", series=series, points=points))
    >>> engine = DetectionEngine(store, RobustEWM, AnomalyFilter(threshold=0.9999))
    >>> engine.catch_up()
    101
    >>> [round(a.value) for a in repository.list_anomalies(store)]
    [40]
    >>> store.close()
    """

    def __init__(
        self,
        store: Store,
        detector_factory: Callable[[], Detector] | None = None,
        anomaly_filter: AnomalyFilter | None = None,
        settings: Settings | None = None,
        *,
        name: str = "default",
        chunk_rows: int = 250_000,
        poll_s: float = 0.5,
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.name = name
        self.chunk_rows = chunk_rows
        self.poll_s = poll_s
        self._factory = detector_factory or default_factory()
        self.detector: Detector = self._factory()
        self.filter = anomaly_filter or filter_from_settings(self.settings, self.detector)
        self.detector_name = type(self.detector).__name__
        self.slots = SlotMap()
        self.watermark = 0  # every points row below this has been scored
        self._replay_until = 0  # rows below this already have their output committed
        self._lock = threading.RLock()  # detector, filter and slots: engine thread vs feedback
        self._inbox_lock = threading.Lock()  # inbox: ingest writer (offer) vs engine thread
        self._inbox: deque[CommittedPoints] = deque()
        self._inbox_rows = 0
        self._overflowed = False
        # no wait before the first round: it catches up on what the store holds
        self._worker = Worker("detect", self._step, poll_s=poll_s, wait_first=False)
        self._last_snapshot = time.monotonic()
        self._listeners: list[Callable[[pa.Table, NDArray[np.bool_]], None]] = []
        self._load()

    # ------------------------------------------------------------------ lifecycle

    def add_listener(self, listener: Callable[[pa.Table, NDArray[np.bool_]], None]) -> None:
        """Hand each committed output (bands, and which of their rows are anomalies) to ``listener``.

        Called on the engine thread right after the commit; it must hand off, not block.
        """
        self._listeners.append(listener)

    def start(self) -> None:
        """Start the detection thread (it first catches up on what the store holds)."""
        self._worker.poll_s = self.poll_s  # as before, a poll_s set after construction counts
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Score what was handed over, stop the thread, snapshot (the rest is caught up on start)."""
        self._worker.stop(timeout)
        self.snapshot()

    @property
    def running(self) -> bool:
        """Whether the detection thread is alive."""
        return self._worker.running

    @property
    def backlog(self) -> int:
        """Committed points not yet scored."""
        return max(self.store.points_rows - self.watermark, 0)

    def offer(self, committed: CommittedPoints) -> None:
        """Take the points of a commit (called by the ingest writer: never blocks).

        When the inbox is full the points are not kept: the gap in rowids tells the engine
        to re-read them from the store.
        """
        n = committed.points.num_rows
        with self._inbox_lock:
            if self._inbox_rows + n > self.settings.detect_max_backlog_rows:
                if not self._overflowed:
                    log.warning("detection is behind: re-reading committed points from the store")
                self._overflowed = True
                return
            self._overflowed = False
            self._inbox.append(committed)
            self._inbox_rows += n
        self._worker.wake()

    def _step(self) -> bool:
        """Score one chunk (handed over, else re-read from the store); return whether more is ready."""
        with self._inbox_lock:
            items = self._take()
        # stopping: score only what was handed over; the rest waits for the next start
        stopping = self._worker.stopping
        from_store = False
        if items:
            self._consume(items)
        elif not stopping and self.store.points_rows > self.watermark:
            self.catch_up(until=min(self.store.points_rows, self.watermark + self.chunk_rows))
            from_store = True
        DETECT_BACKLOG.set(self.backlog)
        if time.monotonic() - self._last_snapshot >= self.settings.detect_snapshot_interval_s:
            self.snapshot()
        with self._inbox_lock:
            if self._inbox:
                return True
        # Keep reading the store only while catching up: right after an inbox chunk the rows
        # beyond the watermark are usually the next offers, still on their way (wake brings them).
        return from_store and not stopping and self.store.points_rows > self.watermark

    def _take(self) -> list[CommittedPoints]:
        """Pop consecutive inbox items up to ``chunk_rows`` points (caller holds the inbox lock)."""
        items: list[CommittedPoints] = []
        rows = 0
        while self._inbox and (not items or rows + self._inbox[0].points.num_rows <= self.chunk_rows):
            item = self._inbox.popleft()
            self._inbox_rows -= item.points.num_rows
            if items and item.first_row != items[-1].first_row + items[-1].points.num_rows:
                self._inbox.appendleft(item)  # not contiguous: handle it in the next step
                self._inbox_rows += item.points.num_rows
                break
            items.append(item)
            rows += item.points.num_rows
        return items

    def _consume(self, items: list[CommittedPoints]) -> None:
        first = items[0].first_row
        if first > self.watermark:  # a gap: points we were not handed (overflow, other writers)
            self.catch_up(until=first)
        end = items[-1].first_row + items[-1].points.num_rows
        if end <= self.watermark:
            return
        table = pa.concat_tables([i.points for i in items]) if len(items) > 1 else items[0].points
        skip = self.watermark - first
        if skip > 0:
            table = table.slice(skip)
        self._process(table, self.watermark, end, tuple(i.committed_at for i in items))

    # ------------------------------------------------------------------ scoring

    def catch_up(
        self,
        until: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        since: datetime | None = None,
    ) -> int:
        """Score stored points from the watermark up to rowid ``until`` (default: all); return how many.

        ``progress(done, total)`` is called after each chunk; ``since`` skips older points
        entirely (an offline backfill that should not learn from ancient history).
        """
        end = self.store.points_rows if until is None else until
        total = max(end - self.watermark, 0)
        while self.watermark < end:
            stop = min(end, self.watermark + self.chunk_rows)
            if self.watermark < self._replay_until < stop:
                stop = self._replay_until  # a chunk is either replayed silently or written, never both
            table = repository.read_points(self.store, self.watermark, stop, since)
            self._process(table, self.watermark, stop, ())
            if progress is not None:
                progress(total - (end - self.watermark), total)
        return total

    def _process(self, table: pa.Table, start: int, end: int, committed_at: tuple[float, ...]) -> None:
        """Score rows ``[start, end)`` (``table``: their non-skipped points) and commit the output."""
        silent = end <= self._replay_until  # already committed before a restart: rebuild state only
        value_col = table.column("value")
        keep = pc.and_(pc.is_valid(value_col), pc.is_finite(value_col))
        if keep.null_count or not pc.all(keep).as_py():
            table = table.filter(pc.fill_null(keep, False))
        ids = table.column("series_id").to_numpy().astype(np.uint64, copy=False)
        ts_us = pc.cast(table.column("ts"), pa.int64()).to_numpy()
        values = table.column("value").to_numpy()
        with self._lock:
            slot = self._slots_for(ids)
            batch = PointBatch(slot, ts_us / 1e6, values)
            scores, probability, anomaly, upward, threshold = self._score(batch)
            self.watermark = end  # with the state it describes, for snapshot()
        if silent:
            return
        bands = pa.Table.from_arrays(
            [
                table.column("series_id"),
                table.column("ts"),
                table.column("value"),
                pa.array(scores.score),
                pa.array(probability),
                pa.array(scores.expected),
                pa.array(scores.lower),
                pa.array(scores.upper),
            ],
            schema=BANDS_SCHEMA,
        )
        found = np.flatnonzero(anomaly)
        anomalies = self._anomalies_table(table, found, scores, probability, threshold, upward)
        self._write(
            WriteBatch(source="detect", bands=bands, anomalies=anomalies, detect_progress=(self.name, end))
        )
        now = time.time()
        for t in committed_at:
            DETECT_LAG.observe(max(now - t, 0.0))
        DETECT_POINTS.inc(len(batch))
        if len(found):
            ANOMALIES.inc(len(found))
        for listener in self._listeners:
            try:
                listener(bands, np.asarray(anomaly, dtype=bool))
            except Exception:  # a listener must never stop detection
                log.exception("detection listener failed")

    def _write(self, batch: WriteBatch, attempts: int = 5) -> None:
        """Commit output, retrying what a retry can fix; the state has moved on, so losing it is loud."""
        for attempt in range(attempts):
            try:
                self.store.write(batch)
                return
            except StorageError as exc:
                if not exc.recoverable or attempt == attempts - 1:
                    log.error("detection output for rows up to %d lost: %s", batch.detect_progress, exc)
                    raise
                time.sleep(0.05 * 2**attempt)

    def _score(self, batch: PointBatch) -> tuple[Scores, F64, Any, Any, F64]:
        n = len(batch)
        score, expected, lower, upper, prob, thr = (np.empty(n) for _ in range(6))
        anomaly, upward = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        calibrated = is_calibrated(self.detector)
        source: NDArray[np.int16] | None = None
        for index in arrival_rounds(batch.slot):
            part = batch.take(index)
            s = self.detector.score_batch(part)
            self.detector.learn_batch(part)
            p = to_probability(s.score, calibrated)
            d = self.filter.decide(part, s, p)
            score[index], expected[index], lower[index], upper[index] = s.score, s.expected, s.lower, s.upper
            prob[index], thr[index], anomaly[index], upward[index] = p, d.threshold, d.anomaly, d.upward
            if s.source is not None:
                if source is None:
                    source = np.zeros(n, dtype=np.int16)
                source[index] = s.source
        return Scores(score, expected, lower, upper, source), prob, anomaly, upward, thr

    def _detector_names(self, scores: Scores, found: I64) -> list[str]:
        """Who judged each anomaly: ``Ensemble/SeasonalBaseline``, ``Ensemble/range``, or the detector."""
        names: tuple[str, ...] | None = getattr(self.detector, "source_names", None)
        if scores.source is None or not names:
            return [self.detector_name] * len(found)
        return [f"{self.detector_name}/{names[i]}" for i in scores.source[found].tolist()]

    def _anomalies_table(
        self,
        table: pa.Table,
        found: I64,
        scores: Scores,
        probability: F64,
        threshold: F64,
        upward: Any,
    ) -> pa.Table:
        ids = table.column("series_id").to_numpy()[found]
        ts_us = pc.cast(table.column("ts"), pa.int64()).to_numpy()[found]
        keys = [
            xxhash.xxh3_64_hexdigest(f"{self.name}\x00{int(s)}\x00{int(t)}".encode())
            for s, t in zip(ids.tolist(), ts_us.tolist(), strict=True)
        ]
        take = pa.array(found, pa.int64())
        now = datetime.now(UTC).replace(tzinfo=None)
        return pa.Table.from_arrays(
            [
                pa.array(keys, pa.string()),
                table.column("series_id").take(take),
                table.column("ts").take(take),
                table.column("value").take(take),
                pa.array(scores.score[found]),
                pa.array(probability[found]),
                pa.array(scores.expected[found]),
                pa.array(scores.lower[found]),
                pa.array(scores.upper[found]),
                pa.array(threshold[found]),
                pa.array(self._detector_names(scores, found), pa.string()),
                pa.array(np.where(upward[found], "up", "down").tolist(), pa.string()),
                pa.array([now] * len(found), pa.timestamp("us")),
            ],
            schema=ANOMALIES_SCHEMA,
        )

    def _slots_for(self, ids: np.ndarray) -> I64:
        """Slots of series ids; new series get their controls resolved from their labels."""
        known = len(self.slots)
        slot = self.slots.slots(ids)
        if len(self.slots) > known:
            new_ids = self.slots.ids()[known:]
            new_slots = np.arange(known, len(self.slots), dtype=np.int64)
            labels = repository.series_labels(self.store, new_ids) if self.filter.rules else None
            self.filter.assign(new_slots, labels or [{}] * len(new_slots))
        return slot

    # ------------------------------------------------------------------ feedback

    def feedback(
        self, anomaly_id: str, verdict: Verdict, user: str | None = None, comment: str | None = None
    ) -> FeedbackResult:
        """Apply an operator's verdict to the anomaly's series and record it."""
        found = repository.anomaly_by_id(self.store, anomaly_id)
        if found is None:
            raise NotFoundError(f"anomaly {anomaly_id!r} not found")
        with self._lock:
            slot = int(self._slots_for(np.array([found.series_id], dtype=np.uint64))[0])
            before, after = self.filter.feedback(slot, verdict)
            at = self.store.record_feedback(
                anomaly_id, found.series_id, verdict, user, comment, before, after
            )
        return FeedbackResult(anomaly_id, found.series_id, verdict, before, after, at)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> None:
        """Save the detector, slot map and filter state with the watermark."""
        with self._lock:
            state = {
                "version": _SNAPSHOT_VERSION,
                "detector_config": repr(self._factory()),
                "detector": self.detector,
                "slots": self.slots,
                "filter": self.filter.state_dict(),
            }
            blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
            watermark = self.watermark
        self.store.save_detector_state(self.name, watermark, blob)
        self._last_snapshot = time.monotonic()

    def _load(self) -> None:
        """Resume from the newest snapshot, then re-apply feedback thresholds.

        A snapshot that no longer fits (the detector's configuration changed in an upgrade,
        or its blob cannot be read back) is not a reason to go cold: the state is rebuilt by
        replaying recent stored points silently (their output is already stored), so series
        that were warm stay warm.
        """
        progress = self.store.detector_progress(self.name)
        snap = self.store.latest_detector_state(self.name)
        since: datetime | None = None
        if snap is not None:
            state = self._read_snapshot(snap.state)
            if state is None:
                self.watermark = 0
                since = repository.rebuild_since(self.store, REBUILD_HISTORY_S)
                log.warning(
                    "detector snapshot unusable (configuration changed?): rebuilding state from "
                    "points since %s",
                    since,
                )
            else:
                self.detector = state["detector"]
                self.slots = state["slots"]
                self.filter.load_state(state["filter"])
                n = len(self.slots)
                labels = repository.series_labels(self.store, self.slots.ids()) if self.filter.rules else None
                self.filter.assign(np.arange(n, dtype=np.int64), labels or [{}] * n)
                self.watermark = snap.watermark
        self._replay_until = progress
        if progress > self.watermark:  # silent: output already stored, only rebuild the state
            self.catch_up(until=progress, since=since)
        ids, thresholds = repository.latest_thresholds(self.store)
        if len(ids):
            with self._lock:
                self.filter.set_threshold(self._slots_for(ids), thresholds)

    def _read_snapshot(self, blob: bytes) -> dict[str, Any] | None:
        """The snapshot's state if it was taken with this detector configuration, else None."""
        try:
            state: dict[str, Any] = pickle.loads(blob)  # our own blob, written by snapshot()
        except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, TypeError, ValueError):
            # a class renamed or moved since, or a truncated blob: as unusable as a changed config
            log.exception("cannot read the detector snapshot")
            return None
        if state.get("version") != _SNAPSHOT_VERSION or state.get("detector_config") != repr(self._factory()):
            return None
        return state
