"""The runbook catalog over HTTP.

``POST /api/v1/runbooks`` (admin) takes a runbook file's YAML as the body (one or more
documents) and answers each runbook with its version and whether this load changed it (422
naming document and field when invalid). ``GET /api/v1/runbooks`` (read) pages through the
active version of each runbook, by name (``limit``/``cursor`` -> ``{items, next_cursor, total}``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from api.auth import require
from api.common import CURSOR_PARAM, actor_of, cursor_page
from core.errors import ConfigError, SchemaError
from core.wire import iso_or_none
from resolve.catalog import Loaded
from resolve.remediation import Remediation

router = APIRouter(tags=["resolve"])
MAX_RUNBOOK_BYTES = 1024 * 1024


def runbook_to_wire(item: Loaded) -> dict[str, Any]:
    """The API shape of a stored runbook."""
    rb = item.runbook
    return {
        "name": rb.name,
        "version": rb.version,
        "hash": rb.hash,
        "source": rb.source,
        "mode": rb.mode,
        "changed": item.changed,
        "loaded_at": iso_or_none(item.loaded_at),
        "steps": [s.name for s in rb.spec.steps],
        "rollback": [s.name for s in rb.spec.rollback],
        "verify_window_s": rb.spec.verify.window,
        "limits": rb.spec.limits.model_dump(),
        "match": rb.spec.match.model_dump(mode="json", exclude_none=True),
    }


def _remediation(request: Request) -> Remediation:
    found: Remediation = request.app.state.loop.remediation
    return found


@router.post("/api/v1/runbooks", status_code=201, dependencies=[Depends(require("admin"))])
async def load_runbooks(request: Request) -> JSONResponse:
    """Validate and store a runbook file (YAML body)."""
    body = await request.body()
    if len(body) > MAX_RUNBOOK_BYTES:
        raise SchemaError("body", f"a runbook file is at most {MAX_RUNBOOK_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        loaded = _remediation(request).catalog.load_text(text, "request", actor_of(request))
    except UnicodeDecodeError as exc:
        raise SchemaError("body", "runbooks are UTF-8 YAML") from exc
    except ConfigError as exc:
        raise SchemaError("body", exc.message) from exc
    return JSONResponse([runbook_to_wire(item) for item in loaded], status_code=201)


@router.get("/api/v1/runbooks", dependencies=[Depends(require("read"))])
def list_runbooks(
    request: Request,
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = CURSOR_PARAM,
) -> dict[str, Any]:
    """The active version of each runbook, by name, a page at a time."""
    wire = [runbook_to_wire(item) for item in _remediation(request).catalog.active()]
    return cursor_page(wire, key=lambda r: (r["name"],), limit=limit, cursor=cursor)
