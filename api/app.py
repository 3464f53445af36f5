"""The opsloop HTTP server: ingest endpoints, health, and its own ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import import_module

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import choose_encoder

from api import errors
from api.auth import TokenCache
from api.loop import assemble
from core.settings import Settings
from core.store import Store
from core.telemetry import BUILD_INFO, REGISTRY
from ingest.remote_write import RemoteWriteDecoder

log = logging.getLogger(__name__)

#: Router modules under ``api.routers``, each exposing ``router``.
ROUTERS = (
    "remote_write",
    "prometheus_import",
    "alertmanager",
    "pagerduty",
    "cloudevents",
    "topology",
    "otlp",
    "zipkin",
    "traces",
    "tokens",
    "anomalies",
    "incidents",
    "silences",
    "known_errors",
    "backlog",
    "slos",
    "problems",
    "operations",
    "promql",
    "am_silences",
    "sql",
    "bootstrap",
    "runbooks",
    "actions",
    "chat",
    "stream",
    "status",
)
VERSION = "0.1.0"


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app; the store is opened (and migrated) at start-up unless one is given."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = store is None
        db = store or Store(settings.db)
        app.state.store = db
        app.state.tokens = TokenCache(db)
        loop = assemble(db, settings)
        app.state.loop = loop
        app.state.queue = loop.queue
        publisher = None
        if settings.bus:  # a cluster front end: batches go to JetStream, not to this process's store
            from api.bus import BusPublisher

            publisher = BusPublisher(settings.bus, settings.bus_partitions, max_bytes=settings.bus_max_bytes)
            await publisher.start()
            app.state.queue = publisher
        app.state.remote_write = RemoteWriteDecoder(
            settings.max_body_bytes, known_series=db.known_series, derive_rates=True
        )
        app.state.engine = loop.engine
        app.state.incidents = loop.incidents
        app.state.diagnoses = loop.diagnoses
        app.state.notifier = loop.notifier
        app.state.slos = loop.slos
        loop.start()
        try:
            yield
        finally:
            if publisher is not None:
                await publisher.close()
            loop.stop()
            if own:
                db.close()

    app = FastAPI(title="opsloop", version=VERSION, lifespan=lifespan)
    app.state.settings = settings
    BUILD_INFO.info({"version": VERSION})
    errors.install(app)
    for name in ROUTERS:
        app.include_router(import_module(f"api.routers.{name}").router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the store is open and the writer is alive."""
        queue = getattr(request.app.state, "queue", None)
        if queue is None or not queue.healthy:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return JSONResponse({"status": "ready", "queue_rows": queue.pending_rows})

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Our own metrics, in the exposition format the scraper asks for (no redirect)."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(REGISTRY), media_type=content_type)

    return app
