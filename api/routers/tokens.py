"""Token administration over HTTP (scope ``admin``).

DuckDB lets one process write a database, so while ``opsloop serve`` runs the CLI cannot
create tokens; an admin token (made with ``opsloop token create --scope admin`` before the
first start) manages the others here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.auth import require
from api.common import CURSOR_PARAM, cursor_page, time_key
from core.store import Store
from core.wire import iso_utc

router = APIRouter(tags=["admin"], dependencies=[Depends(require("admin"))])


class TokenRequest(BaseModel):
    """What a new token may do."""

    scopes: list[str] = Field(min_length=1, description="ingest, read, write and/or admin")
    name: str = ""


@router.post("/api/v1/tokens", status_code=201)
async def create_token(body: TokenRequest, request: Request) -> dict[str, Any]:
    """Create a token; the secret is in this answer only."""
    token_id, token = request.app.state.store.issue_token(body.scopes, body.name)
    return {"id": token_id, "token": token, "name": body.name, "scopes": sorted(set(body.scopes))}


@router.get("/api/v1/tokens")
async def list_tokens(
    request: Request, limit: int = Query(default=100, ge=1, le=1000), cursor: str | None = CURSOR_PARAM
) -> dict[str, Any]:
    """Tokens, newest first, a page at a time (never their secrets)."""
    key = lambda t: (time_key(t["created_at"]), t["id"])  # noqa: E731
    return cursor_page(_list(request.app.state.store), key=key, reverse=True, limit=limit, cursor=cursor)


@router.delete("/api/v1/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: str, request: Request) -> None:
    """Revoke a token; it stops working at once."""
    request.app.state.store.revoke_token(token_id)
    request.app.state.tokens.clear()


def _list(store: Store) -> list[dict[str, Any]]:
    rows = store.list_tokens(newest_first=True)
    return [
        {"id": r[0], "name": r[1], "scopes": list(r[2]), "created_at": iso_utc(r[3]), "revoked": r[4]}
        for r in rows
    ]
