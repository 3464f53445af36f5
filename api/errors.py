"""The one place the error tree becomes HTTP: status codes and bodies that name the field."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from core.errors import (
    AuthError,
    BackpressureError,
    ConflictError,
    DecodeError,
    ForbiddenError,
    NotFoundError,
    OpsloopError,
    PayloadTooLargeError,
    SchemaError,
    StorageError,
    UnsupportedMediaError,
)
from core.telemetry import INGEST_REJECTED, INGEST_REQUESTS


def status_for(exc: OpsloopError) -> int:
    """Map an opsloop error to its HTTP status code."""
    table: list[tuple[type[OpsloopError], int]] = [
        (DecodeError, 400),
        (SchemaError, 422),
        (PayloadTooLargeError, 413),
        (UnsupportedMediaError, 415),
        (BackpressureError, 429),
        (ForbiddenError, 403),
        (AuthError, 401),
        (NotFoundError, 404),
        (ConflictError, 409),
    ]
    for kind, code in table:
        if isinstance(exc, kind):
            return code
    if isinstance(exc, StorageError):
        return 503 if exc.recoverable else 500
    return 400


def reason_for(exc: OpsloopError) -> str:
    """The bounded ``reason`` label for the rejected-requests counter."""
    for kind, reason in (
        (DecodeError, "decode"),
        (SchemaError, "validation"),
        (PayloadTooLargeError, "too_large"),
        (UnsupportedMediaError, "unsupported_media"),
        (BackpressureError, "rate_limited"),
        (AuthError, "unauthorized"),
        (StorageError, "storage"),
    ):
        if isinstance(exc, kind):
            return reason
    return "other"


def error_body(exc: OpsloopError) -> dict[str, object]:
    """The JSON error body: ``error`` (message), ``field`` when a field is at fault."""
    body: dict[str, object] = {"error": exc.message, "type": type(exc).__name__}
    if isinstance(exc, SchemaError):
        body["field"] = exc.field
    return body


def error_response(
    exc: OpsloopError, fmt: str | None = None, plain: bool = False, schema_status: int = 422
) -> Response:
    """Build the response for an error, counting it under ``fmt`` when it came from ingest.

    ``schema_status`` lets a protocol whose spec says so (remote-write: 400) answer field
    errors with another 4xx than 422.
    """
    code = status_for(exc)
    if code == 422:
        code = schema_status
    if fmt:
        INGEST_REJECTED.labels(fmt, reason_for(exc)).inc()
        INGEST_REQUESTS.labels(fmt, str(code)).inc()
    headers: dict[str, str] = {}
    if isinstance(exc, BackpressureError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    elif isinstance(exc, StorageError) and exc.recoverable:
        headers["Retry-After"] = "1"
    if isinstance(exc, AuthError) and not isinstance(exc, ForbiddenError):
        headers["WWW-Authenticate"] = 'Bearer realm="opsloop", Basic realm="opsloop"'
    if plain:  # Prometheus senders log a human-readable body
        return Response(exc.message + "\n", status_code=code, headers=headers, media_type="text/plain")
    return JSONResponse(error_body(exc), status_code=code, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn the error tree and request validation into responses."""

    async def on_opsloop_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpsloopError)
        return error_response(exc, request.scope.get("opsloop_format"))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        body = {
            "error": f"{loc}: {first.get('msg', 'invalid')}",
            "field": loc,
            "type": "SchemaError",
            "details": json.loads(json.dumps(errors, default=str)),
        }
        return JSONResponse(body, status_code=422)

    handlers: dict[type[Exception], Callable[..., object]] = {
        OpsloopError: on_opsloop_error,
        RequestValidationError: on_validation_error,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)  # type: ignore[arg-type]
