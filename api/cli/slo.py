"""``opsloop slo ...``: SLO commands. ``slo rules`` writes the Prometheus rule file; ``slo status``
evaluates every stored SLO at ``--at`` (default: the newest point in the store, so a replayed
scenario's database is read at its own time) and prints the same objects as ``GET /api/v1/slos``;
``slo load`` stores OpenSLO specs.

Specs come from OpenSLO files (``--spec``, repeatable) or, without ``--spec``, from the SLOs
stored in the DuckDB file (opened read-only).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption, settings_for
from api.cli._remote import NeedsFileError, TokenOption, UrlOption, is_locked, open_target
from api.cli.render import Table, plain
from core.errors import OpsloopError
from slo.spec import SloSpec

slo_app = typer.Typer(help="Service level objectives.", no_args_is_help=True)

SpecOption = Annotated[
    list[Path] | None,
    typer.Option("--spec", help="OpenSLO YAML/JSON file (repeatable); default: the SLOs stored in --db"),
]


def _fail(exc: OpsloopError) -> typer.Exit:
    if is_locked(exc):  # a running server holds the file: main() says so in one line naming --url
        raise exc
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


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def slo_table(items: list[dict[str, Any]], title: str | None = None) -> Table:
    """A rich table of wire SLOs: objective, SLI, budget remaining, burn, state."""
    table = Table("SLO", "service", "objective", "window", "method", "SLI", "budget left", "burn 1h / 6h / 3d",
                  "state", title=title)  # fmt: skip
    for s in items:
        burn = s["burn_rates"]
        rates = " / ".join(f"{burn.get(w, 0.0):.1f}x" for w in ("1h", "6h", "3d"))
        state = s["state"] or "-"
        colour = {"healthy": "green", "at_risk": "yellow", "exhausted": "red"}.get(state, "white")
        table.add_row(
            s["name"], s["service"], _pct(s["objective"], 2), s["window"], s["budgeting_method"],
            _pct(s["sli"], 3), _pct(s["budget_remaining"], 1), rates, plain(state, colour),
        )  # fmt: skip
    return table


@slo_app.command("status")
def status(
    db: DbOption = None,
    as_json: JsonOption = False,
    at: Annotated[
        str | None,
        typer.Option("--at", help="evaluate at this time (RFC 3339 or Unix s); default: newest data"),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Evaluate every stored SLO: SLI, budget remaining, burn rates per alert window, state."""
    from api.cli.incidents import wide_console
    from api.client import Client
    from api.common import parse_time
    from api.convert import slo_to_wire
    from detect.incidents.repository import load_windows
    from slo.evaluate import evaluate
    from slo.repository import load_specs

    try:
        when = parse_time("--at", at)
        with open_target(settings_for(db), url, token, read_only=True) as store:
            if isinstance(store, Client):  # the server's latest evaluation (it runs every slo_interval_s)
                if when is not None:
                    raise NeedsFileError("--at evaluates the file; the server answers its latest evaluation")
                items = store.get("/api/v1/slos", limit=1000)["items"]
                if as_json:
                    print(json.dumps(items))
                else:
                    wide_console().print(slo_table(items, title=f"SLOs (latest evaluation by {store.url})"))
                return
            if when is None:
                newest = store.newest_point_ts()
                # just after the newest point, so it counts (windows are [start, at))
                when = newest + timedelta(seconds=1) if newest else datetime.now(UTC).replace(tzinfo=None)
            specs = load_specs(store)
            statuses = evaluate(store, specs, when, maintenance=load_windows(store))
    except OpsloopError as exc:
        raise _fail(exc) from exc
    items = [slo_to_wire(spec, st) for spec, st in zip(specs, statuses, strict=True)]
    if as_json:
        print(json.dumps(items))
        return
    wide_console().print(slo_table(items, title=f"SLOs at {when:%Y-%m-%d %H:%M:%S} UTC"))


@slo_app.command("load")
def load(
    file: Annotated[Path, typer.Argument(help="OpenSLO YAML or JSON (several documents allowed)")],
    db: DbOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Validate OpenSLO documents and store their SLOs (replacing SLOs of the same name)."""
    from core.errors import ConfigError
    from core.store import Store
    from slo.engine import SloEngine

    try:
        try:
            text = file.read_text()
        except OSError as exc:
            raise ConfigError(f"{file}: {exc.strerror or exc}") from exc
        with open_target(settings_for(db), url, token) as store:
            if isinstance(store, Store):
                names = [s.name for s in SloEngine(store).load(text)]
            else:  # the server's engine validates and stores them (422 names the field at fault)
                names = store.post("/api/v1/slos", content=text.encode())["slos"]
    except OpsloopError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps({"file": str(file), "slos": names}))
        return
    print(f"stored {len(names)} SLOs from {file}: {', '.join(names)}")


def register(app: typer.Typer) -> None:
    """Add the ``slo`` command group."""
    app.add_typer(slo_app, name="slo")
