"""``opsloop audit verify [--db] [--json]`` and ``opsloop audit list [--json] [--since T]``: check the
hash chain of Resolve's audit log and read it, from the file (opened read-only).

``verify`` exits 0 when the chain is intact and 1 naming the first broken row otherwise (2 for
bad arguments or a file that cannot be opened), so cron or CI can alert on it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption
from api.cli.incidents import _open, wide_console
from api.cli.render import Table
from api.common import parse_time
from core.errors import OpsloopError
from resolve.audit import entries, verify

audit_app = typer.Typer(help="Resolve's tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify_chain(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Check every row's hash and link; exit 1 naming the first row changed, removed or moved."""
    store = _open(db)
    try:
        result = verify(store)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(asdict(result)))
    elif result.ok:
        typer.echo(f"audit log intact: {result.rows} rows")
    else:
        Console(stderr=True).print(
            f"audit log broken at row {result.first_broken_seq}: {result.reason}", style="red", markup=False
        )
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("list")
def list_entries(
    db: DbOption = None,
    as_json: JsonOption = False,
    since: Annotated[str | None, typer.Option("--since", help="RFC 3339 or Unix seconds")] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="only rows about this incident or action")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="at most this many rows")] = None,
) -> None:
    """Audit rows in chain order (payloads as stored, secrets already redacted)."""
    try:
        start = parse_time("since", since)
    except OpsloopError as exc:
        Console(stderr=True).print(exc.message, style="red", markup=False)
        raise typer.Exit(2) from exc
    store = _open(db)
    try:
        found = entries(store, since=start, subject=subject, limit=limit)
    finally:
        store.close()
    if as_json:
        wire = [{**asdict(e), "at": e.at.isoformat() + "Z"} for e in found]
        typer.echo(json.dumps(wire, indent=2, ensure_ascii=False))
        return
    table = Table("seq", "at", "kind", "subject", "payload", "hash")
    for e in found:
        text = json.dumps(e.payload, ensure_ascii=False)
        table.add_row(str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.kind, e.subject,
                      text if len(text) <= 80 else text[:77] + "...", e.hash[:12])  # fmt: skip
    wide_console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group."""
    app.add_typer(audit_app, name="audit")
