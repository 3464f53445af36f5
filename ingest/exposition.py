"""Prometheus text exposition 0.0.4 and OpenMetrics 1.0 text into a ``WriteBatch``.

Spec: prometheus/docs ``exposition_formats.md`` and the OpenMetrics 1.0 text format.
The two differ in what matters here: 0.0.4 timestamps are integer milliseconds and every
sample name is its own family, while OpenMetrics timestamps are float seconds, ``# TYPE``
names the family (``x`` for samples ``x_total``), exemplars may follow a value and the
text ends with ``# EOF``. As Prometheus does, OpenMetrics ``_created`` samples of counters,
histograms and summaries are not stored (they are metadata, not a time series).

Speed: a scrape repeats the same series text every time, so the text before the value
(``name{labels}``) is the cache key of a parsed, validated, id'd label set. A known series
costs a ``rfind``, a dict lookup and a ``float`` per line; labels are tokenised only the
first time this parser sees a series.

Errors name the line: ``line 7: invalid metric name '1x'`` (``SchemaError``, HTTP 422).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Literal

import numpy as np

from core.batch import WriteBatch, digest_of
from core.errors import DecodeError, SchemaError
from core.series import series_id
from ingest.points import LabelItems, points_table, series_table

FORMAT = "prometheus_text"
OPENMETRICS_MEDIA_TYPE = "application/openmetrics-text"
#: What a scraper sends: OpenMetrics first, then the Prometheus text format (as Prometheus does).
ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SERIES_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[ \t]*(\{.*\})?")
_LABEL_RE = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*')
# A sample line cut where the values start: the series text, then everything after it.
_LINE_RE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*[ \t]*(?:\{(?:[^"}]|"(?:[^"\\\n]|\\.)*")*\})?)(.*)')
_PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
_BLOCK_RE = re.compile(
    r'\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",)*(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")?\}'
)
_ESCAPE_RE = re.compile(r"\\(.)")
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}

#: ``# TYPE`` values and the series kind they give (``core.model.MetricKind`` values).
KIND_OF_TYPE = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "gaugehistogram": "histogram",
    "summary": "summary",
    "untyped": "unknown",
    "unknown": "unknown",
    "info": "gauge",
    "stateset": "gauge",
}
#: Sample-name suffixes each family type allows besides the family name itself.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("_count", "_sum", "_created"),
    "info": ("_info",),
}
_CREATED_SKIPPED = ("counter", "histogram", "summary")

LabelConflict = Literal["override", "rename", "keep"]
_Entry = tuple[int, str, LabelItems]


class ExpositionParser:
    """Parse exposition text into batches, remembering the series text it has validated.

    ``known_series`` is the store's set of committed series ids: a batch carries series
    dictionary rows only for series the store does not have yet.

    Example
    -------
    >>> batch = ExpositionParser().parse(b'up{job="node"} 1 1700000000000\\n')
    >>> batch.points.column("value").to_pylist(), batch.series.column("labels").to_pylist()
    ([1.0], [[('job', 'node')]])
    """

    def __init__(self, known_series: AbstractSet[int] = frozenset(), max_cache: int = 1_000_000) -> None:
        self._known = known_series
        self._max_cache = max_cache
        self._caches: dict[tuple[LabelItems, str], dict[str, _Entry]] = {}

    def parse(
        self,
        body: bytes | str,
        *,
        openmetrics: bool | None = None,
        default_ts_us: int | None = None,
        extra_labels: Mapping[str, str] | None = None,
        conflict: LabelConflict = "override",
        source: str = FORMAT,
    ) -> WriteBatch:
        """Parse one exposition; raise ``SchemaError`` naming the line at fault.

        ``openmetrics``: True for an ``application/openmetrics-text`` body (``# EOF``
        required, float-second timestamps), False for 0.0.4, None to tell by a final
        ``# EOF``. Samples without a timestamp get ``default_ts_us`` (default: now).
        ``extra_labels`` are added to every series; where an exposed label has the same
        name, ``conflict`` decides: ``override`` (extra wins), ``rename`` (the exposed
        label becomes ``exported_<name>``, Prometheus' ``honor_labels: false``) or
        ``keep`` (exposed wins, ``honor_labels: true``).
        """
        raw = body.encode() if isinstance(body, str) else body
        text = _decode(raw)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if openmetrics is None:
            openmetrics = bool(lines) and lines[-1] == "# EOF"
        now_us = default_ts_us if default_ts_us is not None else time.time_ns() // 1000
        extra = tuple(sorted((extra_labels or {}).items()))
        for k, v in extra:
            if not LABEL_NAME_RE.fullmatch(k) or k.startswith("__"):
                raise SchemaError("extra_label", f"invalid label name {k!r}")
            if not v:
                raise SchemaError("extra_label", f"empty value for label {k!r}")
        cache = self._cache_for(extra, conflict)
        known = self._known
        types: dict[str, str] = {}
        units: dict[str, str] = {}
        kinds: dict[str, tuple[str, str, bool]] = {}
        new_rows: dict[int, tuple[str, LabelItems, str, str]] = {}
        ids: list[int] = []
        values: list[float] = []
        stamps: list[int] = []
        missing_ts = False
        eof_at = 0
        for n, line in enumerate(lines, 1):
            if not line:
                continue
            if eof_at:
                raise SchemaError(f"line {n}", "content after '# EOF'")
            if line[0] == "#":
                if line == "# EOF" and openmetrics:
                    eof_at = n
                else:
                    _comment(line, n, types, units, openmetrics)
                continue
            # Fast path: the series text ends at the last '}' (values and timestamps have
            # none) or at the first space; anything unusual goes through the full regex.
            if "\t" in line or (openmetrics and "#" in line):
                key, rest = _split_line(line, n)
            else:
                cut = line.rfind("}") + 1 if "{" in line else line.find(" ")
                if cut <= 0:
                    raise SchemaError(f"line {n}", "expected a sample: name, labels, value")
                key, rest = line[:cut], line[cut:]
            entry = cache.get(key)
            if entry is None:
                entry = self._first_sight(cache, key, n, extra, conflict)
            sid, name = entry[0], entry[1]
            kind = kinds.get(name)
            if kind is None:
                kind = kinds[name] = _kind_of(name, types, units, openmetrics)
            if kind[2]:  # an OpenMetrics _created sample: metadata, not stored
                continue
            if sid not in known and sid not in new_rows:
                new_rows[sid] = (name, entry[2], kind[0], kind[1])
            tokens = rest.split()
            if openmetrics and "#" in tokens:
                tokens = tokens[: tokens.index("#")]  # an exemplar follows: not stored
            if not tokens or len(tokens) > 2 or rest[0] not in " \t":
                raise SchemaError(f"line {n}", f"expected 'value [timestamp]' after the series, got {rest!r}")
            ids.append(sid)
            values.append(_value(tokens[0], n))
            if len(tokens) == 2:
                stamps.append(_timestamp(tokens[1], n, openmetrics))
            else:
                stamps.append(now_us)
                missing_ts = True
        if openmetrics and not eof_at:
            raise SchemaError(f"line {len(lines) + 1}", "OpenMetrics text must end with '# EOF'")
        parts = [raw, repr((extra, conflict)).encode()]
        if missing_ts:  # the same text received later is a new observation
            parts.append(str(now_us).encode())
        return WriteBatch(
            source=source,
            digest=digest_of(source, *parts),
            series=series_table(new_rows.items()),
            points=points_table(
                np.asarray(ids, dtype=np.uint64),
                np.asarray(stamps, dtype=np.int64),
                np.asarray(values, dtype=np.float64),
            ),
            samples=len(ids),
        )

    def _cache_for(self, extra: LabelItems, conflict: str) -> dict[str, _Entry]:
        cache = self._caches.get((extra, conflict))
        if cache is None:
            if len(self._caches) > 1000:
                self._caches.clear()
            cache = self._caches[(extra, conflict)] = {}
        elif len(cache) > self._max_cache:
            cache.clear()
        return cache

    @staticmethod
    def _first_sight(
        cache: dict[str, _Entry], key: str, n: int, extra: LabelItems, conflict: LabelConflict
    ) -> _Entry:
        name, labels = parse_series(key, n)
        labels = merge_labels(labels, extra, conflict)
        items = tuple(sorted(labels.items()))
        entry = (series_id(name, items), name, items)
        cache[key] = entry
        return entry


def parse_exposition(
    body: bytes | str,
    *,
    openmetrics: bool | None = None,
    default_ts_us: int | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> WriteBatch:
    """Parse one exposition with a throw-away parser (see ``ExpositionParser.parse``)."""
    return ExpositionParser().parse(
        body, openmetrics=openmetrics, default_ts_us=default_ts_us, extra_labels=extra_labels
    )


def is_openmetrics(content_type: str) -> bool:
    """Whether a Content-Type names the OpenMetrics text format."""
    return content_type.split(";", 1)[0].strip().lower() == OPENMETRICS_MEDIA_TYPE


def merge_labels(
    labels: dict[str, str], extra: LabelItems, conflict: LabelConflict = "override"
) -> dict[str, str]:
    """Add ``extra`` labels to exposed ones, resolving clashes as ``conflict`` says.

    >>> merge_labels({"job": "app", "a": "1"}, (("job", "scrape"),), "rename")
    {'a': '1', 'exported_job': 'app', 'job': 'scrape'}
    """
    if not extra:
        return labels
    merged = dict(labels)
    for k, v in extra:
        if k in labels:
            if conflict == "keep":
                continue
            if conflict == "rename":
                merged[f"exported_{k}"] = merged.pop(k)
        merged[k] = v
    return dict(sorted(merged.items()))


def parse_series(key: str, n: int) -> tuple[str, dict[str, str]]:
    """Parse ``name{a="x",b="y"}`` into the name and its labels (empty values dropped)."""
    m = _SERIES_RE.fullmatch(key.rstrip(" \t"))
    if m is None:
        raise SchemaError(f"line {n}", f"invalid metric name or label set in {key[:80]!r}")
    name, block = m.group(1), m.group(2)
    labels: dict[str, str] = {}
    if block and _BLOCK_RE.fullmatch(block):  # the common, well-formed case in one regex pass
        pairs = _PAIR_RE.findall(block)
        labels = {k: (_unescape(v, n) if "\\" in v else v) for k, v in pairs}
        if len(labels) == len(pairs) and "__name__" not in labels:
            return name, {k: v for k, v in labels.items() if v}
        labels = {}  # duplicates or __name__: the scanner below names the problem
    if block:
        pos, end = 1, len(block) - 1
        while True:
            while pos < end and block[pos] in " \t":
                pos += 1
            if pos >= end:
                break
            lm = _LABEL_RE.match(block, pos, end)
            if lm is None:
                raise SchemaError(
                    f"line {n}", f"invalid label at column {len(name) + pos + 1}: {block[pos : pos + 40]!r}"
                )
            label, value = lm.group(1), lm.group(2)
            if label in labels:
                raise SchemaError(f"line {n}", f"duplicate label {label!r}")
            if label == "__name__":
                raise SchemaError(f"line {n}", "label '__name__' is not allowed in a label set")
            if "\\" in value:
                value = _unescape(value, n)
            if value:
                labels[label] = value
            pos = lm.end()
            if pos < end:
                if block[pos] != ",":
                    raise SchemaError(f"line {n}", f"expected ',' or '}}' after label {label!r}")
                pos += 1
    return name, labels


def _unescape(value: str, n: int) -> str:
    def one(m: re.Match[str]) -> str:
        out = _UNESCAPE.get(m.group(1))
        if out is None:
            raise SchemaError(f"line {n}", f"invalid escape sequence '\\{m.group(1)}' in a label value")
        return out

    return _ESCAPE_RE.sub(one, value)


def _split_line(line: str, n: int) -> tuple[str, str]:
    m = _LINE_RE.match(line)
    if m is None or not m.group(2):
        raise SchemaError(f"line {n}", f"invalid sample line {line[:80]!r}")
    return m.group(1), m.group(2)


def _comment(line: str, n: int, types: dict[str, str], units: dict[str, str], openmetrics: bool) -> None:
    parts = line.split(None, 3)
    if len(parts) < 2 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE", "UNIT"):
        if openmetrics and line.startswith("# EOF"):
            raise SchemaError(f"line {n}", "malformed '# EOF'")
        return  # a plain comment: allowed by 0.0.4, ignored
    if len(parts) < 3:
        raise SchemaError(f"line {n}", f"'# {parts[1]}' without a metric name")
    name = parts[2]
    if not METRIC_NAME_RE.fullmatch(name):
        raise SchemaError(f"line {n}", f"invalid metric name {name!r} in '# {parts[1]}'")
    if parts[1] == "TYPE":
        kind = parts[3].strip().lower() if len(parts) > 3 else ""
        if kind not in KIND_OF_TYPE:
            raise SchemaError(f"line {n}", f"unknown metric type {kind!r} for {name!r}")
        if name in types:
            raise SchemaError(f"line {n}", f"second '# TYPE' line for {name!r}")
        types[name] = kind
    elif parts[1] == "UNIT":
        units[name] = parts[3].strip() if len(parts) > 3 else ""


def _kind_of(
    name: str, types: dict[str, str], units: dict[str, str], openmetrics: bool
) -> tuple[str, str, bool]:
    """Return (kind, unit, whether the sample is an OpenMetrics ``_created`` to skip)."""
    kind = types.get(name)
    if kind is not None:
        return KIND_OF_TYPE[kind], units.get(name, ""), False
    for family_type, suffixes in _SUFFIXES.items():
        for suffix in suffixes:
            if name.endswith(suffix):
                family = name[: -len(suffix)]
                if types.get(family) == family_type:
                    skip = openmetrics and suffix == "_created" and family_type in _CREATED_SKIPPED
                    return KIND_OF_TYPE[family_type], units.get(family, ""), skip
    return "unknown", "", False


def _value(token: str, n: int) -> float:
    try:
        if "_" in token:
            raise ValueError(token)
        return float(token)
    except ValueError:
        raise SchemaError(f"line {n}", f"invalid sample value {token!r}") from None


def _timestamp(token: str, n: int, openmetrics: bool) -> int:
    try:
        if "_" in token:
            raise ValueError(token)
        if openmetrics:
            seconds = float(token)
            if not -1e11 < seconds < 1e11:
                raise ValueError(token)
            return round(seconds * 1_000_000)
        ms = int(token)
        if not -1e14 < ms < 1e14:
            raise ValueError(token)
        return ms * 1000
    except ValueError:
        unit = "float seconds" if openmetrics else "integer milliseconds"
        raise SchemaError(f"line {n}", f"invalid timestamp {token!r} (expected {unit})") from None


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DecodeError(f"line {line}", "not valid UTF-8") from exc
