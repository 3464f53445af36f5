"""``opsloop silence list|show|create|expire``: silences through the API (Alertmanager's shapes).

Creating and expiring go to the running server, which owns the live silence set; listing
and showing also read a stopped server's file.
"""

from __future__ import annotations

import getpass
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from api.cli import DbOption, JsonOption, settings_for
from api.cli._api import (
    TokenOption,
    UrlOption,
    WideOption,
    api_for,
    ask,
    fail,
    print_json,
    print_records,
    when,
)
from api.cli.render import Table
from core.errors import OpsloopError, SchemaError
from core.wire import iso_utc
from ingest.scrape import parse_duration

silence_app = typer.Typer(help="Silences: mute matching alerts for a while.", no_args_is_help=True)
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def parse_matcher(text: str) -> dict[str, Any]:
    """``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex`` as an Alertmanager matcher.

    >>> parse_matcher('alertname=~"Disk.*"')
    {'name': 'alertname', 'value': 'Disk.*', 'isRegex': True, 'isEqual': True}
    """
    m = _MATCHER.match(text)
    if m is None:
        raise SchemaError(
            "--matcher", f"expected name=value, name!=value, name=~re or name!~re, got {text!r}"
        )
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return {"name": name, "value": value, "isRegex": "~" in op, "isEqual": op in ("=", "=~")}


def _matchers_text(silence: dict[str, Any]) -> str:
    ops = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    return ", ".join(
        f"{m['name']}{ops[(m['isRegex'], m['isEqual'])]}{m['value']}" for m in silence["matchers"]
    )


def silences_table(items: list[dict[str, Any]]) -> Table:
    """Silences: id, state, matchers, until, by, comment."""
    table = Table("id", "state", "matchers", "ends", "by", "comment")
    for s in items:
        table.add_row(
            s["id"], s["status"]["state"], _matchers_text(s), when(s["endsAt"]),
            s["createdBy"] or "-", s["comment"] or "-",
        )  # fmt: skip
    return table


@silence_app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", min=1, help="most silences to show")] = 1000,
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List silences: active, then pending, then expired."""
    items = ask(
        "silence list", settings_for(db), url, token, lambda api: api.items("/api/v1/silences", limit)
    )
    print_records(items, as_json, silences_table, wide)


@silence_app.command("show")
def show(
    silence_id: Annotated[str, typer.Argument(help="silence id")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One silence."""
    silence = ask(
        "silence show", settings_for(db), url, token, lambda api: api.get(f"/api/v1/silences/{silence_id}")
    )
    if as_json:
        print_json(silence)
    else:
        print_records([silence], False, silences_table)


@silence_app.command("create")
def create(
    matcher: Annotated[
        list[str],
        typer.Option("--matcher", "-m", help="name=value, name!=value, name=~re, name!~re; repeatable"),
    ],
    duration: Annotated[str, typer.Option("--duration", "-d", help="how long, e.g. 2h, 30m")] = "1h",
    comment: Annotated[str, typer.Option("--comment", "-c", help="why")] = "",
    by: Annotated[str, typer.Option("--by", help="who (default: your user name, as amtool does)")] = "",
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a silence on the running server; prints its id."""
    try:
        matchers = [parse_matcher(m) for m in matcher]
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise SchemaError("--duration", str(exc)) from exc
        now = datetime.now(UTC)
        body = {
            "matchers": matchers,
            "startsAt": iso_utc(now),
            "endsAt": iso_utc(now + timedelta(seconds=seconds)),
            "createdBy": by or getpass.getuser(),
            "comment": comment,
        }
        with api_for(settings_for(db), url, token, write=True) as api:
            answer = api.post("/api/v1/silences", body)
    except (OpsloopError, OSError) as exc:
        raise fail("silence create", exc) from exc
    if as_json:
        print_json(answer)
        return
    print(answer["silenceID"])


@silence_app.command("expire")
def expire(
    silence_id: Annotated[str, typer.Argument(help="silence id")],
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Expire a silence now (it stays listed as history)."""
    answer = ask("silence expire", settings_for(db), url, token,
                 lambda api: api.delete(f"/api/v1/silences/{silence_id}"), write=True)  # fmt: skip
    if as_json:
        print_json(answer)
        return
    print(f"expired {silence_id}")


def register(app: typer.Typer) -> None:
    """Add the ``silence`` group."""
    app.add_typer(silence_app, name="silence")
