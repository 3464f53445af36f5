"""``opsloop backlog list|show``: the reliability backlog as ``GET /api/v1/backlog`` answers it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.cli import DbOption, JsonOption, settings_for
from api.cli._api import TokenOption, UrlOption, api_for, fail, print_json
from api.cli.render import Table, table_console
from core.errors import OpsloopError

backlog_app = typer.Typer(help="The reliability backlog the error-budget policy keeps.", no_args_is_help=True)
WideOption = Annotated[bool, typer.Option("--wide", help="never fold columns (for wide terminals)")]


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
    try:
        with api_for(settings_for(db), url, token) as api:
            items = api.items("/api/v1/backlog", limit, status=status or None, slo=slo)
    except (OpsloopError, OSError) as exc:
        raise fail("backlog list", exc) from exc
    if as_json:
        print_json(items)
        return
    table_console(wide).print(backlog_table(items))


@backlog_app.command("show")
def show(
    item_id: Annotated[str, typer.Argument(help="backlog item id")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One backlog item with what each tracker holds."""
    try:
        with api_for(settings_for(db), url, token) as api:
            item = api.get(f"/api/v1/backlog/{item_id}")
    except (OpsloopError, OSError) as exc:
        raise fail("backlog show", exc) from exc
    if as_json:
        print_json(item)
        return
    table = Table("field", "value", title=f"backlog item {item_id}", show_header=False)
    for key, value in item.items():
        table.add_row(key, str(value if value is not None else "-"))
    table_console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``backlog`` group."""
    app.add_typer(backlog_app, name="backlog")
