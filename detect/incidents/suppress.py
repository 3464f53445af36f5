"""Suppression: silences, maintenance windows and deploy grace periods.

Suppressed alerts are kept and annotated, never dropped: they stay in the store for
analysis and show why they did not page.

- **Silences** use Alertmanager's matcher semantics (``=``, ``!=``, ``=~``, ``!~``, regexes
  anchored at both ends, a missing label reads as ``""``) between ``starts_at`` and ``ends_at``.
- **Maintenance windows** cover services, one-off or repeating daily/weekly.
- **Deploy awareness**: an alert on a service that changed within ``deploy_window`` is
  annotated with the change and held for ``grace`` (restarts and warm-up are expected noise);
  still firing after that, it goes on as usual. Consumer-facing SLO alerts are never held.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from core.errors import SchemaError
from core.model import Alert, Change, MaintenanceWindow, Silence, SilenceMatcher
from core.selectors import Matcher

__all__ = [
    "active_window",
    "deploy_for",
    "matcher_of",
    "silence_matches",
    "silencing",
    "validate_silence",
    "validate_window",
    "window_active",
]


@lru_cache(maxsize=4096)
def matcher_of(m: SilenceMatcher) -> Matcher:
    """The label matcher a silence matcher stands for (regexes compiled, anchored by fullmatch)."""
    pattern = None
    if m.is_regex:
        try:
            pattern = re.compile(m.value)
        except re.error as exc:
            raise SchemaError("matchers", f"bad regex {m.value!r}: {exc}") from exc
    return Matcher(m.name, m.op, m.value, pattern)


def alert_labels(alert: Alert) -> dict[str, str]:
    """Labels a silence or rule sees: the alert's labels plus ``alertname``, ``service``, ``severity``."""
    labels = dict(alert.labels)
    labels.setdefault("alertname", alert.name)
    if alert.service:
        labels.setdefault("service", alert.service)
    if alert.severity:
        labels.setdefault("severity", alert.severity)
    return labels


def silence_matches(silence: Silence, labels: Mapping[str, str], at: datetime) -> bool:
    """Whether the silence is in force at ``at`` and every matcher holds.

    >>> from datetime import datetime as dt
    >>> s = Silence("s1", (SilenceMatcher("service", "pay.*", is_regex=True),
    ...                    SilenceMatcher("severity", "info", is_equal=False)),
    ...             dt(2026, 1, 1), dt(2026, 1, 2), "alice", "upgrade")
    >>> silence_matches(s, {"service": "payments", "severity": "critical"}, dt(2026, 1, 1, 6))
    True
    >>> silence_matches(s, {"service": "xpayments", "severity": "critical"}, dt(2026, 1, 1, 6))
    False
    >>> silence_matches(s, {"service": "payments", "severity": "critical"}, dt(2026, 1, 3))
    False
    """
    if not silence.starts_at <= at < silence.ends_at:
        return False
    return all(matcher_of(m).matches(labels) for m in silence.matchers)


def silencing(silences: Iterable[Silence], alert: Alert, at: datetime) -> Silence | None:
    """The first silence that mutes ``alert`` at ``at``."""
    labels = alert_labels(alert)
    return next((s for s in silences if silence_matches(s, labels, at)), None)


def validate_silence(silence: Silence) -> None:
    """Reject what Alertmanager rejects: no matchers, bad regexes, end not after start,
    and matchers that match an empty label (they would silence everything)."""
    if not silence.matchers:
        raise SchemaError("matchers", "at least one matcher is required")
    if silence.ends_at <= silence.starts_at:
        raise SchemaError("endsAt", "must be after startsAt")
    compiled = [matcher_of(m) for m in silence.matchers]
    for i, m in enumerate(silence.matchers):
        if not m.name:
            raise SchemaError(f"matchers[{i}].name", "required")
    if all(c.matches({}) for c in compiled):
        raise SchemaError("matchers", "at least one matcher must not match the empty string")
    if not silence.created_by:
        raise SchemaError("createdBy", "required")
    if not silence.comment:
        raise SchemaError("comment", "required")


_RECURRENCE = {"": None, "daily": timedelta(days=1), "weekly": timedelta(days=7)}


def validate_window(window: MaintenanceWindow) -> None:
    """Check a maintenance window: services, a positive span, a known recurrence."""
    if not window.services or not all(window.services):
        raise SchemaError("services", "at least one service name is required")
    if window.ends_at <= window.starts_at:
        raise SchemaError("end", "must be after start")
    if window.recurrence not in _RECURRENCE:
        raise SchemaError("recurrence", "expected '', 'daily' or 'weekly'")
    period = _RECURRENCE[window.recurrence]
    if period is not None and window.ends_at - window.starts_at >= period:
        raise SchemaError("end", "a repeating window must be shorter than its period")


def window_active(window: MaintenanceWindow, at: datetime) -> bool:
    """Whether the window (or one of its repeats) covers ``at``.

    >>> from datetime import datetime as dt
    >>> w = MaintenanceWindow("m", ("db",), dt(2026, 1, 4, 2), dt(2026, 1, 4, 4), recurrence="weekly")
    >>> window_active(w, dt(2026, 1, 11, 3)), window_active(w, dt(2026, 1, 12, 3)), window_active(w, dt(2026, 1, 4, 1))
    (True, False, False)
    """
    if at < window.starts_at or (window.until is not None and at >= window.until):
        return False
    period = _RECURRENCE.get(window.recurrence)
    if period is None:
        return at < window.ends_at
    offset = (at - window.starts_at) % period
    return offset < window.ends_at - window.starts_at


def active_window(
    windows: Iterable[MaintenanceWindow], service: str, at: datetime
) -> MaintenanceWindow | None:
    """The first maintenance window covering ``service`` at ``at``."""
    return next((w for w in windows if service in w.services and window_active(w, at)), None)


def deploy_for(changes: Sequence[Change], service: str, at: datetime, window: timedelta) -> Change | None:
    """The latest change on ``service`` within ``window`` before ``at`` (None if none)."""
    best: Change | None = None
    for c in changes:
        if c.service == service and c.ts <= at and at - c.ts <= window and (best is None or c.ts > best.ts):
            best = c
    return best


def never_held(alert: Alert, consumer_facing: bool) -> bool:
    """SLO alerts on consumer-facing services always go straight through (never held for a deploy)."""
    return consumer_facing and (alert.source == "slo" or "slo" in alert.labels)


def window_from_event(data: Any, event_id: str, source: str) -> MaintenanceWindow:
    """A maintenance window from a ``dev.opsloop.maintenance.scheduled`` CloudEvent's data."""
    if not isinstance(data, Mapping):
        raise SchemaError("data", "expected an object")
    services = data.get("services") or ([data["service"]] if data.get("service") else [])
    try:
        start = datetime.fromisoformat(str(data["start"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(data["end"]).replace("Z", "+00:00"))
    except (KeyError, ValueError) as exc:
        raise SchemaError("data.start", "RFC 3339 times required") from exc
    window = MaintenanceWindow(
        id=f"ce:{source}:{event_id}",
        services=tuple(str(s) for s in services),
        starts_at=start.astimezone(UTC).replace(tzinfo=None) if start.tzinfo else start,
        ends_at=end.astimezone(UTC).replace(tzinfo=None) if end.tzinfo else end,
        reason=str(data.get("reason", "")),
        created_by=str(data.get("created_by", source)),
        recurrence=str(data.get("recurrence", "")),
        source="cloudevents",
    )
    validate_window(window)
    return window
