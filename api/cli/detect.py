"""``opsloop detect`` (offline backfill, resuming from the snapshot) and ``opsloop anomalies``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.cli import DbOption, JsonOption, settings_for
from api.cli._remote import TokenOption, UrlOption, open_target, store_of
from api.cli.render import Table
from api.common import parse_series_id, parse_time
from api.convert import anomaly_to_wire
from core.errors import OpsloopError
from core.store import Store

SinceOption = Annotated[
    str | None, typer.Option("--since", help="RFC 3339 time or Unix seconds (e.g. 2026-11-01T00:00:00Z)")
]


def detect(db: DbOption = None, since: SinceOption = None) -> None:
    """Score stored points not yet scored (resuming from the last snapshot), then snapshot."""
    from detect.engine import DetectionEngine
    from detect.repository import count_anomalies

    settings = settings_for(db)
    err = Console(stderr=True)
    try:
        start = parse_time("since", since)
    except OpsloopError as exc:
        raise typer.BadParameter(exc.message, param_hint="--since") from exc
    with Store(settings.db) as store:
        engine = DetectionEngine(store, settings=settings)
        todo = engine.backlog
        with Progress(
            TextColumn("[bold]scoring points"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        ) as bar:
            task = bar.add_task("detect", total=max(todo, 1))
            scored = engine.catch_up(
                progress=lambda done, total: bar.update(task, completed=done), since=start
            )
            bar.update(task, completed=max(todo, 1))
        engine.snapshot()
        found = count_anomalies(store)
    err.print(f"scored {scored:,} points; {found:,} anomalies stored; snapshot at row {engine.watermark:,}")


def anomalies(
    db: DbOption = None,
    as_json: JsonOption = False,
    series: Annotated[list[str] | None, typer.Option("--series", help="series id; repeatable")] = None,
    service: Annotated[str | None, typer.Option("--service", help="only this service")] = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="most anomalies to show")] = 50,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List stored anomalies, newest first."""
    from detect.repository import list_anomalies

    try:
        ids = [parse_series_id("--series", s) for s in series or []]
        start = parse_time("--since", since)
    except OpsloopError as exc:
        raise typer.BadParameter(exc.message) from exc
    with open_target(settings_for(db), url, token, read_only=True) as target:
        found = list_anomalies(store_of(target), series_ids=ids, service=service, since=start, limit=limit)
    items = [anomaly_to_wire(a) for a in found]
    if as_json:
        print(json.dumps(items))
        return
    table = Table("time", "series", "service", "value", "expected", "band", "probability", "dir", "id")
    for a in found:
        table.add_row(
            a.ts.isoformat(sep=" "),
            a.name or str(a.series_id),
            a.service or "",
            f"{a.value:.4g}",
            f"{a.expected:.4g}",
            f"[{a.lower:.4g}, {a.upper:.4g}]",
            f"{a.probability:.5f}",
            a.direction,
            a.id,
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``detect`` and ``anomalies``."""
    app.command("detect")(detect)
    app.command("anomalies")(anomalies)
