"""Burn-rate alert windows as data: the table in ``windows.yaml`` and how a tier fires.

The table (severity, long and short window, burn factor, budget percent spent) is the SRE
Workbook's multi-window, multi-burn-rate scheme for a 30-day period. Keeping it in YAML lets
an operator tune it without code changes; :func:`load_windows` checks it strictly, including
that each factor really spends ``budget_percent`` of the period's budget within its long
window. ``rules.py`` writes it as Prometheus alerts; ``evaluate.py`` decides with
:func:`firing_tiers` on burn rates it computed itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError
from slo.spec import parse_duration

__all__ = ["DEFAULT_WINDOWS", "AlertWindow", "firing_tiers", "load_windows", "window_labels"]

DEFAULT_WINDOWS = Path(__file__).with_name("windows.yaml")
_ROW_FIELDS = ("severity", "long", "short", "factor", "budget_percent")


@dataclass(frozen=True, slots=True)
class AlertWindow:
    """One row of the table: page (or ticket) when the burn rate over both ``long`` and
    ``short`` exceeds ``factor``, which spends ``budget_percent`` % of a ``period`` budget
    within ``long``.

    Example
    -------
    >>> row = load_windows()[0]
    >>> row.severity, row.long, row.short, row.factor, row.budget_percent
    ('page', '1h', '5m', 14.4, 2.0)
    """

    severity: str
    long: str
    short: str
    factor: float
    budget_percent: float
    period: str = "30d"


def _row(item: Any, path: str, period: str) -> AlertWindow:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{path}: expected a mapping with {', '.join(_ROW_FIELDS)}")
    for key in item:
        if key not in _ROW_FIELDS:
            raise ConfigError(f"{path}.{key}: unknown field (allowed: {', '.join(_ROW_FIELDS)})")
    for key in _ROW_FIELDS:
        if item.get(key) is None:
            raise ConfigError(f"{path}.{key}: required")
    severity = item["severity"]
    if not isinstance(severity, str) or not severity.strip():
        raise ConfigError(f"{path}.severity: expected a non-empty string, got {severity!r}")
    spans = {key: parse_duration(str(item[key]), f"{path}.{key}") for key in ("long", "short")}
    if spans["short"] >= spans["long"]:
        raise ConfigError(f"{path}.short: {item['short']} must be shorter than long ({item['long']})")
    numbers: dict[str, float] = {}
    for key in ("factor", "budget_percent"):
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"{path}.{key}: expected a positive number, got {value!r}")
        numbers[key] = float(value)
    expected = numbers["budget_percent"] / 100 * (parse_duration(period, "period") / spans["long"])
    if not math.isclose(numbers["factor"], expected, rel_tol=1e-6):
        raise ConfigError(
            f"{path}.factor: {numbers['factor']:g} does not spend {numbers['budget_percent']:g}% of a "
            f"{period} budget in {item['long']} (that takes {expected:g})"
        )
    return AlertWindow(
        severity, str(item["long"]), str(item["short"]), numbers["factor"], numbers["budget_percent"], period
    )


def load_windows(path: Path | None = None) -> tuple[AlertWindow, ...]:
    """Read and check a window table (``slo/windows.yaml`` by default).

    The file is a mapping with ``period`` (the SLO period the factors assume, e.g. ``30d``)
    and ``windows``, a list of rows; errors name the file and the field at fault.

    >>> [(w.severity, w.long, w.factor) for w in load_windows()][:2]
    [('page', '1h', 14.4), ('page', '6h', 6.0)]
    """
    path = path or DEFAULT_WINDOWS
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read window table {path}: {exc}") from exc
    try:
        if not isinstance(document, Mapping):
            raise ConfigError("expected a mapping with period and windows")
        for key in document:
            if key not in ("period", "windows"):
                raise ConfigError(f"{key}: unknown field (allowed: period, windows)")
        if document.get("period") is None:
            raise ConfigError("period: required")
        period = str(document["period"])
        parse_duration(period, "period")
        rows = document.get("windows")
        if not isinstance(rows, list) or not rows:
            raise ConfigError("windows: expected a non-empty list of rows")
        return tuple(_row(item, f"windows[{i}]", period) for i, item in enumerate(rows))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from exc


def window_labels(windows: Iterable[AlertWindow]) -> tuple[str, ...]:
    """Every distinct window text of the table, shortest first (the ranges to evaluate).

    >>> window_labels(load_windows())
    ('5m', '30m', '1h', '2h', '6h', '1d', '3d')
    """
    labels = {text for row in windows for text in (row.long, row.short)}
    return tuple(sorted(labels, key=lambda text: (parse_duration(text), text)))


def firing_tiers(
    burn_rates: Mapping[str, float],
    windows: Iterable[AlertWindow],
    long_events: Mapping[str, float],
    min_events: float,
) -> tuple[str, ...]:
    """The severities that fire, in table order.

    A severity fires when, for any of its rows, the burn rate over both the long and the
    short window exceeds the row's factor and the long window holds at least
    ``min_events`` events (the low-traffic guard: two failures out of three requests are
    not a page). ``burn_rates`` and ``long_events`` are keyed by window text; a NaN burn
    rate (no data) never fires, a missing key is a caller error (``KeyError``).

    >>> table = load_windows()
    >>> firing_tiers({"5m": 20, "30m": 7, "1h": 15, "2h": 4, "6h": 7, "1d": 2, "3d": 1},
    ...              table, {"1h": 500, "6h": 3000, "1d": 9000, "3d": 20000}, min_events=10)
    ('page',)
    """
    fired: list[str] = []
    for row in windows:
        if row.severity in fired:
            continue
        long_rate, short_rate, events = burn_rates[row.long], burn_rates[row.short], long_events[row.long]
        if long_rate > row.factor and short_rate > row.factor and events >= min_events:
            fired.append(row.severity)
    return tuple(fired)
