"""The live event feed behind ``GET /api/v1/stream``, read from the store so a client can resume.

Three append-only sources, each with a monotonically increasing DuckDB ``rowid``: the incident
timeline (opened, updated, resolved; lifecycle steps and actions are timeline entries), the
anomalies table, and SLO snapshots (only rows whose state differs from that SLO's previous one).
A position in the feed is the last rowid taken from each source, written ``t.a.s`` (``-1`` =
nothing yet); every event carries the position just after it, so ``Last-Event-ID`` resumes
exactly where the client stopped, across disconnects and server restarts.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.errors import SchemaError
from core.store import Store
from core.wire import iso_utc

__all__ = ["FeedEvent", "Position", "events_after", "latest_position"]


@dataclass(frozen=True, slots=True)
class Position:
    """The last rowid taken from the timeline, anomalies and SLO snapshots.

    >>> Position.parse("3.-1.7")
    Position(timeline=3, anomalies=-1, slo=7)
    >>> str(Position(3, -1, 7))
    '3.-1.7'
    """

    timeline: int = -1
    anomalies: int = -1
    slo: int = -1

    @classmethod
    def parse(cls, text: str, field: str = "Last-Event-ID") -> Position:
        """Read a position this server wrote; ``SchemaError`` naming ``field`` otherwise."""
        parts = text.strip().split(".")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 3 or min(values) < -1:
            raise SchemaError(field, f"not an event id this server issued: {text!r}")
        return cls(*values)

    def __str__(self) -> str:
        return f"{self.timeline}.{self.anomalies}.{self.slo}"


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event: its SSE ``event`` name, when it happened, its JSON body and its source rowid."""

    type: str
    at: datetime
    data: dict[str, Any]
    source: str
    rowid: int


def latest_position(store: Store) -> Position:
    """Where the feed stands now (a client that starts without ``Last-Event-ID`` gets only new events)."""
    row = store.query(
        "SELECT (SELECT coalesce(max(rowid), -1) FROM incident_timeline),"
        " (SELECT coalesce(max(rowid), -1) FROM anomalies),"
        " (SELECT coalesce(max(rowid), -1) FROM slo_snapshots)"
    )[0]
    return Position(int(row[0]), int(row[1]), int(row[2]))


def _timeline_type(kind: str, detail: dict[str, Any]) -> str:
    if kind == "opened":
        return "incident.opened"
    if kind == "status" and detail.get("to") in ("resolved", "closed"):
        return "incident.resolved"
    if "action" in kind or kind in ("runbook", "approval"):
        return "action"
    return "incident.updated"


def _timeline(store: Store, after: int, limit: int) -> list[FeedEvent]:
    rows = store.query(
        'SELECT rowid, incident_id, "at", kind, actor, text, detail FROM incident_timeline'
        " WHERE rowid > ? ORDER BY rowid LIMIT ?",
        [after, limit],
    )
    out = []
    for rowid, incident_id, at, kind, actor, text, detail in rows:
        extra = json.loads(detail or "{}")
        data = {
            "incident": incident_id,
            "at": iso_utc(at),
            "kind": kind,
            "actor": actor or "",
            "text": text or "",
        }
        if kind == "status":
            data.update({"from": extra.get("from"), "to": extra.get("to")})
        out.append(FeedEvent(_timeline_type(kind, extra), at, data, "timeline", int(rowid)))
    return out


def _anomalies(store: Store, after: int, limit: int) -> list[FeedEvent]:
    rows = store.query(
        "SELECT a.rowid, a.id, a.series_id, s.name, a.ts, a.value, a.probability, a.direction"
        " FROM anomalies a LEFT JOIN series s USING (series_id) WHERE a.rowid > ? ORDER BY a.rowid LIMIT ?",
        [after, limit],
    )
    return [
        FeedEvent(
            "anomaly",
            ts,
            {
                "id": aid,
                "series_id": str(sid),
                "metric": name or "",
                "at": iso_utc(ts),
                "value": value,
                "probability": prob,
                "direction": direction or "",
            },
            "anomalies",
            int(rowid),
        )
        for rowid, aid, sid, name, ts, value, prob, direction in rows
    ]


def _slo_changes(store: Store, after: int, limit: int) -> tuple[list[FeedEvent], int]:
    """SLO state changes after ``after``, and the last snapshot rowid examined (changes or not)."""
    rows = store.query(
        'SELECT r, slo, "at", state, prev, budget_remaining FROM ('
        '  SELECT rowid AS r, slo, "at", state, budget_remaining,'
        "         lag(state) OVER (PARTITION BY slo ORDER BY rowid) AS prev FROM slo_snapshots)"
        " WHERE r > ? ORDER BY r LIMIT ?",
        [after, limit],
    )
    events = [
        FeedEvent(
            "slo.state",
            at,
            {"slo": slo, "at": iso_utc(at), "state": state, "previous": prev, "budget_remaining": budget},
            "slo",
            int(r),
        )
        for r, slo, at, state, prev, budget in rows
        if prev != state
    ]
    return events, int(rows[-1][0]) if rows else after


def events_after(store: Store, position: Position, limit: int = 500) -> Iterator[tuple[FeedEvent, Position]]:
    """Events after ``position``, oldest first within each source, each with the position after it."""
    timeline = _timeline(store, position.timeline, limit)
    anomalies = _anomalies(store, position.anomalies, limit)
    slo, slo_seen = _slo_changes(store, position.slo, limit)
    current = {"timeline": position.timeline, "anomalies": position.anomalies, "slo": position.slo}
    # merge by time; heapq.merge keeps each source's own (rowid) order, which the position relies on
    for event in heapq.merge(timeline, anomalies, slo, key=lambda e: e.at):
        current[event.source] = event.rowid
        yield event, Position(current["timeline"], current["anomalies"], current["slo"])
    if slo_seen > current["slo"]:  # snapshots without a state change still move the position on
        current["slo"] = slo_seen
        yield FeedEvent("", datetime.min, {}, "slo", slo_seen), Position(**current)
