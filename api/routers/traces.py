"""``GET /api/v1/incidents/{id}/traces`` (read): a few representative traces of an incident.

The incident's services' failing traces first, then the slowest, from five minutes before it
opened until it resolved (or now), each with its spans in start order: what an SRE opens
next to the hypotheses to see where the time and the errors go.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from api.auth import require
from core.errors import NotFoundError
from detect.incidents import repository as repo
from diagnose.traces import traces_of

router = APIRouter(tags=["incidents"])

#: Traces are looked for from this long before the incident opened (the trouble leads the alarm).
LEAD = timedelta(minutes=5)


@router.get("/api/v1/incidents/{incident_id}/traces", dependencies=[Depends(require("read"))])
def incident_traces(request: Request, incident_id: str, limit: int = Query(5, ge=1, le=50)) -> dict[str, Any]:
    """Representative failing and slow traces of the incident's services, with their spans."""
    store = request.app.state.store
    incident = repo.incident_by_id(store, incident_id)
    if incident is None:
        raise NotFoundError(f"incident {incident_id!r} not found")
    services = sorted(
        {a.service for a in repo.alerts_of(store, incident_id) if a.service} | set(incident.services)
    )
    start = incident.opened_at - LEAD
    end = incident.resolved_at or datetime.now(UTC).replace(tzinfo=None)
    return {
        "incident": incident_id,
        "services": services,
        "from": start.isoformat() + "Z",
        "to": end.isoformat() + "Z",
        "traces": traces_of(store, services, start, end, limit),
    }
