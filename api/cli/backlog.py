"""``opsloop backlog list|show``: the reliability backlog as ``GET /api/v1/backlog`` answers it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.cli import DbOption, JsonOption, settings_for
from api.cli._api import TokenOption, UrlOption, WideOption, ask, print_record, print_records
from api.cli.render import Table

backlog_app = typer.Typer(help="The reliability backlog the error-budget policy keeps.", no_args_is_help=True)


def backlog_table(items: list[dict[str, Any]]) -> Table:
    """Backlog items: id, status, title, SLO, priority and where trackers hold them."""
    table = Table("id", "status", "title", "slo", "priority", "links")
    for b in items:
        links = b.get("links") or {}
        table.add_row(
            str(b["id"]), str(b.get("status", "-")), str(b.get("title", "")), str(b.get("slo") or "-"),
            str(b.get("priority", "-")), ", ".join(f"{k}: {v}" for k, v in links.items()) or "-",
        )  # fmt: skip
    return table


@backlog_app.command("list")
def list_(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="open, downgraded or closed; repeatable")
    ] = None,
    slo: Annotated[str | None, typer.Option("--slo", help="only items of this SLO")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="most items to show")] = 100,
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List backlog items, open first and highest priority first."""
    items = ask("backlog list", settings_for(db), url, token,
                lambda api: api.items("/api/v1/backlog", limit, status=status or None, slo=slo))  # fmt: skip
    print_records(items, as_json, backlog_table, wide)


@backlog_app.command("show")
def show(
    item_id: Annotated[str, typer.Argument(help="backlog item id")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One backlog item with what each tracker holds."""
    item = ask(
        "backlog show", settings_for(db), url, token, lambda api: api.get(f"/api/v1/backlog/{item_id}")
    )
    print_record(item, f"backlog item {item_id}", as_json)


def register(app: typer.Typer) -> None:
    """Add the ``backlog`` group."""
    app.add_typer(backlog_app, name="backlog")
