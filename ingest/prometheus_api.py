"""History from Prometheus' HTTP API into the store: the reader behind ``opsloop backfill``.

``/api/v1/series`` enumerates what the ``--match`` selectors select, ``/api/v1/metadata``
gives each metric family its kind (counter, gauge, histogram, summary), and
``/api/v1/query_range`` fetches the values, one metric name at a time, in chunks that keep
every answer under Prometheus' limit of 11,000 points per series and a budget of samples
per request (one answer, one moderately sized JSON document).

The evaluation grid is anchored at the end of the range (``now``): its last point is the
newest data, so no partial last step is lost, and consecutive chunks share no grid point,
so no sample is fetched twice. Chunks are taken in time order across all metric names
("windows"), so the store receives history oldest first, as a live feed would.

Series get the same ids as the live path (``remote_write``, ``scrape``): the metric name
and its label set, so live points continue the backfilled series. A series' points at or
before its newest stored point are skipped, which makes a second backfill extend the store
instead of duplicating it, and keeps history from landing behind live data.

Errors (unreachable server, a bad selector) surface as :class:`PrometheusAPIError` carrying
Prometheus' own error text; transport errors and 5xx answers are retried (tenacity), 4xx
answers are not (a retry cannot fix a bad query).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import numpy as np
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.batch import WriteBatch
from core.errors import IngestError
from core.series import series_id
from core.store import Store
from ingest.points import LabelItems, PointsBuilder

__all__ = [
    "MAX_POINTS_PER_SERIES",
    "SAMPLES_PER_REQUEST",
    "BackfillResult",
    "Chunk",
    "MatrixSeries",
    "PrometheusAPIError",
    "PrometheusClient",
    "backfill",
    "backfill_range",
    "kind_of",
    "parse_duration_ms",
    "parse_matrix",
    "parse_metadata",
    "parse_series",
    "plan_chunks",
    "query_for",
]

#: Prometheus refuses a query_range whose grid has more points than this per series.
MAX_POINTS_PER_SERIES = 11_000
#: Samples one query_range answer may carry (about 30 MB of JSON): a metric name with many
#: series gets shorter chunks, so no answer nears Prometheus' ``--query.max-samples``.
SAMPLES_PER_REQUEST = 1_000_000
SOURCE = "prometheus"
ALL_SERIES = '{__name__=~".+"}'

_KINDS = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "gaugehistogram": "histogram",
    "summary": "summary",
}
_UNIT_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
}
_UNIT_MS["ms"] = 1
_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_NAME = re.compile(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{.*)?\s*", re.DOTALL)


class PrometheusAPIError(IngestError):
    """Prometheus could not be reached, or answered with an error (its text is the message)."""


# ---------------------------------------------------------------------------- pure parts


def parse_duration_ms(text: str) -> int:
    """A Prometheus duration (``30s``, ``1h30m``, ``7d``, ``2w``, ``500ms``) in milliseconds.

    >>> parse_duration_ms("7d"), parse_duration_ms("1m30s"), parse_duration_ms("250ms")
    (604800000, 90000, 250)
    """
    s = text.strip()
    parts = _DURATION.findall(s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 15m, 6h, 7d)")
    units = [u for _, u in parts]
    order = list(_UNIT_MS)
    if len(set(units)) != len(units) or [order.index(u) for u in units] != sorted(
        order.index(u) for u in units
    ):
        raise ValueError(f"invalid duration {text!r}: units must go from largest to smallest, once each")
    total = sum(int(n) * _UNIT_MS[u] for n, u in parts)
    if total <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return total


@dataclass(frozen=True, slots=True)
class Chunk:
    """One query_range call: grid points ``start_ms, start_ms + step_ms, ... <= end_ms``."""

    start_ms: int
    end_ms: int
    step_ms: int

    @property
    def points(self) -> int:
        """Grid points Prometheus evaluates for this chunk (what its limit counts)."""
        return (self.end_ms - self.start_ms) // self.step_ms + 1


def backfill_range(end_ms: int, since_ms: int, step_ms: int) -> tuple[int, int]:
    """The ``(start, end)`` of a backfill reaching ``since_ms`` back from ``end_ms`` on a grid ending at ``end_ms``.

    >>> backfill_range(100_000, 25_000, 10_000)
    (80000, 100000)
    """
    if step_ms <= 0 or since_ms < 0:
        raise ValueError("step must be positive and since not negative")
    return end_ms - (since_ms // step_ms) * step_ms, end_ms


def plan_chunks(
    start_ms: int, end_ms: int, step_ms: int, max_points: int = MAX_POINTS_PER_SERIES
) -> list[Chunk]:
    """Split the grid ``start, start + step, ... <= end`` into chunks of at most ``max_points`` points.

    Every grid point lies in exactly one chunk (a chunk starts one step after the previous
    one ends), chunks are in time order, and the last one, however short, ends on the last
    grid point.

    >>> [(c.start_ms, c.end_ms) for c in plan_chunks(0, 100, 10, max_points=5)]
    [(0, 40), (50, 90), (100, 100)]
    """
    if step_ms <= 0 or max_points < 1:
        raise ValueError("step must be positive and max_points at least 1")
    if end_ms < start_ms:
        return []
    last = start_ms + (end_ms - start_ms) // step_ms * step_ms
    span = (max_points - 1) * step_ms
    return [
        Chunk(lo, min(lo + span, last), step_ms) for lo in range(start_ms, last + 1, max_points * step_ms)
    ]


@dataclass(frozen=True, slots=True)
class MatrixSeries:
    """One series of a matrix answer: labels (``__name__`` included), ms timestamps, values."""

    labels: dict[str, str]
    timestamps_ms: np.ndarray
    values: np.ndarray


class _Answer(msgspec.Struct):
    status: str
    data: Any = None
    error: str = ""
    errorType: str = ""  # Prometheus' spelling


def _decode(body: bytes | Mapping[str, Any]) -> Any:
    """The ``data`` of a successful answer; raise with Prometheus' error text otherwise."""
    try:
        answer = (
            msgspec.convert(body, _Answer)
            if isinstance(body, Mapping)
            else msgspec.json.decode(body, type=_Answer)
        )
    except msgspec.ValidationError as exc:
        raise PrometheusAPIError(f"not a Prometheus API answer: {exc}") from exc
    if answer.status != "success":
        kind = f"{answer.errorType}: " if answer.errorType else ""
        raise PrometheusAPIError(f"{kind}{answer.error or 'Prometheus answered with an error'}")
    return answer.data


def parse_matrix(body: bytes | Mapping[str, Any]) -> list[MatrixSeries]:
    """Decode a query_range answer into per-series arrays (native histograms are left out).

    >>> s = parse_matrix({"status": "success", "data": {"resultType": "matrix",
    ...     "result": [{"metric": {"__name__": "up"}, "values": [[1.5, "1"], [2, "NaN"]]}]}})
    >>> s[0].timestamps_ms.tolist(), s[0].values.tolist()[0]
    ([1500, 2000], 1.0)
    """
    data = _decode(body)
    if not isinstance(data, Mapping) or data.get("resultType") != "matrix":
        got = data.get("resultType") if isinstance(data, Mapping) else type(data).__name__
        raise PrometheusAPIError(f"expected a matrix answer, got {got!r}")
    out: list[MatrixSeries] = []
    for item in data.get("result") or []:
        pairs: Sequence[Sequence[Any]] = item.get("values") or []
        if not pairs:
            continue
        cols = np.asarray(pairs, dtype=object)
        if cols.ndim != 2 or cols.shape[1] != 2:
            raise PrometheusAPIError('matrix values must be [timestamp, "value"] pairs')
        ts = np.rint(cols[:, 0].astype(np.float64) * 1000.0).astype(np.int64)
        values = cols[:, 1].astype(str).astype(np.float64)  # "NaN", "+Inf" included
        labels = {str(k): str(v) for k, v in (item.get("metric") or {}).items()}
        out.append(MatrixSeries(labels, ts, values))
    return out


def parse_series(body: bytes | Mapping[str, Any]) -> list[dict[str, str]]:
    """Decode a ``/api/v1/series`` answer: one label set per series.

    >>> parse_series({"status": "success", "data": [{"__name__": "up", "job": "a"}]})
    [{'__name__': 'up', 'job': 'a'}]
    """
    data = _decode(body)
    if not isinstance(data, list):
        raise PrometheusAPIError("expected a list of series")
    return [{str(k): str(v) for k, v in item.items()} for item in data]


def parse_metadata(body: bytes | Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Decode ``/api/v1/metadata``: metric family -> (opsloop kind, unit).

    >>> parse_metadata({"status": "success", "data": {"http_requests": [{"type": "counter",
    ...     "help": "", "unit": ""}], "temp": [{"type": "gaugehistogram", "unit": "celsius"}]}})
    {'http_requests': ('counter', ''), 'temp': ('histogram', 'celsius')}
    """
    data = _decode(body)
    if not isinstance(data, Mapping):
        raise PrometheusAPIError("expected metadata by metric name")
    out: dict[str, tuple[str, str]] = {}
    for name, entries in data.items():
        first = entries[0] if entries else {}
        out[str(name)] = (_KINDS.get(str(first.get("type", "")), "unknown"), str(first.get("unit") or ""))
    return out


def kind_of(name: str, metadata: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    """A series' (kind, unit) from family metadata: by its name, else its family (``_total``, ``_bucket``...).

    >>> kind_of("rpc_seconds_bucket", {"rpc_seconds": ("histogram", "seconds")})
    ('histogram', 'seconds')
    >>> kind_of("nothing_known", {})
    ('unknown', '')
    """
    found = metadata.get(name)
    if found is not None:
        return found
    for suffix in ("_total", "_bucket", "_count", "_sum", "_created", "_gcount", "_gsum"):
        if name.endswith(suffix) and name[: -len(suffix)] in metadata:
            return metadata[name[: -len(suffix)]]
    return ("unknown", "")


def query_for(name: str, match: str) -> str:
    """The selector of metric ``name`` among the series ``match`` selects.

    >>> query_for("up", 'up{job="a"}'), query_for("up", '{job="a"}'), query_for("up", "{}")
    ('up{job="a"}', '{__name__="up",job="a"}', '{__name__="up"}')
    """
    m = _NAME.fullmatch(match)
    if m is not None and m.group(1):
        return match.strip()  # names its metric already
    body = match.strip()[1:].lstrip() if match.strip().startswith("{") else "}"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{__name__="{quoted}"' + ("}" if body.startswith("}") else "," + body)


# ---------------------------------------------------------------------------- HTTP


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


class PrometheusClient:
    """The three read endpoints backfill uses, with retries on transport errors and 5xx.

    Parameters
    ----------
    url
        Prometheus' base URL (``http://prometheus:9090``; a path prefix is kept).
    timeout_s
        Per request.
    attempts, backoff_s
        Tries per request before giving up, and the first wait between them (doubling).
    transport
        An httpx transport (tests pass a mock one).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 120.0,
        attempts: int = 5,
        backoff_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise PrometheusAPIError(f"{url!r}: an http(s) URL is required")
        self.url = url.rstrip("/")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._http = httpx.Client(timeout=timeout_s, headers=dict(headers or {}), transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: Mapping[str, Any], post: bool = True) -> bytes:
        """The body of a 2xx or 4xx answer (4xx bodies carry Prometheus' error), retrying what can be retried."""
        endpoint = f"{self.url}{path}"

        def once() -> bytes:
            if post:
                resp = self._http.post(endpoint, data=dict(params))
            else:
                resp = self._http.get(endpoint, params=dict(params))
            if resp.status_code >= 500:
                resp.raise_for_status()
            if resp.status_code >= 400 and "json" not in resp.headers.get("content-type", ""):
                raise PrometheusAPIError(f"{endpoint}: HTTP {resp.status_code}: {resp.text.strip()[:200]}")
            return resp.content

        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.backoff_s, max=30 * self.backoff_s),
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    return once()
        except httpx.HTTPStatusError as exc:
            detail = exc.response.text.strip()[:200]
            try:
                _decode(exc.response.content)
            except PrometheusAPIError as api:
                detail = api.message
            raise PrometheusAPIError(f"{endpoint}: HTTP {exc.response.status_code}: {detail}") from exc
        except httpx.TransportError as exc:
            raise PrometheusAPIError(
                f"cannot reach Prometheus at {self.url}: {exc or type(exc).__name__}"
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises

    def series(self, matches: Sequence[str], start_ms: int, end_ms: int) -> list[dict[str, str]]:
        """Label sets of the series any of ``matches`` selects within ``[start, end]``."""
        params = {"match[]": list(matches), "start": start_ms / 1000, "end": end_ms / 1000}
        return parse_series(self._get("/api/v1/series", params))

    def metadata(self) -> dict[str, tuple[str, str]]:
        """Metric family -> (kind, unit), from the targets' metadata."""
        return parse_metadata(self._get("/api/v1/metadata", {}, post=False))

    def query_range(self, query: str, chunk: Chunk) -> list[MatrixSeries]:
        """The matrix ``query`` gives on the chunk's grid."""
        params = {
            "query": query,
            "start": chunk.start_ms / 1000,
            "end": chunk.end_ms / 1000,
            "step": chunk.step_ms / 1000,
        }
        return parse_matrix(self._get("/api/v1/query_range", params))


# ---------------------------------------------------------------------------- backfill


@dataclass(slots=True)
class BackfillResult:
    """What a backfill read and stored."""

    start_ms: int
    end_ms: int
    step_ms: int
    series: int = 0
    points: int = 0
    skipped: int = 0  # points at or before their series' newest stored point
    requests: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "step_ms": self.step_ms,
            "series": self.series,
            "points": self.points,
            "skipped_points": self.skipped,
            "requests": self.requests,
            "kinds": dict(self.kinds),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class _Group:
    """The series of one metric name (among the ones one selector matched)."""

    name: str
    query: str
    size: int


def _key(labels: Mapping[str, str]) -> tuple[str, LabelItems]:
    return labels.get("__name__", ""), tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


def _newest_stored(store: Store, ids: Iterable[int]) -> dict[int, int]:
    """Each series' newest stored point (µs), for those that have points."""
    wanted = [int(i) for i in ids]
    if not wanted:
        return {}
    table = store.arrow(
        "SELECT series_id, epoch_us(max(ts)) AS newest FROM points "
        "WHERE series_id IN (SELECT unnest(?::UBIGINT[])) GROUP BY series_id",
        [wanted],
    )
    return dict(
        zip(
            table.column("series_id").to_pylist(),
            table.column("newest").to_pylist(),
            strict=True,
        )
    )


def backfill(
    store: Store,
    client: PrometheusClient,
    *,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    matches: Sequence[str] = (),
    window_points: int = MAX_POINTS_PER_SERIES,
    samples_per_request: int = SAMPLES_PER_REQUEST,
    on_plan: Callable[[int], None] | None = None,
    on_request: Callable[[int], None] | None = None,
    on_window: Callable[[Chunk], None] | None = None,
) -> BackfillResult:
    """Copy what ``matches`` select (default: everything) over ``[start, end]`` into ``store``.

    History is read in time windows of ``window_points`` grid points (oldest first) and,
    within a window, one metric name at a time, each answer committed as one Arrow batch.
    ``on_plan(total_requests)`` is called once the plan is known, ``on_request(points)``
    after each committed answer, ``on_window(chunk)`` after each window (a caller that
    replays the loop in event time moves its clock there).
    """
    started = time.perf_counter()
    result = BackfillResult(start_ms, end_ms, step_ms)
    selectors = list(matches) or [ALL_SERIES]
    try:
        metadata = client.metadata()
    except PrometheusAPIError:
        metadata = {}  # an older server or a proxy without the endpoint: kinds stay unknown
    groups: list[_Group] = []
    owner: dict[tuple[str, LabelItems], int] = {}  # a series two selectors share is read by the first
    for match in selectors:
        fresh = sorted({_key(labels) for labels in client.series([match], start_ms, end_ms)} - owner.keys())
        names = sorted({name for name, _ in fresh if name})
        index = {name: len(groups) + i for i, name in enumerate(names)}
        sizes = dict.fromkeys(names, 0)
        for name, items in fresh:
            if name:
                owner[(name, items)] = index[name]
                sizes[name] += 1
                kind = kind_of(name, metadata)[0]
                result.kinds[kind] = result.kinds.get(kind, 0) + 1
        groups += [_Group(name, query_for(name, match), sizes[name]) for name in names]
    result.series = len(owner)
    newest = _newest_stored(store, (series_id(*k) for k in owner))
    windows = plan_chunks(start_ms, end_ms, step_ms, max_points=window_points)
    plans = [(g, max(1, min(window_points, samples_per_request // max(g.size, 1)))) for g in groups]
    total = sum(
        len(plan_chunks(w.start_ms, w.end_ms, step_ms, max_points=p)) for w in windows for _, p in plans
    )
    if on_plan is not None:
        on_plan(total)
    for window in windows:
        for gi, (group, points) in enumerate(plans):
            for chunk in plan_chunks(window.start_ms, window.end_ms, step_ms, max_points=points):
                answer = client.query_range(group.query, chunk)
                result.requests += 1
                mine = [s for s in answer if owner.setdefault(_key(s.labels), gi) == gi]
                stored = _store_answer(store, mine, metadata, newest, result)
                if on_request is not None:
                    on_request(stored)
        if on_window is not None:
            on_window(window)
    result.seconds = time.perf_counter() - started
    return result


def _store_answer(
    store: Store,
    answer: list[MatrixSeries],
    metadata: Mapping[str, tuple[str, str]],
    newest: Mapping[int, int],
    result: BackfillResult,
) -> int:
    """Commit one query_range answer as one batch; return the points stored."""
    builder = PointsBuilder(ts_unit="us")
    for s in answer:
        name, items = _key(s.labels)
        if not name:
            continue
        ts_us = s.timestamps_ms * 1000
        values = s.values
        cutoff = newest.get(series_id(name, items))
        if cutoff is not None:
            keep = ts_us > cutoff
            result.skipped += int(len(ts_us) - keep.sum())
            ts_us, values = ts_us[keep], values[keep]
        if len(ts_us):
            kind, unit = kind_of(name, metadata)
            builder.add(name, items, ts_us, values, kind=kind, unit=unit)
    if not builder.samples:
        return 0
    series, points = builder.build()
    store.write(WriteBatch(source=SOURCE, series=series, points=points, samples=builder.samples))
    result.points += builder.samples
    return builder.samples
