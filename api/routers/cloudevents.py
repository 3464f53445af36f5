"""``POST /api/v1/events``: CloudEvents 1.0 JSON, structured or batch mode."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.auth import check_scope, credentials
from api.ingesting import commit, count_ok, mark_format, read_body
from ingest.cloudevents import FORMAT, decode_events

router = APIRouter(tags=["ingest"])


@router.post("/api/v1/events", status_code=202)
async def cloudevents_intake(request: Request) -> JSONResponse:
    """Take one event or a batch; 202 once committed, 422 naming ``[i].field`` if any is invalid."""
    mark_format(request, FORMAT)
    check_scope(request, credentials(request), "ingest")
    body = await read_body(request)
    batch = decode_events(body, request.headers.get("content-type", ""))
    await commit(request, batch)
    count_ok(FORMAT, 202)
    accepted = len(batch.events) + len(batch.changes)
    return JSONResponse(
        {"accepted": accepted, "changes": len(batch.changes), "events": len(batch.events)}, status_code=202
    )
