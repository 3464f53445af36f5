"""``opsloop detect`` backfills and resumes; ``opsloop anomalies`` lists what it found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from api.cli import app
from api.cli.detect import register
from core.batch import WriteBatch
from core.store import Store
from ingest.points import PointsBuilder

register(app)
runner = CliRunner()
STEP_US = 60_000_000


def write_points(db: str, start: int, n: int, spike: int | None = None) -> None:
    values = 50.0 + np.sin(np.arange(start, start + n) / 3.0)
    if spike is not None:
        values[spike - start] = 5_000.0
    b = PointsBuilder()
    b.add("queue_depth", (("service", "billing"),), np.arange(start, start + n) * STEP_US, values)
    series, points = b.build()
    with Store(db) as store:
        store.write(WriteBatch(source="test", series=series, points=points))


def test_backfill_resumes_and_anomalies_are_listed(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    write_points(db, 0, 100)
    first = runner.invoke(app, ["detect", "--db", db])
    assert first.exit_code == 0, first.output
    assert "scored 100 points" in first.output
    write_points(db, 100, 50, spike=120)
    second = runner.invoke(app, ["detect", "--db", db])
    assert "scored 50 points" in second.output  # resumed from the snapshot, not from the start
    listed = runner.invoke(app, ["anomalies", "--db", db, "--json", "--service", "billing"])
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.stdout)
    assert [a["value"] for a in found] == [5_000.0]
    assert found[0]["name"] == "queue_depth" and found[0]["direction"] == "up"
    table = runner.invoke(app, ["anomalies", "--db", db, "--limit", "5"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "queue_depth" in table.output
    none = runner.invoke(app, ["anomalies", "--db", db, "--json", "--since", "2099-01-01T00:00:00Z"])
    assert json.loads(none.stdout) == []
    bad = runner.invoke(app, ["anomalies", "--db", db, "--since", "soon"])
    assert bad.exit_code != 0
