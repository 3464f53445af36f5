"""``POST /api/v1/bootstrap/token``: create a token while serving, with the server file's secret.

The first admin token cannot be made with ``opsloop token create`` while the server holds
the database, so the server writes ``<db>.serve.json`` (mode 0600, see ``api.server_file``)
at start-up and accepts its secret here, from a loopback peer only, compared in constant
time, for this one endpoint. ``opsloop token create`` uses it when the file is locked.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from api.server_file import remove_server_file, write_server_file
from core.errors import AuthError, ForbiddenError

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@asynccontextmanager
async def _server_file(app: FastAPI) -> AsyncIterator[None]:
    """Write the server file at start-up and remove it at shutdown."""
    settings = app.state.settings
    try:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        secret = write_server_file(settings.db, f"http://{host}:{settings.port}")
    except OSError:  # a read-only directory: serving works, bootstrap does not
        secret = None
    app.state.bootstrap_secret = secret
    try:
        yield
    finally:
        if secret is not None:
            remove_server_file(settings.db, secret)


router = APIRouter(tags=["admin"], lifespan=_server_file)


class BootstrapRequest(BaseModel):
    """What the new token may do."""

    scopes: list[str] = Field(min_length=1, description="ingest, read, write and/or admin")
    name: str = ""


@router.post("/api/v1/bootstrap/token", status_code=201)
async def bootstrap_token(body: BootstrapRequest, request: Request) -> dict[str, Any]:
    """Create a token; needs ``Authorization: Bearer <secret of <db>.serve.json>`` from loopback."""
    secret: str | None = getattr(request.app.state, "bootstrap_secret", None)
    if request.client is None or request.client.host not in LOOPBACK:
        raise ForbiddenError("the bootstrap secret is accepted from this host only (127.0.0.1)")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if secret is None or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), secret):
        raise AuthError("send the secret of the server file <db>.serve.json as the bearer token")
    token_id, token = request.app.state.store.issue_token(body.scopes, body.name)
    return {"id": token_id, "token": token, "name": body.name, "scopes": sorted(set(body.scopes))}
