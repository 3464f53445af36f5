"""Correlation throughput: alerts per minute sustained, and the latency to an incident.

A synthetic estate (``services`` services in a layered dependency graph) raises alerts at
``rate_per_min`` for ``seconds`` of wall-clock time: bursts of related alerts on a service
and its callers (real incidents), lone noise alerts, and resolves. They are queued to the
real incident pipeline (its own thread, a DuckDB file store) in small batches every
``tick_s``, paced against the wall clock. Latency is measured per queued batch, from
queued to committed (correlated, prioritised, and written with its incident), the same
figure ``opsloop_correlation_seconds`` exports.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from api.loop import assemble
from core.batch import AlertCommand, WriteBatch
from core.model import ConfigurationItem, ExternalAlert, ExternalAlertStatus
from core.settings import Settings
from core.store import Store
from core.topology import Topology

__all__ = ["run_correlation_speed"]


def estate(services: int, seed: int) -> list[ConfigurationItem]:
    """A layered graph: each service calls 1-3 services of the next layers."""
    rng = random.Random(seed)
    names = [f"svc-{i:03d}" for i in range(services)]
    items = []
    for i, name in enumerate(names):
        later = names[i + 1 : i + 30]
        deps = tuple(rng.sample(later, k=min(len(later), rng.randint(1, 3)))) if later else ()
        items.append(ConfigurationItem(name, tier=1 + i % 4, owner=f"team-{i % 12}", depends_on=deps,
                                       consumer_facing=i < 5))  # fmt: skip
    return items


def run_correlation_speed(
    rate_per_min: int = 10_000, seconds: float = 60.0, services: int = 300, tick_s: float = 0.1, seed: int = 1
) -> dict[str, Any]:
    """Drive the pipeline at ``rate_per_min`` for ``seconds``; return throughput and latency figures."""
    rng = random.Random(seed)
    items = estate(services, seed)
    topo = Topology(items)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "speed.duckdb")
        with Store(db) as store:
            store.write(WriteBatch(source="bench", topology=items))
            # the loop as the server wires it; only the incident stage runs (its worker, wall clock)
            pipeline = assemble(store, Settings(db=db), live=False, topology=topo, webhooks=[]).incidents
            pipeline.latencies = []
            pipeline.start(poll_s=tick_s)
            base = datetime.now(UTC).replace(tzinfo=None)
            sent = 0.0
            firing: list[ExternalAlert] = []
            start = time.perf_counter()
            n = 0
            while (elapsed := time.perf_counter() - start) < seconds:
                due = int(rate_per_min / 60.0 * elapsed) - int(sent)
                commands: list[AlertCommand] = []
                now = base + timedelta(seconds=elapsed)
                while due > 0:
                    if firing and rng.random() < 0.45:  # resolve one of the firing alerts
                        a = firing.pop(rng.randrange(len(firing)))
                        commands.append(AlertCommand("upsert", replace(a, status=ExternalAlertStatus.RESOLVED,
                                                                       ends_at=now, updated_at=now)))  # fmt: skip
                    else:
                        root = items[rng.randrange(len(items))].name
                        callers = sorted(topo.callers_of(root))
                        service = root if not callers or rng.random() < 0.5 else rng.choice(callers)
                        n += 1
                        name = rng.choice(["HighLatency", "ErrorRate", "Saturation", "PodRestarts"])
                        a = ExternalAlert(
                            id=f"a{n}", source="alertmanager", dedup_key=f"a{n}", status=ExternalAlertStatus.FIRING,
                            name=name, starts_at=now, severity=rng.choice(["warning", "warning", "critical"]),
                            service=service, fingerprint=f"fp{n}", labels={"alertname": name, "service": service},
                            updated_at=now,
                        )  # fmt: skip
                        firing.append(a)
                        commands.append(AlertCommand("upsert", a))
                    due -= 1
                    sent += 1
                if commands:
                    pipeline.offer_batch(WriteBatch(source="alertmanager", alerts=commands))
                time.sleep(max(0.0, tick_s - (time.perf_counter() - start - elapsed)))
            wall = time.perf_counter() - start
            while not pipeline.idle():
                time.sleep(0.01)
            pipeline.stop()
            lat = np.array(pipeline.latencies or [0.0])
            incidents = store.query("SELECT count(*) FROM incidents")[0][0]
            alerts = store.query("SELECT count(*) FROM alerts")[0][0]
    return {
        "alerts_per_min": sent / wall * 60.0,
        "alerts_sent": int(sent),
        "alerts_stored": int(alerts),
        "incidents": int(incidents),
        "latency_p50_s": float(np.percentile(lat, 50)),
        "latency_p99_s": float(np.percentile(lat, 99)),
        "latency_max_s": float(lat.max()),
        "services": services,
        "seconds": wall,
    }
