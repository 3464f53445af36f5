"""``opsloop runbooks load FILE... [--db]``, ``opsloop runbooks list [--json]`` and ``opsloop
runbooks plan INCIDENT [--json]``: the catalog from the command line.

``load`` validates every file first (an error names file, document and field, exit 2) and then
stores them, each changed runbook as its next version; it writes, so no server may hold the
file (use ``POST /api/v1/runbooks`` then). ``list`` and ``plan`` open the file read-only;
``plan`` is a dry run: the runbooks that match the incident now, with every value rendered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption, settings_for
from api.cli.incidents import _open, wide_console
from api.cli.render import Table
from api.routers.runbooks import runbook_to_wire
from core.errors import OpsloopError
from core.store import Store
from resolve.catalog import Catalog
from resolve.planner import Planner
from resolve.runbooks import allowed_commands_from, load_files

runbooks_app = typer.Typer(help="Runbooks: the catalog Resolve plans from.", no_args_is_help=True)


def _fail(exc: OpsloopError, code: int) -> typer.Exit:
    Console(stderr=True).print(exc.message, style="red", markup=False)
    return typer.Exit(code)


@runbooks_app.command("load")
def load(
    files: Annotated[list[Path], typer.Argument(help="runbook YAML files", exists=True, dir_okay=False)],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate and store runbook files (changed content becomes a new version)."""
    settings = settings_for(db)
    try:
        allowed = allowed_commands_from(settings.resolve_allowed_commands)
        runbooks = load_files(files, allowed_commands=allowed)
    except OpsloopError as exc:
        raise _fail(exc, 2) from exc
    try:
        store = Store(settings.db)
    except OpsloopError as exc:
        raise _fail(exc, 1) from exc
    try:
        loaded = Catalog(store, allowed).load(runbooks, by="cli")
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([runbook_to_wire(x) for x in loaded], indent=2))
        return
    for x in loaded:
        state = "new version" if x.changed else "unchanged"
        typer.echo(f"{x.runbook.name} v{x.runbook.version} ({state}) from {x.runbook.source}")


@runbooks_app.command("list")
def list_runbooks(db: DbOption = None, as_json: JsonOption = False) -> None:
    """The active version of each runbook."""
    settings = settings_for(db)
    store = _open(db)
    try:
        active = Catalog(store, allowed_commands_from(settings.resolve_allowed_commands)).active()
    except OpsloopError as exc:
        raise _fail(exc, 1) from exc
    finally:
        store.close()
    wire = [runbook_to_wire(x) for x in active]
    if as_json:
        typer.echo(json.dumps(wire, indent=2))
        return
    table = Table("name", "version", "mode", "steps", "rollback", "verify", "source")
    for w in wire:
        table.add_row(w["name"], str(w["version"]), w["mode"], ", ".join(w["steps"]), ", ".join(w["rollback"]) or "-",
                      f"{w['verify_window_s']:.0f} s", w["source"])  # fmt: skip
    wide_console().print(table)


@runbooks_app.command("plan")
def plan(
    incident: Annotated[str, typer.Argument(help="incident id")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Dry run: the runbooks matching the incident now, every value rendered."""
    settings = settings_for(db)
    store = _open(db)
    try:
        catalog = Catalog(store, allowed_commands_from(settings.resolve_allowed_commands))
        drafts = Planner(store, catalog).preview(incident)
    except OpsloopError as exc:
        raise _fail(exc, 1) from exc
    finally:
        store.close()
    wire = [d.to_wire() for d in drafts]
    if as_json:
        typer.echo(json.dumps(wire, indent=2))
        return
    if not wire:
        typer.echo(f"no runbook matches incident {incident}")
    for w in wire:
        typer.echo(f"{w['runbook']} v{w['version']} ({w['mode']}) for {w['service'] or '-'}"
                   + (f": REFUSED {w['error']}" if w["error"] else ""))  # fmt: skip
        for s in w["steps"]:
            shown = json.dumps(s["argv"]) if s["kind"] == "command" else json.dumps(s["request"])
            typer.echo(f"  {s['name']} [{s['kind']}] {shown}")
        for s in w["rollback"]:
            typer.echo(f"  rollback {s['name']} [{s['kind']}]")


def register(app: typer.Typer) -> None:
    """Add the ``runbooks`` command group."""
    app.add_typer(runbooks_app, name="runbooks")
