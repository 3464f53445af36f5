"""``opsloop backfill`` against a real Prometheus (Debian) holding hours of synthetic history.

The history is written as OpenMetrics and turned into TSDB blocks with ``promtool tsdb
create-blocks-from openmetrics``; Prometheus serves it from a temporary storage directory
on 127.0.0.1. The step (2 s over 8 h) needs more than Prometheus' 11,000 points a query, so
the backfill must chunk; the test reads the reference answer itself in pieces of another
size and compares point for point. Then the detector must be primed: the series are past
their warm-up and a next point far outside the band is flagged and alerted at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from api.loop import assemble
from core.batch import WriteBatch
from core.series import series_id
from core.settings import Settings
from core.store import Store
from detect import repository
from ingest.points import PointsBuilder
from tests.conftest import free_port
from tests.integration.processes import Process, answers, opsloop_command
from tests.integration.test_prometheus_alertmanager import binary

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

HOURS = 8
RAW_STEP_S = 5
STEP_S = 2
ROOT = Path(__file__).resolve().parents[2]
SERIES = {  # (name, labels) -> (level, noise)
    ("temp", (("host", "a"),)): (20.0, 0.5),
    ("temp", (("host", "b"),)): (35.0, 1.0),
    ("queue_depth", (("job", "worker"),)): (100.0, 5.0),
}


def openmetrics(end_s: int) -> str:
    """HOURS of history per series, ending a minute before ``end_s``, off the whole second."""
    rng = np.random.default_rng(11)
    n = HOURS * 3600 // RAW_STEP_S
    ts = end_s - 60 - (n - 1) * RAW_STEP_S + np.arange(n) * RAW_STEP_S + 0.5
    lines: list[str] = []
    for name in sorted({name for name, _ in SERIES}):
        lines.append(f"# TYPE {name} gauge")
        for (metric, labels), (level, noise) in SERIES.items():
            if metric != name:
                continue
            values = level + noise * rng.standard_normal(n) + 0.1 * level * np.sin(ts / 1800.0)
            if metric == "queue_depth":  # a backlog an hour before the end: tripled for 15 min
                values[(ts > end_s - 3600) & (ts <= end_s - 2700)] *= 3.0
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines += [f"{name}{{{text}}} {v:.4f} {t:.1f}" for t, v in zip(ts, values, strict=True)]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    prom_bin, promtool = binary("prometheus"), binary("promtool")
    tmp = tmp_path_factory.mktemp("prom")
    source = tmp / "history.om"
    source.write_text(openmetrics(int(time.time())))
    data = tmp / "data"
    made = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1m"}, "scrape_configs": []}))
    prom = Process(
        "prometheus",
        [
            prom_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp / "prometheus.log",
    )
    prom.start()
    url = f"http://127.0.0.1:{port}"
    try:
        prom.wait_until("/-/ready", lambda: answers(f"{url}/-/ready"), 30)
        yield url
    finally:
        assert prom.stop(timeout=10), prom.tail()


def run_backfill(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPSLOOP_LOG_LEVEL": "warning"}
    return subprocess.run(
        [*opsloop_command(), "backfill", *args], capture_output=True, text=True, timeout=180, env=env
    )


def reference(
    url: str, name: str, labels: tuple[tuple[str, str], ...], start_ms: int, end_ms: int
) -> list[tuple[int, float]]:
    """Prometheus' own answer for one series over the backfill's grid, read in 4,000-point pieces."""
    sel = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"
    out: list[tuple[int, float]] = []
    step = STEP_S * 1000
    lo = start_ms
    while lo <= end_ms:
        hi = min(lo + 3_999 * step, end_ms)
        body = httpx.get(
            f"{url}/api/v1/query_range",
            params={"query": sel, "start": lo / 1000, "end": hi / 1000, "step": STEP_S},
            timeout=30,
        ).json()
        assert body["status"] == "success", body
        for item in body["data"]["result"]:
            out += [(round(float(t) * 1000), float(v)) for t, v in item["values"]]
        lo = hi + step
    return out


def alert_starts(store: Store) -> list[datetime]:
    """When every anomaly alert ever raised started (firing or resolved since)."""
    return [
        r[0]
        for r in store.query("SELECT starts_at FROM alerts WHERE fingerprint LIKE 'anomaly:%' ORDER BY 1")
    ]


def test_backfill_stores_exactly_what_prometheus_answers_across_chunks(
    prometheus: str, tmp_path: Path
) -> None:
    db = tmp_path / "backfill.duckdb"
    args = ["--prometheus", prometheus, "--since", f"{HOURS}h", "--step", f"{STEP_S}s", "--no-prime"]
    done = run_backfill(*args, "--match", "temp", "--match", '{job="worker"}', "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["series"] == len(SERIES)
    start_ms, end_ms = summary["start_ms"], summary["end_ms"]
    assert (end_ms - start_ms) // (STEP_S * 1000) + 1 > 11_000, "the range must need more than one chunk"
    with Store(str(db)) as store:
        total = 0
        for name, labels in SERIES:
            want = reference(prometheus, name, labels, start_ms, end_ms)
            rows = store.query(
                "SELECT epoch_ms(ts), value FROM points WHERE series_id = ? ORDER BY ts",
                [series_id(name, labels)],
            )
            got = [(int(t), float(v)) for t, v in rows]
            assert len(got) == len(want) > 10_000
            assert got == want, f"{name}{dict(labels)}: stored points differ from Prometheus' answer"
            total += len(want)
        assert summary["points"] == total
    again = run_backfill(*args, "--match", "temp", "--db", str(db), "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["skipped_points"] > 0
    with Store(str(db)) as store:
        dupes = store.query(
            "SELECT count(*) FROM (SELECT series_id, ts FROM points GROUP BY ALL HAVING count(*) > 1)"
        )
        assert dupes == [(0,)], "a second backfill must not store a point twice"


def test_backfill_primes_detection_so_the_first_live_point_is_judged(prometheus: str, tmp_path: Path) -> None:
    db = tmp_path / "primed.duckdb"
    done = run_backfill(
        "--prometheus", prometheus, "--since", "2h", "--step", f"{RAW_STEP_S}s", "--match", "temp", "--db", str(db),
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    end_ms = json.loads(done.stdout)["end_ms"]
    with Store(str(db)) as store:
        # every series is past its warm-up, scored on all of its history, and history raised no alert
        ids, scored, _ = repository.series_history(store)
        stored = dict(store.query("SELECT series_id, count(*) FROM points GROUP BY series_id"))
        assert len(ids) == 2 and all(
            stored[int(i)] == n >= 30 for i, n in zip(ids, scored.tolist(), strict=True)
        )
        assert not alert_starts(store), "history must raise no alerts by default"

        # what `opsloop serve` builds on this file: the first far-out live point is flagged and alerts
        loop = assemble(store, Settings(db=str(db)), live=False)
        name, labels = next(iter(SERIES))
        next_us = (end_ms + RAW_STEP_S * 1000) * 1000
        b = PointsBuilder()
        b.add(name, labels, np.array([next_us, next_us + RAW_STEP_S * 1_000_000]), np.array([400.0, 410.0]))
        series, points = b.build()
        store.write(WriteBatch(source="test", series=series, points=points))
        loop.engine.catch_up()
        loop.incidents.process(datetime.fromtimestamp(next_us / 1e6 + RAW_STEP_S, UTC).replace(tzinfo=None))
        at = datetime.fromtimestamp(next_us / 1e6, UTC).replace(tzinfo=None)
        assert at in [a.ts for a in repository.list_anomalies(store, series_ids=[series_id(name, labels)])]
        assert alert_starts(store) == [at]


def test_a_bad_selector_fails_with_prometheus_error_text(prometheus: str, tmp_path: Path) -> None:
    done = run_backfill(
        "--prometheus", prometheus, "--match", "temp{host=", "--db", str(tmp_path / "x.duckdb")
    )
    assert done.returncode == 1
    message = done.stderr.strip()
    assert message.startswith("backfill failed:") and "bad_data" in message and "parse error" in message
    assert len(message.splitlines()) == 1, message


def test_history_alerts_only_when_asked(prometheus: str, tmp_path: Path) -> None:
    # at the scrape interval (each grid point one raw sample), as an operator would run it
    args = ["--prometheus", prometheus, "--since", "2h", "--step", f"{RAW_STEP_S}s", "--match", "queue_depth"]
    quiet, loud = tmp_path / "quiet.duckdb", tmp_path / "loud.duckdb"
    for db, extra in ((quiet, []), (loud, ["--alert-history"])):
        done = run_backfill(*args, *extra, "--db", str(db), "--json")
        assert done.returncode == 0, done.stderr
    with Store(str(quiet)) as store:
        assert repository.count_anomalies(store) > 0, "the backlog is in the history"
        assert not alert_starts(store)
    with Store(str(loud)) as store:
        fired = alert_starts(store)
        assert fired, "--alert-history must raise the alert the backlog would have raised"
        end_s = json.loads(done.stdout)["end_ms"] / 1000
        onsets = [t.replace(tzinfo=UTC).timestamp() for t in fired]
        assert any(end_s - 3700 <= t <= end_s - 2700 for t in onsets), "an alert must start at the backlog"
