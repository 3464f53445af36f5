"""diagnose.rank: the generic metric ranker, as a specification of its rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnose.rank import RankConfig, SeriesInfo, ServiceScore, Signal, rank_services, series_deviation

STEP = 60.0
N_POINTS = 120
ALARM = 100 * STEP  # 100 baseline minutes before, 20 after (only the first 3 are read)
ROLES: tuple[Signal, ...] = (
    "latency",
    "downstream_latency",
    "errors",
    "traffic",
    "saturation",
    "host",
    "other",
)


def grid() -> np.ndarray:
    return np.arange(N_POINTS) * STEP


def noisy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Positive series with their own level and noise, like real metrics."""
    level = rng.uniform(1.0, 100.0, size=(n, 1))
    return level * (1.0 + 0.05 * rng.standard_normal((n, N_POINTS)))


def shift(row: np.ndarray, by: float) -> None:
    """Move a series up by ``by`` times its noise from the alarm on."""
    row[int(ALARM // STEP) :] += by * np.std(row[: int(ALARM // STEP)])


def names(ranking: list[ServiceScore]) -> list[str]:
    return [r.service for r in ranking]


def estate(rng: np.random.Generator, n_services: int) -> tuple[np.ndarray, list[SeriesInfo]]:
    """Every service with one noisy series per role (host series are per service here)."""
    series = [SeriesInfo(f"svc-{i}", f"m-{role}", role) for i in range(n_services) for role in ROLES]
    return noisy(rng, len(series)), series


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_services=st.integers(2, 12), culprit=st.integers(0, 11))
def test_a_strong_saturation_shift_in_one_service_ranks_it_first(
    seed: int, n_services: int, culprit: int
) -> None:
    rng = np.random.default_rng(seed)
    values, series = estate(rng, n_services)
    culprit %= n_services
    row = next(i for i, s in enumerate(series) if s.service == f"svc-{culprit}" and s.signal == "saturation")
    shift(values[row], 40.0)
    ranking = rank_services(grid(), values, series, ALARM)
    assert ranking[0].service == f"svc-{culprit}"
    top = ranking[0].metrics[0]
    assert (top.signal, top.onset_ts) == ("saturation", ALARM)
    assert top.value > top.baseline


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_services=st.integers(1, 8), with_edges=st.booleans())
def test_the_ranking_does_not_depend_on_the_order_of_the_series(
    seed: int, n_services: int, with_edges: bool
) -> None:
    rng = np.random.default_rng(seed)
    values, series = estate(rng, n_services)
    shift(values[rng.integers(len(series))], 10.0)
    edges = [(f"svc-{i}", f"svc-{i + 1}") for i in range(n_services - 1)] if with_edges else None
    perm = rng.permutation(len(series))
    a = rank_services(grid(), values, series, ALARM, edges)
    b = rank_services(grid(), values[perm], [series[i] for i in perm], ALARM, edges)
    assert a == b


def copies(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` identical noisy series: equal shifts then give exactly equal deviations."""
    return np.repeat(noisy(rng, 1), n, axis=0)


def test_server_latency_without_client_latency_is_where_the_time_is_spent() -> None:
    series = [
        SeriesInfo("a-waiting", "server_p99", "latency"),
        SeriesInfo("a-waiting", "client_p99", "downstream_latency"),
        SeriesInfo("b-slow", "server_p99", "latency"),
        SeriesInfo("b-slow", "client_p99", "downstream_latency"),
    ]
    values = copies(np.random.default_rng(1), len(series))
    for row in (0, 1, 2):  # both servers slow; only a's own calls are slow too
        shift(values[row], 30.0)
    assert names(rank_services(grid(), values, series, ALARM)) == ["b-slow", "a-waiting"]
    # without client latency series the two cannot be told apart: the tie goes by name
    alone = rank_services(grid(), values[[0, 2]], [series[0], series[2]], ALARM)
    assert names(alone) == ["a-waiting", "b-slow"] and alone[0].score == alone[1].score


def test_with_a_call_graph_the_callee_beats_its_caller_on_latency_but_not_on_cpu() -> None:
    rng = np.random.default_rng(2)
    quiet = [f"q-{i}" for i in range(6)]
    series = [
        SeriesInfo("a-caller", "p99", "latency"),
        SeriesInfo("a-caller", "cpu", "saturation"),
        SeriesInfo("b-callee", "p99", "latency"),
        *(SeriesInfo(q, "p99", "latency") for q in quiet),
    ]
    values = np.vstack([copies(rng, 3), noisy(rng, len(quiet))])
    shift(values[0], 30.0)
    shift(values[2], 30.0)
    edges = [("a-caller", "b-callee"), *(("a-caller", q) for q in quiet)]
    assert names(rank_services(grid(), values, series, ALARM))[:2] == ["a-caller", "b-callee"]  # a tie
    assert names(rank_services(grid(), values, series, ALARM, edges))[:2] == ["b-callee", "a-caller"]
    shift(values[1], 30.0)  # the caller's own CPU is not something a callee explains
    assert rank_services(grid(), values, series, ALARM, edges)[0].service == "a-caller"


def test_a_host_series_shared_by_many_services_says_less_than_a_node_of_ones_own() -> None:
    rng = np.random.default_rng(3)
    shared = noisy(rng, 1)[0]
    own = noisy(rng, 1)[0]
    shift(shared, 30.0)
    shift(own, 30.0)
    series = [SeriesInfo(s, "node_cpu", "host") for s in ("a", "b", "c", "d")]
    values = np.vstack([shared, shared, shared, own])
    assert rank_services(grid(), values, series, ALARM)[0].service == "d"


def test_success_rate_counts_when_it_drops_not_when_it_rises() -> None:
    rng = np.random.default_rng(4)
    series = [SeriesInfo(s, "success", "errors", higher_is_worse=False) for s in ("a-up", "b-down")]
    values = noisy(rng, 2)
    shift(values[0], 30.0)
    shift(values[1], -30.0)
    ranking = rank_services(grid(), values, series, ALARM)
    assert names(ranking) == ["b-down", "a-up"]
    drop = ranking[0].metrics[0]
    assert drop.value < drop.baseline  # reported in the series' own units and sign


def test_missing_points_are_skipped_and_empty_series_carry_no_evidence() -> None:
    rng = np.random.default_rng(5)
    values, series = estate(rng, 4)
    target = next(i for i, s in enumerate(series) if s.service == "svc-2" and s.signal == "saturation")
    shift(values[target], 40.0)
    values[:, ::3] = np.nan  # a third of every series missing, inside both windows
    empty = next(i for i, s in enumerate(series) if s.service == "svc-0" and s.signal == "latency")
    values[empty] = np.nan
    ranking = rank_services(grid(), values, series, ALARM)
    assert ranking[0].service == "svc-2"
    blank = next(m for r in ranking for m in r.metrics if m.service == "svc-0" and m.signal == "latency")
    assert blank.score == 0.0 and np.isnan(blank.baseline) and blank.onset_ts is None
    all_missing = np.full_like(values, np.nan)
    assert all(r.score == 0.0 for r in rank_services(grid(), all_missing, series, ALARM))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_nothing_outside_the_baseline_and_the_analysis_window_is_read(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values, series = estate(rng, 3)
    config = RankConfig(baseline_s=30 * STEP, after_s=3 * STEP)
    first = int((ALARM - config.baseline_s) // STEP)
    last = int((ALARM + config.after_s) // STEP)
    changed = values.copy()
    changed[:, :first] = rng.uniform(-1e6, 1e6, size=(len(series), first))
    changed[:, last + 1 :] = np.nan
    assert rank_services(grid(), values, series, ALARM, config=config) == rank_services(
        grid(), changed, series, ALARM, config=config
    )


def test_values_must_match_the_series_and_the_grid() -> None:
    with pytest.raises(ValueError, match="shape"):
        rank_services(grid(), np.zeros((2, N_POINTS)), [SeriesInfo("a", "m", "other")], ALARM)
    assert rank_services(grid(), np.zeros((0, N_POINTS)), [], ALARM) == []


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_services=st.integers(2, 6),
    log_scales=st.lists(st.floats(-6.0, 6.0), min_size=42, max_size=42),
)
def test_the_deviation_score_does_not_depend_on_each_series_unit(
    seed: int, n_services: int, log_scales: list[float]
) -> None:
    """Median and IQR move with the unit, so seconds vs milliseconds (or Mi vs bytes) change nothing."""
    rng = np.random.default_rng(seed)
    values, series = estate(rng, n_services)
    shift(values[rng.integers(len(series))], 8.0)
    scales = 10.0 ** np.array(log_scales[: len(series)])
    a = rank_services(grid(), values, series, ALARM)
    b = rank_services(grid(), values * scales[:, None], series, ALARM)
    assert names(a) == names(b)
    np.testing.assert_allclose([r.score for r in a], [r.score for r in b], rtol=1e-6, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    by=st.floats(10.0, 1e3),
    missing=st.floats(0.0, 0.6),
    two_sided=st.booleans(),
)
def test_a_shifted_series_outranks_a_flat_one_even_with_gaps(
    seed: int, by: float, missing: float, two_sided: bool
) -> None:
    rng = np.random.default_rng(seed)
    values = noisy(rng, 2)
    shift(values[0], by)
    gaps = rng.random(values.shape) < missing
    gaps[:, int(ALARM // STEP)] = False  # the shift's first point is there to be seen
    values[gaps] = np.nan
    score, base, peak, onset = series_deviation(
        grid(), values, ALARM, np.full(2, two_sided), RankConfig(min_baseline_points=5)
    )
    assert score[0] > score[1] >= 0.0
    assert peak[0] > base[0] and onset[0] == ALARM


def test_client_latency_no_callee_explains_is_the_services_own_network() -> None:
    """A delay on a service's interface slows its calls while its callees stay fast."""
    rng = np.random.default_rng(6)
    quiet = [f"q-{i}" for i in range(6)]
    series = [
        SeriesInfo("a-delayed", "client_p99", "downstream_latency"),
        SeriesInfo("b-callee", "server_p99", "latency"),
        SeriesInfo("c-other", "cpu", "saturation"),
        *(SeriesInfo(q, "p99", "latency") for q in quiet),
    ]
    values = np.vstack([copies(rng, 3), noisy(rng, len(quiet))])
    shift(values[0], 30.0)
    edges = [("a-delayed", "b-callee")]
    assert rank_services(grid(), values, series, ALARM)[0].service != "a-delayed"  # no graph: not own
    assert rank_services(grid(), values, series, ALARM, edges)[0].service == "a-delayed"
    shift(values[1], 30.0)  # now the callee is slow too: the caller is waiting on it
    ranked = names(rank_services(grid(), values, series, ALARM, edges))
    assert ranked.index("b-callee") < ranked.index("a-delayed")
