"""One background-worker loop for every stage that runs in a thread (Netflix Dispatch's ``scheduled``).

A :class:`Worker` calls its ``step`` on a thread: when woken (new input), every ``poll_s``
otherwise, and again at once while ``step`` says there is more to do. ``stop`` wakes it,
lets it finish (one last ``step`` when ``drain_on_stop``, repeated while it reports more) and
joins. A failing step is logged and counted, never fatal: the loop waits ``poll_s`` and goes
on. Each round is counted in ``opsloop_worker_rounds_total{worker, outcome}`` and timed in
``opsloop_worker_round_seconds{worker}``.

>>> seen = []
>>> w = Worker("doc", lambda: seen.append(1), poll_s=60)
>>> w.start(); w.wake(); w.stop(); len(seen) >= 1, w.running
(True, False)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.telemetry import WORKER_ROUND_SECONDS, WORKER_ROUNDS

__all__ = ["Worker"]

log = logging.getLogger(__name__)


class Worker:
    """Run ``step`` in a daemon thread named ``opsloop-<name>`` (see the module docstring).

    ``step`` returns a truthy value when it has more work right away (it is called again
    without waiting), anything falsy otherwise. With ``wait_first=False`` the first round runs
    as soon as the thread starts (catch up on start); with ``drain_on_stop=False`` stopping
    ends the loop without another round.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        *,
        poll_s: float,
        drain_on_stop: bool = True,
        wait_first: bool = True,
    ) -> None:
        self.name = name
        self.poll_s = poll_s
        self._step = step
        self._drain = drain_on_stop
        self._wait_first = wait_first
        self._cv = threading.Condition()
        self._woken = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called (a step may use it to finish early)."""
        return self._stopping

    def start(self) -> None:
        """Start the thread (a no-op while it runs)."""
        if self._thread is not None:
            return
        with self._cv:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"opsloop-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run a round now instead of at the next poll (new input arrived)."""
        with self._cv:
            self._woken = True
            self._cv.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the loop finish (see ``drain_on_stop``) and join the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        more = not self._wait_first
        while True:
            with self._cv:
                if not (more or self._woken or self._stopping):
                    self._cv.wait(self.poll_s)
                self._woken = False
                stopping = self._stopping
            if stopping and not self._drain:
                return
            more = self._round()
            if stopping and not more:
                return

    def _round(self) -> bool:
        started = time.perf_counter()
        try:
            more = bool(self._step())
        except Exception:  # the worker loop survives anything; it logs, counts and goes on
            log.exception("%s worker round failed", self.name)
            WORKER_ROUNDS.labels(self.name, "failed").inc()
            return False
        WORKER_ROUNDS.labels(self.name, "ok").inc()
        WORKER_ROUND_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return more
