"""``PUT /api/v1/topology`` replaces the service topology; ``GET`` returns it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from api.auth import require
from api.ingesting import commit, read_body
from ingest.topology import current_topology, decode_topology, to_document

router = APIRouter(tags=["topology"])


@router.put("/api/v1/topology", dependencies=[Depends(require("write"))])
async def put_topology(request: Request) -> dict[str, Any]:
    """Replace the topology with the YAML or JSON body; 422 names the bad field."""
    batch = decode_topology(await read_body(request), request.headers.get("content-type", ""))
    await commit(request, batch)
    return {"services": len(batch.topology or ())}


@router.get("/api/v1/topology", dependencies=[Depends(require("read"))])
async def get_topology(request: Request) -> dict[str, Any]:
    """Return the stored topology in the shape PUT accepts."""
    return to_document(current_topology(request.app.state.store))
