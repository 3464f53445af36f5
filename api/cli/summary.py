"""``opsloop summary``: what the store holds, rows per table and the newest timestamps."""

from __future__ import annotations

import json

import typer

from api.cli import DbOption, JsonOption, console, settings_for
from api.cli._remote import TokenOption, UrlOption, open_target, store_of


def register(app: typer.Typer) -> None:
    """Add ``summary``."""

    @app.command()
    def summary(
        db: DbOption = None, as_json: JsonOption = False, url: UrlOption = None, token: TokenOption = None
    ) -> None:
        """Show what the store holds: rows per table and the newest timestamps."""
        from api.report import store_summary

        with open_target(settings_for(db), url, token, read_only=True) as target:
            data = store_summary(store_of(target))
        if as_json:
            print(json.dumps(data, default=str))
            return
        from api.report import print_summary

        print_summary(console, data)
