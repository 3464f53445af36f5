"""Pull Prometheus/OpenMetrics endpoints on an interval and write what they expose.

Config is a subset of Prometheus' ``prometheus.yml`` so a job copies across::

    scrape_interval: 15s            # or global: {scrape_interval: 15s}
    scrape_configs:
      - job_name: node
        scrape_interval: 5s         # optional, per job
        metrics_path: /metrics      # optional
        scheme: http                # optional
        static_configs:
          - targets: ["localhost:9100"]
            labels: {env: prod}

Like Prometheus, every series gets the target's ``job`` and ``instance`` labels (a clash
with an exposed label renames the exposed one to ``exported_<name>`` unless
``honor_labels: true``), and every scrape writes the synthetic series ``up`` (1 reached
and parsed, 0 otherwise), ``scrape_duration_seconds`` and ``scrape_samples_scraped``,
stamped with the scrape start time, which is also the time of samples without one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import pyarrow as pa
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from core.batch import WriteBatch, digest_of
from core.errors import ConfigError, OpsloopError
from core.series import series_id
from core.store import Store
from core.telemetry import SCRAPES
from ingest.exposition import ACCEPT, ExpositionParser, is_openmetrics
from ingest.points import points_table, series_table

log = logging.getLogger(__name__)

SOURCE = "scrape"
_DURATION_RE = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")


def parse_duration(text: str | float) -> float:
    """Parse a Prometheus duration (``15s``, ``1m30s``, ``500ms``, ``2h``) into seconds.

    >>> parse_duration("1m30s"), parse_duration("500ms"), parse_duration(10)
    (90.0, 0.5, 10.0)
    """
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        m = _DURATION_RE.fullmatch(text.strip())
        if not text.strip() or m is None or not any(m.groups()):
            raise ValueError(f"invalid duration {text!r} (use e.g. 15s, 1m, 500ms)")
        h, mi, s, ms = (int(g or 0) for g in m.groups())
        seconds = h * 3600 + mi * 60 + s + ms / 1000
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StaticConfig(_Strict):
    targets: list[str] = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)


class JobConfig(_Strict):
    job_name: str = Field(min_length=1)
    scrape_interval: Duration | None = None
    scrape_timeout: Duration | None = None
    metrics_path: str = "/metrics"
    scheme: str = "http"
    honor_labels: bool = False
    static_configs: list[StaticConfig] = Field(default_factory=list)

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value not in ("http", "https"):
            raise ValueError("scheme must be http or https")
        return value


class GlobalConfig(_Strict):
    scrape_interval: Duration | None = None
    scrape_timeout: Duration | None = None


class ScrapeConfig(_Strict):
    """The whole scrape config file."""

    scrape_interval: Duration | None = None
    scrape_timeout: Duration | None = None
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    scrape_configs: list[JobConfig] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to pull, with the labels every series it exposes gets."""

    job: str
    url: str
    labels: tuple[tuple[str, str], ...]
    interval_s: float
    timeout_s: float
    honor_labels: bool = False

    @property
    def instance(self) -> str:
        """The ``instance`` label of the target."""
        return dict(self.labels)["instance"]


def load_config(path: str | Path, default_interval_s: float = 15.0) -> list[Target]:
    """Read a scrape config file and expand it into targets; ``ConfigError`` names the field."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read scrape config {str(path)!r}: {exc}") from exc
    return targets_of(data, default_interval_s)


def targets_of(data: Any, default_interval_s: float = 15.0) -> list[Target]:
    """Validate a parsed config and expand it into targets."""
    try:
        config = ScrapeConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"scrape config: {where}: {first['msg']}") from exc
    interval = config.scrape_interval or config.global_.scrape_interval or default_interval_s
    timeout = config.scrape_timeout or config.global_.scrape_timeout
    targets: list[Target] = []
    names: set[str] = set()
    for i, job in enumerate(config.scrape_configs):
        if job.job_name in names:
            raise ConfigError(f"scrape config: scrape_configs.{i}.job_name: duplicate job {job.job_name!r}")
        names.add(job.job_name)
        job_interval = job.scrape_interval or interval
        job_timeout = min(job.scrape_timeout or timeout or 10.0, job_interval)
        path = job.metrics_path if job.metrics_path.startswith("/") else "/" + job.metrics_path
        for static in job.static_configs:
            for host in static.targets:
                if not host or "/" in host:
                    raise ConfigError(
                        f"scrape config: job {job.job_name!r}: target {host!r} must be host:port"
                    )
                labels = dict(static.labels)
                labels.update(job=job.job_name, instance=host)
                targets.append(
                    Target(
                        job=job.job_name,
                        url=f"{job.scheme}://{host}{path}",
                        labels=tuple(sorted(labels.items())),
                        interval_s=job_interval,
                        timeout_s=job_timeout,
                        honor_labels=job.honor_labels,
                    )
                )
    return targets


@dataclass(slots=True)
class ScrapeResult:
    """What one scrape of one target did."""

    target: Target
    up: bool
    samples: int
    duration_s: float
    error: str = ""
    at: float = 0.0


@dataclass
class Scraper:
    """Scrapes targets and writes each scrape as one batch to the store."""

    store: Store
    max_body_bytes: int = 64 * 1024 * 1024
    #: How a scrape's batches are committed (default ``store.write_many``; ``serve`` uses its queue).
    write: Callable[[Sequence[WriteBatch]], object] | None = None
    _parsers: dict[str, ExpositionParser] = field(default_factory=dict)

    async def scrape(self, client: httpx.AsyncClient, target: Target) -> ScrapeResult:
        """Pull one target, parse it, write samples plus ``up`` and friends; never raises."""
        start = time.time()
        start_us = int(start * 1_000_000)
        t0 = time.perf_counter()
        batch: WriteBatch | None = None
        error = ""
        try:
            body, content_type = await self._fetch(client, target)
            parser = self._parsers.get(target.url)
            if parser is None:
                parser = self._parsers[target.url] = ExpositionParser(self.store.known_series)
            batch = await asyncio.to_thread(
                parser.parse,
                body,
                openmetrics=True if is_openmetrics(content_type) else None,
                default_ts_us=start_us,
                extra_labels=dict(target.labels),
                conflict="keep" if target.honor_labels else "rename",
                source=SOURCE,
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except OpsloopError as exc:
            error = exc.message
        duration = time.perf_counter() - t0
        samples = batch.samples if batch is not None else 0
        health = _health_batch(target, start_us, batch is not None, duration, samples, self.store)
        batches = [batch, health] if batch is not None else [health]
        try:
            await asyncio.to_thread(self.write or self.store.write_many, batches)
        except OpsloopError as exc:
            log.error("cannot store scrape of %s: %s", target.url, exc.message)
            error = error or f"store: {exc.message}"
        up = batch is not None and not error
        SCRAPES.labels("success" if up else "failure").inc()
        if error:
            log.warning("scrape of %s failed: %s", target.url, error)
        return ScrapeResult(target, up, samples, duration, error, start)

    async def _fetch(self, client: httpx.AsyncClient, target: Target) -> tuple[bytes, str]:
        headers = {"Accept": ACCEPT, "X-Prometheus-Scrape-Timeout-Seconds": f"{target.timeout_s:g}"}
        async with client.stream("GET", target.url, headers=headers, timeout=target.timeout_s) as resp:
            if resp.status_code != 200:
                raise httpx.HTTPStatusError(
                    f"server returned HTTP status {resp.status_code}", request=resp.request, response=resp
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise httpx.DecodingError(f"body exceeds {self.max_body_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks), resp.headers.get("content-type", "")

    async def scrape_once(self, targets: Sequence[Target]) -> list[ScrapeResult]:
        """Scrape every target once, concurrently."""
        async with httpx.AsyncClient(follow_redirects=True) as client:
            return list(await asyncio.gather(*(self.scrape(client, t) for t in targets)))

    async def run(
        self,
        targets: Sequence[Target],
        on_result: Callable[[ScrapeResult], Awaitable[None] | None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Scrape each target on its own interval until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        async with httpx.AsyncClient(follow_redirects=True) as client:

            async def loop(target: Target, offset: float) -> None:
                # spread targets over the interval, as Prometheus does, so they do not all fire at once
                next_at = time.monotonic() + offset
                while not stop.is_set():
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(stop.wait(), delay)
                            return
                        except TimeoutError:
                            pass
                    result = await self.scrape(client, target)
                    if on_result is not None:
                        maybe = on_result(result)
                        if maybe is not None:
                            await maybe
                    next_at += target.interval_s
                    while next_at < time.monotonic():  # a slow scrape skips missed slots
                        next_at += target.interval_s

            n = max(len(targets), 1)
            tasks = [
                asyncio.create_task(loop(t, t.interval_s * (i / n) * 0.5)) for i, t in enumerate(targets)
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()


def _health_batch(
    target: Target, ts_us: int, up: bool, duration_s: float, samples: int, store: Store
) -> WriteBatch:
    """The synthetic per-scrape series: ``up``, ``scrape_duration_seconds``, ``scrape_samples_scraped``."""
    rows = [
        ("up", 1.0 if up else 0.0, "gauge", ""),
        ("scrape_duration_seconds", duration_s, "gauge", "seconds"),
        ("scrape_samples_scraped", float(samples), "gauge", ""),
    ]
    known = store.known_series
    new: list[tuple[int, tuple[str, tuple[tuple[str, str], ...], str, str]]] = []
    ids: list[int] = []
    for name, _, kind, unit in rows:
        sid = series_id(name, target.labels)
        ids.append(sid)
        if sid not in known:
            new.append((sid, (name, target.labels, kind, unit)))
    values = np.asarray([r[1] for r in rows], dtype=np.float64)
    points: pa.Table = points_table(
        np.asarray(ids, dtype=np.uint64), np.full(len(ids), ts_us, dtype=np.int64), values
    )
    return WriteBatch(
        source=SOURCE,
        digest=digest_of(SOURCE, target.url.encode(), str(ts_us).encode()),
        series=series_table(new),
        points=points,
        samples=len(ids),
    )
