"""SQL for the reliability backlog: items, their deliveries to trackers, and what the policy reads.

``backlog_items`` holds one row per (SLO, cause) with a ``revision`` that grows by one at
every material change; ``backlog_deliveries`` holds, per (item, tracker), the external
issue and the revision last pushed there, so a delivery is never repeated and a retry never
opens a second issue.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.model import Alert, BacklogItem, Delivery, Incident
from core.store import Store
from detect.incidents.repository import alerts_of, incident_by_id

__all__ = [
    "ServiceProfile",
    "StoredItem",
    "alerts_of_incidents",
    "count_items",
    "deliveries_of",
    "incidents_overlapping",
    "item_by_id",
    "list_items",
    "load_items",
    "naive_utc",
    "record_delivery",
    "save_items",
    "service_profile",
]

_ITEM_COLS = (
    "id, slo, cause, service, title, status, priority_score, capacity_share, evidence, created_at, "
    "updated_at, closed_at, revision"
)
_DELIVERY_COLS = "item_id, tracker, external_id, url, status, revision, attempts, last_error, synced_at"
_SORTS = {
    "priority": "CASE status WHEN 'open' THEN 0 WHEN 'downgraded' THEN 1 ELSE 2 END, priority_score DESC, "
    "updated_at DESC, id",
    "newest": "updated_at DESC, priority_score DESC, id",
}


def naive_utc(ts: datetime) -> datetime:
    """The store's time form: naive UTC."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


@dataclass(frozen=True, slots=True)
class StoredItem:
    """A backlog item as stored, with its revision (1 at creation, +1 per material change)."""

    item: BacklogItem
    revision: int


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """What the topology says about a service's value to users."""

    tier: int
    consumer_facing: bool


def _item(row: tuple[Any, ...]) -> StoredItem:
    (id_, slo, cause, service, title, status, score, share, evidence, created, updated, closed,
     revision) = row  # fmt: skip
    item = BacklogItem(
        id=id_, slo=slo, cause=cause, title=title or "", priority_score=float(score or 0.0), status=status,
        evidence=json.loads(evidence or "{}"), service=service or "", capacity_share=float(share or 0.0),
        created_at=created, updated_at=updated, closed_at=closed,
    )  # fmt: skip
    return StoredItem(item, int(revision or 1))


def _delivery(row: tuple[Any, ...]) -> Delivery:
    item_id, tracker, external_id, url, status, revision, attempts, error, synced = row
    return Delivery(
        item_id=item_id, tracker=tracker, external_id=external_id or "", url=url or "", status=status or "",
        revision=int(revision or 0), attempts=int(attempts or 0), last_error=error or "", synced_at=synced,
    )  # fmt: skip


def load_items(store: Store, slos: Sequence[str]) -> dict[tuple[str, str], StoredItem]:
    """Every item of the given SLOs, keyed by (slo, cause)."""
    if not slos:
        return {}
    rows = store.query(
        f"SELECT {_ITEM_COLS} FROM backlog_items WHERE slo IN (SELECT unnest(?::VARCHAR[]))", [list(slos)]
    )
    found = (_item(r) for r in rows)
    return {(s.item.slo, s.item.cause): s for s in found}


def save_items(store: Store, items: Sequence[StoredItem]) -> None:
    """Upsert items (with their revisions) in one transaction."""
    if not items:
        return
    with store.transaction() as con:
        con.executemany(
            f"INSERT OR REPLACE INTO backlog_items ({_ITEM_COLS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (i.id, i.slo, i.cause, i.service, i.title, i.status, i.priority_score, i.capacity_share,
                 json.dumps(dict(i.evidence), default=str), i.created_at, i.updated_at, i.closed_at, s.revision)
                for s in items
                for i in (s.item,)
            ],
        )  # fmt: skip


def _filters(status: Sequence[str], slo: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = ["TRUE"]
    params: list[Any] = []
    if status:
        clauses.append("status IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(status))
    if slo:
        clauses.append("slo = ?")
        params.append(slo)
    return " AND ".join(clauses), params


def list_items(
    store: Store, *, status: Sequence[str] = (), slo: str | None = None, sort: str = "priority",
    limit: int = 100,
) -> list[StoredItem]:  # fmt: skip
    """Items matching the filters, highest priority (or newest) first."""
    where, params = _filters(status, slo)
    rows = store.query(
        f"SELECT {_ITEM_COLS} FROM backlog_items WHERE {where} ORDER BY {_SORTS[sort]} LIMIT ?",
        [*params, limit],
    )
    return [_item(r) for r in rows]


def count_items(store: Store, *, status: Sequence[str] = (), slo: str | None = None) -> int:
    """How many items match the filters."""
    where, params = _filters(status, slo)
    return int(store.query(f"SELECT count(*) FROM backlog_items WHERE {where}", params)[0][0])


def item_by_id(store: Store, item_id: str) -> StoredItem | None:
    """One item, or None."""
    rows = store.query(f"SELECT {_ITEM_COLS} FROM backlog_items WHERE id = ?", [item_id])
    return _item(rows[0]) if rows else None


def deliveries_of(store: Store, item_ids: Sequence[str] | None = None) -> list[Delivery]:
    """Deliveries of the given items (all items when None), by item then tracker."""
    if item_ids is None:
        rows = store.query(f"SELECT {_DELIVERY_COLS} FROM backlog_deliveries ORDER BY item_id, tracker")
    else:
        rows = store.query(
            f"SELECT {_DELIVERY_COLS} FROM backlog_deliveries "
            "WHERE item_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY item_id, tracker",
            [list(item_ids)],
        )
    return [_delivery(r) for r in rows]


def record_delivery(store: Store, d: Delivery) -> None:
    """Upsert the delivery state of one (item, tracker)."""
    with store.transaction() as con:
        con.execute(
            f"INSERT OR REPLACE INTO backlog_deliveries ({_DELIVERY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [d.item_id, d.tracker, d.external_id or None, d.url or None, d.status, d.revision, d.attempts,
             d.last_error or None, d.synced_at],
        )  # fmt: skip


def service_profile(store: Store, service: str) -> ServiceProfile | None:
    """The topology's tier and consumer-facing flag of a service, or None when it is not known."""
    rows = store.query("SELECT tier, consumer_facing FROM topology WHERE service = ?", [service])
    if not rows:
        return None
    tier, facing = rows[0]
    return ServiceProfile(int(tier) if tier is not None else 3, bool(facing))


def incidents_overlapping(store: Store, service: str, start: datetime, end: datetime) -> list[Incident]:
    """Incidents involving ``service`` that were open at some time in ``[start, end]``, oldest first."""
    rows = store.query(
        "SELECT id FROM incidents WHERE list_contains(services, ?) AND opened_at <= ? "
        "AND coalesce(resolved_at, closed_at, ?) >= ? ORDER BY opened_at, id",
        [service, naive_utc(end), naive_utc(end), naive_utc(start)],
    )
    found = (incident_by_id(store, str(r[0])) for r in rows)
    return [i for i in found if i is not None]


def alerts_of_incidents(store: Store, incident_ids: Sequence[str]) -> list[Alert]:
    """The alerts of the given incidents, incident by incident, oldest first."""
    return [a for iid in incident_ids for a in alerts_of(store, iid)]


def burning_since(store: Store, slo: str, at: datetime) -> datetime | None:
    """When the SLO's current non-healthy spell began (the first snapshot after its last healthy one)."""
    row = store.query(
        'SELECT min("at") FROM slo_snapshots WHERE slo = ? AND "at" <= ? AND "at" > coalesce('
        '(SELECT max("at") FROM slo_snapshots WHERE slo = ? AND "at" <= ? AND state = \'healthy\'), '
        "TIMESTAMP '1970-01-01')",
        [slo, at, slo, at],
    )
    return row[0][0] if row and row[0][0] is not None else None
