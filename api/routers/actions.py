"""Runbook plans and actions, approvals and the kill switch.

``GET /api/v1/actions[?incident=]`` (read) lists step executions with ``id, incident, runbook,
step, status, argv|request, output, created_at, started_at, ended_at, approved_by``, oldest first,
a page at a time (``limit``/``cursor`` -> ``{items, next_cursor, total}``, as every list).
``POST /api/v1/actions/{id}/approve`` and ``/reject`` (write) decide a plan waiting for
approval (409 unless it waits). ``GET /api/v1/incidents/{id}/plans`` (read) pages through the
incident's plans, oldest first, each a dry run with every value rendered. ``POST /api/v1/resolve/pause`` (write) stops
every runbook step; ``POST /api/v1/resolve/resume`` (admin) lets them run again;
``GET /api/v1/resolve/status`` (read) says which.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from api.auth import require
from api.common import CURSOR_PARAM, actor_of, cursor_page, time_key
from core.wire import iso_or_none
from resolve import actions_repository as repo
from resolve.remediation import Remediation

router = APIRouter(tags=["resolve"])


def action_to_wire(a: repo.ActionRow) -> dict[str, Any]:
    """The API shape of one action."""
    out: dict[str, Any] = {
        "id": a.id,
        "incident": a.incident_id,
        "plan": a.plan_id,
        "runbook": a.runbook,
        "step": a.step,
        "phase": a.phase,
        "kind": a.kind,
        "status": a.status,
        "output": a.output,
        "error": a.error,
        "attempts": a.attempts,
        "created_at": iso_or_none(a.created_at),
        "started_at": iso_or_none(a.started_at),
        "ended_at": iso_or_none(a.ended_at),
        "approved_by": a.approved_by or None,
    }
    if a.kind == "command":
        out["argv"] = a.rendered.get("argv", [])
    else:
        out["request"] = a.rendered.get("request", {})
    return out


def plan_to_wire(p: repo.PlanRow) -> dict[str, Any]:
    """The API shape of one plan (a dry run: every value rendered)."""
    return {
        "id": p.id,
        "incident": p.incident_id,
        "runbook": p.runbook,
        "version": p.runbook_version,
        "mode": p.mode,
        "status": p.status,
        "service": p.service,
        "steps": p.steps,
        "rollback": p.rollback,
        "verify_window_s": p.verify_window_s,
        "error": p.error or None,
        "approved_by": p.approved_by or None,
        "created_at": iso_or_none(p.created_at),
        "started_at": iso_or_none(p.started_at),
        "mitigated_at": iso_or_none(p.mitigated_at),
        "verify_until": iso_or_none(p.verify_until),
        "finished_at": iso_or_none(p.finished_at),
        "verdict": p.verdict,
    }


def _by_creation(item: dict[str, Any]) -> tuple[str, str]:
    """Actions and plans page oldest first; the id breaks ties (a cursor key is unique)."""
    return time_key(item["created_at"]), str(item["id"])


def _remediation(request: Request) -> Remediation:
    found: Remediation = request.app.state.loop.remediation
    return found


@router.get("/api/v1/actions", dependencies=[Depends(require("read"))])
def list_actions(
    request: Request,
    incident: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = CURSOR_PARAM,
) -> dict[str, Any]:
    """Step executions, oldest first, a page at a time."""
    wire = [action_to_wire(a) for a in repo.actions(request.app.state.store, incident=incident)]
    return cursor_page(wire, key=_by_creation, limit=limit, cursor=cursor)


@router.post("/api/v1/actions/{action_id}/approve", dependencies=[Depends(require("write"))])
def approve(request: Request, action_id: str) -> dict[str, Any]:
    """Approve a plan waiting at this action: its steps run."""
    return action_to_wire(_remediation(request).executor.approve(action_id, actor_of(request)))


@router.post("/api/v1/actions/{action_id}/reject", dependencies=[Depends(require("write"))])
def reject(request: Request, action_id: str) -> dict[str, Any]:
    """Reject a plan waiting at this action: nothing runs."""
    return action_to_wire(_remediation(request).executor.reject(action_id, actor_of(request)))


@router.get("/api/v1/incidents/{incident_id}/plans", dependencies=[Depends(require("read"))])
def incident_plans(
    request: Request,
    incident_id: str,
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = CURSOR_PARAM,
) -> dict[str, Any]:
    """The incident's plans, oldest first, a page at a time."""
    wire = [plan_to_wire(p) for p in repo.plans(request.app.state.store, incident=incident_id)]
    return cursor_page(wire, key=_by_creation, limit=limit, cursor=cursor)


@router.get("/api/v1/resolve/status", dependencies=[Depends(require("read"))])
def status(request: Request) -> dict[str, Any]:
    """Whether the kill switch is on."""
    return {"paused": _remediation(request).executor.paused}


@router.post("/api/v1/resolve/pause", dependencies=[Depends(require("write"))])
def pause(request: Request) -> dict[str, Any]:
    """Kill switch: no runbook step runs until resumed."""
    _remediation(request).executor.pause(actor_of(request))
    return {"paused": True}


@router.post("/api/v1/resolve/resume", dependencies=[Depends(require("admin"))])
def resume(request: Request) -> dict[str, Any]:
    """Let runbook steps run again (admin: resuming is the deliberate act)."""
    _remediation(request).executor.resume(actor_of(request))
    return {"paused": False}
