"""SLOs: list with status, one SLO with its burn history, and loading OpenSLO documents.

``GET /api/v1/slos`` and ``GET /api/v1/slos/{name}`` need ``read``; ``POST /api/v1/slos``
(OpenSLO YAML, or JSON: one document or a list) needs ``write`` and answers 201 with the
SLOs it stored, or 422 naming the document and field at fault.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.common import CURSOR_PARAM, cursor_page, parse_time
from api.convert import budget_point_to_wire, slo_to_wire
from core.errors import ConfigError, NotFoundError, SchemaError
from core.store import Store
from slo.engine import SloEngine
from slo.repository import history, latest_statuses

router = APIRouter(tags=["slos"])

MAX_SPEC_BYTES = 1 << 20


def _engine(request: Request) -> SloEngine:
    engine: SloEngine = request.app.state.slos
    return engine


@router.get("/api/v1/slos", dependencies=[Depends(require("read"))])
def list_slos(
    request: Request, limit: int = Query(default=100, ge=1, le=1000), cursor: str | None = CURSOR_PARAM
) -> dict[str, Any]:
    """SLOs by name with their latest evaluated status, a page at a time."""
    engine = _engine(request)
    statuses = latest_statuses(engine.store)
    wire = [slo_to_wire(spec, statuses.get(spec.name)) for spec in engine.specs]
    return cursor_page(wire, key=lambda s: (s["name"],), limit=limit, cursor=cursor)


@router.get("/api/v1/slos/{name}", dependencies=[Depends(require("read"))])
def get_slo(request: Request, name: str, since: str | None = None, limit: int = 2000) -> dict[str, Any]:
    """One SLO: status, budget, and its burn and budget history (oldest first)."""
    engine = _engine(request)
    spec = next((s for s in engine.specs if s.name == name), None)
    if spec is None:
        raise NotFoundError(f"SLO {name!r} not found")
    if not 1 <= limit <= 100_000:
        raise SchemaError("limit", "expected 1..100000")
    store: Store = engine.store
    points = history(store, name, parse_time("since", since), limit)
    out = slo_to_wire(spec, points[-1] if points else None)
    out["history"] = [budget_point_to_wire(p) for p in points]
    out["documents"] = spec.source.get("documents", [])
    return out


@router.post("/api/v1/slos", status_code=201, dependencies=[Depends(require("write"))])
async def post_slos(request: Request) -> dict[str, Any]:
    """Store the SLOs of an OpenSLO document set (YAML or JSON)."""
    body = await request.body()
    if len(body) > MAX_SPEC_BYTES:
        raise SchemaError("body", f"at most {MAX_SPEC_BYTES} bytes of OpenSLO documents")
    if not body.strip():
        raise SchemaError("body", "expected OpenSLO documents (YAML or JSON)")
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise SchemaError("body", "expected UTF-8 text") from exc
    engine = _engine(request)
    try:
        specs = await run_in_threadpool(engine.load, text)
    except ConfigError as exc:
        raise SchemaError("body", exc.message) from exc
    return {"slos": [s.name for s in specs]}
