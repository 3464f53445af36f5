"""The shared background-worker loop: wake, poll, more work, failures, stop and drain."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from core.telemetry import REGISTRY
from core.worker import Worker

#: A long poll: a round within a test's bounded wait cannot come from polling.
NEVER = 60.0
_names = itertools.count()


def unique(prefix: str) -> str:
    """A worker name of its own, so counters do not mix between tests."""
    return f"test-{prefix}-{next(_names)}"


def rounds(name: str, outcome: str) -> float:
    labels = {"worker": name, "outcome": outcome}
    return REGISTRY.get_sample_value("opsloop_worker_rounds_total", labels) or 0.0


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class Calls:
    """A step that counts its calls and returns ``results`` in turn (then None)."""

    def __init__(self, *results: object) -> None:
        self.n = 0
        self._results: Iterator[object] = iter(results)
        self._lock = threading.Lock()

    def __call__(self) -> object:
        with self._lock:
            self.n += 1
        return next(self._results, None)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers a test started; stopped even when the test fails."""
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop(2)


def test_wake_runs_a_round_promptly(workers: list[Worker]) -> None:
    step = Calls()
    w = Worker(unique("wake"), step, poll_s=NEVER)
    workers.append(w)
    w.start()
    time.sleep(0.05)
    assert step.n == 0  # wait_first: nothing before a wake or the first poll
    w.wake()
    assert wait_until(lambda: step.n == 1)
    assert w.running and not w.stopping


def test_poll_runs_rounds_without_wakes(workers: list[Worker]) -> None:
    name = unique("poll")
    step = Calls()
    w = Worker(name, step, poll_s=0.01)
    workers.append(w)
    w.start()
    assert wait_until(lambda: step.n >= 3)
    assert rounds(name, "ok") >= 3


def test_a_step_with_more_work_is_run_again_without_waiting(workers: list[Worker]) -> None:
    step = Calls(True, True, True, 1, False)
    w = Worker(unique("more"), step, poll_s=NEVER)
    workers.append(w)
    w.start()
    w.wake()
    assert wait_until(lambda: step.n == 5)  # one wake, five rounds: no poll wait in between
    time.sleep(0.05)
    assert step.n == 5  # a falsy result waits again


def test_a_failing_step_is_logged_counted_and_the_loop_goes_on(
    workers: list[Worker], caplog: pytest.LogCaptureFixture
) -> None:
    name = unique("fail")
    calls = Calls()

    def step() -> None:
        calls()
        if calls.n == 1:
            raise RuntimeError("boom")

    w = Worker(name, step, poll_s=0.01)
    workers.append(w)
    with caplog.at_level(logging.ERROR, logger="core.worker"):
        w.start()
        assert wait_until(lambda: calls.n >= 3)
    assert rounds(name, "failed") == 1
    assert rounds(name, "ok") >= 2
    assert any(f"{name} worker round failed" in r.getMessage() and r.exc_info for r in caplog.records)
    assert w.running


def test_stop_with_drain_runs_a_final_round_repeated_while_there_is_more() -> None:
    seen: list[bool] = []
    results = iter([True, True])

    def step() -> bool:
        seen.append(w.stopping)
        return next(results, False)

    w = Worker(unique("drain"), step, poll_s=NEVER)
    w.start()
    w.stop(2)
    assert seen == [True, True, True]  # the final round, again while it reported more
    assert not w.running


def test_stop_without_drain_runs_no_further_round() -> None:
    step = Calls()
    w = Worker(unique("nodrain"), step, poll_s=NEVER, drain_on_stop=False)
    w.start()
    w.stop(2)
    assert step.n == 0
    assert not w.running and w.stopping


def test_wait_first_false_runs_a_round_at_start(workers: list[Worker]) -> None:
    step = Calls()
    w = Worker(unique("eager"), step, poll_s=NEVER, wait_first=False)
    workers.append(w)
    w.start()
    assert wait_until(lambda: step.n == 1)
    time.sleep(0.05)
    assert step.n == 1  # then it waits for a wake or the poll


def test_a_stopped_worker_starts_again(workers: list[Worker]) -> None:
    step = Calls()
    w = Worker(unique("restart"), step, poll_s=NEVER)
    w.start()
    w.stop(2)
    workers.append(w)
    w.start()
    assert w.running and not w.stopping
    w.wake()
    assert wait_until(lambda: step.n == 2)  # the drain round, then the woken one
