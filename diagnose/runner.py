"""Run diagnoses as incidents open and as evidence arrives, and hand the results on.

The loop's assembly (``api/loop.py``) subscribes :meth:`DiagnosisRunner.request` to the incident
pipeline, which reports which incidents changed and at what event time; the runner coalesces
those requests per incident (the latest wins), diagnoses each one with the data known at that
time and passes the hypotheses to ``deliver`` (the pipeline's ``set_hypotheses``). The server
runs it on a :class:`~core.worker.Worker`; a replay calls :meth:`run_pending` after each
pipeline round, so a replayed incident gets the diagnosis a live server would have given it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from core.model import Hypothesis
from core.telemetry import DIAGNOSES, DIAGNOSIS_SECONDS
from core.worker import Worker
from diagnose.diagnoser import Diagnoser, Diagnosis

__all__ = ["Deliver", "DiagnosisRunner"]

log = logging.getLogger(__name__)

#: Where a diagnosis goes: ``deliver(incident_id, hypotheses, as_of)``.
Deliver = Callable[[str, Sequence[Hypothesis], datetime], object]


class DiagnosisRunner:
    """Diagnose the incidents reported as changed; deliver the hypotheses (see the module docstring)."""

    def __init__(self, diagnoser: Diagnoser, deliver: Deliver) -> None:
        self.diagnoser = diagnoser
        self.deliver = deliver
        self._pending: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._worker: Worker | None = None

    def request(self, changed: list[tuple[str, datetime]]) -> None:
        """Queue incidents for (re)diagnosis; called from the pipeline's round, so it only records."""
        with self._lock:
            for incident_id, at in changed:
                prev = self._pending.get(incident_id)
                self._pending[incident_id] = at if prev is None or at > prev else prev

    def run_pending(self) -> list[Diagnosis]:
        """Diagnose every queued incident now and deliver the results (oldest request first)."""
        with self._lock:
            work = sorted(self._pending.items(), key=lambda kv: (kv[1], kv[0]))
            self._pending.clear()
        done = []
        for incident_id, at in work:
            try:
                result = self.diagnoser.diagnose(incident_id, as_of=at)
                self.deliver(incident_id, result.hypotheses, at)
            except Exception:  # one bad incident must not stop the others
                log.exception("diagnosis of %s failed", incident_id)
                DIAGNOSES.labels("failed").inc()
                continue
            DIAGNOSES.labels("ok").inc()
            DIAGNOSIS_SECONDS.observe(result.seconds)
            done.append(result)
        return done

    def start(self, poll_s: float = 2.0) -> None:
        """Diagnose on a worker every ``poll_s``: a burst of alerts settles into one run."""
        if self._worker is None:
            # a round that diagnosed something is followed at once by one that finds what
            # arrived meanwhile; an empty round waits for the next poll
            self._worker = Worker("diagnose", self.run_pending, poll_s=poll_s)
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish queued diagnoses and stop the worker."""
        if self._worker is not None:
            self._worker.stop(timeout)
