"""SQL for SLO definitions and their evaluated snapshots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.model import BudgetState, BudgetStatus
from core.store import Store
from slo.spec import SloSpec, load_openslo, to_openslo

__all__ = ["history", "last_evaluated", "latest_statuses", "load_specs", "save_specs"]


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
