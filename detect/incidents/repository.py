"""SQL for alerts, incidents, timelines, silences, maintenance windows and the notification outbox."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import duckdb

from core.errors import NotFoundError
from core.model import (
    Alert,
    AlertStatus,
    Hypothesis,
    HypothesisKind,
    Incident,
    IncidentStatus,
    MaintenanceWindow,
    Silence,
    SilenceMatcher,
    TimelineEntry,
)
from core.store import Store

__all__ = [
    "Notification",
    "alerts_of",
    "count_incidents",
    "diagnosis_note",
    "incident_by_id",
    "incident_seq",
    "list_incidents",
    "load_live_alerts",
    "load_open_incidents",
    "load_silences",
    "load_windows",
    "next_incident_seq",
    "pending_notifications",
    "record_delivery",
    "resolved_incidents_before",
    "save_hypotheses",
    "save_round",
    "timeline_of",
]

_ALERT_COLS = (
    "id, fingerprint, name, status, starts_at, ends_at, last_seen, service, severity, source, labels, "
    "annotations, incident_id, suppressed_by, inhibited_by, change_id, held_until, flapping, transitions, "
    "value, score"
)
_INCIDENT_COLS = (
    "id, title, status, priority, opened_at, services, team, major, alert_count, resolved_at, hypotheses, "
    "priority_reason, origin_service, assignee, acknowledged_at, mitigated_at, closed_at, escalated_at, "
    "updated_at, change_ids"
)


class Notification:
    """One outgoing message waiting in the outbox (delivered, with retry, by ``detect.incidents.notify``)."""

    __slots__ = ("channel", "event", "id", "incident_id", "payload", "target")

    def __init__(
        self, id: str, incident_id: str, event: str, channel: str, target: str, payload: Any
    ) -> None:
        self.id, self.incident_id, self.event = id, incident_id, event
        self.channel, self.target, self.payload = channel, target, payload


def _alert_row(a: Alert, now: datetime) -> tuple[Any, ...]:
    return (
        a.id, a.fingerprint, a.name, a.status.value, a.starts_at, a.ends_at, a.last_seen, a.service,
        a.severity, a.source, json.dumps(dict(a.labels)), json.dumps(dict(a.annotations)), a.incident_id,
        a.suppressed_by, a.inhibited_by, a.change_id, a.held_until, a.flapping, a.transitions, a.value,
        a.score, now,
    )  # fmt: skip


def _incident_row(i: Incident, seq: int) -> tuple[Any, ...]:
    hyps = [
        {"rank": h.rank, "service": h.service, "kind": h.kind.value, "score": h.score,
         "evidence": dict(h.evidence), "component": h.component, "recommendation": h.recommendation}
        for h in i.hypotheses
    ]  # fmt: skip
    return (
        i.id, i.title, i.status.value, i.priority, i.priority_reason, i.opened_at, i.acknowledged_at,
        i.mitigated_at, i.resolved_at, i.closed_at, i.escalated_at, list(i.services), i.team, i.assignee,
        i.major, i.alert_count, i.origin_service, list(i.change_ids), json.dumps(hyps), i.updated_at, seq,
    )  # fmt: skip


def save_round(
    store: Store,
    alerts: Sequence[Alert],
    incidents: Sequence[tuple[Incident, int]],
    timeline: Sequence[tuple[str, int, TimelineEntry]],
    notifications: Sequence[Notification],
    now: datetime,
) -> None:
    """Persist one processing round atomically: alert and incident upserts, timeline, outbox."""
    if not (alerts or incidents or timeline or notifications):
        return
    with store.transaction() as con:
        if alerts:
            marks = "(" + ", ".join(["?"] * 22) + ")"
            rows = [_alert_row(a, now) for a in alerts]
            for start in range(0, len(rows), 500):
                chunk = rows[start : start + 500]
                con.execute(
                    "INSERT OR REPLACE INTO alerts VALUES " + ", ".join([marks] * len(chunk)),
                    [v for r in chunk for v in r],
                )
        if incidents:
            marks = "(" + ", ".join(["?"] * 21) + ")"
            con.execute(
                "INSERT OR REPLACE INTO incidents VALUES " + ", ".join([marks] * len(incidents)),
                [v for inc, seq in incidents for v in _incident_row(inc, seq)],
            )
        if timeline:
            con.executemany(
                "INSERT INTO incident_timeline VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(iid, seq, e.at, e.kind, e.actor, e.text, json.dumps(dict(e.detail), default=str))
                 for iid, seq, e in timeline],
            )  # fmt: skip
        if notifications:
            con.executemany(
                "INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, NULL, ?, NULL)",
                [(n.id, n.incident_id, n.event, n.channel, n.target, json.dumps(n.payload, default=str), now, now)
                 for n in notifications],
            )  # fmt: skip


def _alert(row: tuple[Any, ...]) -> Alert:
    (id_, fp, name, status, starts, ends, seen, service, severity, source, labels, annotations, incident,
     suppressed, inhibited, change, held, flapping, transitions, value, score) = row  # fmt: skip
    return Alert(
        id=id_, fingerprint=fp, name=name or "", status=AlertStatus(status), starts_at=starts, service=service or "",
        severity=severity or "", source=source or "", labels=json.loads(labels or "{}"),
        annotations=json.loads(annotations or "{}"), ends_at=ends, last_seen=seen, incident_id=incident or "",
        suppressed_by=suppressed or "", inhibited_by=inhibited or "", change_id=change or "", held_until=held,
        flapping=bool(flapping), transitions=int(transitions or 0), value=value, score=score,
    )  # fmt: skip


def _incident(row: tuple[Any, ...]) -> Incident:
    (id_, title, status, priority, opened, services, team, major, count, resolved, hyps, reason, origin,
     assignee, acked, mitigated, closed, escalated, updated, changes) = row  # fmt: skip
    hypotheses = tuple(
        Hypothesis(
            rank=int(h["rank"]), service=str(h["service"]), kind=HypothesisKind(h["kind"]), score=float(h["score"]),
            evidence=h.get("evidence", {}), component=h.get("component", ""),
            recommendation=h.get("recommendation", ""),
        )
        for h in json.loads(hyps or "[]")
    )  # fmt: skip
    return Incident(
        id=id_, title=title or "", status=IncidentStatus(status), priority=priority or "", opened_at=opened,
        services=tuple(services or ()), team=team or "", major=bool(major), alert_count=int(count or 0),
        resolved_at=resolved, hypotheses=hypotheses, priority_reason=reason or "", origin_service=origin or "",
        assignee=assignee or "", acknowledged_at=acked, mitigated_at=mitigated, closed_at=closed,
        escalated_at=escalated, updated_at=updated, change_ids=tuple(changes or ()),
    )  # fmt: skip


def next_incident_seq(store: Store) -> int:
    """The sequence number the next incident gets (ids are ``INC-<seq>``)."""
    row = store.query("SELECT coalesce(max(seq), 0) + 1 FROM incidents")
    return int(row[0][0])


def load_open_incidents(store: Store) -> list[tuple[Incident, int]]:
    """Incidents not yet resolved or closed, with their sequence numbers (to rebuild state)."""
    rows = store.query(
        f"SELECT {_INCIDENT_COLS}, seq FROM incidents WHERE status IN ('open', 'acknowledged', 'mitigated')"
    )
    return [(_incident(r[:-1]), int(r[-1])) for r in rows]


def load_live_alerts(store: Store) -> list[Alert]:
    """Alerts still firing (to rebuild state after a restart)."""
    return [_alert(r) for r in store.query(f"SELECT {_ALERT_COLS} FROM alerts WHERE status = 'firing'")]


def _where(
    status: Sequence[str], service: str | None, priority: Sequence[str], since: datetime | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = ["TRUE"]
    params: list[Any] = []
    if status:
        clauses.append("status IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(status))
    if service:
        clauses.append("list_contains(services, ?)")
        params.append(service)
    if priority:
        clauses.append("priority IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(priority))
    if since is not None:
        clauses.append("opened_at >= ?")
        params.append(since)
    return " AND ".join(clauses), params


def list_incidents(
    store: Store,
    *,
    status: Sequence[str] = (),
    service: str | None = None,
    priority: Sequence[str] = (),
    since: datetime | None = None,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
) -> list[Incident]:
    """Incidents newest first; ``after`` is the (opened_at, id) of the last row already seen.

    Keyset pagination on (opened_at, id) stays stable while new incidents arrive.
    """
    where, params = _where(status, service, priority, since)
    if after is not None:
        where += " AND (opened_at, id) < (?, ?)"
        params += [after[0], after[1]]
    rows = store.query(
        f"SELECT {_INCIDENT_COLS} FROM incidents WHERE {where} ORDER BY opened_at DESC, id DESC LIMIT ?",
        [*params, limit],
    )
    return [_incident(r) for r in rows]


def count_incidents(
    store: Store, *, status: Sequence[str] = (), service: str | None = None, priority: Sequence[str] = (),
    since: datetime | None = None,
) -> int:  # fmt: skip
    """How many incidents match the filters."""
    where, params = _where(status, service, priority, since)
    return int(store.query(f"SELECT count(*) FROM incidents WHERE {where}", params)[0][0])


def incident_by_id(store: Store, incident_id: str) -> Incident | None:
    """One incident, or None."""
    rows = store.query(f"SELECT {_INCIDENT_COLS} FROM incidents WHERE id = ?", [incident_id])
    return _incident(rows[0]) if rows else None


def alerts_of(store: Store, incident_id: str) -> list[Alert]:
    """The alerts of an incident, oldest first."""
    rows = store.query(
        f"SELECT {_ALERT_COLS} FROM alerts WHERE incident_id = ? ORDER BY starts_at, id", [incident_id]
    )
    return [_alert(r) for r in rows]


def list_alerts(store: Store, *, status: str | None = None, limit: int = 200) -> list[Alert]:
    """Recent alerts, newest first."""
    where, params = ("status = ?", [status]) if status else ("TRUE", [])
    rows = store.query(
        f"SELECT {_ALERT_COLS} FROM alerts WHERE {where} ORDER BY starts_at DESC, id LIMIT ?",
        [*params, limit],
    )
    return [_alert(r) for r in rows]


def timeline_of(store: Store, incident_id: str) -> list[TimelineEntry]:
    """An incident's timeline in time order (alerts before the opening they caused)."""
    rows = store.query(
        'SELECT "at", kind, actor, text, detail FROM incident_timeline WHERE incident_id = ? ORDER BY "at", seq',
        [incident_id],
    )
    return [
        TimelineEntry(at, kind, actor or "", text or "", json.loads(detail or "{}"))
        for at, kind, actor, text, detail in rows
    ]


def diagnosis_note(
    old: Sequence[Hypothesis], new: Sequence[Hypothesis], at: datetime
) -> TimelineEntry | None:
    """The timeline entry for a new diagnosis, when its leading cause differs from the last one."""
    if not new:
        return None
    top = new[0]
    if old and (old[0].service, old[0].kind) == (top.service, top.kind):
        return None
    return TimelineEntry(at, "diagnosis", "opsloop", f"leading cause: {top.service} ({top.kind.value}, {top.score:.2f})",
                         {"service": top.service, "kind": top.kind.value, "score": top.score})  # fmt: skip


def save_hypotheses(
    store: Store, incident_id: str, hypotheses: Sequence[Hypothesis], at: datetime
) -> Incident:
    """Store a diagnosis on an incident no pipeline holds in memory (CLI, resolved incidents)."""
    inc = incident_by_id(store, incident_id)
    if inc is None:
        raise NotFoundError(f"incident {incident_id!r} not found")
    note = diagnosis_note(inc.hypotheses, hypotheses, at)
    new = replace(inc, hypotheses=tuple(hypotheses))
    seq = int(store.query("SELECT seq FROM incidents WHERE id = ?", [incident_id])[0][0])
    timeline = [(incident_id, timeline_length(store, incident_id), note)] if note is not None else []
    save_round(store, [], [(new, seq)], timeline, [], at)
    return new


def timeline_length(store: Store, incident_id: str) -> int:
    """Entries in an incident's timeline so far."""
    return int(
        store.query("SELECT count(*) FROM incident_timeline WHERE incident_id = ?", [incident_id])[0][0]
    )


# ------------------------------------------------------------------ silences and maintenance windows


def save_silence(store: Store, s: Silence) -> None:
    """Insert or replace a silence."""
    matchers = [
        {"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal} for m in s.matchers
    ]
    with store.transaction() as con:
        con.execute(
            "INSERT OR REPLACE INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)",
            [s.id, json.dumps(matchers), s.starts_at, s.ends_at, s.created_by, s.comment, s.updated_at],
        )


def load_silences(store: Store) -> list[Silence]:
    """Every silence (expired ones too: they are history)."""
    rows = store.query(
        "SELECT id, matchers, starts_at, ends_at, created_by, comment, updated_at FROM silences"
    )
    out = []
    for id_, matchers, start, end, by, comment, updated in rows:
        ms = tuple(
            SilenceMatcher(m["name"], m["value"], bool(m.get("isRegex", False)), bool(m.get("isEqual", True)))
            for m in json.loads(matchers)
        )
        out.append(Silence(id_, ms, start, end, by or "", comment or "", updated))
    return out


def save_window(store: Store, w: MaintenanceWindow, now: datetime) -> None:
    """Insert or replace a maintenance window."""
    with store.transaction() as con:
        con.execute(
            "INSERT OR REPLACE INTO maintenance_windows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [w.id, list(w.services), w.starts_at, w.ends_at, w.reason, w.created_by, w.recurrence, w.until,
             w.source, now],
        )  # fmt: skip


def delete_window(store: Store, window_id: str) -> bool:
    """Delete a maintenance window; False when there was none."""
    with store.transaction() as con:
        rows = con.execute(
            "DELETE FROM maintenance_windows WHERE id = ? RETURNING id", [window_id]
        ).fetchall()
    return bool(rows)


def load_windows(store: Store) -> list[MaintenanceWindow]:
    """Every maintenance window."""
    rows = store.query(
        'SELECT id, services, starts_at, ends_at, reason, created_by, recurrence, "until", source '
        "FROM maintenance_windows ORDER BY starts_at, id"
    )
    return [
        MaintenanceWindow(i, tuple(sv), st, en, r or "", by or "", rec or "", un, src or "api")
        for i, sv, st, en, r, by, rec, un, src in rows
    ]


def pending_notifications(
    con: duckdb.DuckDBPyConnection, now: datetime, limit: int = 100
) -> list[tuple[Any, ...]]:
    """Outbox rows due for a (re)try."""
    return con.execute(
        "SELECT id, incident_id, event, channel, target, payload, attempts FROM notifications "
        "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY created_at, id LIMIT ?",
        [now, limit],
    ).fetchall()


def alert_memberships(store: Store) -> list[tuple[str, str, datetime, str]]:
    """Every alert as ``(id, service, starts_at, incident_id or '')`` (scoring a replay)."""
    rows = store.query("SELECT id, service, starts_at, coalesce(incident_id, '') FROM alerts")
    return [(str(a), str(s or ""), t, str(i)) for a, s, t, i in rows]


def incident_openings(store: Store) -> list[tuple[str, datetime, str]]:
    """Every incident as ``(id, opened_at, hypotheses JSON)`` (scoring a replay)."""
    return [
        (str(i), t, str(h or "[]"))
        for i, t, h in store.query("SELECT id, opened_at, hypotheses FROM incidents")
    ]


def incident_seq(store: Store, incident_id: str) -> int:
    """Return an incident's sequence number (0 when it is not stored)."""
    row = store.query("SELECT seq FROM incidents WHERE id = ?", [incident_id])
    return int(row[0][0]) if row else 0


def record_delivery(
    store: Store,
    notification_id: str,
    *,
    status: str,
    attempts: int,
    next_attempt_at: datetime,
    error: str | None,
    at: datetime,
) -> None:
    """Record one delivery attempt of an outbox row (``sent_at`` is set only when it was sent)."""
    with store.transaction() as con:
        con.execute(
            "UPDATE notifications SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, "
            "sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
            [status, attempts, next_attempt_at, error, status, at, notification_id],
        )


def resolved_incidents_before(
    store: Store, before: datetime, exclude: str, limit: int
) -> list[tuple[Any, ...]]:
    """Return incidents resolved by ``before`` other than ``exclude``, newest opened first.

    Rows: (id, services, opened_at, resolved_at, hypotheses, alert names, resolution text), the
    resolution being the last operator note or operator comment on a lifecycle step by ``before``.
    """
    return store.query(
        "SELECT i.id, i.services, i.opened_at, i.resolved_at, i.hypotheses, "
        "  (SELECT list(DISTINCT a.name) FROM alerts a WHERE a.incident_id = i.id), "
        "  (SELECT t.text FROM incident_timeline t WHERE t.incident_id = i.id AND t.at <= ? "
        "     AND (t.kind = 'note' OR (t.kind = 'status' AND t.actor <> 'opsloop' AND t.text NOT LIKE '% -> %')) "
        "   ORDER BY t.at DESC, t.seq DESC LIMIT 1) "
        "FROM incidents i WHERE i.id <> ? AND i.resolved_at IS NOT NULL AND i.resolved_at <= ? "
        "ORDER BY i.opened_at DESC LIMIT ?",
        [before, exclude, before, limit],
    )
