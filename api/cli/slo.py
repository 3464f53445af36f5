"""``opsloop slo ...``: SLO commands. ``slo rules`` writes the Prometheus rule file.

Specs come from OpenSLO files (``--spec``, repeatable) or, without ``--spec``, from the SLOs
stored in the DuckDB file (opened read-only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption, settings_for
from core.errors import OpsloopError
from slo.spec import SloSpec

slo_app = typer.Typer(help="Service level objectives.", no_args_is_help=True)

SpecOption = Annotated[
    list[Path] | None,
    typer.Option("--spec", help="OpenSLO YAML/JSON file (repeatable); default: the SLOs stored in --db"),
]


def _fail(exc: OpsloopError) -> typer.Exit:
    Console(stderr=True).print(exc.message, style="red", markup=False)
    return typer.Exit(1)


def specs_from(spec_files: list[Path] | None, db: str | None) -> list[SloSpec]:
    """The SLOs of the given OpenSLO files, or else of the store; ``OpsloopError`` when unreadable."""
    from core.errors import ConfigError
    from slo.spec import load_openslo

    if spec_files:
        specs: list[SloSpec] = []
        for path in spec_files:
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigError(f"--spec {path}: {exc.strerror or exc}") from exc
            try:
                specs.extend(load_openslo(text))
            except ConfigError as exc:
                raise ConfigError(f"{path}: {exc.message}") from exc
        return specs
    from core.store import Store
    from slo.repository import load_specs

    with Store(settings_for(db).db, read_only=True) as store:
        return load_specs(store)


@slo_app.command("rules")
def rules(
    file: Annotated[Path, typer.Argument(help="rule file to write (Prometheus rule_files format)")],
    spec: SpecOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write Prometheus recording and burn-rate alert rules (Sloth-compatible names) for the SLOs."""
    from slo.rules import dump_rules, prometheus_rules

    try:
        export = prometheus_rules(specs_from(spec, db))
        text = dump_rules(export)
    except OpsloopError as exc:
        raise _fail(exc) from exc
    file.write_text(text)
    counts = export.counts
    exported = len(export.slos)
    if as_json:
        skipped = [{"slo": s.slo, "reason": s.reason} for s in export.skipped]
        print(json.dumps({"file": str(file), "slos": exported, **counts, "skipped": skipped}))
        return
    err = Console(stderr=True)
    for s in export.skipped:
        err.print(f"skipped SLO {s.slo}: {s.reason}", style="yellow", markup=False)
    if not exported:
        err.print("no SLO to export: the file has no groups", style="yellow", markup=False)
    print(
        f"wrote {file}: {exported} SLOs, {counts['groups']} groups, "
        f"{counts['rules']} rules ({counts['alerts']} alerts)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``slo`` command group."""
    app.add_typer(slo_app, name="slo")
