"""Fault-injection simulator: a microservice estate's telemetry with known incidents.

``simulate(out, seed=...)`` writes a scenario directory (``topology.yaml``,
``metrics/*.jsonl``, ``logs/*.jsonl``, ``events/*.jsonl``, ``truth.json``; the format is
in ``docs/scenario-format.md``) that replay streams through opsloop and a benchmark
scores opsloop's incidents against.

The model, vectorised over services x samples (no loop per point):

- an estate of ``services`` services: 1-2 consumer-facing edge services, mid-tier
  services, leaf data stores, caches, a bus and egress proxies for external APIs, with a
  random call DAG (callers always before callees, so the topological order is the index);
- edge traffic follows a 24 h sinusoid times a slow AR(1) "weather" factor; a callee's
  traffic is the calls its callers make (``rps = (I - C^T)^-1 own``);
- counts are Poisson, errors binomial at a small base rate; p99 latency is the service's
  own time plus the weighted p99 of its callees (``lat = (I - W)^-1 own``), with lognormal
  jitter; CPU follows load, memory is flat-ish; tiny one-sample blips happen anywhere;
- faults change the root's own error fraction, latency, CPU or memory; error and latency
  excess propagates to callers through the same transfer matrices (attenuated per hop),
  CPU and memory stay local.

Every fault lies in the second half of the run (the first half is clean history).
``visible_at`` is the first sample time at which the expected value of any metric of an
affected service moves ``VISIBLE_SIGMAS`` noise standard deviations away from its expected
value without the fault; ``affected`` is the root plus every service for which that happens
at some point of the fault. Counters are compared per interval (what replay turns into
rates): Poisson noise, ``sigma = sqrt(max(mean, 1))``.

What else is written: INFO logs from ~5 templates per service (plus rare background
WARN/ERROR lines); during a fault, kind-specific WARN/ERROR lines on the root and "upstream
error" / "deadline exceeded" lines on affected callers. A ``bad_deploy`` starts with a CDEvents
``service.deployed`` event, a ``config_change`` with a ``dev.opsloop.config.changed`` event
whose ``data.id`` is the change id opsloop derives (``ingest.cloudevents.change_id``), so the
truth's ``change_id`` matches however the event is read. 3-4 harmless deploys are red
herrings, one of them shortly before a fault on a service the fault then hurts. Every
deploy and a memory leak's OOM kill restart the process: its counters reset to zero (and
``startTimeUnixNano`` moves), as real ones do.

Families (``family=Family(...)``, opt-in; the default ``Family()`` writes exactly the classic
scenario): the metric naming (the classic OTel counters and p99 gauge, OTel semantic-convention
``http.server.request.duration`` histograms by status class, or Prometheus
``http_requests_total{code}`` counters, ``_bucket`` histograms and a CPU-seconds counter),
with or without ``topology.yaml``, a traffic multiple, a noise multiple, a fault-magnitude
multiple (barely visible to severe), the clean history before the first fault, benign
traffic surges, counter resets without a deploy, timestamp jitter, and an external API
outage among the fault kinds. ``draw_family(index)`` draws one family from its index (the
benchmark's tune and report splits are disjoint index ranges). Random draws a family adds
come from a second stream of the seed, so the classic draws are never disturbed.

The same seed and arguments give byte-identical files.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.signal import lfilter

from core.errors import ConfigError
from ingest.cloudevents import change_id as cloudevent_change_id

__all__ = [
    "ALL_FAULT_KINDS",
    "DEFAULT_START",
    "FAULT_KINDS",
    "MAX_SERVICES",
    "METRIC_NAMES",
    "NAMINGS",
    "VISIBLE_SIGMAS",
    "Family",
    "FamilyDraw",
    "Fault",
    "RedHerring",
    "Service",
    "SimulationSummary",
    "draw_family",
    "simulate",
]

FAULT_KINDS = (
    "bad_deploy",
    "cpu_saturation",
    "memory_leak",
    "slow_dependency",
    "error_burst",
    "config_change",
)
#: the classic kinds plus those only families inject (the classic draw order stays as it was)
ALL_FAULT_KINDS = (*FAULT_KINDS, "external_outage")
#: metric naming styles: classic OTel counters + p99 gauge, OTel histograms, Prometheus
NAMINGS = ("otel", "otel-histogram", "prometheus")
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
VISIBLE_SIGMAS = 4.0
#: OTel name -> the series name opsloop stores (``ingest.otlp.prometheus_name``).
METRIC_NAMES = {
    "http.server.request.count": "http_server_request_count_total",
    "http.server.request.duration.p99": "http_server_request_duration_p99_seconds",
    "process.cpu.utilization": "process_cpu_utilization",
    "process.memory.usage": "process_memory_usage_bytes",
}
SERIES_PER_SERVICE = 5  # 2xx and 5xx counters, p99, CPU, memory
MIN_SERVICES = 5
MAX_SERVICES = 40
DEPLOY_TYPE = "dev.cdevents.service.deployed.0.3.0"
CONFIG_TYPE = "dev.opsloop.config.changed"
_MIN_GAP_S = 90 * 60
_LEAD_S = 20 * 60  # first fault no sooner than this after the half-way point
_TAIL_S = 20 * 60  # last fault over this long before the end
_MIB = 1024 * 1024
_INFO, _WARN, _ERROR = (9, "INFO"), (13, "WARN"), (17, "ERROR")

# --------------------------------------------------------------------------- the estate
# (name, owner, tier). Leaves also carry their kind; edges are tier 1 and consumer facing.
_EDGES = (  # at most two are drawn: MAX_SERVICES = 2 + mids + leaves
    ("storefront-web", "team-web"),
    ("mobile-bff", "team-mobile"),
    ("public-api", "team-api"),
)
_MIDS = (
    ("checkout", "team-checkout", 1),
    ("orders", "team-checkout", 1),
    ("payments", "team-payments", 1),
    ("identity", "team-identity", 1),
    ("cart", "team-checkout", 2),
    ("catalog", "team-discovery", 2),
    ("search", "team-discovery", 2),
    ("pricing", "team-discovery", 2),
    ("inventory", "team-logistics", 2),
    ("accounts", "team-identity", 2),
    ("shipping", "team-logistics", 3),
    ("fulfilment", "team-logistics", 3),
    ("fraud-scoring", "team-payments", 3),
    ("promotions", "team-growth", 3),
    ("invoicing", "team-checkout", 3),
    ("notifications", "team-growth", 3),
    ("recommendations", "team-discovery", 4),
    ("reviews", "team-discovery", 4),
    ("loyalty", "team-growth", 4),
    ("wishlist", "team-growth", 4),
    ("media-resizer", "team-web", 4),
)
#: only estates above 35 services draw these (so smaller estates are drawn as before)
_MORE_MIDS = (
    ("returns", "team-logistics", 3),
    ("gift-cards", "team-payments", 3),
    ("subscriptions", "team-growth", 3),
    ("audit-log", "team-platform", 4),
    ("feature-flags", "team-platform", 2),
)
_CLASSIC_MAX = 35
_LEAVES = (
    ("orders-db", "team-platform", 1, "database", "postgres"),
    ("accounts-db", "team-platform", 1, "database", "postgres"),
    ("catalog-db", "team-platform", 2, "database", "mysql"),
    ("ledger-db", "team-payments", 1, "database", "postgres"),
    ("session-cache", "team-platform", 2, "cache", "redis"),
    ("product-cache", "team-platform", 2, "cache", "redis"),
    ("search-index", "team-data", 2, "database", "elasticsearch"),
    ("event-bus", "team-data", 2, "queue", "kafka"),
    ("psp-gateway", "team-integrations", 1, "external", "envoy"),
    ("tax-api-proxy", "team-integrations", 3, "external", "envoy"),
    ("geo-lookup-proxy", "team-integrations", 3, "external", "envoy"),
    ("email-relay", "team-integrations", 4, "external", "postfix"),
)
_RUNTIMES = ("jvm", "go", "python", "node")
# own p99 seconds (low, high), CPU utilisation at mean load, memory MiB, per kind
_LATENCY = {
    "gateway": (0.008, 0.025),
    "service": (0.006, 0.05),
    "database": (0.004, 0.03),
    "cache": (0.0008, 0.003),
    "queue": (0.003, 0.012),
    "external": (0.08, 0.3),
}
_CPU = {
    "gateway": (0.2, 0.4),
    "service": (0.12, 0.45),
    "database": (0.2, 0.5),
    "cache": (0.05, 0.2),
    "queue": (0.1, 0.3),
    "external": (0.05, 0.15),
}
_MEMORY_MIB = {
    "gateway": (384, 1536),
    "service": (256, 3072),
    "database": (4096, 16384),
    "cache": (1024, 6144),
    "queue": (2048, 8192),
    "external": (128, 512),
}


@dataclass(frozen=True)
class Service:
    """One simulated service, as written to ``topology.yaml``."""

    name: str
    tier: int
    owner: str
    consumer_facing: bool
    depends_on: tuple[str, ...]
    kind: str  # gateway, service, database, cache, queue, external
    runtime: str


@dataclass(frozen=True)
class Fault:
    """One injected fault, as written to ``truth.json`` (times in Unix seconds)."""

    id: str
    kind: str
    root_cause: str
    start: int
    end: int
    visible_at: int
    affected: tuple[str, ...]
    change_id: str | None
    description: str

    def to_json(self) -> dict[str, Any]:
        """The truth-file entry."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "root_cause": self.root_cause,
            "start": _rfc3339(self.start),
            "end": _rfc3339(self.end),
            "visible_at": _rfc3339(self.visible_at),
            "affected": list(self.affected),
        }
        if self.change_id is not None:
            out["change_id"] = self.change_id
        out["description"] = self.description
        return out


@dataclass(frozen=True)
class RedHerring:
    """A harmless deploy: a change near nothing, or near a fault it did not cause."""

    service: str
    ts: int
    change_id: str

    def to_json(self) -> dict[str, Any]:
        """The truth-file entry."""
        return {
            "kind": "deploy",
            "service": self.service,
            "ts": _rfc3339(self.ts),
            "change_id": self.change_id,
        }


@dataclass(frozen=True)
class SimulationSummary:
    """What ``simulate`` wrote."""

    out: Path
    seed: int
    services: int
    series: int
    points: int
    faults: tuple[Fault, ...]
    red_herrings: tuple[RedHerring, ...]
    files: tuple[Path, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The ``opsloop simulate --json`` contract."""
        return {
            "out": str(self.out),
            "seed": self.seed,
            "services": self.services,
            "series": self.series,
            "points": self.points,
            "faults": len(self.faults),
            "red_herrings": len(self.red_herrings),
        }


@dataclass(frozen=True)
class Family:
    """Opt-in variations of the simulated estate; the defaults write the classic scenario.

    ``naming`` is one of :data:`NAMINGS`; ``traffic``, ``noise`` and ``magnitude`` multiply
    the edge traffic (classic 60-300 requests/s), the noise of every signal and every fault's
    effect sizes; ``history_s`` is the clean history before the first fault (``None``: the
    first half of the run); ``surges`` benign edge-traffic surges (x1.5-3 for 10-30 min, away
    from faults), ``resets`` counter resets without a deploy (a crash-looping sidecar, an
    exporter restart), ``jitter_s`` the largest shift of a sample's timestamp; ``kinds``
    the fault kinds to cycle through.
    """

    naming: str = "otel"
    topology: bool = True
    traffic: float = 1.0
    noise: float = 1.0
    magnitude: float = 1.0
    history_s: float | None = None
    surges: int = 0
    resets: int = 0
    jitter_s: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS

    def __post_init__(self) -> None:
        if self.naming not in NAMINGS:
            raise ConfigError(f"naming must be one of {', '.join(NAMINGS)}")
        if min(self.traffic, self.noise, self.magnitude) <= 0:
            raise ConfigError("traffic, noise and magnitude must be positive")
        if self.surges < 0 or self.resets < 0 or self.jitter_s < 0:
            raise ConfigError("surges, resets and jitter_s must not be negative")
        if not self.kinds or any(k not in ALL_FAULT_KINDS for k in self.kinds):
            raise ConfigError(f"kinds must be among {', '.join(ALL_FAULT_KINDS)}")

    @property
    def classic(self) -> bool:
        """True for the classic scenario (no variation at all)."""
        return self == Family()

    def to_json(self) -> dict[str, Any]:
        """The truth file's ``family`` entry."""
        return {
            "naming": self.naming, "topology": self.topology, "traffic": self.traffic,
            "noise": self.noise, "magnitude": self.magnitude, "history_s": self.history_s,
            "surges": self.surges, "resets": self.resets, "jitter_s": self.jitter_s,
            "kinds": list(self.kinds),
        }  # fmt: skip


@dataclass(frozen=True)
class FamilyDraw:
    """One randomised family member: the family and the ``simulate`` arguments that go with it."""

    index: int
    family: Family
    services: int
    interval_s: int
    days: float
    faults: int

    def to_json(self) -> dict[str, Any]:
        """What the benchmark reports per scenario."""
        return {
            "index": self.index, "services": self.services, "interval_s": self.interval_s,
            "days": round(self.days, 3), "faults": self.faults, **self.family.to_json(),
        }  # fmt: skip


def draw_family(index: int, max_points: int = 600_000) -> FamilyDraw:
    """Draw family member ``index``: every variation at random, from the index alone.

    Ranges: scrape interval 10-60 s, naming any of :data:`NAMINGS`, 5-40 services, a topology
    file or none (one in three), edge traffic 0.1-1000 requests/s (log-uniform), noise x0.5-2,
    fault magnitudes x0.3 (barely visible) to x1.5 (severe), 1 h to 7 d of clean history,
    0-3 benign surges, 0-3 counter resets, timestamp jitter up to a quarter interval, 3-6
    faults of all :data:`ALL_FAULT_KINDS`. ``max_points`` bounds the run (series x samples,
    so a benchmark stays affordable): a draw over it is shortened by cutting history, then
    by coarsening the interval (kept within 10-60 s), then by removing services.

    >>> a, b = draw_family(3), draw_family(3)
    >>> a == b, 5 <= a.services <= 40, 10 <= a.interval_s <= 60
    (True, True, True)
    """
    rng = np.random.default_rng(np.random.SeedSequence([index, 0xFA]))
    u = rng.uniform
    naming = NAMINGS[int(rng.integers(len(NAMINGS)))]
    services = int(rng.integers(5, 41))
    interval = int(rng.choice([10, 15, 20, 30, 60]))
    history = float(np.exp(u(np.log(3600.0), np.log(7 * 86_400.0))))
    faults = int(rng.integers(3, 7))
    family = Family(
        naming=naming,
        topology=bool(rng.random() >= 1 / 3),
        traffic=float(10 ** u(-2.8, 0.5)),
        noise=float(np.exp(u(np.log(0.5), np.log(2.0)))),
        magnitude=float(np.exp(u(np.log(0.3), np.log(1.5)))),
        history_s=history,
        surges=int(rng.integers(0, 4)),
        resets=int(rng.integers(0, 4)),
        jitter_s=float(u(0.0, 0.25)),  # in intervals: scaled below
        kinds=ALL_FAULT_KINDS,
    )
    per_service = _series_per_service(naming)
    span = faults * (_MIN_GAP_S + 45 * 60) + _TAIL_S  # room for the faults after the history

    def points(hist: float, step: int, m: int) -> int:
        return int(m * per_service * (hist + span) / step)

    while points(history, interval, services) > max_points and history > 3600.0:
        history = max(3600.0, history / 1.5)
    while points(history, interval, services) > max_points and interval < 60:
        interval = {10: 15, 15: 20, 20: 30, 30: 60}[interval]
    while points(history, interval, services) > max_points and services > MIN_SERVICES:
        services -= 1
    family = replace(family, history_s=round(history), jitter_s=round(family.jitter_s * interval, 1))
    return FamilyDraw(index, family, services, interval, (history + span) / 86_400, faults)


def _series_per_service(naming: str) -> int:
    """Series one service writes in each naming (histograms: 7 buckets, sum and count)."""
    return {"otel": SERIES_PER_SERVICE, "otel-histogram": 2 * 9 + 2, "prometheus": 2 + 9 + 2}[naming]


def simulate(
    out: str | Path,
    *,
    seed: int = 1,
    days: float = 2.0,
    interval_s: int = 60,
    faults: int = 6,
    services: int = 12,
    start: datetime = DEFAULT_START,
    force: bool = False,
    family: Family | None = None,
) -> SimulationSummary:
    """Write a scenario directory with ``faults`` injected faults; return what was written.

    Parameters
    ----------
    out
        The scenario directory; created. An existing non-empty one is refused unless
        ``force``, which replaces the files and folders the simulator writes.
    seed
        Everything random derives from it: same seed and arguments, same bytes.
    days
        Length of the run (fractions allowed); faults are all in its second half.
    interval_s
        Seconds between samples (10 to 300).
    faults
        How many faults; kinds cycle through ``FAULT_KINDS`` in a seeded order.
    services
        Size of the estate (5 to 40; 10 or more is realistic).
    family
        Opt-in variations (:class:`Family`); ``None`` or ``Family()`` is the classic scenario.

    Example
    -------
    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = simulate(tmp, seed=3, days=0.5, faults=1, services=10)
    ...     truth = json.loads((Path(tmp) / "truth.json").read_text())
    >>> summary.series, summary.points
    (50, 36000)
    >>> fault = truth["faults"][0]
    >>> fault["root_cause"] in fault["affected"] and fault["start"] <= fault["visible_at"] < fault["end"]
    True
    """
    if not MIN_SERVICES <= services <= MAX_SERVICES:
        raise ConfigError(f"services must be from {MIN_SERVICES} to {MAX_SERVICES}")
    if not 10 <= interval_s <= 300:
        raise ConfigError("interval must be from 10 to 300 seconds")
    if faults < 0:
        raise ConfigError("faults must be 0 or more")
    n = round(days * 86_400 / interval_s)
    if n < 12:
        raise ConfigError("the run must hold at least 12 samples")
    fam = family if family is not None else Family()
    root = Path(out)
    _prepare(root, force)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    frng = np.random.default_rng(np.random.SeedSequence([seed, 0xFA11]))  # the family's own draws
    t0 = int(start.timestamp())
    times = t0 + interval_s * np.arange(n, dtype=np.int64)
    estate = _Estate.build(rng, services)
    if fam.traffic != 1.0:
        estate.own_rps = estate.own_rps * fam.traffic
    if fam.noise != 1.0:
        estate.jitter, estate.cpu_noise = estate.jitter * fam.noise, estate.cpu_noise * fam.noise
        estate.memory_noise = estate.memory_noise * fam.noise
    base = _baseline(rng, estate, times, interval_s)
    first_at = None if fam.history_s is None else t0 + int(fam.history_s)
    plans = _plan_faults(rng, estate, times, interval_s, faults, fam.kinds, first_at)
    if not fam.classic:
        plans = [_family_plan(frng, estate, p, fam.magnitude) for p in plans]
    surges: list[tuple[int, int, int, float]] = []
    if fam.surges:
        base, surges = _surge(frng, estate, base, plans, times, fam.surges)
    faulted = _apply_faults(estate, base, plans, times)
    z = _zscores(estate, base, faulted, interval_s)
    found, fault_changes = _truth_faults(rng, estate, plans, times, z)
    herring_changes = _red_herrings(rng, estate, plans, found, t0, t0 + n * interval_s)
    herrings = [RedHerring(estate.services[h.service].name, h.ts, h.change_id) for h in herring_changes]
    # processes restart on every deploy and on a memory leak's OOM kill: their counters reset
    restarts = [(c.service, c.ts) for c in fault_changes + herring_changes if c.kind == "deploy"]
    restarts += [(p.root, p.end) for p in plans if p.kind == "memory_leak"]
    resets = [
        (int(frng.integers(len(estate.services))), int(frng.integers(t0 + 600, t0 + n * interval_s)))
        for _ in range(fam.resets)
    ]
    observed = _observe(rng, estate, faulted, times, interval_s, restarts + resets)
    m = len(estate.services)
    stamps = np.broadcast_to(times * 1_000_000_000, (m, n))
    if fam.jitter_s:
        stamps = stamps + np.rint(frng.uniform(-fam.jitter_s, fam.jitter_s, (m, n)) * 1e9).astype(np.int64)

    files = [
        _write_topology(root, estate) if fam.topology else None,
        _write_metrics(root, estate, observed, stamps)
        if fam.naming == "otel"
        else _write_named_metrics(root, estate, observed, stamps, fam.naming, interval_s, restarts + resets),
        _write_logs(rng, root, estate, faulted, plans, found, z, times, interval_s),
        _write_events(root, estate, fault_changes + herring_changes),
        _write_slos(root, estate, base) if fam.naming == "otel" else None,
    ]
    per_service = _series_per_service(fam.naming)
    summary = SimulationSummary(
        out=root,
        seed=seed,
        services=services,
        series=services * per_service,
        points=services * per_service * n,
        faults=tuple(found),
        red_herrings=tuple(herrings),
        files=tuple(f for f in files if f is not None),
    )
    truth = {
        "seed": seed,
        "interval_s": interval_s,
        "start": _rfc3339(t0),
        "end": _rfc3339(t0 + n * interval_s),
        "services": list(estate.names),
        "faults": [f.to_json() for f in found],
        "red_herrings": [h.to_json() for h in herrings],
    }
    if not fam.classic:  # the classic truth file stays as it was
        names = estate.names
        truth["family"] = fam.to_json()
        truth["benign"] = [
            {
                "kind": "surge",
                "service": names[i],
                "start": _rfc3339(a),
                "end": _rfc3339(b),
                "factor": round(f, 2),
            }
            for i, a, b, f in surges
        ] + [{"kind": "counter_reset", "service": names[i], "ts": _rfc3339(ts)} for i, ts in sorted(resets)]
    (root / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return summary


# =========================================================================== estate


@dataclass
class _Estate:
    """Services in topological order (callers before callees) and the per-edge weights."""

    services: list[Service]
    calls: np.ndarray  # [caller, callee] calls per caller request
    error_share: np.ndarray  # [caller, callee] part of the callee's excess error fraction seen
    latency_share: np.ndarray  # [caller, callee] part of the callee's p99 added to the caller's
    own_rps: np.ndarray  # requests/s from outside (edges) or background jobs, at mean load
    own_latency: np.ndarray  # seconds
    cpu: np.ndarray  # utilisation at mean load
    memory: np.ndarray  # bytes
    error_rate: np.ndarray  # base error fraction
    jitter: np.ndarray  # lognormal sigma of p99
    cpu_noise: np.ndarray
    memory_noise: np.ndarray  # fraction of memory
    diurnal_amplitude: np.ndarray
    diurnal_peak_h: np.ndarray
    versions: list[list[int]]
    log_templates: list[tuple[str, ...]]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def callers_of(self, index: int) -> list[int]:
        return [int(c) for c in np.nonzero(self.calls[:, index])[0]]

    @classmethod
    def build(cls, rng: np.random.Generator, m: int) -> _Estate:
        n_edge = 1 if m < 12 else int(rng.integers(1, 3))
        n_leaf = max(3, min(len(_LEAVES), round(m * 0.3)))
        n_mid = m - n_edge - n_leaf
        pool = _MIDS if m <= _CLASSIC_MAX else _MIDS + _MORE_MIDS
        if m > _CLASSIC_MAX:  # the largest estates: two edges, every leaf, the extra mid tier
            n_edge, n_leaf = 2, len(_LEAVES)
            n_mid = m - n_edge - n_leaf
        if n_mid > len(pool):  # a big estate: fill the leaves, then a second edge
            n_leaf = min(len(_LEAVES), n_leaf + n_mid - len(pool))
            n_mid = len(pool)
            n_edge = m - n_mid - n_leaf
        edges = [_EDGES[i] for i in sorted(rng.choice(len(_EDGES), n_edge, replace=False))]
        mids = [pool[i] for i in sorted(rng.choice(len(pool), n_mid, replace=False))]
        # always one database and one cache among the leaves
        must = [int(rng.choice([0, 1, 2, 3])), int(rng.choice([4, 5]))]
        others = [i for i in range(len(_LEAVES)) if i not in must]
        leaves = [_LEAVES[i] for i in sorted(must + list(rng.choice(others, n_leaf - 2, replace=False)))]
        rng.shuffle(mids)  # the call order among mid-tier services
        kinds = ["gateway"] * n_edge + ["service"] * n_mid + [leaf[3] for leaf in leaves]
        calls = np.zeros((m, m))
        mid_ix = list(range(n_edge, n_edge + n_mid))
        leaf_ix = list(range(n_edge + n_mid, m))
        for e in range(n_edge):
            k = min(len(mid_ix), int(rng.integers(2, 5)))
            for j in rng.choice(mid_ix[: max(k, len(mid_ix) // 2)], k, replace=False):
                calls[e, j] = 1.0
        for i in mid_ix:
            later = [j for j in mid_ix if j > i]
            n_calls = int(rng.integers(0, 3)) if later else 0
            for j in rng.choice(later, min(n_calls, len(later)), replace=False) if n_calls else []:
                calls[i, j] = 1.0
            for j in rng.choice(leaf_ix, int(rng.integers(1, 3)), replace=False):
                calls[i, j] = 1.0
        for j in range(n_edge, m):  # everyone below the edge is called by someone
            if not calls[:, j].any():
                callers = [c for c in range(n_edge + n_mid) if c < j]
                calls[int(rng.choice(callers)), j] = 1.0
        wired = calls > 0
        share = np.where(wired, rng.uniform(0.3, 1.0, (m, m)), 0.0)
        repeat = np.array([2.5 if k in ("database", "cache") else 1.2 for k in kinds])
        calls = share * rng.uniform(1.0, 1.0 + (repeat - 1.0)[None, :] + 1e-9, (m, m)) * wired
        error_share = share * rng.uniform(0.6, 0.9, (m, m)) * wired
        latency_share = np.minimum(1.0, share + 0.3) * rng.uniform(0.7, 0.95, (m, m)) * wired
        own_rps = np.zeros(m)
        own_rps[:n_edge] = rng.uniform(60.0, 300.0, n_edge)
        own_rps[n_edge:] = rng.uniform(0.2, 2.0, m - n_edge)  # health checks, batch jobs
        own_latency = np.array([rng.uniform(*_LATENCY[k]) for k in kinds])
        cpu = np.array([rng.uniform(*_CPU[k]) for k in kinds])
        memory = np.array([float(int(rng.uniform(*_MEMORY_MIB[k])) * _MIB) for k in kinds])
        names_owners: list[tuple[str, str, int, str]] = (
            [(name, owner, 1, "envoy") for name, owner in edges]
            + [
                (name, owner, tier, _RUNTIMES[int(rng.integers(len(_RUNTIMES)))])
                for name, owner, tier in mids
            ]
            + [(name, owner, tier, runtime) for name, owner, tier, _, runtime in leaves]
        )
        services = [
            Service(
                name=name,
                tier=tier,
                owner=owner,
                consumer_facing=i < n_edge,
                depends_on=tuple(names_owners[j][0] for j in np.nonzero(wired[i])[0]),
                kind=kinds[i],
                runtime=runtime,
            )
            for i, (name, owner, tier, runtime) in enumerate(names_owners)
        ]
        versions = [
            [int(rng.integers(1, 5)), int(rng.integers(0, 40)), int(rng.integers(0, 10))] for _ in range(m)
        ]
        templates = [_info_templates(rng, s, services) for s in services]
        return cls(
            services=services,
            calls=calls,
            error_share=error_share,
            latency_share=latency_share,
            own_rps=own_rps,
            own_latency=own_latency,
            cpu=cpu,
            memory=memory,
            error_rate=rng.uniform(0.001, 0.005, m),
            jitter=rng.uniform(0.06, 0.12, m),
            cpu_noise=rng.uniform(0.01, 0.02, m),
            memory_noise=rng.uniform(0.003, 0.008, m),
            diurnal_amplitude=rng.uniform(0.4, 0.6, m),
            diurnal_peak_h=rng.uniform(13.0, 17.0, m),
            versions=versions,
            log_templates=templates,
        )


# =========================================================================== signals


@dataclass
class _Signals:
    """Expected (noise-free) values, services x samples."""

    rps: np.ndarray
    error_fraction: np.ndarray
    latency: np.ndarray
    cpu: np.ndarray
    memory: np.ndarray
    own_latency: np.ndarray  # before propagation (what faults scale)


def _baseline(rng: np.random.Generator, estate: _Estate, times: np.ndarray, interval_s: int) -> _Signals:
    m, n = len(estate.services), times.size
    hours = ((times - times[0]) / 3600.0)[None, :]
    phase = 2 * np.pi * (hours - (estate.diurnal_peak_h[:, None] - 6.0)) / 24.0
    diurnal = 1.0 + estate.diurnal_amplitude[:, None] * np.sin(phase)
    # slow "weather": AR(1) with a ~50-sample memory, stationary sigma ~5%
    weather = np.exp(lfilter([0.01], [1.0, -0.98], rng.normal(0.0, 1.0, (m, n)), axis=1))
    own = estate.own_rps[:, None] * diurnal * weather
    rps = np.linalg.solve(np.eye(m) - estate.calls.T, own)
    load = rps / rps.mean(axis=1, keepdims=True)
    own_latency = estate.own_latency[:, None] * (1.0 + 0.3 * (load - 1.0))
    latency = _propagate(estate.latency_share, own_latency)
    cpu = np.clip(estate.cpu[:, None] * (0.45 + 0.55 * load), 0.01, 0.95)
    memory = estate.memory[:, None] * (1.0 + 0.03 * (load - 1.0))
    error = np.broadcast_to(estate.error_rate[:, None], (m, n)).copy()
    return _Signals(rps, error, latency, cpu, memory, own_latency)


def _propagate(weights: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Each service's own contribution plus its callees' totals, weighted per edge (DAG)."""
    return np.asarray(np.linalg.solve(np.eye(weights.shape[0]) - weights, own))


@dataclass(frozen=True)
class _Plan:
    """A fault before its truth is known: kind, root, window and effect sizes."""

    index: int
    kind: str
    root: int
    start: int
    end: int
    ramp_s: float
    error: float  # added error fraction at full severity
    latency: float  # added multiple of the root's p99
    latency_floor: float  # ... or at least this many seconds (queueing, timeouts, pool waits)
    cpu: float  # target utilisation (cpu_saturation) or added utilisation (memory_leak)
    memory: float  # added multiple of the root's memory
    description: str
    scale: float = 1.0  # a family's magnitude: multiplies every effect


_DURATION_MIN = {"error_burst": (5, 10), "memory_leak": (40, 100)}


def _plan_faults(
    rng: np.random.Generator,
    estate: _Estate,
    times: np.ndarray,
    interval_s: int,
    count: int,
    kind_cycle: Sequence[str] = FAULT_KINDS,
    first_at: int | None = None,
) -> list[_Plan]:
    if count == 0:
        return []
    order = list(rng.permutation(len(kind_cycle)))
    kinds = [kind_cycle[order[i % len(order)]] for i in range(count)]
    durations = [60 * int(rng.integers(*_DURATION_MIN.get(k, (10, 40)), endpoint=True)) for k in kinds]
    t0, t_end = int(times[0]), int(times[-1]) + interval_s
    first = t0 + (t_end - t0) // 2 + _LEAD_S if first_at is None else first_at
    last = t_end - _TAIL_S
    slack = last - first - sum(durations) - _MIN_GAP_S * (count - 1)
    if slack < 0:
        hours = (last - first) / 3600
        raise ConfigError(
            f"{count} faults need {(sum(durations) + _MIN_GAP_S * (count - 1)) / 3600:.1f} h "
            f"(90 min apart) but {'the second half of the run' if first_at is None else 'the run after its history'}"
            f" has {hours:.1f} h: use more --days or fewer --faults"
        )
    gaps = np.floor(rng.dirichlet(np.ones(count + 1)) * slack).astype(np.int64)
    m = len(estate.services)
    roots = rng.permutation(m)[:count] if count <= m else rng.integers(0, m, count)
    plans = []
    at = first
    for i, kind in enumerate(kinds):
        at += int(gaps[i])
        begin, end = at, at + durations[i]
        at = end + _MIN_GAP_S
        plans.append(_effect(rng, i, kind, int(roots[i]), begin, end, estate.services[int(roots[i])].name))
    return plans


def _effect(rng: np.random.Generator, i: int, kind: str, root: int, start: int, end: int, name: str) -> _Plan:
    """Effect sizes of one fault: realistic, and (by construction) visible on the root."""
    u = rng.uniform
    if kind == "bad_deploy":
        err, lat = u(0.04, 0.2), u(0.3, 1.0)
        what = f"deploy of {name} ships a regression: {err:.0%} of requests fail"
        return _Plan(i, kind, root, start, end, u(120, 300), err, lat, 0.0, 0.0, 0.0, what)
    if kind == "cpu_saturation":
        target = u(0.9, 0.98)
        what = f"{name} saturates its CPU ({target:.0%}); requests queue"
        return _Plan(
            i,
            kind,
            root,
            start,
            end,
            u(60, 240),
            u(0.005, 0.03),
            u(1.5, 4.0),
            u(0.05, 0.25),
            target,
            0.0,
            what,
        )
    if kind == "memory_leak":
        growth = u(1.2, 2.5)
        what = f"{name} leaks memory (+{growth:.0%} before the OOM kill)"
        return _Plan(
            i,
            kind,
            root,
            start,
            end,
            0.0,
            u(0.02, 0.06),
            u(0.6, 1.5),
            u(0.05, 0.2),
            u(0.15, 0.3),
            growth,
            what,
        )
    if kind == "slow_dependency":
        lat, floor = u(3.0, 8.0), u(0.2, 1.0)
        what = f"{name} slows down (p99 +{floor * 1000:.0f} ms or {lat:.1f}x, whichever is more)"
        return _Plan(i, kind, root, start, end, u(30, 180), u(0.002, 0.01), lat, floor, 0.0, 0.0, what)
    if kind == "error_burst":
        err = u(0.15, 0.5)
        what = f"{name} fails {err:.0%} of requests for a few minutes"
        return _Plan(i, kind, root, start, end, 0.0, err, 0.0, 0.0, 0.0, 0.0, what)
    if kind == "external_outage":
        err, floor = u(0.2, 0.8), u(1.0, 5.0)
        what = f"the external API behind {name} fails: {err:.0%} of calls error or time out"
        return _Plan(i, kind, root, start, end, 0.0, err, u(2.0, 6.0), floor, 0.0, 0.0, what)
    err, lat = u(0.02, 0.08), u(0.4, 1.5)
    what = f"a configuration change to {name} shrinks its connection pool"
    return _Plan(i, kind, root, start, end, 0.0, err, lat, u(0.05, 0.3), 0.0, 0.0, what)


def _severity(plan: _Plan, times: np.ndarray) -> dict[str, np.ndarray]:
    """Per effect, 0..1 over the samples: ramps, memory growth and its late consequences."""
    inside = (times >= plan.start) & (times < plan.end)
    if plan.kind == "memory_leak":
        growth = np.clip((times - plan.start) / (plan.end - plan.start), 0.0, 1.0) * inside
        return {
            "memory": growth,
            "cpu": growth**2,
            "latency": growth**3,
            "error": (growth > 0.92).astype(float),
        }
    if plan.ramp_s > 0:
        level = np.clip((times - plan.start) / plan.ramp_s, 0.0, 1.0) * inside
    else:
        level = inside.astype(float)
    return {"memory": level * 0, "cpu": level, "latency": level, "error": level}


def _apply_faults(estate: _Estate, base: _Signals, plans: Sequence[_Plan], times: np.ndarray) -> _Signals:
    """The expected signals with every fault applied (faults never overlap)."""
    m, n = base.rps.shape
    own_error = np.zeros((m, n))
    own_latency = np.zeros((m, n))
    cpu = base.cpu.copy()
    memory = base.memory.copy()
    for plan in plans:  # one loop per fault, vectorised over time
        sev = _severity(plan, times)
        r, k = plan.root, plan.scale
        own_error[r] += min(plan.error * k, 0.9) * sev["error"] if k != 1.0 else plan.error * sev["error"]
        added = np.maximum(plan.latency * base.latency[r], plan.latency_floor) if plan.latency else 0.0
        own_latency[r] += added * sev["latency"] * k if k != 1.0 else added * sev["latency"]
        if plan.kind == "cpu_saturation":
            cpu[r] += (plan.cpu - base.cpu[r]).clip(0.0) * sev["cpu"] * (min(k, 1.0) if k != 1.0 else 1.0)
        elif plan.kind == "memory_leak":
            cpu[r] = np.minimum(cpu[r] + plan.cpu * k * sev["cpu"], 0.99)
            memory[r] += plan.memory * k * base.memory[r] * sev["memory"]
    return _Signals(
        rps=base.rps,
        error_fraction=np.clip(base.error_fraction + _propagate(estate.error_share, own_error), 0.0, 0.95),
        latency=base.latency + _propagate(estate.latency_share, own_latency),
        cpu=cpu,
        memory=memory,
        own_latency=base.own_latency,
    )


def _family_plan(rng: np.random.Generator, estate: _Estate, plan: _Plan, magnitude: float) -> _Plan:
    """A family's plan: its magnitude, and an external outage rooted at an external API's proxy."""
    plan = replace(plan, scale=magnitude)
    if plan.kind != "external_outage":
        return plan
    external = [i for i, s in enumerate(estate.services) if s.kind == "external"]
    if not external:  # an estate without external APIs: the dependency that slows is a leaf
        leaves = [i for i, s in enumerate(estate.services) if not s.depends_on]
        return replace(plan, kind="slow_dependency", root=int(rng.choice(leaves)))
    root = int(rng.choice(external))
    description = plan.description.replace(estate.services[plan.root].name, estate.services[root].name)
    return replace(plan, root=root, description=description)


def _surge(
    rng: np.random.Generator,
    estate: _Estate,
    base: _Signals,
    plans: Sequence[_Plan],
    times: np.ndarray,
    count: int,
) -> tuple[_Signals, list[tuple[int, int, int, float]]]:
    """Benign surges: an edge's own traffic x1.5-3 for 10-30 min, at least 45 min from any fault.

    Callees see the extra calls and load-driven signals (CPU, latency) follow, as in a sale or a
    marketing push: loud, but nothing is broken.
    """
    m = len(estate.services)
    edges = [i for i, s in enumerate(estate.services) if s.consumer_facing]
    t0, t_end = int(times[0]), int(times[-1])
    picked: list[tuple[int, int, int, float]] = []
    for _ in range(100):
        if len(picked) >= count or t_end - t0 < 4 * 3600:
            break
        start = int(rng.integers(t0 + 3600, t_end - 3600))
        end = start + 60 * int(rng.integers(10, 31))
        clear = all(end + 45 * 60 < p.start or start > p.end + 45 * 60 for p in plans)
        if clear and all(end + 1800 < a or start > b + 1800 for _, a, b, _ in picked):
            picked.append((int(rng.choice(edges)), start, end, float(rng.uniform(1.5, 3.0))))
    if not picked:
        return base, []
    factor = np.ones((m, times.size))
    for i, a, b, f in picked:  # a quick ramp up and down, 3 min each side
        up = np.clip((times - a) / 180.0, 0.0, 1.0) * np.clip((b - times) / 180.0, 0.0, 1.0)
        factor[i] *= 1.0 + (f - 1.0) * up
    own = (np.eye(m) - estate.calls.T) @ base.rps
    mean = base.rps.mean(axis=1, keepdims=True)
    rps = np.linalg.solve(np.eye(m) - estate.calls.T, own * factor)
    load = rps / mean
    own_latency = estate.own_latency[:, None] * (1.0 + 0.3 * (load - 1.0))
    signals = _Signals(
        rps=rps,
        error_fraction=base.error_fraction,
        latency=_propagate(estate.latency_share, own_latency),
        cpu=np.clip(estate.cpu[:, None] * (0.45 + 0.55 * load), 0.01, 0.95),
        memory=estate.memory[:, None] * (1.0 + 0.03 * (load - 1.0)),
        own_latency=own_latency,
    )
    return signals, sorted(picked, key=lambda p: p[1])


def _zscores(estate: _Estate, base: _Signals, faulted: _Signals, interval_s: int) -> np.ndarray:
    """Services x samples: the largest shift of any expected metric, in its noise standard deviations."""
    requests = base.rps * interval_s
    ok_clean, ok_fault = requests * (1 - base.error_fraction), requests * (1 - faulted.error_fraction)
    err_clean, err_fault = requests * base.error_fraction, requests * faulted.error_fraction
    z = np.abs(ok_fault - ok_clean) / np.sqrt(np.maximum(ok_clean, 1.0))
    z = np.maximum(z, np.abs(err_fault - err_clean) / np.sqrt(np.maximum(err_clean, 1.0)))
    z = np.maximum(z, np.abs(faulted.latency - base.latency) / (estate.jitter[:, None] * base.latency))
    z = np.maximum(z, np.abs(faulted.cpu - base.cpu) / estate.cpu_noise[:, None])
    z = np.maximum(z, np.abs(faulted.memory - base.memory) / (estate.memory_noise[:, None] * base.memory))
    return np.asarray(z)


@dataclass(frozen=True)
class _Change:
    """A deploy or config CloudEvent to write."""

    ts: int
    service: int
    kind: str  # deploy or config
    source: str
    event_id: str
    change_id: str
    description: str


def _event_id(rng: np.random.Generator) -> str:
    raw = rng.bytes(16).hex()
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:]}"


_DEPLOY_SOURCE = "/argocd/prod-eu-west-1"
_CONFIG_SOURCE = "/consul/prod-eu-west-1"


def _change(rng: np.random.Generator, ts: int, service: int, kind: str, description: str) -> _Change:
    source = _DEPLOY_SOURCE if kind == "deploy" else _CONFIG_SOURCE
    event_id = _event_id(rng)
    return _Change(ts, service, kind, source, event_id, cloudevent_change_id(source, event_id), description)


def _truth_faults(
    rng: np.random.Generator, estate: _Estate, plans: Sequence[_Plan], times: np.ndarray, z: np.ndarray
) -> tuple[list[Fault], list[_Change]]:
    found: list[Fault] = []
    changes: list[_Change] = []
    for plan in plans:
        window = np.nonzero((times >= plan.start) & (times < plan.end))[0]
        peak = z[:, window].max(axis=1) if window.size else np.zeros(z.shape[0])
        others = [s for s in range(z.shape[0]) if s != plan.root and peak[s] >= VISIBLE_SIGMAS]
        affected = [plan.root, *sorted(others, reverse=True)]  # callees before their callers
        hits = window[z[affected][:, window].max(axis=0) >= VISIBLE_SIGMAS] if window.size else window
        visible = int(times[hits[0]]) if hits.size else int(times[window[0]]) if window.size else plan.start
        change: _Change | None = None
        if plan.kind == "bad_deploy":
            change = _change(rng, plan.start, plan.root, "deploy", "")
        elif plan.kind == "config_change":
            change = _change(rng, plan.start, plan.root, "config", "connection pool max_size 64 -> 8")
        if change is not None:
            changes.append(change)
        found.append(
            Fault(
                id=f"f{plan.index + 1}",
                kind=plan.kind,
                root_cause=estate.services[plan.root].name,
                start=plan.start,
                end=plan.end,
                visible_at=visible,
                affected=tuple(estate.services[s].name for s in affected),
                change_id=change.change_id if change else None,
                description=plan.description,
            )
        )
    return found, changes


def _red_herrings(
    rng: np.random.Generator,
    estate: _Estate,
    plans: Sequence[_Plan],
    faults: Sequence[Fault],
    t0: int,
    t_end: int,
) -> list[_Change]:
    """3-4 harmless deploys: one shortly before a fault, on a service it then hurts if there is
    one (the classic wrong suspect), the rest at quiet times."""
    count = int(rng.integers(3, 5))
    m = len(estate.services)
    picked: list[_Change] = []
    if plans:
        i = int(rng.integers(len(plans)))
        plan, fault = plans[i], faults[i]
        index = {name: j for j, name in enumerate(estate.names)}
        suspects = [index[name] for name in fault.affected[1:]] or [s for s in range(m) if s != plan.root]
        service = int(rng.choice(suspects))
        ts = plan.start - int(rng.integers(5 * 60, 25 * 60))
        picked.append(_change(rng, ts, service, "deploy", ""))
    for _ in range(200):
        if len(picked) >= count:
            break
        ts = int(rng.integers(t0 + 3600, t_end - 3600))
        service = int(rng.integers(m))
        near_fault = any(p.start - 45 * 60 <= ts <= p.end + 45 * 60 for p in plans)
        near_other = any(abs(h.ts - ts) < 30 * 60 for h in picked)
        if not near_fault and not near_other:
            picked.append(_change(rng, ts, service, "deploy", ""))
    return sorted(picked, key=lambda h: h.ts)


def _observe(
    rng: np.random.Generator,
    estate: _Estate,
    sig: _Signals,
    times: np.ndarray,
    interval_s: int,
    restarts: Sequence[tuple[int, int]],
) -> dict[str, np.ndarray]:
    """Noisy samples: Poisson counts, binomial errors, lognormal p99, Gaussian CPU/memory, blips."""
    m, n = sig.rps.shape
    total = rng.poisson(sig.rps * interval_s)
    errors = rng.binomial(total, sig.error_fraction)
    latency = sig.latency * np.exp(rng.normal(0.0, 1.0, (m, n)) * estate.jitter[:, None])
    cpu = sig.cpu + rng.normal(0.0, 1.0, (m, n)) * estate.cpu_noise[:, None]
    memory = sig.memory * (1.0 + rng.normal(0.0, 1.0, (m, n)) * estate.memory_noise[:, None])
    # tiny harmless blips, ~2 per service-day: a GC pause (p99) or a cron job (CPU) for one sample
    blips = rng.random((m, n)) < 2.0 * interval_s / 86_400
    which = rng.random((m, n)) < 0.5
    latency = np.where(blips & which, latency * rng.uniform(1.25, 1.5, (m, n)), latency)
    cpu = np.where(blips & ~which, cpu + rng.uniform(0.05, 0.1, (m, n)), cpu)
    # counters: running totals since the process started (an hour or more before the run)
    ok_total = rng.integers(10_000, 5_000_000, (m, 1)) + np.cumsum(total - errors, axis=1)
    err_total = rng.integers(10, 5_000, (m, 1)) + np.cumsum(errors, axis=1)
    started = np.full((m, n), times[0] - 3600 - rng.integers(0, 86_400, (m, 1)))
    for service, at in sorted(restarts):  # one loop per restart, vectorised over time
        after = times >= at
        if after.any():
            first = int(np.argmax(after))
            for totals in (ok_total, err_total):
                totals[service, first:] -= totals[service, first - 1] if first else 0
            started[service, first:] = at
    return {
        "ok": ok_total,
        "err": err_total,
        "started": started,
        "latency": latency,
        "cpu": np.clip(cpu, 0.005, 1.0),
        "memory": np.rint(memory).astype(np.int64),
        "requests": total,  # per interval (the namings with histograms count from these)
        "errors": errors,
    }


# =========================================================================== helpers


def _write_slos(root: Path, estate: _Estate, base: _Signals) -> Path:
    """OpenSLO documents for each consumer-facing service: availability and p99 latency.

    Availability: non-5xx requests over all requests (the ``:rate`` gauges replay makes of
    the request counter) over a rolling 7 days, with a budget of twice the service's
    normal error fraction (rounded up to 0.1 %): what a team that knows its service would set.
    Latency: a one-minute slice is good when p99 stays under twice the service's normal p99
    (the 99.9th percentile of its fault-free p99), 99 % of slices over the same window.
    """
    docs: list[dict[str, Any]] = []
    rate = METRIC_NAMES["http.server.request.count"].removesuffix("_total") + ":rate"
    for i, svc in enumerate(estate.services):
        if not svc.consumer_facing:
            continue
        threshold = float(f"{np.percentile(base.latency[i], 99.9) * 2.0:.2g}")
        budget = math.ceil(2.0 * float(base.error_fraction[i].mean()) * 1000.0) / 1000.0
        objective = round(1.0 - max(budget, 0.001), 3)
        docs.append({
            "apiVersion": "openslo/v1", "kind": "SLO",
            "metadata": {"name": f"{svc.name}-availability", "displayName": f"{svc.name} availability"},
            "spec": {
                "service": svc.name, "budgetingMethod": "Occurrences",
                "timeWindow": [{"duration": "7d", "isRolling": True}],
                "objectives": [{"displayName": f"{objective:.1%} non-5xx", "target": objective}],
                "indicator": {"metadata": {"name": f"{svc.name}-non-5xx"}, "spec": {"ratioMetric": {
                    "counter": False,
                    "good": {"metricSource": {"type": "Prometheus", "spec": {
                        "query": f'sum({rate}{{service="{svc.name}",status_class!="5xx"}})'}}},
                    "total": {"metricSource": {"type": "Prometheus", "spec": {
                        "query": f'sum({rate}{{service="{svc.name}"}})'}}},
                }}},
            },
        })  # fmt: skip
        p99 = METRIC_NAMES["http.server.request.duration.p99"]
        docs.append({
            "apiVersion": "openslo/v1", "kind": "SLO",
            "metadata": {"name": f"{svc.name}-latency", "displayName": f"{svc.name} p99 latency"},
            "spec": {
                "service": svc.name, "budgetingMethod": "Timeslices",
                "timeWindow": [{"duration": "7d", "isRolling": True}],
                "objectives": [{"displayName": f"p99 <= {threshold}s", "op": "lte", "value": threshold,
                                "target": 0.99, "timeSliceTarget": 1.0, "timeSliceWindow": "1m"}],
                "indicator": {"metadata": {"name": f"{svc.name}-p99"}, "spec": {"thresholdMetric": {
                    "metricSource": {"type": "Prometheus", "spec": {"query": f'{p99}{{service="{svc.name}"}}'}},
                }}},
            },
        })  # fmt: skip
    path = root / "slos" / "slos.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def _rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prepare(root: Path, force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} exists and is not a directory")
    if root.exists() and any(root.iterdir()):
        if not force:
            raise ConfigError(f"{root} is not empty (use --force to replace a scenario)")
        for sub in ("metrics", "logs", "events", "slos"):
            shutil.rmtree(root / sub, ignore_errors=True)
        for name in ("topology.yaml", "truth.json"):
            (root / name).unlink(missing_ok=True)
    for sub in ("metrics", "logs", "events", "slos"):
        (root / sub).mkdir(parents=True, exist_ok=True)


# =========================================================================== logs
# Templates take {ms} (a fast duration), {slow} (a slow one), {n}, {m}, {k} (1-3), {pct} and
# {id}; service-specific parts (routes, tables, peers) are baked in when the estate is built.

_VENDORS = {"psp-gateway": "payments-psp", "tax-api-proxy": "taxrates", "geo-lookup-proxy": "geocoder",
            "email-relay": "mailer"}  # fmt: skip


def _info_templates(
    rng: np.random.Generator, service: Service, services: Sequence[Service]
) -> tuple[str, ...]:
    name = service.name
    res = name.split("-")[0]
    peer = service.depends_on[0] if service.depends_on else res
    table = str(rng.choice(["orders", "line_items", "accounts", "products", "sessions", "payments"]))
    if service.kind == "database":
        return (
            f"duration: {{ms}}.{{k}} ms  statement: SELECT * FROM {table} WHERE id = $1",
            "checkpoint complete: wrote {n} buffers ({pct}.0%); sync time={ms} ms",
            f"connection authorized: user=app database={res}",
            f'automatic vacuum of table "{res}.public.{table}": index scans: 1, tuples removed: {{n}}',
            "connection received: host=10.0.{pct}.{m} port=5432",
        )
    if service.kind == "cache":
        return (
            "{n} clients connected ({k} replicas), {pct}% of maxmemory used",
            "Background saving started by pid {n}",
            "DB saved on disk in {ms} ms",
            "evicted {n} keys (maxmemory-policy allkeys-lru)",
            f"slowlog: GET {res}:{{id}} took {{ms}} microseconds",
        )
    if service.kind == "queue":
        return (
            "partition rebalance for group consumers-{k} finished in {ms}ms",
            "committed offsets for {m} partitions of topic orders.events",
            "log segment rolled for topic orders.events-{m} at offset {n}",
            "ISR for partition payments.events-{k} unchanged ({k} replicas)",
            "fetch session cache hit ratio {pct}%",
        )
    if service.kind == "external":
        vendor = _VENDORS.get(name, res)
        return (
            f"POST https://api.{vendor}.example/v2/{res} status=200 latency_ms={{ms}}",
            f"token refreshed for api.{vendor}.example (expires in {{n}}s)",
            f"rate limit remaining={{n}} for api.{vendor}.example",
            f"GET https://api.{vendor}.example/v2/status status=200 latency_ms={{ms}}",
            "connection pool: active={m} idle={k}",
        )
    return (
        f"GET /api/v1/{res}/{{id}} -> 200 ({{ms}} ms)",
        f"POST /api/v1/{res} -> 201 ({{ms}} ms) request_id={{id}}",
        f"call to {peer} ok in {{ms}}ms",
        "connection pool stats: active={m} idle={k} max=64",
        f"processed {{n}} messages from {res}.events (lag {{m}})",
    )


_BACKGROUND = (
    (_WARN, "slow request: {slow}ms (threshold 1000ms) request_id={id}"),
    (_ERROR, "request failed with status 500 (request_id={id})"),
    (_WARN, "retrying after transient error (attempt {k}/3)"),
)

_FAULT_LOGS: dict[str, tuple[tuple[tuple[int, str], str], ...]] = {
    "bad_deploy": (
        (_ERROR, 'unhandled exception in RequestHandler.handle: NullPointerException: cannot read "items" of null '
                 "(request_id={id})"),
        (_ERROR, "POST /api/v1/{res} -> 500 ({ms} ms): internal error"),
        (_WARN, 'feature flag "new-pricing-path" missing from config, falling back to default'),
    ),
    "cpu_saturation": (
        (_WARN, "request queue depth {n} exceeds threshold 200"),
        (_WARN, "worker pool saturated: 64 of 64 busy, {n} tasks waiting"),
        (_ERROR, "request timed out after {slow}ms waiting in queue"),
    ),
    "memory_leak": (
        (_WARN, "GC pause {slow}ms (heap {pct}% used)"),
        (_WARN, "heap usage above threshold: live set grew by {n} MB in 10 min"),
        (_ERROR, "out of memory: failed to allocate {n} KB"),
    ),
    "slow_dependency": (
        (_WARN, "slow operation on {res}: {slow}ms"),
        (_WARN, "lock wait exceeded {slow}ms on {res}"),
        (_ERROR, "operation timed out after 5000ms"),
    ),
    "error_burst": (
        (_ERROR, "connection reset by peer while writing response (request_id={id})"),
        (_ERROR, "failed to acquire lock {res}-{m}: deadlock detected"),
        (_ERROR, "request failed with 503: too many open files"),
    ),
    "external_outage": (
        (_ERROR, "POST https://api.{res}.example/v2/charge failed: 503 Service Unavailable"),
        (_ERROR, "upstream request timeout after {slow}ms (cluster: {res}_upstream)"),
        (_WARN, "circuit breaker for {res}_upstream opened after {m} consecutive failures"),
    ),
    "config_change": (
        (_ERROR, "connection pool exhausted (max=8, waiting={n})"),
        (_WARN, "configuration reloaded: pool.max_size=8 (was 64)"),
        (_ERROR, "timeout acquiring connection after {slow}ms"),
    ),
}  # fmt: skip
_LATENCY_KINDS = ("cpu_saturation", "memory_leak", "slow_dependency")


def _caller_templates(kind: str, callee: str) -> tuple[tuple[tuple[int, str], str], ...]:
    errors = (
        (
            _ERROR,
            f"upstream error calling {callee}: 503 Service Unavailable (attempt {{k}}/3, request_id={{id}})",
        ),
        (_ERROR, f"request failed: dependency {callee} returned 500"),
    )
    slow = (
        (_WARN, f"call to {callee} took {{slow}}ms (deadline 2000ms)"),
        (_ERROR, f"deadline exceeded calling {callee} after 2000ms"),
    )
    return slow + errors[:1] if kind in _LATENCY_KINDS else errors + slow[:1]


@dataclass
class _LogRecords:
    """Records as parallel lists: sample index, service, severity, body template, template name."""

    sample: list[np.ndarray] = field(default_factory=list)
    service: list[np.ndarray] = field(default_factory=list)
    templates: list[list[tuple[tuple[int, str], str]]] = field(default_factory=list)
    choice: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        rng: np.random.Generator,
        counts: np.ndarray,
        service: int,
        templates: Sequence[tuple[tuple[int, str], str]],
    ) -> None:
        """``counts[k]`` records at sample ``k`` for ``service``, templates drawn at random."""
        sample = np.repeat(np.arange(counts.size), counts)
        self.sample.append(sample)
        self.service.append(np.full(sample.size, service))
        self.templates.append(list(templates))
        self.choice.append(rng.integers(0, len(templates), sample.size))


def _write_logs(
    rng: np.random.Generator,
    root: Path,
    estate: _Estate,
    sig: _Signals,
    plans: Sequence[_Plan],
    faults: Sequence[Fault],
    z: np.ndarray,
    times: np.ndarray,
    interval_s: int,
) -> Path:
    m, n = sig.rps.shape
    load = sig.rps / sig.rps.mean(axis=1, keepdims=True)
    records = _LogRecords()
    info_counts = rng.poisson(1.5 + load)
    background = rng.poisson(0.03, (m, n))
    for s in range(m):  # per service: its templates, all samples at once
        records.add(rng, info_counts[s], s, [(_INFO, t) for t in estate.log_templates[s]])
        records.add(rng, background[s], s, _BACKGROUND)
    index = {name: i for i, name in enumerate(estate.names)}
    for plan, fault in zip(plans, faults, strict=True):
        sev = _severity(plan, times)
        level = np.maximum.reduce([sev["error"], sev["latency"], sev["cpu"], 0.3 * sev["memory"]])
        res = estate.services[plan.root].name
        counts = np.where(level > 0, rng.poisson(1.0 + 8.0 * level), 0)
        templates = [(sv, t.replace("{res}", res)) for sv, t in _FAULT_LOGS[plan.kind]]
        records.add(rng, counts, plan.root, templates)
        inside = (times >= plan.start) & (times < plan.end)
        for name in fault.affected[1:]:
            c = index[name]
            deps = [index[d] for d in estate.services[c].depends_on]
            callee = max(deps, key=lambda d: float(z[d, inside].sum()))
            rate = np.where(inside & (z[c] >= 2.0), np.minimum(5.0, z[c] / 4.0), 0.0)
            records.add(rng, rng.poisson(rate), c, _caller_templates(plan.kind, estate.services[callee].name))
    return _emit_logs(rng, root, estate, records, times, interval_s)


_json_string = json.encoder.encode_basestring_ascii


def _emit_logs(
    rng: np.random.Generator,
    root: Path,
    estate: _Estate,
    records: _LogRecords,
    times: np.ndarray,
    interval_s: int,
) -> Path:
    sample = np.concatenate(records.sample)
    service = np.concatenate(records.service)
    group = np.concatenate([np.full(c.size, i) for i, c in enumerate(records.choice)])
    choice = np.concatenate(records.choice)
    total = sample.size
    offset_ns = rng.integers(0, interval_s * 1_000_000_000, total)
    ms = np.rint(rng.lognormal(3.0, 0.6, total)).astype(np.int64)
    slow = rng.integers(1200, 6000, total)
    big = rng.integers(1, 5000, total)
    small = rng.integers(1, 64, total)
    k = rng.integers(1, 4, total)
    pct = rng.integers(1, 100, total)
    ids = rng.integers(0, 2**32, total)
    trace = rng.integers(0, 2**63, (total, 3))
    order = np.lexsort((offset_ns, service, sample))
    ts = (times[sample] * 1_000_000_000 + offset_ns)[order].tolist()
    sample_l, service_l = sample[order].tolist(), service[order].tolist()
    group_l, choice_l = group[order].tolist(), choice[order].tolist()
    ms_l, slow_l, big_l, small_l = (
        ms[order].tolist(),
        slow[order].tolist(),
        big[order].tolist(),
        small[order].tolist(),
    )
    k_l, pct_l, ids_l, trace_l = (
        k[order].tolist(),
        pct[order].tolist(),
        ids[order].tolist(),
        trace[order].tolist(),
    )
    path = root / "logs" / "app.jsonl"
    resources = [
        '{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"'
        + s.name
        + '"}}]},"scopeLogs":[{"scope":{"name":"app"},"logRecords":['
        for s in estate.services
    ]
    with path.open("w", encoding="utf-8") as fh:
        line: list[str] = []
        block: list[str] = []
        current_sample, current_service = -1, -1

        def close_block() -> None:
            if block:
                line.append(resources[current_service] + ",".join(block) + "]}]}")
                block.clear()

        for i in range(total):
            if sample_l[i] != current_sample:
                close_block()
                if line:
                    fh.write('{"resourceLogs":[' + ",".join(line) + "]}\n")
                    line.clear()
                current_sample, current_service = sample_l[i], service_l[i]
            elif service_l[i] != current_service:
                close_block()
                current_service = service_l[i]
            (number, text), template = records.templates[group_l[i]][choice_l[i]]
            body = template.format(
                ms=ms_l[i],
                slow=slow_l[i],
                n=big_l[i],
                m=small_l[i],
                k=k_l[i],
                pct=pct_l[i],
                id=f"{ids_l[i]:08x}",
            )
            block.append(
                f'{{"timeUnixNano":"{ts[i]}","observedTimeUnixNano":"{ts[i] + 250_000_000}",'
                f'"severityNumber":{number},"severityText":"{text}","body":{{"stringValue":{_json_string(body)}}},'
                f'"traceId":"{trace_l[i][0]:016x}{trace_l[i][1]:016x}","spanId":"{trace_l[i][2]:016x}"}}'
            )
        close_block()
        if line:
            fh.write('{"resourceLogs":[' + ",".join(line) + "]}\n")
    return path


# =========================================================================== other files


def _write_topology(root: Path, estate: _Estate) -> Path:
    lines = [
        "# Service topology: tier 1 = most critical .. 4; depends_on = the services this one calls.",
        "services:",
    ]
    for s in estate.services:
        attributes = {
            "kind": s.kind,
            "runtime": s.runtime,
            "slack": f"#{s.owner.removeprefix('team-')}-oncall",
        }
        lines += [
            f"  - name: {s.name}",
            f"    tier: {s.tier}",
            f"    owner: {s.owner}",
            f"    consumer_facing: {'true' if s.consumer_facing else 'false'}",
            f"    depends_on: [{', '.join(s.depends_on)}]",
            "    attributes: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in attributes.items()) + "}",
        ]
    path = root / "topology.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_metrics(root: Path, estate: _Estate, observed: dict[str, np.ndarray], stamps: np.ndarray) -> Path:
    """One ``ExportMetricsServiceRequest`` per sample time, one resource per service.

    ``stamps`` holds each service's sample times in nanoseconds (services x samples).
    """

    def status(cls: str) -> str:
        return '[{"key":"status_class","value":{"stringValue":"' + cls + '"}}]'

    templates = [
        '{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"' + s.name + '"}}]},'
        '"scopeMetrics":[{"scope":{"name":"io.opentelemetry.http","version":"1.28.0"},"metrics":['
        '{"name":"http.server.request.count","unit":"{request}","sum":{"aggregationTemporality":2,'
        '"isMonotonic":true,"dataPoints":['
        '{"attributes":'
        + status("2xx")
        + ',"startTimeUnixNano":"%(start)d","timeUnixNano":"%(t)s","asInt":"%(ok)d"},'
        '{"attributes":'
        + status("5xx")
        + ',"startTimeUnixNano":"%(start)d","timeUnixNano":"%(t)s","asInt":"%(err)d"}]}},'
        '{"name":"http.server.request.duration.p99","unit":"s","gauge":{"dataPoints":['
        '{"timeUnixNano":"%(t)s","asDouble":%(lat).6f}]}}]},'
        '{"scope":{"name":"io.opentelemetry.runtime","version":"1.28.0"},"metrics":['
        '{"name":"process.cpu.utilization","unit":"1","gauge":{"dataPoints":['
        '{"timeUnixNano":"%(t)s","asDouble":%(cpu).4f}]}},'
        '{"name":"process.memory.usage","unit":"By","gauge":{"dataPoints":['
        '{"timeUnixNano":"%(t)s","asInt":"%(mem)d"}]}}]}]}'
        for s in estate.services
    ]
    ok, err = observed["ok"].tolist(), observed["err"].tolist()
    lat, cpu, mem = observed["latency"].tolist(), observed["cpu"].tolist(), observed["memory"].tolist()
    started = (observed["started"] * 1_000_000_000).tolist()
    path = root / "metrics" / "services.jsonl"
    stamp = np.asarray(stamps).tolist()
    with path.open("w", encoding="utf-8") as fh:
        for k in range(len(stamp[0]) if stamp else 0):
            blocks = [
                tpl
                % {
                    "t": stamp[s][k],
                    "start": started[s][k],
                    "ok": ok[s][k],
                    "err": err[s][k],
                    "lat": lat[s][k],
                    "cpu": cpu[s][k],
                    "mem": mem[s][k],
                }
                for s, tpl in enumerate(templates)
            ]
            fh.write('{"resourceMetrics":[' + ",".join(blocks) + "]}\n")
    return path


#: histogram bucket bounds, seconds (a subset of the Prometheus client defaults)
BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
_REQUEST_SIGMA = 0.5  # lognormal spread of one request's latency around the median
_Z99 = 2.3263478740408408  # standard normal 99th percentile


def _since_restart(
    per_interval: np.ndarray, times: np.ndarray, restarts: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Running totals (services x samples [x buckets]) that drop to zero at each restart."""
    totals = np.cumsum(per_interval, axis=1)
    for service, at in sorted(restarts):
        after = times >= at
        if after.any():
            first = int(np.argmax(after))
            if first:
                totals[service, first:] -= totals[service, first - 1]
    return totals


def _write_named_metrics(
    root: Path,
    estate: _Estate,
    observed: dict[str, np.ndarray],
    stamps: np.ndarray,
    naming: str,
    interval_s: int,
    restarts: Sequence[tuple[int, int]],
) -> Path:
    """The families' namings, as OTLP/JSON lines (one request per sample time, a resource per service).

    ``otel-histogram``: ``http.server.request.duration`` (unit s) histograms per
    ``status_class``, plus the classic CPU and memory gauges. ``prometheus``: the
    ``http_requests_total{code}`` counter, the ``http_request_duration_seconds`` histogram
    (``_bucket``/``_sum``/``_count`` once ingested), a ``process_cpu_seconds_total`` counter and the
    ``process_resident_memory_bytes`` gauge, as a Prometheus receiver passes them on. Bucket
    counts come from the p99 the simulator models: one request's latency is lognormal
    around ``p99 / exp(2.33 * 0.5)``.
    """
    from scipy.special import ndtr

    times = stamps[0] // 1_000_000_000 if len(stamps) else np.zeros(0, dtype=np.int64)
    median = observed["latency"] / np.exp(_Z99 * _REQUEST_SIGMA)
    below = ndtr((np.log(np.asarray(BUCKETS))[None, None, :] - np.log(median)[:, :, None]) / _REQUEST_SIGMA)
    mean = median * np.exp(_REQUEST_SIGMA**2 / 2)
    classes = {"2xx": observed["requests"] - observed["errors"], "5xx": observed["errors"]}
    hist: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    classes_hist = {"": observed["requests"]} if naming == "prometheus" else classes
    for cls, count in classes_hist.items():
        cumulative = np.rint(count[:, :, None] * below).astype(np.int64)  # per interval, <= each bound
        per_bucket = np.diff(np.concatenate([cumulative, count[:, :, None]], axis=2), axis=2, prepend=0)
        hist[cls] = (
            _since_restart(per_bucket, times, restarts),
            _since_restart(count * mean, times, restarts),
            _since_restart(count, times, restarts),
        )
    started = (observed["started"] * 1_000_000_000).tolist()
    bounds = ",".join(repr(b) for b in BUCKETS)

    def histogram_point(cls: str, s: int, k: int, t: int, attributes: str) -> str:
        buckets, total, count = hist[cls]
        return (
            f'{{"attributes":{attributes},"startTimeUnixNano":"{started[s][k]}","timeUnixNano":"{t}",'
            f'"count":"{count[s, k]}","sum":{total[s, k]:.6f},'
            f'"bucketCounts":[{",".join(f"{c}" for c in buckets[s, k])}],"explicitBounds":[{bounds}]}}'
        )

    def attr(key: str, value: str) -> str:
        return f'[{{"key":"{key}","value":{{"stringValue":"{value}"}}}}]'

    ok = _since_restart(classes["2xx"], times, restarts)
    err = _since_restart(classes["5xx"], times, restarts)
    cpu_seconds = _since_restart(observed["cpu"] * interval_s, times, restarts)
    cpu, mem = observed["cpu"], observed["memory"]
    stamp = np.asarray(stamps).tolist()
    path = root / "metrics" / "services.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for k in range(len(times)):
            blocks = []
            for s, svc in enumerate(estate.services):
                t = stamp[s][k]
                head = (
                    '{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"'
                    + svc.name
                    + '"}}]},'
                    '"scopeMetrics":[{"scope":{"name":"opsloop.simulator"},"metrics":['
                )
                if naming == "prometheus":
                    metrics = [
                        '{"name":"http_requests_total","unit":"","sum":{"aggregationTemporality":2,"isMonotonic":true,'
                        f'"dataPoints":[{{"attributes":{attr("code", "200")},"startTimeUnixNano":"{started[s][k]}",'
                        f'"timeUnixNano":"{t}","asInt":"{ok[s, k]}"}},'
                        f'{{"attributes":{attr("code", "500")},"startTimeUnixNano":"{started[s][k]}",'
                        f'"timeUnixNano":"{t}","asInt":"{err[s, k]}"}}]}}}}',
                        '{"name":"http_request_duration_seconds","unit":"","histogram":{"aggregationTemporality":2,'
                        f'"dataPoints":[{histogram_point("", s, k, t, "[]")}]}}}}',
                        '{"name":"process_cpu_seconds_total","unit":"","sum":{"aggregationTemporality":2,'
                        f'"isMonotonic":true,"dataPoints":[{{"startTimeUnixNano":"{started[s][k]}",'
                        f'"timeUnixNano":"{t}","asDouble":{cpu_seconds[s, k]:.3f}}}]}}}}',
                        '{"name":"process_resident_memory_bytes","unit":"","gauge":{"dataPoints":['
                        f'{{"timeUnixNano":"{t}","asInt":"{mem[s, k]}"}}]}}}}',
                    ]
                else:
                    points = ",".join(
                        histogram_point(cls, s, k, t, attr("status_class", cls)) for cls in ("2xx", "5xx")
                    )
                    metrics = [
                        '{"name":"http.server.request.duration","unit":"s","histogram":{"aggregationTemporality":2,'
                        f'"dataPoints":[{points}]}}}}',
                        '{"name":"process.cpu.utilization","unit":"1","gauge":{"dataPoints":['
                        f'{{"timeUnixNano":"{t}","asDouble":{cpu[s, k]:.4f}}}]}}}}',
                        '{"name":"process.memory.usage","unit":"By","gauge":{"dataPoints":['
                        f'{{"timeUnixNano":"{t}","asInt":"{mem[s, k]}"}}]}}}}',
                    ]
                blocks.append(head + ",".join(metrics) + "]}]}")
            fh.write('{"resourceMetrics":[' + ",".join(blocks) + "]}\n")
    return path


def _write_events(root: Path, estate: _Estate, changes: Sequence[_Change]) -> Path:
    """Deploys as CDEvents 0.3.0 and config changes as ``dev.opsloop.config.changed``, by time."""
    versions = [list(v) for v in estate.versions]
    config_revision = [100] * len(estate.services)
    path = root / "events" / "changes.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for change in sorted(changes, key=lambda c: (c.ts, c.service)):
            service = estate.services[change.service]
            when = _rfc3339(change.ts)
            if change.kind == "deploy":
                version = versions[change.service]
                version[2] += 1
                tag = f"v{version[0]}.{version[1]}.{version[2]}"
                event: dict[str, Any] = {
                    "specversion": "1.0",
                    "id": change.event_id,
                    "source": change.source,
                    "type": DEPLOY_TYPE,
                    "time": when,
                    "subject": f"service/{service.name}",
                    "datacontenttype": "application/json",
                    "data": {
                        "context": {
                            "version": "0.3.0",
                            "id": change.event_id,
                            "source": change.source,
                            "type": DEPLOY_TYPE,
                            "timestamp": when,
                        },
                        "subject": {
                            "id": f"service/{service.name}",
                            "source": change.source,
                            "type": "service",
                            "content": {
                                "environment": {"id": "production", "source": change.source},
                                "artifactId": f"pkg:oci/{service.name}@{tag}"
                                f"?repository_url=registry.shop.example/{service.name}",
                            },
                        },
                    },
                }
            else:
                config_revision[change.service] += 1
                event = {
                    "specversion": "1.0",
                    "id": change.event_id,
                    "source": change.source,
                    "type": CONFIG_TYPE,
                    "time": when,
                    "datacontenttype": "application/json",
                    "data": {
                        "service": service.name,
                        "id": change.change_id,
                        "description": change.description,
                        "version": f"r{config_revision[change.service]}",
                    },
                }
            fh.write(json.dumps(event, separators=(",", ":")) + "\n")
    return path
