"""SQL for the operational metrics: each incident's moments and links, and the deployments.

Everything per incident is computed in one DuckDB query (first alert start, last alert end,
alerts still firing, the leading hypothesis' change, a verified automated restoration) so the
metrics never walk alerts or timelines in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.store import Store
from resolve.problems_repository import AUTOMATION_RESTORED_KINDS

__all__ = ["changes_by_id", "deployments", "incident_facts"]


def incident_facts(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    ids: Sequence[str] | None = None,
) -> list[tuple[Any, ...]]:
    """Incidents opened in ``[since, until)`` (either bound optional), or those of ``ids``, oldest first.

    Rows: ``(id, services, team, first alert start or opening, opened_at, acknowledged_at,
    restored_at, automated, change_ids, leading hypothesis' change or None)``.
    """
    clauses, params = ["TRUE"], []  # type: list[str], list[Any]
    if since is not None:
        clauses.append("i.opened_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("i.opened_at < ?")
        params.append(until)
    if ids is not None:
        clauses.append("i.id IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(ids))
    params.append(list(AUTOMATION_RESTORED_KINDS))
    rows = store.query(
        f"""
        WITH chosen AS (SELECT * FROM incidents i WHERE {" AND ".join(clauses)}),
        alert_span AS (
            SELECT a.incident_id, min(a.starts_at) AS first_start, max(a.ends_at) AS last_end,
                   count(*) FILTER (WHERE a.status = 'firing') AS firing
            FROM alerts a WHERE a.incident_id IN (SELECT id FROM chosen) GROUP BY a.incident_id),
        automated AS (
            SELECT DISTINCT t.incident_id FROM incident_timeline t
            WHERE t.incident_id IN (SELECT id FROM chosen)
              AND t.kind IN (SELECT unnest(?::VARCHAR[])) AND t.actor = 'opsloop')
        SELECT c.id, c.services, coalesce(c.team, ''), least(c.opened_at, s.first_start), c.opened_at,
               c.acknowledged_at,
               CASE WHEN c.status IN ('mitigated', 'resolved', 'closed') OR c.mitigated_at IS NOT NULL
                         OR c.resolved_at IS NOT NULL THEN
                   least(c.mitigated_at, c.resolved_at, c.closed_at,
                         CASE WHEN s.firing = 0 THEN s.last_end END) END,
               m.incident_id IS NOT NULL,
               c.change_ids,
               CASE WHEN c.hypotheses->>'$[0].kind' = 'change' THEN c.hypotheses->>'$[0].component' END
        FROM chosen c
        LEFT JOIN alert_span s ON s.incident_id = c.id
        LEFT JOIN automated m ON m.incident_id = c.id
        ORDER BY c.opened_at, c.id
        """,
        params,
    )
    return rows


def deployments(
    store: Store, *, kinds: Sequence[str], since: datetime, until: datetime
) -> list[tuple[str, str, datetime, str]]:
    """Changes of ``kinds`` made in ``[since, until)`` as ``(id, service, ts, owning team)``."""
    rows = store.query(
        "SELECT c.id, c.service, c.ts, coalesce(t.owner, '') FROM changes c "
        "LEFT JOIN topology t ON t.service = c.service "
        "WHERE c.kind IN (SELECT unnest(?::VARCHAR[])) AND c.ts >= ? AND c.ts < ? ORDER BY c.ts, c.id",
        [list(kinds), since, until],
    )
    return [(str(i), str(s), ts, str(team)) for i, s, ts, team in rows]


def changes_by_id(store: Store, ids: Sequence[str]) -> list[tuple[str, str, str, datetime, str, str, str]]:
    """Changes as ``(id, service, kind, ts, version, source, description)``, oldest first."""
    if not ids:
        return []
    rows = store.query(
        "SELECT id, service, kind, ts, coalesce(version, ''), coalesce(source, ''), coalesce(description, '') "
        "FROM changes WHERE id IN (SELECT unnest(?::VARCHAR[])) ORDER BY ts, id",
        [list(ids)],
    )
    return [(str(i), str(s), str(k), ts, str(v), str(src), str(d)) for i, s, k, ts, v, src, d in rows]
