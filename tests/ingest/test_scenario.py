"""Scenario directories: layout checks, time-ordered slices merged across files, errors naming file:line."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import ConfigError, SchemaError
from core.model import Change, ChangeKind, Event
from core.series import series_id
from core.store import Store
from ingest import scenario as scenario_module
from ingest.scenario import Scenario, Slice, open_scenario

T0 = datetime(2026, 1, 5, tzinfo=UTC)
TOPOLOGY = """services:
  - {name: web, tier: 1, owner: team-web, consumer_facing: true, depends_on: [db]}
  - {name: db, tier: 2, owner: team-data}
"""
INTERVALS = 12  # minutes of data per service


def nanos(t: datetime) -> str:
    return str(int(t.timestamp()) * 1_000_000_000)


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics_line(t: datetime, service: str, requests: float, cpu: float) -> str:
    """One OTLP ExportMetricsServiceRequest: a monotonic cumulative counter and a gauge."""
    point = {"timeUnixNano": nanos(t), "startTimeUnixNano": nanos(T0)}
    return json.dumps(
        {
            "resourceMetrics": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {
                                    "name": "http.server.request.count",
                                    "unit": "{request}",
                                    "sum": {
                                        "aggregationTemporality": 2,
                                        "isMonotonic": True,
                                        "dataPoints": [{**point, "asDouble": requests}],
                                    },
                                },
                                {
                                    "name": "process.cpu.utilization",
                                    "unit": "1",
                                    "gauge": {"dataPoints": [{**point, "asDouble": cpu}]},
                                },
                            ]
                        }
                    ],
                }
            ]
        }
    )


def logs_line(t: datetime, service: str, bodies: list[str]) -> str:
    records = [
        {"timeUnixNano": nanos(t + timedelta(seconds=i)), "severityNumber": 9, "body": {"stringValue": body}}
        for i, body in enumerate(bodies)
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return json.dumps({"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]})


def cloudevent(t: datetime, ce_type: str, data: dict[str, Any], event_id: str) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "/sim",
            "type": ce_type,
            "time": rfc3339(t),
            "data": data,
        }
    )


def deployed(t: datetime, service: str, event_id: str) -> str:
    data = {"subject": {"id": f"service/{service}", "content": {"artifactId": f"pkg:oci/{service}@v2"}}}
    return cloudevent(t, "dev.cdevents.service.deployed.0.3.0", data, event_id)


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def build(root: Path, *, csv: bool = True) -> dict[str, int]:
    """A small scenario: two OTLP metrics files, a CSV, logs, events. Returns the row counts written."""
    (root / "topology.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "topology.yaml").write_text(TOPOLOGY)
    for service, rate in (("web", 10.0), ("db", 4.0)):
        lines = [
            metrics_line(T0 + timedelta(minutes=m), service, requests=rate * 60 * m, cpu=0.1 * m)
            for m in range(INTERVALS)
        ]
        write_lines(root / "metrics" / f"{service}.jsonl", lines)
    log_lines = [logs_line(T0 + timedelta(minutes=m, seconds=5), "web", ["a", "b"]) for m in range(INTERVALS)]
    write_lines(root / "logs" / "web.jsonl", log_lines)
    events = [
        deployed(T0 + timedelta(minutes=3, seconds=30), "web", "d1"),
        cloudevent(
            T0 + timedelta(minutes=5),
            "dev.opsloop.config.changed",
            {"service": "db", "id": "cfg-42", "description": "pool size 10 -> 2", "version": "r7"},
            "c1",
        ),
        cloudevent(
            T0 + timedelta(minutes=7),
            "dev.opsloop.maintenance.scheduled",
            {
                "service": "db",
                "start": rfc3339(T0 + timedelta(minutes=8)),
                "end": rfc3339(T0 + timedelta(minutes=9)),
            },
            "m1",
        ),
    ]
    write_lines(root / "events" / "changes.jsonl", events)
    counts = {"otlp_points": 2 * 2 * INTERVALS, "logs": 2 * INTERVALS, "events": len(events), "csv": 0}
    if csv:
        rows = ["ts,name,labels,value"]
        for m in range(0, INTERVALS, 2):
            ts = int((T0 + timedelta(minutes=m, seconds=20)).timestamp())
            rows.append(f'{ts},queue_depth,"{{""service"":""db""}}",{m}')
        write_lines(root / "metrics" / "queue.csv", rows)
        counts["csv"] = len(rows) - 1
    return counts


def all_rows(slices: list[Slice]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"points": [], "logs": [], "items": [], "series": []}
    for sl in slices:
        for batch in sl.batches:
            if batch.points is not None:
                out["points"] += batch.points.to_pylist()
            if batch.series is not None:
                out["series"] += batch.series.to_pylist()
            if batch.logs is not None:
                out["logs"] += batch.logs.to_pylist()
            out["items"] += [*batch.events, *batch.changes]
    return out


def naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------- opening


def test_open_scenario_parses_topology_truth_and_lists_files(tmp_path: Path) -> None:
    build(tmp_path)
    truth = {"seed": 7, "start": rfc3339(T0), "end": rfc3339(T0 + timedelta(hours=1)), "faults": []}
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    (tmp_path / "slos").mkdir()
    (tmp_path / "slos" / "b.yaml").write_text("apiVersion: openslo/v1\n")
    (tmp_path / "slos" / "a.yml").write_text("apiVersion: openslo/v1\n")
    sc = open_scenario(tmp_path)
    assert [ci.name for ci in sc.topology] == ["web", "db"]
    assert sc.topology[0].depends_on == ("db",)
    assert sc.truth == truth
    assert [p.name for p in sc.slos] == ["a.yml", "b.yaml"]
    assert sc.runbooks == []
    assert [p.name for p in sc.metrics] == ["db.jsonl", "queue.csv", "web.jsonl"]


def test_a_scenario_without_a_topology_file_opens_with_no_call_graph(tmp_path: Path) -> None:
    build(tmp_path)
    (tmp_path / "topology.yaml").unlink()
    sc = open_scenario(tmp_path)
    assert sc.topology == []
    assert [p.name for p in sc.metrics] == ["db.jsonl", "queue.csv", "web.jsonl"]
    assert sum(s.rows for s in sc.slices()) > 0, "its signals still replay"


@pytest.mark.parametrize(
    ("mutate", "error", "names"),
    [
        (lambda root: (root / "topology.yaml").unlink() or (root / "topology.yaml").mkdir(), ConfigError,
         "topology.yaml"),
        (lambda root: (root / "topology.yaml").write_text("services: [{name: web, tier: 9}]"), SchemaError,
         "topology.yaml: services[0].tier"),
        (lambda root: (root / "metrics" / "notes.txt").write_text("x"), ConfigError, "metrics/notes.txt"),
        (lambda root: (root / "truth.json").write_text("{not json"), SchemaError, "truth.json"),
        (lambda root: (root / "truth.json").write_text('{"faults": [{"start": "yesterday"}]}'), SchemaError,
         "truth.json: faults[0].start"),
    ],
    ids=["topology-not-a-file", "bad-tier", "stray-file", "truth-not-json", "truth-bad-time"],
)  # fmt: skip
def test_layout_errors_name_the_file(tmp_path: Path, mutate: Any, error: type[Exception], names: str) -> None:
    build(tmp_path)
    mutate(tmp_path)
    with pytest.raises(error, match=None) as info:
        open_scenario(tmp_path)
    assert names in str(info.value)


def test_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        open_scenario(tmp_path / "nowhere")


# ---------------------------------------------------------------------- slices


def test_slices_cover_every_row_exactly_once_in_time_order(tmp_path: Path) -> None:
    counts = build(tmp_path)
    slices = list(open_scenario(tmp_path).slices(60.0))
    starts = [sl.start for sl in slices]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for sl in slices:
        assert sl.end - sl.start == timedelta(seconds=60)
        for batch in sl.batches:
            stamps: list[datetime] = []
            stamps += [r["ts"] for r in batch.points.to_pylist()] if batch.points is not None else []
            stamps += [r["ts"] for r in batch.logs.to_pylist()] if batch.logs is not None else []
            stamps += [event.ts for event in batch.events] + [change.ts for change in batch.changes]
            assert all(sl.start <= ts < sl.end for ts in stamps)
            assert stamps == sorted(stamps)
    rows = all_rows(slices)
    names = Counter(series["name"] for series in rows["series"])
    by_id = {s["series_id"]: s["name"] for s in rows["series"]}
    point_names = Counter(by_id[p["series_id"]] for p in rows["points"])
    # gauges and CSV rows: all in, all out; counters: one rate per sample after the first
    assert point_names["process_cpu_utilization"] == 2 * INTERVALS
    assert point_names["queue_depth"] == counts["csv"]
    assert point_names["http_server_request_count:rate"] == 2 * (INTERVALS - 1)
    assert "http_server_request_count_total" not in names
    assert all(n == 1 for n in Counter(s["series_id"] for s in rows["series"]).values())
    assert len(rows["logs"]) == counts["logs"]
    assert len(rows["items"]) == counts["events"]


def test_counters_arrive_as_per_second_rates(tmp_path: Path) -> None:
    build(tmp_path, csv=False)
    rows = all_rows(list(open_scenario(tmp_path).slices(60.0)))
    labels = {"service": "web"}
    web_rate = series_id("http_server_request_count:rate", labels)
    values = [p["value"] for p in rows["points"] if p["series_id"] == web_rate]
    assert values == pytest.approx([10.0] * (INTERVALS - 1))
    rate_series = [s for s in rows["series"] if s["series_id"] == web_rate]
    assert rate_series[0]["kind"] == "gauge" and rate_series[0]["unit"] == "{request}/s"


def test_events_become_changes_and_maintenance_stays_an_event(tmp_path: Path) -> None:
    build(tmp_path, csv=False)
    items = all_rows(list(open_scenario(tmp_path).slices(60.0)))["items"]
    changes = [i for i in items if isinstance(i, Change)]
    events = [i for i in items if isinstance(i, Event)]
    assert [(c.kind, c.service) for c in changes] == [(ChangeKind.DEPLOYED, "web"), (ChangeKind.CONFIG, "db")]
    assert changes[1].id == "cfg-42" and changes[1].version == "r7"
    assert [e.type for e in events] == ["dev.opsloop.maintenance.scheduled"]
    assert [i.ts for i in items] == sorted(i.ts for i in items)


@pytest.mark.parametrize("step_s", [1.0, 45.0, 60.0, 300.0, 3600.0], ids=lambda s: f"{s:g}s")
def test_any_step_gives_the_same_rows(tmp_path: Path, step_s: float) -> None:
    build(tmp_path)
    reference = all_rows(list(open_scenario(tmp_path).slices(60.0)))
    rows = all_rows(list(open_scenario(tmp_path).slices(step_s)))
    for key in ("points", "logs"):
        assert sorted(map(str, rows[key])) == sorted(map(str, reference[key]))
    assert len(rows["items"]) == len(reference["items"])


def test_small_chunks_give_the_same_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build(tmp_path)
    reference = [(sl.start, all_rows([sl])) for sl in open_scenario(tmp_path).slices(120.0)]
    monkeypatch.setattr(scenario_module, "CHUNK_ROWS", 3)
    chunked = [(sl.start, all_rows([sl])) for sl in open_scenario(tmp_path).slices(120.0)]
    assert [s for s, _ in chunked] == [s for s, _ in reference]
    for (_, a), (_, b) in zip(chunked, reference, strict=True):
        assert sorted(map(str, a["points"])) == sorted(map(str, b["points"]))
        assert sorted(map(str, a["series"])) == sorted(map(str, b["series"]))


def test_time_range_reads_the_ends_of_files(tmp_path: Path) -> None:
    build(tmp_path)
    first, last = open_scenario(tmp_path).time_range()
    assert first == naive(T0)
    assert last == naive(T0 + timedelta(minutes=INTERVALS - 1, seconds=6))  # the last log record


def test_parquet_metrics_are_read_too(tmp_path: Path) -> None:
    build(tmp_path, csv=False)
    stamps = [naive(T0 + timedelta(minutes=m, seconds=30)) for m in range(4)]
    table = pa.table(
        {"ts": pa.array(stamps, pa.timestamp("us")), "name": ["temp"] * 4, "value": [1.0, 2.0, 3.0, 4.0]}
    )
    pq.write_table(table, tmp_path / "metrics" / "temp.parquet")
    sc = open_scenario(tmp_path)
    rows = all_rows(list(sc.slices(60.0)))
    temp = series_id("temp", {})
    assert [p["value"] for p in rows["points"] if p["series_id"] == temp] == [1.0, 2.0, 3.0, 4.0]


# ---------------------------------------------------------------------- order and errors


def read_all(root: Path, step_s: float = 60.0) -> list[Slice]:
    return list(open_scenario(root).slices(step_s))


def test_small_disorder_within_a_slice_is_accepted(tmp_path: Path) -> None:
    build(tmp_path, csv=False)
    lines = [
        metrics_line(T0 + timedelta(seconds=s), "cache", requests=float(s), cpu=0.5)
        for s in (10, 5, 70, 65, 130)
    ]
    write_lines(tmp_path / "metrics" / "cache.jsonl", lines)
    rows = all_rows(read_all(tmp_path))
    cpu = series_id("process_cpu_utilization", {"service": "cache"})
    assert sum(p["series_id"] == cpu for p in rows["points"]) == 5


def test_lines_far_out_of_order_name_file_and_line(tmp_path: Path) -> None:
    build(tmp_path, csv=False)
    minutes = [0, 1, 2, 3, 0]
    lines = [metrics_line(T0 + timedelta(minutes=m), "cache", 1.0, 0.5) for m in minutes]
    write_lines(tmp_path / "metrics" / "cache.jsonl", lines)
    with pytest.raises(SchemaError, match=r"metrics/cache\.jsonl:5: out of event-time order"):
        read_all(tmp_path)


@pytest.mark.parametrize(
    ("rel", "line", "where"),
    [
        ("metrics/web.jsonl", '{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "", "gauge": {"dataPoints": [{"asDouble": 1}]}}]}]}]}',
         "metrics/web.jsonl:13"),
        ("logs/web.jsonl", "{not json", "logs/web.jsonl:13"),
        ("events/changes.jsonl", json.dumps({"specversion": "1.0", "id": "x", "source": "/s", "type": "t"}),
         "events/changes.jsonl:4: time"),
        ("events/changes.jsonl",
         cloudevent(T0 + timedelta(minutes=20), "dev.opsloop.config.changed", {"id": "c"}, "c2"),
         "events/changes.jsonl:4: data.service"),
    ],
    ids=["metric-without-name", "bad-json", "event-without-time", "config-without-service"],
)  # fmt: skip
def test_bad_lines_name_file_and_line(tmp_path: Path, rel: str, line: str, where: str) -> None:
    build(tmp_path, csv=False)
    with (tmp_path / rel).open("a") as handle:
        handle.write(line + "\n")
    with pytest.raises(SchemaError) as info:
        read_all(tmp_path)
    assert str(info.value).startswith(where)


def test_bad_csv_row_names_file_and_line(tmp_path: Path) -> None:
    build(tmp_path)
    with (tmp_path / "metrics" / "queue.csv").open("a") as handle:
        handle.write(f"{int(T0.timestamp()) + 900},queue_depth,,not-a-number\n")
    with pytest.raises(SchemaError, match=r"metrics/queue\.csv:8"):
        read_all(tmp_path)


def test_scenario_is_immutable_and_reusable(tmp_path: Path) -> None:
    build(tmp_path)
    sc = open_scenario(tmp_path)
    assert isinstance(sc, Scenario)
    with pytest.raises(AttributeError):
        sc.root = tmp_path  # type: ignore[misc]
    assert sum(s.rows for s in sc.slices()) == sum(s.rows for s in sc.slices())


def test_slices_write_to_a_store_and_replaying_again_writes_nothing(tmp_path: Path) -> None:
    counts = build(tmp_path / "scenario")
    sc = open_scenario(tmp_path / "scenario")
    with Store(str(tmp_path / "opsloop.duckdb")) as store:
        store.migrate()
        first = sum(r.rows for sl in sc.slices() for r in store.write_many(sl.batches))
        again = sum(r.rows for sl in sc.slices() for r in store.write_many(sl.batches))
        kinds = dict(store.query("SELECT name, kind FROM series"))
        changes = store.query("SELECT kind, service FROM changes ORDER BY ts")
    points = 2 * INTERVALS + counts["csv"] + 2 * (INTERVALS - 1)
    assert first == points + counts["logs"] + counts["events"]
    assert again == 0
    assert kinds["http_server_request_count:rate"] == "gauge"
    assert "http_server_request_count_total" not in kinds
    assert changes == [("deployed", "web"), ("config", "db")]
