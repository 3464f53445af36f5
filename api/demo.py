"""The guided demo: a real server, every wire format, what arrived and what was detected.

It uses only public contracts (the CLI and the HTTP API), exactly as a newcomer would:
bulk-load a sample file, start ``opsloop serve``, send one payload of every format the
way the real tools send it, show what the streaming detector found and give it operator
feedback, stop the server and summarise the store. Later stages add
their steps here so ``make demo`` always shows the whole loop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from api.cli.render import Table, plain
from ingest.remote_write import REQUEST_HEADERS, encode_write_request

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@dataclass
class Step:
    """One request of the demo and the answer it should get."""

    title: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    expect: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _node_metrics(now: datetime) -> bytes:
    """Ten minutes of node-exporter-like series for three hosts, as Prometheus remote-writes them."""
    start = int((now - timedelta(minutes=10)).timestamp() * 1000)
    series = []
    for h, host in enumerate(("web-1", "web-2", "db-1")):
        for mode in ("idle", "user", "system"):
            labels = {
                "__name__": "node_cpu_seconds_total",
                "instance": f"{host}:9100",
                "job": "node",
                "cpu": "0",
                "mode": mode,
            }
            series.append((labels, [(start + i * 15_000, 100.0 * (h + 1) + i * 0.7) for i in range(40)]))
        load = {"__name__": "node_load1", "instance": f"{host}:9100", "job": "node"}
        series.append(
            (
                load,
                [
                    (start + i * 15_000, 0.4 + 0.02 * i + (3.0 if host == "db-1" and i > 34 else 0))
                    for i in range(40)
                ],
            )
        )
    return encode_write_request(series)


def _otlp_metrics(now: datetime) -> bytes:
    ns = int(now.timestamp() * 1e9)
    points = [
        {"asDouble": 0.12 + (0.9 if i > 27 else 0.0), "timeUnixNano": str(ns - (30 - i) * 10**10)}
        for i in range(30)
    ]
    doc = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                "scopeMetrics": [
                    {
                        "scope": {"name": "checkout.http"},
                        "metrics": [
                            {
                                "name": "http.server.request.duration.p95",
                                "unit": "s",
                                "gauge": {"dataPoints": points},
                            },
                            {
                                "name": "http.server.request.count",
                                "unit": "1",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [
                                        {
                                            "asInt": str(1000 + 50 * i),
                                            "timeUnixNano": str(ns - (30 - i) * 10**10),
                                            "startTimeUnixNano": str(ns - 3600 * 10**9),
                                            "attributes": [
                                                {"key": "http.route", "value": {"stringValue": "/pay"}}
                                            ],
                                        }
                                        for i in range(30)
                                    ],
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }
    return json.dumps(doc).encode()


def _otlp_logs(now: datetime) -> bytes:
    ns = int(now.timestamp() * 1e9)
    records = [
        {
            "timeUnixNano": str(ns - i * 10**9),
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": {"stringValue": f"payment gateway timeout after 5s (order {1000 + i})"},
            "attributes": [{"key": "retry", "value": {"intValue": str(i % 3)}}],
        }
        for i in range(20)
    ]
    records.append(
        {
            "timeUnixNano": str(ns),
            "severityNumber": 9,
            "severityText": "INFO",
            "body": {"stringValue": "checkout started"},
        }
    )
    doc = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]},
                "scopeLogs": [{"scope": {"name": "payments.gateway"}, "logRecords": records}],
            }
        ]
    }
    return json.dumps(doc).encode()


def _exposition() -> bytes:
    return (
        b"# HELP queue_depth Jobs waiting.\n# TYPE queue_depth gauge\n"
        b'queue_depth{service="cart",queue="emails"} 42\n'
        b"# TYPE http_requests_total counter\n"
        b'http_requests_total{service="cart",code="200"} 1027\n'
        b'http_requests_total{service="cart",code="500"} 3\n'
    )


def _alertmanager(now: datetime, status: str) -> bytes:
    starts = now - timedelta(minutes=3)
    alert = {
        "status": status,
        "labels": {
            "alertname": "HighErrorRate",
            "service": "checkout",
            "severity": "page",
            "job": "checkout",
        },
        "annotations": {"summary": "5xx ratio above 2% for 10m"},
        "startsAt": _iso(starts),
        "endsAt": _iso(now) if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.local:9090/graph?g0.expr=...",
        "fingerprint": "c5a1f2e3b4d59687",
    }
    doc = {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "opsloop",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [alert],
    }
    return json.dumps(doc).encode()


def _pagerduty(token: str, action: str) -> bytes:
    doc: dict[str, Any] = {"routing_key": token, "event_action": action, "dedup_key": "db-1-disk"}
    if action == "trigger":
        doc["payload"] = {
            "summary": "db-1 disk 91% full",
            "source": "db-1.prod",
            "severity": "warning",
            "component": "postgres",
            "group": "storage",
            "class": "disk",
        }
    return json.dumps(doc).encode()


def _cloudevents(now: datetime) -> bytes:
    deploy = {
        "specversion": "1.0",
        "id": "deploy-checkout-42",
        "source": "/ci/pipelines/checkout",
        "type": "dev.cdevents.service.deployed.0.1.1",
        "time": _iso(now - timedelta(minutes=6)),
        "data": {
            "context": {
                "id": "deploy-checkout-42",
                "source": "/ci/pipelines/checkout",
                "type": "dev.cdevents.service.deployed.0.1.1",
                "version": "0.3.0",
                "timestamp": _iso(now - timedelta(minutes=6)),
            },
            "subject": {
                "id": "checkout",
                "source": "/ci/pipelines/checkout",
                "type": "service",
                "content": {"environment": {"id": "production"}, "artifactId": "pkg:oci/checkout@v2.4.1"},
            },
        },
    }
    note = {
        "specversion": "1.0",
        "id": "feature-flag-7",
        "source": "/flags",
        "type": "com.example.flag.toggled",
        "time": _iso(now - timedelta(minutes=4)),
        "subject": "checkout",
        "data": {"flag": "new-payment-flow", "enabled": True, "service": "checkout"},
    }
    return json.dumps([deploy, note]).encode()


def steps(token: str, now: datetime) -> list[Step]:
    """Every payload of the demo, in the order an incident would unfold."""
    bearer = {"Authorization": f"Bearer {token}"}
    rw = dict(
        bearer,
        **REQUEST_HEADERS,
    )
    js = dict(bearer, **{"Content-Type": "application/json"})
    topo = (
        (SAMPLES / "topology.yaml").read_bytes()
        if (SAMPLES / "topology.yaml").exists()
        else b"services: []\n"
    )
    return [
        Step(
            "topology (CMDB YAML)",
            "PUT",
            "/api/v1/topology",
            topo,
            dict(bearer, **{"Content-Type": "application/yaml"}),
            200,
        ),
        Step(
            "Prometheus remote-write (snappy protobuf)", "POST", "/api/v1/write", _node_metrics(now), rw, 204
        ),
        Step(
            "Prometheus text exposition push",
            "POST",
            "/api/v1/import/prometheus",
            _exposition(),
            dict(bearer, **{"Content-Type": "text/plain; version=0.0.4"}),
            204,
        ),
        Step("OTLP/HTTP metrics (JSON)", "POST", "/v1/metrics", _otlp_metrics(now), js, 200),
        Step("OTLP/HTTP logs (JSON)", "POST", "/v1/logs", _otlp_logs(now), js, 200),
        Step(
            "CloudEvents batch with a CDEvents deployment",
            "POST",
            "/api/v1/events",
            _cloudevents(now),
            dict(bearer, **{"Content-Type": "application/cloudevents-batch+json"}),
            202,
        ),
        Step(
            "Alertmanager webhook v4 (firing)",
            "POST",
            "/api/v1/alerts/alertmanager",
            _alertmanager(now, "firing"),
            js,
            200,
        ),
        Step(
            "PagerDuty Events v2 trigger",
            "POST",
            "/v2/enqueue",
            _pagerduty(token, "trigger"),
            {"Content-Type": "application/json"},
            202,
        ),
        Step(
            "PagerDuty Events v2 acknowledge",
            "POST",
            "/v2/enqueue",
            _pagerduty(token, "acknowledge"),
            {"Content-Type": "application/json"},
            202,
        ),
        Step(
            "Alertmanager webhook v4 (resolved)",
            "POST",
            "/api/v1/alerts/alertmanager",
            _alertmanager(now, "resolved"),
            js,
            200,
        ),
        Step(
            "the same remote-write batch again (re-delivery)",
            "POST",
            "/api/v1/write",
            _node_metrics(now),
            rw,
            204,
        ),
    ]


def _opsloop(*args: str) -> list[str]:
    exe = shutil.which("opsloop", path=str(Path(sys.executable).parent)) or "opsloop"
    return [exe, *args]


def run_demo(db: str, console: Console, keep: bool = False) -> dict[str, Any]:
    """Run the whole demo against a fresh database; return the store summary."""
    from api.report import print_summary, store_summary
    from core.store import Store

    for suffix in ("", ".wal"):
        Path(db + suffix).unlink(missing_ok=True)
    console.rule("[bold]opsloop demo: ingest")
    sample = SAMPLES / "metrics.csv"
    if sample.exists():
        console.print(f"[bold]1.[/] bulk-load [cyan]{sample.name}[/] with [green]opsloop ingest[/]")
        out = subprocess.run(
            _opsloop("ingest", str(sample), "--db", db, "--json"), capture_output=True, text=True, check=True
        )
        report = json.loads(out.stdout.strip().splitlines()[-1])
        console.print(
            f"   {report['rows']:,} rows in {report['series']} series from {report['files']} file "
            f"in {report['seconds']:.2f} s"
        )
    with Store(db) as store:
        token = store.create_token(["ingest", "read", "write"], "demo")
    port = _free_port()
    console.print(f"[bold]2.[/] start [green]opsloop serve[/] on 127.0.0.1:{port} (token auth on)")
    env = dict(os.environ, OPSLOOP_LOG_LEVEL="warning")
    server = subprocess.Popen(_opsloop("serve", "--db", db, "--port", str(port)), env=env)
    failures = 0
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        _wait_ready(f"http://127.0.0.1:{port}", server)
        console.print("[bold]3.[/] send every wire format the way real tools do")
        now = datetime.now(UTC)
        table = Table("step", "endpoint", "answer", "bytes", "ms", box=None, pad_edge=False)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for step in steps(token, now):
                t0 = time.perf_counter()
                r = client.request(step.method, step.path, content=step.body, headers=step.headers)
                ms = (time.perf_counter() - t0) * 1000
                ok = r.status_code == step.expect
                failures += not ok
                answer = (
                    plain(r.status_code, "green") if ok else plain(f"{r.status_code} {r.text[:120]}", "red")
                )
                table.add_row(
                    step.title, f"{step.method} {step.path}", answer, f"{len(step.body):,}", f"{ms:.0f}"
                )
            metrics = client.get("/metrics").text
        console.print(table)
        samples = [ln for ln in metrics.splitlines() if ln.startswith("opsloop_ingest_samples_total")]
        console.print("[bold]4.[/] opsloop's own /metrics says:")
        for line in samples:
            console.print(f"   {line}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=bearer) as client:
            failures += show_detection(client, console)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    console.rule("[bold]What arrived in DuckDB")
    with Store(db) as store:
        data = store_summary(store)
    print_summary(console, data)
    data["incidents"] = show_incidents(db, console)
    from api.demo_resolve import run_resolve_demo  # Resolve: a runbook restores one fault, one rolls back

    failures += run_resolve_demo(console)
    if not keep:
        console.print(f"(database kept at {db}; explore it with [green]opsloop summary --db {db}[/])")
    if failures:
        raise SystemExit(f"{failures} demo step(s) did not get the expected answer")
    return data


def show_incidents(db: str, console: Console) -> list[dict[str, Any]]:
    """Simulate a faulty estate, replay it through every stage, show the incidents against the truth."""
    from api.cli.incidents import incidents_table
    from api.common import incident_page
    from api.replay import replay
    from core.store import Store
    from detect.incidents.scoring import score_scenario
    from ingest.simulator import simulate

    console.rule("[bold]opsloop demo: from signals to incidents")
    base = Path(db).with_suffix("")
    scenario, incidents_db = Path(f"{base}-scenario"), f"{base}-incidents.duckdb"
    for suffix in ("", ".wal"):
        Path(incidents_db + suffix).unlink(missing_ok=True)
    summary = simulate(scenario, seed=3, force=True)
    console.print(
        f"[bold]6.[/] [green]opsloop simulate --out {scenario} --seed 3[/]: {summary.services} services, "
        f"{summary.series} series, {summary.points:,} points over 2 days, {len(summary.faults)} injected faults, "
        f"{len(summary.red_herrings)} harmless deploys"
    )
    console.print(
        f"[bold]7.[/] [green]opsloop replay {scenario} --db {incidents_db}[/] (event time, every stage)"
    )
    result = replay(scenario, incidents_db)
    console.print(f"   {result.points:,} points replayed in {result.seconds:.1f} s")
    truth = json.loads((scenario / "truth.json").read_text())
    with Store(incidents_db, read_only=True) as store:
        items: list[dict[str, Any]] = incident_page(store, limit=100)["items"]
        score = score_scenario(store, truth)
    console.print(incidents_table(items, title="incidents (opsloop incidents --db ...)"))
    table = Table(
        "fault", "kind", "root cause", "visible at", "affected", title="what the simulator injected"
    )
    for f in truth["faults"]:
        table.add_row(f["id"], f["kind"], f["root_cause"], f["visible_at"], str(len(f["affected"])))
    console.print(table)
    ttd = ", ".join(f"{t:.0f}" for t in score.ttd_intervals)
    console.print(
        f"   {score.detected}/{score.faults} faults became incidents; {score.true_incidents}/{score.incidents} "
        f"incidents are real faults; {score.alerts} alerts in all; time to detect (sample intervals): {ttd}"
    )
    show_diagnoses(items, truth, score.rca_ranks, incidents_db, console)
    show_slos(incidents_db, console)
    return items


def show_diagnoses(
    items: list[dict[str, Any]], truth: dict[str, Any], ranks: list[int], db: str, console: Console
) -> None:
    """Each incident's leading hypotheses beside the injected root cause, and one in full."""
    from api.cli.diagnose import hypotheses_table

    console.print(
        f"[bold]8.[/] Diagnose ran as each incident opened and gained alerts "
        f"([green]opsloop diagnose INC-n --db {db}[/] re-runs it):"
    )
    table = Table("incident", "1st hypothesis", "2nd", "3rd", title="ranked contributing factors")
    for i in sorted(items, key=lambda i: i["opened_at"]):
        cells = [f"{h['service']} ({h['kind']}, {h['score']:.2f})" for h in i["hypotheses"][:3]]
        table.add_row(i["id"], *(cells + ["-"] * (3 - len(cells))))
    console.print(table)
    firsts = sum(1 for r in ranks if r == 1)
    console.print(
        f"   the injected root cause ranks first for {firsts}/{len(ranks)} faults "
        f"(within the top 3 for {sum(1 for r in ranks if 0 < r <= 3)}/{len(ranks)})"
    )
    first = min(items, key=lambda i: i["opened_at"], default=None)
    if first is not None and first["hypotheses"]:
        console.print(hypotheses_table(first["hypotheses"][:3], title=f"{first['id']}: {first['title']}"))
        for step in first["course_of_action"]:
            console.print(f"   {step}", markup=False)


def show_slos(db: str, console: Console) -> None:
    """The scenario's SLOs at the end of the replay, and the backlog items the budget policy made."""
    from api.cli.slo import slo_table
    from api.convert import slo_to_wire
    from core.store import Store
    from slo.backlog_repository import list_items
    from slo.repository import latest_statuses, load_specs, lowest_budgets

    console.print(
        "[bold]9.[/] the error-budget loop: SLOs evaluated every 10 min of event time during the replay"
    )
    with Store(db, read_only=True) as store:
        statuses = latest_statuses(store)
        slos = [slo_to_wire(spec, statuses.get(spec.name)) for spec in load_specs(store)]
        items = list_items(store, limit=20)
        lowest = lowest_budgets(store)
    console.print(slo_table(slos, title="SLOs (opsloop slo status --db ...)"))
    console.print("   lowest budget left during the run: " + ", ".join(f"{n} {v:.0%}" for n, v in lowest))
    table = Table(
        "item",
        "SLO",
        "cause",
        "status",
        "WSJF",
        "capacity",
        "title",
        title="product backlog (GET /api/v1/backlog)",
    )
    for stored in items:
        item = stored.item
        table.add_row(item.id, item.slo, item.cause, item.status, f"{item.priority_score:.2f}",
                      f"{item.capacity_share:.0%}", item.title)  # fmt: skip
    if items:
        console.print(table)
    else:
        console.print("   no SLO was at risk, so the policy filed nothing")


def _metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in an exposition text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def wait_detection_idle(client: httpx.Client, timeout: float = 60) -> float:
    """Wait until the engine has scored everything committed; return the points it scored."""
    deadline = time.monotonic() + timeout
    last = -1.0
    while time.monotonic() < deadline:
        text = client.get("/metrics").text
        scored = _metric(text, "opsloop_detect_points_scored_total")
        if _metric(text, "opsloop_detect_backlog_points") == 0 and scored == last and scored > 0:
            return scored
        last = scored
        time.sleep(0.5)
    raise SystemExit("detection did not catch up within a minute")


def show_detection(client: httpx.Client, console: Console) -> int:
    """Step 5: what the streaming detector found, the band it learned, and operator feedback."""
    scored = wait_detection_idle(client)
    console.print(
        f"[bold]5.[/] detect: the server scored all {scored:,.0f} committed points against each series' "
        "learned normal range (no static thresholds)"
    )
    found = client.get("/api/v1/anomalies", params={"limit": 1000}).json()["items"]
    by_series: dict[str, list[dict[str, Any]]] = {}
    for a in found:
        by_series.setdefault(a["series_id"], []).append(a)
    table = Table(
        "service",
        "metric",
        "first",
        "last",
        "points",
        "peak value",
        "expected (band)",
        "prob.",
        "judged by",
        box=None,
    )
    ranked = sorted(by_series.values(), key=lambda xs: max(a["probability"] for a in xs), reverse=True)
    console.print(f"   {len(found)} anomalies in {len(by_series)} series; the strongest first:")
    for items in ranked[:6]:
        items.sort(key=lambda a: a["ts"])
        peak = max(items, key=lambda a: a["probability"])
        table.add_row(
            str(peak["service"]),
            str(peak["name"]),
            items[0]["ts"][11:16],
            items[-1]["ts"][11:16],
            str(len(items)),
            f"{peak['value']:.4g}",
            f"{peak['expected']:.3g} ({peak['lower']:.3g} .. {peak['upper']:.3g})",
            f"{peak['probability']:.3f}",
            str(peak["detector"]).split("/")[-1],
        )
    console.print(table)
    if not found:
        console.print("   [red]no anomaly found: the sample's checkout latency spike should be one[/]")
        return 1
    # an operator marks the strangest point of the quietest series a false positive
    noise = min(by_series.values(), key=len)[0]
    r = client.post(
        f"/api/v1/anomalies/{noise['id']}/feedback",
        json={"verdict": "false_positive", "user": "demo", "comment": "expected during the load test"},
    )
    if r.status_code != 200:
        console.print(f"   [red]feedback answered {r.status_code}: {r.text[:200]}[/]")
        return 1
    fb = r.json()
    console.print(
        f"   feedback [cyan]false_positive[/] on {noise['service']} {noise['name']}: that series' "
        f"threshold {fb['threshold_before']:.4f} -> {fb['threshold']:.4f} (recorded, within bounds)"
    )
    return 0


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("opsloop serve exited during start-up")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("opsloop serve did not become ready")
