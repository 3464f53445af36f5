"""SQL for problems: the problems, which incident belongs to which, their lifecycle events,
and the incident facts grouping reads (signatures, the workaround that restored service).

``problem_incidents`` is keyed by incident, so an incident belongs to at most one problem.
The Resolve executor's tables (actions, verification) may not exist in every database: the
reads here look for them first and treat their absence as "no automation" (see
:func:`automated_restorations`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from core.store import Store

__all__ = [
    "AUTOMATION_RESTORED_KINDS",
    "IncidentRow",
    "StoredProblem",
    "add_members",
    "automated_restorations",
    "events_of",
    "incident_rows",
    "incidents_changed_after",
    "list_problems",
    "members_of",
    "memberships",
    "next_problem_seq",
    "operator_resolution",
    "problem_by_id",
    "save_problem",
    "table_exists",
]

#: Timeline kinds by which the Resolve executor records that a restoration was verified after
#: an automated action (its "restoration confirmed" entry). Named once, here.
AUTOMATION_RESTORED_KINDS: tuple[str, ...] = ("restoration_confirmed", "restored", "verified")

_PROBLEM_COLS = (
    "id, seq, title, state, services, alert_names, templates, leading_cause, first_seen, last_seen, "
    "created_at, updated_at, resolved_at, known_error_id, workaround, created_by"
)


@dataclass(frozen=True, slots=True)
class StoredProblem:
    """A problem row as stored (the domain type is built from it in :mod:`resolve.problems`)."""

    id: str
    seq: int
    title: str
    state: str
    services: tuple[str, ...]
    alert_names: tuple[str, ...]
    templates: tuple[str, ...]
    leading_cause: str
    first_seen: datetime | None
    last_seen: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    resolved_at: datetime | None
    known_error_id: str
    workaround: str
    created_by: str


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """What grouping reads of one incident: lifecycle, services, alert names, hypotheses (JSON)."""

    id: str
    opened_at: datetime
    status: str
    resolved_at: datetime | None
    services: tuple[str, ...]
    alert_names: tuple[str, ...]
    hypotheses: list[dict[str, Any]]
    problem_id: str
    alert_keys: tuple[str, ...] = ()  # ``service/name`` of each alert


def table_exists(store: Store, name: str) -> bool:
    """Whether the store has table ``name`` (tables of later migrations may not exist yet)."""
    return bool(store.query("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name])[0][0])


def _problem(row: tuple[Any, ...]) -> StoredProblem:
    (id_, seq, title, state, services, names, templates, leading, first, last, created, updated, resolved,
     ke, workaround, by) = row  # fmt: skip
    return StoredProblem(
        id=id_, seq=int(seq), title=title or "", state=state, services=tuple(services or ()),
        alert_names=tuple(names or ()), templates=tuple(templates or ()), leading_cause=leading or "",
        first_seen=first, last_seen=last, created_at=created, updated_at=updated, resolved_at=resolved,
        known_error_id=ke or "", workaround=workaround or "", created_by=by or "",
    )  # fmt: skip


def next_problem_seq(con: duckdb.DuckDBPyConnection) -> int:
    """The sequence number the next problem gets (ids are ``PRB-<seq>``), inside a transaction."""
    row = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM problems").fetchone()
    return int(row[0]) if row else 1


def save_problem(
    con: duckdb.DuckDBPyConnection,
    p: StoredProblem,
    events: Sequence[tuple[datetime, str, str, str, dict[str, Any]]] = (),
) -> None:
    """Upsert a problem and append its lifecycle events ``(at, kind, actor, text, detail)``."""
    con.execute(
        f"INSERT OR REPLACE INTO problems ({_PROBLEM_COLS}) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [p.id, p.seq, p.title, p.state, list(p.services), list(p.alert_names), list(p.templates),
         p.leading_cause, p.first_seen, p.last_seen, p.created_at, p.updated_at, p.resolved_at,
         p.known_error_id, p.workaround, p.created_by],
    )  # fmt: skip
    if events:
        row = con.execute("SELECT count(*) FROM problem_events WHERE problem_id = ?", [p.id]).fetchone()
        start = int(row[0]) if row else 0
        con.executemany(
            'INSERT INTO problem_events (problem_id, seq, "at", kind, actor, text, detail) '
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(p.id, start + k, at, kind, actor, text, json.dumps(detail, default=str))
             for k, (at, kind, actor, text, detail) in enumerate(events)],
        )  # fmt: skip


def add_members(
    con: duckdb.DuckDBPyConnection, problem_id: str, incident_ids: Sequence[str], at: datetime
) -> None:
    """Put incidents into a problem (an incident already in one stays where it is)."""
    if incident_ids:
        con.executemany(
            "INSERT OR IGNORE INTO problem_incidents (incident_id, problem_id, added_at) VALUES (?, ?, ?)",
            [(i, problem_id, at) for i in incident_ids],
        )


def problem_by_id(store: Store, problem_id: str) -> StoredProblem | None:
    """One problem, or None."""
    rows = store.query(f"SELECT {_PROBLEM_COLS} FROM problems WHERE id = ?", [problem_id])
    return _problem(rows[0]) if rows else None


def list_problems(
    store: Store, *, state: Sequence[str] = (), service: str | None = None, limit: int = 100
) -> list[StoredProblem]:
    """Problems most recently seen first, filtered by state and service."""
    clauses, params = ["TRUE"], []  # type: list[str], list[Any]
    if state:
        clauses.append("state IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(state))
    if service:
        clauses.append("list_contains(services, ?)")
        params.append(service)
    rows = store.query(
        f"SELECT {_PROBLEM_COLS} FROM problems WHERE {' AND '.join(clauses)} "
        "ORDER BY last_seen DESC NULLS LAST, id DESC LIMIT ?",
        [*params, limit],
    )
    return [_problem(r) for r in rows]


def members_of(store: Store, problem_id: str) -> list[str]:
    """The incidents of a problem, oldest first."""
    rows = store.query(
        "SELECT p.incident_id FROM problem_incidents p LEFT JOIN incidents i ON i.id = p.incident_id "
        "WHERE p.problem_id = ? ORDER BY i.opened_at NULLS LAST, p.incident_id",
        [problem_id],
    )
    return [str(r[0]) for r in rows]


def memberships(store: Store, incident_ids: Sequence[str]) -> dict[str, str]:
    """``incident_id -> problem_id`` for those of ``incident_ids`` that belong to a problem."""
    if not incident_ids:
        return {}
    rows = store.query(
        "SELECT incident_id, problem_id FROM problem_incidents WHERE incident_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(incident_ids)],
    )
    return {str(i): str(p) for i, p in rows}


def events_of(store: Store, problem_id: str) -> list[tuple[datetime, str, str, str, dict[str, Any]]]:
    """A problem's lifecycle events in order: ``(at, kind, actor, text, detail)``."""
    rows = store.query(
        'SELECT "at", kind, actor, text, detail FROM problem_events WHERE problem_id = ? ORDER BY seq',
        [problem_id],
    )
    return [
        (at, kind, actor or "", text or "", json.loads(detail or "{}"))
        for at, kind, actor, text, detail in rows
    ]


def incident_rows(
    store: Store,
    *,
    ids: Sequence[str] | None = None,
    opened_from: datetime | None = None,
    opened_to: datetime | None = None,
) -> list[IncidentRow]:
    """Incidents by id or by opening time, with their alert names and problem (oldest first)."""
    clauses, params = ["TRUE"], []  # type: list[str], list[Any]
    if ids is not None:
        clauses.append("i.id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(ids))
    if opened_from is not None:
        clauses.append("i.opened_at >= ?")
        params.append(opened_from)
    if opened_to is not None:
        clauses.append("i.opened_at <= ?")
        params.append(opened_to)
    rows = store.query(
        "WITH chosen AS (SELECT * FROM incidents i WHERE " + " AND ".join(clauses) + "), "
        "names AS (SELECT a.incident_id, list(DISTINCT a.name ORDER BY a.name) AS names, "
        "                 list(DISTINCT coalesce(a.service, '') || '/' || a.name) AS keys FROM alerts a "
        "          WHERE a.incident_id IN (SELECT id FROM chosen) AND a.name IS NOT NULL GROUP BY a.incident_id) "
        "SELECT c.id, c.opened_at, c.status, c.resolved_at, c.services, n.names, c.hypotheses, "
        "       coalesce(p.problem_id, ''), n.keys "
        "FROM chosen c LEFT JOIN names n ON n.incident_id = c.id "
        "LEFT JOIN problem_incidents p ON p.incident_id = c.id ORDER BY c.opened_at, c.id",
        params,
    )
    return [
        IncidentRow(str(i), opened, str(status), resolved, tuple(services or ()),
                    tuple(n for n in (names or ()) if n), json.loads(hyps or "[]"), str(problem),
                    tuple(sorted(keys or ())))
        for i, opened, status, resolved, services, names, hyps, problem, keys in rows
    ]  # fmt: skip


def operator_resolution(store: Store, incident_id: str) -> tuple[datetime, str, str] | None:
    """The last operator note, or operator comment on a lifecycle step, of an incident:
    ``(at, actor, text)``; None when operators wrote nothing."""
    rows = store.query(
        "SELECT \"at\", actor, text FROM incident_timeline WHERE incident_id = ? AND coalesce(text, '') <> '' "
        "AND (kind = 'note' OR (kind = 'status' AND actor <> 'opsloop' AND text NOT LIKE '% -> %')) "
        'ORDER BY "at" DESC, seq DESC LIMIT 1',
        [incident_id],
    )
    return (rows[0][0], str(rows[0][1] or ""), str(rows[0][2])) if rows else None


def automated_restorations(
    store: Store, incident_ids: Sequence[str] | None = None
) -> dict[str, tuple[datetime, str]]:
    """Incidents whose restoration the Resolve executor verified after an automated action:
    ``incident_id -> (at, text)`` of the first such timeline entry.

    Read from the incident timeline (kinds :data:`AUTOMATION_RESTORED_KINDS`, written by the
    executor, actor ``opsloop``), so a database without the executor simply has none.
    """
    clauses, params = (
        ["kind IN (SELECT unnest(?::VARCHAR[]))", "actor = 'opsloop'"],
        [list(AUTOMATION_RESTORED_KINDS)],
    )
    if incident_ids is not None:
        clauses.append("incident_id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(incident_ids))
    rows = store.query(
        'SELECT incident_id, min_by("at", ("at", seq)), min_by(text, ("at", seq)) FROM incident_timeline '
        f"WHERE {' AND '.join(clauses)} GROUP BY incident_id",
        params,
    )
    return {str(i): (at, str(text or "")) for i, at, text in rows}


def incidents_changed_after(
    store: Store, after: datetime | None
) -> tuple[list[tuple[str, datetime]], datetime | None]:
    """Incidents updated after ``after`` as ``(id, updated_at)``, and the newest update seen.

    With ``after`` None only the newest update is answered (a watermark to start from).
    """
    if after is None:
        row = store.query("SELECT max(updated_at) FROM incidents")
        return [], row[0][0] if row else None
    rows = store.query(
        "SELECT id, updated_at FROM incidents WHERE updated_at > ? ORDER BY updated_at, id", [after]
    )
    found = [(str(i), at) for i, at in rows]
    return found, max((at for _, at in found), default=after)
