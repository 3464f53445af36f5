"""Alert windows as data (slo/windows.py + slo/windows.yaml)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from slo.maths import budget_consumed_by
from slo.windows import DEFAULT_WINDOWS, AlertWindow, firing_tiers, load_windows, window_labels

TABLE = load_windows()
LABELS = window_labels(TABLE)
EVENTS = {"1h": 1000.0, "6h": 6000.0, "1d": 24000.0, "3d": 72000.0}


def test_default_table_is_the_sre_workbook_table() -> None:
    assert [(w.severity, w.long, w.short, w.factor, w.budget_percent) for w in TABLE] == [
        ("page", "1h", "5m", 14.4, 2.0),
        ("page", "6h", "30m", 6.0, 5.0),
        ("ticket", "1d", "2h", 3.0, 10.0),
        ("ticket", "3d", "6h", 1.0, 10.0),
    ]
    assert {w.period for w in TABLE} == {"30d"}


@pytest.mark.parametrize("row", TABLE, ids=[f"{w.severity}-{w.long}" for w in TABLE])
def test_each_factor_spends_its_budget_percent_in_its_long_window(row: AlertWindow) -> None:
    assert budget_consumed_by(row.factor, row.long, row.period) == pytest.approx(row.budget_percent / 100)


def test_window_labels_are_distinct_and_shortest_first() -> None:
    assert LABELS == ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def _rates(**overrides: float) -> dict[str, float]:
    return {label: overrides.get(f"w{label}", 0.0) for label in LABELS}


@pytest.mark.parametrize(
    ("rates", "events", "expected"),
    [
        (_rates(), EVENTS, ()),
        (_rates(w5m=15, w1h=15), EVENTS, ("page",)),
        (_rates(w5m=15, w1h=14.4), EVENTS, ()),  # must exceed, not equal
        (_rates(w5m=1, w1h=20), EVENTS, ()),  # the burn has stopped: short window recovered
        (_rates(w30m=7, w6h=7), EVENTS, ("page",)),
        (_rates(w2h=4, w1d=4), EVENTS, ("ticket",)),
        (_rates(w6h=1.5, w3d=1.5), EVENTS, ("ticket",)),
        (_rates(w5m=20, w30m=20, w1h=20, w2h=20, w6h=20, w1d=20, w3d=20), EVENTS, ("page", "ticket")),
        (_rates(w5m=20, w1h=20), {**EVENTS, "1h": 9.0}, ()),  # too little traffic to page
        (_rates(w5m=20, w1h=20), {**EVENTS, "1h": 10.0}, ("page",)),
        (_rates(w5m=math.nan, w1h=20), EVENTS, ()),  # no data never fires
    ],
    ids=[
        "quiet",
        "fast-burn",
        "at-factor",
        "recovered",
        "slow-burn",
        "ticket-quick",
        "ticket-slow",
        "everything",
        "low-traffic",
        "min-events-reached",
        "nan",
    ],
)
def test_firing_tiers(rates: dict[str, float], events: dict[str, float], expected: tuple[str, ...]) -> None:
    assert firing_tiers(rates, TABLE, events, min_events=10) == expected


def test_firing_tiers_wants_every_window() -> None:
    with pytest.raises(KeyError):
        firing_tiers({"5m": 20.0}, TABLE, EVENTS, min_events=10)


@given(st.dictionaries(st.sampled_from(LABELS), st.floats(0, 50), min_size=len(LABELS)), st.floats(0, 50))
def test_a_faster_burn_fires_at_least_the_same_tiers(rates: dict[str, float], extra: float) -> None:
    slower = firing_tiers(rates, TABLE, EVENTS, 10)
    faster = firing_tiers({k: v + extra for k, v in rates.items()}, TABLE, EVENTS, 10)
    assert set(slower) <= set(faster)
    assert list(faster) == [s for s in ("page", "ticket") if s in faster]


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "windows.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _table(**row_changes: object) -> dict[str, object]:
    document = yaml.safe_load(DEFAULT_WINDOWS.read_text())
    document["windows"][1].update(row_changes)
    return dict(document)


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (_table(factor=7), "windows[1].factor: 7 does not spend 5% of a 30d budget in 6h (that takes 6)"),
        (_table(long="1M"), "windows[1].long: '1M' is a calendar duration"),
        (_table(short="12h"), "windows[1].short: 12h must be shorter than long (6h)"),
        (_table(severity=""), "windows[1].severity: expected a non-empty string"),
        (_table(budget_percent=-5), "windows[1].budget_percent: expected a positive number"),
        (_table(factr=6), "windows[1].factr: unknown field"),
        ({"windows": []}, "period: required"),
        ({"period": "30d", "windows": []}, "windows: expected a non-empty list"),
        ({"period": "30d", "windows": [], "extra": 1}, "extra: unknown field"),
        ({"period": "30d", "windows": ["page"]}, "windows[0]: expected a mapping"),
        ({"period": "1M", "windows": [{}]}, "period: '1M' is a calendar duration"),
        (["page"], "expected a mapping with period and windows"),
    ],
    ids=[
        "factor",
        "calendar-long",
        "short-not-shorter",
        "severity",
        "percent",
        "unknown",
        "no-period",
        "no-rows",
        "extra-key",
        "row-not-mapping",
        "calendar-period",
        "not-mapping",
    ],
)
def test_load_windows_names_the_field(tmp_path: Path, document: object, error: str) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(ConfigError) as caught:
        load_windows(path)
    assert caught.value.message.startswith(f"{path}: ")
    assert error in caught.value.message


def test_load_windows_reads_a_28_day_table(tmp_path: Path) -> None:
    # the 28-day variant: 2 % of 28 days in one hour is a 13.44x burn
    path = _write(
        tmp_path,
        {
            "period": "28d",
            "windows": [
                {"severity": "page", "long": "1h", "short": "5m", "factor": 13.44, "budget_percent": 2}
            ],
        },
    )
    assert load_windows(path) == (AlertWindow("page", "1h", "5m", 13.44, 2.0, "28d"),)


def test_load_windows_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read window table"):
        load_windows(tmp_path / "missing.yaml")
