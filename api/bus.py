"""Cluster mode over NATS JetStream: front ends publish accepted batches, workers own partitions.

**Front end** (``OPSLOOP_BUS=nats://... opsloop serve``): every ingest endpoint decodes and
validates as in the single process, then :class:`BusPublisher` (standing in for the ingest
queue) splits the batch by series partition and publishes each part to
``opsloop.points.<p>``, answering 2xx only once JetStream acknowledged every part. A full
stream (``max_bytes`` reached, discard ``new``) or an unreachable bus answers 429 with
Retry-After; a retried request is not stored twice (the part's digest is its ``Nats-Msg-Id``,
and the worker's store skips a digest it committed).

**Worker** (``opsloop worker --partitions 0-3``): one durable pull consumer per partition;
each round it fetches a few messages, commits them to its own DuckDB in one transaction
(digests recorded, so a redelivery is a no-op), runs detection over what it committed (the
engine commits bands and its watermark together), and only then acknowledges. Killed with
SIGKILL between commit and ack, it gets the messages again and writes nothing twice.

The stream is created by whoever comes first, with the partition count in its description;
a front end or worker configured with another count refuses to start rather than mix
partitions (partitions move between workers only together with their store).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DiscardPolicy, StreamConfig
from nats.js.errors import APIError, NotFoundError

from core.batch import WriteBatch
from core.errors import BackpressureError, ConfigError, DecodeError
from core.settings import Settings
from core.store import Store, WriteResult
from detect.engine import DetectionEngine
from ingest.bus import SUBJECT, decode_batch, encode_batch, partition_batch, subject

__all__ = ["STREAM", "BusPublisher", "PartitionWorker", "ensure_stream", "parse_partitions"]

log = logging.getLogger(__name__)

STREAM = "OPSLOOP"


def parse_partitions(text: str) -> list[int]:
    """``0-3,6`` -> ``[0, 1, 2, 3, 6]``.

    >>> parse_partitions("0-3,6")
    [0, 1, 2, 3, 6]
    """
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ConfigError(f"partitions: {text!r} is not like 0-3,6")
        out.update(range(int(lo), int(hi or lo) + 1))
    return sorted(out)


async def ensure_stream(js: nats.js.JetStreamContext, partitions: int, max_bytes: int) -> None:
    """Create the stream with ``partitions`` subjects, or check an existing one has as many."""
    description = f"opsloop points, partitions={partitions}"
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=STREAM, description=description, subjects=[f"{SUBJECT}.*"], max_bytes=max_bytes,
                discard=DiscardPolicy.NEW, duplicate_window=120.0,
            )
        )  # fmt: skip
        return
    if info.config.description != description:
        raise ConfigError(
            f"stream {STREAM} was created as {info.config.description!r}, this process has "
            f"partitions={partitions}: partitions are fixed when the stream is created"
        )


class BusPublisher:
    """The front end's stand-in for the ingest queue: ``await submit(batch)`` -> acknowledged."""

    def __init__(
        self, url: str, partitions: int, *, max_bytes: int = 1 << 30, timeout_s: float = 5.0
    ) -> None:
        self.url = url
        self.partitions = partitions
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._nc: NATS | None = None
        self._js: nats.js.JetStreamContext | None = None

    async def start(self) -> None:
        """Connect and make sure the stream exists with our partition count."""
        self._nc = await nats.connect(self.url, connect_timeout=self.timeout_s, max_reconnect_attempts=-1)
        self._js = self._nc.jetstream(timeout=self.timeout_s)
        await ensure_stream(self._js, self.partitions, self.max_bytes)

    async def close(self) -> None:
        """Flush what is in flight and disconnect."""
        if self._nc is not None:
            await self._nc.drain()

    @property
    def healthy(self) -> bool:
        """Connected to the bus (what ``/readyz`` reports)."""
        return self._nc is not None and bool(self._nc.is_connected)

    @property
    def pending_rows(self) -> int:
        """Nothing waits here: a batch is answered once the bus has it."""
        return 0

    async def submit(self, batch: WriteBatch) -> WriteResult:
        """Publish every partition's part; return once JetStream acknowledged them all."""
        js = self._js
        if js is None:
            raise BackpressureError("the bus is not connected yet", retry_after=1.0)
        if batch.digest is None:  # a retried request has none to match: still publish once per call
            batch = replace(batch, digest=uuid.uuid4().hex)
        duplicate = True
        for p, part in partition_batch(batch, self.partitions).items():
            try:
                ack = await js.publish(
                    subject(p),
                    encode_batch(part),
                    timeout=self.timeout_s,
                    headers={"Nats-Msg-Id": str(part.digest)},
                )
            except (TimeoutError, NatsTimeout, NoRespondersError) as exc:
                raise BackpressureError(
                    f"the bus did not acknowledge in time ({exc})", retry_after=1.0
                ) from exc
            except APIError as exc:  # 10077: stream full (discard new); others: refused
                raise BackpressureError(
                    f"the bus refused the batch: {exc.description}", retry_after=2.0
                ) from exc
            duplicate = duplicate and bool(ack.duplicate)
        return WriteResult(duplicate=duplicate, rows=batch.rows)


class PartitionWorker:
    """Consume partitions into one store (see the module docstring); ``await run(stop)``."""

    def __init__(
        self,
        url: str,
        partitions: Sequence[int],
        store: Store,
        settings: Settings,
        *,
        fetch: int = 32,
        total_partitions: int | None = None,
    ) -> None:
        self.url = url
        self.partitions = list(partitions)
        self.store = store
        self.settings = settings
        self.fetch = fetch
        self.total = total_partitions or settings.bus_partitions
        self.engine = DetectionEngine(store, settings=settings) if settings.detect_enabled else None
        self.committed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the detector state is snapshotted on the way out."""
        nc = await nats.connect(self.url, max_reconnect_attempts=-1)
        js = nc.jetstream()
        await ensure_stream(js, self.total, self.settings.bus_max_bytes)
        subs = [
            await js.pull_subscribe(
                subject(p), durable=f"opsloop-p{p}", stream=STREAM,
                config=ConsumerConfig(ack_wait=60.0, max_ack_pending=self.fetch * 4),
            )
            for p in self.partitions
        ]  # fmt: skip
        try:
            while not stop.is_set():
                idle = True
                for sub in subs:
                    try:
                        msgs = await sub.fetch(self.fetch, timeout=0.5)
                    except (NatsTimeout, TimeoutError):  # nothing waiting on this partition
                        continue
                    idle = False
                    await self._handle(msgs)
                if idle:
                    await asyncio.sleep(0.05)
        finally:
            if self.engine is not None:
                await asyncio.to_thread(self.engine.snapshot)
            await nc.close()  # every handled message is acknowledged: nothing to drain

    async def _handle(self, msgs: list[Msg]) -> None:
        batches, good = [], []
        for msg in msgs:
            try:
                batches.append(decode_batch(msg.data))
                good.append(msg)
            except DecodeError:
                log.exception("dropping a message that is not an opsloop batch")
                await msg.term()
        if batches:
            results = await asyncio.to_thread(self.store.write_many, batches)
            self.committed += sum(not r.duplicate for r in results)
            if self.engine is not None:
                await asyncio.to_thread(self.engine.catch_up)
        for msg in good:  # only after the commit: a crash before this line means redelivery
            await msg.ack()
