"""SLO specifications: the model, and OpenSLO v1 import/export.

The model (frozen dataclasses below) is what the rest of ``slo/`` works on:
``evaluate.py`` computes SLIs and budgets from it, ``rules.py`` writes Prometheus rules from
it, ``policy.py`` turns its budget burn into backlog items.

:func:`load_openslo` reads OpenSLO v1 documents (YAML, multi-document, or JSON) strictly:
an unknown field, a dangling reference or an unsupported construct is a
:class:`~core.errors.ConfigError` whose message names the document and the field path
(``SLO checkout-availability: spec.objectives[0].target: ...``). :func:`to_openslo` writes
one SLO document back, with its indicator inline. opsloop settings that OpenSLO has no field
for travel as ``opsloop.dev/*`` annotations; an event-based SLI is a ``ratioMetric`` whose
``total`` metric source has type ``opsloop-events``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from core.errors import ConfigError
from core.selectors import Matcher, parse_selector

__all__ = [
    "AlertCondition",
    "BudgetingMethod",
    "EventRatioSli",
    "RatioSli",
    "Selector",
    "SloSpec",
    "ThresholdSli",
    "TimeWindow",
    "calendar_units",
    "format_duration",
    "load_openslo",
    "parse_duration",
    "parse_query",
    "to_openslo",
    "window_bounds",
]


@dataclass(frozen=True, slots=True)
class Selector:
    """A Prometheus series selector, e.g. ``http_requests_total{service="checkout",code!~"5.."}``.

    ``text`` is the selector as written (normalised: no spaces); ``matchers`` include the
    metric name as ``__name__``; ``window`` is the range of a ``rate(...[5m])``-style query
    it was read from, if any (informational: opsloop evaluates over its own windows).
    """

    text: str
    matchers: tuple[Matcher, ...]
    window: str = ""

    @property
    def metric(self) -> str:
        """The metric name (``__name__ = ...``), or '' when the selector has none."""
        return next((m.value for m in self.matchers if m.name == "__name__" and m.op == "="), "")


class BudgetingMethod(StrEnum):
    OCCURRENCES = "Occurrences"  # good events / total events over the window
    TIMESLICES = "Timeslices"  # good slices / all slices; a slice is good when it meets timeslice_target
    RATIO_TIMESLICES = "RatioTimeslices"  # average of the per-slice good ratios


@dataclass(frozen=True, slots=True)
class RatioSli:
    """good/total (or (total - bad)/total) from metric series.

    ``counter``: the series are cumulative counters, counted as increases (resets handled);
    otherwise they are gauges (e.g. per-second rates) whose values are summed.
    Exactly one of ``good`` and ``bad`` is set.
    """

    total: Selector
    good: Selector | None = None
    bad: Selector | None = None
    counter: bool = False


@dataclass(frozen=True, slots=True)
class ThresholdSli:
    """A point is good when ``value <op> threshold`` (op: lte, lt, gte, gt), e.g. p95 latency <= 0.3."""

    metric: Selector
    op: str
    threshold: float


@dataclass(frozen=True, slots=True)
class EventRatioSli:
    """good/total from stored CloudEvents: events whose type starts with ``total_type`` are the
    total, those whose type starts with ``bad_type`` are bad (e.g. ``com.shop.order.`` and
    ``com.shop.order.failed``); ``service`` narrows to one service when set."""

    total_type: str
    bad_type: str
    service: str = ""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The SLO period: rolling (``28d``), or calendar-aligned (``1M`` from ``calendar_start``).

    ``duration`` is the OpenSLO text (``5m``, ``4w``, ``1M``, ``1Q``, ``1Y``); calendar windows
    restart at each period boundary in ``timezone`` (IANA name).
    """

    duration: str
    rolling: bool = True
    calendar_start: datetime | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class AlertCondition:
    """An OpenSLO burn-rate alert condition (kept for export; alerting uses ``windows.yaml``)."""

    name: str
    severity: str
    threshold: float
    lookback: str
    alert_after: str = ""


@dataclass(frozen=True, slots=True)
class SloSpec:
    """One SLO, as opsloop evaluates it.

    ``objective`` is the target fraction (0.999 for 99.9 %); the error budget is ``1 - objective``.
    ``timeslice_target``/``timeslice_window`` apply to the timeslice methods (a ratio SLI's
    slice is good when its ratio reaches ``timeslice_target``; a threshold SLI's slice is good
    when every point in it meets the threshold). ``exclude_maintenance`` leaves time inside the
    service's maintenance windows out of the SLI. ``missing`` says what a slice with no data
    counts as: ``ignore`` (default), ``good`` or ``bad``. ``min_events`` is the low-traffic
    guard: a burn-rate alert needs this many events (or slices) in its long window.
    """

    name: str
    service: str
    objective: float
    window: TimeWindow
    budgeting_method: BudgetingMethod
    sli: RatioSli | ThresholdSli | EventRatioSli
    description: str = ""
    display_name: str = ""
    timeslice_target: float | None = None
    timeslice_window: timedelta = timedelta(minutes=1)
    exclude_maintenance: bool = False
    missing: str = "ignore"
    min_events: int = 10
    alert_conditions: tuple[AlertCondition, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # the documents read


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"(\d+)([mhdwMQY])")
_FIXED = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_MONTHS = {"M": 1, "Q": 3, "Y": 12}


def calendar_units(text: str, field: str = "duration") -> tuple[int, str]:
    """Split an OpenSLO duration into its count and unit (one of ``m h d w M Q Y``).

    Calendar windows need the unit itself, since a month has no fixed length.

    >>> calendar_units("1Q")
    (1, 'Q')
    >>> calendar_units("28d")
    (28, 'd')
    """
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            f"{field}: {text!r} is not a duration (an integer followed by m, h, d, w, M, Q or Y, e.g. 28d)"
        )
    count = int(match.group(1))
    if count <= 0:
        raise ConfigError(f"{field}: duration {text!r} must be positive")
    return count, match.group(2)


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """A fixed-length OpenSLO duration (``5m``, ``6h``, ``28d``, ``4w``) as a timedelta.

    Months, quarters and years (``M``, ``Q``, ``Y``) have no fixed length and are refused;
    calendar windows read them with :func:`calendar_units`.

    >>> parse_duration("4w")
    datetime.timedelta(days=28)
    """
    count, unit = calendar_units(text, field)
    if unit in _MONTHS:
        raise ConfigError(
            f"{field}: {text!r} is a calendar duration (months vary in length): "
            "use it in a calendar timeWindow (isRolling: false), or give minutes, hours, days or weeks"
        )
    return count * _FIXED[unit]


def format_duration(value: timedelta) -> str:
    """The shortest OpenSLO text for a positive whole number of minutes.

    >>> format_duration(timedelta(hours=6)), format_duration(timedelta(days=7)), format_duration(timedelta(minutes=90))
    ('6h', '1w', '90m')
    """
    minutes, rest = divmod(value, timedelta(minutes=1))
    if rest or minutes <= 0:
        raise ValueError(f"{value} is not a positive whole number of minutes")
    for unit, size in (("w", 10080), ("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


# --------------------------------------------------------------------------- queries

_SEL = r'(?P<sel>(?:[A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{(?:[^"{}]|"(?:[^"\\]|\\.)*")*\})?)'
_RANGE = r"(?P<range>\{\{\s*\.window\s*\}\}|(?:\d+(?:ms|[smhdwy]))+)"
_CALL = rf"(?:rate|increase)\s*\(\s*{_SEL}\s*\[\s*{_RANGE}\s*\]\s*\)"
_SUM = r"sum\s*(?:by\s*\((?P<by>[^()]*)\)\s*)?"
_QUERY_FORMS = tuple(
    re.compile(rf"\s*{form}\s*")
    for form in (_SEL, _CALL, rf"{_SUM}\(\s*{_CALL}\s*\)", rf"{_SUM}\(\s*{_SEL}\s*\)")
)
_ACCEPTED = (
    'a selector such as m{l="v"}, rate(<sel>[<w>]), increase(<sel>[<w>]), '
    "or sum(...) / sum by (labels) (...) around one of those, "
    "where <w> is a range such as 5m or the placeholder {{.window}}"
)
_QUOTED_OR_SPACE = re.compile(r'"(?:[^"\\]|\\.)*"|\s+')
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _squeeze(text: str) -> str:
    """``text`` without whitespace outside double-quoted strings."""
    return _QUOTED_OR_SPACE.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text)


def parse_query(text: str, field: str = "query") -> Selector:
    """Read the series selector (and range) out of a PromQL query of an accepted form.

    opsloop evaluates SLIs itself over its own windows, so only the selector matters; the
    accepted forms are those ratio SLIs are written in: a bare selector, ``rate`` or
    ``increase`` of a range, and ``sum`` (optionally ``by (...)``) around either. Grouping
    labels are dropped: an SLO sums over every series its selector matches.

    >>> s = parse_query('sum by (code) (rate(http_requests_total{job="api", code!~"5.."}[{{.window}}]))')
    >>> s.text, s.metric, s.window
    ('http_requests_total{job="api",code!~"5.."}', 'http_requests_total', '{{.window}}')
    """
    if not isinstance(text, str):
        raise ConfigError(f"{field}: expected a query string, got {type(text).__name__}")
    for form in _QUERY_FORMS:
        match = form.fullmatch(text)
        if match is None or not match.group("sel").strip():
            continue
        groups = match.groupdict()
        by = groups.get("by")
        if by is not None and by.strip():
            labels = [label.strip() for label in by.split(",")]
            if not all(_LABEL.fullmatch(label) for label in labels):
                raise ConfigError(f"{field}: bad grouping labels ({by}) in query {text!r}")
        selector = _squeeze(match.group("sel"))
        try:
            matchers = parse_selector(selector)
        except ConfigError as exc:
            raise ConfigError(f"{field}: {exc.message}") from exc
        if not matchers:
            raise ConfigError(f"{field}: selector {selector!r} has no matcher and would match every series")
        return Selector(selector, matchers, _squeeze(groups.get("range") or ""))
    raise ConfigError(f"{field}: cannot read query {text!r}; accepted forms: {_ACCEPTED}")


def _query_for(selector: Selector) -> str:
    """The query :func:`to_openslo` writes for a selector (read back by :func:`parse_query`)."""
    return f"sum(rate({selector.text}[{selector.window}]))" if selector.window else f"sum({selector.text})"


# --------------------------------------------------------------------------- calendar windows

_EPOCH = datetime(1970, 1, 1)
_MONDAY = datetime(1970, 1, 5)


def _add_months(start: datetime, months: int) -> datetime:
    """``start`` moved by whole months, the day clamped to the month's length (Jan 31 -> Feb 28)."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    next_first = datetime(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    return start.replace(year=year, month=month, day=min(start.day, last_day))


def window_bounds(window: TimeWindow, at: datetime) -> tuple[datetime, datetime]:
    """The SLO period containing ``at``, as ``[start, end)`` in naive UTC.

    A rolling window ends at ``at``. A calendar window is the current period of its length,
    counted in wall-clock time of ``window.timezone`` from ``calendar_start`` (or, without
    one, from the natural boundary: the first of a month, quarter or year; midnight; Monday),
    so a monthly window starts at local midnight whatever the UTC offset. Months added to a
    start on the 29th-31st clamp to the month's last day.

    >>> window_bounds(TimeWindow("1M", rolling=False), datetime(2024, 2, 10, 8, 0))
    (datetime.datetime(2024, 2, 1, 0, 0), datetime.datetime(2024, 3, 1, 0, 0))
    >>> window_bounds(TimeWindow("1h"), datetime(2024, 2, 10, 8, 0))[0]
    datetime.datetime(2024, 2, 10, 7, 0)
    """
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    if window.rolling:
        return at - parse_duration(window.duration, "timeWindow.duration"), at
    count, unit = calendar_units(window.duration, "timeWindow.duration")
    try:
        zone = ZoneInfo(window.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"timeWindow.timeZone: unknown time zone {window.timezone!r}") from exc
    local = at.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    if unit in _MONTHS:
        anchor = window.calendar_start or _EPOCH
        step = count * _MONTHS[unit]
        elapsed = (local.year - anchor.year) * 12 + local.month - anchor.month
        k = elapsed // step
        while _add_months(anchor, k * step) > local:
            k -= 1
        while _add_months(anchor, (k + 1) * step) <= local:
            k += 1
        start, end = _add_months(anchor, k * step), _add_months(anchor, (k + 1) * step)
    else:
        anchor = window.calendar_start or (_MONDAY if unit == "w" else _EPOCH)
        length = count * _FIXED[unit]
        k = (local - anchor) // length
        start, end = anchor + k * length, anchor + (k + 1) * length

    def to_utc(wall: datetime) -> datetime:
        return wall.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)

    return to_utc(start), to_utc(end)


# --------------------------------------------------------------------------- OpenSLO import

API_VERSION = "openslo/v1"
EVENTS_SOURCE = "opsloop-events"
_KINDS = ("Service", "DataSource", "SLI", "SLO", "AlertPolicy", "AlertCondition", "AlertNotificationTarget")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_ANNOTATION_PREFIX = "opsloop.dev/"
_EXCLUDE = "opsloop.dev/exclude-maintenance"
_MISSING = "opsloop.dev/missing-data"
_MIN_EVENTS = "opsloop.dev/min-events"
_OPS = ("lte", "lt", "gte", "gt")


class _Invalid(Exception):
    """A field problem: ``path`` inside the document, then the reason (becomes a ConfigError)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _mapping(value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
    """``value`` as a mapping with only ``allowed`` keys and every ``required`` one."""
    if not isinstance(value, Mapping):
        raise _Invalid(path or "document", f"expected a mapping, got {type(value).__name__}")
    allowed = set(allowed)
    for key in value:
        if key not in allowed:
            raise _Invalid(_join(path, str(key)), f"unknown field (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if value.get(key) is None:
            raise _Invalid(_join(path, key), "required")
    return dict(value)


def _text(value: Any, path: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _Invalid(path, f"expected a non-empty string, got {value!r}")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(path, f"expected a number, got {value!r}")
    return float(value)


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(path, f"expected true or false, got {value!r}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(path, f"expected a list, got {type(value).__name__}")
    return value


def _name(value: Any, path: str) -> str:
    name = _text(value, path)
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise _Invalid(
            path,
            f"{name!r} is not an RFC 1123 label (at most 63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit)",
        )
    return name


def _duration(value: Any, path: str) -> str:
    text = _text(value, path)
    try:
        parse_duration(text, path)
    except ConfigError as exc:
        raise _Invalid(path, exc.message.removeprefix(f"{path}: ")) from exc
    return text


@dataclass(slots=True)
class _Doc:
    """One top-level document, checked for its envelope."""

    kind: str
    name: str
    metadata: dict[str, Any]
    spec: Any
    raw: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"{self.kind} {self.name}"


def _metadata(value: Any, path: str) -> dict[str, Any]:
    meta = _mapping(value, path, ("name", "displayName", "labels", "annotations"), ("name",))
    _name(meta["name"], _join(path, "name"))
    if meta.get("displayName") is not None:
        _text(meta["displayName"], _join(path, "displayName"), empty=True)
    labels: dict[str, str] = {}
    for key, item in _mapping(
        meta.get("labels") or {}, _join(path, "labels"), meta.get("labels") or {}
    ).items():
        where = _join(_join(path, "labels"), str(key))
        if isinstance(item, list) and all(isinstance(v, str) for v in item):
            labels[str(key)] = ",".join(item)
        elif isinstance(item, str):
            labels[str(key)] = item
        else:
            raise _Invalid(where, f"expected a string or a list of strings, got {item!r}")
    meta["labels"] = labels
    annotations = meta.get("annotations") or {}
    _mapping(annotations, _join(path, "annotations"), annotations)
    meta["annotations"] = dict(annotations)
    return meta


def _envelope(raw: Any, index: int) -> _Doc:
    where = f"document {index}"
    try:
        doc = _mapping(
            raw, "", ("apiVersion", "kind", "metadata", "spec"), ("apiVersion", "kind", "metadata")
        )
        if doc["apiVersion"] != API_VERSION:
            raise _Invalid("apiVersion", f"expected {API_VERSION!r}, got {doc['apiVersion']!r}")
        if doc["kind"] not in _KINDS:
            raise _Invalid("kind", f"expected one of {', '.join(_KINDS)}, got {doc['kind']!r}")
        where = f"{where} ({doc['kind']})"
        meta = _metadata(doc["metadata"], "metadata")
    except _Invalid as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return _Doc(doc["kind"], meta["name"], meta, doc.get("spec"), raw)


class _Reader:
    """The documents of one load, by kind and name, and the SLOs built from them."""

    def __init__(self, docs: list[_Doc]) -> None:
        self.by_kind: dict[str, dict[str, _Doc]] = {kind: {} for kind in _KINDS}
        for doc in docs:
            if doc.name in self.by_kind[doc.kind]:
                raise ConfigError(f"{doc.where}: metadata.name: duplicate {doc.kind} name")
            self.by_kind[doc.kind][doc.name] = doc
        self.used: list[_Doc] = []

    def ref(self, kind: str, name: Any, path: str) -> _Doc:
        name = _text(name, path)
        doc = self.by_kind[kind].get(name)
        if doc is None:
            raise _Invalid(path, f"no {kind} named {name!r} among the documents")
        if doc not in self.used:
            self.used.append(doc)
        return doc

    def check(self, doc: _Doc) -> None:
        """Validate a standalone document of a kind other than SLO."""
        try:
            spec_path = "spec"
            if doc.kind == "Service":
                _mapping(doc.spec or {}, spec_path, ("description",))
            elif doc.kind == "DataSource":
                _mapping(doc.spec, spec_path, ("description", "type", "connectionDetails"), ("type",))
            elif doc.kind == "AlertNotificationTarget":
                _mapping(doc.spec, spec_path, ("target", "description"), ("target",))
            elif doc.kind == "SLI":
                self.indicator(doc.spec, spec_path)
            elif doc.kind == "AlertCondition":
                self.condition(doc.name, doc.spec, spec_path)
            elif doc.kind == "AlertPolicy":
                self.policy(doc.spec, spec_path)
        except _Invalid as exc:
            raise ConfigError(f"{doc.where}: {exc}") from None

    # -- indicators

    def metric_source(self, value: Any, path: str) -> Selector | EventRatioSli:
        holder = _mapping(value, path, ("metricSource",), ("metricSource",))
        path = _join(path, "metricSource")
        source = _mapping(holder["metricSource"], path, ("metricSourceRef", "type", "spec"), ("spec",))
        kind = source.get("type")
        if source.get("metricSourceRef") is not None:
            ref = _text(source["metricSourceRef"], _join(path, "metricSourceRef"))
            data_source = self.by_kind["DataSource"].get(ref)
            if data_source is not None:
                if data_source not in self.used:
                    self.used.append(data_source)
                if kind is None and isinstance(data_source.spec, Mapping):
                    kind = data_source.spec.get("type")
        if kind is None:
            raise _Invalid(
                _join(path, "type"), "required (no DataSource given by metricSourceRef to take it from)"
            )
        kind = _text(kind, _join(path, "type"))
        spec_path = _join(path, "spec")
        if kind.lower() == "prometheus":
            spec = _mapping(source["spec"], spec_path, ("query",), ("query",))
            query_path = _join(spec_path, "query")
            try:
                return parse_query(_text(spec["query"], query_path), query_path)
            except ConfigError as exc:
                raise _Invalid(query_path, exc.message.removeprefix(f"{query_path}: ")) from exc
        if kind == EVENTS_SOURCE:
            spec = _mapping(
                source["spec"], spec_path, ("total_type", "bad_type", "service"), ("total_type", "bad_type")
            )
            return EventRatioSli(
                _text(spec["total_type"], _join(spec_path, "total_type")),
                _text(spec["bad_type"], _join(spec_path, "bad_type")),
                _text(spec.get("service", ""), _join(spec_path, "service"), empty=True),
            )
        raise _Invalid(_join(path, "type"), f"{kind!r} is not supported (use Prometheus or {EVENTS_SOURCE})")

    def indicator(self, value: Any, path: str) -> RatioSli | EventRatioSli | Selector:
        """An SLI spec; a bare Selector stands for a threshold metric awaiting its objective."""
        spec = _mapping(value, path, ("description", "thresholdMetric", "ratioMetric"))
        if ("thresholdMetric" in spec) == ("ratioMetric" in spec):
            raise _Invalid(path, "give exactly one of thresholdMetric and ratioMetric")
        if "thresholdMetric" in spec:
            metric_path = _join(path, "thresholdMetric")
            metric = self.metric_source(spec["thresholdMetric"], metric_path)
            if not isinstance(metric, Selector):
                raise _Invalid(metric_path, f"{EVENTS_SOURCE} sources give ratios; use ratioMetric.total")
            return metric
        ratio_path = _join(path, "ratioMetric")
        ratio = _mapping(
            spec["ratioMetric"], ratio_path, ("counter", "good", "bad", "total", "rawType", "raw")
        )
        for raw_key in ("rawType", "raw"):
            if raw_key in ratio:
                raise _Invalid(
                    _join(ratio_path, raw_key),
                    "raw ratio metrics (a precomputed ratio) are not supported; give good or bad with total",
                )
        if ratio.get("total") is None:
            raise _Invalid(_join(ratio_path, "total"), "required")
        counter = _flag(ratio.get("counter", False), _join(ratio_path, "counter"))
        total = self.metric_source(ratio["total"], _join(ratio_path, "total"))
        given = [key for key in ("good", "bad") if ratio.get(key) is not None]
        if isinstance(total, EventRatioSli):
            if given:
                raise _Invalid(
                    _join(ratio_path, given[0]),
                    f"not used with an {EVENTS_SOURCE} total (it names bad_type itself)",
                )
            return total
        if len(given) != 1:
            raise _Invalid(ratio_path, "give exactly one of good and bad, with total")
        part = self.metric_source(ratio[given[0]], _join(ratio_path, given[0]))
        if not isinstance(part, Selector):
            raise _Invalid(_join(ratio_path, given[0]), f"{EVENTS_SOURCE} belongs in total only")
        return RatioSli(total=total, counter=counter, **{given[0]: part})

    def inline_or_ref(self, value: Any, path: str, kind: str, ref_key: str) -> tuple[_Doc | None, Any, str]:
        """An inline object of ``kind`` (its spec and the spec's path) or a reference to one."""
        if isinstance(value, Mapping) and ref_key in value:
            _mapping(value, path, (ref_key,))
            doc = self.ref(kind, value[ref_key], _join(path, ref_key))
            return doc, doc.spec, ""
        item = _mapping(value, path, ("apiVersion", "kind", "metadata", "spec"), ("metadata", "spec"))
        if item.get("kind", kind) != kind:
            raise _Invalid(_join(path, "kind"), f"expected {kind} (or {ref_key})")
        _metadata(item["metadata"], _join(path, "metadata"))
        return None, item["spec"], _join(path, "spec")

    # -- alerting

    def condition(self, name: str, value: Any, path: str) -> AlertCondition:
        spec = _mapping(value, path, ("description", "severity", "condition"), ("severity", "condition"))
        cond_path = _join(path, "condition")
        cond = _mapping(
            spec["condition"],
            cond_path,
            ("kind", "op", "threshold", "lookbackWindow", "alertAfter"),
            ("kind", "threshold", "lookbackWindow"),
        )
        if cond["kind"] != "burnrate":
            raise _Invalid(_join(cond_path, "kind"), f"only 'burnrate' is supported, got {cond['kind']!r}")
        if cond.get("op", "gte") not in ("gt", "gte"):
            raise _Invalid(_join(cond_path, "op"), "a burn-rate alert fires above its threshold (gt or gte)")
        threshold = _number(cond["threshold"], _join(cond_path, "threshold"))
        if threshold <= 0:
            raise _Invalid(_join(cond_path, "threshold"), "must be positive")
        after = cond.get("alertAfter")
        return AlertCondition(
            name=name,
            severity=_text(spec["severity"], _join(path, "severity")),
            threshold=threshold,
            lookback=_duration(cond["lookbackWindow"], _join(cond_path, "lookbackWindow")),
            alert_after="" if after is None else _duration(after, _join(cond_path, "alertAfter")),
        )

    def policy(self, value: Any, path: str) -> tuple[AlertCondition, ...]:
        spec = _mapping(
            value,
            path,
            (
                "description",
                "alertWhenNoData",
                "alertWhenResolved",
                "alertWhenBreaching",
                "conditions",
                "notificationTargets",
            ),
            ("conditions",),
        )
        for key in ("alertWhenNoData", "alertWhenResolved", "alertWhenBreaching"):
            if key in spec:
                _flag(spec[key], _join(path, key))
        conditions = _list(spec["conditions"], _join(path, "conditions"))
        if len(conditions) > 1:
            raise _Invalid(_join(path, "conditions"), "OpenSLO allows at most one condition per AlertPolicy")
        out = []
        for i, item in enumerate(conditions):
            item_path = _join(_join(path, "conditions"), i)
            doc, spec_value, spec_path = self.inline_or_ref(item, item_path, "AlertCondition", "conditionRef")
            if doc is not None:
                try:
                    out.append(self.condition(doc.name, doc.spec, "spec"))
                except _Invalid as exc:
                    raise _Invalid(
                        _join(item_path, "conditionRef"), f"AlertCondition {doc.name}: {exc}"
                    ) from None
            else:
                out.append(self.condition(item["metadata"]["name"], spec_value, spec_path))
        for i, item in enumerate(
            _list(spec.get("notificationTargets", []), _join(path, "notificationTargets"))
        ):
            item_path = _join(_join(path, "notificationTargets"), i)
            if isinstance(item, Mapping) and "targetRef" in item:
                # Targets are delivery details outside opsloop: a reference may point elsewhere.
                _mapping(item, item_path, ("targetRef",))
                _text(item["targetRef"], _join(item_path, "targetRef"))
                continue
            _, target, target_path = self.inline_or_ref(
                item, item_path, "AlertNotificationTarget", "targetRef"
            )
            _mapping(target, target_path, ("target", "description"), ("target",))
        return tuple(out)

    # -- SLOs

    def slo(self, doc: _Doc) -> SloSpec:
        self.used = [doc]
        try:
            return self._slo(doc)
        except _Invalid as exc:
            raise ConfigError(f"{doc.where}: {exc}") from None

    def _slo(self, doc: _Doc) -> SloSpec:
        spec = _mapping(
            doc.spec,
            "spec",
            (
                "description",
                "service",
                "indicator",
                "indicatorRef",
                "timeWindow",
                "budgetingMethod",
                "objectives",
                "alertPolicies",
            ),
            ("service", "timeWindow", "budgetingMethod", "objectives"),
        )
        service = _text(spec["service"], "spec.service")
        if service in self.by_kind["Service"]:
            self.ref("Service", service, "spec.service")
        if ("indicator" in spec) == ("indicatorRef" in spec):
            raise _Invalid("spec", "give exactly one of indicator and indicatorRef")
        if "indicatorRef" in spec:
            sli_doc = self.ref("SLI", spec["indicatorRef"], "spec.indicatorRef")
            try:
                indicator = self.indicator(sli_doc.spec, "spec")
            except _Invalid as exc:
                raise _Invalid("spec.indicatorRef", f"SLI {sli_doc.name}: {exc}") from None
        else:
            _, sli_spec, sli_path = self.inline_or_ref(
                spec["indicator"], "spec.indicator", "SLI", "indicatorRef"
            )
            indicator = self.indicator(sli_spec, sli_path)
        window = _time_window(spec["timeWindow"], "spec.timeWindow")
        try:
            method = BudgetingMethod(spec["budgetingMethod"])
        except ValueError:
            raise _Invalid(
                "spec.budgetingMethod",
                f"expected one of {', '.join(m.value for m in BudgetingMethod)}, got {spec['budgetingMethod']!r}",
            ) from None
        objectives = _list(spec["objectives"], "spec.objectives")
        if len(objectives) != 1:
            raise _Invalid(
                "spec.objectives",
                f"opsloop reads exactly one objective per SLO (got {len(objectives)}); split the SLO",
            )
        sli, objective, slice_target, slice_window = _objective(
            objectives[0], "spec.objectives[0]", indicator, method
        )
        conditions: list[AlertCondition] = []
        for i, item in enumerate(_list(spec.get("alertPolicies", []), "spec.alertPolicies")):
            item_path = _join("spec.alertPolicies", i)
            policy_doc, policy_spec, policy_path = self.inline_or_ref(
                item, item_path, "AlertPolicy", "alertPolicyRef"
            )
            if policy_doc is not None:
                try:
                    conditions.extend(self.policy(policy_doc.spec, "spec"))
                except _Invalid as exc:
                    raise _Invalid(
                        _join(item_path, "alertPolicyRef"), f"AlertPolicy {policy_doc.name}: {exc}"
                    ) from None
            else:
                conditions.extend(self.policy(policy_spec, policy_path))
        annotations = doc.metadata["annotations"]
        exclude, missing, min_events = _annotations(annotations)
        return SloSpec(
            name=doc.name,
            service=service,
            objective=objective,
            window=window,
            budgeting_method=method,
            sli=sli,
            description=_text(spec.get("description", ""), "spec.description", empty=True),
            display_name=doc.metadata.get("displayName") or "",
            timeslice_target=slice_target,
            timeslice_window=slice_window,
            exclude_maintenance=exclude,
            missing=missing,
            min_events=min_events,
            alert_conditions=tuple(conditions),
            labels=doc.metadata["labels"],
            source={"documents": [dict(d.raw) for d in self.used]},
        )


def _time_window(value: Any, path: str) -> TimeWindow:
    windows = _list(value, path)
    if len(windows) != 1:
        raise _Invalid(path, f"expected a list of exactly one window, got {len(windows)}")
    path = _join(path, 0)
    item = _mapping(windows[0], path, ("duration", "isRolling", "calendar"), ("duration",))
    calendar = item.get("calendar")
    rolling = _flag(item.get("isRolling", calendar is None), _join(path, "isRolling"))
    duration_path = _join(path, "duration")
    if rolling:
        if calendar is not None:
            raise _Invalid(_join(path, "calendar"), "a rolling window (isRolling: true) has no calendar")
        return TimeWindow(_duration(item["duration"], duration_path))
    duration = _text(item["duration"], duration_path)
    try:
        calendar_units(duration, duration_path)
    except ConfigError as exc:
        raise _Invalid(duration_path, exc.message.removeprefix(f"{duration_path}: ")) from exc
    if calendar is None:
        return TimeWindow(duration, rolling=False)
    cal_path = _join(path, "calendar")
    cal = _mapping(calendar, cal_path, ("startTime", "timeZone"), ("startTime",))
    zone_name = _text(cal.get("timeZone", "UTC"), _join(cal_path, "timeZone"))
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Invalid(_join(cal_path, "timeZone"), f"unknown IANA time zone {zone_name!r}") from None
    start_raw = cal["startTime"]
    try:
        start = start_raw if isinstance(start_raw, datetime) else datetime.fromisoformat(str(start_raw))
    except ValueError:
        raise _Invalid(
            _join(cal_path, "startTime"), f"expected a time like '2020-01-21 12:30:00', got {start_raw!r}"
        ) from None
    if start.tzinfo is not None:
        start = start.astimezone(zone).replace(tzinfo=None)
    return TimeWindow(duration, rolling=False, calendar_start=start, timezone=zone_name)


def _fraction(value: Any, path: str, low: float, high: float, *, closed_high: bool = False) -> float:
    number = _number(value, path)
    ok = low <= number <= high if closed_high else low <= number < high
    if not ok:
        raise _Invalid(path, f"must lie in [{low:g}, {high:g}{']' if closed_high else ')'}, got {number:g}")
    return number


def _objective(
    value: Any, path: str, indicator: RatioSli | EventRatioSli | Selector, method: BudgetingMethod
) -> tuple[RatioSli | ThresholdSli | EventRatioSli, float, float | None, timedelta]:
    """The SLI (threshold completed from op/value), objective and timeslice settings."""
    item = _mapping(
        value,
        path,
        ("displayName", "op", "value", "target", "targetPercent", "timeSliceTarget", "timeSliceWindow"),
    )
    if ("target" in item) == ("targetPercent" in item):
        raise _Invalid(path, "give exactly one of target and targetPercent")
    if "target" in item:
        objective = _fraction(item["target"], _join(path, "target"), 0.0, 1.0)
    else:
        percent = _fraction(item["targetPercent"], _join(path, "targetPercent"), 0.0, 100.0)
        try:  # 99.9 / 100 is 0.9990000000000001 in binary; the decimal route gives 0.999
            objective = float(Decimal(repr(percent)) / 100)
        except InvalidOperation:  # pragma: no cover - repr of a finite float is decimal
            objective = percent / 100
    sli: RatioSli | ThresholdSli | EventRatioSli
    if isinstance(indicator, Selector):
        for key in ("op", "value"):
            if item.get(key) is None:
                raise _Invalid(_join(path, key), "required for a thresholdMetric SLI")
        if item["op"] not in _OPS:
            raise _Invalid(_join(path, "op"), f"expected one of {', '.join(_OPS)}, got {item['op']!r}")
        sli = ThresholdSli(indicator, item["op"], _number(item["value"], _join(path, "value")))
    else:
        for key in ("op", "value"):
            if key in item:
                raise _Invalid(_join(path, key), "only for thresholdMetric SLIs")
        sli = indicator
    slice_target: float | None = None
    slice_window = timedelta(minutes=1)
    if method is BudgetingMethod.OCCURRENCES:
        for key in ("timeSliceTarget", "timeSliceWindow"):
            if key in item:
                raise _Invalid(
                    _join(path, key), "only for the Timeslices and RatioTimeslices budgeting methods"
                )
        return sli, objective, None, slice_window
    if item.get("timeSliceTarget") is not None:
        slice_target = _number(item["timeSliceTarget"], _join(path, "timeSliceTarget"))
        if not 0.0 < slice_target <= 1.0:
            raise _Invalid(_join(path, "timeSliceTarget"), f"must lie in (0, 1], got {slice_target:g}")
    elif method is BudgetingMethod.TIMESLICES and not isinstance(sli, ThresholdSli):
        raise _Invalid(_join(path, "timeSliceTarget"), "required for Timeslices with a ratio SLI")
    if item.get("timeSliceWindow") is not None:
        window_path = _join(path, "timeSliceWindow")
        raw = item["timeSliceWindow"]
        if isinstance(raw, str):
            slice_window = parse_duration(_duration(raw, window_path))
        else:
            slice_window = timedelta(minutes=_number(raw, window_path))
        if slice_window <= timedelta(0):
            raise _Invalid(window_path, "must be positive")
    return sli, objective, slice_target, slice_window


def _annotations(annotations: Mapping[str, Any]) -> tuple[bool, str, int]:
    """exclude_maintenance, missing and min_events from ``opsloop.dev/*`` annotations."""
    known = (_EXCLUDE, _MISSING, _MIN_EVENTS)
    for key in annotations:
        if str(key).startswith(_ANNOTATION_PREFIX) and key not in known:
            raise _Invalid(
                f"metadata.annotations.{key}", f"unknown opsloop annotation (known: {', '.join(known)})"
            )
    exclude = False
    if _EXCLUDE in annotations:
        raw = str(annotations[_EXCLUDE]).lower()
        if raw not in ("true", "false"):
            raise _Invalid(f"metadata.annotations.{_EXCLUDE}", f"expected 'true' or 'false', got {raw!r}")
        exclude = raw == "true"
    missing = str(annotations.get(_MISSING, "ignore"))
    if missing not in ("ignore", "good", "bad"):
        raise _Invalid(f"metadata.annotations.{_MISSING}", f"expected ignore, good or bad, got {missing!r}")
    min_events = 10
    if _MIN_EVENTS in annotations:
        raw = str(annotations[_MIN_EVENTS])
        if not raw.isdigit():
            raise _Invalid(
                f"metadata.annotations.{_MIN_EVENTS}", f"expected a whole number >= 0, got {raw!r}"
            )
        min_events = int(raw)
    return exclude, missing, min_events


def _documents(text_or_documents: str | bytes | Mapping[str, Any] | Sequence[Any]) -> list[Any]:
    if isinstance(text_or_documents, bytes):
        text_or_documents = text_or_documents.decode("utf-8")
    if isinstance(text_or_documents, str):
        loaded: list[Any] | None = None
        if text_or_documents.lstrip().startswith(("{", "[")):
            try:
                loaded = [json.loads(text_or_documents)]
            except json.JSONDecodeError:
                loaded = None  # maybe a YAML flow mapping: let YAML have a go (and report)
        if loaded is None:
            try:
                loaded = list(yaml.safe_load_all(text_or_documents))
            except yaml.YAMLError as exc:
                raise ConfigError(f"cannot read OpenSLO documents: {exc}") from exc
    elif isinstance(text_or_documents, Mapping):
        loaded = [text_or_documents]
    else:
        loaded = list(text_or_documents)
    out: list[Any] = []
    for item in loaded:
        if isinstance(item, list):
            out.extend(item)
        elif item is not None:
            out.append(item)
    return out


def load_openslo(text_or_documents: str | bytes | Mapping[str, Any] | Sequence[Any]) -> list[SloSpec]:
    """Read OpenSLO v1 documents into one :class:`SloSpec` per SLO document.

    Accepts YAML (one or several documents), JSON (an object or a list), or already-parsed
    documents. Every document is checked, referenced or not; references (``indicatorRef``,
    ``alertPolicyRef``, ``conditionRef``) may point anywhere in the input. Each spec's
    ``source`` keeps the SLO document and those it used, as ``{"documents": [...]}``.

    Example
    -------
    >>> specs = load_openslo('''
    ... apiVersion: openslo/v1
    ... kind: SLO
    ... metadata: {name: api-availability}
    ... spec:
    ...   service: api
    ...   indicator:
    ...     metadata: {name: api-non-5xx}
    ...     spec:
    ...       ratioMetric:
    ...         counter: true
    ...         bad: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_requests_total{code=~"5.."}[5m]))'}}}
    ...         total: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_requests_total[5m]))'}}}
    ...   timeWindow: [{duration: 28d, isRolling: true}]
    ...   budgetingMethod: Occurrences
    ...   objectives: [{targetPercent: 99.9}]
    ... ''')
    >>> specs[0].objective, specs[0].sli.bad.text
    (0.999, 'http_requests_total{code=~"5.."}')
    """
    docs = [_envelope(raw, i) for i, raw in enumerate(_documents(text_or_documents))]
    reader = _Reader(docs)
    for doc in docs:
        if doc.kind != "SLO":
            reader.check(doc)
    return [reader.slo(doc) for doc in docs if doc.kind == "SLO"]


# --------------------------------------------------------------------------- OpenSLO export


def _source(selector: Selector) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": _query_for(selector)}}}


def to_openslo(spec: SloSpec) -> list[dict[str, Any]]:
    """Write ``spec`` as OpenSLO v1: one SLO document with its indicator inline.

    :func:`load_openslo` reads the result back to an equal spec. Selector ranges survive
    (``sum(rate(<sel>[<range>]))``; ``sum(<sel>)`` without one); a source's
    ``metricSourceRef``, objective display name and alert policies' notification targets are
    not part of the model and are not written.

    >>> spec = load_openslo(to_openslo(SloSpec(
    ...     "api", "api", 0.99, TimeWindow("7d"), BudgetingMethod.OCCURRENCES,
    ...     EventRatioSli("com.shop.order.", "com.shop.order.failed"))))[0]
    >>> spec.sli
    EventRatioSli(total_type='com.shop.order.', bad_type='com.shop.order.failed', service='')
    """
    indicator: dict[str, Any]
    objective: dict[str, Any] = {"target": spec.objective}
    sli = spec.sli
    if isinstance(sli, ThresholdSli):
        indicator = {"thresholdMetric": _source(sli.metric)}
        objective.update(op=sli.op, value=sli.threshold)
    elif isinstance(sli, EventRatioSli):
        events: dict[str, Any] = {"total_type": sli.total_type, "bad_type": sli.bad_type}
        if sli.service:
            events["service"] = sli.service
        indicator = {"ratioMetric": {"total": {"metricSource": {"type": EVENTS_SOURCE, "spec": events}}}}
    else:
        ratio: dict[str, Any] = {"counter": sli.counter}
        if sli.good is not None:
            ratio["good"] = _source(sli.good)
        if sli.bad is not None:
            ratio["bad"] = _source(sli.bad)
        ratio["total"] = _source(sli.total)
        indicator = {"ratioMetric": ratio}
    if spec.budgeting_method is not BudgetingMethod.OCCURRENCES:
        if spec.timeslice_target is not None:
            objective["timeSliceTarget"] = spec.timeslice_target
        objective["timeSliceWindow"] = format_duration(spec.timeslice_window)
    window: dict[str, Any] = {"duration": spec.window.duration, "isRolling": spec.window.rolling}
    if not spec.window.rolling and spec.window.calendar_start is not None:
        window["calendar"] = {
            "startTime": spec.window.calendar_start.isoformat(sep=" "),
            "timeZone": spec.window.timezone,
        }
    metadata: dict[str, Any] = {"name": spec.name}
    if spec.display_name:
        metadata["displayName"] = spec.display_name
    if spec.labels:
        metadata["labels"] = dict(spec.labels)
    annotations: dict[str, str] = {}
    if spec.exclude_maintenance:
        annotations[_EXCLUDE] = "true"
    if spec.missing != "ignore":
        annotations[_MISSING] = spec.missing
    if spec.min_events != 10:
        annotations[_MIN_EVENTS] = str(spec.min_events)
    if annotations:
        metadata["annotations"] = annotations
    body: dict[str, Any] = {}
    if spec.description:
        body["description"] = spec.description
    body.update(
        service=spec.service,
        indicator={"metadata": {"name": spec.name}, "spec": indicator},
        timeWindow=[window],
        budgetingMethod=spec.budgeting_method.value,
        objectives=[objective],
    )
    if spec.alert_conditions:
        body["alertPolicies"] = [_policy(condition) for condition in spec.alert_conditions]
    return [{"apiVersion": API_VERSION, "kind": "SLO", "metadata": metadata, "spec": body}]


def _policy(condition: AlertCondition) -> dict[str, Any]:
    """One inline AlertPolicy holding one inline burn-rate AlertCondition."""
    cond: dict[str, Any] = {
        "kind": "burnrate",
        "threshold": condition.threshold,
        "lookbackWindow": condition.lookback,
    }
    if condition.alert_after:
        cond["alertAfter"] = condition.alert_after
    return {
        "kind": "AlertPolicy",
        "metadata": {"name": condition.name},
        "spec": {
            "alertWhenBreaching": True,
            "conditions": [
                {
                    "kind": "AlertCondition",
                    "metadata": {"name": condition.name},
                    "spec": {"severity": condition.severity, "condition": cond},
                }
            ],
        },
    }
