"""Scraping a real prometheus_client exporter on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from core.errors import ConfigError
from core.store import Store
from core.telemetry import SCRAPES
from ingest.scrape import Scraper, load_config, targets_of
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter() -> Iterator[str]:
    """A prometheus_client HTTP exporter with a counter and a gauge that exposes a ``job`` label."""
    reg = CollectorRegistry()
    Counter("orders", "Orders placed.", ["shop"], registry=reg).labels("eu").inc(5)
    Gauge("temperature_celsius", "Temperature.", ["job"], registry=reg).labels("thermo").set(21.5)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=reg)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def config_file(tmp_path: Path, *targets: str) -> Path:
    path = tmp_path / "scrape.yml"
    path.write_text(
        "scrape_interval: 15s\n"
        "scrape_configs:\n"
        "  - job_name: shop\n"
        "    scrape_interval: 5s\n"
        "    static_configs:\n"
        f"      - targets: {json.dumps(list(targets))}\n"
        "        labels: {env: test}\n"
    )
    return path


def series_rows(store: Store) -> list[tuple[str, dict[str, str], float]]:
    rows = store.query("SELECT s.name, s.labels, p.value FROM points p JOIN series s USING (series_id)")
    return [(r[0], dict(r[1]), r[2]) for r in rows]


def test_scrape_once_lands_series_with_job_instance_and_up(
    tmp_path: Path, store: Store, exporter: str
) -> None:
    targets = load_config(config_file(tmp_path, exporter))
    before = SCRAPES.labels("success")._value.get()
    (result,) = asyncio.run(Scraper(store).scrape_once(targets))
    assert result.up and not result.error and result.samples > 0
    assert SCRAPES.labels("success")._value.get() == before + 1
    rows = series_rows(store)
    base = {"job": "shop", "instance": exporter, "env": "test"}
    assert ("orders_total", dict(base, shop="eu"), 5.0) in rows
    # the exposed job label clashes with the target's: renamed, as Prometheus does
    assert ("temperature_celsius", dict(base, exported_job="thermo"), 21.5) in rows
    assert ("up", base, 1.0) in rows
    assert [r for r in rows if r[0] == "scrape_duration_seconds" and r[1] == base and r[2] > 0]
    assert ("scrape_samples_scraped", base, float(result.samples)) in rows
    # OpenMetrics was negotiated: the *_created samples are metadata and not stored
    assert not [r for r in rows if r[0].endswith("_created")]
    kinds = dict(store.query("SELECT name, kind FROM series"))
    assert kinds["orders_total"] == "counter" and kinds["up"] == "gauge"


def test_unreachable_target_gives_up_zero(tmp_path: Path, store: Store, exporter: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    targets = load_config(config_file(tmp_path, exporter, dead))
    results = asyncio.run(Scraper(store).scrape_once(targets))
    by_instance = {r.target.instance: r for r in results}
    assert by_instance[exporter].up and not by_instance[dead].up
    assert by_instance[dead].error
    ups = {r[1]["instance"]: r[2] for r in series_rows(store) if r[0] == "up"}
    assert ups == {exporter: 1.0, dead: 0.0}
    assert not [
        r
        for r in series_rows(store)
        if r[1]["instance"] == dead
        and r[0] not in ("up", "scrape_duration_seconds", "scrape_samples_scraped")
    ]


def test_cli_scrape_once_json(tmp_path: Path, exporter: str) -> None:
    db = tmp_path / "cli.duckdb"
    out = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "scrape", "--once", "--json",
         "--config", str(config_file(tmp_path, exporter)), "--db", str(db)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert row["job"] == "shop" and row["instance"] == exporter and row["up"] == 1
    with Store(str(db)) as store:
        assert ("up", {"env": "test", "instance": exporter, "job": "shop"}, 1.0) in series_rows(store)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"scrape_configs": []}, "scrape_configs"),
        ({"scrape_configs": [{"job_name": "a", "static_configs": [{"target": ["x:1"]}]}]}, "target"),
        ({"scrape_interval": "15 seconds", "scrape_configs": [{"job_name": "a"}]}, "scrape_interval"),
        ({"scrape_configs": [{"job_name": "a"}, {"job_name": "a"}]}, "duplicate job"),
        (
            {"scrape_configs": [{"job_name": "a", "static_configs": [{"targets": ["http://x/metrics"]}]}]},
            "host:port",
        ),
    ],
    ids=["no-jobs", "typo", "bad-duration", "dup-job", "url-target"],
)
def test_config_errors_name_the_field(config: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        targets_of(config)


def test_config_defaults_and_global_block() -> None:
    (target,) = targets_of(
        {
            "global": {"scrape_interval": "1m"},
            "scrape_configs": [
                {"job_name": "node", "metrics_path": "probe", "static_configs": [{"targets": ["h:9100"]}]}
            ],
        }
    )
    assert target.url == "http://h:9100/probe"
    assert target.interval_s == 60.0 and target.timeout_s == 10.0
    assert dict(target.labels) == {"job": "node", "instance": "h:9100"}


def test_loop_scrapes_on_the_interval_until_stopped(store: Store, exporter: str) -> None:
    targets = targets_of(
        {
            "scrape_configs": [
                {"job_name": "j", "scrape_interval": "100ms", "static_configs": [{"targets": [exporter]}]}
            ]
        }
    )
    seen: list[bool] = []

    async def go() -> None:
        stop = asyncio.Event()

        def on_result(result: object) -> None:
            seen.append(getattr(result, "up", False))
            if len(seen) == 3:
                stop.set()

        await Scraper(store).run(targets, on_result, stop)

    asyncio.run(asyncio.wait_for(go(), 60))
    assert seen == [True, True, True]
    assert (
        store.query("SELECT count(*) FROM points p JOIN series s USING (series_id) WHERE s.name = 'up'")[0][0]
        == 3
    )


def test_shipped_sample_config_loads() -> None:
    targets = load_config(ROOT / "samples" / "scrape.yml")
    assert [(t.job, t.url, t.interval_s) for t in targets] == [
        ("node", "http://127.0.0.1:9100/metrics", 15.0)
    ]
