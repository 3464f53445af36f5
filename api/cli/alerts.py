"""``opsloop alerts`` and ``opsloop alert show ID``: alerts as ``GET /api/v1/alerts`` answers them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from api.cli import DbOption, JsonOption, settings_for
from api.cli._api import TokenOption, UrlOption, api_for, fail, print_json
from api.cli.render import Table, table_console
from core.errors import OpsloopError

alert_app = typer.Typer(help="Inspect one alert.", no_args_is_help=True)
WideOption = Annotated[bool, typer.Option("--wide", help="never fold columns (for wide terminals)")]


def _when(text: str | None) -> str:
    return (text or "-").replace("T", " ").removesuffix("Z")


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
            _when(a["starts_at"]),
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
    try:
        with api_for(settings_for(db), url, token) as api:
            items = api.items("/api/v1/alerts", limit, status=status)
    except (OpsloopError, OSError) as exc:
        raise fail("alerts", exc) from exc
    if as_json:
        print_json(items)
        return
    table_console(wide).print(alerts_table(items))


@alert_app.command("show")
def show(
    alert_id: Annotated[str, typer.Argument(help="alert id")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One alert with its labels and annotations."""
    try:
        with api_for(settings_for(db), url, token) as api:
            found = next((a for a in api.items("/api/v1/alerts", 100_000) if a["id"] == alert_id), None)
    except (OpsloopError, OSError) as exc:
        raise fail("alert show", exc) from exc
    if found is None:
        raise fail("alert show", OpsloopError(f"alert {alert_id!r} not found"))
    if as_json:
        print_json(found)
        return
    table = Table("field", "value", title=f"alert {alert_id}", show_header=False)
    for key, value in found.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        table.add_row(key, "-" if value is None else str(value))
    table_console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``alerts`` and the ``alert`` group."""
    app.command("alerts")(alerts)
    app.add_typer(alert_app, name="alert")
