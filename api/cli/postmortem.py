"""``opsloop postmortem INCIDENT [--format md|html|json] [--output FILE]``: the blameless
post-mortem the API answers at ``GET /api/v1/incidents/{id}/postmortem``, from the file.

The DuckDB file is opened read-only (against a running server, ask its API instead).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli import DbOption, settings_for
from api.cli.incidents import _open
from api.problem_backlog import postmortem_for
from core.errors import OpsloopError
from resolve.postmortem import render

FORMATS = ("md", "html", "json")


def postmortem(
    incident: Annotated[str, typer.Argument(help="incident id, e.g. INC-12")],
    db: DbOption = None,
    fmt: Annotated[str, typer.Option("--format", help="md, html or json")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
) -> None:
    """Print (or write) the blameless post-mortem of INCIDENT."""
    err = Console(stderr=True)
    if fmt not in FORMATS:
        err.print(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}", style="red", markup=False)
        raise typer.Exit(2)
    settings = settings_for(db)
    store = _open(db)
    try:
        report = postmortem_for(store, settings, incident)
    except OpsloopError as exc:
        err.print(exc.message, style="red", markup=False)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    text = json.dumps(report.to_dict(), indent=2) + "\n" if fmt == "json" else render(report, fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    """Add the ``postmortem`` command."""
    app.command("postmortem")(postmortem)
