"""``POST /v1/metrics``, ``/v1/logs`` and ``/v1/traces``: OTLP/HTTP receiver (JSON and protobuf).

Answers follow the OTLP/HTTP spec: the response has the request's Content-Type; success
is 200 with an empty ``Export*ServiceResponse``; a failure carries a ``google.rpc.Status``
(``code`` is the gRPC status code, ``message`` names the field at fault). Status codes are
ours: 400 undecodable, 422 invalid field, 413, 415, 429 and 503 (the last two retryable,
with Retry-After).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from fastapi import APIRouter, Depends, Request, Response
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from api.auth import require
from api.errors import error_response, protocol_responses, status_for
from api.ingesting import commit, count_ok, mark_format, read_body
from core.batch import WriteBatch
from core.errors import OpsloopError
from ingest.otlp import FORMAT, JSON, PROTOBUF, decode_logs, decode_metrics, response_body
from ingest.traces import decode_traces, traces_response

router = APIRouter(tags=["ingest"])

#: HTTP status -> gRPC status code for the ``google.rpc.Status`` body.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 422: 3, 429: 8, 500: 13, 503: 14}


def _status_message() -> type:
    """``google.rpc.Status`` (code, message), declared in code: googleapis-common-protos is not a dependency."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="opsloop_rpc_status.proto", package="google.rpc", syntax="proto3"
    )
    message = fdp.message_type.add(name="Status")
    f = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="code", number=1, type=f.TYPE_INT32, label=f.LABEL_OPTIONAL)
    message.field.add(name="message", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))  # type: ignore[no-any-return]


Status = _status_message()
#: The error answers, documented as OTLP's ``google.rpc.Status`` in JSON or protobuf.
STATUS_RESPONSES = protocol_responses(
    {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        "required": ["code", "message"],
    },
    (JSON, PROTOBUF),
    what="OTLP google.rpc.Status",
)


def _answer_type(request: Request) -> str:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return PROTOBUF if ctype == PROTOBUF else JSON


def status_response(exc: OpsloopError, answer_type: str) -> Response:
    """The error as a ``google.rpc.Status`` in the request's encoding, with our status code and headers."""
    base = error_response(exc, FORMAT)  # counts the rejection, sets Retry-After / WWW-Authenticate
    code = status_for(exc)
    grpc_code = GRPC_CODES.get(code, 2)
    headers = {k: v for k, v in base.headers.items() if k.lower() in ("retry-after", "www-authenticate")}
    if answer_type == PROTOBUF:
        body = Status(code=grpc_code, message=exc.message).SerializeToString()
        return Response(body, status_code=code, headers=headers, media_type=PROTOBUF)
    body = msgspec.json.encode({"code": grpc_code, "message": exc.message})
    return Response(body, status_code=code, headers=headers, media_type=JSON)


async def _export(request: Request, signal: str, decode: Callable[[bytes, str], WriteBatch]) -> Response:
    mark_format(request, FORMAT)
    answer_type = _answer_type(request)
    try:
        body = await read_body(request)
        batch = decode(body, request.headers.get("content-type", ""))
        await commit(request, batch)
    except OpsloopError as exc:
        return status_response(exc, answer_type)
    count_ok(FORMAT, 200)
    answer = traces_response(answer_type) if signal == "traces" else response_body(signal, answer_type)
    return Response(answer, status_code=200, media_type=answer_type)


@router.post("/v1/metrics", dependencies=[Depends(require("ingest"))], responses=STATUS_RESPONSES)
async def otlp_metrics(request: Request) -> Response:
    """Take one ``ExportMetricsServiceRequest``; 200 once committed."""
    known = request.app.state.store.known_series
    return await _export(request, "metrics", lambda body, ctype: decode_metrics(body, ctype, known))


@router.post("/v1/logs", dependencies=[Depends(require("ingest"))], responses=STATUS_RESPONSES)
async def otlp_logs(request: Request) -> Response:
    """Take one ``ExportLogsServiceRequest``; 200 once committed."""
    return await _export(request, "logs", decode_logs)


@router.post("/v1/traces", dependencies=[Depends(require("ingest"))], responses=STATUS_RESPONSES)
async def otlp_traces(request: Request) -> Response:
    """Take one ``ExportTraceServiceRequest``; 200 once its spans are committed."""
    return await _export(request, "traces", decode_traces)
