"""SLO evaluation over a real DuckDB store, against hand-computed figures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from core.batch import POINTS_SCHEMA, SERIES_SCHEMA, WriteBatch
from core.model import BudgetState, MaintenanceWindow
from core.series import series_id
from core.store import Store
from slo.evaluate import EvaluationConfig, SliceCache, evaluate
from slo.spec import load_openslo

T0 = datetime(2026, 1, 31, 23, 0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "slo.duckdb")) as s:
        yield s


def put(store: Store, name: str, labels: dict[str, str], values: list[float], start: datetime = T0) -> None:
    sid = series_id(name, labels)
    series = pa.Table.from_pylist(
        [{"series_id": sid, "name": name, "labels": list(labels.items()), "service": labels.get("service"),
          "kind": "gauge", "unit": ""}], schema=SERIES_SCHEMA)  # fmt: skip
    ts = [start + timedelta(minutes=i) for i in range(len(values))]
    points = pa.Table.from_pydict(
        {"series_id": [sid] * len(values), "ts": ts, "value": values}, schema=POINTS_SCHEMA
    )
    store.write(WriteBatch(source="test", series=series, points=points))


def ratio_slo(name: str, method: str, extra: str = "", window: str = "1d", counter: bool = False) -> str:
    slices = "timeSliceTarget: 0.99\n      timeSliceWindow: 1m" if method != "Occurrences" else ""
    return f"""
apiVersion: openslo/v1
kind: SLO
metadata: {{name: {name}{extra}}}
spec:
  service: shop
  budgetingMethod: {method}
  timeWindow: [{{duration: {window}, isRolling: true}}]
  objectives:
    - target: 0.99
      {slices}
  indicator:
    metadata: {{name: {name}-sli}}
    spec:
      ratioMetric:
        counter: {str(counter).lower()}
        good: {{metricSource: {{type: Prometheus, spec: {{query: 'good{{service="shop"}}'}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: 'total{{service="shop"}}'}}}}}}
"""


def bursty(store: Store) -> None:
    """59 quiet minutes (100 requests, all good) and one burst minute (1000 requests, all bad)."""
    totals = [100.0] * 30 + [1000.0] + [100.0] * 29
    goods = [100.0] * 30 + [0.0] + [100.0] * 29
    put(store, "total", {"service": "shop"}, totals)
    put(store, "good", {"service": "shop"}, goods)


def test_occurrences_and_timeslices_differ_as_they_should_on_bursty_data(store: Store) -> None:
    """By hand: Occurrences 5900 good / 6900 total = 0.8551; Timeslices 59 good minutes / 60 = 0.9833;
    RatioTimeslices averages the per-minute ratios, also 59/60 here."""
    bursty(store)
    specs = [
        *load_openslo(ratio_slo("occ", "Occurrences")),
        *load_openslo(ratio_slo("slices", "Timeslices")),
        *load_openslo(ratio_slo("ratio-slices", "RatioTimeslices")),
    ]
    occ, slices, ratio = evaluate(store, specs, T0 + timedelta(hours=1))
    assert occ.sli == pytest.approx(5900 / 6900)
    assert slices.sli == pytest.approx(59 / 60) and ratio.sli == pytest.approx(59 / 60)
    # budget: 1 % of events; 1000 bad of 6900 consumes 1000 / 69 = 14.49 budgets
    assert occ.budget_consumed == pytest.approx(1000 / (6900 * 0.01))
    assert occ.budget_remaining == pytest.approx(1 - 1000 / 69) and occ.state is BudgetState.EXHAUSTED
    assert slices.bad_minutes == pytest.approx(1.0) and slices.budget_consumed == pytest.approx(
        (1 / 60) / 0.01
    )
    # the 1 h burn rate is the error ratio over the last hour divided by the budget
    assert occ.burn_rates["1h"] == pytest.approx((1000 / 6900) / 0.01)
    assert occ.burn_rates["5m"] == 0.0, "the burst is 30 minutes old: the fast row (1h/5m) is quiet"
    assert occ.burn_rates["30m"] > 6 and occ.burn_rates["6h"] > 6 and "page" in occ.alerts, (
        "the 6h/30m row pages"
    )


def test_counters_count_increases_and_survive_a_reset(store: Store) -> None:
    totals = [0.0, 100.0, 200.0, 300.0, 50.0, 150.0]  # reset after 300: increases 100, 100, 100, 50, 100
    goods = [0.0, 100.0, 190.0, 290.0, 50.0, 150.0]  # increases 100, 90, 100, 50, 100
    put(store, "total", {"service": "shop"}, totals)
    put(store, "good", {"service": "shop"}, goods)
    (spec,) = load_openslo(ratio_slo("counted", "Occurrences", counter=True))
    (status,) = evaluate(store, [spec], T0 + timedelta(minutes=10))
    assert (status.good, status.total) == (440.0, 450.0)


def test_maintenance_windows_are_excluded_when_the_slo_asks(store: Store) -> None:
    bursty(store)
    annotated = ", annotations: {opsloop.dev/exclude-maintenance: 'true'}"
    specs = [
        *load_openslo(ratio_slo("plain", "Occurrences")),
        *load_openslo(ratio_slo("excl", "Occurrences", annotated)),
    ]
    window = MaintenanceWindow("m1", ("shop",), T0 + timedelta(minutes=30), T0 + timedelta(minutes=31))
    plain, excl = evaluate(store, specs, T0 + timedelta(hours=1), maintenance=[window])
    assert plain.sli == pytest.approx(5900 / 6900)
    assert excl.sli == 1.0 and excl.total == 5900.0


def test_a_calendar_month_restarts_at_the_boundary(store: Store) -> None:
    bursty(store)  # 23:00-23:59 on January 31st, the burst at 23:30
    put(store, "total", {"service": "shop"}, [100.0] * 30, start=datetime(2026, 2, 1))
    put(store, "good", {"service": "shop"}, [100.0] * 30, start=datetime(2026, 2, 1))
    text = ratio_slo("monthly", "Occurrences").replace(
        "[{duration: 1d, isRolling: true}]",
        "[{duration: 1M, isRolling: false, calendar: {startTime: '2026-01-01 00:00:00', timeZone: UTC}}]",
    )
    (spec,) = load_openslo(text)
    (feb,) = evaluate(store, [spec], datetime(2026, 2, 1, 0, 30))
    (jan,) = evaluate(store, [spec], datetime(2026, 1, 31, 23, 59, 59))
    assert feb.total == 3000.0 and feb.sli == 1.0, "February starts with a fresh budget"
    assert jan.sli < 0.9


def test_missing_data_policy(store: Store) -> None:
    put(store, "total", {"service": "shop"}, [100.0] * 30)  # 30 minutes of data in a 60-minute look
    put(store, "good", {"service": "shop"}, [100.0] * 30)
    base = ratio_slo("gaps", "Timeslices", window="1h")
    ignore, bad = (
        *load_openslo(base),
        *load_openslo(
            base.replace("{name: gaps}", "{name: gaps-bad, annotations: {opsloop.dev/missing-data: bad}}")
        ),
    )
    a, b = evaluate(store, [ignore, bad], T0 + timedelta(hours=1))
    assert a.sli == 1.0 and a.total == 30
    assert b.sli == pytest.approx(0.5) and b.total == 60


def test_threshold_sli_with_timeslices(store: Store) -> None:
    put(store, "p99", {"service": "shop"}, [0.2] * 50 + [0.9] * 10)
    (spec,) = load_openslo("""
apiVersion: openslo/v1
kind: SLO
metadata: {name: latency}
spec:
  service: shop
  budgetingMethod: Timeslices
  timeWindow: [{duration: 1d, isRolling: true}]
  objectives: [{op: lte, value: 0.5, target: 0.95, timeSliceTarget: 1, timeSliceWindow: 1m}]
  indicator:
    metadata: {name: p99}
    spec: {thresholdMetric: {metricSource: {type: Prometheus, spec: {query: 'p99{service="shop"}'}}}}
""")
    (status,) = evaluate(store, [spec], T0 + timedelta(hours=1))
    assert status.sli == pytest.approx(50 / 60)
    assert status.burn_rates["5m"] == pytest.approx(1.0 / 0.05), "the last five minutes are all slow"


def test_the_slice_cache_gives_what_a_full_evaluation_gives(store: Store) -> None:
    bursty(store)
    specs = [*load_openslo(ratio_slo("occ", "Occurrences")), *load_openslo(ratio_slo("slices", "Timeslices"))]
    cache, config = SliceCache(), EvaluationConfig.default()
    for minute in range(5, 65, 7):
        at = T0 + timedelta(minutes=minute)
        cached, full = cache.statuses(store, specs, at, config), evaluate(store, specs, at, config)
        for a, b in zip(cached, full, strict=True):
            assert (a.slo, a.state, a.alerts) == (b.slo, b.state, b.alerts)
            assert (a.sli, a.budget_remaining, a.total) == pytest.approx((b.sli, b.budget_remaining, b.total))
            assert a.burn_rates == pytest.approx(b.burn_rates)
