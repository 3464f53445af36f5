"""``opsloop incidents`` (list) and ``opsloop incident show ID``: the API's answers, from the file.

Both read the DuckDB file directly through the incident repository and print, with
``--json``, exactly what the API answers (``incident_to_wire`` objects). The file is opened
read-only; while a running server holds the file they ask its API (``--url``, or by themselves,
see ``api/cli/_remote.py``), which answers the same objects. ``incident ack`` goes through the
server's pipeline when it runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption, settings_for
from api.cli._remote import TokenOption, UrlOption, is_locked, open_target
from api.cli.render import Table, escape
from api.client import Client
from api.common import incident_detail, incident_page, parse_priorities, parse_statuses, parse_time
from core.errors import NotFoundError, OpsloopError
from core.store import Store

incident_app = typer.Typer(help="Inspect one incident.", no_args_is_help=True)


def _open(db: str | None) -> Store:
    path = settings_for(db).db
    try:
        return Store(path, read_only=True)
    except OpsloopError as exc:
        if is_locked(exc):  # a running server holds the file: main() says so in one line naming --url
            raise
        err = Console(stderr=True)
        err.print(exc.message, style="red", markup=False)
        if Path(path).exists():
            err.print(
                "if a server is running on this file, DuckDB lets no other process open it: ask its API"
            )
        raise typer.Exit(1) from exc


@contextmanager
def _target(
    db: str | None, url: str | None, token: str | None, *, read_only: bool = True
) -> Iterator[Store | Client]:
    """The file, or the API of the server that holds it (``api/cli/_remote.py``); one line on error."""
    with ExitStack() as stack:
        try:
            target = stack.enter_context(open_target(settings_for(db), url, token, read_only=read_only))
        except OpsloopError as exc:
            err = Console(stderr=True)
            err.print(exc.message, style="red", markup=False)
            if Path(settings_for(db).db).exists() and not url:
                err.print("if a server is running on this file, ask its API: --url http://HOST:PORT")
            raise typer.Exit(1) from exc
        yield target


def _when(text: str | None) -> str:
    return (text or "").replace("T", " ").removesuffix("Z")


def wide_console() -> Console:
    """A console for tables: a terminal's own width, or 140 columns when piped (make, CI logs)."""
    console = Console()
    return console if console.is_terminal else Console(width=140)


def incidents_table(items: list[dict[str, Any]], title: str | None = None) -> Table:
    """A rich table of wire incidents: priority, status, title, team, services, alert count."""
    table = Table("id", "priority", "status", "title", "team", "services", "alerts", "opened", title=title)
    for i in items:
        table.add_row(
            i["id"],
            i["priority"] + (" major" if i["major"] else ""),
            i["status"],
            i["title"],
            i["team"] or "-",
            ", ".join(i["services"]),
            str(i["alert_count"]),
            _when(i["opened_at"]),
        )
    return table


def incidents(
    db: DbOption = None,
    as_json: JsonOption = False,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", help="open, acknowledged, mitigated, resolved, closed or active; repeatable"
        ),
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="only incidents touching this service")
    ] = None,
    priority: Annotated[list[str] | None, typer.Option("--priority", help="P1..P4; repeatable")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="opened at or after (RFC 3339 or Unix s)")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="most incidents to show")] = 50,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List incidents, newest first."""
    try:
        statuses = parse_statuses("--status", status or [])
        priorities = parse_priorities("--priority", priority or [])
        start = parse_time("--since", since)
    except OpsloopError as exc:
        raise typer.BadParameter(exc.message) from exc
    with _target(db, url, token) as store:
        if isinstance(store, Client):  # the server's own answer, same shape
            query = {"status": status, "service": service, "priority": priority, "since": since}
            page = store.get("/api/v1/incidents", **query, limit=limit)
        else:
            page = incident_page(
                store, status=statuses, service=service, priority=priorities, since=start, limit=limit
            )
    items: list[dict[str, Any]] = page["items"]
    if as_json:
        print(json.dumps(items))
        return
    console = wide_console()
    console.print(incidents_table(items))
    if page["total"] > len(items):
        console.print(f"{len(items)} of {page['total']} shown (raise --limit for more)")


@incident_app.command("show")
def show(
    incident_id: Annotated[str, typer.Argument(help="incident id, e.g. INC-12")],
    db: DbOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """One incident with its alerts and timeline."""
    with _target(db, url, token) as store:
        try:
            if isinstance(store, Client):
                detail = store.get(f"/api/v1/incidents/{incident_id}")
            else:
                detail = incident_detail(store, incident_id)
        except NotFoundError as exc:
            Console(stderr=True).print(exc.message, style="red", markup=False)
            raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(detail))
        return
    console = Console()
    e = escape
    console.print(f"[bold]{e(detail['id'])}[/bold] \\[{e(detail['priority'])}] {e(detail['title'])}")
    console.print(
        f"status {e(detail['status'])} | team {e(detail['team'] or '-')} | assignee {e(detail['assignee'] or '-')}"
        f" | opened {_when(detail['opened_at'])} | services {e(', '.join(detail['services']) or '-')}"
    )
    if detail["priority_reason"]:
        console.print(f"why {e(detail['priority'])}: {e(detail['priority_reason'])}")
    alerts = Table("alert", "service", "severity", "status", "since", "note", title="alerts")
    for a in detail["alerts"]:
        why = a["suppressed_by"] or (f"inhibited by {a['inhibited_by']}" if a["inhibited_by"] else "")
        alerts.add_row(a["name"], a["service"], a["severity"], a["status"], _when(a["starts_at"]), why)
    console.print(alerts)
    if detail["hypotheses"]:
        from api.cli.diagnose import hypotheses_table

        console.print(hypotheses_table(detail["hypotheses"]))
    timeline = Table("at", "kind", "actor", "text", title="timeline")
    for e in detail["timeline"]:
        timeline.add_row(_when(e["at"]), e["kind"], e["actor"], e["text"])
    console.print(timeline)


@incident_app.command("ack")
def ack(
    incident_id: Annotated[str, typer.Argument(help="incident id, e.g. INC-12")],
    comment: Annotated[str, typer.Option("--comment", help="why, for the timeline")] = "",
    by: Annotated[
        str | None, typer.Option("--by", help="who acknowledges (default: the token's name)")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Acknowledge an open incident (someone is on it), through the server when one holds the file."""
    with _target(db, url, token, read_only=False) as target:
        if isinstance(target, Client):
            incident = target.post(
                f"/api/v1/incidents/{incident_id}/ack", json={"by": by, "comment": comment}
            )
        else:
            from api.convert import incident_to_wire
            from core.model import IncidentStatus
            from detect.incidents.pipeline import IncidentPipeline

            try:
                done = IncidentPipeline(target, settings_for(db)).transition(
                    incident_id, IncidentStatus.ACKNOWLEDGED, by or "cli", comment.strip()
                )
            except OpsloopError as exc:
                Console(stderr=True).print(exc.message, style="red", markup=False)
                raise typer.Exit(1) from exc
            incident = incident_to_wire(done)
    if as_json:
        print(json.dumps(incident))
        return
    print(f"{incident['id']} {incident['status']}")


def register(app: typer.Typer) -> None:
    """Add ``incidents`` and the ``incident`` group (``incident show``, ``incident ack``)."""
    app.command("incidents")(incidents)
    app.add_typer(incident_app, name="incident")
