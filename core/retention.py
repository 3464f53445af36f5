"""Retention: delete rows older than a per-table age, so spans and logs do not fill the disk.

Ages are counted back from the newest row of the same table (event time), not from the wall
clock: a replay of last month's data is not deleted as it arrives, and a live server, whose
newest rows are "now", keeps exactly the window asked for. An age of 0 keeps everything.
Points and bands are not managed here: detection keeps its place by row, and their volume
is what users size the disk for (``OPSLOOP_RETENTION_*`` covers spans, logs and events).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.store import Store

__all__ = ["TABLE_TIME", "enforce"]

#: Table -> its event-time column.
TABLE_TIME: dict[str, str] = {"spans": "start_ts", "logs": "ts", "events": "ts"}


def enforce(store: Store, ages_s: Mapping[str, float]) -> dict[str, int]:
    """Delete each table's rows older than its age before its newest row; return rows deleted.

    >>> import tempfile, os
    >>> from core.batch import WriteBatch
    >>> path = os.path.join(tempfile.mkdtemp(), "r.duckdb")
    >>> with Store(path) as s:
    ...     _ = s.query("INSERT INTO logs (ts, body) VALUES ('2024-01-01', 'old'), ('2024-01-09', 'new')")
    ...     enforce(s, {"logs": 7 * 86400, "spans": 0})
    {'logs': 1}
    """
    deleted: dict[str, int] = {}
    for table, age in ages_s.items():
        column = TABLE_TIME.get(table)
        if column is None:
            raise ValueError(f"no retention for table {table!r} (one of {sorted(TABLE_TIME)})")
        if age <= 0:
            continue
        with store.transaction() as con:
            row = con.execute(
                f"DELETE FROM {table} WHERE {column} < "
                f"(SELECT max({column}) FROM {table}) - to_microseconds(?::BIGINT)",
                [int(age * 1e6)],
            ).fetchone()
        deleted[table] = int(row[0]) if row else 0
    return deleted
