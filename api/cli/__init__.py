"""The ``opsloop`` command line. Every command that touches data takes ``--db PATH``.

Commands live in small modules (``api/cli/<group>.py``), each with ``register(app)``; this module
only assembles them, so adding a command never means editing a long file.
"""

from __future__ import annotations

from importlib import import_module
from typing import Annotated

import typer
from rich.console import Console

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
)


def settings_for(db: str | None) -> Settings:
    """Settings from the environment, with ``--db`` taking precedence."""
    settings = Settings()
    return settings.model_copy(update={"db": db}) if db else settings


def main() -> None:
    """Console-script entry point."""
    for name in CLI_MODULES:
        import_module(f"api.cli.{name}").register(app)
    app()
