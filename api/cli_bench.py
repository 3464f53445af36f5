"""``opsloop bench ...``: benchmarks that print figures (``bench ingest`` for now)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli import JsonOption

#: The ``bench`` group; each benchmark is one command on it.
bench_app = typer.Typer(help="Benchmarks: measured figures, each against its anchor.", no_args_is_help=True)


@bench_app.command("ingest")
def bench_ingest(
    as_json: JsonOption = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="tiny sizes: a smoke test, not a measurement")
    ] = False,
) -> None:
    """Points per second of every ingest path, with its ratio to a raw DuckDB Arrow insert."""
    from bench.ingest import PATHS, run_ingest_bench

    err = Console(stderr=True)
    result = run_ingest_bench(quick, progress=None if as_json else lambda msg: err.print(f"[dim]{msg}[/dim]"))
    data = result.as_dict()
    if as_json:
        print(json.dumps(data))
        return
    table = Table("path", "points/s", "ratio to raw", "shape", title="opsloop ingest throughput")
    table.add_row(
        "raw Arrow insert (anchor)",
        f"{data['raw_arrow_rows_per_s']:,.0f}",
        "1.0000",
        f"{result.anchor_rows:,} rows in one INSERT",
    )
    table.add_row(
        "raw Arrow insert, long format",
        f"{data['raw_arrow_long_rows_per_s']:,.0f}",
        f"{data['raw_arrow_long_rows_per_s'] / data['raw_arrow_rows_per_s']:.4f}",
        "the bulk files' rows as they stand (name, labels as text)",
    )
    for name in PATHS:
        entry, res = data["paths"][name], result.paths.get(name)
        if entry["points_per_s"] is None:
            table.add_row(name, "[red]missing[/red]", "", entry.get("missing", ""))
        else:
            table.add_row(
                name,
                f"{entry['points_per_s']:,.0f}",
                f"{entry['ratio_to_raw']:.4f}",
                res.shape if res else "",
            )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` group."""
    app.add_typer(bench_app, name="bench")
