"""``opsloop problems list [--json] [--state S] [--service S]`` and ``opsloop problems regroup
[--since T]``: the problems ``GET /api/v1/problems`` answers, and grouping the incidents a
store already holds (a replay, or a database from before problems existed).

``list`` opens the file read-only; ``regroup`` writes (problems, known errors, backlog items
delivered to the configured trackers), so no server may hold the file.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption, settings_for
from api.cli.incidents import _open, wide_console
from api.cli.render import Table
from api.common import parse_time
from api.problem_backlog import BacklogFiler
from api.routers.problems import parse_problem_states, problem_to_wire
from core.errors import OpsloopError
from core.store import Store
from resolve.problems import Problem, ProblemConfig, ProblemManager

problems_app = typer.Typer(help="Problems: recurring incidents under one cause.", no_args_is_help=True)


def _table(problems: list[Problem]) -> Table:
    table = Table("id", "state", "title", "services", "incidents", "last seen", "workaround")
    for p in problems:
        table.add_row(p.id, p.state.value, p.title, ", ".join(p.services), str(len(p.incident_ids)),
                      f"{p.last_seen:%Y-%m-%d %H:%M}" if p.last_seen else "-", p.workaround or "-")  # fmt: skip
    return table


@problems_app.command("list")
def list_problems(
    db: DbOption = None,
    as_json: JsonOption = False,
    state: Annotated[list[str] | None, typer.Option("--state", help="open, known_error, resolved")] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="only problems touching this service")
    ] = None,
) -> None:
    """Problems, most recently seen first."""
    try:
        states = parse_problem_states(state or [])
    except OpsloopError as exc:
        Console(stderr=True).print(exc.message, style="red", markup=False)
        raise typer.Exit(2) from exc
    store = _open(db)
    try:
        found = ProblemManager(store).list_problems(state=states, service=service, limit=10_000)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([problem_to_wire(p) for p in found], indent=2))
    else:
        wide_console().print(_table(found))


@problems_app.command("regroup")
def regroup(
    db: DbOption = None,
    as_json: JsonOption = False,
    since: Annotated[
        str | None, typer.Option("--since", help="only incidents opened since (RFC 3339)")
    ] = None,
) -> None:
    """Group the stored incidents into problems, oldest first (idempotent)."""
    settings = settings_for(db)
    try:
        start = parse_time("since", since)
        store = Store(settings.db)
    except OpsloopError as exc:
        Console(stderr=True).print(exc.message, style="red", markup=False)
        raise typer.Exit(1) from exc
    try:
        manager = ProblemManager(
            store, ProblemConfig.from_settings(settings), filer=BacklogFiler(store, settings)
        )
        changed = manager.regroup(start)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([problem_to_wire(p) for p in changed], indent=2))
    else:
        wide_console().print(_table(changed))


def register(app: typer.Typer) -> None:
    """Add the ``problems`` command group."""
    app.add_typer(problems_app, name="problems")
