"""Counters -> per-second rates: Prometheus' maths, resets, stale markers, any chunking."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.series import series_id
from ingest.points import points_table, series_table
from ingest.rates import CumulativeToRate, rate_name, rate_unit

US = 1_000_000
COUNTERS = [
    (101, "http_requests_total", (("service", "web"),), "{request}"),
    (102, "http_requests_total", (("service", "db"),), "{request}"),
    (103, "bytes_sent", (("service", "web"),), "By"),
]
GAUGE = (201, "cpu_utilization", (("service", "web"),), "1")


def series_rows(kind_of_gauge: str = "gauge") -> pa.Table:
    rows = [(sid, (name, labels, "counter", unit)) for sid, name, labels, unit in COUNTERS]
    rows.append((GAUGE[0], (GAUGE[1], GAUGE[2], kind_of_gauge, GAUGE[3])))
    return series_table(rows)


def points(rows: list[tuple[int, int, float | None]]) -> pa.Table:
    ids = np.asarray([r[0] for r in rows], dtype=np.uint64)
    ts = np.asarray([r[1] for r in rows], dtype=np.int64)
    mask = np.asarray([r[2] is None for r in rows], dtype=bool)
    values = pa.array(
        np.asarray([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64),
        pa.float64(),
        mask=mask if mask.any() else None,
    )
    return points_table(ids, ts, values)


def as_triples(table: pa.Table | None, rate_ids: dict[int, int]) -> list[tuple[int, int, float]]:
    """Rate points keyed back to their counter ids, sorted."""
    if table is None:
        return []
    back = {v: k for k, v in rate_ids.items()}
    ids = table.column("series_id").to_pylist()
    ts = table.column("ts").cast(pa.int64()).to_pylist()
    values = table.column("value").to_pylist()
    return sorted((back[i], t, v) for i, t, v in zip(ids, ts, values, strict=True) if i in back)


RATE_IDS = {sid: series_id(rate_name(name), labels) for sid, name, labels, _ in COUNTERS}


def test_rates_follow_prometheus_semantics_with_resets_and_stale_markers() -> None:
    conv = CumulativeToRate()
    rows: list[tuple[int, int, float | None]] = [
        (101, 0, 100.0),  # first sample: no rate
        (101, 60 * US, 700.0),  # +600 in 60 s
        (101, 120 * US, 100.0),  # reset: 100 since the restart
        (101, 180 * US, None),  # stale: no rate, forget
        (101, 240 * US, 200.0),  # first again: no rate
        (101, 300 * US, 230.0),
    ]
    _, out = conv.convert(series_rows(), points(rows))
    assert as_triples(out, RATE_IDS) == [
        (101, 60 * US, 10.0),
        (101, 120 * US, 100 / 60),
        (101, 300 * US, 0.5),
    ]


def test_series_rows_swap_counters_for_rate_series_once() -> None:
    conv = CumulativeToRate()
    series, _ = conv.convert(series_rows(), None)
    assert series is not None
    names = sorted(series.column("name").to_pylist())
    assert names == ["bytes_sent:rate", "cpu_utilization", "http_requests:rate", "http_requests:rate"]
    by_name = dict(
        zip(series.column("series_id").to_pylist(), series.column("unit").to_pylist(), strict=True)
    )
    assert by_name[RATE_IDS[103]] == "By/s"
    assert set(series.column("kind").to_pylist()) == {"gauge"}
    labels = dict(
        zip(series.column("series_id").to_pylist(), series.column("labels").to_pylist(), strict=True)
    )
    assert labels[RATE_IDS[102]] == [("service", "db")]
    again, _ = conv.convert(series_rows(), None)
    assert again is not None and again.column("name").to_pylist() == ["cpu_utilization"]
    assert conv.counters == 3


def test_gauges_and_unknown_series_pass_through_untouched() -> None:
    conv = CumulativeToRate()
    rows: list[tuple[int, int, float | None]] = [(201, 0, 0.5), (999, 0, 7.0), (201, 60 * US, None)]
    _, out = conv.convert(series_rows(), points(rows))
    assert out is not None
    assert sorted(
        zip(out.column("series_id").to_pylist(), out.column("value").to_pylist(), strict=True), key=str
    ) == sorted([(201, 0.5), (999, 7.0), (201, None)], key=str)


def test_a_counter_declared_as_gauge_is_not_converted() -> None:
    conv = CumulativeToRate()
    table = series_table([(101, ("http_requests_total", (), "gauge", ""))])
    _, out = conv.convert(table, points([(101, 0, 1.0), (101, 60 * US, 2.0)]))
    assert out is not None and out.column("value").to_pylist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("a_total", "", ("a:rate", "1/s")),
        ("a", "By", ("a:rate", "By/s")),
        ("a_total_total", "1", ("a_total:rate", "1/s")),
    ],
    ids=["total-suffix", "bytes", "only-last-suffix"],
)
def test_names_and_units(name: str, unit: str, expected: tuple[str, str]) -> None:
    assert (rate_name(name), rate_unit(unit)) == expected


# ---------------------------------------------------------------------- properties

values = st.one_of(st.none(), st.floats(0, 1e9, allow_nan=False), st.just(0.0))
steps = st.integers(0, 120)  # seconds between samples; 0 makes duplicate stamps


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[int, int, float | None]]:
    """Samples of the three counters in global time order (each series non-decreasing in time)."""
    rows: list[tuple[int, int, float | None]] = []
    for sid, *_ in COUNTERS:
        ts = draw(st.integers(0, 600)) * US
        for _ in range(draw(st.integers(0, 25))):
            ts += draw(steps) * US
            rows.append((sid, ts, draw(values)))
    rows.sort(key=lambda r: r[1])  # stable: each series keeps its own order on equal stamps
    return rows


@given(streams())
def test_rates_match_the_sample_by_sample_reference(rows: list[tuple[int, int, float | None]]) -> None:
    conv = CumulativeToRate()
    _, out = conv.convert(series_rows(), points(rows) if rows else None)
    got = as_triples(out, RATE_IDS)
    want = reference_stable(rows)
    assert [(s, t) for s, t, _ in got] == [(s, t) for s, t, _ in want]
    assert np.allclose([v for *_, v in got], [v for *_, v in want], rtol=1e-12)
    assert all(v >= 0 for *_, v in got)


def reference_stable(rows: list[tuple[int, int, float | None]]) -> list[tuple[int, int, float]]:
    """The reference on rows in arrival order per series (equal stamps keep their order)."""
    by_series: dict[int, list[tuple[int, int, float | None]]] = {}
    for row in rows:
        by_series.setdefault(row[0], []).append(row)
    out: list[tuple[int, int, float]] = []
    for sid in sorted(by_series):
        last: tuple[int, float] | None = None
        for _, ts, value in by_series[sid]:
            if value is None:
                last = None
                continue
            if last is not None and ts > last[0]:
                out.append(
                    (sid, ts, (value - last[1] if value >= last[1] else value) / ((ts - last[0]) / US))
                )
            last = (ts, value)
    return sorted(out)


@given(streams(), st.lists(st.integers(0, 80), max_size=6))
def test_chunk_by_chunk_equals_one_go(rows: list[tuple[int, int, float | None]], cuts: list[int]) -> None:
    whole = CumulativeToRate()
    _, out = whole.convert(series_rows(), points(rows) if rows else None)
    one_go = as_triples(out, RATE_IDS)
    chunked = CumulativeToRate()
    chunked.convert(series_rows(), None)
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    pieces: list[tuple[int, int, float]] = []
    for lo, hi in itertools.pairwise(bounds):
        _, part = chunked.convert(None, points(rows[lo:hi]))
        pieces += as_triples(part, RATE_IDS)
    assert sorted(pieces) == one_go
