"""The ``opsloop`` command line. Every command that touches data takes ``--db PATH``.

Commands live in small modules (``api/cli/<group>.py``), each with ``register(app)``; this module
only assembles them, so adding a command never means editing a long file.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Annotated

import typer
from rich.console import Console

from core.errors import OpsloopError
from core.settings import Settings

app = typer.Typer(
    help="opsloop: AIOps operations analytics on DuckDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()

DbOption = Annotated[
    str | None, typer.Option("--db", help="DuckDB file (default: $OPSLOOP_DB or ./opsloop.duckdb)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]

#: Modules under ``api.cli`` that add commands with ``register(app)``.
CLI_MODULES: tuple[str, ...] = (
    "serve",
    "token",
    "summary",
    "demo",
    "topology",
    "scrape",
    "ingest",
    "backfill",
    "bench",
    "detect",
    "incidents",
    "diagnose",
    "simulate",
    "replay",
    "slo",
    "postmortem",
    "metrics",
    "problems",
    "audit",
    "runbooks",
    "worker",
    "alerts",  # newcomer path: alerts, silences, backlog and known errors from the CLI
    "silences",
    "backlog",
    "known_errors",
    "chat",
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"opsloop {version('opsloop')}")
        except PackageNotFoundError:
            from api.app import VERSION

            print(f"opsloop {VERSION}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """opsloop: AIOps operations analytics on DuckDB."""


def settings_for(db: str | None) -> Settings:
    """Settings from the environment, with ``--db`` taking precedence."""
    settings = Settings()
    return settings.model_copy(update={"db": db}) if db else settings


def main() -> None:
    """Console-script entry point."""
    for name in CLI_MODULES:
        import_module(f"api.cli.{name}").register(app)
    try:
        app()
    except OpsloopError as exc:
        # remote mode (api/cli/_remote.py): a server holding the file or refusing a request is one line
        from api.cli._remote import one_line

        words = [a for a in sys.argv[1:] if not a.startswith("-")]
        groups = {g.name for g in app.registered_groups}
        line = one_line(exc, " ".join(words[:2] if words and words[0] in groups else words[:1]))
        if line is None:  # any other expected error: one line too, never a traceback
            line = f"opsloop: {exc.message}"
        print(line, file=sys.stderr)  # one line, never wrapped
        raise SystemExit(1) from None
