"""``opsloop alerts`` and ``opsloop alert show ID``: alerts as ``GET /api/v1/alerts`` answers them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.cli import DbOption, JsonOption, settings_for
from api.cli._api import TokenOption, UrlOption, WideOption, ask, find, print_record, print_records, when
from api.cli.render import Table

alert_app = typer.Typer(help="Inspect one alert.", no_args_is_help=True)


def alerts_table(items: list[dict[str, Any]]) -> Table:
    """Alerts: id, name, service, severity, status, since, source."""
    table = Table("id", "name", "service", "severity", "status", "since", "source")
    for a in items:
        table.add_row(
            a["id"],
            a["name"],
            a["service"] or "-",
            a["severity"],
            a["status"],
            when(a["starts_at"]),
            a["source"],
        )
    return table


def alerts(
    status: Annotated[str | None, typer.Option("--status", help="firing or resolved")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="most alerts to show")] = 200,
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List alerts, newest first."""
    items = ask(
        "alerts", settings_for(db), url, token, lambda api: api.items("/api/v1/alerts", limit, status=status)
    )
    print_records(items, as_json, alerts_table, wide)


@alert_app.command("show")
def show(
    alert_id: Annotated[str, typer.Argument(help="alert id")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One alert with its labels and annotations."""
    items = ask("alert show", settings_for(db), url, token, lambda api: api.items("/api/v1/alerts", 100_000))
    print_record(find("alert show", items, alert_id, "alert"), f"alert {alert_id}", as_json)


def register(app: typer.Typer) -> None:
    """Add ``alerts`` and the ``alert`` group."""
    app.command("alerts")(alerts)
    app.add_typer(alert_app, name="alert")
