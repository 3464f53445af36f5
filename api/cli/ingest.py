"""``opsloop ingest PATH...``: bulk-load CSV, Parquet, NDJSON and OTLP JSON-lines files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from api.cli import DbOption, JsonOption, settings_for
from api.cli._remote import TokenOption, UrlOption, open_target, store_of
from api.cli.render import escape
from ingest.files import FileIngester, expand_paths


def register(app: typer.Typer) -> None:
    """Add ``opsloop ingest``."""

    @app.command()
    def ingest(
        paths: Annotated[list[str], typer.Argument(help="files, directories (recursive) or globs")],
        db: DbOption = None,
        as_json: JsonOption = False,
        url: UrlOption = None,
        token: TokenOption = None,
    ) -> None:
        """Load metric files: .csv/.parquet/.ndjson/.jsonl long format (ts, name, labels, value).

        A .jsonl that is an OpenTelemetry Collector file export is read as OTLP. Each file
        is one transaction: a bad file is reported (file and line) and nothing of it is written,
        the others are loaded; each file's line says what it committed or why it was refused.
        A .jsonl of CloudEvents (deploys, config changes) is loaded as changes. Loading the
        same file twice stores it once. Exit code 0 when every file was committed, 3 when some
        were and others refused, 1 when none was.
        While a server holds the database, metric points go to it by remote-write; a file
        sent twice gives the same request bodies, which the server skips as re-sent.
        """
        console = Console(stderr=True)
        files, _ = expand_paths(paths)
        total = sum(p.stat().st_size for p in files)
        progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=as_json or not console.is_terminal,
            transient=True,
        )
        task = progress.add_task("ingest", total=total or None)
        with (
            open_target(settings_for(db), url, token) as target,
            progress,
            FileIngester(store_of(target), progress=lambda n: progress.advance(task, n)) as ingester,
        ):
            summary = ingester.ingest(paths)
        data = summary.as_dict()
        if as_json:
            print(json.dumps(data))
        else:
            out = Console(highlight=False)
            for f in summary.per_file:
                name = escape(str(Path(f["file"])))
                if f["error"]:
                    out.print(f"[red]refused[/red]   {name}: {escape(f['error'])} (nothing of it written)")
                else:
                    again = f", {f['duplicate_rows']:,} already ingested" if f["duplicate_rows"] else ""
                    out.print(f"[green]committed[/green] {name}: {f['rows']:,} rows ({f['format']}){again}")
            out.print(
                f"{data['files']} files, {data['rows']:,} rows, {data['series']:,} series in "
                f"{data['seconds']:.2f} s ({data['rows_per_s']:,.0f} rows/s)"
                + (f", {data['duplicate_rows']:,} rows already ingested" if data["duplicate_rows"] else "")
                + (f"; {len(summary.errors)} refused" if summary.errors else "")
            )
        if summary.errors:
            committed = sum(1 for f in summary.per_file if not f["error"])
            raise typer.Exit(3 if committed else 1)
