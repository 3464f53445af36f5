"""``opsloop bench rca``: metric-only root-cause ranking on the Nezha data, beside the published figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli import JsonOption
from api.cli_bench import bench_app

#: The Nezha subset shipped beside the repository (``/work/shared/...`` from ``/work/main``).
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "rca" / "nezha"


@bench_app.command("rca")
def bench_rca(
    data: Annotated[
        Path, typer.Option("--data", help="folder of Nezha day folders (<day>/metric/*.csv + fault list)")
    ] = DEFAULT_DATA,
    as_json: JsonOption = False,
) -> None:
    """AC@1/3/5 and Avg@5 of the metric-based ranker per system, split into resource and code faults."""
    from bench.rca_nezha import PUBLISHED, day_folders, run_rca_bench

    if not data.is_dir() or not day_folders(data):
        raise typer.BadParameter(f"{data} holds no Nezha day folders (<day>/metric/)", param_hint="--data")
    if as_json:
        print(json.dumps(run_rca_bench(data).as_dict()))
        return
    err = Console(stderr=True)
    with err.status("ranking") as status:
        result = run_rca_bench(data, progress=lambda msg: status.update(msg)).as_dict()
    table = Table(
        "system",
        "method",
        "faults",
        "AC@1",
        "AC@3",
        "AC@5",
        "Avg@5",
        title="Nezha RCA, service level (published rows dim)",
    )
    for system, splits in result.items():
        if not isinstance(splits, dict):
            continue
        for split, fig in splits.items():
            table.add_row(
                system if split == "all" else "",
                f"opsloop, {split}",
                str(fig["n"]),
                *(f"{fig[k]:.2f}" for k in ("AC@1", "AC@3", "AC@5", "Avg@5")),
                style="bold" if split == "all" else None,
            )
        for method, figures in PUBLISHED.items():
            if system in figures:
                table.add_row("", method, "", *(f"{v:.2f}" for v in figures[system]), "-", style="dim")
    Console().print(table)
    err.print(f"[dim]{result['seconds']:.1f} s[/dim]")


def register(app: typer.Typer) -> None:
    """Nothing to add: importing this module puts ``rca`` on the ``bench`` group."""
    del app
