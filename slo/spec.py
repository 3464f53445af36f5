"""SLO specifications: the model, and OpenSLO v1 import/export.

The model (frozen dataclasses below) is what the rest of ``slo/`` works on:
``evaluate.py`` computes SLIs and budgets from it, ``rules.py`` writes Prometheus rules from
it, ``policy.py`` turns its budget burn into backlog items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from detect.filter import Matcher

__all__ = [
    "AlertCondition",
    "BudgetingMethod",
    "EventRatioSli",
    "RatioSli",
    "Selector",
    "SloSpec",
    "ThresholdSli",
    "TimeWindow",
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
