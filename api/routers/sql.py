"""``POST /api/v1/sql`` (scope ``read``): analysts' read-only SQL on the live store.

The body is JSON ``{"query": "...", "params": [...], "max_rows": n, "timeout_s": s}`` (``params``
fill ``?`` placeholders; limits are optional, capped by ``sql_max_rows`` and ``sql_timeout_s``). One SELECT (``WITH``, ``DESCRIBE``, ``SHOW``,
``SUMMARIZE`` included) is run on a cursor of the server's own connection in a read-only
transaction (``core.readonly_sql``), so it never holds the writer. The answer is an Arrow IPC
stream when ``Accept: application/vnd.apache.arrow.stream``, else JSON
``{"columns": [{"name", "type"}], "rows": [[...]], "row_count", "truncated"}``; the
``X-Opsloop-Truncated`` header says whether rows past the limit were left out. A statement
that does not parse or holds several statements is 400; one that is not a SELECT, or reads
files, other SQL or token hashes, is 403, each naming why.

This router's lifespan also runs the periodic Parquet snapshot (``OPSLOOP_SNAPSHOT_DIR``),
the other read path for tools that want files.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import pyarrow as pa
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import require
from core.readonly_sql import run_readonly
from core.snapshot import SnapshotWorker

ARROW_STREAM = "application/vnd.apache.arrow.stream"


@asynccontextmanager
async def _snapshots(app: FastAPI) -> AsyncIterator[None]:
    """Run the snapshot worker while the server runs, when a snapshot directory is set."""
    settings = app.state.settings
    worker = None
    if settings.snapshot_dir is not None:
        worker = SnapshotWorker(
            app.state.store, settings.snapshot_dir, settings.snapshot_interval_s, settings.snapshot_keep
        )
        app.state.snapshots = worker
        worker.start()
    try:
        yield
    finally:
        if worker is not None:
            worker.stop()


router = APIRouter(tags=["sql"], lifespan=_snapshots)


class SqlRequest(BaseModel):
    """One read-only statement and optional tighter limits."""

    query: str = Field(min_length=1, max_length=100_000)
    max_rows: int | None = Field(default=None, ge=1, description="at most the server's sql_max_rows")
    timeout_s: float | None = Field(default=None, gt=0, description="at most the server's sql_timeout_s")
    params: list[Any] | None = Field(default=None, description="values of the query's ? placeholders")


def _json_value(value: Any) -> Any:
    """JSON form of the values Arrow gives: times in RFC 3339 (naive means UTC), bytes in base64."""
    if isinstance(value, datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot encode {type(value).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_json_value)


def arrow_stream(table: pa.Table) -> bytes:
    """The Arrow IPC stream of ``table``."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@router.post("/api/v1/sql", dependencies=[Depends(require("read"))])
async def sql(body: SqlRequest, request: Request) -> Response:
    """Run one read-only SELECT; answer Arrow IPC or JSON (see the module docstring)."""
    settings = request.app.state.settings
    max_rows = min(body.max_rows or settings.sql_max_rows, settings.sql_max_rows)
    timeout_s = min(body.timeout_s or settings.sql_timeout_s, settings.sql_timeout_s)
    result = await run_in_threadpool(
        run_readonly, request.app.state.store, body.query, max_rows, timeout_s, body.params
    )
    headers = {"X-Opsloop-Truncated": "true" if result.truncated else "false"}
    table = result.table
    if ARROW_STREAM in request.headers.get("accept", ""):
        return Response(
            await run_in_threadpool(arrow_stream, table), media_type=ARROW_STREAM, headers=headers
        )
    columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    values = [column.to_pylist(maps_as_pydicts="lossy") for column in table.columns]
    rows = [list(row) for row in zip(*values, strict=True)]
    payload = {"columns": columns, "rows": rows, "row_count": table.num_rows, "truncated": result.truncated}
    return Response(_ENCODER.encode(payload), media_type="application/json", headers=headers)
