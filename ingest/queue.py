"""The bounded ingest queue and its single writer thread (group commit).

Request handlers decode and validate, then ``await queue.submit(batch)``; the answer comes
only after the batch is committed, so a 2xx always means durable. When the rows waiting
exceed the bound, ``submit`` raises ``BackpressureError`` at once (HTTP 429 with
Retry-After): the server never drops data silently and never buffers without limit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import pyarrow as pa

from core.batch import WriteBatch
from core.errors import BackpressureError, StorageError
from core.store import Store, WriteResult
from core.telemetry import COMMIT_ROWS, COMMIT_SECONDS, INGEST_DUPLICATES, INGEST_SAMPLES, QUEUE_DEPTH
from core.worker import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommittedPoints:
    """Points one batch just committed: ``points`` hold rowids ``first_row`` onwards."""

    first_row: int
    points: pa.Table
    committed_at: float  # time.time() right after the commit


#: Called by the writer thread after each commit; must return at once (hand off, never block).
CommitListener = Callable[[CommittedPoints], None]


class IngestQueue:
    """Bounded queue of batches in front of the store's single writer."""

    def __init__(
        self,
        store: Store,
        *,
        max_rows: int = 2_000_000,
        commit_max_rows: int = 200_000,
        linger_s: float = 0.002,
        retry_after_s: float = 1.0,
    ) -> None:
        self._store = store
        self._max_rows = max_rows
        self._commit_max_rows = commit_max_rows
        self._linger_s = linger_s
        self._retry_after_s = retry_after_s
        self._items: deque[tuple[WriteBatch, Future[WriteResult]]] = deque()
        self._pending_rows = 0
        # Guards the items and ``_stopping``: a batch is either queued before close() sets
        # ``_stopping`` (so the worker's final rounds commit it) or refused, never stranded.
        self._lock = threading.Lock()
        self._stopping = False
        self._idle = True  # the last round left the queue empty (only the writer thread uses it)
        self._listeners: list[CommitListener] = []
        self._batch_listeners: list[Callable[[WriteBatch], None]] = []
        # drain on stop, repeated while a round leaves items: close() commits everything queued
        self._worker = Worker("writer", self._write_round, poll_s=0.5)
        self._worker.start()

    @property
    def pending_rows(self) -> int:
        """Rows accepted but not yet committed."""
        return self._pending_rows

    @property
    def healthy(self) -> bool:
        """Whether the writer thread is alive and not shutting down."""
        return self._worker.running and not self._worker.stopping

    def add_listener(self, listener: CommitListener) -> None:
        """Hand the points of every commit to ``listener`` (e.g. streaming detection)."""
        self._listeners.append(listener)

    def add_batch_listener(self, listener: Callable[[WriteBatch], None]) -> None:
        """Hand every newly committed batch to ``listener`` (e.g. alerts and changes to the incident pipeline)."""
        self._batch_listeners.append(listener)

    def submit_nowait(self, batch: WriteBatch) -> Future[WriteResult]:
        """Enqueue a batch; raise ``BackpressureError`` if the queue is full."""
        rows = max(batch.rows, 1)
        with self._lock:
            if self._stopping:
                raise StorageError("the writer is shutting down", recoverable=True)
            if self._pending_rows and self._pending_rows + rows > self._max_rows:
                raise BackpressureError(
                    f"ingest queue full ({self._pending_rows} rows waiting)", retry_after=self._retry_after_s
                )
            fut: Future[WriteResult] = Future()
            self._items.append((batch, fut))
            self._pending_rows += rows
            QUEUE_DEPTH.set(self._pending_rows)
        self._worker.wake()
        return fut

    async def submit(self, batch: WriteBatch) -> WriteResult:
        """Enqueue a batch and wait until it is committed."""
        return await asyncio.wrap_future(self.submit_nowait(batch))

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the writer."""
        with self._lock:
            self._stopping = True  # from now on submit refuses, so the queue only shrinks
        self._worker.stop(timeout)

    def _take(self) -> list[tuple[WriteBatch, Future[WriteResult]]]:
        """The next group to commit (empty when nothing is queued)."""
        with self._lock:
            if not self._items:
                return []
        # Linger only when the writer was idle, to let concurrent requests join this commit.
        # A busy writer finds batches queued during its last commit: waiting more would only
        # idle it, so under load the group is simply what arrived meanwhile.
        if self._linger_s and self._idle:
            time.sleep(self._linger_s)
        group: list[tuple[WriteBatch, Future[WriteResult]]] = []
        rows = 0
        with self._lock:
            while self._items and (not group or rows + self._items[0][0].rows <= self._commit_max_rows):
                item = self._items.popleft()
                group.append(item)
                rows += max(item[0].rows, 1)
        return group

    def _write_round(self) -> bool:
        """Commit one group; return whether items remain (the worker then runs again at once)."""
        group = self._take()
        if not group:
            return False
        try:
            self._commit(group)
        except Exception:  # the writer must survive anything; every future gets an answer
            # caught here, not by the worker: a round that raised would end close()'s drain
            log.exception("writer loop failed")
            for _, fut in group:
                if not fut.done():
                    fut.set_exception(StorageError("internal writer error", recoverable=True))
        finally:
            with self._lock:
                self._pending_rows -= sum(max(b.rows, 1) for b, _ in group)
                QUEUE_DEPTH.set(self._pending_rows)
        with self._lock:
            more = bool(self._items)
        self._idle = not more
        return more

    def _commit(self, group: list[tuple[WriteBatch, Future[WriteResult]]]) -> None:
        start = time.perf_counter()
        batches = [b for b, _ in group]
        try:
            results = self._store.write_many(batches)
        except StorageError as exc:
            if len(group) == 1:
                group[0][1].set_exception(exc)
                return
            # isolate the bad batch: commit the others one by one
            for batch, fut in group:
                try:
                    self._done(batch, fut, self._store.write(batch))
                except StorageError as exc:
                    fut.set_exception(exc)
            return
        COMMIT_SECONDS.observe(time.perf_counter() - start)
        COMMIT_ROWS.observe(sum(b.rows for b in batches))
        for (batch, fut), result in zip(group, results, strict=True):
            self._done(batch, fut, result)

    def _done(self, batch: WriteBatch, fut: Future[WriteResult], result: WriteResult) -> None:
        if result.duplicate:
            INGEST_DUPLICATES.labels(batch.source).inc()
        else:
            INGEST_SAMPLES.labels(batch.source).inc(batch.samples or batch.rows)
            if self._listeners and batch.points is not None and result.first_point_row >= 0:
                committed = CommittedPoints(result.first_point_row, batch.points, time.time())
                for listener in self._listeners:
                    try:
                        listener(committed)
                    except Exception:  # a listener must never take the writer down
                        log.exception("commit listener failed")
            for batch_listener in self._batch_listeners:
                try:
                    batch_listener(batch)
                except Exception:  # a listener must never take the writer down
                    log.exception("batch listener failed")
        fut.set_result(result)
