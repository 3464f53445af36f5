"""Prometheus text parsing speed: lines/s for a first scrape (cold) and repeat scrapes (warm).

Run: ``.venv/bin/python -m bench.bench_exposition [--series 20000]``. Also times
``prometheus_client.parser.text_string_to_metric_families`` on the same text for reference.
"""

from __future__ import annotations

import argparse
import time

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingest.exposition import ExpositionParser


def exposition(series: int) -> bytes:
    """Text with ``series`` gauge children carrying four labels, from prometheus_client."""
    reg = CollectorRegistry()
    gauge = Gauge(
        "http_requests_in_flight", "In flight.", ["method", "code", "path", "instance"], registry=reg
    )
    for i in range(series):
        gauge.labels("get", str(200 + i % 5), f"/api/v1/items/{i}", f"host-{i % 50}:9100").set(i * 1.5)
    return generate_latest(reg)


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = exposition(args.series)
    lines = text.count(b"\n")
    cold = best(lambda: ExpositionParser().parse(text), args.repeat)
    first = ExpositionParser().parse(text)
    assert first.series is not None
    known = set(first.series.column("series_id").to_pylist())
    warm_parser = ExpositionParser(known_series=known)
    warm_parser.parse(text)
    warm = best(lambda: warm_parser.parse(text), args.repeat)
    decoded = text.decode()
    reference = best(
        lambda: sum(len(f.samples) for f in text_string_to_metric_families(decoded)), args.repeat
    )
    print(f"{lines:,} lines ({len(text) / 1e6:.1f} MB), best of {args.repeat}")
    print(f"cold (first scrape)     {lines / cold:>10,.0f} lines/s")
    print(f"warm (repeat scrape)    {lines / warm:>10,.0f} lines/s")
    print(f"prometheus_client parser {lines / reference:>9,.0f} lines/s (reference, no batch built)")


if __name__ == "__main__":
    main()
