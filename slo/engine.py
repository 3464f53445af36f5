"""The SLO engine: evaluate on a schedule, raise burn-rate alerts, apply the error-budget policy.

Each evaluation (``evaluate_at``) computes every SLO's status, appends the snapshots,
turns the burn-rate tiers that start or stop firing into alerts for the incident pipeline
(one alert per SLO and tier: ``source="slo"``, ``severity`` ``page`` or ``ticket``, labels
``slo``, ``service``, ``sloth_severity``), then lets the error-budget policy create,
update or close backlog items and deliver them to the configured trackers.

The server runs it every ``OPSLOOP_SLO_INTERVAL_S`` on the wall clock; a replay calls
``evaluate_at`` at event times, so both follow the same path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from core.batch import AlertCommand, WriteBatch
from core.model import BudgetStatus, ExternalAlert, ExternalAlertStatus
from core.settings import Settings
from core.store import Store
from core.worker import Worker
from detect.incidents.repository import load_windows
from slo.evaluate import EvaluationConfig, SliceCache, save_snapshots
from slo.repository import load_specs, save_specs
from slo.spec import SloSpec, load_openslo

__all__ = ["SloEngine", "default_policy"]

log = logging.getLogger(__name__)

AlertSink = Callable[[WriteBatch], None]
PolicyHook = Callable[[Store, Sequence[BudgetStatus], Sequence[SloSpec], datetime], Any]


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def default_policy(settings: Settings) -> PolicyHook:
    """The error-budget policy, delivering to the trackers ``settings`` configure."""
    from slo.policy import policy_hook

    return policy_hook(settings)


class SloEngine:
    """Evaluate stored SLOs, feed their burn-rate alerts to ``alerts``, call ``policy``."""

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        alerts: AlertSink | None = None,
        policy: PolicyHook | None = None,
        config: EvaluationConfig | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.alerts = alerts
        self.policy = policy
        self.config = config or EvaluationConfig.default()
        self.clock = clock
        self._specs: list[SloSpec] | None = None
        self._firing: dict[tuple[str, str], datetime] = {}  # (slo, tier) -> since
        self._lock = threading.Lock()
        self._worker: Worker | None = None
        self.last: list[BudgetStatus] = []
        self._cache = SliceCache()
        #: the policy runs when a state changes, else at most this often (it reads incidents)
        self.policy_every = timedelta(minutes=15)
        self._policy_at: datetime | None = None
        self._states: dict[str, str] = {}

    @property
    def specs(self) -> list[SloSpec]:
        """The stored SLOs (read once, refreshed by ``load``)."""
        if self._specs is None:
            self._specs = load_specs(self.store)
        return self._specs

    def load(self, document: str | bytes | Any, now: datetime | None = None) -> list[SloSpec]:
        """Validate OpenSLO documents (YAML/JSON text or parsed) and store their SLOs."""
        text = document.decode() if isinstance(document, bytes) else document
        specs = load_openslo(text)
        with self._lock:
            save_specs(self.store, specs, now or _utcnow())
            self._specs = None
        return specs

    def evaluate_at(self, at: datetime) -> list[BudgetStatus]:
        """Evaluate every SLO at ``at``; snapshot, alert and apply the policy."""
        with self._lock:
            specs = self.specs
            if not specs:
                return []
            statuses = self._cache.statuses(self.store, specs, at, self.config, load_windows(self.store))
            save_snapshots(self.store, statuses)
            self._raise_alerts(statuses, at)
            due = self._policy_at is None or at - self._policy_at >= self.policy_every or at < self._policy_at
            changed = any(s.state.value != self._states.get(s.slo) for s in statuses)
            if self.policy is not None and (due or changed):
                self.policy(self.store, statuses, specs, at)
                self._policy_at = at
            self._states = {s.slo: s.state.value for s in statuses}
            self.last = statuses
            return statuses

    def _raise_alerts(self, statuses: Sequence[BudgetStatus], at: datetime) -> None:
        commands: list[AlertCommand] = []
        for status in statuses:
            for tier in ("page", "ticket"):
                key = (status.slo, tier)
                firing = tier in status.alerts
                since = self._firing.get(key)
                if firing == (since is not None):
                    continue
                if firing:
                    self._firing[key] = at
                    since = at
                else:
                    self._firing.pop(key, None)
                assert since is not None
                burn = ", ".join(f"{w} {r:.1f}x" for w, r in status.burn_rates.items() if r >= 1.0)
                commands.append(
                    AlertCommand(
                        "upsert",
                        ExternalAlert(
                            id=f"slo:{status.slo}:{tier}:{since.isoformat()}",
                            source="slo",
                            dedup_key=f"{status.slo}:{tier}",
                            status=ExternalAlertStatus.FIRING if firing else ExternalAlertStatus.RESOLVED,
                            name=f"{status.slo} error budget burn ({tier})",
                            starts_at=since,
                            severity=tier,
                            summary=f"{status.slo}: {status.budget_remaining:.1%} of the budget left; burn {burn or '-'}",
                            service=status.service,
                            fingerprint=f"{status.slo}:{tier}",
                            labels={"slo": status.slo, "service": status.service, "sloth_severity": tier},
                            ends_at=None if firing else at,
                            updated_at=at,
                        ),
                    )
                )
        if commands and self.alerts is not None:
            self.alerts(WriteBatch(source="slo", alerts=commands))

    # ------------------------------------------------------------------ worker

    def start(self, interval_s: float) -> None:
        """Evaluate every ``interval_s`` seconds on the wall clock, in a thread."""
        if self._worker is None:
            # no drain on stop: an evaluation is a schedule tick, not queued work
            self._worker = Worker("slo", self._tick, poll_s=interval_s, drain_on_stop=False)
        self._worker.start()

    def _tick(self) -> None:
        """Evaluate now; report no more work, so the next tick waits ``interval_s``."""
        # evaluate_at returns the statuses: a truthy step would make the worker re-run at once
        self.evaluate_at(self.clock())

    def stop(self) -> None:
        """Stop the thread."""
        if self._worker is not None:
            self._worker.stop(30)
