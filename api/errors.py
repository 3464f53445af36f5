"""The one place the error tree becomes HTTP: status codes and bodies that name the field."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

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


class ErrorBody(BaseModel):
    """The one error body every route answers with (unknown routes and remote-write too)."""

    error: str = Field(description="what went wrong, for a person")
    type: str = Field(description="the opsloop error class, e.g. SchemaError, NotFoundError")
    field: str | None = Field(default=None, description="the parameter or body field at fault")
    details: list[dict[str, Any]] | None = Field(default=None, description="validation details")


#: Error answers any route may give, documented once on every operation of the OpenAPI.
RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for code, text in (
        (400, "Bad request (undecodable body or parameter)"),
        (401, "Missing, unknown or revoked token"),
        (403, "The token lacks the scope this route needs"),
        (404, "No such object or route"),
        (409, "Conflict with the object's current state"),
        (413, "Body larger than the server accepts"),
        (415, "Unsupported Content-Type or Content-Encoding"),
        (422, "A field or parameter is invalid (named in ``field``)"),
        (429, "Ingest queue full: retry after ``Retry-After`` seconds"),
        (503, "Store temporarily unavailable: retry after ``Retry-After`` seconds"),
    )
}


def protocol_responses(
    schema: dict[str, Any], media_types: tuple[str, ...] = ("application/json",), *, what: str
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error answers of a route whose protocol fixes the error body (OTLP, PagerDuty):
    the same codes as :data:`RESPONSES`, each with that protocol's body ``schema``."""
    content = {media: {"schema": schema} for media in media_types}
    return {
        code: {"description": f"{spec['description']} ({what})", "content": content}
        for code, spec in RESPONSES.items()
    }


#: The HTTP reason of a Starlette error, as one of our error classes.
_HTTP_TYPES = {401: "AuthError", 403: "ForbiddenError", 404: "NotFoundError", 405: "MethodNotAllowed"}


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
    if plain:  # for a peer whose protocol wants text; opsloop's own routes all answer JSON
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

    async def on_http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own answers (unknown route, wrong method) in our body, not {"detail": ...}
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            detail = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} not allowed on {request.url.path}"
        body = {"error": detail, "type": _HTTP_TYPES.get(exc.status_code, "HTTPError")}
        return JSONResponse(body, status_code=exc.status_code, headers=dict(exc.headers or {}))

    handlers: dict[type[Exception], Callable[..., object]] = {
        OpsloopError: on_opsloop_error,
        RequestValidationError: on_validation_error,
        StarletteHTTPException: on_http_error,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)  # type: ignore[arg-type]
    install_openapi(app)


def install_openapi(app: FastAPI) -> None:
    """Describe errors in ``/openapi.json``: the error answers of :data:`RESPONSES`, with the one
    :class:`ErrorBody`, on every operation (422 included, in place of FastAPI's ``{"detail"}``).
    The bearer and Basic security schemes come from ``api.auth.require``'s security dependencies."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema and "ErrorBody" in app.openapi_schema.get("components", {}).get("schemas", {}):
            return app.openapi_schema
        with warnings.catch_warnings():  # a GET+POST route shares one id: made unique below
            warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
            schema = generate()
        seen: set[str] = set()
        for path_item in schema.get("paths", {}).values():
            for method, operation in path_item.items():
                op_id = operation.get("operationId")
                if op_id in seen:
                    operation["operationId"] = f"{op_id}_{method}"
                seen.add(operation.get("operationId", ""))
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["ErrorBody"] = ErrorBody.model_json_schema()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                own = "ErrorBody" not in str(responses.get("400", "ErrorBody"))
                for code, spec in RESPONSES.items():
                    if not own and (code == 422 or str(code) not in responses):
                        responses[str(code)] = spec
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
