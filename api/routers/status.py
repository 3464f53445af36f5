"""The public status page (no token): ``/status``, ``/status/history``, ``/status/feed.atom`` and the
Statuspage-shaped ``/api/v2/summary.json``, ``status.json``, ``components.json``, ``incidents.json``.

Server-rendered with Jinja2 (autoescaped, no JavaScript); the model is ``api.statuspage``, which
publishes components and states only, never internal titles, evidence, hosts or labels.

``POST /api/v1/incidents/{id}/public-update`` (write) drafts a public update from the detected
incident (``{}`` answers the draft, 200, nothing published); ``{"approve": true}`` publishes the
draft, and ``status``/``body`` override its state and wording (201). A body naming anything
internal (a host, a label value, a service that is not a component, the title, evidence) is
422; ``resolved``/``postmortem`` on an incident still active is 409.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.common import actor_of
from api.statuspage import (
    PUBLIC_UPDATE,
    StatusModel,
    build,
    component_names,
    draft_update,
    impact_of,
    incident_wire,
    internal_terms,
    leaks,
    public_id,
    summary_wire,
)
from core.errors import ConflictError, NotFoundError, SchemaError
from core.model import IncidentStatus
from core.settings import Settings
from core.wire import iso_utc
from detect.incidents import repository as repo
from detect.incidents.pipeline import IncidentPipeline

router = APIRouter(tags=["status"])

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates" / "status"),
    autoescape=select_autoescape(["html"]),
)
HISTORY_DAYS = 30


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def _model(request: Request, history: bool = False) -> StatusModel:
    store = request.app.state.store
    now = _now()

    def compute() -> StatusModel:
        past = []
        if history:
            since = now - timedelta(days=HISTORY_DAYS)
            past = repo.list_incidents(store, status=["resolved", "closed"], since=since, limit=200)
        return build(store, now, past)

    return await run_in_threadpool(compute)


def _base(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.public_url.rstrip("/")


def _shown(at: datetime) -> str:
    """A time as people read it on the page (machines read ``<time datetime>``)."""
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _page(request: Request, model: StatusModel, heading: str) -> HTMLResponse:
    html = _TEMPLATES.get_template("index.html").render(
        title="Service status", base=_base(request), indicator=model.indicator, description=model.description,
        components=model.components, at=_shown(model.at), incidents_heading=heading,
        incidents=[{"id": i.id, "name": i.name, "status": i.status, "updated_at": _shown(i.updated_at),
                    "updates": [{"status": u.status, "body": u.body, "at": iso_utc(u.at), "shown": _shown(u.at)}
                                for u in i.updates]}
                   for i in model.incidents],
    )  # fmt: skip
    return HTMLResponse(html)


@router.get("/status", response_class=HTMLResponse, include_in_schema=False)
async def status_page(request: Request) -> HTMLResponse:
    """Components, the overall state and the incidents in progress."""
    model = await _model(request)
    return _page(request, model, "Current incidents")


@router.get("/status/history", response_class=HTMLResponse, include_in_schema=False)
async def status_history(request: Request) -> HTMLResponse:
    """The same page with the last 30 days' incidents."""
    return _page(request, await _model(request, history=True), f"Incidents in the last {HISTORY_DAYS} days")


@router.get("/status/feed.atom", include_in_schema=False)
async def status_feed(request: Request) -> Response:
    """An Atom feed of public incident updates (last 30 days)."""
    model = await _model(request, history=True)
    base = _base(request)
    entries = "".join(
        f"<entry><id>urn:opsloop:status:{i.id}:{len(i.updates) - k}:{u.status}</id>"
        f"<title>{escape(i.name)} ({u.status})</title>"
        f'<updated>{iso_utc(u.at)}</updated><link href="{escape(base)}/status/history"/>'
        f"<summary>{escape(u.body)}</summary></entry>"
        for i in model.incidents
        for k, u in enumerate(i.updates)
    )
    feed = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>urn:opsloop:status</id><title>Service status</title><updated>{iso_utc(model.at)}</updated>"
        f'<link rel="self" href="{escape(base)}/status/feed.atom"/><author><name>Service status</name></author>'
        f"{entries}</feed>"
    )
    return Response(feed, media_type="application/atom+xml")


@router.get("/api/v2/summary.json")
async def summary(request: Request) -> dict[str, Any]:
    """Statuspage's summary: page, components, unresolved incidents, status."""
    return summary_wire(await _model(request), f"{_base(request)}/status")


@router.get("/api/v2/status.json")
async def status_json(request: Request) -> dict[str, Any]:
    """Statuspage's status: page and the overall indicator."""
    out = summary_wire(await _model(request), f"{_base(request)}/status")
    return {"page": out["page"], "status": out["status"]}


@router.get("/api/v2/components.json")
async def components_json(request: Request) -> dict[str, Any]:
    """Statuspage's components."""
    out = summary_wire(await _model(request), f"{_base(request)}/status")
    return {"page": out["page"], "components": out["components"]}


@router.get("/api/v2/incidents.json")
async def incidents_json(request: Request) -> dict[str, Any]:
    """Statuspage's incidents: the last 30 days, unresolved first."""
    model = await _model(request, history=True)
    out = summary_wire(model, f"{_base(request)}/status")
    return {"page": out["page"], "incidents": [incident_wire(i) for i in model.incidents]}


PublicState = Literal["investigating", "identified", "monitoring", "resolved", "postmortem"]


class PublicUpdateRequest(BaseModel):
    """Draft (``approve`` false) or publish a public update; ``status``/``body`` override the draft."""

    approve: bool = False
    status: PublicState | None = None
    body: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(default=None, max_length=200)


_ACTIVE = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED)


@router.post(
    "/api/v1/incidents/{incident_id}/public-update",
    tags=["incidents"],
    dependencies=[Depends(require("write"))],
    status_code=200,
    responses={201: {"description": "Published on the status page and in the Atom feed"}},
)
def public_update(
    request: Request, incident_id: str, body: PublicUpdateRequest | None = None
) -> JSONResponse:
    """Draft a public update from the incident; with ``approve`` publish it (201)."""
    body = body or PublicUpdateRequest()
    store = request.app.state.store
    incident = repo.incident_by_id(store, incident_id)
    if incident is None:
        raise NotFoundError(f"incident {incident_id!r} not found")
    names = set(component_names(store))
    touched = [s for s in incident.services if s in names]
    if not touched:
        raise ConflictError(f"incident {incident_id} touches no public component: nothing to publish")
    status, text = draft_update(incident, touched, body.status)
    if body.body is not None:
        text = " ".join(body.body.split())
        if not text:
            raise SchemaError("body", "a public update cannot be empty")
    found = leaks(text, internal_terms(incident, repo.alerts_of(store, incident_id), sorted(names)))
    if found:
        raise SchemaError(
            "body", f"names internal detail {', '.join(map(repr, found))}: name components only"
        )
    if status in ("resolved", "postmortem") and incident.status in _ACTIVE:
        raise ConflictError(f"incident {incident_id} is {incident.status.value}: resolve it before {status}")
    out: dict[str, Any] = {"incident_id": public_id(incident.id), "status": status, "body": text,
                           "impact": impact_of(incident), "components": touched, "approved": body.approve,
                           "published_at": None}  # fmt: skip
    if not body.approve:
        return JSONResponse(out)
    pipeline: IncidentPipeline = request.app.state.incidents
    entry = pipeline.note(incident_id, actor_of(request, body.by), text, kind=PUBLIC_UPDATE,
                          detail={"status": status})  # fmt: skip
    out["published_at"] = iso_utc(entry.at)
    return JSONResponse(out, status_code=201)
