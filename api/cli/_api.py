"""The API answers for the record commands (``alerts``, ``silence``, ``backlog``, ``known-errors``).

They print exactly what the HTTP API answers. With ``--url`` (``$OPSLOOP_URL``) they ask that
server; otherwise they read the local file by running the same routes in-process over a
read-only store, and when a running server holds the file they ask it instead (one line on
stderr says so). Writes (creating or expiring a silence) go to the server, which owns the
live silence set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import httpx
import typer
from fastapi.testclient import TestClient
from rich.console import Console

from api.cli.render import Table, table_console
from api.client import Client, RemoteError
from api.server_file import read_server_file
from core.errors import OpsloopError, StorageError
from core.settings import Settings
from core.store import Store

T = TypeVar("T")

__all__ = [
    "Api",
    "TokenOption",
    "UrlOption",
    "WideOption",
    "api_for",
    "ask",
    "fail",
    "find",
    "print_json",
    "print_record",
    "print_records",
    "when",
]

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="OPSLOOP_URL", help="a running server, e.g. http://127.0.0.1:8080"),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="OPSLOOP_TOKEN", help="bearer token for the server's API")
]
WideOption = Annotated[bool, typer.Option("--wide", help="never fold columns (for wide terminals)")]


class Api:
    """GET/POST/DELETE against the server's API or the same routes over the local file."""

    def __init__(self, http: Client | TestClient, where: str) -> None:
        self._http = http
        self.where = where

    def _send(self, method: str, path: str, **kw: Any) -> Any:
        response = self._http.request(method, path, **kw)  # a Client raises RemoteError itself
        if not response.is_success:
            try:
                message = response.json().get("error") or response.text
            except ValueError:
                message = response.text
            raise RemoteError(
                f"{self.where} answered {response.status_code}: {message}", response.status_code
            )
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path``; None-valued params are left out."""
        return self._send("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any) -> Any:
        """POST JSON to ``path``."""
        return self._send("POST", path, json=body)

    def delete(self, path: str) -> Any:
        """DELETE ``path``."""
        return self._send("DELETE", path)

    def items(self, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
        """Up to ``limit`` items of a list endpoint, following ``next_cursor``."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(out) < limit:
            page = self.get(path, limit=min(1000, limit - len(out)), cursor=cursor, **params)
            out += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return out


def _server_url(settings: Settings) -> str:
    """Where the server on this database listens (its server file), else the configured address."""
    info = read_server_file(settings.db) or {}
    return str(info.get("url") or f"http://{settings.host}:{settings.port}")


@contextmanager
def api_for(settings: Settings, url: str | None, token: str | None, *, write: bool = False) -> Iterator[Api]:
    """The API to ask: ``url``'s server, else the local file (in-process routes), else the server
    that holds the file. ``write`` always goes to a server (default the configured address)."""
    if url or write:
        target = url or _server_url(settings)
        with Client(target, token) as client:
            yield Api(client, target)
        return
    try:
        store = Store(settings.db, read_only=True)
    except StorageError as exc:
        if "lock" not in exc.message.lower():
            raise
        target = _server_url(settings)
        Console(stderr=True).print(
            f"{settings.db} is held by a running server; asking its API at {target}", markup=False
        )
        with Client(target, token) as client:
            yield Api(client, target)
        return
    from api.app import create_app

    app = create_app(settings.model_copy(update={"auth": False}), store)
    app.state.store = store  # these routes read only the store: no loop is started (no lifespan)
    http = TestClient(app)
    try:
        yield Api(http, settings.db)
    finally:
        http.close()
        store.close()


def fail(command: str, exc: Exception) -> typer.Exit:
    """Print one line for an expected error and return the exit to raise."""
    message = exc.message if isinstance(exc, OpsloopError) else str(exc)
    if isinstance(exc, httpx.HTTPError):
        message = f"cannot reach the server: {exc}"
    Console(stderr=True).print(f"opsloop {command}: {message}", style="red", markup=False, highlight=False)
    return typer.Exit(1)


def print_json(value: Any) -> None:
    """Print JSON on stdout (for ``--json``)."""
    print(json.dumps(value))


def ask(command: str, settings: Settings, url: str | None, token: str | None, call: Callable[[Api], T],
        *, write: bool = False) -> T:  # fmt: skip
    """``call(api)`` on the API :func:`api_for` picks; an expected error is one line and exit 1."""
    try:
        with api_for(settings, url, token, write=write) as api:
            return call(api)
    except (OpsloopError, OSError) as exc:
        raise fail(command, exc) from exc


def find(command: str, items: list[dict[str, Any]], record_id: str, what: str) -> dict[str, Any]:
    """The item of ``items`` whose id is ``record_id``, else one line naming it and exit 1."""
    found = next((item for item in items if item["id"] == record_id), None)
    if found is None:
        raise fail(command, OpsloopError(f"{what} {record_id!r} not found"))
    return found


def when(text: str | None) -> str:
    """An RFC 3339 time as a table shows it (``2026-01-06 04:12:00``), ``-`` when absent."""
    return (text or "-").replace("T", " ").removesuffix("Z")


def print_records(
    items: list[dict[str, Any]],
    as_json: bool,
    table: Callable[[list[dict[str, Any]]], Table],
    wide: bool = False,
) -> None:
    """The records as JSON (``--json``) or as ``table(items)``."""
    if as_json:
        print_json(items)
    else:
        table_console(wide).print(table(items))


def print_record(record: dict[str, Any], title: str, as_json: bool) -> None:
    """One record as JSON or as a field/value table (mappings as ``k=v``, lists comma-separated)."""
    if as_json:
        print_json(record)
        return
    table = Table("field", "value", title=title, show_header=False)
    for key, value in record.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        table.add_row(key, "-" if value is None else str(value))
    table_console().print(table)
