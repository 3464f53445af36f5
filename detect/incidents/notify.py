"""Outgoing incident notifications: CDEvents incident CloudEvents and Slack-compatible JSON.

The pipeline writes each message to the ``notifications`` outbox in the same transaction
as the incident change that caused it, so nothing is lost across a crash. ``Notifier``
delivers the outbox by HTTP POST with exponential back-off: a 2xx marks a row sent; a 429,
5xx or network error is retried (``recoverable``); another 4xx is dropped as ``failed``
(the receiver will never take it). After ``max_attempts`` the row is ``failed`` too.

CDEvents (spec v0.4, continuous-operations): ``dev.cdevents.incident.detected.0.2.0`` and
``dev.cdevents.incident.resolved.0.2.0``, sent as a structured CloudEvent whose ``data`` is
the CDEvent (context + subject). Escalations have no CDEvents type; they go out as
``dev.opsloop.incident.escalated.0.1.0`` with the same subject shape.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.errors import ActionError
from core.model import Incident
from core.settings import Settings
from core.store import Store
from core.telemetry import NOTIFICATIONS
from core.wire import iso_utc
from core.worker import Worker
from detect.incidents.repository import pending_notifications, record_delivery

__all__ = ["FORMATS", "Notifier", "cdevent", "render", "slack_message"]

#: Webhook payload formats ``render`` speaks.
FORMATS = ("cdevents", "slack")

log = logging.getLogger(__name__)

CDEVENTS_VERSION = "0.4.1"
_TYPES = {
    "incident.detected": "dev.cdevents.incident.detected.0.2.0",
    "incident.resolved": "dev.cdevents.incident.resolved.0.2.0",
    "incident.escalated": "dev.opsloop.incident.escalated.0.1.0",
}
_EMOJI = {"incident.detected": ":rotating_light:", "incident.resolved": ":white_check_mark:",
          "incident.escalated": ":sos:"}  # fmt: skip


def _iso(ts: datetime | None) -> str:
    return iso_utc(ts) if ts is not None else ""


def cdevent(event: str, incident: Incident, settings: Settings) -> dict[str, Any]:
    """The structured CloudEvent carrying the CDEvents incident event.

    >>> from core.model import IncidentStatus
    >>> inc = Incident("INC-1", "payments: errors high", IncidentStatus.OPEN, "P1", datetime(2026, 1, 1),
    ...                services=("payments",), origin_service="payments")
    >>> ce = cdevent("incident.detected", inc, Settings(public_url="http://ops"))
    >>> ce["type"], ce["data"]["subject"]["content"]["service"]["id"], ce["subject"]
    ('dev.cdevents.incident.detected.0.2.0', 'service/payments', 'INC-1')
    """
    ce_type = _TYPES[event]
    at = (
        incident.resolved_at if event == "incident.resolved" and incident.resolved_at else incident.updated_at
    )
    at = at or incident.opened_at
    event_id = f"{incident.id}-{event.split('.')[-1]}-{int(at.replace(tzinfo=UTC).timestamp())}"
    source = f"{settings.public_url.rstrip('/')}/api/v1/incidents"
    content: dict[str, Any] = {
        "description": incident.title,
        "environment": {"id": "production"},
        "service": {"id": f"service/{incident.origin_service or (incident.services or ('unknown',))[0]}"},
    }
    data = {
        "context": {"version": CDEVENTS_VERSION, "id": event_id, "source": source, "type": ce_type,
                    "timestamp": _iso(at)},
        "subject": {"id": incident.id, "source": source, "type": "incident", "content": content},
        "customData": {
            "priority": incident.priority, "status": incident.status.value, "services": list(incident.services),
            "team": incident.team, "major": incident.major, "alert_count": incident.alert_count,
            "url": f"{source}/{incident.id}", "reason": incident.priority_reason,
        },
        "customDataContentType": "application/json",
    }  # fmt: skip
    return {
        "specversion": "1.0", "id": event_id, "source": source, "type": ce_type, "subject": incident.id,
        "time": _iso(at), "datacontenttype": "application/json", "data": data,
    }  # fmt: skip


def slack_message(event: str, incident: Incident, settings: Settings) -> dict[str, Any]:
    """A Slack incoming-webhook message (``text`` plus Block Kit blocks; Mattermost reads it too).

    >>> from core.model import IncidentStatus
    >>> inc = Incident("INC-1", "db: latency high", IncidentStatus.OPEN, "P2", datetime(2026, 1, 1), team="dba")
    >>> slack_message("incident.detected", inc, Settings())["text"]
    ':rotating_light: [P2] INC-1 db: latency high (team dba, open)'
    """
    url = f"{settings.public_url.rstrip('/')}/api/v1/incidents/{incident.id}"
    text = (
        f"{_EMOJI[event]} [{incident.priority}] {incident.id} {incident.title} "
        f"(team {incident.team or 'unassigned'}, {incident.status.value})"
    )
    fields = [
        {"type": "mrkdwn", "text": f"*Priority*\n{incident.priority}{' (major)' if incident.major else ''}"},
        {"type": "mrkdwn", "text": f"*Team*\n{incident.team or 'unassigned'}"},
        {"type": "mrkdwn", "text": f"*Services*\n{', '.join(incident.services) or '-'}"},
        {"type": "mrkdwn", "text": f"*Alerts*\n{incident.alert_count}"},
    ]
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*\n<{url}|Open the incident>"}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": incident.priority_reason or event}]},
        ],
    }


def render(fmt: str, event: str, incident: Incident, settings: Settings) -> dict[str, Any]:
    """The payload for one webhook format: ``cdevents`` or ``slack``."""
    if fmt == "slack":
        return slack_message(event, incident, settings)
    if fmt == "cdevents":
        return cdevent(event, incident, settings)
    raise ActionError(f"unknown webhook format {fmt!r} (expected 'cdevents' or 'slack')")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Notifier:
    """Deliver the outbox: POST each pending row, retry with back-off, record the outcome."""

    def __init__(
        self,
        store: Store,
        *,
        max_attempts: int = 8,
        base_delay_s: float = 1.0,
        timeout_s: float = 5.0,
        poll_s: float = 0.5,
    ) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.poll_s = poll_s
        self._client = httpx.Client(timeout=timeout_s)
        # no drain on stop: undelivered rows stay in the outbox for the next start
        self._worker = Worker("notify", self._deliver_round, poll_s=poll_s, drain_on_stop=False)

    def deliver_due(self, now: datetime | None = None) -> int:
        """Try every due notification once; return how many were sent."""
        now = now or _now()
        with self.store.reader() as cur:
            rows = pending_notifications(cur, now)
        sent = 0
        for nid, _incident, _event, channel, target, payload, attempts in rows:
            content_type = "application/cloudevents+json" if channel == "cdevents" else "application/json"
            error, retry = "", False
            try:
                resp = self._client.post(
                    target, content=payload.encode(), headers={"content-type": content_type}
                )
                if 200 <= resp.status_code < 300:
                    status = "sent"
                else:
                    error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    retry = resp.status_code == 429 or resp.status_code >= 500
                    status = "pending" if retry else "failed"
            except httpx.HTTPError as exc:
                error, retry, status = f"{type(exc).__name__}: {exc}", True, "pending"
            attempts = int(attempts) + 1
            if status == "pending" and attempts >= self.max_attempts:
                status = "failed"
            delay = timedelta(seconds=self.base_delay_s * 2 ** (attempts - 1))
            NOTIFICATIONS.labels(
                channel, "sent" if status == "sent" else ("retry" if retry else "failed")
            ).inc()
            record_delivery(
                self.store,
                nid,
                status=status,
                attempts=attempts,
                next_attempt_at=now + delay,
                error=error or None,
                at=now,
            )
            sent += status == "sent"
            if error:
                log.warning("notification %s to %s: %s", nid, target, error)
        return sent

    def _deliver_round(self) -> None:
        """Deliver what is due; report no more work, so the next try waits ``poll_s``."""
        # deliver_due returns a count: a truthy step would make the worker re-run at once
        self.deliver_due()

    def start(self) -> None:
        """Deliver in a background thread until ``stop``."""
        self._worker.poll_s = self.poll_s  # as before, a poll_s set after construction counts
        self._worker.start()

    def stop(self) -> None:
        """Stop the thread (undelivered rows stay in the outbox for the next start)."""
        self._worker.stop(10)
        self._client.close()


def payload_of(row_payload: str) -> Any:
    """Decode a stored payload (for the API and tests)."""
    return json.loads(row_payload)
