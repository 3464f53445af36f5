"""The fault-injection simulator writes a scenario opsloop can read, with a truth that holds.

One small scenario (10 services, 2 days at 2-minute samples, one fault of each kind) is
written once per module and read back with opsloop's own decoders; the checks compare what
the telemetry shows with what ``truth.json`` claims.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pytest
import typer
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli.simulate import register
from core.errors import ConfigError
from core.model import ChangeKind
from ingest.cloudevents import decode_events
from ingest.otlp import read_jsonl
from ingest.simulator import FAULT_KINDS, METRIC_NAMES, SERIES_PER_SERVICE, simulate
from ingest.topology import load_document, parse_topology

INTERVAL = 120
ERROR_KINDS = ("bad_deploy", "error_burst", "config_change")
LATENCY_KINDS = ("slow_dependency", "cpu_saturation")


@dataclass
class Scenario:
    root: Path
    truth: dict[str, Any]
    #: (service, series name, status_class or "") -> (Unix seconds, values)
    metrics: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]
    log_services: dict[str, int]
    log_severities: dict[tuple[str, str], int]


def seconds(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def read_metrics(path: Path) -> dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]:
    keys: dict[int, tuple[str, str, str]] = {}
    ts: dict[int, list[np.ndarray]] = defaultdict(list)
    values: dict[int, list[np.ndarray]] = defaultdict(list)
    for batch in read_jsonl(path):
        assert batch.series is not None and batch.points is not None
        for row in batch.series.to_pylist():
            labels = dict(row["labels"])
            keys[row["series_id"]] = (row["service"], row["name"], labels.get("status_class", ""))
        ids = batch.points.column("series_id").to_numpy()
        stamps = batch.points.column("ts").cast("int64").to_numpy() // 1_000_000
        vals = batch.points.column("value").to_numpy()
        for sid in np.unique(ids):
            mask = ids == sid
            ts[int(sid)].append(stamps[mask])
            values[int(sid)].append(vals[mask])
    return {keys[s]: (np.concatenate(ts[s]), np.concatenate(values[s])) for s in keys}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("scenario")
    simulate(root, seed=11, days=2, interval_s=INTERVAL, faults=6, services=10)
    services: dict[str, int] = defaultdict(int)
    severities: dict[tuple[str, str], int] = defaultdict(int)
    for batch in read_jsonl(root / "logs" / "app.jsonl"):
        assert batch.logs is not None
        for service, severity in zip(
            batch.logs.column("service").to_pylist(),
            batch.logs.column("severity_text").to_pylist(),
            strict=True,
        ):
            services[service] += 1
            severities[(service, severity)] += 1
    yield Scenario(
        root=root,
        truth=json.loads((root / "truth.json").read_text()),
        metrics=read_metrics(root / "metrics" / "services.jsonl"),
        log_services=services,
        log_severities=severities,
    )


def window(series: tuple[np.ndarray, np.ndarray], start: int, end: int) -> np.ndarray:
    ts, values = series
    return values[(ts >= start) & (ts < end)]


def per_interval(series: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A cumulative counter as counts per interval (what replay turns into rates)."""
    ts, values = series
    counts = np.diff(values)
    return ts[1:], np.where(counts < 0, values[1:], counts)  # a drop is a restart (Prometheus' rule)


DAY = 86_400


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    args: dict[str, Any] = {"days": 0.5, "faults": 1, "services": 10}
    simulate(tmp_path / "a", seed=5, **args)
    simulate(tmp_path / "b", seed=5, **args)
    simulate(tmp_path / "c", seed=6, **args)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert [str(p) for p in files] == [
        "events/changes.jsonl",
        "logs/app.jsonl",
        "metrics/services.jsonl",
        "slos/slos.yaml",
        "topology.yaml",
        "truth.json",
    ]
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / "metrics" / "services.jsonl").read_bytes() != (
        tmp_path / "c" / "metrics" / "services.jsonl"
    ).read_bytes()


def test_topology_parses_as_a_layered_estate(scenario: Scenario) -> None:
    items = parse_topology(load_document((scenario.root / "topology.yaml").read_text()))
    names = [ci.name for ci in items]
    assert names == scenario.truth["services"] and len(names) == 10
    edge = [ci for ci in items if ci.consumer_facing]
    assert 1 <= len(edge) <= 2 and all(ci.tier == 1 for ci in edge)
    assert all(1 <= ci.tier <= 4 and ci.owner.startswith("team-") for ci in items)
    position = {name: i for i, name in enumerate(names)}
    called = {dep for ci in items for dep in ci.depends_on}
    for ci in items:
        assert all(position[dep] > position[ci.name] for dep in ci.depends_on), "calls form a DAG"
        assert ci.consumer_facing or ci.name in called, f"{ci.name} is called by nobody"
    assert any(not ci.depends_on for ci in items), "there are leaves"


def test_metrics_are_the_documented_series_for_every_service(scenario: Scenario) -> None:
    names = set(METRIC_NAMES.values())
    per_service: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for service, name, status in scenario.metrics:
        assert name in names
        per_service[service].add((name, status))
    assert set(per_service) == set(scenario.truth["services"])
    expected = {
        ("http_server_request_count_total", "2xx"),
        ("http_server_request_count_total", "5xx"),
        ("http_server_request_duration_p99_seconds", ""),
        ("process_cpu_utilization", ""),
        ("process_memory_usage_bytes", ""),
    }
    assert all(found == expected for found in per_service.values())
    start, end = seconds(scenario.truth["start"]), seconds(scenario.truth["end"])
    n = (end - start) // INTERVAL
    restarts: dict[str, set[int]] = defaultdict(set)  # first sample after a deploy or the OOM kill
    for fault in scenario.truth["faults"]:
        if fault["kind"] in ("bad_deploy", "memory_leak"):
            at = seconds(fault["start" if fault["kind"] == "bad_deploy" else "end"])
            restarts[fault["root_cause"]].add(start + -(-(at - start) // INTERVAL) * INTERVAL)
    for herring in scenario.truth["red_herrings"]:
        at = seconds(herring["ts"])
        restarts[herring["service"]].add(start + -(-(at - start) // INTERVAL) * INTERVAL)
    for key, (ts, values) in scenario.metrics.items():
        assert len(ts) == n and ts[0] == start and np.all(np.diff(ts) == INTERVAL), key
        assert np.all(np.isfinite(values)), key
        if key[1] == "http_server_request_count_total":
            drops = ts[1:][np.diff(values) < 0]
            assert set(drops.tolist()) <= restarts[key[0]], f"{key} only resets when its process restarts"
    assert len(scenario.metrics) == 10 * SERIES_PER_SERVICE


def test_baseline_is_healthy_and_diurnal(scenario: Scenario) -> None:
    start = seconds(scenario.truth["start"])
    for service in scenario.truth["services"]:
        _, ok = per_interval(scenario.metrics[(service, "http_server_request_count_total", "2xx")])
        _, err = per_interval(scenario.metrics[(service, "http_server_request_count_total", "5xx")])
        first_day = slice(0, DAY // INTERVAL - 1)
        ratio = err[first_day].sum() / (ok[first_day].sum() + err[first_day].sum())
        assert 0.0005 < ratio < 0.01, service
        hours = ((np.arange(ok[first_day].size) + 1) * INTERVAL // 3600) % 24
        busy, quiet = ok[first_day][(hours >= 13) & (hours < 17)], ok[first_day][(hours >= 1) & (hours < 5)]
        assert busy.mean() > 1.5 * quiet.mean(), f"{service} follows the day"
        cpu = window(scenario.metrics[(service, "process_cpu_utilization", "")], start, start + DAY)
        assert cpu.min() > 0.0 and cpu.max() <= 1.0
    assert all(scenario.log_services[s] > DAY // INTERVAL for s in scenario.truth["services"])


def check_truth(root: Path, all_kinds: bool) -> None:
    """The invariants every truth file keeps, whatever the seed and size."""
    truth = json.loads((root / "truth.json").read_text())
    topology = {ci.name: ci for ci in parse_topology(load_document((root / "topology.yaml").read_text()))}
    assert truth["services"] == list(topology)
    callers: dict[str, set[str]] = defaultdict(set)
    for ci in topology.values():
        for dep in ci.depends_on:
            callers[dep].add(ci.name)

    def upstream(name: str) -> set[str]:
        found, todo = {name}, [name]
        while todo:
            for caller in callers[todo.pop()]:
                if caller not in found:
                    found.add(caller)
                    todo.append(caller)
        return found

    start, end = seconds(truth["start"]), seconds(truth["end"])
    faults = truth["faults"]
    if all_kinds:
        assert sorted(f["kind"] for f in faults) == sorted(FAULT_KINDS)
    previous_end = start + (end - start) // 2
    for fault in faults:
        f_start, f_end, visible = seconds(fault["start"]), seconds(fault["end"]), seconds(fault["visible_at"])
        assert f_start >= previous_end, "faults are in the second half, in order, not overlapping"
        assert f_start - previous_end >= 90 * 60 or previous_end == start + (end - start) // 2
        previous_end = f_end
        minutes = (f_end - f_start) / 60
        low, high = {"error_burst": (5, 10), "memory_leak": (40, 100)}.get(fault["kind"], (10, 40))
        assert low <= minutes <= high, fault
        assert f_start <= visible <= f_end
        assert fault["root_cause"] in topology
        assert fault["affected"][0] == fault["root_cause"]
        assert len(set(fault["affected"])) == len(fault["affected"])
        assert set(fault["affected"]) <= upstream(fault["root_cause"]), "effects only travel to callers"
        assert ("change_id" in fault) == (fault["kind"] in ("bad_deploy", "config_change"))
    assert previous_end <= end
    herrings = truth["red_herrings"]
    assert 3 <= len(herrings) <= 4
    assert all(
        h["kind"] == "deploy" and h["service"] in topology and start <= seconds(h["ts"]) < end
        for h in herrings
    )


def test_truth_is_consistent(scenario: Scenario) -> None:
    check_truth(scenario.root, all_kinds=True)
    burst = next(f for f in scenario.truth["faults"] if f["kind"] == "error_burst")
    assert seconds(burst["visible_at"]) - seconds(burst["start"]) <= INTERVAL, (
        "a step shows at the next sample"
    )


@settings(max_examples=6)
@given(seed=st.integers(0, 2**32), services=st.integers(6, 35), faults=st.integers(0, 3))
def test_truth_holds_for_any_seed_and_size(seed: int, services: int, faults: int) -> None:
    with TemporaryDirectory() as tmp:
        simulate(tmp, seed=seed, days=1.0, interval_s=300, faults=faults, services=services)
        check_truth(Path(tmp), all_kinds=False)
        assert len(json.loads((Path(tmp) / "truth.json").read_text())["faults"]) == faults


def test_changes_are_cloudevents_matching_the_truth(scenario: Scenario) -> None:
    lines = (scenario.root / "events" / "changes.jsonl").read_bytes().splitlines()
    stamps = [json.loads(line)["time"] for line in lines]
    assert stamps == sorted(stamps)
    batch = decode_events(b"[" + b",".join(lines) + b"]")
    changes = {c.id: c for c in batch.changes}
    events = {e.type: e for e in batch.events}
    truth = scenario.truth
    for fault in truth["faults"]:
        if fault["kind"] == "bad_deploy":
            change = changes[fault["change_id"]]
            assert change.kind is ChangeKind.DEPLOYED and change.service == fault["root_cause"]
            assert change.ts.replace(tzinfo=UTC) == datetime.fromisoformat(fault["start"])
        elif fault["kind"] == "config_change":
            raw = [
                json.loads(line) for line in lines if json.loads(line)["type"] == "dev.opsloop.config.changed"
            ]
            assert [r["data"]["id"] for r in raw] == [fault["change_id"]]
            assert raw[0]["data"]["service"] == fault["root_cause"] and raw[0]["time"] == fault["start"]
            found = changes.get(fault["change_id"]) or events.get("dev.opsloop.config.changed")
            assert found is not None and found.service == fault["root_cause"]
    for herring in truth["red_herrings"]:
        change = changes[herring["change_id"]]
        assert change.kind is ChangeKind.DEPLOYED and change.service == herring["service"]
    deployed = [c for c in changes.values() if c.kind is ChangeKind.DEPLOYED]
    assert len(deployed) == len(truth["red_herrings"]) + 1
    assert len({c.version for c in deployed}) == len(deployed), "every deploy ships a new version"


def before_and_during(
    scenario: Scenario, fault: dict[str, Any], service: str, name: str, status: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """A metric during the fault, and over the same clock window one day earlier (clean history)."""
    series = scenario.metrics[(service, name, status)]
    if name.endswith("_total"):
        series = per_interval(series)
    start, end = seconds(fault["visible_at"]), seconds(fault["end"])
    return window(series, start - DAY, end - DAY), window(series, start, end)


def error_counts(scenario: Scenario, fault: dict[str, Any], service: str) -> tuple[float, float]:
    before, during = before_and_during(scenario, fault, service, "http_server_request_count_total", "5xx")
    return float(before.sum()), float(during.sum())


def p99_medians(scenario: Scenario, fault: dict[str, Any], service: str) -> tuple[float, float]:
    before, during = before_and_during(scenario, fault, service, "http_server_request_duration_p99_seconds")
    half = max(1, during.size // 2)  # after the ramp
    return float(np.median(before[-half:])), float(np.median(during[-half:]))


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_a_fault_shows_in_its_roots_metrics(scenario: Scenario, kind: str) -> None:
    fault = next(f for f in scenario.truth["faults"] if f["kind"] == kind)
    root = fault["root_cause"]
    if kind in ERROR_KINDS:
        errors_before, errors_during = error_counts(scenario, fault, root)
        assert errors_during > 3 * errors_before + 20
    elif kind in LATENCY_KINDS:
        before_p99, during_p99 = p99_medians(scenario, fault, root)
        assert during_p99 > 1.8 * before_p99
    if kind == "cpu_saturation":
        cpu_before, cpu_during = before_and_during(scenario, fault, root, "process_cpu_utilization")
        assert np.median(cpu_during) > 0.85 > np.median(cpu_before)
    if kind == "memory_leak":
        mem_before, mem_during = before_and_during(scenario, fault, root, "process_memory_usage_bytes")
        assert mem_during[-1] > 1.15 * mem_before.max()
        after = window(
            scenario.metrics[(root, "process_memory_usage_bytes", "")],
            seconds(fault["end"]),
            seconds(fault["end"]) + 1800,
        )
        assert after.max() < 1.1 * mem_before.max(), "the OOM kill frees the memory"
    root_lines = sum(scenario.log_severities[(root, s)] for s in ("WARN", "ERROR"))
    assert root_lines >= 5, "the root logs warnings and errors"


@pytest.mark.parametrize("kind", ERROR_KINDS + LATENCY_KINDS)
def test_error_and_latency_faults_reach_a_caller(scenario: Scenario, kind: str) -> None:
    fault = next(f for f in scenario.truth["faults"] if f["kind"] == kind)
    callers = fault["affected"][1:]
    if not callers:
        topology = parse_topology(load_document((scenario.root / "topology.yaml").read_text()))
        assert not any(fault["root_cause"] in ci.depends_on for ci in topology), (
            "only an edge root stays alone"
        )
        return
    moved = []
    for caller in callers:
        before, during = error_counts(scenario, fault, caller)
        before_p99, during_p99 = p99_medians(scenario, fault, caller)
        moved.append(during > 2 * before + 10 or during_p99 > 1.2 * before_p99)
    assert any(moved), f"{kind}: none of {callers} shows the effect"


def test_untouched_services_do_not_move(scenario: Scenario) -> None:
    fault = next(f for f in scenario.truth["faults"] if f["kind"] == "error_burst")
    for service in set(scenario.truth["services"]) - set(fault["affected"]):
        before, during = error_counts(scenario, fault, service)
        assert during < 3 * before + 15, service


def test_the_cli_prints_the_json_contract(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out = tmp_path / "s"
    args = [
        "--out",
        str(out),
        "--seed",
        "2",
        "--days",
        "1",
        "--faults",
        "2",
        "--services",
        "10",
        "--interval",
        "300",
    ]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == {
        "out": str(out),
        "seed": 2,
        "services": 10,
        "series": 50,
        "points": 50 * 288,
        "faults": 2,
        "red_herrings": len(json.loads((out / "truth.json").read_text())["red_herrings"]),
    }
    again = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert again.exit_code != 0 and "not empty" in again.output
    forced = CliRunner().invoke(app, [*args, "--force"], env={"COLUMNS": "160"})
    assert forced.exit_code == 0 and "10 services" in forced.output


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"faults": 8, "days": 1.0}, "second half"),
        ({"services": 3}, "services"),
        ({"interval_s": 5}, "interval"),
    ],
    ids=["too-many-faults", "too-few-services", "interval-too-short"],
)
def test_impossible_requests_are_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate(tmp_path / "x", **kwargs)


def test_the_scenario_ships_valid_slos_for_its_consumer_facing_services(tmp_path: Path) -> None:
    from slo.spec import load_openslo

    simulate(tmp_path / "s", seed=5, days=0.5, faults=1, services=10)
    specs = load_openslo((tmp_path / "s" / "slos" / "slos.yaml").read_text())
    topology = yaml.safe_load((tmp_path / "s" / "topology.yaml").read_text())
    facing = {s["name"] for s in topology["services"] if s.get("consumer_facing")}
    assert facing and {s.service for s in specs} == facing
    assert {s.budgeting_method.value for s in specs} == {"Occurrences", "Timeslices"}
    assert all(0.9 < s.objective < 1.0 for s in specs)
