"""SQL of Resolve's runbooks, plans, actions and outbox (migration 0009).

A *plan* is one runbook rendered for one incident; its steps become *actions* one at a time.
A step due to run sits in ``resolve_outbox`` in the same transaction that created its action, and
leaves it in the transaction that records its outcome and enqueues the next step, so a restart
finds exactly the steps still owed: finished ones are not repeated, queued ones are not lost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from core.store import Store

__all__ = ["ActionRow", "PlanRow", "new_id"]

ACTIVE_PLAN = ("pending_approval", "queued", "running", "verifying", "rolling_back")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id(prefix: str) -> str:
    """A fresh id such as ``act-1f3a...``."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------- runbooks


def save_runbook(
    store: Store, name: str, hash_: str, source: str, doc: dict[str, Any], by: str
) -> tuple[int, bool]:
    """Store a runbook: the same content keeps its version, changed content makes the next one.

    Returns ``(version, changed)``.
    """
    with store.transaction() as con:
        row = con.execute(
            "SELECT version, hash FROM runbooks WHERE name = ? ORDER BY version DESC LIMIT 1", [name]
        ).fetchone()
        if row is not None and row[1] == hash_:
            con.execute("UPDATE runbooks SET active = (version = ?) WHERE name = ?", [row[0], name])
            return int(row[0]), False
        version = int(row[0]) + 1 if row else 1
        con.execute("UPDATE runbooks SET active = FALSE WHERE name = ?", [name])
        con.execute(
            "INSERT INTO runbooks VALUES (?, ?, ?, ?, ?, ?, ?, TRUE)",
            [name, version, hash_, source, _now(), by, json.dumps(doc, default=str)],
        )
        return version, True


def active_runbooks(store: Store) -> list[tuple[str, int, str, str, datetime, dict[str, Any]]]:
    """``(name, version, hash, source, loaded_at, doc)`` of each runbook's active version."""
    rows = store.query(
        "SELECT name, version, hash, source, loaded_at, doc FROM runbooks WHERE active ORDER BY name"
    )
    return [(n, int(v), h, s or "", at, json.loads(d)) for n, v, h, s, at, d in rows]


# ---------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class PlanRow:
    """A stored plan."""

    id: str
    incident_id: str
    runbook: str
    runbook_version: int
    plan_hash: str
    mode: str
    status: str
    service: str
    steps: list[dict[str, Any]]
    rollback: list[dict[str, Any]]
    verify_window_s: float
    error: str
    approved_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    mitigated_at: datetime | None
    verify_until: datetime | None
    finished_at: datetime | None
    verdict: dict[str, Any] | None


_PLAN_COLS = (
    "id, incident_id, runbook, runbook_version, plan_hash, mode, status, service, steps, rollback, "
    "verify_window_s, error, approved_by, created_at, updated_at, started_at, mitigated_at, "
    "verify_until, finished_at, verdict"
)


def _plan(r: tuple[Any, ...]) -> PlanRow:
    return PlanRow(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6], r[7] or "", json.loads(r[8]),
                   json.loads(r[9]), float(r[10]), r[11] or "", r[12] or "", r[13], r[14], r[15], r[16],
                   r[17], r[18], json.loads(r[19]) if r[19] else None)  # fmt: skip


def insert_plan(con: duckdb.DuckDBPyConnection, p: PlanRow) -> None:
    """Write a new plan inside the caller's transaction."""
    con.execute(
        f"INSERT INTO resolve_plans ({_PLAN_COLS}) VALUES ({', '.join('?' * 20)})",
        [
            p.id,
            p.incident_id,
            p.runbook,
            p.runbook_version,
            p.plan_hash,
            p.mode,
            p.status,
            p.service,
            json.dumps(p.steps),
            json.dumps(p.rollback),
            p.verify_window_s,
            p.error,
            p.approved_by,
            p.created_at,
            p.updated_at,
            p.started_at,
            p.mitigated_at,
            p.verify_until,
            p.finished_at,
            json.dumps(p.verdict) if p.verdict is not None else None,
        ],
    )


def update_plan(con: duckdb.DuckDBPyConnection, plan_id: str, **changes: Any) -> None:
    """Set columns of one plan (``verdict`` is JSON-encoded); ``updated_at`` follows."""
    changes.setdefault("updated_at", _now())
    if "verdict" in changes and changes["verdict"] is not None:
        changes["verdict"] = json.dumps(changes["verdict"], default=str)
    cols = ", ".join(f"{k} = ?" for k in changes)
    con.execute(f"UPDATE resolve_plans SET {cols} WHERE id = ?", [*changes.values(), plan_id])


def plans(
    store: Store, *, incident: str | None = None, status: Sequence[str] = (), ids: Sequence[str] = ()
) -> list[PlanRow]:
    """Plans, oldest first, filtered by incident, status or id."""
    where, params = ["TRUE"], []
    if incident is not None:
        where.append("incident_id = ?")
        params.append(incident)
    if status:
        where.append(f"status IN ({', '.join('?' * len(status))})")
        params.extend(status)
    if ids:
        where.append(f"id IN ({', '.join('?' * len(ids))})")
        params.extend(ids)
    rows = store.query(
        f"SELECT {_PLAN_COLS} FROM resolve_plans WHERE {' AND '.join(where)} ORDER BY created_at, id", params
    )
    return [_plan(r) for r in rows]


def plan_by_id(store: Store, plan_id: str) -> PlanRow | None:
    """One plan or None."""
    found = plans(store, ids=[plan_id])
    return found[0] if found else None


def runs_since(
    store: Store, since: datetime, *, runbook: str | None = None, service: str | None = None
) -> int:
    """Plans that started running since ``since`` (for a runbook, or a service)."""
    where: list[str] = ["started_at >= ?"]
    params: list[Any] = [since]
    if runbook is not None:
        where.append("runbook = ?")
        params.append(runbook)
    if service is not None:
        where.append("service = ?")
        params.append(service)
    row = store.query(f"SELECT count(*) FROM resolve_plans WHERE {' AND '.join(where)}", params)
    return int(row[0][0])


def running_plans(store: Store, *, runbook: str | None = None, service: str | None = None) -> int:
    """Plans acting now (running, verifying or rolling back), for a runbook or a service."""
    where: list[str] = ["status IN ('running', 'verifying', 'rolling_back')"]
    params: list[Any] = []
    if runbook is not None:
        where.append("runbook = ?")
        params.append(runbook)
    if service is not None:
        where.append("service = ?")
        params.append(service)
    row = store.query(f"SELECT count(*) FROM resolve_plans WHERE {' AND '.join(where)}", params)
    return int(row[0][0])


# ---------------------------------------------------------------------- actions and outbox


@dataclass(frozen=True, slots=True)
class ActionRow:
    """One step's execution (or the approval it waits for)."""

    id: str
    plan_id: str
    incident_id: str
    runbook: str
    service: str
    phase: str
    step_index: int
    step: str
    kind: str
    status: str
    rendered: dict[str, Any]
    output: str
    attempts: int
    error: str
    approved_by: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


_ACTION_COLS = (
    "id, plan_id, incident_id, runbook, service, phase, step_index, step, kind, status, rendered, "
    "output, attempts, error, approved_by, created_at, started_at, ended_at"
)


def _action(r: tuple[Any, ...]) -> ActionRow:
    return ActionRow(r[0], r[1], r[2], r[3], r[4] or "", r[5], int(r[6]), r[7], r[8], r[9], json.loads(r[10]),
                     r[11] or "", int(r[12]), r[13] or "", r[14] or "", r[15], r[16], r[17])  # fmt: skip


def insert_action(con: duckdb.DuckDBPyConnection, a: ActionRow, *, enqueue: bool) -> None:
    """Write an action (and, when it is due, its outbox row) in the caller's transaction."""
    con.execute(
        f"INSERT INTO resolve_actions ({_ACTION_COLS}) VALUES ({', '.join('?' * 18)})",
        [
            a.id,
            a.plan_id,
            a.incident_id,
            a.runbook,
            a.service,
            a.phase,
            a.step_index,
            a.step,
            a.kind,
            a.status,
            json.dumps(a.rendered),
            a.output,
            a.attempts,
            a.error,
            a.approved_by,
            a.created_at,
            a.started_at,
            a.ended_at,
        ],
    )
    if enqueue:
        con.execute("INSERT INTO resolve_outbox VALUES (?, ?, NULL)", [a.id, a.created_at])


def update_action(con: duckdb.DuckDBPyConnection, action_id: str, **changes: Any) -> None:
    """Set columns of one action."""
    cols = ", ".join(f"{k} = ?" for k in changes)
    con.execute(f"UPDATE resolve_actions SET {cols} WHERE id = ?", [*changes.values(), action_id])


def enqueue(con: duckdb.DuckDBPyConnection, action_id: str, at: datetime) -> None:
    """Put an existing action in the outbox."""
    con.execute("INSERT OR IGNORE INTO resolve_outbox VALUES (?, ?, NULL)", [action_id, at])


def dequeue(con: duckdb.DuckDBPyConnection, action_id: str) -> None:
    """Take an action out of the outbox (with the transaction that records its outcome)."""
    con.execute("DELETE FROM resolve_outbox WHERE action_id = ?", [action_id])


def claim(store: Store, action_id: str, at: datetime) -> None:
    """Mark an outbox row as started (a restart re-runs it with the same idempotency key)."""
    with store.transaction() as con:
        con.execute("UPDATE resolve_outbox SET claimed_at = ? WHERE action_id = ?", [at, action_id])
        con.execute(
            "UPDATE resolve_actions SET status = 'running', started_at = coalesce(started_at, ?), "
            "attempts = attempts + 1 WHERE id = ?",
            [at, action_id],
        )


def outbox(store: Store) -> list[ActionRow]:
    """Actions owed, in the order they became due."""
    rows = store.query(
        f"SELECT {', '.join('a.' + c.strip() for c in _ACTION_COLS.split(','))} FROM resolve_outbox o "
        "JOIN resolve_actions a ON a.id = o.action_id ORDER BY o.enqueued_at, o.rowid"
    )
    return [_action(r) for r in rows]


def actions(
    store: Store,
    *,
    incident: str | None = None,
    plan: str | None = None,
    ids: Sequence[str] = (),
    limit: int = 1000,
) -> list[ActionRow]:
    """Actions, oldest first."""
    where, params = ["TRUE"], []
    if incident is not None:
        where.append("incident_id = ?")
        params.append(incident)
    if plan is not None:
        where.append("plan_id = ?")
        params.append(plan)
    if ids:
        where.append(f"id IN ({', '.join('?' * len(ids))})")
        params.extend(ids)
    rows = store.query(
        f"SELECT {_ACTION_COLS} FROM resolve_actions WHERE {' AND '.join(where)} "
        "ORDER BY created_at, step_index, id LIMIT ?",
        [*params, limit],
    )
    return [_action(r) for r in rows]


def automated_actions_since(store: Store, since: datetime) -> int:
    """Steps executed by automation since ``since`` (the estate-wide blast-radius budget)."""
    row = store.query("SELECT count(*) FROM resolve_actions WHERE started_at >= ?", [since])
    return int(row[0][0])


def hour_ago(at: datetime) -> datetime:
    return at - timedelta(hours=1)


# ---------------------------------------------------------------------- kill switch


def paused(store: Store) -> bool | None:
    """The stored kill-switch state, or None when never set."""
    row = store.query("SELECT paused FROM resolve_control WHERE id = 1")
    return bool(row[0][0]) if row else None


def set_paused(store: Store, value: bool, by: str) -> None:
    """Flip the kill switch."""
    with store.transaction() as con:
        con.execute("INSERT OR REPLACE INTO resolve_control VALUES (1, ?, ?, ?)", [value, by, _now()])


# ---------------------------------------------------------------------- change records


def change_with_previous(store: Store, change_id: str) -> dict[str, str]:
    """A change and the version its service ran before it (the last known good one), or {}."""
    rows = store.query(
        "SELECT c.id, c.service, coalesce(c.version, ''), coalesce(("
        "  SELECT p.version FROM changes p WHERE p.service = c.service AND p.ts < c.ts"
        "  AND coalesce(p.version, '') NOT IN ('', coalesce(c.version, '')) ORDER BY p.ts DESC, p.id DESC LIMIT 1"
        "), '') FROM changes c WHERE c.id = ?",
        [change_id],
    )
    if not rows:
        return {}
    cid, service, version, previous = rows[0]
    return {
        "id": str(cid),
        "service": str(service),
        "version": str(version),
        "previous_version": str(previous),
    }
