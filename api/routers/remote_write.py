"""``POST /api/v1/write``: Prometheus remote-write 1.0 receiver."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from api.auth import require
from api.errors import error_response
from api.ingesting import commit, count_ok, read_body
from core.errors import OpsloopError
from ingest.remote_write import FORMAT, RemoteWriteDecoder

router = APIRouter(tags=["ingest"])


@router.post("/api/v1/write", status_code=204, dependencies=[Depends(require("ingest"))])
async def remote_write(request: Request) -> Response:
    """Take one remote-write request; 204 once committed, 400 for bad data (never retried)."""
    decoder: RemoteWriteDecoder = request.app.state.remote_write
    try:
        body = await read_body(request, decode_http_encoding=False)
        batch = decoder.decode(
            body,
            request.headers.get("content-type", "application/x-protobuf"),
            request.headers.get("content-encoding", "snappy"),
        )
        await commit(request, batch)
    except OpsloopError as exc:
        # The spec asks 400 for any invalid sample; the body is opsloop's one JSON error body,
        # which Prometheus logs as it is.
        return error_response(exc, FORMAT, schema_status=400)
    count_ok(FORMAT, 204)
    return Response(status_code=204)
