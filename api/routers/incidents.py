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

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import require
from api.common import (
    CURSOR_PARAM,
    SCAN_ROWS,
    actor_of,
    cursor_page,
    incident_detail,
    incident_page,
    parse_priorities,
    parse_statuses,
    parse_time,
    time_key,
)
from api.convert import (
    alert_to_wire,
    diagnosis_to_wire,
    incident_to_wire,
    timeline_to_wire,
)
from core.errors import SchemaError
from core.model import IncidentStatus
from detect.incidents import repository as repo
from detect.incidents.pipeline import IncidentPipeline
from diagnose.diagnoser import Diagnoser

router = APIRouter(tags=["incidents"])

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
    request: Request,
    status: str | None = None,
    limit: int = Query(default=200, ge=1, le=10_000),
    cursor: str | None = CURSOR_PARAM,
) -> dict[str, Any]:
    """Recent alerts, newest first; ``status`` is ``firing`` (flapping ones included; they show
    as ``flapping``) or ``resolved``."""
    if status is not None and status not in ALERT_STATUSES:
        raise SchemaError("status", f"expected one of {', '.join(ALERT_STATUSES)}, got {status!r}")
    found = repo.list_alerts(request.app.state.store, status=status, limit=SCAN_ROWS)
    wire = [alert_to_wire(a) for a in found]
    key = lambda a: (time_key(a["starts_at"]), a["id"])  # noqa: E731
    return cursor_page(wire, key=key, reverse=True, limit=limit, cursor=cursor)
