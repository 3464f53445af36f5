"""End to end with the real thing: Prometheus scrapes node exporter and opsloop, remote-writes to
opsloop, and fires an alert through a real Alertmanager whose webhook posts to opsloop.

Every process listens on 127.0.0.1 with a free port and keeps its data in the test's temp
dir; the system services are never touched. The alert is resolved by reloading Prometheus
with the same rule turned false (``/-/reload``): the rule keeps its name and labels, so
Prometheus carries the active alert over and then sends it as resolved.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import LiveServer, free_port
from tests.integration.processes import Process, answers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

ALERT = "CheckoutIntegrationProbe"
ALERT_LABELS = {"service": "checkout", "severity": "page"}


def binary(*names: str) -> str:
    """Path of the first installed binary among ``names`` (Debian renames some), or skip."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        f"{' / '.join(names)} not installed: run `make integration-deps` "
        "(apt-get install prometheus prometheus-node-exporter prometheus-alertmanager)"
    )


def rules(firing: bool) -> dict[str, Any]:
    """One rule group; the alert fires at once, or (same name and labels) never."""
    expr = "vector(1)" if firing else "vector(1) > 1"
    return {
        "groups": [
            {
                "name": "opsloop-integration",
                "interval": "1s",
                "rules": [
                    {
                        "alert": ALERT,
                        "expr": expr,
                        "for": "0s",
                        "labels": ALERT_LABELS,
                        "annotations": {"summary": "checkout probe alert from the integration test"},
                    }
                ],
            }
        ]
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Stack:
    """Node exporter, Alertmanager and Prometheus wired to one opsloop server."""

    def __init__(self, opsloop: LiveServer, workdir: Path) -> None:
        self.opsloop = opsloop
        self.workdir = workdir
        self.node_port, self.am_port, self.prom_port = free_port(), free_port(), free_port()
        self.prom_url = f"http://127.0.0.1:{self.prom_port}"
        self.am_url = f"http://127.0.0.1:{self.am_port}"
        self.rules_file = workdir / "rules.yml"
        self.processes: list[Process] = []

    def start(self) -> None:
        node_exporter = binary("prometheus-node-exporter", "node_exporter")
        alertmanager = binary("prometheus-alertmanager", "alertmanager")
        prometheus = binary("prometheus")
        opsloop = self.opsloop.url.removeprefix("http://")
        token = self.opsloop.token

        node = self._spawn(
            "node-exporter",
            [
                node_exporter,
                f"--web.listen-address=127.0.0.1:{self.node_port}",
                "--no-collector.systemd",  # no systemd bus in containers/CI; its errors only add noise
            ],
        )
        am_config = write_yaml(
            self.workdir / "alertmanager.yml",
            {
                "route": {
                    "receiver": "opsloop",
                    "group_by": ["alertname", "service"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1m",
                },
                "receivers": [
                    {
                        "name": "opsloop",
                        "webhook_configs": [
                            {
                                "url": f"http://{opsloop}/api/v1/alerts/alertmanager",
                                "send_resolved": True,
                                "http_config": {"authorization": {"credentials": token}},
                            }
                        ],
                    }
                ],
            },
        )
        am = self._spawn(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={am_config}",
                f"--storage.path={self.workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{self.am_port}",
                "--cluster.listen-address=",
            ],
        )
        write_yaml(self.rules_file, rules(firing=True))
        prom_config = write_yaml(
            self.workdir / "prometheus.yml",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(self.rules_file)],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]
                },
                "scrape_configs": [
                    {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{self.node_port}"]}]},
                    {
                        "job_name": "opsloop",
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [opsloop]}],
                    },
                ],
                "remote_write": [
                    {
                        "url": f"http://{opsloop}/api/v1/write",
                        "authorization": {"credentials": token},
                        "queue_config": {
                            "batch_send_deadline": "1s",
                            "min_backoff": "100ms",
                            "max_backoff": "1s",
                        },
                    }
                ],
            },
        )
        prom = self._spawn(
            "prometheus",
            [
                prometheus,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
                "--web.enable-lifecycle",
                # The first evaluation can beat Alertmanager discovery (the alert is dropped);
                # resend after 1s instead of the default 1m.
                "--rules.alert.resend-delay=1s",
            ],
        )
        node.wait_until("/metrics", lambda: answers(f"http://127.0.0.1:{self.node_port}/metrics"), 20)
        am.wait_until("/-/ready", lambda: answers(f"{self.am_url}/-/ready"), 20)
        prom.wait_until("/-/ready", lambda: answers(f"{self.prom_url}/-/ready"), 30)

    def resolve_alert(self) -> None:
        """Turn the rule false and have Prometheus reload it."""
        write_yaml(self.rules_file, rules(firing=False))
        r = httpx.post(f"{self.prom_url}/-/reload", timeout=10)
        assert r.status_code == 200, r.text

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.tail(15)}" for p in self.processes)

    def _spawn(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, self.workdir / f"{name}.log")
        self.processes.append(process)
        process.start()
        return process


@pytest.fixture
def stack(live_server: LiveServer, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(live_server, tmp_path)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def series_with_points(server: LiveServer, prefix: str, job: str) -> list[dict[str, str]]:
    """Label sets of series from ``job`` whose name starts with ``prefix`` and that have points."""
    rows = server.store.query(
        "SELECT s.name, map_entries(s.labels) FROM series s "
        "WHERE starts_with(s.name, ?) AND s.labels['job'] = ? "
        "AND EXISTS (SELECT 1 FROM points p WHERE p.series_id = s.series_id)",
        [prefix, job],
    )
    return [{"__name__": name, **{e["key"]: e["value"] for e in entries}} for name, entries in rows]


def alert_rows(server: LiveServer) -> list[dict[str, Any]]:
    rows = server.store.query(
        "SELECT id, source, status, name, service, severity, summary, labels, ends_at FROM external_alerts "
        "WHERE name = ?",
        [ALERT],
    )
    keys = ("id", "source", "status", "name", "service", "severity", "summary", "labels", "ends_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def test_prometheus_remote_write_and_alertmanager_webhook_land_in_duckdb(
    live_server: LiveServer, stack: Stack
) -> None:
    def check(what: str, condition: Any, timeout: float) -> None:
        try:
            wait_for(what, condition, timeout, every=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{stack.logs()}") from None

    # node exporter -> Prometheus scrape -> remote-write -> DuckDB
    # a scrape's samples may reach us over several remote-write batches: wait for the modes
    check(
        "node_cpu_seconds_total idle/user/system",
        lambda: (
            {"idle", "user", "system"}
            <= {s["mode"] for s in series_with_points(live_server, "node_cpu_seconds_total", "node")}
        ),
        30,
    )
    cpu = series_with_points(live_server, "node_cpu_seconds_total", "node")
    assert {"__name__", "instance", "job", "cpu", "mode"} <= set(cpu[0])
    assert {s["instance"] for s in cpu} == {f"127.0.0.1:{stack.node_port}"}
    assert {"idle", "user", "system"} <= {s["mode"] for s in cpu}

    # opsloop's own /metrics, scraped and written back into opsloop
    check("opsloop_* metrics", lambda: series_with_points(live_server, "opsloop_", "opsloop"), 30)
    names = {s["__name__"] for s in series_with_points(live_server, "opsloop_", "opsloop")}
    assert "opsloop_ingest_requests_total" in names

    # rule fires -> Prometheus -> Alertmanager -> webhook -> external_alerts
    check("the firing alert", lambda: alert_rows(live_server), 30)
    (firing,) = alert_rows(live_server)
    assert firing["source"] == "alertmanager"
    assert firing["status"] == "firing"
    assert (firing["service"], firing["severity"]) == ("checkout", "page")
    assert firing["summary"] == "checkout probe alert from the integration test"
    assert firing["ends_at"] is None
    assert json.loads(firing["labels"]) == {"alertname": ALERT, **ALERT_LABELS}

    # the rule turns false -> resolved notification -> the same row is resolved
    stack.resolve_alert()
    check("the alert to resolve", lambda: alert_rows(live_server)[0]["status"] == "resolved", 60)
    (resolved,) = alert_rows(live_server)
    assert resolved["id"] == firing["id"]
    assert resolved["ends_at"] is not None
    assert json.loads(resolved["labels"]) == json.loads(firing["labels"])
