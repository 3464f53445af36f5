"""``opsloop bench logs``: Loghub 2k grouping accuracy of the template miner, beside Drain's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli import JsonOption
from api.cli_bench import bench_app

#: The Loghub 2k folder next to the repository (``../shared/benchmarks/loghub``).
DEFAULT_LOGHUB = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "loghub"


def bench_logs(
    data: Annotated[
        Path, typer.Option("--data", help="Loghub 2k folder: one <S>/<S>_2k.log_structured*.csv per system")
    ] = DEFAULT_LOGHUB,
    as_json: JsonOption = False,
    systems: Annotated[
        list[str] | None, typer.Option("--systems", help="only these systems (repeat the option)")
    ] = None,
) -> None:
    """Grouping accuracy per Loghub system (corrected and original truth) and lines/s of parsing."""
    from bench.loghub import DRAIN_PUBLISHED_GA, run_log_bench, system_names

    names = system_names(data)
    if not names:
        raise typer.BadParameter(f"{data} holds no Loghub system folder", param_hint="--data")
    unknown = sorted(set(systems or ()) - set(names))
    if unknown:
        raise typer.BadParameter(f"no such system under {data}: {', '.join(unknown)}", param_hint="--systems")
    if as_json:
        print(json.dumps(run_log_bench(data, systems=systems).as_dict()))
        return
    err = Console(stderr=True)
    with err.status("parsing Loghub") as status:
        result = run_log_bench(data, progress=lambda msg: status.update(msg), systems=systems)
    table = Table(
        "system",
        "GA (corrected)",
        "GA (original)",
        "Drain GA (published, original)",
        "templates",
        title=f"opsloop log templates on Loghub 2k ({result.lines_per_s:,.0f} lines/s)",
    )
    for name, ga in result.grouping_accuracy.items():
        drain = DRAIN_PUBLISHED_GA.get(name)
        table.add_row(
            name,
            f"{ga:.4f}",
            f"{result.grouping_accuracy_original[name]:.4f}",
            "" if drain is None else f"{drain:.4f}",
            str(result.clusters[name]),
        )
    shown = [DRAIN_PUBLISHED_GA[n] for n in result.grouping_accuracy if n in DRAIN_PUBLISHED_GA]
    table.add_row(
        "mean",
        f"{result.mean_grouping_accuracy:.4f}",
        f"{result.mean_grouping_accuracy_original:.4f}",
        f"{sum(shown) / len(shown):.4f}" if shown else "",
        "",
        style="bold",
    )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``logs`` to the ``bench`` group (the group itself is registered by ``cli_bench``)."""
    if not any(cmd.name == "logs" for cmd in bench_app.registered_commands):
        bench_app.command("logs")(bench_logs)
