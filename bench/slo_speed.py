"""SLO evaluation speed: N SLOs over D days of 1-minute data, against a bare DuckDB scan.

Each SLO is an availability ratio (good and total request-rate gauges of its own service),
so N SLOs read ``2 N`` series of ``D * 1440`` points. The data go straight into the store as
Arrow tables (this bench measures evaluation, not ingest). Then one call of
``slo.evaluate.evaluate`` computes every SLO's SLI, budget and burn rates over the 30-day
window and the seven alert windows; the anchor is ``SELECT sum(value), count(*)`` over the
same rows, the least any evaluation must read.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from core.batch import POINTS_SCHEMA, SERIES_SCHEMA, WriteBatch
from core.selectors import parse_selector
from core.series import series_id
from core.store import Store
from slo.evaluate import EvaluationConfig, evaluate
from slo.spec import BudgetingMethod, RatioSli, Selector, SloSpec, TimeWindow

__all__ = ["run_slo_speed"]

END = datetime(2026, 2, 1)


def _spec(i: int) -> SloSpec:
    good = f'req_rate{{service="svc-{i:04d}",code="2xx"}}'
    total = f'req_rate{{service="svc-{i:04d}"}}'
    return SloSpec(
        name=f"svc-{i:04d}-availability",
        service=f"svc-{i:04d}",
        objective=0.999,
        window=TimeWindow("30d"),
        budgeting_method=BudgetingMethod.OCCURRENCES,
        sli=RatioSli(total=Selector(total, parse_selector(total)), good=Selector(good, parse_selector(good))),
    )


def _load(store: Store, slos: int, days: int, progress: Callable[[str], None] | None) -> int:
    minutes = days * 1440
    ts = (
        np.datetime64(END - timedelta(days=days), "us") + np.arange(minutes) * np.timedelta64(60, "s")
    ).astype("datetime64[us]")
    rng = np.random.default_rng(1)
    rows = 0
    per_batch = max(1, 4_000_000 // (2 * minutes))
    for first in range(0, slos, per_batch):
        ids: list[int] = []
        series: list[dict[str, Any]] = []
        values: list[np.ndarray] = []
        for i in range(first, min(slos, first + per_batch)):
            base = 100.0 + 50.0 * np.sin(np.arange(minutes) * 2 * np.pi / 1440) + rng.normal(0, 3, minutes)
            errors = base * np.where(rng.random(minutes) < 0.01, 0.05, 0.0005)
            for code, value in (("2xx", base - errors), ("5xx", errors)):
                labels = {"service": f"svc-{i:04d}", "code": code}
                sid = series_id("req_rate", labels)
                ids.append(sid)
                series.append({"series_id": sid, "name": "req_rate", "labels": list(labels.items()),
                               "service": labels["service"], "kind": "gauge", "unit": "1/s"})  # fmt: skip
                values.append(value)
        points = pa.Table.from_arrays(
            [
                pa.array(np.repeat(np.array(ids, dtype=np.uint64), minutes)),
                pa.array(np.tile(ts, len(ids))),
                pa.array(np.concatenate(values)),
            ],
            schema=POINTS_SCHEMA,
        )
        store.write(
            WriteBatch(
                source="bench", series=pa.Table.from_pylist(series, schema=SERIES_SCHEMA), points=points
            )
        )
        rows += points.num_rows
        if progress is not None:
            progress(f"loaded {rows:,} points")
    return rows


def run_slo_speed(
    slos: int = 1000, days: int = 30, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Load the data, evaluate every SLO once, time the evaluation and the bare scan."""
    with tempfile.TemporaryDirectory() as tmp, Store(str(Path(tmp) / "slo-speed.duckdb")) as store:
        rows = _load(store, slos, days, progress)
        specs = [_spec(i) for i in range(slos)]
        config = EvaluationConfig.default()
        evaluate(store, specs[:1], END, config)  # warm the catalog and caches
        start = time.perf_counter()
        statuses = evaluate(store, specs, END, config)
        evaluate_s = time.perf_counter() - start
        start = time.perf_counter()
        store.query("SELECT sum(value), count(*) FROM points WHERE ts >= ? AND ts < ?",
                    [END - timedelta(days=days), END])  # fmt: skip
        scan_s = time.perf_counter() - start
    states: dict[str, int] = {}
    for s in statuses:
        states[s.state.value] = states.get(s.state.value, 0) + 1
    return {
        "slos": slos,
        "days": days,
        "points": rows,
        "evaluate_s": evaluate_s,
        "scan_s": scan_s,
        "ratio_to_scan": evaluate_s / scan_s if scan_s else None,
        "points_per_s": rows / evaluate_s if evaluate_s else None,
        "states": states,
    }
