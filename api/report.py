"""Human-readable summaries of the store, shared by the CLI and the demo."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from api.cli.render import Table
from core.store import Store

_TABLES = {
    "series": None,
    "points": "ts",
    "logs": "ts",
    "events": "ts",
    "changes": "ts",
    "topology": None,
    "external_alerts": "updated_at",
}


def store_summary(store: Store) -> dict[str, Any]:
    """Rows and time span per table, plus the top metric names and alert states."""
    tables: dict[str, Any] = {}
    for name, ts in _TABLES.items():
        n, lo, hi = store.table_span(name, ts)
        tables[name] = {"rows": n, "first": lo, "last": hi}
    metrics = store.top_metrics()
    alerts = store.external_alert_counts()
    return {
        "tables": tables,
        "top_metrics": [{"name": m, "series": s, "points": p} for m, s, p in metrics],
        "alerts": [{"source": s, "status": st, "count": c} for s, st, c in alerts],
    }


def print_summary(console: Console, data: dict[str, Any]) -> None:
    """Print a summary as rich tables."""
    t = Table("table", "rows", "first", "last", title="What arrived")
    for name, info in data["tables"].items():
        t.add_row(name, f"{info['rows']:,}", str(info["first"] or ""), str(info["last"] or ""))
    console.print(t)
    if data["top_metrics"]:
        m = Table("metric", "series", "points", title="Top metrics")
        for row in data["top_metrics"]:
            m.add_row(row["name"], str(row["series"]), f"{row['points']:,}")
        console.print(m)
    if data["alerts"]:
        a = Table("source", "status", "alerts", title="External alerts")
        for row in data["alerts"]:
            a.add_row(row["source"], row["status"], str(row["count"]))
        console.print(a)
