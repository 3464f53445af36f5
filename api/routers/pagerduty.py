"""``POST /v2/enqueue``: PagerDuty Events API v2 compatible intake.

The ``routing_key`` in the body is the credential (a token with the ``ingest`` scope); a
normal ``Authorization`` header is accepted too. Errors answer in PagerDuty's shape.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.auth import check_scope, credentials
from api.errors import protocol_responses, reason_for, status_for
from api.ingesting import commit, count_ok, mark_format, read_body
from core.errors import (
    AuthError,
    BackpressureError,
    OpsloopError,
    PayloadTooLargeError,
    SchemaError,
    StorageError,
)
from core.telemetry import INGEST_REJECTED, INGEST_REQUESTS
from ingest.pagerduty import FORMAT, MAX_BYTES, decode_event, parse_body, routing_key_of

router = APIRouter(tags=["ingest"])
#: The error answers, documented in PagerDuty's shape.
PAGERDUTY_ERRORS = protocol_responses(
    {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["status", "message", "errors"],
    },
    what="PagerDuty's error body",
)


@router.post("/v2/enqueue", status_code=202, responses=PAGERDUTY_ERRORS)
async def enqueue(request: Request) -> JSONResponse:
    """Take one alert event; 202 with the caller's dedup key once committed."""
    mark_format(request, FORMAT)
    try:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BYTES:
            raise PayloadTooLargeError(int(declared), MAX_BYTES)
        raw = parse_body(await read_body(request))
        header_token = credentials(request)
        # the routing key is checked first: it is required, and it is the credential
        routing_key = routing_key_of(raw)
        check_scope(request, header_token or routing_key, "ingest")
        decoded = decode_event(raw)
        await commit(request, decoded.batch)
    except OpsloopError as exc:
        return pagerduty_error(exc)
    count_ok(FORMAT, 202)
    return JSONResponse(
        {"status": "success", "message": "Event processed", "dedup_key": decoded.dedup_key},
        status_code=202,
    )


def pagerduty_error(exc: OpsloopError) -> JSONResponse:
    """Answer an error the way PagerDuty does: ``status``, ``message`` and ``errors``."""
    code = status_for(exc)
    status, message = "error", "Internal error"
    headers: dict[str, str] = {}
    if isinstance(exc, SchemaError):
        code, status, message = 400, "invalid event", "Event object is invalid"
    elif isinstance(exc, PayloadTooLargeError):
        status, message = "invalid event", "Request entity too large"
    elif isinstance(exc, AuthError):
        status, message = "unauthorized", "Invalid routing key"
        if code == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="opsloop"'
    elif isinstance(exc, BackpressureError):
        status, message = "throttle event", "Requests are arriving too quickly. Please back off."
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    elif isinstance(exc, StorageError) and exc.recoverable:
        headers["Retry-After"] = "1"
    elif code < 500:
        status, message = "invalid event", "Event object is invalid"
    INGEST_REJECTED.labels(FORMAT, reason_for(exc)).inc()
    INGEST_REQUESTS.labels(FORMAT, str(code)).inc()
    return JSONResponse(
        {"status": status, "message": message, "errors": [exc.message]}, status_code=code, headers=headers
    )
