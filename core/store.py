"""The DuckDB store: schema migrations, the single writer, and read cursors.

Concurrency model: one ``duckdb`` database instance per process. All writes go through
``Store.write_many`` under one lock (the single writer); readers take their own cursor
(``Store.reader()``), and DuckDB's MVCC lets them read while the writer commits. A commit
returns only once DuckDB has written and synced its WAL, so an acknowledged write survives
a crash. Re-delivered batches (same digest) are skipped inside the same transaction.

Series dictionary: ``series(series_id, name, labels MAP, ...)`` with ids from
``core.series.series_id``; ``points(series_id, ts, value)`` where a NULL value is a
Prometheus stale marker.

Schema: each stage owns its tables' migrations as ``<stage>/migrations/NNNN_name.sql`` (the
first line, a ``--`` comment, describes it); ``migrate`` applies them in version order.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import numpy as np
import pyarrow as pa

from core.batch import CHANGES_SCHEMA, EVENTS_SCHEMA, TOPOLOGY_SCHEMA, AlertCommand, WriteBatch
from core.errors import ConfigError, NotFoundError, StorageError
from core.model import Change, ConfigurationItem, Event, ExternalAlertStatus

#: Folders, relative to the packages' common parent, whose ``migrations/`` hold schema files.
#: Named here rather than imported: core must not import the stages that come after it.
MIGRATION_STAGES: tuple[str, ...] = ("core", "detect", "detect/incidents", "slo", "diagnose", "resolve")
_PACKAGES_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema migration: its version, what it creates, its SQL and the file it came from."""

    version: int
    description: str
    sql: str
    path: Path


def discover_migrations(
    root: Path = _PACKAGES_ROOT, stages: Sequence[str] = MIGRATION_STAGES
) -> list[Migration]:
    """Read every stage's ``migrations/NNNN_name.sql``, ordered by version (1..N, no gaps)."""
    found: list[Migration] = []
    for stage in stages:
        for path in sorted((root / stage / "migrations").glob("[0-9]*.sql")):
            text = path.read_text(encoding="utf-8")
            first, _, rest = text.partition("\n")
            # the first line names the migration (it is recorded in schema_migrations)
            if first.startswith("--"):
                description, sql = first.removeprefix("--").strip(), rest
            else:
                description, sql = path.stem.partition("_")[2].replace("_", " "), text
            found.append(Migration(int(path.name.partition("_")[0]), description, sql, path))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StorageError(
            f"migrations must be numbered 1..N without gaps; found {versions}", recoverable=False
        )
    return found


MIGRATIONS: list[tuple[int, str, str]] = [(m.version, m.description, m.sql) for m in discover_migrations()]

SCOPES = ("ingest", "read", "write", "admin")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch did: whether it was a re-delivery, and how many rows it wrote."""

    duplicate: bool
    rows: int
    #: the ``points`` rowid of this batch's first point (points are only ever appended, so a
    #: commit's points hold consecutive rowids); -1 when it wrote no points
    first_point_row: int = -1


@dataclass(frozen=True, slots=True)
class DetectorSnapshot:
    """A saved detection state: everything before points row ``watermark`` was processed."""

    name: str
    taken_at: datetime
    watermark: int
    state: bytes


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def hash_token(token: str) -> str:
    """Return the stored form of a token (tokens are 256-bit random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """The opsloop database: open it, migrate it, write batches, read with cursors."""

    def __init__(self, path: str = "./opsloop.duckdb", *, read_only: bool = False) -> None:
        self.path = path
        try:
            self._con = duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            raise StorageError(f"cannot open database {path!r}: {exc}", recoverable=False) from exc
        self._lock = threading.Lock()
        self._writer = self._con.cursor()
        if not read_only:
            self.migrate()
        self._known_series: set[int] = {
            int(r[0]) for r in self._con.execute("SELECT series_id FROM series").fetchall()
        }
        row = self._con.execute("SELECT coalesce(max(rowid) + 1, 0) FROM points").fetchone()
        self._points_rows = int(row[0]) if row else 0

    @property
    def points_rows(self) -> int:
        """Rows committed to ``points`` so far: the rowid the next appended point will get."""
        return self._points_rows

    @property
    def known_series(self) -> set[int]:
        """Ids of series committed to the dictionary (read-only view for decoders)."""
        return self._known_series

    # ---------------------------------------------------------------- lifecycle

    def migrate(self) -> int:
        """Apply pending migrations in order; return the schema version."""
        con = self._con
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
        )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        current = int(row[0]) if row else 0
        for version, description, sql in MIGRATIONS:
            if version <= current:
                continue
            con.execute("BEGIN")
            try:
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, description, _now()])
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise StorageError(f"migration {version} failed: {exc}", recoverable=False) from exc
            current = version
        return current

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self._lock:
            with suppress(duckdb.Error):  # read-only or already closed: nothing to flush
                self._con.execute("CHECKPOINT")
            self._writer.close()
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a cursor of its own; it sees committed data and never blocks the writer."""
        cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query on a fresh cursor and return all rows."""
        with self.reader() as cur:
            return cur.execute(sql, params or []).fetchall()

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run a read query and return an Arrow table."""
        with self.reader() as cur:
            table: pa.Table = cur.sql(sql, params=params or None).to_arrow_table()
            return table

    # ---------------------------------------------------------------- writing

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield the writer cursor inside one transaction, under the single-writer lock.

        For repositories that write small, keyed state (incidents, silences); bulk signals go
        through ``write_many``. Commits on success, rolls back and re-raises as
        ``StorageError`` on a database error.
        """
        with self._lock:
            con = self._writer
            con.execute("BEGIN")
            try:
                yield con
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise StorageError(f"commit failed: {exc}", recoverable=_recoverable(exc)) from exc
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def write(self, batch: WriteBatch) -> WriteResult:
        """Commit one batch atomically (see ``write_many``)."""
        return self.write_many([batch])[0]

    def write_many(self, batches: Sequence[WriteBatch]) -> list[WriteResult]:
        """Commit batches in one transaction (group commit); skip already-committed digests.

        All or nothing: on failure nothing of any batch is written and ``StorageError``
        says whether a retry can succeed. Callers that coalesce independent batches retry
        them one by one so a bad batch cannot sink the others (see ``ingest.queue``).
        """
        with self._lock:
            try:
                try:
                    return self._commit(batches)
                except duckdb.ConstraintException:
                    # An event or change id that is already stored: redo the group on the
                    # slow path that skips existing keys (INSERT OR IGNORE costs ~2x a plain
                    # INSERT into a keyed table, so it is kept for when it is needed).
                    return self._commit(batches, skip_existing=True)
            except duckdb.Error as exc:
                raise StorageError(f"commit failed: {exc}", recoverable=_recoverable(exc)) from exc

    def _commit(self, batches: Sequence[WriteBatch], skip_existing: bool = False) -> list[WriteResult]:
        con = self._writer
        new_series: set[int] = set()
        con.execute("BEGIN")
        try:
            digests = [b.digest for b in batches if b.digest]
            seen: set[str] = set()
            if digests:
                # a literal IN list is answered from the primary-key index; the former
                # ``IN (SELECT unnest(?))`` scanned the whole table, a cost growing with history
                marks = ", ".join("?" * len(digests))
                rows = con.execute(
                    f"SELECT digest FROM ingest_batches WHERE digest IN ({marks})", digests
                ).fetchall()
                seen = {r[0] for r in rows}
            results: list[WriteResult] = []
            live: list[WriteBatch] = []
            next_row = self._points_rows
            for batch in batches:
                if batch.digest and batch.digest in seen:
                    results.append(WriteResult(duplicate=True, rows=0))
                    continue
                if batch.digest:
                    seen.add(batch.digest)
                live.append(batch)
                n_points = batch.points.num_rows if batch.points is not None else 0
                first = next_row if n_points else -1
                next_row += n_points
                results.append(WriteResult(duplicate=False, rows=batch.rows, first_point_row=first))
            new_series = self._write_series(
                con, [b.series for b in live if b.series is not None], skip_existing
            )
            self._append(con, "points", [b.points for b in live if b.points is not None])
            self._append(con, "logs", [b.logs for b in live if b.logs is not None])
            self._append(con, "spans", [b.spans for b in live if b.spans is not None])
            self._append(con, "bands", [b.bands for b in live if b.bands is not None])
            anomalies = [b.anomalies for b in live if b.anomalies is not None and b.anomalies.num_rows]
            if anomalies:
                self._insert_keyed(con, "anomalies", pa.concat_tables(anomalies), skip_existing)
            for b in live:
                if b.detect_progress is not None:
                    con.execute(
                        "INSERT INTO detector_progress VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                        "watermark = excluded.watermark, updated_at = excluded.updated_at",
                        [b.detect_progress[0], b.detect_progress[1], _now()],
                    )
            self._write_small(con, live, skip_existing)
            done = [(b.digest, b.source, _now(), b.rows) for b in live if b.digest]
            if done:
                # one multi-row statement: executemany costs a statement per row
                con.execute(
                    "INSERT INTO ingest_batches VALUES " + ", ".join(["(?, ?, ?, ?)"] * len(done)),
                    [value for row in done for value in row],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._known_series.update(new_series)
        self._points_rows = next_row
        return results

    def _write_series(
        self, con: duckdb.DuckDBPyConnection, tables: list[pa.Table], skip_existing: bool = False
    ) -> set[int]:
        """Add series the dictionary lacks (filtered by the in-memory set of committed ids)."""
        if not tables:
            return set()
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        ids = table.column("series_id").to_numpy()
        known = self._known_series
        fresh = np.fromiter((int(i) not in known for i in ids), dtype=bool, count=len(ids))
        if not fresh.any():
            return set()
        table = table.filter(pa.array(fresh))
        # a batch may list one series twice; keep the first
        _, first = np.unique(table.column("series_id").to_numpy(), return_index=True)
        table = table.take(pa.array(np.sort(first)))
        self._insert_keyed(con, "series", table, skip_existing)
        return {int(i) for i in table.column("series_id").to_numpy()}

    @staticmethod
    def _append(con: duckdb.DuckDBPyConnection, name: str, tables: list[pa.Table]) -> None:
        if not tables:
            return
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if table.num_rows == 0:
            return
        view = f"_new_{name}"
        con.register(view, table)
        try:
            con.execute(f"INSERT INTO {name} SELECT * FROM {view}")
        finally:
            con.unregister(view)

    def _write_small(
        self, con: duckdb.DuckDBPyConnection, batches: Sequence[WriteBatch], skip_existing: bool = False
    ) -> None:
        """Write the events, changes, topology and alert commands of a group of batches.

        Events and changes of the whole group go in as one Arrow table each: one INSERT per
        commit rather than per batch or per row (``executemany`` managed about 2k rows/s),
        deduplicated within the group (first wins) and against the table by their keys
        (events: source+id; changes: id). Topology and alert commands follow in batch order.
        """
        events = [e for b in batches for e in b.events]
        if events:
            self._insert_keyed(con, "events", _events_table(events), skip_existing)
        changes = [c for b in batches for c in b.changes]
        if changes:
            self._insert_keyed(con, "changes", _changes_table(changes), skip_existing)
        for batch in batches:
            if batch.topology is not None:
                self._replace_topology(con, batch.topology)
            for command in batch.alerts:
                self._apply_alert(con, command)

    @staticmethod
    def _insert_keyed(
        con: duckdb.DuckDBPyConnection, name: str, new_rows: pa.Table, skip_existing: bool
    ) -> None:
        """Insert rows of a keyed table; a key already stored raises unless ``skip_existing``."""
        columns = ", ".join(new_rows.column_names)
        verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
        # DuckDB finds the local Arrow table by name (a replacement scan): register/unregister
        # would cost more than the insert itself for a few hundred rows
        con.execute(f"{verb} INTO {name} ({columns}) SELECT {columns} FROM new_rows")

    @staticmethod
    def _replace_topology(con: duckdb.DuckDBPyConnection, items: Sequence[ConfigurationItem]) -> None:
        con.execute("DELETE FROM topology")
        if not items:
            return
        now = _now()
        table = pa.Table.from_pydict(
            {
                "service": [ci.name for ci in items],
                "tier": [ci.tier for ci in items],
                "owner": [ci.owner for ci in items],
                "depends_on": [list(ci.depends_on) for ci in items],
                "consumer_facing": [ci.consumer_facing for ci in items],
                "attributes": [_json_text(ci.attributes) for ci in items],
                "updated_at": [now] * len(items),
            },
            schema=TOPOLOGY_SCHEMA,
        )
        con.register("_small_topology", table)
        try:
            con.execute(
                "INSERT INTO topology (service, tier, owner, depends_on, consumer_facing, attributes, "
                "updated_at) SELECT * FROM _small_topology"
            )
        finally:
            con.unregister("_small_topology")

    @staticmethod
    def _apply_alert(con: duckdb.DuckDBPyConnection, command: AlertCommand) -> None:
        a = command.alert
        now = a.updated_at or _now()
        if command.op == "upsert":
            con.execute(
                """
                INSERT INTO external_alerts (id, source, dedup_key, status, name, severity, summary, service,
                    fingerprint, labels, annotations, starts_at, ends_at, updated_at, url, details, event_count)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
                ON CONFLICT (id) DO UPDATE SET
                    -- a late 'firing' re-send must not reopen a resolved alert: re-firing has a new id
                    status = CASE WHEN external_alerts.status = 'resolved' THEN external_alerts.status
                        ELSE excluded.status END,
                    ends_at = CASE WHEN external_alerts.status = 'resolved' THEN external_alerts.ends_at
                        ELSE excluded.ends_at END,
                    summary = excluded.summary, severity = excluded.severity,
                    annotations = excluded.annotations, updated_at = excluded.updated_at,
                    url = excluded.url, details = excluded.details,
                    event_count = external_alerts.event_count + 1
                """,
                [
                    a.id,
                    a.source,
                    a.dedup_key,
                    str(a.status),
                    a.name,
                    a.severity,
                    a.summary,
                    a.service,
                    a.fingerprint,
                    _json_text(dict(a.labels)),
                    _json_text(dict(a.annotations)),
                    a.starts_at,
                    a.ends_at,
                    now,
                    a.url,
                    _json_text(dict(a.details)),
                ],
            )
            return
        open_row = con.execute(
            "SELECT id FROM external_alerts WHERE source = ? AND dedup_key = ? AND status <> 'resolved' "
            "ORDER BY starts_at DESC LIMIT 1",
            [a.source, a.dedup_key],
        ).fetchone()
        if command.op == "trigger":
            if open_row is None:
                con.execute(
                    "INSERT INTO external_alerts (id, source, dedup_key, status, name, severity, summary, "
                    "service, fingerprint, labels, annotations, starts_at, ends_at, updated_at, url, details) "
                    "VALUES (?, ?, ?, 'firing', ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                    [
                        a.id or str(uuid.uuid4()),
                        a.source,
                        a.dedup_key,
                        a.name,
                        a.severity,
                        a.summary,
                        a.service,
                        a.fingerprint,
                        _json_text(dict(a.labels)),
                        _json_text(dict(a.annotations)),
                        a.starts_at,
                        now,
                        a.url,
                        _json_text(dict(a.details)),
                    ],
                )
            else:
                con.execute(
                    "UPDATE external_alerts SET summary = ?, severity = ?, details = ?, updated_at = ?, "
                    "event_count = event_count + 1 WHERE id = ?",
                    [a.summary, a.severity, _json_text(dict(a.details)), now, open_row[0]],
                )
        elif command.op in ("acknowledge", "resolve"):
            if open_row is None:
                return  # PagerDuty drops ack/resolve for an alert that is not open
            if command.op == "acknowledge":
                con.execute(
                    "UPDATE external_alerts SET status = ?, updated_at = ?, event_count = event_count + 1 "
                    "WHERE id = ?",
                    [str(ExternalAlertStatus.ACKNOWLEDGED), now, open_row[0]],
                )
            else:
                con.execute(
                    "UPDATE external_alerts SET status = ?, ends_at = ?, updated_at = ?, "
                    "event_count = event_count + 1 WHERE id = ?",
                    [str(ExternalAlertStatus.RESOLVED), a.ends_at or now, now, open_row[0]],
                )
        else:
            raise ConfigError(f"unknown alert command {command.op!r}")

    # ---------------------------------------------------------------- detection

    def save_detector_state(self, name: str, watermark: int, state: bytes, keep: int = 2) -> None:
        """Store a detection snapshot, keeping only the newest ``keep`` of that name."""
        with self._lock:
            con = self._writer
            con.execute("BEGIN")
            try:
                con.execute(
                    "INSERT INTO detector_state VALUES (?, ?, ?, ?)", [name, _now(), watermark, state]
                )
                con.execute(
                    "DELETE FROM detector_state WHERE name = ? AND taken_at NOT IN ("
                    "SELECT taken_at FROM detector_state WHERE name = ? ORDER BY taken_at DESC LIMIT ?)",
                    [name, name, keep],
                )
                con.execute("COMMIT")
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise StorageError(f"cannot save detector state: {exc}", recoverable=True) from exc

    def latest_detector_state(self, name: str) -> DetectorSnapshot | None:
        """The newest snapshot of detection ``name``, if any."""
        rows = self.query(
            "SELECT name, taken_at, watermark, state FROM detector_state WHERE name = ? "
            "ORDER BY taken_at DESC, watermark DESC LIMIT 1",
            [name],
        )
        if not rows:
            return None
        r = rows[0]
        return DetectorSnapshot(r[0], r[1], int(r[2]), bytes(r[3]))

    def detector_progress(self, name: str) -> int:
        """The points row up to which detection ``name`` has committed its output (0: none)."""
        rows = self.query("SELECT watermark FROM detector_progress WHERE name = ?", [name])
        return int(rows[0][0]) if rows else 0

    def record_feedback(
        self,
        anomaly_id: str,
        series_id: int,
        verdict: str,
        user: str | None,
        comment: str | None,
        threshold_before: float,
        threshold_after: float,
    ) -> datetime:
        """Append an operator's verdict on an anomaly; return when it was recorded."""
        at = _now()
        with self._lock:
            self._writer.execute(
                "INSERT INTO anomaly_feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [anomaly_id, series_id, verdict, user, comment, at, threshold_before, threshold_after],
            )
        return at

    # ---------------------------------------------------------------- tokens

    def create_token(self, scopes: Sequence[str], name: str = "") -> str:
        """Create a bearer token with the given scopes; return it (only its hash is stored)."""
        return self.issue_token(scopes, name)[1]

    def issue_token(self, scopes: Sequence[str], name: str = "") -> tuple[str, str]:
        """Create a token; return (its id, the secret). The secret is never stored."""
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise ConfigError(
                f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {bad or scopes}"
            )
        token = "opl_" + secrets.token_urlsafe(32)
        token_id = uuid.uuid4().hex[:12]
        with self._lock:
            self._writer.execute(
                "INSERT INTO tokens (id, name, token_hash, scopes) VALUES (?, ?, ?, ?)",
                [token_id, name, hash_token(token), sorted(set(scopes))],
            )
        return token_id, token

    def token_scopes(self, token: str) -> frozenset[str] | None:
        """Return the scopes of a live token, or None when it is unknown or revoked."""
        rows = self.query(
            "SELECT scopes FROM tokens WHERE token_hash = ? AND NOT revoked", [hash_token(token)]
        )
        return frozenset(rows[0][0]) if rows else None

    def token_name(self, token: str) -> str | None:
        """A token's name (``token:<id>`` when unnamed), or None when unknown."""
        rows = self.query("SELECT id, name FROM tokens WHERE token_hash = ?", [hash_token(token)])
        if not rows:
            return None
        token_id, name = rows[0]
        return str(name or f"token:{token_id}")

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token by its id."""
        with self._lock:
            row = self._writer.execute(
                "UPDATE tokens SET revoked = true WHERE id = ? RETURNING id", [token_id]
            ).fetchone()
        if row is None:
            raise NotFoundError(f"token {token_id!r} not found")

    def list_tokens(self, newest_first: bool = False) -> list[tuple[Any, ...]]:
        """Return every token as (id, name, scopes, created_at, revoked), oldest or newest first."""
        if newest_first:
            return self.query(
                "SELECT id, name, scopes, created_at, revoked FROM tokens ORDER BY created_at DESC"
            )
        return self.query("SELECT id, name, scopes, created_at, revoked FROM tokens ORDER BY created_at")

    # ---------------------------------------------------------------- signal reads

    def table_span(self, table: str, ts_column: str | None) -> tuple[Any, Any, Any]:
        """Return (rows, first, last) of a table; first and last are None without a time column."""
        if ts_column:
            n, lo, hi = self.query(f"SELECT count(*), min({ts_column}), max({ts_column}) FROM {table}")[0]
            return n, lo, hi
        return self.query(f"SELECT count(*) FROM {table}")[0][0], None, None

    def top_metrics(self) -> list[tuple[Any, ...]]:
        """Return the ten metric names with the most points, as (name, series, points)."""
        return self.query(
            "SELECT s.name, count(DISTINCT s.series_id), count(*) FROM points p JOIN series s USING (series_id) "
            "GROUP BY s.name ORDER BY 3 DESC LIMIT 10"
        )

    def external_alert_counts(self) -> list[tuple[Any, ...]]:
        """Count external alerts per (source, status)."""
        return self.query("SELECT source, status, count(*) FROM external_alerts GROUP BY ALL ORDER BY ALL")

    def newest_point_ts(self) -> datetime | None:
        """Return the timestamp of the newest point, None when there are none."""
        newest: datetime | None = self.query("SELECT max(ts) FROM points")[0][0]
        return newest

    def series_named(self, names: Sequence[str]) -> list[tuple[Any, ...]]:
        """Return (series_id, name, labels, service) of every series whose metric name is in ``names``."""
        return self.query(
            "SELECT series_id, name, labels, service FROM series WHERE name IN (SELECT unnest(?::VARCHAR[]))",
            [list(names)],
        )

    def gauge_series_of(self, services: Sequence[str]) -> list[tuple[Any, ...]]:
        """Return (series_id, name, labels, service, unit) of the non-counter series of ``services``, by id."""
        return self.query(
            f"SELECT series_id, name, labels, service, unit FROM series WHERE service IN {_in_list(len(services))} "
            "AND coalesce(kind, '') <> 'counter' ORDER BY series_id",
            list(services),
        )

    def points_between(self, series_ids: Sequence[int], start: datetime, end: datetime) -> pa.Table:
        """Return points of ``series_ids`` with ``start <= ts <= end`` as (series_id, t epoch seconds, value)."""
        return self.arrow(
            "SELECT series_id, epoch(ts) AS t, value FROM points WHERE ts BETWEEN ? AND ? "
            "AND series_id IN (SELECT unnest(?::UBIGINT[]))",
            [start, end, list(series_ids)],
        )

    def changes_between(
        self, services: Sequence[str], start: datetime, end: datetime
    ) -> list[tuple[Any, ...]]:
        """Return changes of ``services`` with ``start <= ts <= end``, oldest first (ties by id)."""
        return self.query(
            "SELECT id, service, kind, ts, version, environment, source, description FROM changes "
            f"WHERE service IN {_in_list(len(services))} AND ts BETWEEN ? AND ? ORDER BY ts, id",
            [*services, start, end],
        )

    def warning_logs(
        self, services: Sequence[str], start: datetime, end: datetime, limit: int
    ) -> list[tuple[Any, ...]]:
        """Return (service, body, epoch seconds) of WARN-and-worse log lines of ``services`` in ``[start, end]``.

        Lines without a severity count when their text says error/warn.
        """
        return self.query(
            "SELECT service, body, epoch(ts) FROM logs "
            f"WHERE service IN {_in_list(len(services))} AND ts BETWEEN ? AND ? "
            "AND (severity_number >= 13 OR upper(coalesce(severity_text, '')) IN "
            "('WARN', 'WARNING', 'ERROR', 'ERR', 'FATAL', 'CRITICAL', 'SEVERE', 'PANIC') "
            "OR (severity_number IS NULL AND regexp_matches(coalesce(body, ''), '(?i)error|exception|fail|warn'))) "
            "ORDER BY ts LIMIT ?",
            [*services, start, end, limit],
        )


def _in_list(n: int) -> str:
    return "(" + ", ".join(["?"] * n) + ")"


def _recoverable(exc: duckdb.Error) -> bool:
    """Constraint and type errors will fail again; I/O and transaction conflicts may not."""
    return not isinstance(exc, duckdb.ConstraintException | duckdb.ConversionException)


# ------------------------------------------------------------ events/changes/topology rows

_JSON_ENCODER = msgspec.json.Encoder(enc_hook=str, order="sorted")


def _json_text(value: Any) -> str:
    """JSON text of a value, keys sorted (msgspec: ~10x faster than ``json.dumps``)."""
    try:
        return _JSON_ENCODER.encode(value).decode()
    except (TypeError, ValueError, msgspec.EncodeError):  # e.g. keys of mixed types cannot be sorted
        return json.dumps(value, separators=(",", ":"), default=str)


def _naive_utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is None else ts.astimezone(UTC).replace(tzinfo=None)


def _first_of_each(items: Sequence[Any], keys: list[Any]) -> Sequence[Any]:
    """Keep the first item of each key (a batch may carry one event twice)."""
    if len(set(keys)) == len(keys):
        return items
    seen: set[Any] = set()
    kept = []
    for key, item in zip(keys, items, strict=True):
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _events_table(events: Sequence[Event]) -> pa.Table:
    events = _first_of_each(events, [(e.source, e.id) for e in events])
    return pa.Table.from_arrays(
        [
            pa.array([e.source for e in events], pa.string()),
            pa.array([e.id for e in events], pa.string()),
            pa.array([e.type for e in events], pa.string()),
            pa.array([_naive_utc(e.ts) for e in events], pa.timestamp("us")),
            pa.array([e.subject for e in events], pa.string()),
            pa.array([e.service for e in events], pa.string()),
            pa.array([_json_text(e.data) for e in events], pa.string()),
            pa.array([_json_text(e.attributes) for e in events], pa.string()),
        ],
        schema=EVENTS_SCHEMA,
    )


def _changes_table(changes: Sequence[Change]) -> pa.Table:
    changes = _first_of_each(changes, [c.id for c in changes])
    return pa.Table.from_arrays(
        [
            pa.array([c.id for c in changes], pa.string()),
            pa.array([c.service for c in changes], pa.string()),
            pa.array([str(c.kind) for c in changes], pa.string()),
            pa.array([_naive_utc(c.ts) for c in changes], pa.timestamp("us")),
            pa.array([c.version for c in changes], pa.string()),
            pa.array([c.environment for c in changes], pa.string()),
            pa.array([c.source for c in changes], pa.string()),
            pa.array([c.description for c in changes], pa.string()),
            pa.array([_json_text(c.attributes) for c in changes], pa.string()),
        ],
        schema=CHANGES_SCHEMA,
    )
