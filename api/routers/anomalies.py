"""Anomalies, the band of a series, and operator feedback.

``GET /api/v1/anomalies`` (read), ``GET /api/v1/series/{series_id}/band`` (read),
``POST /api/v1/anomalies/{id}/feedback`` (write): a verdict moves the series' threshold
within bounds and is recorded; the answer carries the new threshold.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.common import CURSOR_PARAM, SCAN_ROWS, cursor_page, parse_series_id, parse_time, time_key
from api.convert import anomaly_to_wire
from detect import repository
from detect.engine import DetectionEngine

router = APIRouter(tags=["anomalies"])


class FeedbackRequest(BaseModel):
    """An operator's verdict on one anomaly."""

    verdict: Literal["false_positive", "true_positive"]
    user: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(default=None, max_length=4000)


@router.get("/api/v1/anomalies", dependencies=[Depends(require("read"))])
async def list_anomalies(
    request: Request,
    series_id: list[str] = Query(default=[]),
    service: str | None = None,
    since: str | None = None,
    limit: int = Query(default=100, ge=1, le=10_000),
    cursor: str | None = CURSOR_PARAM,
) -> dict[str, Any]:
    """Newest anomalies first, a page at a time (``{items, next_cursor, total}``)."""
    ids = [parse_series_id("series_id", s) for s in series_id]
    found = await run_in_threadpool(
        repository.list_anomalies,
        request.app.state.store,
        series_ids=ids,
        service=service,
        since=parse_time("since", since),
        limit=SCAN_ROWS,
    )
    wire = [anomaly_to_wire(a) for a in found]
    return cursor_page(
        wire, key=lambda a: (time_key(a["ts"]), a["id"]), reverse=True, limit=limit, cursor=cursor
    )


@router.get("/api/v1/series/{series_id}/band", dependencies=[Depends(require("read"))])
async def series_band(
    request: Request, series_id: str, start: str | None = None, end: str | None = None
) -> dict[str, Any]:
    """Every scored point of a series in ``[start, end]`` with its expected value and band."""
    sid = parse_series_id("series_id", series_id)
    table = await run_in_threadpool(
        repository.band,
        request.app.state.store,
        sid,
        parse_time("start", start),
        parse_time("end", end),
    )
    rows = table.to_pylist()
    for row in rows:
        row["ts"] = row["ts"].isoformat() + "Z"
    return {"series_id": str(sid), "points": rows}


@router.post("/api/v1/anomalies/{anomaly_id}/feedback", dependencies=[Depends(require("write"))])
async def anomaly_feedback(anomaly_id: str, body: FeedbackRequest, request: Request) -> dict[str, Any]:
    """Record a verdict; the series' threshold moves (FP: up, TP: down) within bounds."""
    engine: DetectionEngine = request.app.state.engine
    result = await run_in_threadpool(engine.feedback, anomaly_id, body.verdict, body.user, body.comment)
    return {
        "anomaly_id": result.anomaly_id,
        "series_id": str(result.series_id),
        "verdict": result.verdict,
        "threshold_before": result.threshold_before,
        "threshold": result.threshold_after,
        "at": result.at.isoformat() + "Z",
    }
