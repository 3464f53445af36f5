"""Periodic read-only Parquet snapshots of the store, for tools that want files.

Every table of the store except internals (token hashes, detector state blobs, batch
digests, migrations) is written with DuckDB's own Parquet writer from ONE read-only
transaction, so all files show the same instant. They go to a hidden temporary directory
beside the others, with a ``manifest.json`` (time, rows per table) written last, and the
directory is then renamed to ``snapshot-<UTC time>`` in one atomic step: a reader sees a
whole snapshot or none. ``latest`` is a symlink swapped atomically to the newest; only the
newest ``keep`` snapshots are kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.store import Store
from core.worker import Worker

__all__ = ["EXCLUDED_TABLES", "SnapshotWorker", "export_snapshot", "snapshots_in"]

log = logging.getLogger(__name__)

#: Tables never exported: secrets' hashes, opaque state blobs and bookkeeping.
EXCLUDED_TABLES = frozenset({"tokens", "detector_state", "ingest_batches", "schema_migrations"})
PREFIX = "snapshot-"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One exported snapshot: its directory and the rows of each table."""

    path: Path
    taken_at: datetime
    rows: dict[str, int]


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def snapshots_in(directory: Path) -> list[Path]:
    """Finished snapshot directories in ``directory``, oldest first (names sort by time)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(PREFIX) and p.is_dir())


def export_snapshot(store: Store, directory: Path, keep: int = 3) -> Snapshot:
    """Write every main table to ``directory/snapshot-<time>/<table>.parquet`` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    taken_at = datetime.now(UTC)
    tmp = directory / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    rows: dict[str, int] = {}
    try:
        with store.reader() as cur:
            cur.execute("BEGIN TRANSACTION READ ONLY")
            try:
                tables = [
                    str(r[0])
                    for r in cur.execute(
                        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                        "AND schema_name = 'main' ORDER BY table_name"
                    ).fetchall()
                    if str(r[0]) not in EXCLUDED_TABLES
                ]
                for table in tables:
                    count = cur.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                    rows[table] = int(count[0]) if count else 0
                    cur.execute(
                        f'COPY (SELECT * FROM "{table}") TO {_quoted(tmp / (table + ".parquet"))} '
                        "(FORMAT parquet, COMPRESSION zstd)"
                    )
            finally:
                cur.execute("ROLLBACK")
        manifest = {"taken_at": taken_at.isoformat().replace("+00:00", "Z"), "rows": rows}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        final = directory / f"{PREFIX}{taken_at:%Y%m%dT%H%M%S%fZ}"
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _point_latest(directory, final)
    for old in snapshots_in(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return Snapshot(final, taken_at, rows)


def _point_latest(directory: Path, final: Path) -> None:
    """Swap the ``latest`` symlink to ``final`` in one rename."""
    link = directory / f".latest-{uuid.uuid4().hex}"
    try:
        link.symlink_to(final.name, target_is_directory=True)
        os.replace(link, directory / "latest")
    except OSError:  # a filesystem without symlinks: the directory names still sort by time
        link.unlink(missing_ok=True)


class SnapshotWorker:
    """Export a snapshot every ``interval_s`` on a worker thread (the first one at start)."""

    def __init__(self, store: Store, directory: Path, interval_s: float, keep: int) -> None:
        self.store = store
        self.directory = directory
        self.keep = keep
        self.last: Snapshot | None = None
        self._worker = Worker(
            "snapshot", self._step, poll_s=interval_s, drain_on_stop=False, wait_first=False
        )

    def _step(self) -> None:
        self.last = export_snapshot(self.store, self.directory, self.keep)
        log.info("snapshot %s: %d tables", self.last.path, len(self.last.rows))

    def start(self) -> None:
        """Start the thread."""
        self._worker.start()

    def stop(self) -> None:
        """Stop the thread (a snapshot in progress finishes first)."""
        self._worker.stop()
