"""The PromQL evaluator on synthetic data: selectors, lookback, rate with resets, aggregation, matching."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.promql.evaluate import PromQLError, Scalar, Vector, evaluate
from core.batch import WriteBatch
from core.series import series_id
from core.store import Store
from ingest.points import points_table, series_table

T0 = 1_700_000_000_000  # ms, a whole second


def put(
    store: Store, name: str, labels: dict[str, str], ts_ms: Sequence[int], values: Sequence[float | None]
) -> None:
    """Write one series' samples through the store's normal batch path."""
    items = tuple(sorted(labels.items()))

    sid = series_id(name, items)
    store.write(
        WriteBatch(
            source="test",
            series=series_table([(sid, (name, items, "unknown", ""))]),
            points=points_table(
                np.full(len(ts_ms), sid, np.uint64),
                np.asarray(ts_ms, np.int64) * 1000,
                np.array([np.nan if v is None else v for v in values]),
            ),
        )
    )


def vector(store: Store, query: str, at_ms: int) -> dict[tuple[tuple[str, str], ...], float]:
    value = evaluate(store, query, [at_ms])
    assert isinstance(value, Vector)
    return {
        tuple(sorted(lab.items())): float(v)
        for lab, v in zip(value.labels, value.values[:, 0], strict=True)
        if not math.isnan(v)
    }


def counter_values(increments: list[float], resets: list[bool], start: float) -> list[float]:
    """A counter that grows by ``increments``; a reset restarts it, so it then holds only the increment.

    A reset is only visible (and only drawn) when the counter then reads less than before.
    """
    out, v = [], start
    for inc, reset in zip(increments, resets, strict=True):
        v = inc if reset and inc < v else v + inc
        out.append(v)
    return [start, *out]


@given(
    increments=st.lists(st.floats(0.01, 1e6), min_size=2, max_size=30),
    data=st.data(),
    start=st.floats(0, 1e6),
)
def test_increase_over_a_window_whose_edges_are_samples_is_the_sum_of_increments(
    tmp_path_factory: pytest.TempPathFactory, increments: list[float], data: st.DataObject, start: float
) -> None:
    resets = data.draw(st.lists(st.booleans(), min_size=len(increments), max_size=len(increments)))
    values = counter_values(increments, resets, start)
    ts = [T0 + 15_000 * i for i in range(len(values))]
    with Store(str(tmp_path_factory.mktemp("p") / "p.duckdb")) as store:
        put(store, "req_total", {"job": "a"}, ts, values)
        window = f"{15 * len(increments)}s"  # from the first sample to the last, both included
        got = vector(store, f"increase(req_total[{window}])", ts[-1])
        rate = vector(store, f"rate(req_total[{window}])", ts[-1])
    expected = sum(increments)
    assert got[(("job", "a"),)] == pytest.approx(expected, rel=1e-9)
    assert rate[(("job", "a"),)] == pytest.approx(expected / (15 * len(increments)), rel=1e-9)


def test_rate_extrapolates_to_the_window_edges_as_prometheus(store: Store) -> None:
    # samples at 10..50 s of a counter growing 1/s, window [0, 60]: Prometheus extends the
    # 40 s sampled by 10 s at each end (each below 1.1 x the 10 s average gap) -> 60 in 60 s
    put(store, "c_total", {}, [T0 + s * 1000 for s in (10, 20, 30, 40, 50)], [10, 20, 30, 40, 50])
    assert vector(store, "increase(c_total[1m])", T0 + 60_000) == {(): pytest.approx(60.0)}
    assert vector(store, "rate(c_total[1m])", T0 + 60_000) == {(): pytest.approx(1.0)}
    # the counter cannot have been below zero: starting at 2 limits the start extension to 2 s
    put(store, "d_total", {}, [T0 + s * 1000 for s in (10, 20, 30, 40, 50)], [2, 12, 22, 32, 42])
    assert vector(store, "increase(d_total[1m])", T0 + 60_000) == {(): pytest.approx(40 * 52 / 40)}


def test_irate_uses_the_last_two_samples_and_sees_resets(store: Store) -> None:
    put(store, "c_total", {}, [T0, T0 + 10_000, T0 + 20_000], [100, 200, 50])
    assert vector(store, "irate(c_total[1m])", T0 + 20_000) == {(): pytest.approx(5.0)}


def test_selector_lookback_is_five_minutes_and_a_stale_marker_ends_the_series(store: Store) -> None:
    put(store, "g", {"k": "a"}, [T0], [3.0])
    put(store, "g", {"k": "b"}, [T0, T0 + 60_000], [4.0, None])  # NULL is the stale marker
    assert vector(store, "g", T0 + 300_000) == {(("__name__", "g"), ("k", "a")): 3.0}
    assert vector(store, "g", T0 + 300_001) == {}
    assert vector(store, "g", T0 + 30_000) == {
        (("__name__", "g"), ("k", "a")): 3.0,
        (("__name__", "g"), ("k", "b")): 4.0,
    }


@pytest.mark.parametrize(
    ("selector", "keys"),
    [
        ('m{k="a"}', {"a"}),
        ('m{k!="a"}', {"b", "c", "ab"}),
        ('m{k=~"a|b"}', {"a", "b"}),
        ('m{k!~"a|b"}', {"c", "ab"}),
        ('m{k=~"b"}', {"b"}),  # anchored: "b" does not match "ab"
        ('{__name__="m", k=""}', set()),
    ],
    ids=["eq", "neq", "re", "nre", "anchored", "empty-is-absent"],
)
def test_matchers(store: Store, selector: str, keys: set[str]) -> None:
    for k in ("a", "b", "c", "ab"):
        put(store, "m", {"k": k}, [T0], [1.0])
    found = {dict(lab)["k"] for lab in vector(store, selector, T0)}
    assert found == keys


def test_aggregations_by_and_without(store: Store) -> None:
    for cpu, mode, v in [("0", "user", 1.0), ("0", "idle", 3.0), ("1", "user", 2.0), ("1", "idle", 6.0)]:
        put(store, "cpu", {"cpu": cpu, "mode": mode}, [T0], [v])
    assert vector(store, "sum by (mode) (cpu)", T0) == {(("mode", "idle"),): 9.0, (("mode", "user"),): 3.0}
    assert vector(store, "avg without (cpu) (cpu)", T0) == {
        (("mode", "idle"),): 4.5,
        (("mode", "user"),): 1.5,
    }
    assert vector(store, "max(cpu)", T0) == {(): 6.0}
    assert vector(store, "min by (cpu) (cpu)", T0) == {(("cpu", "0"),): 1.0, (("cpu", "1"),): 2.0}
    assert vector(store, "count(cpu)", T0) == {(): 4.0}


def test_binary_operators_match_one_to_one(store: Store) -> None:
    for inst, used, total in [("a", 1.0, 4.0), ("b", 3.0, 4.0)]:
        put(store, "used", {"instance": inst, "x": "1"}, [T0], [used])
        put(store, "size", {"instance": inst, "x": "2"}, [T0], [total])
    assert vector(store, "used / on(instance) size * 100", T0) == {
        (("instance", "a"),): 25.0,
        (("instance", "b"),): 75.0,
    }
    assert vector(store, "used / ignoring(x) size", T0) == {
        (("instance", "a"),): 0.25,
        (("instance", "b"),): 0.75,
    }
    assert vector(store, "used / size", T0) == {}  # x differs: nothing matches
    assert vector(store, "used > 2", T0) == {(("__name__", "used"), ("instance", "b"), ("x", "1")): 3.0}
    assert vector(store, "used > bool 2", T0) == {
        (("instance", "a"), ("x", "1")): 0.0,
        (("instance", "b"), ("x", "1")): 1.0,
    }
    assert vector(store, "absent_thing or vector(7)", T0) == {(): 7.0}
    scalar = evaluate(store, "2 * 3 - 1", [T0])
    assert isinstance(scalar, Scalar) and scalar.values.tolist() == [5.0]


def test_histogram_quantile_interpolates_within_the_bucket(store: Store) -> None:
    for le, count in [("0.1", 50.0), ("0.5", 90.0), ("1", 100.0), ("+Inf", 100.0)]:
        put(store, "lat_bucket", {"le": le, "job": "api"}, [T0], [count])
    got = vector(store, "histogram_quantile(0.9, lat_bucket)", T0)
    assert got == {(("job", "api"),): pytest.approx(0.5)}
    got = vector(store, "histogram_quantile(0.7, sum by (le) (lat_bucket))", T0)
    assert got == {(): pytest.approx(0.1 + 0.4 * (70 - 50) / 40)}


def test_range_grid_and_unsupported_features(store: Store) -> None:
    put(store, "g", {}, [T0 + 15_000 * i for i in range(9)], [float(i) for i in range(9)])
    value = evaluate(store, "g", np.arange(T0, T0 + 120_001, 30_000))
    assert isinstance(value, Vector)
    assert value.values[0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    for query in ("rate(g[5m])[10m:1m]", "g @ 100", "sum(", "topk(2, g)"):
        with pytest.raises(PromQLError):
            evaluate(store, query, [T0])
