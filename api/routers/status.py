"""The public status page (no token): ``/status``, ``/status/history``, ``/status/feed.atom`` and the
Statuspage-shaped ``/api/v2/summary.json``, ``status.json``, ``components.json``, ``incidents.json``.

Server-rendered with Jinja2 (autoescaped, no JavaScript); the model is ``api.statuspage``, which
publishes components and states only, never internal titles, evidence, hosts or labels.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from api.statuspage import StatusModel, build, incident_wire, summary_wire
from core.settings import Settings
from core.wire import iso_utc
from detect.incidents import repository as repo

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


def _page(request: Request, model: StatusModel, heading: str) -> HTMLResponse:
    html = _TEMPLATES.get_template("index.html").render(
        title="Service status", base=_base(request), indicator=model.indicator, description=model.description,
        components=model.components, at=iso_utc(model.at), incidents_heading=heading,
        incidents=[{"id": i.id, "name": i.name, "status": i.status, "updated_at": iso_utc(i.updated_at)}
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
        f"<entry><id>urn:opsloop:status:{i.id}:{i.status}</id><title>{escape(i.name)} ({i.status})</title>"
        f'<updated>{iso_utc(i.updated_at)}</updated><link href="{escape(base)}/status/history"/>'
        f"<summary>{escape(i.impact)} impact on {escape(', '.join(i.components))}</summary></entry>"
        for i in model.incidents
    )
    feed = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>urn:opsloop:status</id><title>Service status</title><updated>{iso_utc(model.at)}</updated>"
        f'<link rel="self" href="{escape(base)}/status/feed.atom"/>{entries}</feed>'
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
