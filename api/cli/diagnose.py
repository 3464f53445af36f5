"""``opsloop diagnose INCIDENT_ID``: rank an incident's contributing factors and store them.

With ``--json`` it prints what ``POST /api/v1/incidents/{id}/diagnose`` answers
(``diagnosis_to_wire``): ``incident_id``, ``as_of``, ``alarm_at``, ``hypotheses`` (each
``{rank, service, kind, score, evidence, component, recommendation}``), ``course_of_action``,
``candidates``, ``series``, ``log_lines``, ``seconds``. Against a running server use that
endpoint: DuckDB lets only one process write the file.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption, settings_for
from api.cli._remote import is_locked
from api.cli.render import Table
from api.common import parse_time
from api.convert import diagnosis_to_wire
from core.errors import OpsloopError
from core.store import Store
from detect.incidents import repository as repo
from diagnose.diagnoser import Diagnoser


def hypotheses_table(hypotheses: list[dict[str, Any]], title: str = "contributing factors") -> Table:
    """A rich table of wire hypotheses: rank, service, kind, score, the evidence in brief, next step."""
    table = Table("#", "service", "kind", "score", "evidence", "recommended action", title=title)
    for h in hypotheses:
        table.add_row(str(h["rank"]), h["service"], h["kind"], f"{h['score']:.2f}",
                      evidence_summary(h["evidence"]), h["recommendation"])  # fmt: skip
    return table


def evidence_summary(ev: dict[str, Any]) -> str:
    """One line per kind of evidence a hypothesis carries."""
    lines = []
    for m in ev.get("metrics", [])[:2]:
        lines.append(f"{m['metric']}: {_g(m['value'])} vs {_g(m['baseline'])}")
    for c in ev.get("changes", [])[:1]:
        lines.append(f"{c['kind']} {c['version']} {c['minutes_before_alarm']} min before ({c['id']})")
    for t in ev.get("logs", [])[:1]:
        lines.append(f"log x{t['count']}{' new' if t['new'] else ''}: {t['template'][:60]}")
    for t in ev.get("log_mentions", [])[:1]:
        lines.append(f"{t['from']} logs x{t['count']}: {t['template'][:60]}")
    for s in ev.get("similar_incidents", [])[:1]:
        lines.append(f"like {s['id']} ({s['similarity']:.2f})")
    return "\n".join(lines)


def _g(x: Any) -> str:
    return "n/a" if x is None else f"{float(x):.3g}"


def diagnose(
    incident_id: Annotated[str, typer.Argument(help="incident id, e.g. INC-12")],
    db: DbOption = None,
    as_json: JsonOption = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="use only data known at this time (RFC 3339 or Unix s; default: last update)"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the diagnosis without storing it")
    ] = False,
) -> None:
    """Rank an incident's contributing factors with their evidence and store them on it."""
    err = Console(stderr=True)
    try:
        when = parse_time("--as-of", as_of)
        with Store(settings_for(db).db) as store:
            result = Diagnoser(store).diagnose(incident_id, as_of=when)
            if not dry_run:
                repo.save_hypotheses(store, incident_id, result.hypotheses, result.as_of)
    except OpsloopError as exc:
        if is_locked(exc):  # a running server holds the file: main() says so in one line naming --url
            raise
        err.print(exc.message, style="red", markup=False)
        raise typer.Exit(1) from exc
    wire = diagnosis_to_wire(result)
    if as_json:
        print(json.dumps(wire))
        return
    console = Console() if Console().is_terminal else Console(width=160)
    console.print(
        f"[bold]{incident_id}[/bold]: alarm {wire['alarm_at']}, evidence up to {wire['as_of']}; "
        f"{len(wire['candidates'])} services, {wire['series']} series, {wire['log_lines']} log lines "
        f"in {wire['seconds'] * 1000:.0f} ms"
    )
    console.print(hypotheses_table(wire["hypotheses"]))
    if wire["course_of_action"]:
        console.print("[bold]course of action[/bold]")
        for step in wire["course_of_action"]:
            console.print(step, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``diagnose``."""
    app.command("diagnose")(diagnose)
