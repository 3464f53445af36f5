"""``opsloop demo``: the guided tour behind ``make demo``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command."""

    @app.command()
    def demo(
        db: Annotated[str, typer.Option("--db", help="database for the demo (recreated)")] = "./demo.duckdb",
    ) -> None:
        """Run the whole loop on bundled samples with a real server, and show what arrived."""
        from api.demo import run_demo

        console = Console()
        if not console.is_terminal:  # make, CI logs: no terminal to size to, so give tables room
            console = Console(width=120)
        run_demo(db, console)
