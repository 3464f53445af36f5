"""bench.nezha_live: a Nezha-shaped day becomes a scenario the product reads, and faults are scored from incidents."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from bench.nezha_live import LiveFault, convert_day, metric_name, score_faults
from ingest.scenario import open_scenario

START = datetime(2022, 8, 22, 3, 0, 19)
PODS = ("frontend-579b9bff58-t2dbm", "cartservice-579f59597d-wc2lz")
FAULT_MINUTE = 40


def write_day(root: Path, with_graph: bool) -> Path:
    """Two pods, 60 rows 60 s apart, a bogus TimeStamp, one injected CPU step on the cart pod."""
    folder = root / "2022-08-22"
    (folder / "metric").mkdir(parents=True)
    for k, pod in enumerate(PODS):
        lines = ["Time,TimeStamp,PodName,CpuUsage(m),PodServerLatencyP99(s),PodSuccessRate(%)"]
        for m in range(60):
            at = START + timedelta(minutes=m)
            cpu = (
                10.0 + k + (50.0 if pod.startswith("cart") and FAULT_MINUTE <= m < FAULT_MINUTE + 3 else 0.0)
            )
            stamp = int(at.timestamp()) + 200_000_000  # the bad TimeStamp: never read
            lines.append(
                f"{at:%Y-%m-%d %H:%M:%S}.{m:09d} +0000 UTC m=+{60 * m}.0,{stamp},{pod},{cpu},0.1,100"
            )
        (folder / "metric" / f"{pod}_metric.csv").write_text("\n".join(lines) + "\n")
    inject = START + timedelta(minutes=FAULT_MINUTE, seconds=-14)
    faults = {"03": [{"inject_time": f"{inject:%Y-%m-%d %H:%M:%S}", "inject_timestamp": "1",
                      "inject_pod": PODS[1], "inject_type": "cpu_contention"}]}  # fmt: skip
    (folder / "2022-08-22-fault_list.json").write_text(json.dumps(faults))
    if with_graph:
        (folder / "metric" / "dependency.csv").write_text(
            "Source,Target,Weight\nfrontend,cartservice,1\ncartservice,10.0.0.1,1\n"
        )
    return folder


@pytest.mark.parametrize("with_graph", [True, False], ids=["dependency.csv", "no call graph"])
def test_conversion_names_labels_times_and_topology(tmp_path: Path, with_graph: bool) -> None:
    scenario = convert_day(write_day(tmp_path / "data", with_graph), tmp_path / "scenario")
    assert scenario.system == "OnlineBoutique"
    assert scenario.services == ("cartservice", "frontend")
    assert scenario.series == 6 and scenario.points == 2 * 3 * 60 and scenario.step_s == 60
    cart = pl.read_parquet(tmp_path / "scenario" / "metrics" / f"{PODS[1]}.parquet")
    assert set(cart["name"]) == {
        "container_cpu_usage_millicores", "pod_server_latency_p99_seconds", "pod_success_rate_percent",
    }  # fmt: skip
    assert {json.loads(x)["service"] for x in cart["labels"]} == {"cartservice"}
    assert {json.loads(x)["pod"] for x in cart["labels"]} == {PODS[1]}
    cpu = cart.filter(pl.col("name") == "container_cpu_usage_millicores").sort("ts")
    assert cpu["ts"][0] == START and cpu["ts"][-1] == START + timedelta(minutes=59)  # Time, not TimeStamp
    assert cpu["value"][FAULT_MINUTE] == pytest.approx(61.0)
    graph = yaml.safe_load((tmp_path / "scenario" / "topology.yaml").read_text())
    calls = {s["name"]: s["depends_on"] for s in graph["services"]}
    assert calls == ({"cartservice": [], "frontend": ["cartservice"]} if with_graph else
                     {"cartservice": [], "frontend": []})  # fmt: skip
    assert scenario.edges == (1 if with_graph else None)
    (fault,) = scenario.faults
    assert fault.service == "cartservice" and fault.inject == START + timedelta(
        minutes=FAULT_MINUTE, seconds=-14
    )
    assert not any("fault" in p.name for p in (tmp_path / "scenario").rglob("*"))  # no fault time given
    first, last = open_scenario(tmp_path / "scenario").time_range()
    assert (first, last) == (START, START + timedelta(minutes=59))


@pytest.mark.parametrize(
    ("column", "name"),
    [("CpuUsageRate(%)", "container_cpu_usage_percent"), ("MemoryUsage(Mi)", "container_memory_usage_mebibytes"),
     ("PodClientLatencyP90(s)", "pod_client_latency_p90_seconds"), ("PodWorkload(Ops)", "pod_workload_ops"),
     ("NodeNetworkReceiveBytes", "node_network_receive_bytes")],
)  # fmt: skip
def test_metric_names(column: str, name: str) -> None:
    assert metric_name(column) == name


T = datetime(2022, 8, 22, 4, 0)
FAULT = LiveFault(T, "cartservice", PODS[1], "cpu_contention")


def hyps(*services: str) -> str:
    return json.dumps([{"service": s, "kind": "resource"} for s in services])


def test_incident_in_window_with_root_counts_and_its_rank() -> None:
    incidents = [("i1", T + timedelta(minutes=2), hyps("frontend", "cartservice"))]
    alerts = [("a1", "cartservice", T + timedelta(minutes=1), "i1"), ("a2", "frontend", T, "i1")]
    fig = score_faults([FAULT], incidents, alerts).as_dict()
    assert (fig["recall"], fig["AC@1"], fig["AC@3"], fig["precision"]) == (1.0, 0.0, 1.0, 1.0)
    assert fig["mttd_s"] == 120.0


def test_incident_outside_every_window_counts_against_precision() -> None:
    incidents = [
        ("i1", T + timedelta(minutes=1), hyps("cartservice")),
        ("i2", T + timedelta(hours=2), hyps("cartservice")),
    ]
    alerts = [("a1", "cartservice", T, "i1"), ("a2", "cartservice", T + timedelta(hours=2), "i2")]
    fig = score_faults([FAULT], incidents, alerts).as_dict()
    assert (fig["recall"], fig["AC@1"], fig["precision"], fig["incidents"]) == (1.0, 1.0, 0.5, 2)


@pytest.mark.parametrize(
    ("opened", "service"),
    [(T + timedelta(minutes=6), "cartservice"), (T - timedelta(seconds=30), "cartservice"), (T + timedelta(minutes=1), "frontend")],
    ids=["too late", "before injection", "root not among alerts"],
)  # fmt: skip
def test_fault_missed(opened: datetime, service: str) -> None:
    incidents = [("i1", opened, hyps("cartservice"))]
    fig = score_faults([FAULT], incidents, [("a1", service, opened, "i1")]).as_dict()
    assert (fig["recall"], fig["AC@1"], fig["AC@3"], fig["mttd_s"]) == (0.0, 0.0, 0.0, None)
