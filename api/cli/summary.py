"""``opsloop summary``: what the store holds, rows per table and the newest timestamps."""

from __future__ import annotations

import json

import typer

from api.cli import DbOption, JsonOption, console, settings_for
from core.store import Store


def register(app: typer.Typer) -> None:
    """Add ``summary``."""

    @app.command()
    def summary(db: DbOption = None, as_json: JsonOption = False) -> None:
        """Show what the store holds: rows per table and the newest timestamps."""
        from api.report import store_summary

        with Store(settings_for(db).db) as store:
            data = store_summary(store)
        if as_json:
            print(json.dumps(data, default=str))
            return
        from api.report import print_summary

        print_summary(console, data)
