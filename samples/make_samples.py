"""Write ``samples/metrics.csv``: a day of per-minute metrics for five services.

Deterministic (seeded): running it again produces the same bytes. ``checkout`` gets a
latency spike (and a smaller error bump) from 21:30 to 21:50 UTC, which the demo detects
after the detector has learned each series over the day.

Run: ``.venv/bin/python samples/make_samples.py`` then ``opsloop ingest samples/metrics.csv``.
"""

from __future__ import annotations

import csv
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
MINUTES = 1440
SPIKE = (1290, 1310)  # minutes after START: 21:30 to 21:50
SERVICES = {  # service: (p99 latency seconds, requests per second, error ratio)
    "checkout": (0.180, 42.0, 0.004),
    "payments": (0.250, 18.0, 0.002),
    "cart": (0.060, 65.0, 0.001),
    "search": (0.120, 120.0, 0.003),
    "frontend": (0.090, 210.0, 0.002),
}


def rows(seed: int = 42) -> list[tuple[str, str, str, str]]:
    """Return (ts, name, labels, value) rows, ordered by time then service."""
    rng = random.Random(seed)
    out: list[tuple[str, str, str, str]] = []
    for minute in range(MINUTES):
        ts = (START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
        daily = 1 + 0.15 * math.sin(2 * math.pi * minute / MINUTES)
        for service, (latency, rate, errors) in SERVICES.items():
            labels = json.dumps({"service": service, "env": "prod"}, sort_keys=True)
            p99 = latency * daily * rng.lognormvariate(0, 0.08)
            err = errors * rng.lognormvariate(0, 0.3)
            if service == "checkout" and SPIKE[0] <= minute < SPIKE[1]:
                ramp = min(minute - SPIKE[0] + 1, SPIKE[1] - minute, 5) / 5
                p99 *= 1 + 7 * ramp
                err *= 1 + 4 * ramp
            rps = rate * daily * rng.gauss(1, 0.05)
            out.append((ts, "http_request_duration_seconds_p99", labels, f"{p99:.4f}"))
            out.append((ts, "http_requests_per_second", labels, f"{rps:.2f}"))
            out.append((ts, "http_error_ratio", labels, f"{err:.5f}"))
    return out


def main() -> None:
    path = Path(__file__).with_name("metrics.csv")
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ts", "name", "labels", "value"])
        writer.writerows(rows())
    print(f"wrote {path} ({MINUTES * len(SERVICES) * 3} rows)")


if __name__ == "__main__":
    main()
