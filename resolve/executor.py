"""Execution with guard rails: approvals, limits, a kill switch, retries and an outbox.

Modes: a ``suggest`` plan is only shown; an ``approve`` plan's first step waits for
:meth:`Executor.approve` (or :meth:`Executor.reject`), which releases the whole plan; an
``autonomous`` plan is queued at once. Before a plan's first step runs, the limits are checked
(the runbook's ``max_runs_per_hour`` and ``max_concurrent``, the same two per service, and
the estate-wide blast-radius budget of automated steps per window); a plan over a limit is
``blocked`` and its incident notes why. Nothing runs while paused (``OPSLOOP_RESOLVE_PAUSED``
or ``POST /api/v1/resolve/pause``), and nothing runs in a replay unless asked.

A step is retried (tenacity, exponential back-off) only on a recoverable error: a timeout, a
refused connection, HTTP 429/5xx, or a command's exit status 75 (``EX_TEMPFAIL``); anything
else fails the step at once and stops the plan. ``command`` steps run with an argv list
(never a shell), a minimal environment and ``OPSLOOP_ACTION_ID``; ``http`` steps go only to
the runbook's hosts and carry ``Idempotency-Key: <action id>`` (a step interrupted by a
restart runs again with the same key, so receivers can tell a repeat); ``cdevent`` steps post
a structured CloudEvent to the configured sink.

After the last step the plan is ``verifying`` and the incident ``mitigated``; see
:mod:`resolve.verify`. Rollback steps run through this same path (phase ``rollback``).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.errors import ActionError, ConflictError, NotFoundError
from core.model import IncidentStatus
from core.settings import Settings
from core.store import Store
from resolve import actions_repository as repo
from resolve.audit import AuditLog
from resolve.catalog import Catalog
from resolve.runbooks import RenderedStep, allowed_commands_from

__all__ = ["Executor", "ExecutorConfig"]

log = logging.getLogger(__name__)
Transition = Callable[[str, IncidentStatus, str, str], object]
Note = Callable[[str, str, str], object]
ACTOR = "opsloop/resolve"
#: sysexits.h EX_TEMPFAIL: a command's way to say "try again"
EX_TEMPFAIL = 75


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """Guard rails shared by all runbooks (the runbooks carry their own limits)."""

    allowed_commands: frozenset[str] = frozenset()
    cdevents_sink: str = ""
    paused: bool = False
    service_max_runs_per_hour: int = 6
    service_max_concurrent: int = 1
    budget_actions: int = 20
    budget_window_s: float = 3600.0
    retry_wait_s: float = 1.0
    max_output_chars: int = 8192

    @classmethod
    def from_settings(cls, s: Settings) -> ExecutorConfig:
        return cls(allowed_commands_from(s.resolve_allowed_commands), s.resolve_cdevents_sink, s.resolve_paused,
                   s.resolve_service_max_runs_per_hour, s.resolve_service_max_concurrent, s.resolve_budget_actions,
                   s.resolve_budget_window_s, s.resolve_retry_wait_s)  # fmt: skip


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


class Executor:
    """Run queued steps from the outbox, one at a time, and record every outcome."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        config: ExecutorConfig | None = None,
        *,
        transition: Transition | None = None,
        note: Note | None = None,
        execute: bool = True,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.config = config or ExecutorConfig()
        self.transition = transition
        self.note = note
        self.execute = execute
        self.clock = clock
        self._lock = threading.Lock()
        self.wake_hook: Callable[[], None] | None = None
        #: set while the process shuts down: the step running finishes, no new one starts
        self.stopping = False

    # ------------------------------------------------------------------ kill switch

    @property
    def paused(self) -> bool:
        """Whether the kill switch is on (the stored switch wins over the environment)."""
        stored = repo.paused(self.store)
        return self.config.paused if stored is None else stored

    def pause(self, by: str) -> None:
        repo.set_paused(self.store, True, by)
        AuditLog(self.store).append("pause", "resolve", {"by": by})

    def resume(self, by: str) -> None:
        repo.set_paused(self.store, False, by)
        AuditLog(self.store).append("resume", "resolve", {"by": by})
        self.wake()

    # ------------------------------------------------------------------ approvals

    def approve(self, action_id: str, by: str) -> repo.ActionRow:
        """Release a plan waiting for approval; ``ConflictError`` unless it waits."""
        return self._decide(action_id, by, approve=True)

    def reject(self, action_id: str, by: str) -> repo.ActionRow:
        """Refuse a plan waiting for approval."""
        return self._decide(action_id, by, approve=False)

    def _decide(self, action_id: str, by: str, *, approve: bool) -> repo.ActionRow:
        with self._lock:
            found = repo.actions(self.store, ids=[action_id])
            if not found:
                raise NotFoundError(f"action {action_id!r} not found")
            a = found[0]
            if a.status != "pending_approval":
                raise ConflictError(f"action {action_id} is {a.status}, not pending_approval")
            now = self.clock()
            with self.store.transaction() as con:
                if approve:
                    repo.update_action(con, a.id, status="queued", approved_by=by)
                    repo.enqueue(con, a.id, now)
                    repo.update_plan(con, a.plan_id, status="queued", approved_by=by, updated_at=now)
                else:
                    repo.update_action(con, a.id, status="rejected", approved_by=by, ended_at=now)
                    repo.update_plan(con, a.plan_id, status="rejected", approved_by=by, finished_at=now,
                                     updated_at=now)  # fmt: skip
                AuditLog(con).append("approval" if approve else "rejection", a.incident_id,
                                     {"action": a.id, "plan": a.plan_id, "runbook": a.runbook, "by": by})  # fmt: skip
        self._note(a.incident_id, f"runbook {a.runbook} {'approved' if approve else 'rejected'} by {by}")
        self.wake()
        return repo.actions(self.store, ids=[action_id])[0]

    # ------------------------------------------------------------------ the worker

    def wake(self) -> None:
        """Ask whoever runs :meth:`run_pending` to run it soon (an approval, a resume)."""
        if self.wake_hook is not None:
            self.wake_hook()

    def run_pending(self) -> int:
        """Run every step the outbox holds (unless paused or not executing); return how many ran."""
        if not self.execute or self.paused:
            return 0
        ran = 0
        with self._lock:
            for a in repo.outbox(self.store):
                if self.stopping or self.paused:  # read again before every step
                    break
                ran += self._run(a)
        return ran

    def _blocked(self, a: repo.ActionRow, now: datetime) -> str:
        """Why the plan's first step may not start now ('' when it may)."""
        rb = next((r for r in self.catalog.runbooks() if r.name == a.runbook), None)
        hour = repo.hour_ago(now)
        if rb is not None:
            if repo.runs_since(self.store, hour, runbook=a.runbook) >= rb.spec.limits.max_runs_per_hour:
                return f"runbook {a.runbook} ran {rb.spec.limits.max_runs_per_hour} times in the last hour"
            if repo.running_plans(self.store, runbook=a.runbook) >= rb.spec.limits.max_concurrent:
                return f"runbook {a.runbook} already runs {rb.spec.limits.max_concurrent} at once (until verified)"
        if a.service:
            if repo.runs_since(self.store, hour, service=a.service) >= self.config.service_max_runs_per_hour:
                return f"service {a.service} had {self.config.service_max_runs_per_hour} automated runs in the last hour"
            if repo.running_plans(self.store, service=a.service) >= self.config.service_max_concurrent:
                return (
                    f"service {a.service} already has {self.config.service_max_concurrent} runs in progress"
                )
        return ""

    def _over_budget(self, now: datetime) -> str:
        since = now - timedelta(seconds=self.config.budget_window_s)
        if repo.automated_actions_since(self.store, since) >= self.config.budget_actions:
            return (f"blast-radius budget spent: {self.config.budget_actions} automated actions in "
                    f"{self.config.budget_window_s:.0f} s across the estate")  # fmt: skip
        return ""

    def _run(self, a: repo.ActionRow) -> int:
        now = self.clock()
        plan = repo.plan_by_id(self.store, a.plan_id)
        if plan is None or plan.status not in ("queued", "running", "rolling_back"):
            with self.store.transaction() as con:
                repo.update_action(con, a.id, status="skipped", ended_at=now)
                repo.dequeue(con, a.id)
            return 0
        first = a.step_index == 0 and a.phase == "run" and plan.status == "queued"
        reason = (self._blocked(a, now) if first else "") or self._over_budget(now)
        if reason:
            with self.store.transaction() as con:
                repo.update_action(con, a.id, status="blocked", error=reason, ended_at=now)
                repo.dequeue(con, a.id)
                repo.update_plan(con, plan.id, status="blocked", error=reason, finished_at=now)
                AuditLog(con).append(
                    "blocked", a.incident_id, {"action": a.id, "plan": plan.id, "reason": reason}
                )
            self._note(a.incident_id, f"runbook {a.runbook} blocked: {reason}")
            return 0
        if first:
            with self.store.transaction() as con:
                repo.update_plan(con, plan.id, status="running", started_at=now)
        repo.claim(self.store, a.id, now)
        step = RenderedStep.from_wire(a.rendered)
        attempts = 0
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(step.retries + 1),
                retry=retry_if_exception(lambda e: isinstance(e, ActionError) and e.recoverable),
                wait=wait_exponential(multiplier=self.config.retry_wait_s, max=30 * self.config.retry_wait_s),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    output = self._perform(step, a.id, plan.runbook)
            status, error = "succeeded", ""
        except ActionError as exc:
            status, error, output = "failed", exc.message, ""
        return self._finish(a, plan, status, error, _cap(output, self.config.max_output_chars), attempts)

    def _finish(self, a: repo.ActionRow, plan: repo.PlanRow, status: str, error: str, output: str,
                attempts: int) -> int:  # fmt: skip
        now = self.clock()
        steps = plan.steps if a.phase == "run" else plan.rollback
        nxt = a.step_index + 1 if status == "succeeded" and a.step_index + 1 < len(steps) else None
        plan_status = ""
        with self.store.transaction() as con:
            repo.update_action(con, a.id, status=status, error=error, output=output, ended_at=now,
                               attempts=a.attempts + attempts)  # fmt: skip
            repo.dequeue(con, a.id)
            if nxt is not None:
                s = steps[nxt]
                repo.insert_action(con, repo.ActionRow(repo.new_id("act"), plan.id, a.incident_id, a.runbook,
                                                       a.service, a.phase, nxt, s["name"], s["kind"], "queued", s, "",
                                                       0, "", plan.approved_by, now, None, None), enqueue=True)  # fmt: skip
            elif status == "failed":
                plan_status = "failed" if a.phase == "run" else "rollback_failed"
                repo.update_plan(con, plan.id, status=plan_status, error=error, finished_at=now)
            elif a.phase == "run":
                plan_status = "verifying"
                repo.update_plan(con, plan.id, status="verifying", mitigated_at=now,
                                 verify_until=now + timedelta(seconds=plan.verify_window_s))  # fmt: skip
            else:
                plan_status = "rolled_back"
                repo.update_plan(con, plan.id, status="rolled_back", finished_at=now)
            audit = AuditLog(con)
            audit.append("execution", a.incident_id, {"action": a.id, "plan": plan.id, "runbook": a.runbook,
                                                      "step": a.step, "phase": a.phase, "status": status,
                                                      "attempts": attempts, "error": error, **a.rendered})  # fmt: skip
            audit.append("output", a.id, {"output": output})
        if plan_status == "failed":
            self._note(a.incident_id, f"runbook {a.runbook} step {a.step} failed after {attempts} attempt(s): "
                                      f"{error}; plan stopped, escalated to the on-call")  # fmt: skip
        elif plan_status == "verifying":
            self._note(a.incident_id, f"runbook {a.runbook} ran every step; verifying restoration for "
                                      f"{plan.verify_window_s:.0f} s")  # fmt: skip
            self._transition(a.incident_id, IncidentStatus.MITIGATED, f"runbook {a.runbook} applied")
        elif plan_status == "rolled_back":
            self._note(a.incident_id, f"runbook {a.runbook} rolled back; escalated to the on-call")
        elif plan_status == "rollback_failed":
            self._note(
                a.incident_id, f"runbook {a.runbook} rollback step {a.step} failed: {error}; escalated"
            )
        return 1

    def start_rollback(self, plan: repo.PlanRow, reason: str) -> None:
        """Queue a plan's rollback steps (verification failed), or close it as failed if it has none."""
        now = self.clock()
        with self.store.transaction() as con:
            if plan.rollback:
                s = plan.rollback[0]
                repo.update_plan(con, plan.id, status="rolling_back", error=reason)
                repo.insert_action(con, repo.ActionRow(repo.new_id("act"), plan.id, plan.incident_id, plan.runbook,
                                                       plan.service, "rollback", 0, s["name"], s["kind"], "queued",
                                                       s, "", 0, "", plan.approved_by, now, None, None),
                                   enqueue=True)  # fmt: skip
            else:
                repo.update_plan(con, plan.id, status="failed", error=reason, finished_at=now)
            AuditLog(con).append("rollback", plan.incident_id, {"plan": plan.id, "runbook": plan.runbook,
                                                                "reason": reason, "steps": len(plan.rollback)})  # fmt: skip
        self.wake()

    # ------------------------------------------------------------------ step kinds

    def _perform(self, step: RenderedStep, action_id: str, runbook: str) -> str:
        if step.kind == "command":
            return self._command(step, action_id)
        if step.kind == "http":
            rb = next((r for r in self.catalog.runbooks() if r.name == runbook), None)
            hosts = rb.spec.allowed_hosts if rb is not None else frozenset()
            return self._http(step, action_id, hosts)
        return self._cdevent(step, action_id)

    def _command(self, step: RenderedStep, action_id: str) -> str:
        exe = step.argv[0] if step.argv else ""
        if exe not in self.config.allowed_commands:  # checked at load, and again here: the list may shrink
            raise ActionError(f"{exe!r} is not on OPSLOOP_RESOLVE_ALLOWED_COMMANDS", recoverable=False)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OPSLOOP_ACTION_ID": action_id}
        try:
            done = subprocess.run(list(step.argv), shell=False, capture_output=True, timeout=step.timeout_s,
                                  env=env, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise ActionError(f"{exe} timed out after {step.timeout_s:g} s", recoverable=True) from exc
        except OSError as exc:
            raise ActionError(f"{exe} could not start: {exc}", recoverable=False) from exc
        out = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
        if done.returncode != 0:
            raise ActionError(f"{exe} exited {done.returncode}: {out[-500:]}",
                              recoverable=done.returncode == EX_TEMPFAIL)  # fmt: skip
        return out

    def _http(self, step: RenderedStep, action_id: str, hosts: Iterable[str]) -> str:
        req = step.request
        host = urlsplit(str(req["url"])).hostname
        if host not in set(hosts):
            raise ActionError(f"host {host!r} is not one the runbook names", recoverable=False)
        headers = {**dict(req.get("headers") or {}), "Idempotency-Key": action_id}
        return self._send(str(req["method"]), str(req["url"]), step.timeout_s, headers=headers,
                          json_body=req.get("json"))  # fmt: skip

    def _cdevent(self, step: RenderedStep, action_id: str) -> str:
        if not self.config.cdevents_sink:
            raise ActionError(
                "no CDEvents sink configured (OPSLOOP_RESOLVE_CDEVENTS_SINK)", recoverable=False
            )
        req = step.request
        event = CloudEvent({"type": req["type"], "source": "/opsloop/resolve", "subject": req["subject"],
                            "id": action_id}, {"subject": {"id": req["subject"], "content": req.get("data", {})}})  # fmt: skip
        message = to_structured_event(event)
        return self._send(
            "POST",
            self.config.cdevents_sink,
            step.timeout_s,
            headers=dict(message.headers),
            content=message.body,
        )

    @staticmethod
    def _send(method: str, url: str, timeout_s: float, *, headers: dict[str, str], json_body: Any = None,
              content: bytes | None = None) -> str:  # fmt: skip
        try:
            with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
                resp = (client.request(method, url, headers=headers, content=content) if content is not None
                        else client.request(method, url, headers=headers, json=json_body))  # fmt: skip
        except httpx.TimeoutException as exc:
            raise ActionError(f"{method} {url} timed out after {timeout_s:g} s", recoverable=True) from exc
        except httpx.TransportError as exc:
            raise ActionError(f"{method} {url} failed: {exc}", recoverable=True) from exc
        text = f"HTTP {resp.status_code} {resp.text}"
        if resp.status_code >= 400:
            raise ActionError(f"{method} {url} answered {text[:500]}",
                              recoverable=resp.status_code == 429 or resp.status_code >= 500)  # fmt: skip
        return text

    # ------------------------------------------------------------------ incident hooks

    def _note(self, incident_id: str, text: str) -> None:
        if self.note is None:
            return
        try:
            self.note(incident_id, ACTOR, text)
        except Exception:
            log.warning("could not note %s on %s", text, incident_id)

    def _transition(self, incident_id: str, status: IncidentStatus, text: str) -> None:
        if self.transition is None:
            return
        try:
            self.transition(incident_id, status, ACTOR, text)
        except Exception:
            log.info("incident %s did not move to %s", incident_id, status.value)
