"""``opsloop token create|list|revoke``: API tokens (only their hashes are stored)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from api.cli import DbOption, JsonOption, console, settings_for
from api.cli._remote import NeedsFileError, TokenOption, UrlOption, open_target
from api.cli.render import Table
from api.client import Client
from api.server_file import read_server_file
from core.store import SCOPES, Store

token_app = typer.Typer(help="Create and revoke API tokens.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    scope: Annotated[list[str], typer.Option("--scope", help=f"one of {', '.join(SCOPES)}; repeatable")],
    name: Annotated[str, typer.Option(help="what the token is for")] = "",
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Create a token and print it once (only its hash is stored).

    While a server holds the file, an admin ``--token`` asks its API; without one, the
    bootstrap secret the server left in ``<db>.serve.json`` (mode 0600) does, from this host.
    """
    settings = settings_for(db)
    with open_target(settings, url, token) as target:
        if isinstance(target, Store):
            print(target.create_token(scope, name))
            return
        body = {"scopes": scope, "name": name}
        if token:
            print(target.post("/api/v1/tokens", json=body)["token"])
            return
        secret = (read_server_file(settings.db) or {}).get("secret")
        if not secret:
            raise NeedsFileError(
                f"no admin --token, and {settings.db}.serve.json is not readable here: run this on the"
                " server's host as the user that runs it, or pass an admin --token"
            )
        with Client(target.url, str(secret)) as bootstrap:
            print(bootstrap.post("/api/v1/bootstrap/token", json=body)["token"])


@token_app.command("list")
def token_list(
    db: DbOption = None, as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """List tokens (ids, names, scopes; never the secrets); an admin --token while serving."""
    with open_target(settings_for(db), url, token) as target:
        if isinstance(target, Client):
            items = sorted(
                target.get("/api/v1/tokens", limit=1000)["items"], key=lambda t: str(t["created_at"])
            )
        else:
            rows = target.list_tokens()
            items = [
                {"id": r[0], "name": r[1], "scopes": r[2], "created_at": str(r[3]), "revoked": r[4]}
                for r in rows
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
def token_revoke(
    token_id: str, db: DbOption = None, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Revoke a token by id; an admin --token while serving."""
    with open_target(settings_for(db), url, token) as target:
        if isinstance(target, Client):
            target.delete(f"/api/v1/tokens/{token_id}")
        else:
            target.revoke_token(token_id)
    print(f"revoked {token_id}")


def register(app: typer.Typer) -> None:
    """Add the ``token`` group."""
    app.add_typer(token_app, name="token")
