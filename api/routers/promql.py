"""Prometheus' query API over the store, for Grafana and other PromQL clients (``read`` scope).

``/api/v1/query``, ``/api/v1/query_range``, ``/api/v1/labels``, ``/api/v1/label/{name}/values``,
``/api/v1/series``, ``/api/v1/metadata`` and ``/api/v1/status/buildinfo``, GET or POST
(form-encoded, as Prometheus accepts), answering Prometheus' JSON shapes including its
error body ``{"status": "error", "errorType": "bad_data", "error": "..."}``.
``/api/v1/series`` (the list of label sets) does not clash with opsloop's own
``/api/v1/series/{series_id}/band``: the paths differ by a segment.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import promql_parser as pp
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MultiDict

from api.auth import require
from api.errors import protocol_responses
from api.promql import repository
from api.promql.evaluate import Evaluator, Matrix, PromQLError, grid, matchers_of, parse
from api.promql.wire import instant_result, range_result
from core.store import Store

router = APIRouter(tags=["promql"])
_READ = [Depends(require("read"))]
#: Prometheus' own cap on the points of one series in a range query.
MAX_POINTS = 11_000
_STATUS = {"bad_data": 400, "execution": 422, "timeout": 503}
#: The error answers, documented in Prometheus' shape (what its API clients parse).
PROM_ERRORS = protocol_responses(
    {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "errorType": {"type": "string"},
            "error": {"type": "string"},
        },
        "required": ["status", "error"],
    },
    what="Prometheus' error body",
)


def _error(exc: PromQLError) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "errorType": exc.kind, "error": str(exc)}, status_code=_STATUS.get(exc.kind, 400)
    )


def _success(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


async def _params(request: Request) -> MultiDict:
    """Query-string and form parameters together (POST bodies are form-encoded)."""
    items = list(request.query_params.multi_items())
    if request.method == "POST" and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        items.extend(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
    return MultiDict(items)


def parse_timestamp(name: str, text: str | None, default: float | None = None) -> int:
    """Unix seconds (float) or RFC 3339 -> Unix ms.

    >>> parse_timestamp("time", "1.5"), parse_timestamp("time", "1970-01-01T00:00:02Z")
    (1500, 2000)
    """
    if text is None or text == "":
        if default is None:
            raise PromQLError(f'invalid parameter "{name}": missing')
        return round(default * 1000)
    try:
        value = float(text)
        if math.isfinite(value):
            return round(value * 1000)
    except ValueError:
        pass
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PromQLError(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp') from exc
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return round(ts.timestamp() * 1000)


def parse_step(text: str | None) -> int:
    """Seconds (float) or a PromQL duration -> ms; must be positive.

    >>> parse_step("15"), parse_step("1m")
    (15000, 60000)
    """
    if not text:
        raise PromQLError('invalid parameter "step": missing')
    try:
        ms = round(float(text) * 1000)
    except ValueError:
        try:
            ms = round(pp.parse_duration(text).total_seconds() * 1000)
        except ValueError as exc:
            raise PromQLError(f'invalid parameter "step": cannot parse "{text}" to a valid duration') from exc
    if ms <= 0:
        raise PromQLError(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
        )
    return ms


def _instant(store: Store, query: str, at_ms: int) -> dict[str, Any]:
    value = Evaluator(store, np.array([at_ms], dtype=np.int64)).eval(parse(query))
    return instant_result(value, at_ms)


def _range(store: Store, query: str, start: int, end: int, step: int) -> dict[str, Any]:
    if end < start:
        raise PromQLError('invalid parameter "end": end timestamp must not be before start time')
    if (end - start) // step + 1 > MAX_POINTS:
        raise PromQLError(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
            "resolution (?step=XX)"
        )
    times = grid(start, end, step)
    value = Evaluator(store, times).eval(parse(query))
    if isinstance(value, Matrix):
        raise PromQLError(
            'invalid expression type "range vector" for range query, must be Scalar or instant Vector'
        )
    return range_result(value, times)


def _matched_ids(store: Store, matches: list[str]) -> list[int] | None:
    """Series ids any ``match[]`` selector selects (None: no selector given, so all)."""
    if not matches:
        return None
    ids: set[int] = set()
    for text in matches:
        node = parse(text)
        if type(node).__name__ != "VectorSelector":
            raise PromQLError(f'invalid parameter "match[]": {text!r} is not a series selector')
        ids.update(
            sid for column, sid, _, _ in repository.select_series(store, matchers_of(node)) if column == ""
        )
    return sorted(ids)


def _series(store: Store, matches: list[str], start: int | None, end: int | None) -> list[dict[str, str]]:
    if not matches:
        raise PromQLError("no match[] parameter provided")
    found: dict[tuple[str, int], dict[str, str]] = {}
    for text in matches:
        node = parse(text)
        if type(node).__name__ != "VectorSelector":
            raise PromQLError(f'invalid parameter "match[]": {text!r} is not a series selector')
        for column, sid, _, lab in repository.select_series(store, matchers_of(node)):
            found[(column, sid)] = lab
    if start is not None or end is not None:
        lo = datetime.fromtimestamp((start if start is not None else 0) / 1000, UTC).replace(tzinfo=None)
        hi_ms = end if end is not None else int(time.time() * 1000) + 86_400_000
        hi = datetime.fromtimestamp(hi_ms / 1000, UTC).replace(tzinfo=None)
        live = repository.series_with_samples(store, [sid for column, sid in found if column == ""], lo, hi)
        found = {k: v for k, v in found.items() if k[0] != "" or k[1] in live}
    return sorted(found.values(), key=lambda lab: sorted(lab.items()))


async def _run(fn: Any, *args: Any) -> JSONResponse:
    try:
        return _success(await run_in_threadpool(fn, *args))
    except PromQLError as exc:
        return _error(exc)


@router.api_route("/api/v1/query", methods=["GET", "POST"], dependencies=_READ, responses=PROM_ERRORS)
async def query(request: Request) -> JSONResponse:
    """Instant query at ``time`` (default now)."""
    p = await _params(request)
    try:
        q = p.get("query") or ""
        if not q:
            raise PromQLError('invalid parameter "query": missing')
        at = parse_timestamp("time", p.get("time"), default=time.time())
    except PromQLError as exc:
        return _error(exc)
    return await _run(_instant, request.app.state.store, q, at)


@router.api_route("/api/v1/query_range", methods=["GET", "POST"], dependencies=_READ, responses=PROM_ERRORS)
async def query_range(request: Request) -> JSONResponse:
    """Range query at ``start, start + step, ... <= end``."""
    p = await _params(request)
    try:
        q = p.get("query") or ""
        if not q:
            raise PromQLError('invalid parameter "query": missing')
        start = parse_timestamp("start", p.get("start"))
        end = parse_timestamp("end", p.get("end"))
        step = parse_step(p.get("step"))
    except PromQLError as exc:
        return _error(exc)
    return await _run(_range, request.app.state.store, q, start, end, step)


@router.api_route("/api/v1/labels", methods=["GET", "POST"], dependencies=_READ, responses=PROM_ERRORS)
async def labels(request: Request) -> JSONResponse:
    """Label names, optionally of the series ``match[]`` selects."""
    p = await _params(request)
    store = request.app.state.store

    def names() -> list[str]:
        return repository.label_names(store, _matched_ids(store, p.getlist("match[]")))

    return await _run(names)


@router.api_route(
    "/api/v1/label/{name}/values", methods=["GET", "POST"], dependencies=_READ, responses=PROM_ERRORS
)
async def label_values(request: Request, name: str) -> JSONResponse:
    """Values of one label (``__name__``: the metric names)."""
    p = await _params(request)
    store = request.app.state.store

    def values() -> list[str]:
        return repository.label_values(store, name, _matched_ids(store, p.getlist("match[]")))

    return await _run(values)


@router.api_route("/api/v1/series", methods=["GET", "POST"], dependencies=_READ, responses=PROM_ERRORS)
async def series(request: Request) -> JSONResponse:
    """Label sets of the series ``match[]`` selects (with a point in ``[start, end]`` when given)."""
    p = await _params(request)
    try:
        start = parse_timestamp("start", p.get("start")) if p.get("start") else None
        end = parse_timestamp("end", p.get("end")) if p.get("end") else None
    except PromQLError as exc:
        return _error(exc)
    return await _run(_series, request.app.state.store, p.getlist("match[]"), start, end)


@router.get("/api/v1/metadata", dependencies=_READ, responses=PROM_ERRORS)
async def metadata(request: Request) -> JSONResponse:
    """Each metric name's kind and unit, in Prometheus' metadata shape."""

    def rows() -> dict[str, list[dict[str, str]]]:
        return {
            n: [{"type": k, "help": "", "unit": u}]
            for n, k, u in repository.metadata(request.app.state.store)
        }

    return await _run(rows)


@router.get("/api/v1/status/buildinfo", dependencies=_READ, responses=PROM_ERRORS)
async def buildinfo() -> JSONResponse:
    """What Grafana asks to learn which PromQL flavour it talks to."""
    return _success(
        {
            "version": "2.42.0",
            "revision": "opsloop",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }
    )
