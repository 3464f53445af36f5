"""Run diagnoses as incidents open and as evidence arrives, and store them on the incidents.

The incident pipeline tells the runner which incidents changed and at what event time; the runner
coalesces those requests per incident (the latest wins) and diagnoses each one with the data
known at that time. The server runs it in a thread; a replay calls :meth:`run_pending` after each
pipeline round, so a replayed incident gets the diagnosis a live server would have given it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from core.telemetry import DIAGNOSES, DIAGNOSIS_SECONDS
from detect.incidents.pipeline import IncidentPipeline
from diagnose.diagnoser import Diagnoser, Diagnosis

__all__ = ["DiagnosisRunner"]

log = logging.getLogger(__name__)


class DiagnosisRunner:
    """Diagnose incidents the pipeline reports as changed; store the hypotheses through it."""

    def __init__(self, pipeline: IncidentPipeline, diagnoser: Diagnoser | None = None) -> None:
        self.pipeline = pipeline
        self.diagnoser = diagnoser or Diagnoser(pipeline.store, lambda: pipeline.topology)
        self._pending: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        pipeline.add_listener(self.request)

    def request(self, changed: list[tuple[str, datetime]]) -> None:
        """Queue incidents for (re)diagnosis; called by the pipeline, so it only records."""
        with self._lock:
            for incident_id, at in changed:
                prev = self._pending.get(incident_id)
                self._pending[incident_id] = at if prev is None or at > prev else prev

    def run_pending(self) -> list[Diagnosis]:
        """Diagnose every queued incident now and store the results (oldest request first)."""
        with self._lock:
            work = sorted(self._pending.items(), key=lambda kv: (kv[1], kv[0]))
            self._pending.clear()
        done = []
        for incident_id, at in work:
            try:
                result = self.diagnoser.diagnose(incident_id, as_of=at)
                self.pipeline.set_hypotheses(incident_id, result.hypotheses, at)
            except Exception:  # one bad incident must not stop the others
                log.exception("diagnosis of %s failed", incident_id)
                DIAGNOSES.labels("failed").inc()
                continue
            DIAGNOSES.labels("ok").inc()
            DIAGNOSIS_SECONDS.observe(result.seconds)
            done.append(result)
        return done

    def start(self, poll_s: float = 2.0) -> None:
        """Diagnose in a background thread every ``poll_s``: a burst of alerts settles into one run."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(poll_s):
                self.run_pending()
            self.run_pending()  # what was queued before stop

        self._thread = threading.Thread(target=run, name="opsloop-diagnose", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish queued diagnoses and stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
