"""``opsloop known-errors list|show``: known errors as ``GET /api/v1/known-errors`` answers them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.cli import DbOption, JsonOption, settings_for
from api.cli._api import TokenOption, UrlOption, WideOption, ask, find, print_record, print_records, when
from api.cli.render import Table

known_app = typer.Typer(
    help="Known errors: signatures Diagnose matches, with their workaround.", no_args_is_help=True
)


def known_errors_table(items: list[dict[str, Any]]) -> Table:
    """Known errors: id, title, services, workaround, problem."""
    table = Table("id", "title", "services", "workaround", "problem id", "created")
    for k in items:
        table.add_row(
            k["id"], k["title"], ", ".join(k["services"]) or "-", k["workaround"] or "-",
            k["problem_id"] or "-", when(k["created_at"]),
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
    items = ask(
        "known-errors list",
        settings_for(db),
        url,
        token,
        lambda api: api.items("/api/v1/known-errors", limit),
    )
    print_records(items, as_json, known_errors_table, wide)


@known_app.command("show")
def show(
    known_error_id: Annotated[str, typer.Argument(help="known error id, e.g. KE-...")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One known error with its signature."""
    items = ask("known-errors show", settings_for(db), url, token,
                lambda api: api.items("/api/v1/known-errors", 100_000))  # fmt: skip
    print_record(
        find("known-errors show", items, known_error_id, "known error"),
        f"known error {known_error_id}",
        as_json,
    )


def register(app: typer.Typer) -> None:
    """Add the ``known-errors`` group."""
    app.add_typer(known_app, name="known-errors")
