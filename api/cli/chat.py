"""``opsloop chat users add|list|remove`` (who may act from chat) and ``opsloop chat ask`` (try a command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from api.chat.commands import Caller, Services, run
from api.chat.users import ChatUser, Role, load_users, save_users
from api.cli import DbOption, JsonOption, console, settings_for
from api.cli.render import Table
from core.errors import ConfigError
from core.store import Store

chat_app = typer.Typer(help="ChatOps: chat users and their roles; try a chat command.", no_args_is_help=True)
users_app = typer.Typer(help="Map chat users (platform:user_id) to roles.", no_args_is_help=True)
chat_app.add_typer(users_app, name="users")

FileOption = Annotated[
    Path | None,
    typer.Option("--file", help="the user map (default: $OPSLOOP_CHAT_USERS or ./chat-users.yaml)"),
]


def _path(file: Path | None) -> Path:
    return file or settings_for(None).chat_users


def _load(path: Path) -> dict[str, ChatUser]:
    try:
        return load_users(path)
    except ConfigError as exc:
        raise typer.BadParameter(exc.message) from exc


@users_app.command("add")
def users_add(
    key: Annotated[str, typer.Argument(help="platform:user_id, e.g. slack:U012AB3CD or mattermost:8x3k...")],
    role: Annotated[
        str, typer.Option(help="viewer, responder (ack, assign, note, resolve, silence) or approver")
    ],
    name: Annotated[str, typer.Option(help="how the timeline names them")] = "",
    channel: Annotated[
        list[str], typer.Option("--channel", help="act only here (id or name); repeatable")
    ] = [],  # noqa: B006
    file: FileOption = None,
) -> None:
    """Add a user, or replace their entry."""
    path = _path(file)
    if ":" not in key or key.startswith(":") or key.endswith(":"):
        raise typer.BadParameter(f"{key!r} must be platform:user_id (e.g. slack:U012AB3CD)")
    try:
        parsed = Role.parse(role)
    except ConfigError as exc:
        raise typer.BadParameter(exc.message) from exc
    users = _load(path)
    users[key] = ChatUser(key, name, parsed, tuple(channel))
    save_users(path, users)
    console.print(f"{escape(key)}: {parsed.name.lower()} in {escape(str(path))}")


@users_app.command("list")
def users_list(file: FileOption = None, as_json: JsonOption = False) -> None:
    """List mapped users."""
    users = _load(_path(file))
    rows: list[dict[str, Any]] = [{"user": u.key, "name": u.name, "role": u.role.name.lower(), "channels": list(u.channels)}
            for u in sorted(users.values(), key=lambda u: u.key)]  # fmt: skip
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("user", "name", "role", "channels")
    for r in rows:
        table.add_row(
            escape(r["user"]), escape(r["name"]), r["role"], escape(", ".join(r["channels"]) or "any")
        )
    console.print(table)


@users_app.command("remove")
def users_remove(key: str, file: FileOption = None) -> None:
    """Remove a user (they may read only from then on)."""
    path = _path(file)
    users = _load(path)
    if users.pop(key, None) is None:
        console.print(f"[red]no user {escape(key)} in {escape(str(path))}[/red]")
        raise typer.Exit(1)
    save_users(path, users)
    console.print(f"removed {escape(key)}")


@chat_app.command("ask")
def ask(text: Annotated[str, typer.Argument(help="a chat command, e.g. 'incidents open'")], db: DbOption = None,
        as_json: JsonOption = False) -> None:  # fmt: skip
    """Answer a read-only chat command from the database, as a bot would get it."""
    with Store(settings_for(db).db, read_only=True) as store:
        answer = run(Services(store), Caller("cli", "cli", "cli"), text)
    if as_json:
        print(json.dumps(answer.to_wire()))
    else:
        console.print(escape(answer.to_wire()["text"]))
    if not answer.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``opsloop chat``."""
    app.add_typer(chat_app, name="chat")
