"""SLO maths: error budgets, burn rates and the per-method SLIs, as pure functions.

Nothing here reads the store or the clock; ``evaluate.py`` feeds these numbers it has
counted, ``rules.py`` and ``windows.py`` use the same definitions, and each function's
doctest is a worked example. Objectives are fractions (0.999 for 99.9 %); durations are
``timedelta`` or OpenSLO text (``30d``). Arguments outside their domain raise ``ValueError``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from core.errors import ConfigError
from slo.spec import parse_duration

__all__ = [
    "allowed_bad_events",
    "allowed_bad_minutes",
    "budget_consumed",
    "budget_consumed_by",
    "budget_remaining",
    "burn_rate",
    "error_budget",
    "occurrences_sli",
    "ratio_timeslices_sli",
    "time_to_exhaustion",
    "timeslices_sli",
]

Missing = Literal["ignore", "good", "bad"]
Duration = timedelta | str


def _span(value: Duration) -> timedelta:
    try:
        span = parse_duration(value) if isinstance(value, str) else value
    except ConfigError as exc:
        raise ValueError(exc.message) from exc
    if span <= timedelta(0):
        raise ValueError(f"duration must be positive, got {value!r}")
    return span


def error_budget(objective: float) -> float:
    """The fraction of events (or time) allowed to be bad: ``1 - objective``.

    >>> round(error_budget(0.999), 6)
    0.001
    """
    if not 0.0 <= objective < 1.0:
        raise ValueError(f"objective must lie in [0, 1), got {objective}")
    return 1.0 - objective


def burn_rate(error_ratio: float, objective: float) -> float:
    """How many times faster than sustainable the budget is burning.

    A burn rate of 1 spends exactly the budget over the SLO window.

    >>> round(burn_rate(0.0144, 0.999), 1)
    14.4
    """
    return error_ratio / error_budget(objective)


def allowed_bad_events(total: float, objective: float) -> float:
    """How many of ``total`` events may be bad within the objective.

    >>> round(allowed_bad_events(1_000_000, 0.999))
    1000
    """
    return total * error_budget(objective)


def allowed_bad_minutes(window: Duration, objective: float) -> float:
    """Minutes of the window that may be bad (the classic downtime allowance).

    >>> round(allowed_bad_minutes("30d", 0.999), 1)
    43.2
    """
    return _span(window) / timedelta(minutes=1) * error_budget(objective)


def budget_consumed(bad: float, total: float, objective: float) -> float:
    """The fraction of the error budget ``bad`` out of ``total`` events used (0 with no events).

    Above 1 the budget is overspent.

    >>> round(budget_consumed(bad=250, total=1_000_000, objective=0.999), 6)
    0.25
    """
    if bad < 0 or total < 0 or bad > total:
        raise ValueError(f"need 0 <= bad <= total, got bad={bad}, total={total}")
    if total == 0:
        return 0.0
    return bad / allowed_bad_events(total, objective)


def budget_remaining(bad: float, total: float, objective: float) -> float:
    """The fraction of the error budget left: ``1 - consumed``, negative once overspent.

    >>> round(budget_remaining(bad=3000, total=1_000_000, objective=0.999), 6)
    -2.0
    """
    return 1.0 - budget_consumed(bad, total, objective)


def budget_consumed_by(burn_rate: float, duration: Duration, window: Duration) -> float:
    """The fraction of the budget a burn rate held for ``duration`` spends, for an SLO ``window``.

    The SRE Workbook's fast-burn page: 14.4x for one hour of a 30-day window spends 2 %.

    >>> round(budget_consumed_by(14.4, "1h", "30d"), 6)
    0.02
    """
    return burn_rate * (_span(duration) / _span(window))


def time_to_exhaustion(remaining_fraction: float, burn_rate: float, window: Duration) -> timedelta | None:
    """How long until the remaining budget is spent at ``burn_rate`` (None when not burning).

    An already spent budget gives zero.

    >>> time_to_exhaustion(0.5, 2.0, "28d")
    datetime.timedelta(days=7)
    >>> time_to_exhaustion(0.5, 0.0, "28d") is None
    True
    """
    if burn_rate <= 0:
        return None
    return _span(window) * (max(remaining_fraction, 0.0) / burn_rate)


def _slices(good: ArrayLike, total: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    g = np.asarray(good, dtype=np.float64).ravel()
    t = np.asarray(total, dtype=np.float64).ravel()
    if g.shape != t.shape:
        raise ValueError(f"good and total differ in length: {g.size} != {t.size}")
    if np.any(g < 0) or np.any(g > t) or not np.all(np.isfinite(t)):
        raise ValueError("need finite counts with 0 <= good <= total in every slice")
    return g, t


def _check_missing(missing: str) -> None:
    if missing not in ("ignore", "good", "bad"):
        raise ValueError(f"missing must be ignore, good or bad, got {missing!r}")


def occurrences_sli(good: ArrayLike, total: ArrayLike, missing: Missing = "ignore") -> float | None:
    """Good events over all events, summed across slices (the ``Occurrences`` method).

    Empty slices hold no events, so they change nothing; when there are no events at all
    the SLI is None (``ignore``), 1 (``good``) or 0 (``bad``).

    >>> occurrences_sli([99, 50, 0], [100, 100, 0])
    0.745
    >>> occurrences_sli([0], [0]) is None, occurrences_sli([0], [0], missing="bad")
    (True, 0.0)
    """
    _check_missing(missing)
    g, t = _slices(good, total)
    events = float(t.sum())
    if events == 0:
        return None if missing == "ignore" else float(missing == "good")
    return float(g.sum()) / events


def _slice_values(
    values: NDArray[np.float64], empty: NDArray[np.bool_], missing: str
) -> NDArray[np.float64] | None:
    """Per-slice values with empty slices dropped (ignore) or set to 1/0 (good/bad)."""
    if missing == "ignore":
        values = values[~empty]
    else:
        values = np.where(empty, 1.0 if missing == "good" else 0.0, values)
    return values if values.size else None


def timeslices_sli(
    good: ArrayLike, total: ArrayLike, timeslice_target: float, missing: Missing = "ignore"
) -> float | None:
    """The fraction of good slices (the ``Timeslices`` method).

    A slice is good when its ratio ``good / total`` reaches ``timeslice_target``; an empty
    slice is left out (``ignore``) or counted good or bad. None when no slice counts.

    >>> timeslices_sli([99, 50, 0], [100, 100, 0], timeslice_target=0.95)
    0.5
    >>> timeslices_sli([99, 50, 0], [100, 100, 0], timeslice_target=0.95, missing="good")
    0.6666666666666666
    """
    _check_missing(missing)
    if not 0.0 < timeslice_target <= 1.0:
        raise ValueError(f"timeslice_target must lie in (0, 1], got {timeslice_target}")
    g, t = _slices(good, total)
    empty = t == 0
    ratio = np.divide(g, t, out=np.zeros_like(g), where=~empty)
    values = _slice_values((ratio >= timeslice_target).astype(np.float64), empty, missing)
    return None if values is None else float(values.mean())


def ratio_timeslices_sli(good: ArrayLike, total: ArrayLike, missing: Missing = "ignore") -> float | None:
    """The mean of the per-slice ratios (the ``RatioTimeslices`` method).

    Every slice weighs the same however busy it was; an empty slice is left out
    (``ignore``) or counts as ratio 1 (``good``) or 0 (``bad``). None when no slice counts.

    >>> ratio_timeslices_sli([99, 50, 0], [100, 100, 0])
    0.745
    >>> ratio_timeslices_sli([99, 50, 0], [100, 100, 0], missing="bad")
    0.49666666666666665
    """
    _check_missing(missing)
    g, t = _slices(good, total)
    empty = t == 0
    ratio = np.divide(g, t, out=np.zeros_like(g), where=~empty)
    values = _slice_values(ratio, empty, missing)
    return None if values is None else float(values.mean())
