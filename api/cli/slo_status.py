"""``opsloop slo status`` and ``opsloop slo load``: evaluate and store SLOs from the command line.

They hang on the ``slo`` group of ``api.cli.slo``. ``status`` evaluates every stored SLO at
``--at`` (default: the newest point in the store, so a replayed scenario's database is read
at its own time) and prints the same objects as ``GET /api/v1/slos``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli import DbOption, JsonOption, settings_for
from api.cli.slo import _fail, slo_app
from core.errors import OpsloopError


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
            _pct(s["sli"], 3), _pct(s["budget_remaining"], 1), rates, f"[{colour}]{state}[/{colour}]",
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
) -> None:
    """Evaluate every stored SLO: SLI, budget remaining, burn rates per alert window, state."""
    from api.cli.incidents import wide_console
    from api.common import parse_time
    from api.convert import slo_to_wire
    from core.store import Store
    from detect.incidents.repository import load_windows
    from slo.evaluate import evaluate
    from slo.repository import load_specs

    try:
        when = parse_time("--at", at)
        with Store(settings_for(db).db, read_only=True) as store:
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
        with Store(settings_for(db).db) as store:
            specs = SloEngine(store).load(text)
    except OpsloopError as exc:
        raise _fail(exc) from exc
    names = [s.name for s in specs]
    if as_json:
        print(json.dumps({"file": str(file), "slos": names}))
        return
    print(f"stored {len(names)} SLOs from {file}: {', '.join(names)}")


def register(app: typer.Typer) -> None:
    """The commands are on ``api.cli.slo``'s group; importing this module adds them."""
