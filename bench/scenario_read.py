"""Scenario reader speed: a simulator-sized directory read into time-ordered slices.

Run: ``.venv/bin/python -m bench.scenario_read [--services 12] [--days 2] [--interval 60]``.
Writes a synthetic scenario (per service and interval: one OTLP metrics line with two
counters and three gauges, one logs line with three records; a deploy event per hour)
to a temporary directory, then prints its size, the time of ``open_scenario`` +
``time_range``, and the time, rows/s and MB/s of reading every slice.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ingest.scenario import open_scenario

T0_S = 1_767_571_200  # 2026-01-05T00:00:00Z


def _attr(key: str, value: str) -> dict[str, object]:
    return {"key": key, "value": {"stringValue": value}}


def write_scenario(root: Path, services: int, days: float, interval: int, seed: int = 7) -> None:
    """Write a synthetic scenario in the documented format (docs/scenario-format.md)."""
    rng = np.random.default_rng(seed)
    names = [f"svc-{i}" for i in range(services)]
    steps = int(days * 86_400 // interval)
    topology = "services:\n" + "".join(f"  - {{name: {n}, tier: 2, owner: team-{n}}}\n" for n in names)
    (root / "topology.yaml").write_text(topology)
    for folder in ("metrics", "logs", "events"):
        (root / folder).mkdir()
    requests = np.cumsum(rng.poisson(600, (services, steps)), axis=1)
    errors = np.cumsum(rng.poisson(2, (services, steps)), axis=1)
    with (
        (root / "metrics" / "otlp.jsonl").open("w") as metrics,
        (root / "logs" / "otlp.jsonl").open("w") as logs,
    ):
        for k in range(steps):
            t_ns = str((T0_S + k * interval) * 1_000_000_000)
            for s, name in enumerate(names):
                point = {"timeUnixNano": t_ns}

                def counter(
                    metric: str, value: int, status: str, p: dict[str, str] = point
                ) -> dict[str, object]:
                    data = {**p, "asInt": str(value), "attributes": [_attr("status_class", status)]}
                    return {
                        "name": metric,
                        "unit": "{request}",
                        "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [data]},
                    }

                def gauge(
                    metric: str, unit: str, value: float, p: dict[str, str] = point
                ) -> dict[str, object]:
                    return {"name": metric, "unit": unit, "gauge": {"dataPoints": [{**p, "asDouble": value}]}}

                request = {
                    "resourceMetrics": [
                        {
                            "resource": {"attributes": [_attr("service.name", name)]},
                            "scopeMetrics": [
                                {
                                    "metrics": [
                                        counter("http.server.request.count", int(requests[s, k]), "2xx"),
                                        counter("http.server.request.count", int(errors[s, k]), "5xx"),
                                        gauge("http.server.duration.p99", "s", float(rng.lognormal(-2, 0.2))),
                                        gauge("process.cpu.utilization", "1", float(rng.uniform(0.1, 0.3))),
                                        gauge("process.memory.usage", "By", float(rng.normal(2e8, 1e6))),
                                    ]
                                }
                            ],
                        }
                    ]
                }
                metrics.write(json.dumps(request) + "\n")
                records = [
                    {"timeUnixNano": t_ns, "severityNumber": 9, "body": {"stringValue": f"GET /api/{j} 200"}}
                    for j in range(3)
                ]
                resource = {"attributes": [_attr("service.name", name)]}
                logs.write(
                    json.dumps(
                        {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]}
                    )
                    + "\n"
                )
    with (root / "events" / "deploys.jsonl").open("w") as events:
        for h in range(int(days * 24)):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0_S + h * 3600 + 30))
            data = {"subject": {"id": f"service/{names[h % services]}", "content": {}}}
            event = {
                "specversion": "1.0",
                "id": f"d{h}",
                "source": "/bench",
                "type": "dev.cdevents.service.deployed.0.3.0",
                "time": stamp,
                "data": data,
            }
            events.write(json.dumps(event) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=12)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--step", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_scenario(root, args.services, args.days, args.interval)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        start = time.perf_counter()
        scenario = open_scenario(root)
        first, last = scenario.time_range()
        opened = time.perf_counter() - start
        start = time.perf_counter()
        rows = slices = 0
        for piece in scenario.slices(args.step):
            rows += piece.rows
            slices += 1
        seconds = time.perf_counter() - start
        print(f"scenario: {size / 1e6:.1f} MB, {first} .. {last}")
        print(f"open_scenario + time_range: {opened * 1000:.1f} ms")
        print(
            f"slices: {slices} x {args.step:g} s, {rows} rows in {seconds:.2f} s "
            f"({rows / seconds:,.0f} rows/s, {size / 1e6 / seconds:.1f} MB/s)"
        )


if __name__ == "__main__":
    main()
