"""``opsloop serve``: run the HTTP server (ingest endpoints, API, ``/metrics``) with the whole loop.

At start it says where it listens, which database it holds, how many tokens exist and how to
make one; with ``OPSLOOP_SCRAPE_CONFIG`` (or ``--scrape-config``) it also scrapes those targets,
writing through the same queue as every other ingest path. The HTTP keep-alive outlasts
Prometheus' remote-write batch deadline (5 s), so a sender never writes into a connection
the server is closing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from fastapi import FastAPI
from rich.console import Console

from api.cli import DbOption, settings_for
from core.batch import WriteBatch
from core.settings import Settings

#: Seconds an idle HTTP connection stays open: longer than Prometheus' 5 s batch send deadline
#: (and than common load balancers' 60 s idle timeout), so the client always closes first.
KEEP_ALIVE_S = 75


def _token_summary(count: int, admins: int, db: str) -> str:
    """What ``serve`` says about tokens.

    >>> _token_summary(0, 0, "o.duckdb").splitlines()[0]
    'no tokens yet: every API call will answer 401'
    """
    if count:
        return f"{count} token{'s' if count != 1 else ''} ({admins} admin); more: opsloop token create --scope read --name NAME"
    return (
        "no tokens yet: every API call will answer 401\n"
        f"  create one (works while serving): opsloop token create --scope admin --name me --db {db}"
    )


def with_scraping(app: FastAPI, settings: Settings, config: Path) -> None:
    """Scrape the targets of ``config`` while the app runs, committing through the ingest queue."""
    from ingest.scrape import Scraper, load_config

    targets = load_config(config, settings.scrape_interval_s)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            queue = app.state.queue

            def write(batches: Sequence[WriteBatch]) -> None:
                for future in [queue.submit_nowait(b) for b in batches]:
                    future.result()

            scraper = Scraper(app.state.store, max_body_bytes=settings.max_body_bytes, write=write)
            stop = asyncio.Event()
            task = asyncio.create_task(scraper.run(targets, stop=stop))
            try:
                yield state
            finally:
                stop.set()
                await asyncio.wait_for(task, timeout=10)

    app.router.lifespan_context = lifespan


def register(app: typer.Typer) -> None:
    """Add ``serve``."""

    @app.command()
    def serve(
        db: DbOption = None,
        host: Annotated[str | None, typer.Option(help="bind address")] = None,
        port: Annotated[int | None, typer.Option(help="port")] = None,
        scrape_config: Annotated[
            Path | None,
            typer.Option(
                "--scrape-config", help="also scrape these targets (default: $OPSLOOP_SCRAPE_CONFIG)"
            ),
        ] = None,
        no_auth: Annotated[
            bool, typer.Option("--no-auth", help="accept requests without tokens (local play)")
        ] = False,
    ) -> None:
        """Run the HTTP server (ingest endpoints, API, /metrics)."""
        import uvicorn

        from api.app import VERSION, create_app
        from core.store import Store

        settings = settings_for(db)
        updates: dict[str, object] = {}
        if host:
            updates["host"] = host
        if port:
            updates["port"] = port
        if no_auth:
            updates["auth"] = False
        if scrape_config:
            updates["scrape_config"] = scrape_config
        settings = settings.model_copy(update=updates)
        logging.basicConfig(level=settings.log_level.upper())
        for noisy in ("httpx", "httpcore"):  # one INFO line per scrape would drown the server's own log
            logging.getLogger(noisy).setLevel(logging.WARNING)
        err = Console(stderr=True, highlight=False)
        # opened here first for a clear one-line error (main) when another process holds the file,
        # then closed: the app's lifespan opens its own store and closes it (checkpointing the WAL)
        # during uvicorn's graceful shutdown; code after uvicorn.run does not run on SIGTERM, since
        # uvicorn re-raises the signal once it has shut down
        with Store(settings.db) as store:
            tokens = [t for t in store.list_tokens() if not t[4]]
        admins = sum(1 for t in tokens if "admin" in t[2])
        app_ = create_app(settings)
        if settings.scrape_config:
            with_scraping(app_, settings, settings.scrape_config)
        err.print(
            f"opsloop {VERSION} listening on http://{settings.host}:{settings.port} "
            f"(database {settings.db}; API docs at /docs)",
            markup=False,
        )
        if settings.auth:
            err.print(_token_summary(len(tokens), admins, settings.db), markup=False)
        else:
            err.print("auth is off (--no-auth): anyone who reaches the port may write", markup=False)
        if settings.scrape_config:
            err.print(f"scraping the targets of {settings.scrape_config}", markup=False)
        uvicorn.run(
            app_,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
