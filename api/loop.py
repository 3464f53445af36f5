"""The one assembly of the closed loop: every stage built and wired here, for ``serve``,
``replay`` and the benches alike.

::

    ingest queue ──points──▶ detect (engine) ──bands, flags──▶ incidents (pipeline) ──▶ notify (outbox)
         │                                                  ▲    │  ▲
         └──alerts, changes, events──────────────────────────┘    │  └── hypotheses ── diagnose (runner)
                                                                  └──── incidents changed ──┘
    slo (engine) ──burn-rate alerts──▶ incidents        slo policy ──▶ backlog trackers

Stages never subscribe to each other: each exposes ``offer``/``request`` inputs and
``add_listener`` outputs, and :func:`assemble` connects them. A new stage (Resolve) is built
and connected here, once. ``serve`` runs the stages on their workers (:meth:`Loop.start`);
a replay drives the same objects with event time (see ``api/replay.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from api.problem_backlog import BacklogFiler
from core import retention
from core.model import Hypothesis
from core.settings import Settings
from core.store import Store
from core.topology import Topology
from core.worker import Worker
from detect import repository as detect_repository
from detect.engine import DetectionEngine
from detect.incidents.notify import Notifier
from detect.incidents.pipeline import IncidentPipeline, PipelineConfig
from diagnose.diagnoser import Diagnoser
from diagnose.runner import DiagnosisRunner
from ingest.queue import IngestQueue
from ingest.rates import WithoutRunningTotals
from ingest.span_metrics import SpanDeriver
from resolve.operations import OperationsGauges
from resolve.problems import ProblemConfig, ProblemManager
from resolve.remediation import Remediation
from slo.engine import PolicyHook, SloEngine, default_policy

__all__ = ["Loop", "assemble"]


@dataclass(slots=True)
class Loop:
    """The wired stages. ``queue`` and ``notifier`` exist only for a live server."""

    store: Store
    settings: Settings
    engine: DetectionEngine
    incidents: IncidentPipeline
    diagnoses: DiagnosisRunner
    slos: SloEngine
    queue: IngestQueue | None = None
    notifier: Notifier | None = None
    # --- Resolve: problems (grouped as incidents change), their backlog filer, /metrics gauges
    problems: ProblemManager | None = None
    backlog_filer: BacklogFiler | None = None
    operations: OperationsGauges | None = None
    # --- Traces: span-derived series and the learned call graph
    spans: SpanDeriver | None = None
    span_worker: Worker | None = None
    retention: Worker | None = None
    # --- Resolve: runbook plans, their execution and verification
    remediation: Remediation | None = None

    def start(self) -> None:
        """Run every stage on its worker (the server's wall-clock mode)."""
        if self.settings.detect_enabled:
            self.engine.start()
        self.incidents.start()
        self.diagnoses.start()
        if self.notifier is not None:
            self.notifier.start()
        self.slos.start(self.settings.slo_interval_s)
        # --- Resolve: problems and operational gauges
        if self.problems is not None:
            self.problems.start()
        if self.operations is not None:
            self.operations.start()
        if self.remediation is not None:
            self.remediation.start()
        # --- Traces
        if self.span_worker is not None:
            self.span_worker.start()
        if self.retention is not None:
            self.retention.start()

    def stop(self) -> None:
        """Commit what is queued, let each stage finish its round, stop the workers."""
        if self.span_worker is not None:  # before the queue closes: it submits through it
            self.span_worker.stop()
        if self.retention is not None:
            self.retention.stop()
        if self.queue is not None:
            self.queue.close()
        self.engine.stop()
        self.incidents.stop()
        self.diagnoses.stop()
        if self.notifier is not None:
            self.notifier.stop()
        self.slos.stop()
        # --- Resolve: problems and operational gauges
        if self.problems is not None:
            self.problems.stop()
        if self.operations is not None:
            self.operations.stop()
        if self.remediation is not None:
            self.remediation.stop()


def assemble(
    store: Store,
    settings: Settings,
    *,
    live: bool = True,
    topology: Topology | None = None,
    config: PipelineConfig | None = None,
    webhooks: Sequence[dict[str, str]] | None = None,
    policy: PolicyHook | None = None,
) -> Loop:
    """Build every stage over ``store`` and connect them (see the module docstring).

    ``live`` adds the ingest queue in front of the store and the notification worker; a
    replay writes to the store itself and sends nothing. ``topology``, ``config``,
    ``webhooks`` and ``policy`` override what the settings and the store would give.
    """
    engine = DetectionEngine(store, settings=settings)  # loads its snapshot (feedback needs it)
    incidents = IncidentPipeline(store, settings, config=config, topology=topology, webhooks=webhooks)
    diagnoser = Diagnoser(store, lambda: incidents.topology)  # the live topology, as it is uploaded
    diagnoses = DiagnosisRunner(diagnoser, incidents.set_hypotheses)
    slos = SloEngine(
        store,
        settings,
        alerts=incidents.offer_batch,
        policy=policy if policy is not None else default_policy(settings),
    )
    engine.add_listener(incidents.offer_detection)
    incidents.add_listener(diagnoses.request)
    loop = Loop(store, settings, engine, incidents, diagnoses, slos)
    # --- Resolve: recurring incidents become problems, filed as backlog items through the trackers
    loop.backlog_filer = BacklogFiler(store, settings)
    loop.problems = ProblemManager(store, ProblemConfig.from_settings(settings), filer=loop.backlog_filer)
    incidents.add_listener(loop.problems.request)
    loop.operations = OperationsGauges(store)
    # --- Resolve: runbooks planned as incidents open and diagnoses change; executed live only (a
    # replay records plans); SLO burn is injected here because slo comes after resolve. Off line
    # (replay, backfill) the clock is the pipeline's event time, for verify windows, limits and
    # the timeline of Resolve's transitions alike; a quiet incident waits for a pending verdict.
    if not live:
        incidents.clock = lambda: incidents.now
    loop.remediation = Remediation(
        store,
        settings,
        transition=incidents.transition,
        note=incidents.note,
        burning=lambda services: [s.slo for s in slos.last if s.service in services and s.alerts],
        execute=live,
        clock=lambda: incidents.clock(),  # the pipeline's: the wall clock live, event time off line
    )
    incidents.add_listener(loop.remediation.request)
    incidents.hold_resolve = loop.remediation.verifying
    deliver = diagnoses.deliver

    def deliver_and_plan(incident_id: str, hypotheses: Sequence[Hypothesis], at: datetime) -> object:
        found = deliver(incident_id, hypotheses, at)
        assert loop.remediation is not None
        loop.remediation.request([(incident_id, at)])
        return found

    diagnoses.deliver = deliver_and_plan
    if live:
        loop.queue = IngestQueue(
            store,
            max_rows=settings.queue_max_rows,
            commit_max_rows=settings.commit_max_rows,
            linger_s=settings.commit_linger_s,
            retry_after_s=settings.retry_after_s,
        )
        # detection scores counters' :rate series, never their raw running totals
        loop.queue.add_listener(
            WithoutRunningTotals(partial(detect_repository.cumulative_ids, store), engine.offer)
        )
        loop.queue.add_batch_listener(incidents.offer_batch)
        loop.notifier = Notifier(store, max_attempts=settings.notify_retry_max)
    # --- Traces: closed minutes of spans become series (through the queue when live, so
    # detection sees them as any ingest); new call edges refresh the incident stage's topology
    queue = loop.queue
    submit = (lambda batch: queue.submit_nowait(batch).result()) if queue is not None else store.write
    loop.spans = SpanDeriver(store, submit, grace_s=settings.span_metrics_grace_s)
    if topology is None:
        loop.spans.add_listener(incidents.refresh_topology)
    if queue is not None:
        worker = loop.span_worker = Worker(
            "span-metrics", loop.spans.step, poll_s=settings.span_metrics_poll_s
        )
        queue.add_batch_listener(lambda batch: worker.wake() if batch.spans is not None else None)
        ages = {"spans": settings.retention_spans_s, "logs": settings.retention_logs_s,
                "events": settings.retention_events_s}  # fmt: skip
        loop.retention = Worker(
            "retention", lambda: retention.enforce(store, ages), poll_s=settings.retention_interval_s,
            drain_on_stop=False, wait_first=False,
        )  # fmt: skip
    return loop
