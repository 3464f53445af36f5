"""``opsloop simulate``: write a fault-injection scenario directory (telemetry plus truth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli import JsonOption
from api.cli.render import Table
from core.errors import ConfigError


def simulate(
    out: Annotated[Path, typer.Option("--out", help="scenario directory to write")],
    seed: Annotated[int, typer.Option("--seed", help="same seed, same bytes")] = 1,
    days: Annotated[
        float, typer.Option("--days", min=0.1, help="length of the run; faults in its second half")
    ] = 2.0,
    interval: Annotated[
        int, typer.Option("--interval", min=10, max=300, help="seconds between samples")
    ] = 60,
    faults: Annotated[int, typer.Option("--faults", min=0, help="how many faults to inject")] = 6,
    services: Annotated[int, typer.Option("--services", min=6, max=35, help="size of the estate")] = 12,
    force: Annotated[bool, typer.Option("--force", help="replace an existing scenario in --out")] = False,
    as_json: JsonOption = False,
) -> None:
    """Simulate a microservice estate with injected faults; write metrics, logs, changes and truth."""
    from ingest.simulator import simulate as run

    try:
        summary = run(
            out, seed=seed, days=days, interval_s=interval, faults=faults, services=services, force=force
        )
    except ConfigError as exc:
        raise typer.BadParameter(exc.message) from exc
    if as_json:
        print(json.dumps(summary.to_json()))
        return
    console = Console()
    console.print(
        f"[bold]{summary.out}[/bold]: {summary.services} services, {summary.series} series, "
        f"{summary.points:,} points, {len(summary.faults)} faults, {len(summary.red_herrings)} red herrings"
    )
    table = Table("id", "kind", "root cause", "start (UTC)", "min", "visible after", "affected")
    for f in summary.faults:
        table.add_row(
            f.id,
            f.kind,
            f.root_cause,
            f.to_json()["start"].replace("T", " ").removesuffix("Z"),
            f"{(f.end - f.start) / 60:.0f}",
            f"{f.visible_at - f.start} s",
            str(len(f.affected)),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``simulate``."""
    app.command("simulate")(simulate)
