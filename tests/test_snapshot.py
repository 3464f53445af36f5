"""Parquet snapshots: one instant for every table, whole directories only, the newest N kept."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

from api.server_file import server_file_for
from core.settings import Settings
from core.snapshot import EXCLUDED_TABLES, export_snapshot, snapshots_in
from core.store import Store
from tests.conftest import LiveServer, free_port, serving


def push(live: LiveServer, start: int, n: int) -> None:
    """One exposition of ``n`` new series with one sample each: every commit adds as many points as series."""
    text = "".join(f'snap_total{{pod="p{v}"}} {v} 1700000000000\n' for v in range(start, start + n))
    with live.client() as c:
        r = c.post("/api/v1/import/prometheus", content=text, headers={"Content-Type": "text/plain"})
        assert r.status_code == 204, r.text


def rows_of(snapshot: Path, table: str) -> int:
    return int(pq.read_metadata(snapshot / f"{table}.parquet").num_rows)


def test_export_writes_every_main_table_and_keeps_the_newest(store: Store, tmp_path: Path) -> None:
    store.create_token(["read"], "never exported")
    out = tmp_path / "snaps"
    made = [export_snapshot(store, out, keep=2) for _ in range(3)]
    kept = snapshots_in(out)
    assert kept == [m.path for m in made[1:]]
    assert (out / "latest").resolve() == made[-1].path.resolve()
    files = {p.stem for p in made[-1].path.glob("*.parquet")}
    assert "points" in files and "series" in files and "incidents" in files
    assert not files & EXCLUDED_TABLES
    manifest = json.loads((made[-1].path / "manifest.json").read_text())
    assert manifest["rows"] == {t: rows_of(made[-1].path, t) for t in files}


def test_snapshots_taken_while_the_server_ingests_are_consistent(tmp_path: Path) -> None:
    out = tmp_path / "snaps"
    settings = Settings(
        db=str(tmp_path / "snap.duckdb"),
        port=free_port(),
        detect_enabled=False,
        snapshot_dir=out,
        snapshot_interval_s=0.2,
        snapshot_keep=50,
    )
    server_file = server_file_for(settings.db)
    assert server_file is not None
    with serving(settings) as live:
        writer = threading.Thread(target=lambda: [push(live, k * 50, 50) for k in range(20)])
        writer.start()
        seen_dirs: set[str] = set()
        while writer.is_alive():
            seen_dirs.update(p.name for p in out.glob("*") if p.name.startswith("snapshot-"))
            time.sleep(0.01)
        writer.join()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            (out / "latest").exists() and rows_of(out / "latest", "points") == 1000
        ):
            time.sleep(0.05)
        assert server_file.exists()
    # the server removes the file with its bootstrap secret when it stops
    assert not server_file.exists()
    snaps = snapshots_in(out)
    assert len(snaps) >= 3
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")], "a temporary directory was left"
    counts = []
    for snap in snaps:
        manifest = json.loads((snap / "manifest.json").read_text())
        points, series = rows_of(snap, "points"), rows_of(snap, "series")
        assert manifest["rows"]["points"] == points and manifest["rows"]["series"] == series
        # every commit adds one point per new series: tables from one instant agree
        assert points == series, snap.name
        counts.append(points)
    assert counts == sorted(counts) and counts[-1] == 1000 and len(set(counts)) >= 2
