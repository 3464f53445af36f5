"""A tiny client for a running opsloop server: SQL into polars, Arrow or DuckDB, and the JSON API.

>>> import opsloop                                           # doctest: +SKIP
>>> ops = opsloop.connect("http://127.0.0.1:8080", token)    # doctest: +SKIP
>>> ops.sql("SELECT name, count(*) AS n FROM series GROUP BY name ORDER BY n DESC")  # doctest: +SKIP

``sql`` answers a polars DataFrame, ``arrow`` a pyarrow Table, ``duckdb`` a DuckDB relation
over the fetched table (so it can be joined with local data). Queries run on the server
(``POST /api/v1/sql``, scope ``read``), which stays the only process holding the database.
``url`` and ``token`` default to ``$OPSLOOP_URL`` and ``$OPSLOOP_TOKEN``. The CLI's remote
mode uses the same client for the rest of the API (``get``/``post``/``put``/``delete``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pyarrow as pa

from core.errors import OpsloopError

if TYPE_CHECKING:
    import duckdb
    import polars

__all__ = ["Client", "RemoteError", "TruncatedResultWarning", "connect"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class TruncatedResultWarning(UserWarning):
    """A query had more rows than the server's row limit; the answer holds the first ones."""


class RemoteError(OpsloopError):
    """The server refused a request (``status`` is the HTTP status) or could not be reached (0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """A connection to one opsloop server with one bearer token."""

    def __init__(self, url: str, token: str | None = None, *, timeout_s: float = 120.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    # ------------------------------------------------------------ SQL

    def arrow(
        self,
        query: str,
        params: Sequence[Any] | None = None,
        *,
        max_rows: int | None = None,
        timeout_s: float | None = None,
    ) -> pa.Table:
        """Run one read-only SELECT on the server; return its rows as an Arrow table.

        ``params`` fill ``?`` placeholders; times are sent in ISO 8601 (naive means UTC).
        """
        body: dict[str, Any] = {"query": query}
        if params:
            body["params"] = [_json_param(p) for p in params]
        if max_rows is not None:
            body["max_rows"] = max_rows
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        response = self.request("POST", "/api/v1/sql", json=body, headers={"Accept": ARROW_STREAM})
        with pa.ipc.open_stream(response.content) as reader:
            table: pa.Table = reader.read_all()
        if response.headers.get("x-opsloop-truncated") == "true":
            warnings.warn(
                f"the server cut the result at {table.num_rows:,} rows (its row limit): aggregate or filter",
                TruncatedResultWarning,
                stacklevel=2,
            )
        return table

    def sql(self, query: str, params: Sequence[Any] | None = None, **limits: Any) -> polars.DataFrame:
        """Run one read-only SELECT on the server; return a polars DataFrame."""
        import polars

        frame = polars.from_arrow(self.arrow(query, params, **limits))
        assert isinstance(frame, polars.DataFrame)
        return frame

    def duckdb(
        self,
        query: str,
        params: Sequence[Any] | None = None,
        connection: duckdb.DuckDBPyConnection | None = None,
        **limits: Any,
    ) -> duckdb.DuckDBPyRelation:
        """Run one read-only SELECT on the server; return a DuckDB relation over the rows."""
        import duckdb

        con = connection if connection is not None else duckdb.connect()
        return con.from_arrow(self.arrow(query, params, **limits))

    # ------------------------------------------------------------ the JSON API

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Send a request; raise ``RemoteError`` with the server's message on a non-2xx answer."""
        try:
            response = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from exc
        if response.is_success:
            return response
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text.strip()
        raise RemoteError(f"{self.url} answered {response.status_code}: {message}", response.status_code)

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params`` (None values left out); return the decoded JSON."""
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        """POST JSON (or ``content=``) to ``path``; return the decoded JSON (None when empty)."""
        response = self.request("POST", path, json=json, **kw)
        return response.json() if response.content else None

    def put(self, path: str, **kw: Any) -> Any:
        """PUT to ``path``; return the decoded JSON (None when empty)."""
        response = self.request("PUT", path, **kw)
        return response.json() if response.content else None

    def delete(self, path: str) -> None:
        """DELETE ``path``."""
        self.request("DELETE", path)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_param(value: Any) -> Any:
    """A placeholder value as JSON: times as ISO 8601 text, tuples as lists.

    >>> _json_param(datetime(2026, 1, 2, 3, 4)), _json_param((1, 2))
    ('2026-01-02T03:04:00', [1, 2])
    """
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return [_json_param(v) for v in value]
    if isinstance(value, list):
        return [_json_param(v) for v in value]
    return value


def connect(url: str | None = None, token: str | None = None) -> Client:
    """Connect to a running server (default ``$OPSLOOP_URL``, ``$OPSLOOP_TOKEN``)."""
    url = url or os.environ.get("OPSLOOP_URL")
    if not url:
        raise OpsloopError("give the server's URL: connect(url, token) or $OPSLOOP_URL")
    return Client(url, token or os.environ.get("OPSLOOP_TOKEN"))
