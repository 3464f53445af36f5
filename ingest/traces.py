"""Traces: OTLP/HTTP ``ExportTraceServiceRequest`` (JSON and protobuf) and Zipkin v2 JSON spans.

Both become rows of ``SPANS_SCHEMA`` (one per span): ids as lowercase hex, the service from
the resource's ``service.name`` (Zipkin: ``localEndpoint.serviceName``), the operation (span
name), the kind in lowercase (``server``, ``client``, ``producer``, ``consumer``, ``internal``,
``unspecified``), start and duration in microseconds, the status (``unset``/``ok``/``error``),
attributes and resource as compact JSON, and ``peer_service``: the service called, when the
span says so (``peer.service`` or ``server.address`` on a client span; Zipkin's
``remoteEndpoint.serviceName``), which the service graph uses when no server span is seen.

Validation follows the OTLP spec: a span needs a 16-byte trace id and an 8-byte span id,
neither all zero; its end may not precede its start. The whole payload is checked before
anything is returned, so a bad span rejects its request and nothing is half-written; errors
name the field (``resourceSpans[0].scopeSpans[1].spans[3].spanId``).

Spec: open-telemetry/opentelemetry-proto ``trace/v1/trace.proto`` and the OTLP JSON mapping
(hex ids, integer enums, 64-bit integers as strings); Zipkin's ``zipkin2-api.yaml`` (v2).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest as TraceRequestPb,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse as TraceResponsePb,
)

from core.batch import SPANS_SCHEMA, WriteBatch, digest_of
from core.errors import DecodeError, SchemaError
from ingest.otlp import (
    _I64_MAX,
    _JSON_FLAVOR,
    _PROTO_FLAVOR,
    JSON,
    KeyValue,
    Resource,
    Scope,
    _compact_json,
    _decode_json,
    _Flavor,
    _guard_depth,
    _int,
    _parse_proto,
    media_type,
)

__all__ = ["SPAN_KINDS", "STATUS_CODES", "ZIPKIN", "decode_traces", "decode_zipkin", "traces_response"]

FORMAT = "otlp"
ZIPKIN = "zipkin"
#: ``Span.SpanKind`` by number, as stored.
SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
#: ``Status.StatusCode`` by number, as stored.
STATUS_CODES = ("unset", "ok", "error")
_TRACE_BYTES, _SPAN_BYTES = 16, 8


# =========================================================================== OTLP JSON wire model


class SpanStatus(msgspec.Struct, gc=False, frozen=True):
    message: str = ""
    code: int = 0


class Span(msgspec.Struct, gc=False, rename="camel"):
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: str = ""
    kind: int = 0
    start_time_unix_nano: int | str = 0
    end_time_unix_nano: int | str = 0
    attributes: tuple[KeyValue, ...] = ()
    status: SpanStatus = SpanStatus()


class ScopeSpans(msgspec.Struct, gc=False, rename="camel"):
    scope: Scope = Scope()
    spans: list[Span] = []


class ResourceSpans(msgspec.Struct, gc=False, rename="camel"):
    resource: Resource = Resource()
    scope_spans: list[ScopeSpans] = []


class ExportTraceServiceRequest(msgspec.Struct, gc=False, rename="camel"):
    resource_spans: list[ResourceSpans] = []


_TRACES_JSON = msgspec.json.Decoder(ExportTraceServiceRequest)


# =========================================================================== Zipkin v2 wire model


class Endpoint(msgspec.Struct, gc=False, rename="camel"):
    service_name: str | None = None
    ipv4: str | None = None
    port: int | None = None


class ZipkinSpan(msgspec.Struct, gc=False, rename="camel"):
    trace_id: str = ""
    id: str = ""
    parent_id: str | None = None
    name: str | None = None
    kind: str | None = None
    timestamp: int | None = None
    duration: int | None = None
    local_endpoint: Endpoint | None = None
    remote_endpoint: Endpoint | None = None
    tags: dict[str, str] = {}


_ZIPKIN_JSON = msgspec.json.Decoder(list[ZipkinSpan])
_ZIPKIN_KINDS = {"CLIENT": "client", "SERVER": "server", "PRODUCER": "producer", "CONSUMER": "consumer"}


# =========================================================================== public API


def decode_traces(body: bytes, content_type: str) -> WriteBatch:
    """Decode an ``ExportTraceServiceRequest`` (JSON or protobuf) into a ``SPANS_SCHEMA`` batch.

    >>> batch = decode_traces(
    ...     b'{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name",'
    ...     b'"value":{"stringValue":"cart"}}]},"scopeSpans":[{"spans":[{"traceId":'
    ...     b'"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /cart",'
    ...     b'"kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":'
    ...     b'"1700000000250000000","status":{"code":2}}]}]}]}',
    ...     "application/json",
    ... )
    >>> row = batch.spans.to_pylist()[0]
    >>> row["service"], row["operation"], row["kind"], row["duration_us"], row["status"]
    ('cart', 'GET /cart', 'server', 250000, 'error')
    """
    out = _SpansBuilder()
    if media_type(content_type) == JSON:
        request = _decode_json(_TRACES_JSON, body, "ExportTraceServiceRequest")
        _guard_depth(_walk_spans, request.resource_spans, _JSON_FLAVOR, out)
    else:
        message = _parse_proto(TraceRequestPb, body, "ExportTraceServiceRequest")
        try:
            fast = _fast_proto_spans(message.resource_spans, out)
        except RecursionError as exc:
            raise DecodeError("body", "attribute values nested too deeply") from exc
        if not fast:
            out = _SpansBuilder()  # something is off: the careful walk names the field
            _guard_depth(_walk_spans, message.resource_spans, _PROTO_FLAVOR, out)
    spans = out.build()
    return WriteBatch(
        source=FORMAT, digest=digest_of("otlp_traces", body), spans=spans, samples=spans.num_rows
    )


def traces_response(content_type: str) -> bytes:
    """The full-success answer, an empty ``ExportTraceServiceResponse``, in the request's type."""
    return b"{}" if content_type == JSON else bytes(TraceResponsePb().SerializeToString())


def decode_zipkin(body: bytes) -> WriteBatch:
    """Decode a Zipkin v2 JSON span list (``POST /api/v2/spans``) into a ``SPANS_SCHEMA`` batch.

    64-bit trace ids are left-padded to 128 bits; a span with an ``error`` tag has status
    ``error``; ``shared`` server halves are kept as the server's own span.

    >>> batch = decode_zipkin(
    ...     b'[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","name":"get /api",'
    ...     b'"kind":"CLIENT","timestamp":1700000000000000,"duration":1200,'
    ...     b'"localEndpoint":{"serviceName":"frontend"},"remoteEndpoint":{"serviceName":"backend"},'
    ...     b'"tags":{"error":"timeout"}}]'
    ... )
    >>> row = batch.spans.to_pylist()[0]
    >>> row["trace_id"], row["peer_service"], row["status"], row["status_message"]
    ('0000000000000000463ac35c9f6413ad', 'backend', 'error', 'timeout')
    """
    spans = _decode_json(_ZIPKIN_JSON, body, "Zipkin v2 span list")
    out = _SpansBuilder()
    cols = out.columns
    for i, span in enumerate(spans):
        where = f"[{i}]"
        trace_id = _zipkin_id(span.trace_id, f"{where}.traceId", (8, 16))
        span_id = _zipkin_id(span.id, f"{where}.id", (8,))
        parent = _zipkin_id(span.parent_id, f"{where}.parentId", (8,)) if span.parent_id else ""
        if span.timestamp is None or span.timestamp <= 0:
            raise SchemaError(f"{where}.timestamp", "a span needs its start in epoch microseconds")
        duration = span.duration or 0
        if duration < 0:
            raise SchemaError(f"{where}.duration", f"{duration} is negative")
        kind = "unspecified"
        if span.kind is not None:
            if span.kind not in _ZIPKIN_KINDS:
                raise SchemaError(
                    f"{where}.kind", f"must be one of {sorted(_ZIPKIN_KINDS)}, got {span.kind!r}"
                )
            kind = _ZIPKIN_KINDS[span.kind]
        local = span.local_endpoint.service_name if span.local_endpoint else None
        remote = span.remote_endpoint.service_name if span.remote_endpoint else None
        error = span.tags.get("error")
        cols["trace_id"].append(trace_id)
        cols["span_id"].append(span_id)
        cols["parent_span_id"].append(parent)
        cols["service"].append(local or "unknown")
        cols["operation"].append(span.name or "")
        cols["kind"].append(kind)
        cols["start_ts"].append(span.timestamp)
        cols["duration_us"].append(duration)
        cols["status"].append("error" if error is not None else "unset")
        cols["status_message"].append(error or "")
        cols["attributes"].append(_compact_json(span.tags))
        cols["resource"].append(_compact_json({"service.name": local} if local else {}))
        cols["scope"].append("")
        cols["peer_service"].append(remote or None)
    table = out.build()
    return WriteBatch(source=ZIPKIN, digest=digest_of("zipkin", body), spans=table, samples=table.num_rows)


# =========================================================================== helpers


class _SpansBuilder:
    """Columns of ``SPANS_SCHEMA`` as lists, handed to Arrow once per payload."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in SPANS_SCHEMA.names}

    def build(self) -> pa.Table:
        return pa.Table.from_pydict(self.columns, schema=SPANS_SCHEMA)


_TRACE_ID_OF, _SPAN_ID_OF, _PARENT_OF = (
    attrgetter("trace_id"),
    attrgetter("span_id"),
    attrgetter("parent_span_id"),
)
_START_OF, _END_OF, _KIND_OF = (
    attrgetter("start_time_unix_nano"),
    attrgetter("end_time_unix_nano"),
    attrgetter("kind"),
)
_STATUS_OF, _NAME_OF, _ATTRS_OF = attrgetter("status"), attrgetter("name"), attrgetter("attributes")
_CODE_OF, _MESSAGE_OF = attrgetter("code"), attrgetter("message")
_ZERO_TRACE, _ZERO_SPAN = bytes(_TRACE_BYTES), bytes(_SPAN_BYTES)


def _fast_proto_spans(resource_spans: Any, out: _SpansBuilder) -> bool:
    """Columns of valid protobuf spans a scope at a time (map and numpy, no Python per field).

    Returns False, having appended nothing usable, when any span breaks a rule: the caller then
    runs :func:`_walk_spans`, which finds the first bad field and names it.
    """
    cols = out.columns
    plain = _PROTO_FLAVOR.plain_attributes
    for rs in resource_spans:
        resource = plain(rs.resource.attributes, "")
        service = resource.get("service.name")
        service = service if isinstance(service, str) and service else "unknown"
        resource_json = _compact_json(resource)
        for ss in rs.scope_spans:
            spans = ss.spans
            n = len(spans)
            if not n:
                continue
            traces = list(map(_TRACE_ID_OF, spans))
            ids = list(map(_SPAN_ID_OF, spans))
            parents = list(map(_PARENT_OF, spans))
            if (
                set(map(len, traces)) != {_TRACE_BYTES}
                or set(map(len, ids)) != {_SPAN_BYTES}
                or not set(map(len, parents)) <= {0, _SPAN_BYTES}
                or _ZERO_TRACE in traces
                or _ZERO_SPAN in ids
                or _ZERO_SPAN in parents
            ):
                return False
            start = np.fromiter(map(_START_OF, spans), dtype=np.uint64, count=n)
            end = np.fromiter(map(_END_OF, spans), dtype=np.uint64, count=n)
            kinds = np.fromiter(map(_KIND_OF, spans), dtype=np.int64, count=n)
            statuses = list(map(_STATUS_OF, spans))
            codes = np.fromiter(map(_CODE_OF, statuses), dtype=np.int64, count=n)
            if (
                start.min() == 0
                or start.max() > _I64_MAX
                or end.max() > _I64_MAX
                or (end < start).any()
                or kinds.min() < 0
                or kinds.max() >= len(SPAN_KINDS)
                or codes.min() < 0
                or codes.max() >= len(STATUS_CODES)
            ):
                return False
            attributes = [plain(a, "") if len(a) else {} for a in map(_ATTRS_OF, spans)]
            client = (kinds == 3) | (kinds == 4)
            cols["trace_id"] += map(bytes.hex, traces)
            cols["span_id"] += map(bytes.hex, ids)
            cols["parent_span_id"] += map(bytes.hex, parents)
            cols["service"] += [service] * n
            cols["operation"] += map(_NAME_OF, spans)
            cols["kind"] += [SPAN_KINDS[k] for k in kinds.tolist()]
            cols["start_ts"] += (start // 1000).astype(np.int64).tolist()
            cols["duration_us"] += ((end - start) // 1000).astype(np.int64).tolist()
            cols["status"] += [STATUS_CODES[c] for c in codes.tolist()]
            cols["status_message"] += map(_MESSAGE_OF, statuses)
            cols["attributes"] += map(_compact_json, attributes)
            cols["resource"] += [resource_json] * n
            cols["scope"] += [ss.scope.name] * n
            cols["peer_service"] += [
                _peer(a) if c else None for a, c in zip(attributes, client.tolist(), strict=True)
            ]
    return True


def _walk_spans(resource_spans: Any, flavor: _Flavor, out: _SpansBuilder) -> None:
    cols = out.columns
    for i, rs in enumerate(resource_spans):
        rpath = f"resourceSpans[{i}]"
        resource = flavor.plain_attributes(rs.resource.attributes, f"{rpath}.resource.attributes")
        service = resource.get("service.name")
        service = service if isinstance(service, str) and service else "unknown"
        resource_json = _compact_json(resource)
        for s, ss in enumerate(rs.scope_spans):
            spath = f"{rpath}.scopeSpans[{s}].spans"
            scope: str = ss.scope.name
            for j, span in enumerate(ss.spans):
                where = f"{spath}[{j}]"
                trace_id = _span_id(flavor, span, "trace_id", _TRACE_BYTES, where, required=True)
                span_id = _span_id(flavor, span, "span_id", _SPAN_BYTES, where, required=True)
                parent = _span_id(flavor, span, "parent_span_id", _SPAN_BYTES, where, required=False)
                start = _int(span.start_time_unix_nano, f"{where}.startTimeUnixNano", 1, _I64_MAX)
                end = _int(span.end_time_unix_nano, f"{where}.endTimeUnixNano", 0, _I64_MAX)
                if end < start:
                    raise SchemaError(f"{where}.endTimeUnixNano", "the span ends before it starts")
                kind = span.kind
                if not 0 <= kind < len(SPAN_KINDS):
                    raise SchemaError(f"{where}.kind", f"{kind} is not a SpanKind (0-{len(SPAN_KINDS) - 1})")
                code = span.status.code
                if not 0 <= code < len(STATUS_CODES):
                    raise SchemaError(f"{where}.status.code", f"{code} is not a StatusCode (0-2)")
                attributes = flavor.plain_attributes(span.attributes, f"{where}.attributes")
                cols["trace_id"].append(trace_id)
                cols["span_id"].append(span_id)
                cols["parent_span_id"].append(parent)
                cols["service"].append(service)
                cols["operation"].append(span.name)
                cols["kind"].append(SPAN_KINDS[kind])
                cols["start_ts"].append(start // 1000)
                cols["duration_us"].append((end - start) // 1000)
                cols["status"].append(STATUS_CODES[code])
                cols["status_message"].append(span.status.message)
                cols["attributes"].append(_compact_json(attributes))
                cols["resource"].append(resource_json)
                cols["scope"].append(scope)
                cols["peer_service"].append(_peer(attributes) if kind in (3, 4) else None)


_CAMEL = {"trace_id": "traceId", "span_id": "spanId", "parent_span_id": "parentSpanId"}


def _span_id(flavor: _Flavor, span: Any, field: str, size: int, where: str, *, required: bool) -> str:
    """A span's id as hex: ``size`` bytes, not all zero when ``required`` (else may be empty)."""
    raw = getattr(span, field)
    path = f"{where}.{_CAMEL[field]}"
    if isinstance(raw, str):
        try:
            data = bytes.fromhex(raw)
        except ValueError:
            raise SchemaError(path, f"not hex: {raw!r}") from None
    else:
        data = bytes(raw)
    if not data:
        if required:
            raise SchemaError(path, "is required")
        return ""
    if len(data) != size:
        raise SchemaError(path, f"must be {size} bytes ({size * 2} hex digits), got {len(data)}")
    if not any(data):
        if required:
            raise SchemaError(path, "must not be all zero")
        return ""
    return data.hex()


def _zipkin_id(text: str | None, path: str, sizes: tuple[int, ...]) -> str:
    text = text or ""
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise SchemaError(path, f"not hex: {text!r}") from None
    if len(data) not in sizes or not any(data):
        digits = " or ".join(str(n * 2) for n in sizes)
        raise SchemaError(path, f"must be {digits} hex digits, not all zero")
    return data.rjust(16 if sizes != (8,) else 8, b"\0").hex()


def _peer(attributes: dict[str, Any]) -> str | None:
    """The called service named by a client/producer span's attributes, when it names one."""
    for key in ("peer.service", "server.address", "net.peer.name"):
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None
