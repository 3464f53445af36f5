"""Simulator families: opt-in variations that widen the development corpus.

The default family is the classic scenario byte for byte; each variation shows in the files
the way its docstring says (read back with opsloop's own decoders).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError
from ingest.otlp import read_jsonl
from ingest.scenario import open_scenario
from ingest.simulator import (
    ALL_FAULT_KINDS,
    BUCKETS,
    MAX_SERVICES,
    MIN_SERVICES,
    Family,
    draw_family,
    simulate,
)

SMALL: dict[str, Any] = {"seed": 4, "days": 0.5, "interval_s": 60, "faults": 2, "services": 8}


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def seconds(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def series(root: Path) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[np.ndarray, np.ndarray]]:
    """(service, name, other labels) -> (ts in ns, values), as opsloop's OTLP decoder reads them."""
    keys: dict[int, tuple[str, str, tuple[tuple[str, str], ...]]] = {}
    ts: dict[int, list[np.ndarray]] = defaultdict(list)
    values: dict[int, list[np.ndarray]] = defaultdict(list)
    for batch in read_jsonl(root / "metrics" / "services.jsonl"):
        assert batch.series is not None and batch.points is not None
        for row in batch.series.to_pylist():
            labels = tuple(sorted((k, v) for k, v in dict(row["labels"]).items() if k != "service"))
            keys[row["series_id"]] = (row["service"], row["name"], labels)
        ids = batch.points.column("series_id").to_numpy()
        stamps = batch.points.column("ts").cast("int64").to_numpy() * 1000  # us -> ns
        vals = batch.points.column("value").to_numpy()
        for sid in np.unique(ids):
            ts[int(sid)].append(stamps[ids == sid])
            values[int(sid)].append(vals[ids == sid])
    return {keys[s]: (np.concatenate(ts[s]), np.concatenate(values[s])) for s in keys}


def test_the_default_family_is_the_classic_scenario_byte_for_byte(tmp_path: Path) -> None:
    simulate(tmp_path / "classic", **SMALL)
    simulate(tmp_path / "family", **SMALL, family=Family())
    assert digest(tmp_path / "classic") == digest(tmp_path / "family")
    assert "family" not in json.loads((tmp_path / "classic" / "truth.json").read_text())


@settings(max_examples=25, deadline=None)
@given(index=st.integers(0, 10_000))
def test_family_draws_are_seeded_in_range_and_within_their_budget(index: int) -> None:
    d = draw_family(index, max_points=400_000)
    assert d == draw_family(index, max_points=400_000)
    assert MIN_SERVICES <= d.services <= MAX_SERVICES and 10 <= d.interval_s <= 60
    assert d.family.history_s is not None and 3600 <= d.family.history_s <= 7 * 86_400
    assert 0.0 <= d.family.jitter_s <= d.interval_s / 4
    assert set(d.family.kinds) == set(ALL_FAULT_KINDS)
    assert d.days * 86_400 > d.family.history_s, "the faults come after the history"


def test_prometheus_naming_writes_code_counters_and_cumulative_buckets(tmp_path: Path) -> None:
    root = tmp_path / "prom"
    simulate(root, **SMALL, family=Family(naming="prometheus", resets=2))
    got = series(root)
    names = {name for _, name, _ in got}
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "process_cpu_seconds_total",
            "process_resident_memory_bytes"} <= names  # fmt: skip
    codes = {dict(labels).get("code") for _, name, labels in got if name == "http_requests_total"}
    assert codes == {"200", "500"}
    service = next(s for s, name, _ in got if name == "http_requests_total")
    buckets = {
        dict(key[2])["le"]: got[key][1]
        for key in got
        if key[0] == service and key[1] == "http_request_duration_seconds_bucket"
    }
    assert len(buckets) == len(BUCKETS) + 1
    ordered = [buckets[le] for le in sorted(buckets, key=float)]
    for lower, upper in itertools.pairwise(ordered):
        assert np.all(lower <= upper), "buckets are cumulative over le"
    count = got[(service, "http_request_duration_seconds_count", ())][1]
    assert np.array_equal(ordered[-1], count), "+Inf counts every request"
    assert not (root / "slos" / "slos.yaml").exists(), "the classic SLO queries do not fit this naming"


def test_otel_histograms_count_requests_by_status_class(tmp_path: Path) -> None:
    root = tmp_path / "otel"
    simulate(root, **SMALL, family=Family(naming="otel-histogram"))
    got = series(root)
    classes = {
        dict(labels).get("status_class")
        for _, name, labels in got
        if name == "http_server_request_duration_seconds_count"
    }
    assert classes == {"2xx", "5xx"}
    assert any(name == "http_server_request_duration_seconds_bucket" for _, name, _ in got)


def test_counter_resets_show_in_the_counters_and_the_truth(tmp_path: Path) -> None:
    root = tmp_path / "resets"
    simulate(root, **SMALL, family=Family(naming="prometheus", resets=3))
    truth = json.loads((root / "truth.json").read_text())
    resets = [b for b in truth["benign"] if b["kind"] == "counter_reset"]
    assert len(resets) == 3
    got = series(root)
    for r in resets:
        ts, values = got[(r["service"], "http_requests_total", (("code", "200"),))]
        at = seconds(r["ts"]) * 1_000_000_000
        before, after = values[ts < at], values[ts >= at]
        if len(before) and len(after):
            assert after[0] < before[-1], "a reset counter starts again from zero"


def test_no_topology_family_writes_none_and_still_opens(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    simulate(root, **SMALL, family=Family(topology=False))
    assert not (root / "topology.yaml").exists()
    assert open_scenario(root).topology == []


def test_an_external_outage_is_rooted_at_an_external_api_and_visible(tmp_path: Path) -> None:
    root = tmp_path / "outage"
    simulate(root, seed=7, days=0.5, faults=1, services=20, family=Family(kinds=("external_outage",)))
    truth = json.loads((root / "truth.json").read_text())
    (fault,) = truth["faults"]
    topology = (root / "topology.yaml").read_text()
    kind_of = {}
    for block in topology.split("  - name: ")[1:]:
        kind_of[block.split("\n")[0]] = block.split('kind: "')[1].split('"')[0]
    if fault["kind"] == "external_outage":
        assert kind_of[fault["root_cause"]] == "external"
    else:  # an estate with no external API: the outage becomes a slow leaf dependency
        assert fault["kind"] == "slow_dependency"
    assert fault["visible_at"] < fault["end"]


def test_magnitude_scales_a_fault_from_barely_visible_to_severe(tmp_path: Path) -> None:
    def burst_errors(magnitude: float) -> float:
        root = tmp_path / f"m{magnitude}"
        family = Family(kinds=("error_burst",), magnitude=magnitude)
        simulate(root, seed=3, days=0.5, faults=1, services=8, family=family)
        (fault,) = json.loads((root / "truth.json").read_text())["faults"]
        ts, values = series(root)[
            (fault["root_cause"], "http_server_request_count_total", (("status_class", "5xx"),))
        ]
        inside = (ts >= seconds(fault["start"]) * 10**9) & (ts < seconds(fault["end"]) * 10**9)
        return float(np.diff(values)[inside[1:]].clip(0).sum())

    assert burst_errors(0.3) < burst_errors(1.5)


def test_benign_surges_raise_an_edge_traffic_away_from_faults(tmp_path: Path) -> None:
    root = tmp_path / "surge"
    simulate(root, seed=5, days=1.0, faults=2, services=10, family=Family(surges=2))
    truth = json.loads((root / "truth.json").read_text())
    surges = [b for b in truth["benign"] if b["kind"] == "surge"]
    assert surges
    got = series(root)
    for sg in surges:
        a, b = seconds(sg["start"]), seconds(sg["end"])
        for f in truth["faults"]:
            assert b + 45 * 60 < seconds(f["start"]) or a > seconds(f["end"]) + 45 * 60
        ts, values = got[(sg["service"], "http_server_request_count_total", (("status_class", "2xx"),))]
        rate = np.diff(values) / (np.diff(ts) / 1e9)
        mid = ts[1:] // 10**9
        during = rate[(mid > a + 300) & (mid < b - 300)]
        before = rate[(mid > a - 1800) & (mid < a - 300)]
        assert during.mean() > 1.3 * before.mean()


def test_jitter_moves_sample_times_by_at_most_jitter_s(tmp_path: Path) -> None:
    root = tmp_path / "jitter"
    simulate(root, **SMALL, family=Family(jitter_s=10.0))
    ts, _ = next(iter(series(root).values()))
    offset = (ts / 1e9 - SMALL["interval_s"] * np.round(ts / 1e9 / SMALL["interval_s"])).astype(float)
    assert np.abs(offset).max() <= 10.0 and np.abs(offset).max() > 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"naming": "statsd"}, "naming"), ({"traffic": 0.0}, "positive"), ({"kinds": ("meteor",)}, "kinds")],
    ids=["naming", "traffic", "kind"],
)
def test_bad_families_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Family(**kwargs)
