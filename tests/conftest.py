"""Shared fixtures: a real uvicorn server on 127.0.0.1 with its own DuckDB file and a token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from api.app import create_app
from core.settings import Settings
from core.store import Store

# Shared CI machines are slow and noisy: judge hypothesis tests on behaviour, not on time.
hypothesis_settings.register_profile(
    "opsloop",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
hypothesis_settings.load_profile("opsloop")


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A running opsloop server and the store behind it (same process, so tests can query)."""

    url: str
    token: str
    store: Store
    settings: Settings

    def client(self, token: str | None = None, **kw: object) -> httpx.Client:
        """An HTTP client that sends the given (default: ingest+read+write) bearer token."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def start_server(settings: Settings, store: Store) -> tuple[uvicorn.Server, threading.Thread]:
    """Start uvicorn serving ``create_app`` in a thread and wait until it accepts requests."""
    config = uvicorn.Config(
        create_app(settings, store),
        host="127.0.0.1",
        port=settings.port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread


@contextmanager
def serving(settings: Settings) -> Iterator[LiveServer]:
    """Serve ``settings.db`` for real on ``settings.port``, with a token of every scope but admin."""
    store = Store(settings.db)
    token = store.create_token(["ingest", "read", "write"], "tests")
    server, thread = start_server(settings, store)
    try:
        yield LiveServer(f"http://127.0.0.1:{settings.port}", token, store, settings)
    finally:
        server.should_exit = True
        thread.join(15)
        store.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real server with auth on and a fresh database."""
    settings = Settings(db=str(tmp_path / "live.duckdb"), port=free_port(), max_body_bytes=4 * 1024 * 1024)
    with serving(settings) as live:
        yield live


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh on-disk store."""
    with Store(str(tmp_path / "t.duckdb")) as s:
        yield s
