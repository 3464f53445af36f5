"""The reliability backlog the error-budget policy keeps (``slo.policy``), as the API shows it.

``GET /api/v1/backlog`` (read) lists items, open before downgraded before closed and highest
WSJF priority first (``sort=newest``: most recently changed first), filtered by ``status``
(repeatable or comma-separated: ``open``, ``downgraded``, ``closed``) and ``slo``.
``GET /api/v1/backlog/{id}`` adds what each tracker holds (issue id or key, URL, revision).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from api.auth import require
from api.common import CURSOR_PARAM, SCAN_ROWS, cursor_page
from api.convert import backlog_item_to_wire
from core.errors import NotFoundError, SchemaError
from core.store import Store
from slo import backlog_repository as repo

router = APIRouter(tags=["backlog"])

STATUSES = ("open", "downgraded", "closed")
SORTS = ("priority", "newest")


def parse_backlog_statuses(values: Sequence[str]) -> list[str]:
    """Item statuses, repeated or comma-separated; 422 naming ``status`` for an unknown one.

    >>> parse_backlog_statuses(["open,closed", "open"])
    ['open', 'closed']
    """
    out: list[str] = []
    for value in values:
        for part in (p.strip().lower() for p in value.split(",")):
            if not part:
                continue
            if part not in STATUSES:
                raise SchemaError(
                    "status", f"unknown status {part!r} (expected one of {', '.join(STATUSES)})"
                )
            if part not in out:
                out.append(part)
    return out


@router.get("/api/v1/backlog", dependencies=[Depends(require("read"))])
def list_backlog(
    request: Request,
    status: list[str] = Query(default=[]),
    slo: str | None = None,
    sort: str = "priority",
    limit: int = Query(default=100, ge=1, le=1000),
    cursor: str | None = CURSOR_PARAM,
) -> dict[str, Any]:
    """Backlog items, a page at a time: ``{items, next_cursor, total}`` (``total`` counts every
    item matching the filters); the cursor is the position in ``sort`` order."""
    if sort not in SORTS:
        raise SchemaError("sort", f"expected one of {', '.join(SORTS)}, got {sort!r}")
    store: Store = request.app.state.store
    statuses = parse_backlog_statuses(status)
    found = repo.list_items(store, status=statuses, slo=slo or None, sort=sort, limit=SCAN_ROWS)
    rank = {s.item.id: i for i, s in enumerate(found)}
    page = cursor_page(
        [{"id": s.item.id} for s in found], key=lambda r: (rank[r["id"]], r["id"]), limit=limit, cursor=cursor
    )
    shown = {r["id"] for r in page["items"]}
    deliveries = repo.deliveries_of(store, sorted(shown))
    page["items"] = [
        backlog_item_to_wire(s.item, s.revision, [d for d in deliveries if d.item_id == s.item.id])
        for s in found
        if s.item.id in shown
    ]
    page["total"] = repo.count_items(store, status=statuses, slo=slo or None)
    return page


@router.get("/api/v1/backlog/{item_id}", dependencies=[Depends(require("read"))])
def get_backlog_item(request: Request, item_id: str) -> dict[str, Any]:
    """One item with its evidence and its ``deliveries`` to trackers."""
    store: Store = request.app.state.store
    found = repo.item_by_id(store, item_id)
    if found is None:
        raise NotFoundError(f"backlog item {item_id!r} not found")
    out = backlog_item_to_wire(found.item, found.revision, repo.deliveries_of(store, [item_id]))
    out.setdefault("deliveries", [])
    return out
