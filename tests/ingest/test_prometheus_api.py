"""The Prometheus HTTP API reader: chunk planner, answer parsers, client retries, backfill into a store.

The HTTP side runs against an in-process fake Prometheus (``httpx.MockTransport``) that
evaluates query_range the way Prometheus does (grid points ``start + k*step <= end``, the
newest raw sample within a 5-minute lookback) and enforces the 11,000-points limit, so a
planner that oversteps fails here just as it would against a real server.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.selectors import parse_selector
from core.series import series_id
from core.store import Store
from ingest.prometheus_api import (
    MAX_POINTS_PER_SERIES,
    Chunk,
    PrometheusAPIError,
    PrometheusClient,
    backfill,
    backfill_range,
    kind_of,
    parse_duration_ms,
    parse_matrix,
    parse_metadata,
    plan_chunks,
    query_for,
)
from tests.conftest import free_port

# ---------------------------------------------------------------------------- planner


@given(
    start=st.integers(0, 10**12),
    n_steps=st.integers(0, 50_000),  # the grid is materialised below: keep it to memory's size
    step=st.integers(1, 3_600_000),
    remainder=st.floats(0, 1, exclude_max=True),
    max_points=st.integers(1, 20_000),
)
def test_chunks_cover_every_grid_point_exactly_once_within_the_limit(
    start: int, n_steps: int, step: int, remainder: float, max_points: int
) -> None:
    length = n_steps * step + int(remainder * step)  # a range that need not end on the grid
    end = start + length
    chunks = plan_chunks(start, end, step, max_points=max_points)
    assert all(c.points <= max_points for c in chunks)
    assert all(c.start_ms <= c.end_ms for c in chunks)
    # the union of the chunks' grids is the whole grid, each point once, in order
    points = [p for c in chunks for p in range(c.start_ms, c.end_ms + 1, step)]
    n = length // step + 1
    assert len(points) == n
    assert points[0] == start and points[-1] == start + (n - 1) * step
    assert all(b - a == step for a, b in itertools.pairwise(points))
    # no more chunks than needed: all but the last are full
    assert all(c.points == max_points for c in chunks[:-1])


@given(end=st.integers(10**9, 10**13), since=st.integers(0, 10**9), step=st.integers(1, 10**6))
def test_the_backfill_grid_ends_on_now_so_no_partial_last_step_is_lost(
    end: int, since: int, step: int
) -> None:
    start, stop = backfill_range(end, since, step)
    assert stop == end and end - since < start + step and start <= end
    chunks = plan_chunks(start, stop, step)
    assert chunks[-1].end_ms == end, "the newest point must be fetched"
    assert all(c.points <= MAX_POINTS_PER_SERIES for c in chunks)


def test_planner_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="step"):
        plan_chunks(0, 10, 0)
    assert plan_chunks(10, 0, 1) == []


# ---------------------------------------------------------------------------- parsers


@given(
    st.lists(
        st.tuples(
            st.integers(0, 4 * 10**12),
            st.floats(allow_nan=True, allow_infinity=True, width=64),
        ),
        min_size=1,
        max_size=60,
    ),
    st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), st.text(max_size=10), max_size=4),
)
def test_matrix_values_and_timestamps_round_trip(
    samples: list[tuple[int, float]], labels: dict[str, str]
) -> None:
    def text(v: float) -> str:  # how Prometheus prints sample values
        return "NaN" if math.isnan(v) else "+Inf" if v == math.inf else "-Inf" if v == -math.inf else repr(v)

    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"__name__": "m", **labels}, "values": [[t / 1000, text(v)] for t, v in samples]}
            ],
        },
    }
    (series,) = parse_matrix(json.dumps(body).encode())
    assert series.labels == {"__name__": "m", **labels}
    assert series.timestamps_ms.tolist() == [t for t, _ in samples]
    got = series.values.tolist()
    assert all((math.isnan(a) and math.isnan(b)) or a == b for a, (_, b) in zip(got, samples, strict=True))


def test_error_answers_carry_prometheus_text() -> None:
    body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    with pytest.raises(PrometheusAPIError, match=r'bad_data: parse error: unexpected "\}"'):
        parse_matrix(json.dumps(body).encode())
    with pytest.raises(PrometheusAPIError, match="matrix"):
        parse_matrix({"status": "success", "data": {"resultType": "vector", "result": []}})


def test_metadata_gives_kinds_by_family() -> None:
    meta = parse_metadata(
        {
            "status": "success",
            "data": {
                "http_requests_total": [{"type": "counter", "unit": ""}],
                "rpc_seconds": [{"type": "histogram", "unit": "seconds"}],
                "odd": [{"type": "stateset"}],
            },
        }
    )
    assert kind_of("http_requests_total", meta) == ("counter", "")
    assert kind_of("rpc_seconds_bucket", meta) == ("histogram", "seconds")
    assert kind_of("rpc_seconds_count", meta) == ("histogram", "seconds")
    assert kind_of("odd", meta) == ("unknown", "")


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30s", 30_000), ("7d", 604_800_000), ("1h30m", 5_400_000), ("2w", 1_209_600_000), ("500ms", 500)],
    ids=["seconds", "days", "compound", "weeks", "millis"],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "7", "1m1h", "5x", "0s", "1h1h"], ids=str)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(text)


@given(st.integers(0, 9999), st.sampled_from(["y", "w", "d", "h", "m", "s", "ms"]))
def test_duration_units(n: int, unit: str) -> None:
    scale = {
        "y": 31_536_000_000,
        "w": 604_800_000,
        "d": 86_400_000,
        "h": 3_600_000,
        "m": 60_000,
        "s": 1000,
        "ms": 1,
    }
    if n == 0:
        with pytest.raises(ValueError):
            parse_duration_ms(f"{n}{unit}")
    else:
        assert parse_duration_ms(f"{n}{unit}") == n * scale[unit]


def test_query_for_keeps_the_users_matchers() -> None:
    assert query_for("up", 'up{job="a"}') == 'up{job="a"}'
    assert query_for("up", '{job=~"a|b"}') == '{__name__="up",job=~"a|b"}'
    assert query_for("up", '{__name__=~".+"}') == '{__name__="up",__name__=~".+"}'


# ---------------------------------------------------------------------------- a fake Prometheus


class FakePrometheus:
    """Raw samples per series, answered the way Prometheus' HTTP API answers."""

    LOOKBACK_MS = 300_000

    def __init__(self, series: dict[tuple[tuple[str, str], ...], tuple[np.ndarray, np.ndarray]]) -> None:
        self.series = series
        self.calls: list[str] = []
        self.fail_next = 0  # answer this many requests with a 503 first

    def _select(self, query: str) -> list[tuple[tuple[str, str], ...]]:
        matchers = parse_selector(query)
        return [key for key in self.series if all(m.matches(dict(key)) for m in matchers)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if self.fail_next:
            self.fail_next -= 1
            return httpx.Response(503, json={"status": "error", "errorType": "unavailable", "error": "busy"})
        form = parse_qs(request.content.decode()) if request.method == "POST" else {}
        if request.url.path == "/api/v1/metadata":
            return httpx.Response(
                200, json={"status": "success", "data": {"temp": [{"type": "gauge", "unit": ""}]}}
            )
        if request.url.path == "/api/v1/series":
            keys = {k for m in form["match[]"] for k in self._select(m)}
            return httpx.Response(200, json={"status": "success", "data": [dict(k) for k in sorted(keys)]})
        assert request.url.path == "/api/v1/query_range"
        query = form["query"][0]
        if "{" in query and "=" not in query.split("{", 1)[1]:
            return httpx.Response(
                400, json={"status": "error", "errorType": "bad_data", "error": "bad selector"}
            )
        start, end, step = (round(float(form[k][0]) * 1000) for k in ("start", "end", "step"))
        if (end - start) // step + 1 > MAX_POINTS_PER_SERIES:
            msg = "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution"
            return httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": msg})
        result = []
        for key in self._select(query):
            at, values = self.evaluate(key, start, end, step)
            if len(at):
                pairs = [[t / 1000, repr(v)] for t, v in zip(at.tolist(), values.tolist(), strict=True)]
                result.append({"metric": dict(key), "values": pairs})
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    def evaluate(
        self, key: tuple[tuple[str, str], ...], start: int, end: int, step: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Grid points with a sample in the lookback, and the newest such sample's value."""
        ts, vals = self.series[key]
        at = np.arange(start, end + 1, step)
        i = np.searchsorted(ts, at, side="right") - 1
        ok = (i >= 0) & (at - ts[np.maximum(i, 0)] < self.LOOKBACK_MS)
        return at[ok], vals[i[ok]]


T0 = 1_760_000_000_000  # ms
STEP = 15_000


def synthetic(
    n_series: int = 3, points: int = 30_000
) -> dict[tuple[tuple[str, str], ...], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out: dict[tuple[tuple[str, str], ...], tuple[np.ndarray, np.ndarray]] = {}
    for i in range(n_series):
        ts = T0 + np.arange(points, dtype=np.int64) * STEP
        out[(("__name__", "temp"), ("host", f"h{i}"), ("job", "node"))] = (
            ts,
            rng.normal(20 + i, 1, points).round(3),
        )
    ts = T0 + np.arange(points, dtype=np.int64) * STEP
    out[(("__name__", "reqs_total"), ("job", "api"))] = (
        ts,
        np.cumsum(rng.integers(0, 5, points)).astype(float),
    )
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "prom.duckdb")) as s:
        yield s


def client_for(fake: FakePrometheus) -> PrometheusClient:
    return PrometheusClient(
        "http://prometheus.test", transport=httpx.MockTransport(fake), attempts=3, backoff_s=0.01
    )


def stored(store: Store) -> dict[int, list[tuple[int, float]]]:
    rows = store.query("SELECT series_id, epoch_ms(ts), value FROM points ORDER BY series_id, ts")
    out: dict[int, list[tuple[int, float]]] = {}
    for sid, ts, value in rows:
        out.setdefault(int(sid), []).append((int(ts), float(value)))
    return out


def test_backfill_stores_exactly_what_prometheus_returns(store: Store) -> None:
    data = synthetic()
    fake = FakePrometheus(data)
    end = T0 + 29_999 * STEP + 7_000  # "now" is not on the scrape grid
    start, end = backfill_range(end, 29_999 * STEP, STEP)
    with client_for(fake) as client:
        result = backfill(store, client, start_ms=start, end_ms=end, step_ms=STEP)
    assert result.series == 4
    # what Prometheus' evaluation gives over the same grid, series by series, without chunks
    expected = {}
    for key in data:
        labels = dict(key)
        name = labels.pop("__name__")
        at, values = fake.evaluate(key, start, end, STEP)
        expected[series_id(name, labels)] = list(zip(at.tolist(), values.tolist(), strict=True))
    assert stored(store) == expected
    assert result.points == sum(len(v) for v in expected.values())
    # the 30,000-step range needed several chunks, none over the limit (the fake refuses those)
    assert fake.calls.count("/api/v1/query_range") >= 2 * 3
    kinds = dict(store.query("SELECT name, any_value(kind) FROM series GROUP BY name"))
    assert kinds == {"temp": "gauge", "reqs_total": "unknown"}


def test_a_second_backfill_extends_instead_of_duplicating(store: Store) -> None:
    data = synthetic(n_series=1, points=2_000)
    end = T0 + 1_999 * STEP
    with client_for(FakePrometheus(data)) as client:
        first = backfill(store, client, start_ms=T0, end_ms=T0 + 999 * STEP, step_ms=STEP)
        again = backfill(store, client, start_ms=T0, end_ms=end, step_ms=STEP)
    assert first.points == 2 * 1_000
    assert again.points == 2 * 1_000 and again.skipped == 2 * 1_000
    for points in stored(store).values():
        ts = [t for t, _ in points]
        assert len(ts) == len(set(ts)) == 2_000


def test_overlapping_selectors_read_a_series_once(store: Store) -> None:
    data = synthetic(n_series=2, points=500)
    with client_for(FakePrometheus(data)) as client:
        result = backfill(
            store,
            client,
            start_ms=T0,
            end_ms=T0 + 499 * STEP,
            step_ms=STEP,
            matches=['{job="node"}', 'temp{host="h1"}', "reqs_total"],
        )
    assert result.series == 3
    assert sorted(len(v) for v in stored(store).values()) == [500, 500, 500]


def test_a_big_metric_gets_shorter_chunks_under_the_sample_budget(store: Store) -> None:
    data = synthetic(n_series=4, points=1_000)
    fake = FakePrometheus(data)
    with client_for(fake) as client:
        result = backfill(
            store, client, start_ms=T0, end_ms=T0 + 999 * STEP, step_ms=STEP, samples_per_request=400
        )
    # temp: 4 series -> 100 points a request, 10 requests; reqs_total: 1 series -> 400 points, 3 requests
    assert result.requests == 13
    assert result.points == 5 * 1_000


def test_5xx_is_retried_and_4xx_is_not() -> None:
    fake = FakePrometheus(synthetic(n_series=1, points=10))
    with client_for(fake) as client:
        fake.fail_next = 2
        assert client.series(["temp"], T0, T0 + 10 * STEP)
        assert fake.calls.count("/api/v1/series") == 3
        fake.fail_next = 3  # every attempt
        with pytest.raises(PrometheusAPIError, match="HTTP 503: unavailable: busy"):
            client.series(["temp"], T0, T0 + 10 * STEP)
        before = len(fake.calls)
        with pytest.raises(PrometheusAPIError, match="bad_data: bad selector"):
            client.query_range("temp{oops}", Chunk(T0, T0 + STEP, STEP))
        assert len(fake.calls) == before + 1


def test_an_unreachable_server_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        PrometheusClient(url, attempts=2, timeout_s=2, backoff_s=0.01) as client,
        pytest.raises(PrometheusAPIError) as info,
    ):
        client.metadata()
    assert info.value.message.startswith(f"cannot reach Prometheus at {url}")
    assert "\n" not in info.value.message
