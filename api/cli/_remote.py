"""The CLI's one way to reach the data: the DuckDB file, or a running server's API.

DuckDB lets one process open a database file, and ``opsloop serve`` keeps it, so every
command that reads or writes the store asks :func:`open_target`. It answers the local
:class:`~core.store.Store` when the file can be opened, and an :class:`~api.client.Client`
when ``--url`` (``$OPSLOOP_URL``) is given or when the file is held by a running server; in
the second case one line on stderr says so. The server's address comes from the server file
it leaves next to the database (``<db>.serve.json``, see ``api.server_file``), else from
``$OPSLOOP_HOST``/``$OPSLOOP_PORT``. The token is ``--token`` (``$OPSLOOP_TOKEN``).

Read commands whose code runs SQL on a store (``summary``, ``anomalies``, ``topology show``)
run unchanged on a :class:`RemoteStore`, whose reads go to ``POST /api/v1/sql``; ``ingest``
runs its file readers unchanged too and the store sends the points by remote-write. The
others call their endpoint: ``incidents``, ``incident show|ack``, ``topology load``,
``slo status|load``, ``token create|list|revoke`` (creating one with the bootstrap secret
when no admin token is given). A command with no remote form stops in one line naming
``--url`` (:func:`one_line`, printed by ``api.cli.main``), never with a traceback.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import typer

from api.client import Client, RemoteError
from api.server_file import read_server_file
from core.batch import WriteBatch
from core.errors import OpsloopError, StorageError
from core.settings import Settings
from core.store import Store, WriteResult

__all__ = [
    "NeedsFileError",
    "RemoteStore",
    "TokenOption",
    "UrlOption",
    "is_locked",
    "one_line",
    "open_target",
    "store_of",
]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="OPSLOOP_URL",
        help="a running server (e.g. http://127.0.0.1:8080): work through its API instead of the file;"
        " chosen by itself when the server holds the file",
    ),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="OPSLOOP_TOKEN", help="bearer token for the server's API")
]

_PID = re.compile(r"\(PID (\d+)\)")
_DATABASE = re.compile(r"cannot open database '([^']*)'")


class NeedsFileError(OpsloopError):
    """The command works on the DuckDB file only, and a running server holds it."""


def is_locked(exc: OpsloopError) -> bool:
    """Whether opening the store failed because another process (a server) holds the file."""
    return isinstance(exc, StorageError) and "Conflicting lock" in exc.message


def _server_url(settings: Settings) -> tuple[str, str]:
    """Where the server on ``settings.db`` listens, and the pid holding it (if known)."""
    info = read_server_file(settings.db) or {}
    url = str(info.get("url") or f"http://{settings.host}:{settings.port}")
    return url, str(info.get("pid", ""))


def one_line(exc: OpsloopError, command: str) -> str | None:
    """The one line the CLI prints for an error of remote mode, or None for other errors.

    >>> one_line(RemoteError("http://h answered 403: token lacks the 'write' scope", 403), "incident ack")
    "opsloop incident ack: http://h answered 403: token lacks the 'write' scope"
    """
    if isinstance(exc, RemoteError | NeedsFileError):
        return f"opsloop {command}: {exc.message}"
    if not is_locked(exc):
        return None
    pid = _PID.search(exc.message)
    path = _DATABASE.search(exc.message)
    held = f"held by a running server (PID {pid.group(1)})" if pid else "held by another process"
    return (
        f"opsloop {command}: {path.group(1) if path else 'the database'} is {held}, and this command needs"
        " the file itself: stop the server, or use the commands that work through its API (--url)"
    )


@contextmanager
def open_target(
    settings: Settings, url: str | None, token: str | None, *, read_only: bool = False
) -> Iterator[Store | Client]:
    """Yield the local store, or a client of the server that holds it (see the module docstring)."""
    if url:
        with Client(url, token) as client:
            yield client
        return
    try:
        store = Store(settings.db, read_only=read_only)
    except StorageError as exc:
        if not is_locked(exc):
            raise
        url, pid = _server_url(settings)
        # one line, never wrapped: scripts read it
        print(f"{settings.db} is held by a running server{f' (PID {pid})' if pid else ''}; using its API at {url}",
              file=sys.stderr)  # fmt: skip
        with Client(url, token) as client:
            yield client
        return
    with store:
        yield store


def store_of(target: Store | Client) -> Store:
    """The target as a store: itself, or a :class:`RemoteStore` reading through the client."""
    return target if isinstance(target, Store) else RemoteStore(target)


class RemoteStore(Store):
    """A store whose reads run on a running server (``POST /api/v1/sql``) and whose metric
    writes go through remote-write (``POST /api/v1/write``).

    It subclasses :class:`Store` so that code written for a store (the summary, the anomaly
    listing, the file ingester) runs on it unchanged; it opens no database. Anything else
    that needs the file (cursors, transactions) raises :class:`NeedsFileError`.
    """

    def __init__(self, client: Client) -> None:  # no database here: deliberately no super().__init__
        self.path = client.url
        self.client = client
        self._known_series = set()
        self._points_rows = 0
        self._labels: dict[int, dict[str, str]] = {}

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query on the server and return its rows as tuples."""
        table = self.arrow(sql, params)
        columns = [c.to_pylist(maps_as_pydicts="lossy") for c in table.columns]
        return [tuple(row) for row in zip(*columns, strict=True)]

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run a read query on the server and return an Arrow table."""
        return self.client.arrow(sql, params)

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """Cursors exist only on the file."""
        raise NeedsFileError("this command reads the file with a cursor; stop the server or use --url")
        yield  # pragma: no cover

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Transactions exist only on the file."""
        raise NeedsFileError("this command writes the file directly; stop the server to run it")
        yield  # pragma: no cover

    def write_many(self, batches: Sequence[WriteBatch]) -> list[WriteResult]:
        """Send the points of each batch by remote-write; a batch with other signals is refused."""
        from ingest.remote_write import encode_write_request

        results = []
        for batch in batches:
            if batch.logs is not None or batch.events or batch.changes or batch.alerts or batch.topology:
                raise NeedsFileError(
                    "only metric points can be sent to a running server from a file (remote-write);"
                    " send logs to /v1/logs (OTLP) or ingest with the server stopped"
                )
            if batch.series is not None and batch.series.num_rows:
                ids = batch.series.column("series_id").to_pylist()
                names = batch.series.column("name").to_pylist()
                labels = batch.series.column("labels").to_pylist(maps_as_pydicts="lossy")
                for sid, name, lab in zip(ids, names, labels, strict=True):
                    self._labels[int(sid)] = {**(lab or {}), "__name__": name}
            points = batch.points
            if points is None or not points.num_rows:
                results.append(WriteResult(duplicate=False, rows=0))
                continue
            sids = points.column("series_id").to_numpy()
            ts_ms = points.column("ts").cast(pa.int64()).to_numpy() // 1000
            values = points.column("value").to_numpy(zero_copy_only=False)
            order = np.argsort(sids, kind="stable")
            bounds = np.flatnonzero(np.diff(sids[order])) + 1
            series = [
                (
                    self._labels[int(sids[idx[0]])],
                    list(zip(ts_ms[idx].tolist(), values[idx].tolist(), strict=True)),
                )
                for idx in np.split(order, bounds)
            ]
            for start in range(0, len(series), 1000):
                self.client.request(
                    "POST",
                    "/api/v1/write",
                    content=encode_write_request(series[start : start + 1000]),
                    headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
                )
            results.append(WriteResult(duplicate=False, rows=batch.rows))
        return results

    def close(self) -> None:
        """Nothing to close (the client belongs to the caller)."""
