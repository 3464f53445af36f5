"""Known errors: ``GET/POST /api/v1/known-errors``, ``DELETE /api/v1/known-errors/{id}``.

A known error is ``{id, problem_id, title, signature, workaround, services}``; ``signature`` is
a regular expression that Diagnose searches in each suspect service's alert names, log
templates and change descriptions. A match puts the workaround into the hypothesis'
recommendation. Reads need ``read``, changes need ``write``; a bad regular expression is a 422
naming ``signature``.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import require
from api.common import CURSOR_PARAM, actor_of, cursor_page, time_key
from api.convert import iso_utc
from core.model import KnownError
from diagnose.known_errors import created_now, delete_known_error, list_known_errors, save_known_error

router = APIRouter(tags=["known errors"])


class KnownErrorRequest(BaseModel):
    """A known error to record (``id`` to replace one)."""

    id: str | None = Field(default=None, max_length=200)
    problem_id: str = Field(default="", max_length=200)
    title: str = Field(default="", max_length=500)
    signature: str = Field(max_length=2000)
    workaround: str = Field(max_length=8000)
    services: list[str] = Field(default_factory=list, max_length=200)
    by: str | None = Field(default=None, max_length=200)


def known_error_to_wire(ke: KnownError) -> dict[str, Any]:
    """The API shape of a known error."""
    return {
        "id": ke.id,
        "problem_id": ke.problem_id,
        "title": ke.title,
        "signature": ke.signature,
        "workaround": ke.workaround,
        "services": list(ke.services),
        "created_by": ke.created_by,
        "created_at": iso_utc(ke.created_at) if ke.created_at else None,
    }


@router.get("/api/v1/known-errors", dependencies=[Depends(require("read"))])
def list_all(
    request: Request, limit: int = Query(default=100, ge=1, le=1000), cursor: str | None = CURSOR_PARAM
) -> dict[str, Any]:
    """Known errors, oldest first, a page at a time."""
    wire = [known_error_to_wire(k) for k in list_known_errors(request.app.state.store)]
    return cursor_page(wire, key=lambda k: (time_key(k["created_at"]), k["id"]), limit=limit, cursor=cursor)


@router.post("/api/v1/known-errors", status_code=201, dependencies=[Depends(require("write"))])
def create(request: Request, body: KnownErrorRequest) -> JSONResponse:
    """Record (or with ``id``, replace) a known error; Diagnose matches it from the next run."""
    ke = KnownError(
        id=body.id or f"KE-{uuid.uuid4().hex[:12]}", problem_id=body.problem_id, title=body.title,
        signature=body.signature, workaround=body.workaround, services=tuple(body.services),
        created_by=actor_of(request, body.by), created_at=created_now(),
    )  # fmt: skip
    save_known_error(request.app.state.store, ke)
    return JSONResponse(known_error_to_wire(ke), status_code=201)


@router.delete("/api/v1/known-errors/{known_error_id}", dependencies=[Depends(require("write"))])
def delete(request: Request, known_error_id: str) -> Response:
    """Remove a known error (404 when unknown)."""
    delete_known_error(request.app.state.store, known_error_id)
    return Response(status_code=204)
