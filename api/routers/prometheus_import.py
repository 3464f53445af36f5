"""``POST /api/v1/import/prometheus``: Prometheus text exposition / OpenMetrics, pushed.

Same path and ``extra_label=k=v`` query parameters as VictoriaMetrics, so existing push
scripts (``curl --data-binary @metrics.txt``) work unchanged. Samples without a timestamp
get the receive time.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.ingesting import commit, count_ok, mark_format, read_body
from core.errors import SchemaError, UnsupportedMediaError
from ingest.exposition import FORMAT, ExpositionParser, is_openmetrics

router = APIRouter(tags=["ingest"])

_TEXT_TYPES = ("", "text/plain", "application/openmetrics-text", "application/octet-stream")


def extra_labels_of(request: Request) -> dict[str, str]:
    """Parse the repeatable ``extra_label=name=value`` query parameters."""
    labels: dict[str, str] = {}
    for i, raw in enumerate(request.query_params.getlist("extra_label")):
        name, sep, value = raw.partition("=")
        if not sep or not name:
            raise SchemaError(f"extra_label[{i}]", f"expected name=value, got {raw!r}")
        labels[name] = value
    return labels


def parser_of(request: Request) -> ExpositionParser:
    """The app's parser (created on first use; it caches validated series text)."""
    parser: ExpositionParser | None = getattr(request.app.state, "exposition", None)
    if parser is None:
        parser = ExpositionParser(known_series=request.app.state.store.known_series)
        request.app.state.exposition = parser
    return parser


@router.post("/api/v1/import/prometheus", status_code=204, dependencies=[Depends(require("ingest"))])
async def import_prometheus(request: Request) -> Response:
    """Take one text exposition (0.0.4 or OpenMetrics); 204 once committed, 422 naming the line."""
    mark_format(request, FORMAT)
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in _TEXT_TYPES:
        raise UnsupportedMediaError(
            f"Content-Type must be text/plain or application/openmetrics-text, got {content_type!r}"
        )
    extra = extra_labels_of(request)
    body = await read_body(request)
    parser = parser_of(request)
    batch = await run_in_threadpool(
        parser.parse, body, openmetrics=True if is_openmetrics(content_type) else None, extra_labels=extra
    )
    await commit(request, batch)
    count_ok(FORMAT, 204)
    return Response(status_code=204)
