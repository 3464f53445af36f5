"""Incidents and alerts: list, inspect, and move incidents along their lifecycle.

``GET /api/v1/incidents`` (read) lists newest first with an opaque keyset ``cursor``, so
pages stay stable while new incidents arrive. ``status`` is repeatable and takes the
literal statuses (``open``, ``acknowledged``, ``mitigated``, ``resolved``, ``closed``) or
``active``, shorthand for open + acknowledged + mitigated. ``GET /api/v1/incidents/{id}``
adds the alerts and the timeline. The ``POST`` commands (write) go through the server's one
``IncidentPipeline``, so operators and the pipeline thread never race:
``ack``/``mitigate``/``resolve``/``close`` (409 on a step the lifecycle forbids), ``assign``
and ``note``. ``POST /api/v1/incidents/{id}/diagnose`` (write) re-runs Diagnose now (it also
runs by itself when an incident opens or gains alerts) and stores the ranked hypotheses.
``GET /api/v1/alerts`` (read) lists recent alerts.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import credentials, require
from api.convert import (
    alert_to_wire,
    diagnosis_to_wire,
    incident_detail_to_wire,
    incident_to_wire,
    timeline_to_wire,
)
from api.routers.anomalies import parse_time
from core.errors import NotFoundError, SchemaError
from core.model import IncidentStatus
from core.store import Store
from detect import incident_repository as repo
from detect.incidents import IncidentPipeline
from diagnose.diagnoser import Diagnoser

router = APIRouter(tags=["incidents"])

ACTIVE = "active"
ACTIVE_STATUSES = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)
PRIORITIES = ("P1", "P2", "P3", "P4")
ALERT_STATUSES = ("firing", "resolved")
_ACTIONS = {
    "ack": IncidentStatus.ACKNOWLEDGED,
    "mitigate": IncidentStatus.MITIGATED,
    "resolve": IncidentStatus.RESOLVED,
    "close": IncidentStatus.CLOSED,
}


class ActionRequest(BaseModel):
    """Who takes a lifecycle step (default: the token's name) and why."""

    by: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, max_length=4000)


class AssignRequest(BaseModel):
    """The owning team and/or the person on it (at least one)."""

    team: str | None = Field(default=None, max_length=200)
    assignee: str | None = Field(default=None, max_length=200)
    by: str | None = Field(default=None, max_length=200)


class NoteRequest(BaseModel):
    """A free-text note for the timeline."""

    text: str = Field(max_length=20_000)
    by: str | None = Field(default=None, max_length=200)


# ------------------------------------------------------------------ parameters (shared with the CLI)


def parse_statuses(field: str, values: Sequence[str]) -> list[str]:
    """Literal statuses, ``active`` expanded; repeated or comma-separated; 422 naming ``field``.

    >>> parse_statuses("status", ["active", "closed"])
    ['open', 'acknowledged', 'mitigated', 'closed']
    """
    known = {s.value for s in IncidentStatus}
    out: list[str] = []
    for value in values:
        for part in (p.strip().lower() for p in value.split(",")):
            if not part:
                continue
            if part == ACTIVE:
                expanded = [s.value for s in ACTIVE_STATUSES]
            elif part in known:
                expanded = [part]
            else:
                raise SchemaError(
                    field, f"unknown status {part!r} (expected active or one of {sorted(known)})"
                )
            out += [s for s in expanded if s not in out]
    return out


def parse_priorities(field: str, values: Sequence[str]) -> list[str]:
    """Priorities ``P1``..``P4`` (case-insensitive, repeated or comma-separated); 422 naming ``field``."""
    out: list[str] = []
    for value in values:
        for part in (p.strip().upper() for p in value.split(",")):
            if not part:
                continue
            if part not in PRIORITIES:
                raise SchemaError(
                    field, f"unknown priority {part!r} (expected one of {', '.join(PRIORITIES)})"
                )
            if part not in out:
                out.append(part)
    return out


def encode_cursor(opened_at: datetime, incident_id: str) -> str:
    """The opaque cursor after an incident: URL-safe base64 of ``opened_at|id``.

    >>> decode_cursor(encode_cursor(datetime(2026, 1, 2, 3, 4, 5, 6), "INC-7"))
    (datetime.datetime(2026, 1, 2, 3, 4, 5, 6), 'INC-7')
    """
    raw = f"{opened_at.isoformat()}|{incident_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> tuple[datetime, str]:
    """The (opened_at, id) a cursor stands for; 422 naming ``field`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, sep, incident_id = raw.partition("|")
        opened_at = datetime.fromisoformat(stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise SchemaError(field, "not a cursor this server issued") from exc
    if not sep or not incident_id or opened_at.tzinfo is not None:
        raise SchemaError(field, "not a cursor this server issued")
    return opened_at, incident_id


def incident_page(
    store: Store,
    *,
    status: Sequence[str] = (),
    service: str | None = None,
    priority: Sequence[str] = (),
    since: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One page of incidents, newest first: ``{items, next_cursor, total}``."""
    after = decode_cursor(cursor) if cursor else None
    filters: dict[str, Any] = {
        "status": status,
        "service": service or None,
        "priority": priority,
        "since": since,
    }
    found = repo.list_incidents(store, **filters, limit=limit + 1, after=after)
    page = found[:limit]
    more = len(found) > limit
    return {
        "items": [incident_to_wire(i) for i in page],
        "next_cursor": encode_cursor(page[-1].opened_at, page[-1].id) if more and page else None,
        "total": repo.count_incidents(store, **filters),
    }


def incident_detail(store: Store, incident_id: str) -> dict[str, Any]:
    """An incident with its alerts and timeline; ``NotFoundError`` naming the id."""
    incident = repo.incident_by_id(store, incident_id)
    if incident is None:
        raise NotFoundError(f"incident {incident_id!r} not found")
    return incident_detail_to_wire(
        incident, repo.alerts_of(store, incident_id), repo.timeline_of(store, incident_id)
    )


def actor_of(request: Request, given: str | None = None) -> str:
    """Who acts: ``given`` if set, else the token's name (its id when unnamed), else ``anonymous``."""
    if given and given.strip():
        return given.strip()
    token = credentials(request)
    if not token:
        return "anonymous"
    store: Store = request.app.state.store
    return store.token_name(token) or "anonymous"


def _pipeline(request: Request) -> IncidentPipeline:
    pipeline: IncidentPipeline = request.app.state.incidents
    return pipeline


# ------------------------------------------------------------------ endpoints


@router.get("/api/v1/incidents", dependencies=[Depends(require("read"))])
def list_incidents(
    request: Request,
    status: list[str] = Query(default=[]),
    service: str | None = None,
    priority: list[str] = Query(default=[]),
    since: str | None = None,
    limit: int = Query(default=50, ge=1, le=1000),
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest incidents first, filtered; follow ``next_cursor`` (null on the last page) for the next
    page. ``total`` counts every incident matching the filters, wherever the cursor stands."""
    return incident_page(
        request.app.state.store,
        status=parse_statuses("status", status),
        service=service,
        priority=parse_priorities("priority", priority),
        since=parse_time("since", since),
        limit=limit,
        cursor=cursor,
    )


@router.get("/api/v1/incidents/{incident_id}", dependencies=[Depends(require("read"))])
def get_incident(request: Request, incident_id: str) -> dict[str, Any]:
    """One incident with ``alerts`` and ``timeline``."""
    return incident_detail(request.app.state.store, incident_id)


def _transition(
    request: Request, incident_id: str, action: str, body: ActionRequest | None
) -> dict[str, Any]:
    body = body or ActionRequest()
    incident = _pipeline(request).transition(
        incident_id, _ACTIONS[action], actor_of(request, body.by), (body.comment or "").strip()
    )
    return incident_to_wire(incident)


@router.post("/api/v1/incidents/{incident_id}/ack", dependencies=[Depends(require("write"))])
def acknowledge(request: Request, incident_id: str, body: ActionRequest | None = None) -> dict[str, Any]:
    """Acknowledge an open incident (someone is on it)."""
    return _transition(request, incident_id, "ack", body)


@router.post("/api/v1/incidents/{incident_id}/mitigate", dependencies=[Depends(require("write"))])
def mitigate(request: Request, incident_id: str, body: ActionRequest | None = None) -> dict[str, Any]:
    """Mark the impact as mitigated (the cause may remain)."""
    return _transition(request, incident_id, "mitigate", body)


@router.post("/api/v1/incidents/{incident_id}/resolve", dependencies=[Depends(require("write"))])
def resolve(request: Request, incident_id: str, body: ActionRequest | None = None) -> dict[str, Any]:
    """Resolve an active incident."""
    return _transition(request, incident_id, "resolve", body)


@router.post("/api/v1/incidents/{incident_id}/close", dependencies=[Depends(require("write"))])
def close(request: Request, incident_id: str, body: ActionRequest | None = None) -> dict[str, Any]:
    """Close a resolved incident (no reopening after this)."""
    return _transition(request, incident_id, "close", body)


@router.post("/api/v1/incidents/{incident_id}/assign", dependencies=[Depends(require("write"))])
def assign(request: Request, incident_id: str, body: AssignRequest) -> dict[str, Any]:
    """Set the owning team and/or the assignee."""
    team, assignee = (body.team or "").strip(), (body.assignee or "").strip()
    if not team and not assignee:
        raise SchemaError("team", "give a team, an assignee, or both")
    incident = _pipeline(request).assign(
        incident_id, actor_of(request, body.by), team=team, assignee=assignee
    )
    return incident_to_wire(incident)


@router.post("/api/v1/incidents/{incident_id}/note", dependencies=[Depends(require("write"))])
def note(request: Request, incident_id: str, body: NoteRequest) -> JSONResponse:
    """Add a note to the timeline; answers the new entry (201)."""
    text = body.text.strip()
    if not text:
        raise SchemaError("text", "a note cannot be empty")
    entry = _pipeline(request).note(incident_id, actor_of(request, body.by), text)
    return JSONResponse(timeline_to_wire(entry), status_code=201)


@router.post("/api/v1/incidents/{incident_id}/diagnose", dependencies=[Depends(require("write"))])
def diagnose(request: Request, incident_id: str, as_of: str | None = None) -> dict[str, Any]:
    """Rank contributing factors now (or with the data known at ``as_of``) and store them."""
    diagnoser: Diagnoser = request.app.state.diagnoses.diagnoser  # the runner's, on the live topology
    result = diagnoser.diagnose(incident_id, as_of=parse_time("as_of", as_of))
    _pipeline(request).set_hypotheses(incident_id, result.hypotheses, result.as_of)
    return diagnosis_to_wire(result)


@router.get("/api/v1/alerts", dependencies=[Depends(require("read"))])
def list_alerts(
    request: Request, status: str | None = None, limit: int = Query(default=200, ge=1, le=10_000)
) -> list[dict[str, Any]]:
    """Recent alerts, newest first; ``status`` is ``firing`` (flapping ones included; they show
    as ``flapping``) or ``resolved``."""
    if status is not None and status not in ALERT_STATUSES:
        raise SchemaError("status", f"expected one of {', '.join(ALERT_STATUSES)}, got {status!r}")
    return [alert_to_wire(a) for a in repo.list_alerts(request.app.state.store, status=status, limit=limit)]
