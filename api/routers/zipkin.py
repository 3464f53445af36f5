"""``POST /api/v2/spans``: Zipkin v2 JSON spans (what Zipkin reporters and the Collector send).

Zipkin answers 202 Accepted with an empty body; we do too, once the spans are committed.
Errors use opsloop's one error body, naming the span and field.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from api.auth import require
from api.errors import error_response
from api.ingesting import commit, count_ok, mark_format, read_body
from core.errors import OpsloopError, UnsupportedMediaError
from ingest.traces import ZIPKIN, decode_zipkin

router = APIRouter(tags=["ingest"])


@router.post("/api/v2/spans", status_code=202, dependencies=[Depends(require("ingest"))])
async def zipkin_spans(request: Request) -> Response:
    """Take a JSON list of Zipkin v2 spans; 202 once committed."""
    mark_format(request, ZIPKIN)
    try:
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in ("application/json", ""):
            raise UnsupportedMediaError(
                f"Content-Type must be application/json (Zipkin v2 JSON), got {ctype!r}"
            )
        body = await read_body(request)
        await commit(request, decode_zipkin(body))
    except OpsloopError as exc:
        return error_response(exc, ZIPKIN)
    count_ok(ZIPKIN, 202)
    return Response(status_code=202)
