"""``GET /api/v1/stream`` (bearer, ``read``): Server-Sent Events of what happens, read from the store.

Events: ``incident.opened``, ``incident.updated``, ``incident.resolved``, ``action``, ``anomaly``
and ``slo.state``, each a JSON ``data`` line with an ``id`` (``api.events.Position``). Send the
last id back as ``Last-Event-ID`` (or ``?last_event_id=``) to resume without losing anything;
without one the stream starts at the present, and ``?last_event_id=-1.-1.-1`` replays everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.events import FeedEvent, Position, events_after, latest_position
from core.store import Store

router = APIRouter(tags=["stream"])

#: Seconds between reads of the store while the stream is idle.
POLL_S = 0.5


def _batch(store: Store, position: Position) -> list[tuple[FeedEvent, Position]]:
    return list(events_after(store, position))


async def _start(
    request: Request,
    last_event_id: str | None = Query(default=None, max_length=100),
    last_event_header: str | None = Header(default=None, alias="Last-Event-ID", max_length=100),
) -> Position:
    """Where to start (the header wins over the query); checked before the stream opens, so a bad
    id is a 422 rather than a broken stream."""
    given = last_event_header or last_event_id
    if given:
        return Position.parse(given)
    return await run_in_threadpool(latest_position, request.app.state.store)


# not in the OpenAPI document: an endless stream has no response a schema (or a fuzzer) can wait for
@router.get(
    "/api/v1/stream",
    response_class=EventSourceResponse,
    dependencies=[Depends(require("read"))],
    include_in_schema=False,
)
async def stream(request: Request, start: Position = Depends(_start)) -> AsyncIterator[ServerSentEvent]:
    """Stream events after ``Last-Event-ID``, oldest first, polling the store while idle."""
    store: Store = request.app.state.store
    position = start
    while not await request.is_disconnected():
        batch = await run_in_threadpool(_batch, store, position)
        for event, after in batch:
            position = after
            if event.type:  # an empty type only moves the position past unchanged SLO snapshots
                yield ServerSentEvent(data=event.data, event=event.type, id=str(after))
        if not batch:
            await asyncio.sleep(POLL_S)
