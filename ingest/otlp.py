"""OpenTelemetry OTLP/HTTP metrics and logs (JSON and protobuf), and Collector file-exporter lines.

Spec: open-telemetry/opentelemetry-proto ``docs/specification.md`` (OTLP/HTTP, the JSON
mapping deviations: camelCase keys, integer enums, hex trace/span ids, 64-bit integers as
strings or numbers, unknown fields ignored). See ../shared/docs/wire-formats.md section 3.

Metrics become Prometheus-style series (the OTel -> Prometheus compatibility convention):

- names: ``.`` and other invalid characters -> ``_``, the unit as a suffix (``s`` ->
  ``_seconds``, ``By`` -> ``_bytes``, ``1`` and ``{annotations}`` -> nothing), ``_total``
  on monotonic cumulative sums;
- labels: resource attributes, then data point attributes (which win on a clash), keys
  sanitised (``.`` -> ``_``), ``service.name`` -> ``service``, ``service.instance.id`` ->
  ``instance``; empty values dropped (Prometheus reads empty as absent); the scope is not a label;
- gauge -> ``gauge``; sum -> ``counter`` when monotonic and cumulative, else ``gauge``
  (values stored as given, delta sums are not accumulated);
- histogram -> ``<name>_bucket{le=...}`` (counts made cumulative over ``le``, ``+Inf``
  last), ``<name>_sum`` (only when the point has a sum), ``<name>_count``;
- exponential histogram -> ``<name>_sum`` and ``<name>_count`` (buckets are not converted);
- summary -> ``<name>{quantile=...}``, ``<name>_sum``, ``<name>_count``;
- a point flagged ``NO_RECORDED_VALUE`` is stored as NULL (the Prometheus stale marker).

Histogram, exponential-histogram and summary series have kind ``histogram``/``summary`` when
cumulative, ``gauge`` when delta (their values are then per-interval, not running totals).

Speed: a data point's attributes stay raw (the JSON text, or the protobuf attribute fields)
and are the cache key of its series, so a known series costs one dict lookup per point, and
columns are built from plain lists handed to Arrow once per payload. JSON is decoded by
msgspec into frozen ``Struct``s; protobuf is parsed with the real schema except that number
data points and all attributes stay bytes, and the number points of a request are read
with numpy in one pass (``_NumberScan``); the rest goes through protobuf.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import math
import re
from collections.abc import Callable, Hashable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np
import pyarrow as pa
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message
from numpy.lib.stride_tricks import sliding_window_view
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest as LogsRequestPb,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceResponse as LogsResponsePb,
)
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse as MetricsResponsePb,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from core.batch import LOGS_SCHEMA, POINTS_SCHEMA, WriteBatch, digest_of
from core.errors import DecodeError, SchemaError, UnsupportedMediaError
from ingest.points import DEFAULT_INTERNER, LabelItems, points_table, series_table
from ingest.protowire import varint as _varint

__all__ = [
    "BATCH_TARGET",
    "FORMAT",
    "JSON",
    "PROTOBUF",
    "decode_logs",
    "decode_metrics",
    "media_type",
    "prometheus_name",
    "read_jsonl",
    "response_body",
    "unit_suffix",
]

FORMAT = "otlp"
JSON = "application/json"
PROTOBUF = "application/x-protobuf"
#: Points plus log records per batch ``read_jsonl`` aims for (whole lines, so roughly).
BATCH_TARGET = 50_000

NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE
CUMULATIVE = 2  # AggregationTemporality
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_U64_MAX = 2**64 - 1
_MAX_SEVERITY = 24

SeriesRow = tuple[str, LabelItems, str, str]


# =========================================================================== JSON wire model
# Field names are snake_case in Python and camelCase on the wire; unknown fields are ignored
# (msgspec's default). 64-bit integers arrive as strings or numbers, doubles may be
# "NaN"/"Infinity" strings (proto3 JSON), hence the ``| str`` unions. Data point attributes
# stay raw JSON: their bytes are the series cache key, decoded only for a series not seen yet.
# ``gc=False``: the trees are acyclic, and tracking 100k small objects makes decoding 2x slower.

_NO_ATTRIBUTES = msgspec.Raw(b"[]")


class AnyValue(msgspec.Struct, gc=False, frozen=True, rename="camel"):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | str | None = None
    double_value: float | str | None = None
    array_value: ArrayValue | None = None
    kvlist_value: KeyValueList | None = None
    bytes_value: str | None = None


class ArrayValue(msgspec.Struct, gc=False, frozen=True):
    values: tuple[AnyValue, ...] = ()


class KeyValue(msgspec.Struct, gc=False, frozen=True):
    key: str = ""
    value: AnyValue = AnyValue()


class KeyValueList(msgspec.Struct, gc=False, frozen=True):
    values: tuple[KeyValue, ...] = ()


class Resource(msgspec.Struct, gc=False, frozen=True):
    attributes: tuple[KeyValue, ...] = ()


class Scope(msgspec.Struct, gc=False, frozen=True):
    name: str = ""
    version: str = ""


class NumberDataPoint(msgspec.Struct, gc=False, rename="camel"):
    attributes: msgspec.Raw = _NO_ATTRIBUTES
    time_unix_nano: int | str = 0
    as_double: float | str | None = None
    as_int: int | str | None = None
    flags: int = 0


class HistogramDataPoint(msgspec.Struct, gc=False, rename="camel"):
    attributes: msgspec.Raw = _NO_ATTRIBUTES
    time_unix_nano: int | str = 0
    count: int | str = 0
    sum: float | str | None = None
    bucket_counts: list[int | str] = []
    explicit_bounds: list[float | str] = []
    flags: int = 0


class ExponentialHistogramDataPoint(msgspec.Struct, gc=False, rename="camel"):
    attributes: msgspec.Raw = _NO_ATTRIBUTES
    time_unix_nano: int | str = 0
    count: int | str = 0
    sum: float | str | None = None
    flags: int = 0


class ValueAtQuantile(msgspec.Struct, gc=False):
    quantile: float | str = 0.0
    value: float | str = 0.0


class SummaryDataPoint(msgspec.Struct, gc=False, rename="camel"):
    attributes: msgspec.Raw = _NO_ATTRIBUTES
    time_unix_nano: int | str = 0
    count: int | str = 0
    sum: float | str = 0.0
    quantile_values: list[ValueAtQuantile] = []
    flags: int = 0


class Gauge(msgspec.Struct, gc=False, rename="camel"):
    data_points: list[NumberDataPoint] = []


class Sum(msgspec.Struct, gc=False, rename="camel"):
    data_points: list[NumberDataPoint] = []
    aggregation_temporality: int = 0
    is_monotonic: bool = False


class Histogram(msgspec.Struct, gc=False, rename="camel"):
    data_points: list[HistogramDataPoint] = []
    aggregation_temporality: int = 0


class ExponentialHistogram(msgspec.Struct, gc=False, rename="camel"):
    data_points: list[ExponentialHistogramDataPoint] = []
    aggregation_temporality: int = 0


class Summary(msgspec.Struct, gc=False, rename="camel"):
    data_points: list[SummaryDataPoint] = []


class Metric(msgspec.Struct, gc=False, rename="camel"):
    name: str = ""
    unit: str = ""
    gauge: Gauge | None = None
    sum: Sum | None = None
    histogram: Histogram | None = None
    exponential_histogram: ExponentialHistogram | None = None
    summary: Summary | None = None


class ScopeMetrics(msgspec.Struct, gc=False, rename="camel"):
    scope: Scope = Scope()
    metrics: list[Metric] = []


class ResourceMetrics(msgspec.Struct, gc=False, rename="camel"):
    resource: Resource = Resource()
    scope_metrics: list[ScopeMetrics] = []


class ExportMetricsServiceRequest(msgspec.Struct, gc=False, rename="camel"):
    resource_metrics: list[ResourceMetrics] = []


class LogRecord(msgspec.Struct, gc=False, rename="camel"):
    time_unix_nano: int | str = 0
    observed_time_unix_nano: int | str = 0
    severity_number: int = 0
    severity_text: str = ""
    body: AnyValue | None = None
    attributes: tuple[KeyValue, ...] = ()
    trace_id: str = ""
    span_id: str = ""


class ScopeLogs(msgspec.Struct, gc=False, rename="camel"):
    scope: Scope = Scope()
    log_records: list[LogRecord] = []


class ResourceLogs(msgspec.Struct, gc=False, rename="camel"):
    resource: Resource = Resource()
    scope_logs: list[ScopeLogs] = []


class ExportLogsServiceRequest(msgspec.Struct, gc=False, rename="camel"):
    resource_logs: list[ResourceLogs] = []


class _FileLine(msgspec.Struct, gc=False, rename="camel"):
    """One line of the Collector ``file`` exporter: a metrics, logs (or traces) request."""

    resource_metrics: list[ResourceMetrics] | None = None
    resource_logs: list[ResourceLogs] | None = None
    resource_spans: msgspec.Raw | None = None
    resource_profiles: msgspec.Raw | None = None


# =========================================================================== protobuf wire model
# The installed opentelemetry-proto files once more, in a private pool, with two changes
# (field numbers, types, oneofs and merge rules stay the real ones: derived, not restated):
#
# - ``Gauge.data_points`` and ``Sum.data_points`` are ``repeated bytes``: ``_NumberScan``
#   reads the fields of every number data point of a request at once with numpy;
# - the ``attributes`` of every data point type are ``repeated bytes``. Building KeyValue
#   messages costs ~11 us a point; kept as bytes they are the series cache key (like the raw
#   JSON above) and are parsed, by the real classes, only for a series not seen yet.
#
# A point the scan does not take (exemplars, unknown fields, odd encodings) is parsed by
# protobuf as ``_RawNumberDataPoint``, so what is accepted is what the generated classes accept.

_DATA_POINT_TYPES = frozenset(
    {"NumberDataPoint", "HistogramDataPoint", "ExponentialHistogramDataPoint", "SummaryDataPoint"}
)
_RAW_FIELDS = {(name, "attributes") for name in _DATA_POINT_TYPES} | {
    ("Gauge", "data_points"),
    ("Sum", "data_points"),
}


def _raw_classes() -> tuple[type[Message], type[Message]]:
    """``ExportMetricsServiceRequest`` and ``NumberDataPoint`` with the fields above as bytes."""
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, metrics_pb2, metrics_service_pb2):
        fdp = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        if module is metrics_pb2:
            changed = set()
            for message in fdp.message_type:
                for field in message.field:
                    if (message.name, field.name) in _RAW_FIELDS:
                        field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                        field.ClearField("type_name")
                        changed.add((message.name, field.name))
            if changed != _RAW_FIELDS:  # a future opentelemetry-proto moved things: fail loudly
                raise RuntimeError(f"opentelemetry-proto fields not found: {sorted(_RAW_FIELDS - changed)}")
        pool.Add(fdp)
    request = metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR.full_name
    point = metrics_pb2.NumberDataPoint.DESCRIPTOR.full_name
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(request)),
        message_factory.GetMessageClass(pool.FindMessageTypeByName(point)),
    )


_RawMetricsRequest, _RawNumberDataPoint = _raw_classes()

_METRICS_JSON = msgspec.json.Decoder(ExportMetricsServiceRequest)
_ATTRIBUTES_JSON = msgspec.json.Decoder(tuple[KeyValue, ...])
_LOGS_JSON = msgspec.json.Decoder(ExportLogsServiceRequest)
_LINE_JSON = msgspec.json.Decoder(_FileLine)
_ATTRIBUTES_OF = attrgetter("attributes")
_AS_DOUBLE_OF = attrgetter("as_double")
_FLAGS_OF = attrgetter("flags")
_MSGSPEC_AT = re.compile(r"^(?P<reason>.*?) - at `\$\.?(?P<path>.*)`$", re.DOTALL)


# =========================================================================== public API


def media_type(content_type: str) -> str:
    """Return ``JSON`` or ``PROTOBUF`` for a Content-Type header; anything else is a 415.

    >>> media_type("application/json; charset=utf-8")
    'application/json'
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in (JSON, PROTOBUF):
        return ctype
    raise UnsupportedMediaError(f"Content-Type must be {JSON} or {PROTOBUF}, got {content_type or 'none'!r}")


def decode_metrics(
    body: bytes, content_type: str, known_series: AbstractSet[int] = frozenset()
) -> WriteBatch:
    """Decode an ``ExportMetricsServiceRequest`` into series and points, validating all of it first.

    >>> batch = decode_metrics(
    ...     b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"queue.depth",'
    ...     b'"gauge":{"dataPoints":[{"asDouble":42,"timeUnixNano":"1700000060000000000"}]}}]}]}]}',
    ...     "application/json",
    ... )
    >>> batch.series.column("name").to_pylist(), batch.points.column("value").to_pylist()
    (['queue_depth'], [42.0])

    ``known_series`` (the store's committed ids) spares dictionary rows for known series.
    """
    out = _MetricsBuilder(known_series)
    if media_type(content_type) == JSON:
        request = _decode_json(_METRICS_JSON, body, "ExportMetricsServiceRequest")
        _guard_depth(_walk_metrics, request.resource_metrics, _JSON_FLAVOR, out, "")
    else:
        message = _parse_proto(_RawMetricsRequest, body, "ExportMetricsServiceRequest")
        flavor = _RawProtoFlavor(message.resource_metrics)
        _guard_depth(_walk_metrics, message.resource_metrics, flavor, out, "")
    series, points = out.build()
    return WriteBatch(
        source=FORMAT,
        digest=digest_of("otlp_metrics", body),
        series=series,
        points=points,
        samples=points.num_rows,
    )


def decode_logs(body: bytes, content_type: str) -> WriteBatch:
    """Decode an ``ExportLogsServiceRequest`` into a ``LOGS_SCHEMA`` table."""
    out = _LogsBuilder()
    if media_type(content_type) == JSON:
        request = _decode_json(_LOGS_JSON, body, "ExportLogsServiceRequest")
        _guard_depth(_walk_logs, request.resource_logs, _JSON_FLAVOR, out, "")
    else:
        message = _parse_proto(LogsRequestPb, body, "ExportLogsServiceRequest")
        _walk_logs(message.resource_logs, _PROTO_FLAVOR, out, "")
    logs = out.build()
    return WriteBatch(source=FORMAT, digest=digest_of("otlp_logs", body), logs=logs, samples=logs.num_rows)


def response_body(signal: str, content_type: str) -> bytes:
    """The full-success answer (an empty ``Export<Signal>ServiceResponse``) in the request's type."""
    if content_type == JSON:
        return b"{}"
    message = MetricsResponsePb() if signal == "metrics" else LogsResponsePb()
    return bytes(message.SerializeToString())


def read_jsonl(path: str | Path, batch_target: int = BATCH_TARGET) -> Iterator[WriteBatch]:
    """Read a Collector ``file`` exporter file (JSON lines; ``.gz`` too) as idempotent batches.

    Each line is an ``ExportMetricsServiceRequest`` or ``ExportLogsServiceRequest``
    (told apart by its ``resourceMetrics`` / ``resourceLogs`` key; trace and profile
    lines are skipped). Whole lines are coalesced until a batch holds about
    ``batch_target`` points plus log records; each batch's digest covers its lines, so
    reading the same file again writes nothing new. An invalid line raises ``SchemaError``
    whose field starts with ``line N:``; batches before it have already been yielded.
    """
    source = Path(path)
    metrics, logs = _MetricsBuilder(), _LogsBuilder()
    lines: list[bytes] = []
    with gzip.open(source, "rb") if source.suffix == ".gz" else source.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            where = f"line {number}: "
            try:
                _read_line(line, metrics, logs, where)
            except SchemaError as exc:
                if exc.field.startswith(where):
                    raise
                error = DecodeError if isinstance(exc, DecodeError) else SchemaError
                raise error(f"{where}{exc.field}", exc.reason) from exc
            lines.append(line)
            if metrics.samples + logs.samples >= batch_target:
                yield _file_batch(metrics, logs, lines)
                metrics, logs, lines = _MetricsBuilder(), _LogsBuilder(), []
    if lines:
        yield _file_batch(metrics, logs, lines)


def _read_line(line: bytes, metrics: _MetricsBuilder, logs: _LogsBuilder, where: str) -> None:
    parsed = _decode_json(_LINE_JSON, line, "ExportMetricsServiceRequest or ExportLogsServiceRequest")
    if parsed.resource_metrics is None and parsed.resource_logs is None:
        if parsed.resource_spans is not None or parsed.resource_profiles is not None:
            return
        raise SchemaError(f"{where}body", "expected an object with resourceMetrics or resourceLogs")
    if parsed.resource_metrics is not None:
        _guard_depth(_walk_metrics, parsed.resource_metrics, _JSON_FLAVOR, metrics, where)
    if parsed.resource_logs is not None:
        _guard_depth(_walk_logs, parsed.resource_logs, _JSON_FLAVOR, logs, where)


def _file_batch(metrics: _MetricsBuilder, logs: _LogsBuilder, lines: list[bytes]) -> WriteBatch:
    series, points = metrics.build()
    table = logs.build()
    return WriteBatch(
        source=FORMAT,
        digest=digest_of("otlp_file", *(line + b"\n" for line in lines)),
        series=series if series.num_rows else None,
        points=points if points.num_rows else None,
        logs=table if table.num_rows else None,
        samples=points.num_rows + table.num_rows,
    )


# =========================================================================== decoding helpers


def _decode_json(decoder: msgspec.json.Decoder[Any], body: bytes, what: str) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_AT.match(str(exc))
        if match is None:  # the root itself is wrong (an array, a string, ...)
            raise DecodeError("body", f"not an OTLP {what}: {exc}") from exc
        raise SchemaError(match["path"], match["reason"]) from exc
    except msgspec.DecodeError as exc:
        raise DecodeError("body", f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise DecodeError("body", "JSON nested too deeply") from exc


def _decode_attributes(raw: bytes | msgspec.Raw, path: str) -> tuple[KeyValue, ...]:
    """Decode a data point's raw attributes; errors name the path inside the whole payload."""
    try:
        return _ATTRIBUTES_JSON.decode(raw)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_AT.match(str(exc))
        if match is None:
            raise SchemaError(path, str(exc)) from exc
        raise SchemaError(path + match["path"], match["reason"]) from exc
    except msgspec.DecodeError as exc:
        raise DecodeError("body", f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise DecodeError("body", "JSON nested too deeply") from exc


def _parse_proto(kind: type[Message], body: bytes, what: str) -> Message:
    message = kind()
    try:
        message.ParseFromString(body)
    except (ProtoDecodeError, RecursionError) as exc:
        raise DecodeError("body", f"not an OTLP {what} protobuf: {exc}") from exc
    return message


def _guard_depth(walk: Callable[..., None], *args: Any) -> None:
    try:
        walk(*args)
    except RecursionError as exc:
        raise DecodeError("body", "attribute values nested too deeply") from exc


def _int(value: Any, path: str, low: int = 0, high: int = _U64_MAX) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SchemaError(path, f"not an integer: {value!r}") from None
    if not low <= number <= high:
        raise SchemaError(path, f"{number} is out of range [{low}, {high}]")
    return number


def _float(value: Any, path: str) -> float:
    if value.__class__ is float:
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise SchemaError(path, f"not a number: {value!r}") from None


def _timestamps(items: Sequence[Any], path: str, attr: str = "time_unix_nano") -> list[int]:
    """Return each item's nanosecond timestamp as int, checking every one is set and in range."""
    raw = list(map(attrgetter(attr), items))
    try:
        stamps = list(map(int, raw))
    except (TypeError, ValueError):
        stamps = []
    if len(stamps) == len(raw) and (not stamps or (min(stamps) > 0 and max(stamps) <= _I64_MAX)):
        return stamps
    field = "".join(p.capitalize() if i else p for i, p in enumerate(attr.split("_")))
    for j, value in enumerate(raw):
        where = f"{path}[{j}].{field}"
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise SchemaError(where, f"not an integer: {value!r}") from None
        if number <= 0:
            raise SchemaError(where, "required: nanoseconds since the Unix epoch, got 0 or less")
        if number > _I64_MAX:
            raise SchemaError(where, f"{number} is after the year 2262")
    return stamps  # pragma: no cover - the loop above always finds the culprit


def _ints(values: Sequence[Any], path: str) -> list[int]:
    """Unsigned 64-bit integers (bucket counts), each checked."""
    try:
        out = list(map(int, values))
    except (TypeError, ValueError):
        out = []
    if len(out) == len(values) and (not out or (min(out) >= 0 and max(out) <= _U64_MAX)):
        return out
    for j, value in enumerate(values):
        _int(value, f"{path}[{j}]")
    return out  # pragma: no cover


def _floats(values: Sequence[Any], path: str) -> list[float]:
    try:
        return list(map(float, values))
    except (TypeError, ValueError, OverflowError):
        for j, value in enumerate(values):
            _float(value, f"{path}[{j}]")
        raise  # pragma: no cover


def fmt_float(value: float) -> str:
    """Format a bound or quantile the way Prometheus clients do.

    >>> [fmt_float(x) for x in (0.1, 1.0, float("inf"), 1e-05)]
    ['0.1', '1.0', '+Inf', '1e-05']
    """
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _finite_or_text(value: float) -> float | str:
    """Doubles for JSON text: non-finite ones as their proto3 JSON strings."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _label_value(plain: Any) -> str:
    if plain.__class__ is str:
        return str(plain)
    if plain is None:
        return ""
    if plain is True or plain is False:
        return "true" if plain else "false"
    if isinstance(plain, float):
        return fmt_float(plain)
    if isinstance(plain, int):
        return str(plain)
    return _compact_json(plain)


def _compact_json(plain: Any) -> str:
    return msgspec.json.encode(plain).decode()


# =========================================================================== naming

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]+")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_UNDERSCORES = re.compile(r"__+")
_ANNOTATION = re.compile(r"\{[^}]*\}")
_UNIT_WORDS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tebibytes",
    "bit": "bits",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
_PER_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
_SPECIAL_LABELS = {"service.name": "service", "service.instance.id": "instance"}


def _word(text: str) -> str:
    return _INVALID_LABEL.sub("_", text).strip("_")


@lru_cache(maxsize=1024)
def unit_suffix(unit: str) -> str:
    """The name suffix of a UCUM unit (``1`` and ``{annotations}`` have none).

    >>> [unit_suffix(u) for u in ("s", "By", "1", "{request}", "By/s", "{packet}/s", "ms")]
    ['seconds', 'bytes', '', '', 'bytes_per_second', 'per_second', 'milliseconds']
    """
    text = _ANNOTATION.sub("", unit).strip()
    main, _, per = text.partition("/")
    words: list[str] = []
    if main and main != "1":
        word = _UNIT_WORDS.get(main) or _word(main)
        if word:
            words.append(word)
    if per:
        word = _PER_WORDS.get(per) or _word(per)
        if word:
            words += ["per", word]
    return "_".join(words)


@lru_cache(maxsize=16384)
def prometheus_name(name: str, unit: str = "", counter: bool = False) -> str:
    """Translate an OTel metric name to Prometheus conventions.

    >>> prometheus_name("http.server.request.duration", "s")
    'http_server_request_duration_seconds'
    >>> prometheus_name("http.server.request.count", "1", counter=True)
    'http_server_request_count_total'
    >>> prometheus_name("system.network.io", "By", counter=True)
    'system_network_io_bytes_total'
    >>> prometheus_name("process.runtime.bytes", "By")
    'process_runtime_bytes'
    """
    base = _UNDERSCORES.sub("_", _INVALID_NAME.sub("_", name))
    if base[:1].isdigit():
        base = "_" + base
    if counter and base.endswith("_total"):
        base = base[: -len("_total")]
    suffix = unit_suffix(unit)
    if suffix and base != suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    if counter:
        base += "_total"
    return base


@lru_cache(maxsize=16384)
def label_name(key: str) -> str:
    """Turn an attribute key into a Prometheus label name.

    >>> [label_name(k) for k in ("service.name", "service.instance.id", "http.route", "2xx")]
    ['service', 'instance', 'http_route', 'key_2xx']
    """
    special = _SPECIAL_LABELS.get(key)
    if special:
        return special
    out = _INVALID_LABEL.sub("_", key)
    return "key_" + out if out[:1].isdigit() else out


def _label_dict(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Sanitised labels; keys that collide after sanitising join their values with ``;``."""
    groups: dict[str, dict[str, str]] = {}
    for key, value in pairs:
        groups.setdefault(label_name(key), {})[key] = value
    return {
        name: next(iter(g.values())) if len(g) == 1 else ";".join(g[k] for k in sorted(g))
        for name, g in groups.items()
    }


def _merge(resource: dict[str, str], pairs: Sequence[tuple[str, str]]) -> LabelItems:
    merged = dict(resource)
    merged.update(_label_dict(pairs))
    return tuple(sorted((k, v) for k, v in merged.items() if v != ""))


def _with_label(items: LabelItems, name: str, value: str) -> LabelItems:
    return tuple(sorted([*(kv for kv in items if kv[0] != name), (name, value)]))


# =========================================================================== flavours
# The walkers below work on both JSON Structs and protobuf messages: their Python field
# names are the same (``time_unix_nano``, ``data_points``, ...). A flavour supplies the
# few things that differ: oneofs, attribute keys, optional fields.


_CAMEL_FIELDS = {"exponential_histogram": "exponentialHistogram"}


class _Flavor(Protocol):
    def plain_attributes(self, attributes: Any, path: str) -> dict[str, Any]: ...
    def body(self, record: Any, path: str) -> str: ...
    def hex_id(self, record: Any, field: str, size: int, path: str) -> str: ...


NumberColumns = tuple[list[int], list[float | None], list[Hashable]]


class _MetricsFlavor(_Flavor, Protocol):
    def data(self, metric: Any) -> tuple[str, Any] | None: ...
    def key(self, attributes: Any) -> Hashable:
        """The series cache key of a point's attributes, which ``pairs`` also takes."""

    def pairs(self, attributes: Any, path: str) -> list[tuple[str, str]]: ...
    def columns(self, points: Any, path: str) -> NumberColumns:
        """Timestamps (ns), values (None: no recorded value) and cache keys of number points."""

    def has_sum(self, point: Any) -> bool: ...


class _JsonFlavor:
    _DATA = ("gauge", "sum", "histogram", "exponential_histogram", "summary")

    def data(self, metric: Metric) -> tuple[str, Any] | None:
        for field in self._DATA:
            value = getattr(metric, field)
            if value is not None:
                return _CAMEL_FIELDS.get(field, field), value
        return None

    def key(self, attributes: msgspec.Raw | tuple[KeyValue, ...]) -> Hashable:
        return bytes(attributes) if attributes.__class__ is msgspec.Raw else attributes

    def columns(self, points: list[NumberDataPoint], path: str) -> NumberColumns:
        keys: list[Hashable] = list(map(bytes, map(_ATTRIBUTES_OF, points)))
        return _timestamps(points, path), self.numbers(points, path), keys

    def pairs(
        self, attributes: bytes | msgspec.Raw | tuple[KeyValue, ...], path: str
    ) -> list[tuple[str, str]]:
        if isinstance(attributes, bytes | msgspec.Raw):
            attributes = _decode_attributes(attributes, path)
        out = []
        for i, kv in enumerate(attributes):
            if not kv.key:
                raise SchemaError(f"{path}[{i}].key", "attribute key is empty")
            out.append((kv.key, _label_value(self.plain(kv.value, f"{path}[{i}].value"))))
        return out

    def plain_attributes(self, attributes: tuple[KeyValue, ...], path: str) -> dict[str, Any]:
        return {kv.key: self.plain(kv.value, f"{path}[{i}].value") for i, kv in enumerate(attributes)}

    def plain(self, value: AnyValue, path: str) -> Any:
        """An AnyValue as a plain Python value (ints as int, bytes as their base64 text)."""
        if value.string_value is not None:
            return value.string_value
        if value.bool_value is not None:
            return value.bool_value
        if value.int_value is not None:
            return _int(value.int_value, f"{path}.intValue", _I64_MIN, _I64_MAX)
        if value.double_value is not None:
            return _finite_or_text(_float(value.double_value, f"{path}.doubleValue"))
        if value.array_value is not None:
            return [
                self.plain(v, f"{path}.arrayValue.values[{i}]")
                for i, v in enumerate(value.array_value.values)
            ]
        if value.kvlist_value is not None:
            return self.plain_attributes(value.kvlist_value.values, f"{path}.kvlistValue.values")
        if value.bytes_value is not None:
            try:
                base64.b64decode(value.bytes_value, validate=True)
            except binascii.Error:
                raise SchemaError(f"{path}.bytesValue", "not base64") from None
            return value.bytes_value
        return None

    def numbers(self, points: list[NumberDataPoint], path: str) -> list[float | None]:
        doubles: list[Any] = list(map(_AS_DOUBLE_OF, points))
        if not any(map(_FLAGS_OF, points)) and set(map(type, doubles)) == {float}:
            return doubles  # the common case: every point an unflagged JSON number
        out: list[float | None] = []
        append = out.append
        for j, dp in enumerate(points):
            value: Any = dp.as_double
            if value is None:
                value = dp.as_int
                if value is None:
                    if dp.flags & NO_RECORDED_VALUE:
                        append(None)
                        continue
                    raise SchemaError(f"{path}[{j}]", "a number data point needs asDouble or asInt")
                if value.__class__ is not int or not _I64_MIN <= value <= _I64_MAX:
                    value = _int(value, f"{path}[{j}].asInt", _I64_MIN, _I64_MAX)
            elif value.__class__ is not float:
                value = _float(value, f"{path}[{j}].asDouble")
            append(None if dp.flags & NO_RECORDED_VALUE else float(value))
        return out

    def has_sum(self, point: Any) -> bool:
        return point.sum is not None

    def body(self, record: LogRecord, path: str) -> str:
        if record.body is None:
            return ""
        plain = self.plain(record.body, f"{path}.body")
        return plain if isinstance(plain, str) else ("" if plain is None else _compact_json(plain))

    def hex_id(self, record: Any, field: str, size: int, path: str) -> str:
        text: str = getattr(record, field)
        if not text:
            return ""
        camel = "traceId" if field == "trace_id" else "spanId"
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise SchemaError(f"{path}.{camel}", f"not hex: {text!r}") from None
        if len(raw) != size:
            raise SchemaError(f"{path}.{camel}", f"must be {size * 2} hex digits, got {len(text)}")
        return "" if not any(raw) else raw.hex()


class _ProtoFlavor:
    def data(self, metric: Any) -> tuple[str, Any] | None:
        field = metric.WhichOneof("data")
        if field is None:
            return None
        return _CAMEL_FIELDS.get(field, field), getattr(metric, field)

    def pairs(self, attributes: Any, path: str) -> list[tuple[str, str]]:
        out = []
        for i, kv in enumerate(attributes):
            if not kv.key:
                raise SchemaError(f"{path}[{i}].key", "attribute key is empty")
            out.append((kv.key, _label_value(self.plain(kv.value))))
        return out

    def plain_attributes(self, attributes: Any, path: str) -> dict[str, Any]:
        return {kv.key: self.plain(kv.value) for kv in attributes}

    def plain(self, value: Any) -> Any:
        field = value.WhichOneof("value")
        if field == "string_value":
            return value.string_value
        if field is None:
            return None
        if field == "double_value":
            return _finite_or_text(value.double_value)
        if field == "array_value":
            return [self.plain(v) for v in value.array_value.values]
        if field == "kvlist_value":
            return self.plain_attributes(value.kvlist_value.values, "")
        if field == "bytes_value":
            return base64.b64encode(value.bytes_value).decode()
        return getattr(value, field)

    def has_sum(self, point: Any) -> bool:
        return bool(point.HasField("sum"))

    def body(self, record: Any, path: str) -> str:
        if not record.HasField("body"):
            return ""
        plain = self.plain(record.body)
        return plain if isinstance(plain, str) else ("" if plain is None else _compact_json(plain))

    def hex_id(self, record: Any, field: str, size: int, path: str) -> str:
        raw: bytes = getattr(record, field)
        if not raw:
            return ""
        if len(raw) != size:
            camel = "traceId" if field == "trace_id" else "spanId"
            raise SchemaError(f"{path}.{camel}", f"must be {size} bytes, got {len(raw)}")
        return "" if not any(raw) else raw.hex()


# NumberDataPoint tags (field number << 3 | wire type): attributes 7/length-delimited,
# start_time_unix_nano 2, time_unix_nano 3, as_double 4 and as_int 6 fixed64, flags 8/varint.
_ATTRIBUTES_TAG, _TIME_TAG, _DOUBLE_TAG, _INT_TAG, _FLAGS_TAG = 0x3A, 0x19, 0x21, 0x31, 0x40
_ATTRIBUTES_FIELD = bytes([_ATTRIBUTES_TAG])
_FIXED64 = np.zeros(256, dtype=bool)
_FIXED64[[0x11, _TIME_TAG, _DOUBLE_TAG, _INT_TAG]] = True
_AS_DOUBLE, _AS_INT = 1, 2  # which value field a point has (0: neither)
_PAD = 16  # zero bytes after the points, so fixed-width reads never leave the buffer
_MAX_FIELDS = 64  # points with more fields than this are left to protobuf


class _RawProtoFlavor(_ProtoFlavor):
    """One request parsed as ``_RawMetricsRequest``; its number data points are scanned up front.

    A point's series cache key is its attribute fields as on the wire (tag, length, KeyValue):
    what the point's ``attributes`` were, parsed as a ``NumberDataPoint``, so a key always
    means one list of attributes. Keys of histogram-like points are built the same way.
    """

    def __init__(self, resource_metrics: Any) -> None:
        blobs: list[bytes] = []
        self._ranges: dict[str, tuple[int, int]] = {}
        for i, rm in enumerate(resource_metrics):
            for s, sm in enumerate(rm.scope_metrics):
                for m, metric in enumerate(sm.metrics):
                    field = metric.WhichOneof("data")
                    if field == "gauge" or field == "sum":
                        points = getattr(metric, field).data_points
                        path = f"resourceMetrics[{i}].scopeMetrics[{s}].metrics[{m}].{field}.dataPoints"
                        self._ranges[path] = (len(blobs), len(blobs) + len(points))
                        blobs += points
        self._scan = _NumberScan(blobs)

    @staticmethod
    def key(attributes: Any) -> Hashable:
        return b"".join([_ATTRIBUTES_FIELD + _varint(len(blob)) + blob for blob in attributes])

    def pairs(self, attributes: Any, path: str) -> list[tuple[str, str]]:
        if isinstance(attributes, bytes):  # a cache key
            try:
                attributes = metrics_pb2.NumberDataPoint.FromString(attributes).attributes
            except ProtoDecodeError as exc:
                raise DecodeError(path, f"not OTLP KeyValue protobufs: {exc}") from exc
        return super().pairs(attributes, path)

    def columns(self, points: Any, path: str) -> NumberColumns:
        lo, hi = self._ranges[path]
        return self._scan.columns(lo, hi, path)


class _NumberScan:
    """The fields of a request's serialized ``NumberDataPoint``s, read with numpy across all points.

    A point is read here when each of its fields has a one-byte tag and is one of: a fixed64
    field (start and end time, ``as_double``, ``as_int``), ``attributes`` with a length of one
    or two bytes (all of them one run), or ``flags`` as a one-byte varint. Repeats overwrite,
    as in protobuf (so the last of ``as_double``/``as_int`` wins). Protobuf parses the other
    points (exemplars, unknown fields, ...); its errors wait for ``columns`` of their metric,
    so that errors come in payload order.
    """

    def __init__(self, blobs: list[bytes]) -> None:
        n = len(blobs)
        lens = np.fromiter(map(len, blobs), dtype=np.int64, count=n)
        ends = np.cumsum(lens)
        starts = ends - lens
        data = b"".join(blobs)
        buf = np.frombuffer(data + bytes(_PAD), dtype=np.uint8)
        self.time = np.zeros(n, dtype=np.uint64)
        self.bits = np.zeros(n, dtype=np.uint64)  # as_double or as_int, as stored
        self.which = np.zeros(n, dtype=np.int8)
        self.flags = np.zeros(n, dtype=np.int64)
        key_start, key_end, key_size = starts.copy(), starts.copy(), np.zeros(n, dtype=np.int64)
        slow = np.zeros(n, dtype=bool)
        active = np.flatnonzero(lens > 0)
        pos = starts[active]
        words = sliding_window_view(buf, 8)  # words[p]: the 8 bytes from p on
        for _ in range(_MAX_FIELDS):
            if not active.size:
                break
            tag = buf[pos]
            b1 = buf[pos + 1].astype(np.int64)
            fixed = _FIXED64[tag]
            attr = tag == _ATTRIBUTES_TAG
            long = b1 >= 0x80
            size = np.where(fixed, 9, 2)
            if attr.any():
                b2 = buf[pos + 2].astype(np.int64)
                size = np.where(attr, np.where(long, 3 + ((b1 & 0x7F) | (b2 << 7)), 2 + b1), size)
                bad = attr & long & (b2 >= 0x80)
            else:
                bad = np.zeros(active.size, dtype=bool)
            bad |= ~(fixed | attr | ((tag == _FLAGS_TAG) & ~long))
            nxt = pos + size
            bad |= nxt > ends[active]
            if bad.any():
                slow[active[bad]] = True
                ok = ~bad
                pos, active, tag, nxt, fixed, attr, b1 = (
                    a[ok] for a in (pos, active, tag, nxt, fixed, attr, b1)
                )
            if fixed.any():
                word = words[pos[fixed] + 1].view("<u8")[:, 0]
                ftag, fwhere = tag[fixed], active[fixed]
                is_time = ftag == _TIME_TAG
                self.time[fwhere[is_time]] = word[is_time]
                is_value = (ftag == _DOUBLE_TAG) | (ftag == _INT_TAG)
                self.bits[fwhere[is_value]] = word[is_value]
                self.which[fwhere[is_value]] = np.where(ftag[is_value] == _DOUBLE_TAG, _AS_DOUBLE, _AS_INT)
            if attr.any():
                awhere, astart, aend = active[attr], pos[attr], nxt[attr]
                first = key_size[awhere] == 0
                key_start[awhere[first]] = astart[first]
                key_end[awhere] = aend
                key_size[awhere] += aend - astart
            flag = ~(fixed | attr)
            if flag.any():
                self.flags[active[flag]] = b1[flag]
            more = nxt < ends[active]
            active, pos = active[more], nxt[more]
        slow[active] = True  # fields left after the step limit
        slow |= key_end - key_start != key_size  # attributes interleaved with other fields
        self.keys: list[Hashable] = [
            data[a:b] for a, b in zip(key_start.tolist(), key_end.tolist(), strict=True)
        ]
        self.errors: dict[int, str] = {}
        for i in np.flatnonzero(slow).tolist():
            self._parse(i, blobs[i])
        numbers = self.bits.view(np.float64).copy()
        ints = self.which == _AS_INT
        numbers[ints] = self.bits[ints].view(np.int64).astype(np.float64)
        self.unset = (self.flags & NO_RECORDED_VALUE) != 0
        self.values: list[float | None] = [*numbers.tolist()]
        for i in np.flatnonzero(self.unset).tolist():
            self.values[i] = None
        self.stamps: list[int] = self.time.tolist()
        self.suspect = bool(self.errors) or not bool(
            ((self.time > 0) & (self.time <= _I64_MAX) & ((self.which != 0) | self.unset)).all()
        )

    def columns(self, lo: int, hi: int, path: str) -> NumberColumns:
        """Checked columns of points ``lo:hi``: those of one metric, whose data points are ``path``."""
        if self.suspect:
            self._check(lo, hi, path)
        return self.stamps[lo:hi], self.values[lo:hi], self.keys[lo:hi]

    def _check(self, lo: int, hi: int, path: str) -> None:
        """Raise the error of the first bad point in ``lo:hi``, in the order JSON finds them."""
        for i in range(lo, hi):
            if i in self.errors:
                raise DecodeError(f"{path}[{i - lo}]", self.errors[i])
        time = self.time[lo:hi]
        late = time > _I64_MAX
        if (time == 0).any() or late.any():
            j = int(np.flatnonzero((time == 0) | late)[0])
            where = f"{path}[{j}].timeUnixNano"
            if late[j]:
                raise SchemaError(where, f"{int(time[j])} is after the year 2262")
            raise SchemaError(where, "required: nanoseconds since the Unix epoch, got 0 or less")
        missing = (self.which[lo:hi] == 0) & ~self.unset[lo:hi]
        if missing.any():
            j = int(np.flatnonzero(missing)[0])
            raise SchemaError(f"{path}[{j}]", "a number data point needs asDouble or asInt")

    def _parse(self, i: int, blob: bytes) -> None:
        point = _RawNumberDataPoint()
        try:
            point.ParseFromString(blob)
        except ProtoDecodeError as exc:
            self.errors[i] = f"not an OTLP NumberDataPoint protobuf: {exc}"
            self.time[i] = 1  # not used: the metric's columns raise the error
            return
        self.time[i] = point.time_unix_nano
        self.flags[i] = point.flags
        field = point.WhichOneof("value")
        self.which[i] = {"as_double": _AS_DOUBLE, "as_int": _AS_INT}.get(field, 0)
        if field == "as_double":
            self.bits[i] = np.float64(point.as_double).view(np.uint64)
        elif field == "as_int":
            self.bits[i] = np.int64(point.as_int).view(np.uint64)
        self.keys[i] = _RawProtoFlavor.key(point.attributes)


_JSON_FLAVOR = _JsonFlavor()
_PROTO_FLAVOR = _ProtoFlavor()


# =========================================================================== metrics


_SeriesTables = tuple[dict[Hashable, int], dict[Hashable, LabelItems]]


class _LabelCache:
    """Process-wide: (metric name, resource) -> attribute key -> series id, and -> sorted label items.

    Keys are raw JSON (bytes starting with ``[``) or raw protobuf attribute fields (bytes
    starting with tag ``0x3a``, or empty), so the two encodings never share a key.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._resources: dict[LabelItems, int] = {}
        self._labels: dict[tuple[str, int], _SeriesTables] = {}
        self._entries = 0
        self._max = max_entries

    def resource_id(self, items: LabelItems) -> int:
        rid = self._resources.get(items)
        if rid is None:
            self._reserve()
            rid = self._resources[items] = len(self._resources)
        return rid

    def for_metric(self, name: str, resource_id: int) -> _SeriesTables:
        key = (name, resource_id)
        tables = self._labels.get(key)
        if tables is None:
            tables = self._labels[key] = ({}, {})
        return tables

    def added(self) -> None:
        self._entries += 1
        self._reserve()

    def _reserve(self) -> None:
        # clear both together: label tables are keyed by resource ids
        if self._entries >= self._max or len(self._resources) >= self._max:
            self._resources.clear()
            self._labels.clear()
            self._entries = 0


_LABELS = _LabelCache()


class _MetricsBuilder:
    """Points of one batch as three parallel lists, and the dictionary rows of new series.

    ``known`` is the store's set of committed series ids: rows are built only for others.
    """

    def __init__(self, known: AbstractSet[int] = frozenset()) -> None:
        self.known = known
        self.ids: list[int] = []
        self.stamps: list[int] = []  # nanoseconds
        self.values: list[float | None] = []
        self.rows: dict[int, SeriesRow] = {}

    @property
    def samples(self) -> int:
        return len(self.ids)

    def series(self, name: str, items: LabelItems, kind: str, unit: str) -> int:
        sid, _ = DEFAULT_INTERNER.intern(name, items)
        self.row(sid, name, items, kind, unit)
        return sid

    def row(self, sid: int, name: str, items: LabelItems, kind: str, unit: str) -> None:
        if sid not in self.known and sid not in self.rows:
            self.rows[sid] = (name, items, kind, unit)

    def build(self) -> tuple[pa.Table, pa.Table]:
        if not self.ids:
            return series_table(()), POINTS_SCHEMA.empty_table()
        stamps = np.asarray(self.stamps, dtype=np.int64) // 1000
        values = pa.array(self.values, pa.float64())
        return series_table(self.rows.items()), points_table(
            np.asarray(self.ids, dtype=np.uint64), stamps, values
        )


class _MetricContext:
    """What every data point of one metric shares: its resource and the label cache."""

    __slots__ = ("flavor", "ids", "labels", "local", "name", "out", "path", "resource")

    def __init__(
        self,
        flavor: _MetricsFlavor,
        out: _MetricsBuilder,
        resource: dict[str, str],
        resource_id: int,
        name: str,
        path: str,
    ) -> None:
        self.name = name
        self.ids, self.labels = _LABELS.for_metric(name, resource_id)
        self.flavor = flavor
        self.out = out
        self.resource = resource
        self.local: dict[Hashable, Any] = {}
        self.path = path

    def entry(self, key: Hashable, j: int) -> int:
        """The series id (under the metric's own name) of point ``j``'s attribute key."""
        sid = self.ids.get(key)
        if sid is None:
            items = _merge(self.resource, self.flavor.pairs(key, f"{self.path}[{j}].attributes"))
            self.labels[key] = items
            sid = self.ids[key] = DEFAULT_INTERNER.intern(self.name, items)[0]
            _LABELS.added()
        return sid

    def items(self, point: Any, j: int) -> tuple[Hashable, LabelItems]:
        key = self.flavor.key(point.attributes)
        self.entry(key, j)
        return key, self.labels[key]


def _walk_metrics(resource_metrics: Any, flavor: _MetricsFlavor, out: _MetricsBuilder, prefix: str) -> None:
    for i, rm in enumerate(resource_metrics):
        rpath = f"{prefix}resourceMetrics[{i}]"
        pairs = flavor.pairs(rm.resource.attributes, f"{rpath}.resource.attributes")
        resource = {k: v for k, v in _label_dict(pairs).items() if v != ""}
        resource_id = _LABELS.resource_id(tuple(sorted(resource.items())))
        for s, sm in enumerate(rm.scope_metrics):
            for m, metric in enumerate(sm.metrics):
                _walk_metric(
                    metric, flavor, out, resource, resource_id, f"{rpath}.scopeMetrics[{s}].metrics[{m}]"
                )


def _walk_metric(
    metric: Any,
    flavor: _MetricsFlavor,
    out: _MetricsBuilder,
    resource: dict[str, str],
    resource_id: int,
    path: str,
) -> None:
    found = flavor.data(metric)
    if found is None:
        return  # no data, or a data type newer than this receiver: ignored like unknown fields
    field, data = found
    points = data.data_points
    if not metric.name:
        raise SchemaError(f"{path}.name", "metric name is empty")
    if not len(points):
        return
    unit: str = metric.unit
    dpath = f"{path}.{field}.dataPoints"
    cumulative = getattr(data, "aggregation_temporality", CUMULATIVE) == CUMULATIVE
    if field in ("gauge", "sum"):
        counter = field == "sum" and cumulative and bool(data.is_monotonic)
        name = prometheus_name(metric.name, unit, counter)
        ctx = _MetricContext(flavor, out, resource, resource_id, name, dpath)
        _numbers(ctx, points, name, "counter" if counter else "gauge", unit)
        return
    name = prometheus_name(metric.name, unit)
    ctx = _MetricContext(flavor, out, resource, resource_id, name, dpath)
    if field == "histogram":
        _histograms(ctx, points, name, "histogram" if cumulative else "gauge", unit)
    elif field == "exponentialHistogram":
        _sums_and_counts(ctx, points, name, "histogram" if cumulative else "gauge", unit)
    else:
        _summaries(ctx, points, name, unit)


def _numbers(ctx: _MetricContext, points: Any, name: str, kind: str, unit: str) -> None:
    stamps, values, keys = ctx.flavor.columns(points, ctx.path)
    # the hot path: one C-level dict lookup per point; Python only for series new to the cache
    found: list[int | None] = list(map(ctx.ids.get, keys))
    if None in found:
        found = [
            ctx.entry(key, j) if sid is None else sid
            for j, (key, sid) in enumerate(zip(keys, found, strict=True))
        ]
    ids: list[int] = found  # type: ignore[assignment]
    out = ctx.out
    known = out.known
    if not all(map(known.__contains__, ids)) and not out.rows.keys() >= set(ids).difference(known):
        labels = ctx.labels
        for key, sid in zip(keys, ids, strict=True):
            out.row(sid, name, labels[key], kind, unit)
    out.ids += ids
    out.stamps += stamps
    out.values += values


def _histograms(ctx: _MetricContext, points: Any, name: str, kind: str, unit: str) -> None:
    stamps = _timestamps(points, ctx.path)
    out = ctx.out
    for j, dp in enumerate(points):
        where = f"{ctx.path}[{j}]"
        counts = _ints(dp.bucket_counts, f"{where}.bucketCounts")
        bounds = _floats(dp.explicit_bounds, f"{where}.explicitBounds")
        if (counts or bounds) and len(counts) != len(bounds) + 1:
            raise SchemaError(
                f"{where}.bucketCounts",
                f"{len(counts)} bucket counts for {len(bounds)} explicit bounds "
                "(needs len(explicitBounds) + 1)",
            )
        for b in range(len(bounds)):
            if math.isnan(bounds[b]) or (b and bounds[b] <= bounds[b - 1]):
                raise SchemaError(
                    f"{where}.explicitBounds[{b}]", "bounds must be strictly increasing numbers"
                )
        count = _int(dp.count, f"{where}.count")
        total = _float(dp.sum, f"{where}.sum") if ctx.flavor.has_sum(dp) else None
        key, items = ctx.items(dp, j)
        bounds_key = tuple(bounds)
        sids = ctx.local.get((key, bounds_key))
        if sids is None:
            les = [fmt_float(b) for b in bounds if b != math.inf] + ["+Inf"]
            sids = ctx.local[(key, bounds_key)] = (
                [out.series(f"{name}_bucket", _with_label(items, "le", le), kind, "") for le in les],
                out.series(f"{name}_sum", items, kind, unit),
                out.series(f"{name}_count", items, kind, ""),
            )
        bucket_ids, sum_id, count_id = sids
        cumulative = list(accumulate(counts)) if counts else [count]
        if bounds and bounds[-1] == math.inf:  # an explicit +Inf bound: its bucket and the overflow merge
            cumulative = [*cumulative[:-2], cumulative[-1]]
        values: list[float | None] = [float(c) for c in cumulative]
        ids = [*bucket_ids, count_id]
        values.append(float(count))
        if total is not None:
            ids.append(sum_id)
            values.append(total)
        if dp.flags & NO_RECORDED_VALUE:
            values = [None] * len(values)
        out.ids += ids
        out.stamps += [stamps[j]] * len(ids)
        out.values += values


def _sums_and_counts(ctx: _MetricContext, points: Any, name: str, kind: str, unit: str) -> None:
    stamps = _timestamps(points, ctx.path)
    out = ctx.out
    for j, dp in enumerate(points):
        where = f"{ctx.path}[{j}]"
        count = _int(dp.count, f"{where}.count")
        total = _float(dp.sum, f"{where}.sum") if ctx.flavor.has_sum(dp) else None
        key, items = ctx.items(dp, j)
        sids = ctx.local.get(key)
        if sids is None:
            sids = ctx.local[key] = (
                out.series(f"{name}_sum", items, kind, unit),
                out.series(f"{name}_count", items, kind, ""),
            )
        ids = [sids[1]]
        values: list[float | None] = [float(count)]
        if total is not None:
            ids.append(sids[0])
            values.append(total)
        if dp.flags & NO_RECORDED_VALUE:
            values = [None] * len(values)
        out.ids += ids
        out.stamps += [stamps[j]] * len(ids)
        out.values += values


def _summaries(ctx: _MetricContext, points: Any, name: str, unit: str) -> None:
    stamps = _timestamps(points, ctx.path)
    out = ctx.out
    for j, dp in enumerate(points):
        where = f"{ctx.path}[{j}]"
        count = _int(dp.count, f"{where}.count")
        total = _float(dp.sum, f"{where}.sum")
        key, items = ctx.items(dp, j)
        ids: list[int] = []
        values: list[float | None] = []
        for q, qv in enumerate(dp.quantile_values):
            quantile = _float(qv.quantile, f"{where}.quantileValues[{q}].quantile")
            if not 0.0 <= quantile <= 1.0:
                raise SchemaError(f"{where}.quantileValues[{q}].quantile", f"{quantile} is not in [0, 1]")
            ids.append(out.series(name, _with_label(items, "quantile", fmt_float(quantile)), "summary", unit))
            values.append(_float(qv.value, f"{where}.quantileValues[{q}].value"))
        sids = ctx.local.get(key)
        if sids is None:
            sids = ctx.local[key] = (
                out.series(f"{name}_sum", items, "summary", unit),
                out.series(f"{name}_count", items, "summary", ""),
            )
        ids += [sids[0], sids[1]]
        values += [total, float(count)]
        if dp.flags & NO_RECORDED_VALUE:
            values = [None] * len(values)
        out.ids += ids
        out.stamps += [stamps[j]] * len(ids)
        out.values += values


# =========================================================================== logs


class _LogsBuilder:
    """Columns of ``LOGS_SCHEMA`` as lists (timestamps in microseconds)."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in LOGS_SCHEMA.names}

    @property
    def samples(self) -> int:
        return len(self.columns["ts"])

    def build(self) -> pa.Table:
        return pa.Table.from_pydict(self.columns, schema=LOGS_SCHEMA)


def _walk_logs(resource_logs: Any, flavor: _Flavor, out: _LogsBuilder, prefix: str) -> None:
    cols = out.columns
    now_us: int | None = None
    for i, rl in enumerate(resource_logs):
        rpath = f"{prefix}resourceLogs[{i}]"
        resource = flavor.plain_attributes(rl.resource.attributes, f"{rpath}.resource.attributes")
        service = resource.get("service.name")
        service = service if isinstance(service, str) and service else "unknown"
        resource_json = _compact_json(resource)
        for s, sl in enumerate(rl.scope_logs):
            spath = f"{rpath}.scopeLogs[{s}].logRecords"
            records = sl.log_records
            if not len(records):
                continue
            scope: str = sl.scope.name
            for r, rec in enumerate(records):
                where = f"{spath}[{r}]"
                ts = _int(rec.time_unix_nano, f"{where}.timeUnixNano", 0, _I64_MAX) // 1000
                observed = (
                    _int(rec.observed_time_unix_nano, f"{where}.observedTimeUnixNano", 0, _I64_MAX) // 1000
                )
                if not ts:
                    if not observed:  # neither set: the receiver observes it now (OTel log data model)
                        now_us = now_us or int(datetime.now(UTC).timestamp() * 1_000_000)
                        observed = now_us
                    ts = observed
                severity = rec.severity_number
                if not 0 <= severity <= _MAX_SEVERITY:
                    raise SchemaError(f"{where}.severityNumber", f"{severity} is not in [0, {_MAX_SEVERITY}]")
                cols["ts"].append(ts)
                cols["observed_ts"].append(observed or None)
                cols["service"].append(service)
                cols["severity_number"].append(severity)
                cols["severity_text"].append(rec.severity_text)
                cols["body"].append(flavor.body(rec, where))
                cols["attributes"].append(
                    _compact_json(flavor.plain_attributes(rec.attributes, f"{where}.attributes"))
                )
                cols["resource"].append(resource_json)
                cols["scope"].append(scope)
                cols["trace_id"].append(flavor.hex_id(rec, "trace_id", 16, where))
                cols["span_id"].append(flavor.hex_id(rec, "span_id", 8, where))
