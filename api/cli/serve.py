"""``opsloop serve``: run the HTTP server (ingest endpoints, API, ``/metrics``) with the whole loop."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from api.cli import DbOption, settings_for


def register(app: typer.Typer) -> None:
    """Add ``serve``."""

    @app.command()
    def serve(
        db: DbOption = None,
        host: Annotated[str | None, typer.Option(help="bind address")] = None,
        port: Annotated[int | None, typer.Option(help="port")] = None,
        no_auth: Annotated[
            bool, typer.Option("--no-auth", help="accept requests without tokens (local play)")
        ] = False,
    ) -> None:
        """Run the HTTP server (ingest endpoints, API, /metrics)."""
        import uvicorn

        from api.app import create_app

        settings = settings_for(db)
        updates: dict[str, object] = {}
        if host:
            updates["host"] = host
        if port:
            updates["port"] = port
        if no_auth:
            updates["auth"] = False
        settings = settings.model_copy(update=updates)
        logging.basicConfig(level=settings.log_level.upper())
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
        )
