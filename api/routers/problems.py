"""Problems and post-mortems.

``GET /api/v1/problems`` (read) lists problems most recently seen first (``state`` repeatable
or comma-separated: ``open``, ``known_error``, ``resolved``; ``service``). ``POST
/api/v1/problems`` (write) opens one by hand over ``incident_ids`` (201; 409 when an incident
already belongs to a problem). ``GET /api/v1/problems/{id}`` (read) adds the lifecycle events.
``POST /api/v1/problems/{id}/transition`` (write) takes ``{"state": ..., "comment": ...}``:
409 for a step the lifecycle forbids, 422 for an unknown state; a ``known_error`` step with a
comment records it as the workaround Diagnose offers next time.

``GET /api/v1/incidents/{id}/postmortem`` (read) answers the blameless post-mortem as
Markdown (default), HTML or JSON, chosen by ``format=md|html|json`` or else by ``Accept``
(``text/html``, ``application/json``, ``text/markdown``). ``POST
/api/v1/incidents/{id}/postmortem/actions`` (write) files its action items as backlog items
(201, the items).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import require
from api.common import CURSOR_PARAM, SCAN_ROWS, actor_of, cursor_page, time_key
from api.problem_backlog import postmortem_for
from core.errors import SchemaError
from core.wire import backlog_item_to_wire, iso_or_none
from resolve.postmortem import render
from resolve.problems import Problem, ProblemManager, ProblemState

router = APIRouter(tags=["problems"])

STATES = tuple(s.value for s in ProblemState)
_MEDIA = {
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
}


class ProblemRequest(BaseModel):
    """A problem opened by hand over existing incidents."""

    title: str = Field(max_length=500)
    incident_ids: list[str] = Field(max_length=1000)
    by: str | None = Field(default=None, max_length=200)


class TransitionRequest(BaseModel):
    """The state to move to, and why (for ``known_error``: the workaround)."""

    state: str = Field(max_length=40)
    comment: str | None = Field(default=None, max_length=8000)
    by: str | None = Field(default=None, max_length=200)


def problem_to_wire(p: Problem) -> dict[str, Any]:
    """The API shape of a problem."""
    return {
        "id": p.id,
        "title": p.title,
        "state": p.state.value,
        "incident_ids": list(p.incident_ids),
        "recurrences": p.recurrences,
        "services": list(p.services),
        "alert_names": list(p.alert_names),
        "templates": list(p.templates),
        "leading_cause": p.leading_cause,
        "first_seen": iso_or_none(p.first_seen),
        "last_seen": iso_or_none(p.last_seen),
        "created_at": iso_or_none(p.created_at),
        "updated_at": iso_or_none(p.updated_at),
        "resolved_at": iso_or_none(p.resolved_at),
        "known_error_id": p.known_error_id,
        "workaround": p.workaround,
        "created_by": p.created_by,
    }


def parse_problem_states(values: Sequence[str]) -> list[str]:
    """Problem states, repeated or comma-separated; 422 naming ``state`` for an unknown one.

    >>> parse_problem_states(["open,known_error", "open"])
    ['open', 'known_error']
    """
    out: list[str] = []
    for value in values:
        for part in (p.strip().lower() for p in value.split(",")):
            if not part:
                continue
            if part not in STATES:
                raise SchemaError("state", f"unknown state {part!r} (expected one of {', '.join(STATES)})")
            if part not in out:
                out.append(part)
    return out


def _manager(request: Request) -> ProblemManager:
    manager: ProblemManager = request.app.state.loop.problems
    return manager


@router.get("/api/v1/problems", dependencies=[Depends(require("read"))])
def list_problems(
    request: Request,
    state: list[str] = Query(default=[]),
    service: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = CURSOR_PARAM,
) -> dict[str, Any]:
    """Problems most recently seen first, a page at a time."""
    states = parse_problem_states(state)
    found = _manager(request).list_problems(state=states, service=service, limit=SCAN_ROWS)
    wire = [problem_to_wire(p) for p in found]
    key = lambda p: (time_key(p["last_seen"]), p["id"])  # noqa: E731
    return cursor_page(wire, key=key, reverse=True, limit=limit, cursor=cursor)


@router.post("/api/v1/problems", dependencies=[Depends(require("write"))])
def create_problem(request: Request, body: ProblemRequest) -> JSONResponse:
    """Open a problem over incidents (201)."""
    problem = _manager(request).create(body.title, body.incident_ids, actor_of(request, body.by))
    return JSONResponse(problem_to_wire(problem), status_code=201)


@router.get("/api/v1/problems/{problem_id}", dependencies=[Depends(require("read"))])
def get_problem(request: Request, problem_id: str) -> dict[str, Any]:
    """One problem with its lifecycle ``events``."""
    manager = _manager(request)
    out = problem_to_wire(manager.get(problem_id))
    out["events"] = [
        {"at": iso_or_none(at), "kind": kind, "actor": actor, "text": text, "detail": detail}
        for at, kind, actor, text, detail in manager.events(problem_id)
    ]
    return out


@router.post("/api/v1/problems/{problem_id}/transition", dependencies=[Depends(require("write"))])
def transition(request: Request, problem_id: str, body: TransitionRequest) -> dict[str, Any]:
    """Move a problem along open -> known_error -> resolved (resolved -> open reopens)."""
    state = body.state.strip().lower()
    if state not in STATES:
        raise SchemaError("state", f"unknown state {body.state!r} (expected one of {', '.join(STATES)})")
    problem = _manager(request).transition(
        problem_id, ProblemState(state), actor_of(request, body.by), (body.comment or "").strip()
    )
    return problem_to_wire(problem)


def _format(request: Request, given: str | None) -> str:
    if given:
        fmt = given.strip().lower()
        if fmt not in _MEDIA:
            raise SchemaError("format", f"expected one of {', '.join(_MEDIA)}, got {given!r}")
        return fmt
    accept = request.headers.get("accept", "").lower()
    for media, fmt in (("text/html", "html"), ("application/json", "json"), ("text/markdown", "md")):
        if media in accept:
            return fmt
    return "md"


@router.get("/api/v1/incidents/{incident_id}/postmortem", dependencies=[Depends(require("read"))])
def postmortem(request: Request, incident_id: str, format: str | None = None) -> Response:
    """The incident's blameless post-mortem (Markdown, HTML or JSON)."""
    fmt = _format(request, format)
    report = postmortem_for(request.app.state.store, request.app.state.settings, incident_id)
    if fmt == "json":
        return JSONResponse(report.to_dict())
    return Response(render(report, fmt), media_type=_MEDIA[fmt])


@router.post("/api/v1/incidents/{incident_id}/postmortem/actions", dependencies=[Depends(require("write"))])
def file_postmortem_actions(request: Request, incident_id: str) -> JSONResponse:
    """File the post-mortem's action items as backlog items (201; filing again changes nothing)."""
    report = postmortem_for(request.app.state.store, request.app.state.settings, incident_id)
    items = request.app.state.loop.backlog_filer.file_action_items(report)
    return JSONResponse([backlog_item_to_wire(i) for i in items], status_code=201)
