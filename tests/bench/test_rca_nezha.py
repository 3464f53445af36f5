"""bench.rca_nezha: the Nezha loader's quirks, the accuracy maths, and the CLI contract."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli.bench import register
from bench.rca_nezha import (
    COLUMN_SIGNALS,
    KS,
    accuracy,
    day_folders,
    fault_kind,
    load_day,
    pod_service,
    run_rca_bench,
    system_of,
)

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "rca" / "nezha"
START = datetime(2022, 8, 22, 3, 0, 0, tzinfo=UTC).timestamp()
MINUTES = 90


def nezha_time(ts: float, offset_s: float) -> str:
    """A metric ``Time`` string as Nezha writes it: sub-second digits and a Go monotonic suffix."""
    wall = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{wall}.{int(offset_s * 1e9) % 10**9:09d} +0000 UTC m=+{ts - START:.9f}"


def write_day(root: Path, day: str, pods: list[str], faults: list[tuple[int, str, str]], edges: bool) -> Path:
    """A day folder: per-pod CSVs on a jittered 60 s grid, and a fault list with misleading timestamps.

    Each fault ``(minute, pod, type)`` raises that pod's CPU for 3 minutes from the fault's minute.
    """
    folder = root / day
    (folder / "metric").mkdir(parents=True)
    rng = np.random.default_rng(len(pods))
    columns = list(COLUMN_SIGNALS)
    for k, pod in enumerate(pods):
        lines = ["Time,TimeStamp,PodName," + ",".join(columns)]
        for m in range(MINUTES):
            jitter = 19.0 + 0.01 * k  # pods sample a few ms apart, within the same minute
            ts = START + 60 * m + jitter
            row = 10 + rng.standard_normal(len(columns))
            if any(p == pod and fm <= m < fm + 3 for fm, p, _ in faults):
                row[columns.index("CpuUsage(m)")] += 50
            bogus = int(ts) + 200_000_000  # TimeStamp is never read
            lines.append(f"{nezha_time(ts, jitter)},{bogus},{pod}," + ",".join(f"{v:.4f}" for v in row))
        (folder / "metric" / f"{pod}_metric.csv").write_text("\n".join(lines) + "\n")
    entries: dict[str, list[dict[str, str]]] = {}
    for minute, pod, kind in faults:
        at = START + 60 * minute + 5  # a few seconds after the minute's sample
        hour = datetime.fromtimestamp(at, UTC).strftime("%H")
        entries.setdefault(hour, []).append(
            {
                "inject_time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "inject_timestamp": str(int(at) - 8 * 3600),  # off by 8 h: must be ignored
                "inject_pod": pod,
                "inject_type": kind,
            }
        )
    (folder / f"{day}-fault_list.json").write_text(json.dumps(entries))
    if edges:
        services = sorted({pod_service(p) for p in pods})
        graph = ["Source,Target,Weight"] + [f"{services[0]},{s},1" for s in services[1:]]
        (folder / "metric" / "dependency.csv").write_text("\n".join(graph) + "\n")
    return folder


OB_PODS = ["frontend-579b9bff58-t2dbm", "cartservice-579f59597d-wc2lz", "adservice-5f6585d649-fnmft"]
TT_PODS = [
    "ts-order-service-5b67c48447-mv5hb",
    "ts-food-service-f5756978c-k8vqf",
    "ts-ui-dashboard-5477b965f-2chkr",
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "nezha"
    write_day(
        root, "2022-08-22", OB_PODS, [(70, OB_PODS[1], "cpu_contention"), (80, OB_PODS[2], "return")], True
    )
    write_day(root, "2023-01-29", TT_PODS, [(75, TT_PODS[1], "network_delay")], False)
    (root / "not-a-day").mkdir()
    return root


@pytest.mark.parametrize(
    ("pod", "service"),
    [
        ("frontend-579b9bff58-t2dbm", "frontend"),
        ("ts-food-service-f5756978c-k8vqf", "ts-food-service"),
        ("ts-station-food-service-dc4d75dd-fw6ft", "ts-station-food-service"),
        ("redis-cart-0", "redis-cart"),
        ("frontend", "frontend"),
    ],
    ids=["deployment", "ts-deployment", "short-replicaset-hash", "statefulset", "bare"],
)
def test_pod_names_lose_their_replicaset_and_pod_hash(pod: str, service: str) -> None:
    assert pod_service(pod) == service


def test_the_system_is_told_from_the_pod_names() -> None:
    assert system_of(TT_PODS) == "TrainTicket"
    assert system_of(OB_PODS) == "OnlineBoutique"
    assert system_of([*TT_PODS, "frontend-1-2"]) == "OnlineBoutique"


@pytest.mark.parametrize(
    ("kind", "split"),
    [("cpu_contention", "resource"), ("network_delay", "resource"), ("memory_leak", "resource"),
     ("return", "code"), ("exception", "code")],
)  # fmt: skip
def test_fault_types_split_into_resource_and_code(kind: str, split: str) -> None:
    assert fault_kind(kind) == split


def test_a_day_loads_on_one_grid_aligned_on_inject_time(data: Path) -> None:
    day = load_day(data / "2022-08-22")
    assert day.system == "OnlineBoutique"
    assert day.values.shape == (len(OB_PODS) * len(COLUMN_SIGNALS), MINUTES)
    assert not np.isnan(day.values).any()  # ms jitter between pods lands on the same grid point
    assert np.all(np.diff(day.ts) == 60.0)
    assert {s.service for s in day.series} == {"frontend", "cartservice", "adservice"}
    assert day.edges is not None and ("adservice", "cartservice") in day.edges
    assert [(f.service, f.kind) for f in day.faults] == [("cartservice", "resource"), ("adservice", "code")]
    # inject_time (wall clock) lands 5 s after the metric row of the same minute, not 8 h off
    cpu = next(i for i, s in enumerate(day.series) if (s.service, s.metric) == ("cartservice", "CpuUsage(m)"))
    first = int(np.searchsorted(day.ts, day.faults[0].alarm_ts))
    assert day.values[cpu, first] > 40 > day.values[cpu, first - 1]
    tt = load_day(data / "2023-01-29")
    assert tt.system == "TrainTicket" and tt.edges is None


def test_the_bench_finds_injected_faults_and_prints_the_contract(data: Path) -> None:
    assert [d.name for d in day_folders(data)] == ["2022-08-22", "2023-01-29"]
    result = run_rca_bench(data).as_dict()
    assert set(result) == {"OnlineBoutique", "TrainTicket", "seconds"}
    ob, tt = result["OnlineBoutique"], result["TrainTicket"]
    assert (ob["all"]["n"], ob["resource"]["n"], ob["code"]["n"], tt["all"]["n"], tt["code"]["n"]) == (
        2,
        1,
        1,
        1,
        0,
    )
    for splits in (ob, tt):
        for fig in splits.values():
            assert set(fig) == {"n", "AC@1", "AC@3", "AC@5", "Avg@5"}
    assert ob["all"]["AC@1"] == 1.0 and tt["all"]["AC@1"] == 1.0  # a 50-sigma CPU jump is found


def test_accuracy_on_hand_made_ranks() -> None:
    acc = accuracy([1, 2, 6, None])
    assert (acc["AC@1"], acc["AC@2"], acc["AC@5"]) == (0.25, 0.5, 0.5)
    assert acc["Avg@5"] == pytest.approx((0.25 + 0.5 * 4) / 5)
    assert accuracy([])["n"] == 0


@given(st.lists(st.one_of(st.none(), st.integers(1, 50)), min_size=1, max_size=60))
def test_accuracy_is_monotone_in_k_and_avg5_is_the_mean(ranks: list[int | None]) -> None:
    acc = accuracy(ranks)
    series = [acc[f"AC@{k}"] for k in KS]
    assert all(0.0 <= a <= b <= 1.0 for a, b in itertools.pairwise(series))
    assert acc["Avg@5"] == pytest.approx(sum(series) / 5)
    assert acc["AC@1"] == sum(r == 1 for r in ranks) / len(ranks)


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"the Nezha data is not at {REAL_DATA}")
def test_the_cli_runs_the_real_folder_and_prints_the_json_shape() -> None:
    root = typer.Typer()
    register(root)
    result = CliRunner().invoke(root, ["bench", "rca", "--data", str(REAL_DATA), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # the keys scripts read stay; the traces ablation is added beside them (the shipped days:
    # TrainTicket 2023-01-29 has traces for some faults)
    assert set(out) == {"OnlineBoutique", "TrainTicket", "seconds", "ablation"}
    traced = out["ablation"]["TrainTicket"]
    assert set(traced) == {"metrics", "metrics+traces"}
    assert traced["metrics"]["n"] == traced["metrics+traces"]["n"] > 0
    for system in ("OnlineBoutique", "TrainTicket"):
        assert set(out[system]) == {"all", "resource", "code"}
        split = out[system]
        assert split["all"]["n"] == split["resource"]["n"] + split["code"]["n"] > 0
        for fig in split.values():
            assert set(fig) == {"n", "AC@1", "AC@3", "AC@5", "Avg@5"}
            assert 0.0 <= fig["AC@1"] <= fig["AC@3"] <= fig["AC@5"] <= 1.0


def test_the_cli_refuses_a_folder_without_days(tmp_path: Path) -> None:
    root = typer.Typer()
    register(root)
    result = CliRunner().invoke(root, ["bench", "rca", "--data", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "--data" in result.output  # a usage error naming the option
