"""``opsloop known-errors list|show``: known errors as ``GET /api/v1/known-errors`` answers them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.cli import DbOption, JsonOption, settings_for
from api.cli._api import TokenOption, UrlOption, api_for, fail, print_json
from api.cli.render import Table, table_console
from core.errors import OpsloopError

known_app = typer.Typer(
    help="Known errors: signatures Diagnose matches, with their workaround.", no_args_is_help=True
)
WideOption = Annotated[bool, typer.Option("--wide", help="never fold columns (for wide terminals)")]


def known_errors_table(items: list[dict[str, Any]]) -> Table:
    """Known errors: id, title, services, workaround, problem."""
    table = Table("id", "title", "services", "workaround", "problem id", "created")
    for k in items:
        table.add_row(
            k["id"], k["title"], ", ".join(k["services"]) or "-", k["workaround"] or "-",
            k["problem_id"] or "-", (k["created_at"] or "-").replace("T", " ").removesuffix("Z"),
        )  # fmt: skip
    return table


@known_app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", min=1, help="most known errors to show")] = 1000,
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List known errors, oldest first."""
    try:
        with api_for(settings_for(db), url, token) as api:
            items = api.items("/api/v1/known-errors", limit)
    except (OpsloopError, OSError) as exc:
        raise fail("known-errors list", exc) from exc
    if as_json:
        print_json(items)
        return
    table_console(wide).print(known_errors_table(items))


@known_app.command("show")
def show(
    known_error_id: Annotated[str, typer.Argument(help="known error id, e.g. KE-...")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One known error with its signature."""
    try:
        with api_for(settings_for(db), url, token) as api:
            found = next(
                (k for k in api.items("/api/v1/known-errors", 100_000) if k["id"] == known_error_id), None
            )
    except (OpsloopError, OSError) as exc:
        raise fail("known-errors show", exc) from exc
    if found is None:
        raise fail("known-errors show", OpsloopError(f"known error {known_error_id!r} not found"))
    if as_json:
        print_json(found)
        return
    table = Table("field", "value", title=f"known error {known_error_id}", show_header=False)
    for key, value in found.items():
        table.add_row(
            key, ", ".join(value) if isinstance(value, list) else str(value if value is not None else "-")
        )
    table_console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``known-errors`` group."""
    app.add_typer(known_app, name="known-errors")
