"""``opsloop metrics operations [--json] [--service S] [--team T] [--since T] [--until T]``:
MTTD, MTTA, MTRS, MTBF, change failure rate and automation share, as
``GET /api/v1/metrics/operations`` answers them, from the file (opened read-only).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from api.cli import DbOption, JsonOption
from api.cli.incidents import _open, wide_console
from api.cli.render import Table
from api.common import parse_time
from core.errors import OpsloopError
from resolve.operations import OperationalMetrics, default_window, operations_report

metrics_app = typer.Typer(help="Operational metrics.", no_args_is_help=True)


def _secs(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min" if x < 7200 else f"{x / 3600:.1f} h"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _row(table: Table, m: OperationalMetrics) -> None:
    table.add_row(
        m.scope if m.scope in ("estate", "filtered") else f"{m.scope} {m.name}",
        str(m.incidents), _secs(m.mttd_s), _secs(m.mtta_s), _secs(m.mtrs_s), _secs(m.mtbf_s),
        f"{_ratio(m.change_failure_rate)} ({m.failed_deployments}/{m.deployments})",
        f"{_ratio(m.automation_share)} ({m.restored_by_automation}/{m.restored})",
    )  # fmt: skip


@metrics_app.command("operations")
def operations(
    db: DbOption = None,
    as_json: JsonOption = False,
    service: Annotated[str | None, typer.Option("--service", help="only this service")] = None,
    team: Annotated[str | None, typer.Option("--team", help="only this team")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="RFC 3339 or Unix seconds (default: 30 days ago)")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="RFC 3339 or Unix seconds (default: now)")
    ] = None,
) -> None:
    """MTTD, MTTA, MTRS, MTBF, change failure rate and automation share over a window."""
    err = Console(stderr=True)
    try:
        end = parse_time("until", until) or datetime.now(UTC).replace(tzinfo=None)
        start = parse_time("since", since) or default_window(end)[0]
    except OpsloopError as exc:
        err.print(exc.message, style="red", markup=False)
        raise typer.Exit(2) from exc
    store = _open(db)
    try:
        report = operations_report(store, since=start, until=end, service=service, team=team)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    table = Table("scope", "incidents", "MTTD", "MTTA", "MTRS", "MTBF", "change failure", "automated",
                  title=f"operations {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    _row(table, report.estate)
    if not (service or team):
        for m in (*report.services, *report.teams):
            _row(table, m)
    wide_console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``metrics`` command group."""
    app.add_typer(metrics_app, name="metrics")
