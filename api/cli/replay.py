"""``opsloop replay DIR --db PATH``: stream a scenario directory through every stage."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli import DbOption, JsonOption, settings_for
from core.errors import OpsloopError
from core.store import Store


def replay(
    directory: Annotated[Path, typer.Argument(help="scenario directory (see docs/scenario-format.md)")],
    db: DbOption = None,
    step: Annotated[
        float | None, typer.Option("--step", min=1.0, help="seconds per slice (default: the sample interval)")
    ] = None,
    as_json: JsonOption = False,
    execute: Annotated[
        bool, typer.Option("--execute", help="run the runbook steps planned (default: plan only)")
    ] = False,
) -> None:
    """Replay a scenario in event-time order as fast as it goes; print the incidents it opened."""
    from api.cli.incidents import incidents_table, wide_console
    from api.common import incident_page
    from api.replay import replay as run
    from ingest.scenario import open_scenario

    settings = settings_for(db)
    err = Console(stderr=True)
    try:
        first, last = open_scenario(directory).time_range()
        span = max((last - first).total_seconds(), 1.0) if first and last else 1.0
        with Progress(
            TextColumn("replay"), BarColumn(), TextColumn("{task.fields[at]}"), TimeElapsedColumn(),
            console=err, disable=as_json, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("replay", total=span, at="")

            def progress(_: int, at: datetime) -> None:
                bar.update(task, completed=(at - first).total_seconds() if first else 0, at=str(at))

            result = run(
                directory, settings.db, settings=settings, step_s=step, progress=progress, execute=execute
            )
    except OpsloopError as exc:
        err.print(exc.message, style="red", markup=False)
        raise typer.Exit(2) from exc
    with Store(settings.db, read_only=True) as store:
        page = incident_page(store, limit=1000)
    if as_json:
        print(json.dumps({
            "db": result.db, "slices": result.slices, "points": result.points, "rows": result.rows,
            "seconds": round(result.seconds, 3), "incidents": page["items"],
        }))  # fmt: skip
        return
    console = wide_console()
    console.print(
        f"replayed {result.points:,} points ({result.rows:,} rows) from {result.start} to {result.end} "
        f"in {result.seconds:.1f} s: {page['total']} incidents"
    )
    console.print(incidents_table(page["items"], title="incidents"))


def register(app: typer.Typer) -> None:
    """Add ``replay``."""
    app.command("replay")(replay)
