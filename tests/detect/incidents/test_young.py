"""Young series (less than a day of their own history): alerts only on relative change, and
never open an incident alone; a new install still pages on a clear fault in its first hour."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Alert, AlertStatus, ConfigurationItem
from core.store import Store
from core.topology import Topology
from detect.incidents import stages
from detect.incidents.alerts import AnomalyAlerter
from detect.incidents.correlate import CorrelationConfig
from detect.incidents.state import YOUNG, Group, State, young

STEP_US = 60_000_000
DAY_S = 86_400.0
T0 = datetime(2026, 3, 2, 10, 0)


def bands(value: np.ndarray, expected: float, half_width: float, start_us: int = 0) -> pa.Table:
    """One series' band table: a flat expectation with a band of the given half-width."""
    n = len(value)
    return pa.table(
        {
            "series_id": pa.array(np.full(n, 9, dtype=np.uint64)),
            "ts": pa.array(start_us + np.arange(n, dtype=np.int64) * STEP_US, pa.timestamp("us")),
            "value": value,
            "probability": np.where(np.abs(value - expected) > half_width, 0.3, 0.0),
            "expected": np.full(n, expected),
            "lower": np.full(n, expected - half_width),
            "upper": np.full(n, expected + half_width),
        }
    )


def fires(alerter: AnomalyAlerter, table: pa.Table) -> list[bool]:
    flagged = pa.array(np.abs(table.column("value").to_numpy() - table.column("expected").to_numpy()) > 0)
    return [bool(f) for f in alerter.observe(table, flagged).firing]


@settings(max_examples=25, deadline=None)
@given(level=st.floats(100.0, 1e5), rise=st.floats(0.03, 0.09))
def test_a_young_busy_series_does_not_alert_on_a_small_relative_rise(level: float, rise: float) -> None:
    # a band of 0.1 %: the rise is dozens of band-widths, but under the 10 % practical floor
    value = np.r_[np.full(40, level), np.full(10, level * (1 + rise))]
    young_alerter = AnomalyAlerter(warm_points=30)
    assert fires(young_alerter, bands(value, level, level * 0.001)) == []
    aged = AnomalyAlerter(warm_points=30, young_s=0.0)  # the same run on a series past its first day
    assert fires(aged, bands(value, level, level * 0.001)) == [True]


@settings(max_examples=25, deadline=None)
@given(level=st.floats(0.1, 1e5), factor=st.floats(1.2, 10.0))
def test_a_young_series_still_alerts_on_a_clear_relative_change(level: float, factor: float) -> None:
    value = np.r_[np.full(40, level), np.full(10, level * factor)]
    a = AnomalyAlerter(warm_points=30)
    t = a.observe(bands(value, level, level * 0.01), pa.array(value != level))
    assert t.firing.tolist() == [True] and t.young.tolist() == [True]


def test_transitions_say_when_a_series_is_no_longer_young() -> None:
    a = AnomalyAlerter(warm_points=0, young_s=DAY_S)
    day = int(DAY_S * 1e6)
    value = np.r_[np.zeros(2), np.full(3, 9.0), np.zeros(10)]
    t1 = a.observe(bands(value, 0.0, 1.0), pa.array(value > 0))
    t2 = a.observe(bands(value, 0.0, 1.0, start_us=day), pa.array(value > 0))
    assert t1.young.tolist() == [True, True] and t2.young.tolist() == [False, False]


# ---------------------------------------------------------------------------- promote

TOPOLOGY = Topology(
    [
        ConfigurationItem("api", tier=2, owner="team-api", depends_on=("db",)),
        ConfigurationItem("db", tier=1, owner="team-data"),
    ]
)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    with Store(str(tmp_path / "young.duckdb")) as store:
        yield State(store, TOPOLOGY)


def anomaly(name: str, service: str, is_young: bool) -> Alert:
    return Alert(
        id=f"id-{name}-{service}", fingerprint=f"{name}-{service}", name=name, status=AlertStatus.FIRING,
        starts_at=T0, service=service, severity="warning", source="anomaly",
        labels={"alertname": name, "service": service}, last_seen=T0,
        annotations={YOUNG: "true"} if is_young else {},
    )  # fmt: skip


def group_of(state: State, *members: Alert) -> Group:
    g = state.new_group(T0, T0, None)
    state.groups[g.id] = g
    for a in members:
        g.add(a)
        state.group_of[a.id] = g.id
    return g


@pytest.mark.parametrize(
    ("members", "opens"),
    [
        ([("rate high", "db", True)], False),
        ([("rate high", "db", False)], True),
        ([("errors high", "db", True), ("latency high", "api", True)], True),
    ],
    ids=["lone-young-waits", "lone-mature-opens", "young-with-company-opens"],
)
def test_a_lone_young_alert_waits_for_company(
    state: State, members: list[tuple[str, str, bool]], opens: bool
) -> None:
    g = group_of(state, *(anomaly(n, s, y) for n, s, y in members))
    assert all(young(a) is y for a, (_, _, y) in zip(g.members.values(), members, strict=True))
    out = stages.Promote(state, CorrelationConfig())(stages.Signal(T0 + timedelta(minutes=30), group=g))
    assert out is not None and out.opened is opens
