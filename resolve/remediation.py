"""Resolve's worker: plan changed incidents, run the outbox, give verification verdicts.

The assembly (``api/loop.py``) subscribes :meth:`Remediation.request` to incidents that open or
change and to new diagnoses; one worker then runs :meth:`run_pending`: planning first, then
the executor (unless paused or replaying without ``execute``), then the verifier.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from core.model import IncidentStatus
from core.settings import Settings
from core.store import Store
from core.worker import Worker
from resolve import actions_repository as repo
from resolve.catalog import Catalog
from resolve.executor import Executor, ExecutorConfig
from resolve.planner import Planner
from resolve.problems_repository import incidents_changed_after
from resolve.verify import BurnCheck, Verifier

__all__ = ["Remediation"]

log = logging.getLogger(__name__)
#: plan states whose verdict is still to come (a queued plan may never run: replay, pause)
HOLDING = ("running", "verifying")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Remediation:
    """Planner, executor and verifier over one store, on one worker."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        transition: Callable[[str, IncidentStatus, str, str], object] | None = None,
        note: Callable[[str, str, str], object] | None = None,
        burning: BurnCheck | None = None,
        execute: bool = True,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        config = ExecutorConfig.from_settings(settings)
        self.catalog = Catalog(store, config.allowed_commands)
        self.planner = Planner(store, self.catalog, note=note, clock=clock)
        self.executor = Executor(store, self.catalog, config, transition=transition, note=note, execute=execute,
                                 clock=clock)  # fmt: skip
        self.verifier = Verifier(
            store, self.executor, burning=burning, transition=transition, note=note, clock=clock
        )
        self._pending: set[str] = set()
        # incidents updated since (a resolution by an operator reaches no listener): see run_pending
        self._watermark: datetime = incidents_changed_after(store, None)[1] or datetime.min
        self._lock = threading.Lock()
        self._worker: Worker | None = None

    def verifying(self, incident_id: str) -> bool:
        """Whether a plan of the incident awaits its verdict (running, or in its verify window).

        The incident pipeline asks before it resolves a quiet incident (``hold_resolve``): the
        verdict, not a quiet spell, decides whether an automated fix restored service.
        """
        return bool(repo.plans(self.store, incident=incident_id, status=HOLDING))

    def request(self, changed: list[tuple[str, datetime]]) -> None:
        """Queue incidents to plan (called from other stages' rounds: it only records)."""
        with self._lock:
            self._pending.update(i for i, _ in changed)
        if self._worker is not None:
            self._worker.wake()

    def run_pending(self) -> None:
        """Plan queued incidents, run due steps, give due verdicts."""
        with self._lock:
            work = sorted(self._pending)
            self._pending.clear()
        for incident_id in work:
            try:
                self.planner.plan(incident_id)
            except Exception:  # one bad incident must not stop the others
                log.exception("planning for %s failed", incident_id)
        self.executor.run_pending()
        self.verifier.run_pending()
        self.executor.run_pending()  # rollback steps a verdict queued
        updated, latest = incidents_changed_after(self.store, self._watermark)
        self._watermark = latest or self._watermark
        self.verifier.check_resolved([i for i, _ in updated])

    def start(self, poll_s: float = 1.0) -> None:
        """Run on a worker every ``poll_s`` (at once on start: catch up on the outbox)."""
        self.executor.stopping = False
        if self._worker is None:
            self._worker = Worker(
                "resolve", self.run_pending, poll_s=poll_s, drain_on_stop=False, wait_first=False
            )
            self.executor.wake_hook = self._worker.wake
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the running step finish and start no other (the outbox keeps the rest)."""
        self.executor.stopping = True
        if self._worker is not None:
            self._worker.stop(timeout)
