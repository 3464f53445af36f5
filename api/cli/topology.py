"""``opsloop topology load FILE`` and ``opsloop topology show``: the service topology."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption, settings_for
from api.cli._remote import TokenOption, UrlOption, open_target, store_of
from api.cli.render import Table, escape
from api.client import Client
from core.batch import WriteBatch
from core.errors import OpsloopError
from ingest.topology import FORMAT, current_topology, load_document, parse_topology, to_document

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``topology`` command group."""
    topology_app = typer.Typer(help="Load and show the service topology (CMDB).", no_args_is_help=True)
    app.add_typer(topology_app, name="topology")

    @topology_app.command("load")
    def load(
        file: Annotated[Path, typer.Argument(help="topology YAML or JSON file", exists=True, dir_okay=False)],
        db: DbOption = None,
        url: UrlOption = None,
        token: TokenOption = None,
    ) -> None:
        """Replace the stored topology with FILE (validated first; nothing changes on error)."""
        kind = "application/json" if file.suffix.lower() == ".json" else "application/yaml"
        try:
            items = parse_topology(load_document(file.read_bytes(), kind))
            with open_target(settings_for(db), url, token) as target:
                if isinstance(target, Client):
                    target.put("/api/v1/topology", content=file.read_bytes(), headers={"Content-Type": kind})
                else:
                    target.write(WriteBatch(source=FORMAT, topology=items))
        except OpsloopError as exc:
            console.print(f"[red]error:[/] {escape(exc.message)}")
            raise typer.Exit(1) from exc
        print(f"loaded {len(items)} services from {file}")

    @topology_app.command("show")
    def show(
        db: DbOption = None, as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None
    ) -> None:
        """Print the stored topology."""
        with open_target(settings_for(db), url, token, read_only=True) as target:
            items = current_topology(store_of(target))
        if as_json:
            print(json.dumps(to_document(items)))
            return
        table = Table("service", "tier", "owner", "depends on", "consumer facing")
        for ci in items:
            table.add_row(
                ci.name, str(ci.tier), ci.owner, ", ".join(ci.depends_on), "yes" if ci.consumer_facing else ""
            )
        console.print(table)
