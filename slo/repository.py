"""SQL for SLO definitions and snapshots, and the point and event reads that evaluation sums."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from core.model import BudgetState, BudgetStatus
from core.store import Store
from slo.spec import SloSpec, load_openslo, to_openslo

__all__ = [
    "history",
    "last_evaluated",
    "latest_statuses",
    "load_specs",
    "lowest_budgets",
    "save_snapshots",
    "save_specs",
    "slice_counts",
    "sum_bands",
    "sums_since",
]


def save_specs(store: Store, specs: Sequence[SloSpec], now: datetime) -> None:
    """Insert or replace SLO definitions (their OpenSLO documents are what is stored)."""
    if not specs:
        return
    with store.transaction() as con:
        for spec in specs:
            documents = spec.source.get("documents") or to_openslo(spec)
            con.execute(
                "INSERT INTO slos VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "service = excluded.service, objective = excluded.objective, \"window\" = excluded.\"window\", "
                "budgeting_method = excluded.budgeting_method, documents = excluded.documents, "
                "updated_at = excluded.updated_at",
                [spec.name, spec.service, spec.objective, spec.window.duration, spec.budgeting_method.value,
                 json.dumps(documents, default=str), now, now],
            )  # fmt: skip


def load_specs(store: Store) -> list[SloSpec]:
    """Every stored SLO, parsed again from its documents (so stored and loaded specs agree)."""
    specs: list[SloSpec] = []
    for name, documents in store.query("SELECT name, documents FROM slos ORDER BY name"):
        parsed = load_openslo(json.loads(documents))
        specs.extend(s for s in parsed if s.name == name)
    return specs


def _status(row: tuple[Any, ...], service: str = "", objective: float = 0.0) -> BudgetStatus:
    slo, at, sli, good, total, remaining, consumed, bad, bad_min, burn, state, alerts, exhaustion = row
    return BudgetStatus(
        slo=slo, at=at, sli=float("nan") if sli is None else sli, budget_remaining=remaining,
        burn_rates=json.loads(burn or "{}"), state=BudgetState(state), service=service, objective=objective,
        good=good or 0.0, total=total or 0.0, budget_consumed=consumed or 0.0, bad_events=bad or 0.0,
        bad_minutes=bad_min or 0.0, exhaustion_s=exhaustion, alerts=tuple(alerts or ()),
    )  # fmt: skip


_COLS = (
    's.slo, s."at", s.sli, s.good, s.total, s.budget_remaining, s.budget_consumed, s.bad_events, '
    "s.bad_minutes, s.burn_rates, s.state, s.alerts, s.exhaustion_s"
)


def latest_statuses(store: Store, at: datetime | None = None) -> dict[str, BudgetStatus]:
    """The newest snapshot of each SLO (at or before ``at`` when given)."""
    where, params = ('WHERE s."at" <= ?', [at]) if at is not None else ("", [])
    rows = store.query(
        f"SELECT {_COLS}, d.service, d.objective FROM slo_snapshots s JOIN slos d ON d.name = s.slo {where} "
        'QUALIFY row_number() OVER (PARTITION BY s.slo ORDER BY s."at" DESC) = 1',
        params,
    )
    return {r[0]: _status(r[:13], r[13] or "", r[14] or 0.0) for r in rows}


def history(store: Store, slo: str, since: datetime | None = None, limit: int = 10_000) -> list[BudgetStatus]:
    """An SLO's snapshots, oldest first (for burn and budget plots)."""
    where, params = ('AND s."at" >= ?', [since]) if since is not None else ("", [])
    rows = store.query(
        f'SELECT {_COLS} FROM slo_snapshots s WHERE s.slo = ? {where} ORDER BY s."at" DESC LIMIT ?',
        [slo, *params, limit],
    )
    return [_status(r) for r in reversed(rows)]


def last_evaluated(store: Store) -> datetime | None:
    """When the last snapshot was taken (replays resume evaluating after it)."""
    row = store.query('SELECT max("at") FROM slo_snapshots')
    return row[0][0] if row and row[0][0] is not None else None


def finite(x: float | None) -> float | None:
    """``x`` unless it is NaN or infinite (JSON has no NaN)."""
    return None if x is None or not math.isfinite(x) else x


def lowest_budgets(store: Store) -> list[tuple[Any, ...]]:
    """Return each SLO's lowest budget left over its snapshots, as (slo, budget_remaining), by name."""
    return store.query("SELECT slo, min(budget_remaining) FROM slo_snapshots GROUP BY slo ORDER BY slo")


def save_snapshots(store: Store, statuses: Sequence[BudgetStatus]) -> None:
    """Append statuses to ``slo_snapshots`` (history to plot)."""
    if not statuses:
        return

    def clean(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else x

    with store.transaction() as con:
        con.executemany(
            "INSERT INTO slo_snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (s.slo, s.at, clean(s.sli), s.good, s.total, s.budget_remaining, s.budget_consumed, s.bad_events,
                 s.bad_minutes, json.dumps(dict(s.burn_rates)), s.state.value, list(s.alerts), clean(s.exhaustion_s))
                for s in statuses
            ],
        )  # fmt: skip


# ---------------------------------------------------------------- evaluation reads

_POINTS_CTE = """
WITH pts AS (
    SELECT m.slo, m.role, m.counter, p.series_id, p.ts, p.value
    FROM points p JOIN mapping m ON p.series_id = m.series_id
    WHERE p.ts >= $scan_start AND p.ts < $at AND p.value IS NOT NULL AND isfinite(p.value)
),
counted AS (  -- gauges count their values; counters their increases (a drop is a reset)
    SELECT slo, role, ts, value AS raw, value FROM pts WHERE NOT counter
    UNION ALL
    SELECT slo, role, ts, value AS raw,
           CASE WHEN value >= lag(value) OVER w THEN value - lag(value) OVER w
                WHEN lag(value) OVER w IS NULL THEN NULL ELSE value END AS value
    FROM pts WHERE counter WINDOW w AS (PARTITION BY series_id, role ORDER BY ts)
),
"""

_GOOD_POINT = """(
    (pr.op = '<=' AND c.raw <= pr.threshold) OR (pr.op = '<' AND c.raw < pr.threshold) OR
    (pr.op = '>=' AND c.raw >= pr.threshold) OR (pr.op = '>' AND c.raw > pr.threshold))"""

_SLICES_SQL = (
    _POINTS_CTE
    + """
metric_slices AS (
    SELECT c.slo,
           time_bucket(to_seconds(pr.slice_s), c.ts, TIMESTAMP '1970-01-01') AS slice,
           sum(c.value) FILTER (WHERE c.role = 'good') AS good,
           sum(c.value) FILTER (WHERE c.role = 'bad') AS bad,
           sum(c.value) FILTER (WHERE c.role = 'total') AS total,
           count(*) FILTER (WHERE c.role = 'metric') AS points,
           count(*) FILTER (WHERE c.role = 'metric' AND """
    + _GOOD_POINT
    + """) AS points_good
    FROM counted c JOIN params pr ON c.slo = pr.slo
    WHERE c.value IS NOT NULL OR c.role = 'metric'
    GROUP BY ALL
),
event_slices AS (
    SELECT pr.slo,
           time_bucket(to_seconds(pr.slice_s), e.ts, TIMESTAMP '1970-01-01') AS slice,
           NULL::DOUBLE AS good,
           count(*) FILTER (WHERE starts_with(e.type, pr.bad_type))::DOUBLE AS bad,
           count(*)::DOUBLE AS total,
           0::BIGINT AS points, 0::BIGINT AS points_good
    FROM events e JOIN params pr
      ON pr.total_type <> '' AND starts_with(e.type, pr.total_type)
         AND (pr.service = '' OR e.service = pr.service)
    WHERE e.ts >= $scan_start AND e.ts < $at
    GROUP BY ALL
),
slices AS (SELECT * FROM metric_slices UNION ALL BY NAME SELECT * FROM event_slices)
SELECT s.* FROM slices s
WHERE NOT EXISTS (SELECT 1 FROM excluded x WHERE x.slo = s.slo AND s.slice >= x.t_from AND s.slice < x.t_to)
"""
)


def slice_counts(
    store: Store, mapping: pa.Table, params: pa.Table, excluded: pa.Table, start: datetime, at: datetime
) -> pa.Table:
    """Count points and events in ``[start, at)`` per SLO and slice.

    ``mapping`` is ``(slo, role, series_id, counter)``, ``params`` the per-SLO slice length,
    threshold and event types, ``excluded`` the ``(slo, t_from, t_to)`` intervals to drop.
    """
    with store.reader() as cur:
        cur.register("mapping", mapping)
        cur.register("params", params)
        cur.register("excluded", excluded)
        table: pa.Table = cur.sql(_SLICES_SQL, params={"scan_start": start, "at": at}).to_arrow_table()
        return table


def sums_since(
    store: Store, series_ids: pa.Array, edges: Sequence[datetime], start: datetime, at: datetime
) -> pa.Table:
    """Sum each series' finite points in ``[edge, at)`` for every edge, in one scan from ``start``.

    Columns: ``series_id`` and ``s0``.. ``sN`` (one per edge, in the order given).
    """
    sums = ", ".join(
        f"sum(value) FILTER (WHERE ts >= TIMESTAMP '{e.isoformat(sep=' ')}') AS s{k}"
        for k, e in enumerate(edges)
    )
    sql = f"""
        SELECT series_id, {sums} FROM points
        WHERE ts >= $scan_start AND ts < $at AND series_id IN (SELECT series_id FROM fast_series)
          AND value IS NOT NULL AND isfinite(value)
        GROUP BY series_id
    """
    with store.reader() as cur:
        cur.register("fast_series", pa.table({"series_id": series_ids}))
        table: pa.Table = cur.sql(sql, params={"scan_start": start, "at": at}).to_arrow_table()
        return table


def sum_bands(long: pa.Table) -> pa.Table:
    """Add up ``(slo, slice, role, v)`` rows per SLO and band into ``slice_counts``' columns."""
    # an in-memory database: the rows are already in Arrow, nothing of the store is read
    con = duckdb.connect()
    try:
        con.register("long", long)
        table: pa.Table = con.sql(
            "SELECT slo, slice, sum(v) FILTER (WHERE role = 'good') AS good, "
            "sum(v) FILTER (WHERE role = 'bad') AS bad, sum(v) FILTER (WHERE role = 'total') AS total, "
            "0::BIGINT AS points, 0::BIGINT AS points_good FROM long GROUP BY ALL"
        ).to_arrow_table()
        return table
    finally:
        con.close()
