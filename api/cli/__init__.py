"""The ``opsloop`` command line. Every command that touches data takes ``--db PATH``.

Commands live in small modules (``api/cli/<group>.py``), each with ``register(app)``; this module
only assembles them, so adding a command never means editing a long file.
"""

from __future__ import annotations

import json
import logging
from importlib import import_module
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.settings import Settings
from core.store import SCOPES, Store

app = typer.Typer(
    help="opsloop: AIOps operations analytics on DuckDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(help="Create and revoke API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
console = Console()

DbOption = Annotated[
    str | None, typer.Option("--db", help="DuckDB file (default: $OPSLOOP_DB or ./opsloop.duckdb)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]

#: Modules under ``api.cli`` that add commands with ``register(app)``.
CLI_MODULES: tuple[str, ...] = (
    "demo",
    "topology",
    "scrape",
    "ingest",
    "bench",
    "detect",
    "incidents",
    "diagnose",
    "simulate",
    "replay",
    "slo_status",
    "slo",
)


def settings_for(db: str | None) -> Settings:
    """Settings from the environment, with ``--db`` taking precedence."""
    settings = Settings()
    return settings.model_copy(update={"db": db}) if db else settings


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="accept requests without tokens (local play)")
    ] = False,
) -> None:
    """Run the HTTP server (ingest endpoints, API, /metrics)."""
    import uvicorn

    from api.app import create_app

    settings = settings_for(db)
    updates: dict[str, object] = {}
    if host:
        updates["host"] = host
    if port:
        updates["port"] = port
    if no_auth:
        updates["auth"] = False
    settings = settings.model_copy(update=updates)
    logging.basicConfig(level=settings.log_level.upper())
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )


@token_app.command("create")
def token_create(
    scope: Annotated[list[str], typer.Option("--scope", help=f"one of {', '.join(SCOPES)}; repeatable")],
    name: Annotated[str, typer.Option(help="what the token is for")] = "",
    db: DbOption = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    with Store(settings_for(db).db) as store:
        print(store.create_token(scope, name))


@token_app.command("list")
def token_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """List tokens (ids, names, scopes; never the secrets)."""
    with Store(settings_for(db).db) as store:
        rows = store.list_tokens()
    items = [
        {"id": r[0], "name": r[1], "scopes": r[2], "created_at": str(r[3]), "revoked": r[4]} for r in rows
    ]
    if as_json:
        print(json.dumps(items))
        return
    table = Table("id", "name", "scopes", "created", "revoked")
    for it in items:
        table.add_row(
            str(it["id"]), str(it["name"]), ",".join(it["scopes"]), str(it["created_at"]), str(it["revoked"])
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str, db: DbOption = None) -> None:
    """Revoke a token by id."""
    with Store(settings_for(db).db) as store:
        store.revoke_token(token_id)
    print(f"revoked {token_id}")


@app.command()
def summary(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show what the store holds: rows per table and the newest timestamps."""
    from api.report import store_summary

    with Store(settings_for(db).db) as store:
        data = store_summary(store)
    if as_json:
        print(json.dumps(data, default=str))
        return
    from api.report import print_summary

    print_summary(console, data)


def main() -> None:
    """Console-script entry point."""
    for name in CLI_MODULES:
        import_module(f"api.cli.{name}").register(app)
    app()
