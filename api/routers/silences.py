"""Silences (Alertmanager's API shapes) and maintenance windows.

``/api/v1/silences`` speaks Alertmanager v2: ``POST`` takes a ``postableSilence``
(``matchers[{name, value, isRegex, isEqual}]``, ``startsAt``, ``endsAt``, ``createdBy``,
``comment``, optional ``id`` to update) and answers ``{"silenceID": ...}``; ``GET`` answers
``gettableSilence`` objects; ``DELETE`` expires a silence (it stays as history, state
``expired``). As in Alertmanager, updating an expired silence creates a new one.

``/api/v1/maintenance`` holds maintenance windows ``{services, start, end, reason,
recurrence: ""|"daily"|"weekly", until}``. Both apply to alerts from the moment they are
stored: suppressed alerts are kept and carry ``suppressed_by``, they just do not page.
Reads need ``read``, changes need ``write``.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import require
from api.common import CURSOR_PARAM, actor_of, cursor_page, parse_time, time_key
from api.convert import silence_to_wire, window_to_wire
from core.errors import NotFoundError, SchemaError
from core.model import MaintenanceWindow, Silence, SilenceMatcher
from detect.incidents import repository as repo
from detect.incidents.pipeline import IncidentPipeline
from detect.incidents.suppress import validate_silence, validate_window

router = APIRouter(tags=["silences"])

_STATE_ORDER = {"active": 0, "pending": 1, "expired": 2}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _required_time(field: str, text: str) -> datetime:
    ts = parse_time(field, text)
    if ts is None:
        raise SchemaError(field, "required")
    return ts


def _pipeline(request: Request) -> IncidentPipeline:
    pipeline: IncidentPipeline = request.app.state.incidents
    return pipeline


class MatcherIn(BaseModel):
    """One Alertmanager matcher."""

    name: str = Field(max_length=200)
    value: str = Field(max_length=2000)
    isRegex: bool = False
    isEqual: bool = True


class PostableSilence(BaseModel):
    """Alertmanager's ``postableSilence``."""

    id: str | None = Field(default=None, max_length=200)
    matchers: list[MatcherIn] = Field(max_length=100)
    startsAt: str
    endsAt: str
    createdBy: str = Field(default="", max_length=200)
    comment: str = Field(default="", max_length=4000)


class WindowIn(BaseModel):
    """A maintenance window to store."""

    services: list[str] = Field(max_length=1000)
    start: str
    end: str
    reason: str = Field(default="", max_length=4000)
    recurrence: str = ""
    until: str | None = None


# ------------------------------------------------------------------ silences


def _silences(request: Request) -> list[Silence]:
    found: list[Silence] = repo.load_silences(request.app.state.store)
    return found


def _silence(request: Request, silence_id: str) -> Silence:
    found = next((s for s in _silences(request) if s.id == silence_id), None)
    if found is None:
        raise NotFoundError(f"silence {silence_id!r} not found")
    return found


def _silence_key(s: dict[str, Any]) -> tuple[int, str, str]:
    return (_STATE_ORDER[s["status"]["state"]], time_key(s["endsAt"]), s["id"])


def list_silences(request: Request) -> list[dict[str, Any]]:
    """Every silence as wire objects: active first, then pending, then expired (kept as history)."""
    now = _now()
    return sorted((silence_to_wire(s, now) for s in _silences(request)), key=_silence_key)


@router.get("/api/v1/silences", dependencies=[Depends(require("read"))])
def list_silences_page(
    request: Request, limit: int = Query(default=100, ge=1, le=1000), cursor: str | None = CURSOR_PARAM
) -> dict[str, Any]:
    """Silences, active first, then pending, then expired (kept as history), a page at a time."""
    return cursor_page(list_silences(request), key=_silence_key, limit=limit, cursor=cursor)


@router.get("/api/v1/silences/{silence_id}", dependencies=[Depends(require("read"))])
def get_silence(request: Request, silence_id: str) -> dict[str, Any]:
    """One silence."""
    return silence_to_wire(_silence(request, silence_id), _now())


@router.post("/api/v1/silences", dependencies=[Depends(require("write"))])
def post_silence(request: Request, body: PostableSilence) -> dict[str, str]:
    """Create a silence, or update the one ``id`` names (404 if unknown); answers its id."""
    now = _now()
    silence_id = body.id or uuid.uuid4().hex
    if body.id:
        existing = _silence(request, body.id)
        if existing.ends_at <= now:  # an expired silence is history: the update becomes a new one
            silence_id = uuid.uuid4().hex
    silence = Silence(
        id=silence_id,
        matchers=tuple(SilenceMatcher(m.name, m.value, m.isRegex, m.isEqual) for m in body.matchers),
        starts_at=_required_time("startsAt", body.startsAt),
        ends_at=_required_time("endsAt", body.endsAt),
        created_by=body.createdBy.strip(),
        comment=body.comment.strip(),
        updated_at=now,
    )
    validate_silence(silence)
    if silence.ends_at <= now:
        raise SchemaError("endsAt", "must be in the future")
    if silence.starts_at < now:  # Alertmanager clamps a past start to now
        silence = replace(silence, starts_at=now)
    _pipeline(request).add_silence(silence)
    return {"silenceID": silence.id}


@router.delete("/api/v1/silences/{silence_id}", dependencies=[Depends(require("write"))])
def expire_silence(request: Request, silence_id: str) -> dict[str, Any]:
    """Expire a silence now; answers it (state ``expired``)."""
    expired = _pipeline(request).expire_silence(silence_id)
    return silence_to_wire(expired, _now())


# ------------------------------------------------------------------ maintenance windows


def _window(request: Request, window_id: str) -> MaintenanceWindow:
    found = next((w for w in repo.load_windows(request.app.state.store) if w.id == window_id), None)
    if found is None:
        raise NotFoundError(f"maintenance window {window_id!r} not found")
    return found


@router.get("/api/v1/maintenance", dependencies=[Depends(require("read"))])
def list_windows(
    request: Request, limit: int = Query(default=100, ge=1, le=1000), cursor: str | None = CURSOR_PARAM
) -> dict[str, Any]:
    """Maintenance windows, earliest start first, a page at a time."""
    wire = [window_to_wire(w) for w in repo.load_windows(request.app.state.store)]
    return cursor_page(wire, key=lambda w: (time_key(w["start"]), w["id"]), limit=limit, cursor=cursor)


@router.get("/api/v1/maintenance/{window_id}", dependencies=[Depends(require("read"))])
def get_window(request: Request, window_id: str) -> dict[str, Any]:
    """One maintenance window."""
    return window_to_wire(_window(request, window_id))


@router.post("/api/v1/maintenance", dependencies=[Depends(require("write"))])
def post_window(request: Request, body: WindowIn) -> JSONResponse:
    """Store a maintenance window (201, the window with its id)."""
    start = _required_time("start", body.start)
    until = parse_time("until", body.until)
    if until is not None and until <= start:
        raise SchemaError("until", "must be after start")
    window = MaintenanceWindow(
        id=uuid.uuid4().hex,
        services=tuple(s.strip() for s in body.services),
        starts_at=start,
        ends_at=_required_time("end", body.end),
        reason=body.reason.strip(),
        created_by=actor_of(request),
        recurrence=body.recurrence.strip().lower(),
        until=until,
        source="api",
    )
    validate_window(window)
    _pipeline(request).add_window(window)
    return JSONResponse(window_to_wire(window), status_code=201)


@router.delete("/api/v1/maintenance/{window_id}", dependencies=[Depends(require("write"))])
def delete_window(request: Request, window_id: str) -> Response:
    """Remove a maintenance window (204)."""
    _pipeline(request).delete_window(window_id)
    return Response(status_code=204)
