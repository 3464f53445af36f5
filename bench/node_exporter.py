"""Steady-state false alarms on real host metrics: node exporter through Prometheus into ``opsloop serve``.

A real Prometheus scrapes a real node exporter (and itself) every ``scrape_s`` seconds and
remote-writes to an ``opsloop serve`` subprocess with the shipped settings, for ``minutes``
minutes of an ordinary, quiet machine. Nothing is injected, so every anomaly is a false
alarm: the figure is the share of scored series that got at least one, against the
acceptance target of fewer than 1 %. Counters are scored as their ``:rate`` series, raw
running totals never (see ``ingest.rates``); the split between kinds is printed too.

Nothing here is tuned: the detector runs with its defaults; the scrape interval is the
only knob, an environment choice (5 s so that ten minutes hold enough points to get past
each series' warm-up of 30 points, which 15 s would spend 7.5 of the 10 minutes on).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from core.store import Store

__all__ = ["NodeExporterResult", "run_node_exporter_bench"]


@dataclass(frozen=True, slots=True)
class NodeExporterResult:
    """What ``minutes`` of steady state gave."""

    minutes: float
    scrape_s: float
    series: int
    raw_cumulative_series: int
    scored_series: int
    anomalies: int
    anomalous_series: int
    points: int

    @property
    def anomalous_share(self) -> float:
        """Share of scored series with at least one anomaly (the acceptance figure)."""
        return self.anomalous_series / self.scored_series if self.scored_series else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Figures as plain data (for ``--json``)."""
        return {**asdict(self), "anomalous_share": self.anomalous_share}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(
        f"{' / '.join(names)} not installed (apt-get install prometheus prometheus-node-exporter)"
    )


def _wait(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def run_node_exporter_bench(
    minutes: float = 10.0,
    scrape_s: float = 5.0,
    progress: Callable[[str], None] | None = None,
    keep: Path | None = None,
) -> NodeExporterResult:
    """Run the stack for ``minutes`` and count what detection flagged (``keep``: copy the database there)."""
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="opsloop-node-bench-") as tmp:
        work = Path(tmp)
        db = work / "opsloop.duckdb"
        with Store(str(db)) as store:
            token = store.create_token(["ingest", "read"], "node-exporter bench")
        ops_port, node_port, prom_port = _free_port(), _free_port(), _free_port()
        script = Path(sys.executable).with_name("opsloop")
        serve = (
            [str(script)] if script.exists() else [sys.executable, "-c", "from api.cli import main; main()"]
        )
        config = {
            "global": {"scrape_interval": f"{scrape_s:g}s"},
            "scrape_configs": [
                {"job_name": "node", "static_configs": [{"targets": [f"127.0.0.1:{node_port}"]}]},
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{prom_port}"]}]},
            ],
            "remote_write": [
                {"url": f"http://127.0.0.1:{ops_port}/api/v1/write", "authorization": {"credentials": token}}
            ],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        argvs = {
            "opsloop": [*serve, "serve", "--db", str(db), "--port", str(ops_port)],
            "node-exporter": [
                _binary("prometheus-node-exporter", "node_exporter"),
                f"--web.listen-address=127.0.0.1:{node_port}",
                "--no-collector.systemd",
            ],
            "prometheus": [
                _binary("prometheus"),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
        }
        procs: list[subprocess.Popen[bytes]] = []
        env = {**os.environ, "OPSLOOP_LOG_LEVEL": "warning"}
        try:
            for name, argv in argvs.items():
                log = (work / f"{name}.log").open("ab")
                procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env))
                if name == "opsloop":
                    _wait(f"http://127.0.0.1:{ops_port}/readyz", 60)
            _wait(f"http://127.0.0.1:{prom_port}/-/ready", 60)
            started = time.monotonic()
            while (left := minutes * 60 - (time.monotonic() - started)) > 0:
                say(f"steady state: {left / 60:.1f} min left")
                time.sleep(min(30.0, left))
        finally:
            for proc in reversed(procs):  # Prometheus first, so its last batches still land
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        if keep is not None:
            shutil.copy(db, keep)
        return _count(db, minutes, scrape_s)


def _count(db: Path, minutes: float, scrape_s: float) -> NodeExporterResult:
    from ingest.rates import CUMULATIVE_SQL

    with Store(str(db), read_only=True) as store:

        def one(sql: str) -> int:
            return int(store.query(sql)[0][0])

        return NodeExporterResult(
            minutes=minutes,
            scrape_s=scrape_s,
            series=one("SELECT count(*) FROM series"),
            raw_cumulative_series=one(f"SELECT count(*) FROM series WHERE {CUMULATIVE_SQL}"),
            scored_series=one("SELECT count(DISTINCT series_id) FROM bands"),
            anomalies=one("SELECT count(*) FROM anomalies"),
            anomalous_series=one("SELECT count(DISTINCT series_id) FROM anomalies"),
            points=one("SELECT count(*) FROM points"),
        )
