"""A 2xx means durable: SIGKILL the server mid-stream, restart it, and count every batch.

The client behaves like Prometheus' remote-write queue: a few shards each send their own
batches in order, and a batch that was not acknowledged (connection refused or cut, 429,
5xx) is sent again until it is. Batch ``i`` is 50 series x 20 samples whose value is ``i``,
so ``count(*) GROUP BY value`` says how many times each batch landed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.store import Store
from ingest.remote_write import REQUEST_HEADERS, encode_write_request
from tests.conftest import free_port
from tests.integration.processes import OpsloopServer, wait_for

SERIES = 50
PER_SERIES = 20
SAMPLES = SERIES * PER_SERIES
T0_MS = 1_700_000_000_000


def batch_body(i: int) -> bytes:
    """Batch ``i``: 1,000 samples, all with value ``i``, timestamps disjoint from every other batch."""
    first = T0_MS + i * PER_SERIES * 1000
    return encode_write_request(
        [
            (
                {"__name__": "crash_test_value", "job": "crash", "instance": f"host-{s:02d}"},
                [(first + j * 1000, float(i)) for j in range(PER_SERIES)],
            )
            for s in range(SERIES)
        ]
    )


def landed(db: Path) -> tuple[Counter[int], int]:
    """Samples per batch and the number of recorded batch digests, read from the file itself.

    Read-only: DuckDB replays the WAL in memory and leaves it for the next server to replay.
    """
    with Store(str(db), read_only=True) as store:
        rows = store.query("SELECT value, count(*) FROM points GROUP BY value")
        (digests,) = store.query("SELECT count(*) FROM ingest_batches")[0]
    return Counter({int(v): int(n) for v, n in rows}), int(digests)


@dataclass
class Shards:
    """Remote-write senders that retry whatever was not acknowledged, like Prometheus shards."""

    url: str
    token: str
    batches: int
    shards: int
    gate_from: int | None = None  # batches from here on wait for ``gate``
    backoff_s: float = 0.02
    deadline_s: float = 120.0
    gate: threading.Event = field(default_factory=threading.Event)
    acked: set[int] = field(default_factory=set)
    unacked_attempts: Counter[int] = field(default_factory=Counter)
    cut_mid_request: set[int] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: set[str] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, start_together: threading.Barrier | None = None) -> None:
        for shard in range(self.shards):
            t = threading.Thread(target=self._run, args=(shard, start_together), daemon=True)
            t.start()
            self._threads.append(t)

    def join(self) -> None:
        for t in self._threads:
            t.join(self.deadline_s)
        assert not any(t.is_alive() for t in self._threads), "senders did not finish"
        if self.errors:
            raise self.errors[0]

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def acked_now(self) -> set[int]:
        with self._lock:
            return set(self.acked)

    def _run(self, shard: int, start_together: threading.Barrier | None) -> None:
        try:
            headers = {**REQUEST_HEADERS, "Authorization": f"Bearer {self.token}"}
            with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
                if start_together is not None:
                    start_together.wait(30)
                for i in range(shard, self.batches, self.shards):
                    if self.gate_from is not None and i >= self.gate_from:
                        assert self.gate.wait(self.deadline_s), "gate never opened"
                    self._send_until_acked(client, i, batch_body(i))
        except BaseException as exc:  # reported by join()
            self.errors.append(exc)

    def _send_until_acked(self, client: httpx.Client, i: int, body: bytes) -> None:
        deadline = time.monotonic() + self.deadline_s
        while True:
            assert time.monotonic() < deadline, f"batch {i} never acknowledged"
            try:
                r = client.post("/api/v1/write", content=body)
            except httpx.TransportError as exc:
                with self._lock:
                    self.unacked_attempts[i] += 1
                    if not isinstance(exc, httpx.ConnectError):
                        self.cut_mid_request.add(i)  # the request reached the server, the answer never came
                time.sleep(self.backoff_s)
                continue
            with self._lock:
                self.statuses[r.status_code] += 1
                if r.is_success:
                    self.acked.add(i)
                    return
                self.unacked_attempts[i] += 1
                if r.status_code == 429:
                    self.retry_after.add(r.headers.get("retry-after", ""))
            assert r.status_code == 429 or r.status_code >= 500, f"batch {i}: {r.status_code} {r.text}"
            time.sleep(self.backoff_s)


def make_token(db: Path) -> str:
    """Create an ingest+read token; the store is closed again before the server opens the file."""
    with Store(str(db)) as store:
        return store.create_token(["ingest", "read"], "crash-test")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "crash.duckdb"


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    """Where the server subprocess writes its output (shown when it fails to start)."""
    return tmp_path / "opsloop.log"


BATCHES = 200
KILL_AFTER_ACKS = 60
GATE_FROM = 120  # senders keep going past the kill point, so some batch is always left unacknowledged
BACKPRESSURE_BATCHES = 24


def test_sigkill_mid_stream_loses_no_acknowledged_batch_and_stores_each_once(
    db: Path, server_log: Path
) -> None:
    token = make_token(db)
    server = OpsloopServer(db, free_port(), server_log)
    shards = Shards(server.url, token, BATCHES, shards=4, gate_from=GATE_FROM)
    try:
        server.start()
        shards.start()
        wait_for(
            f"{KILL_AFTER_ACKS} acknowledged batches", lambda: shards.acked_count() >= KILL_AFTER_ACKS, 60
        )
        server.kill()
        acked_before_kill = shards.acked_now()  # nothing can be acknowledged while the server is dead
        shards.gate.set()

        # Straight from the file the dead process left (DuckDB replays its WAL on open).
        counts, digests = landed(db)
        lost = sorted(i for i in acked_before_kill if counts[i] != SAMPLES)
        assert not lost, f"acknowledged batches lost or partial after SIGKILL: {lost[:10]}"
        partial = {i: n for i, n in counts.items() if n not in (0, SAMPLES)}
        assert not partial, f"half-written batches after SIGKILL: {partial}"
        assert digests == sum(1 for n in counts.values() if n == SAMPLES)

        server.start()  # same file, same port: the shards' retries now get through
        shards.join()
        # A sender whose acknowledgement got lost sends the batch again: still stored once.
        headers = {**REQUEST_HEADERS, "Authorization": f"Bearer {token}"}
        for i in (0, max(acked_before_kill)):
            again = httpx.post(f"{server.url}/api/v1/write", content=batch_body(i), headers=headers)
            assert again.status_code == 204, again.text
        assert server.stop(), server.tail()
    finally:
        shards.gate.set()
        server.kill()

    assert not Path(f"{db}.wal").exists(), "a graceful stop checkpoints the WAL away"
    counts, digests = landed(db)
    assert shards.acked == set(range(BATCHES))
    assert shards.unacked_attempts, "the kill left no batch unacknowledged"
    # batches whose request was cut by the kill (committed or not) were re-sent and are there once
    assert {i: counts[i] for i in shards.cut_mid_request} == dict.fromkeys(shards.cut_mid_request, SAMPLES)
    assert {i: counts[i] for i in range(BATCHES) if counts[i] != SAMPLES} == {}
    assert sum(counts.values()) == BATCHES * SAMPLES
    assert digests == BATCHES
    with Store(str(db)) as store:
        assert store.query("SELECT count(*) FROM series")[0][0] == SERIES


def test_full_queue_answers_429_with_retry_after_and_drops_nothing(db: Path, server_log: Path) -> None:
    """Concurrent senders against a one-batch queue: 429 + Retry-After, then every batch once.

    The senders retry after 20 ms rather than the advertised second, to keep the test short.
    """
    token = make_token(db)
    # The bound is one batch, and the writer lingers 0.1 s before each commit, so a batch
    # that arrives while another waits finds the queue full.
    env = {"OPSLOOP_QUEUE_MAX_ROWS": str(SAMPLES), "OPSLOOP_COMMIT_LINGER_S": "0.1"}
    server = OpsloopServer(db, free_port(), server_log, env)
    clients = 8
    shards = Shards(server.url, token, batches=BACKPRESSURE_BATCHES, shards=clients)
    try:
        server.start()
        shards.start(start_together=threading.Barrier(clients))
        shards.join()
        assert server.stop(), server.tail()
    finally:
        server.kill()

    assert shards.statuses[429] > 0, f"no backpressure seen: {dict(shards.statuses)}"
    assert set(shards.statuses) == {204, 429}, dict(shards.statuses)
    assert shards.retry_after == {"1"}
    counts, digests = landed(db)
    assert shards.acked == set(range(BACKPRESSURE_BATCHES))
    assert {i: counts[i] for i in range(BACKPRESSURE_BATCHES)} == dict.fromkeys(
        range(BACKPRESSURE_BATCHES), SAMPLES
    )
    assert digests == BACKPRESSURE_BATCHES
