"""``POST /api/v1/alerts/alertmanager``: Alertmanager webhook receiver (payload version 4)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.auth import check_scope, credentials
from api.ingesting import commit, count_ok, mark_format, read_body
from ingest.alertmanager import FORMAT, decode_webhook

router = APIRouter(tags=["ingest"])


@router.post("/api/v1/alerts/alertmanager")
async def alertmanager_webhook(request: Request) -> JSONResponse:
    """Take one webhook notification; 200 once committed (Alertmanager retries only 5xx)."""
    mark_format(request, FORMAT)
    check_scope(request, credentials(request), "ingest")  # bearer or basic, as http_config sends
    batch = decode_webhook(await read_body(request))
    (result,) = await commit(request, batch)
    count_ok(FORMAT, 200)
    return JSONResponse({"status": "success", "alerts": len(batch.alerts), "duplicate": result.duplicate})
