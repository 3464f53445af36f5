"""``opsloop token create|list|revoke``: API tokens (only their hashes are stored)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from api.cli import DbOption, JsonOption, console, settings_for
from core.store import SCOPES, Store

token_app = typer.Typer(help="Create and revoke API tokens.", no_args_is_help=True)


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


def register(app: typer.Typer) -> None:
    """Add the ``token`` group."""
    app.add_typer(token_app, name="token")
