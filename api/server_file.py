"""The file a running server leaves next to its database: where it listens, and a bootstrap secret.

While ``opsloop serve`` runs, DuckDB lets no other process open the database, so the CLI
asks the server instead. ``<db>.serve.json`` tells it where (``url``, ``pid``) and carries a
fresh 256-bit ``secret`` that lets the same OS user create a token through
``POST /api/v1/bootstrap/token`` (the first admin token, while serving). Why a file and not
a socket: it works with plain HTTP clients on every platform, and its safety is the file
system's: it is created with mode 0600 (owner only; written to a 0600 temporary file and
renamed into place), its secret changes at every start and never reaches the database,
the server accepts it only from a loopback peer and only to create tokens, and the file is
removed at shutdown. Whoever can read it is the user who could stop the server and make a
token on the file anyway.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["read_server_file", "remove_server_file", "server_file_for", "write_server_file"]


def server_file_for(db: str) -> Path | None:
    """``<db>.serve.json``, or None for an in-memory database.

    >>> str(server_file_for("/var/lib/opsloop/ops.duckdb"))
    '/var/lib/opsloop/ops.duckdb.serve.json'
    >>> server_file_for(":memory:") is None
    True
    """
    if not db or db.startswith(":memory:"):
        return None
    return Path(db + ".serve.json")


def write_server_file(db: str, url: str) -> str | None:
    """Write the server file (mode 0600, atomically); return its secret (None: nowhere to write)."""
    path = server_file_for(db)
    if path is None:
        return None
    secret = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": url, "pid": os.getpid(), "secret": secret}, out)
    os.replace(tmp, path)
    return secret


def read_server_file(db: str) -> dict[str, Any] | None:
    """The server file's content, or None when there is none or this user cannot read it."""
    path = server_file_for(db)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_server_file(db: str, secret: str) -> None:
    """Remove the server file if it is still ours (another server may have replaced it)."""
    data = read_server_file(db)
    path = server_file_for(db)
    if path is not None and data is not None and data.get("secret") == secret:
        path.unlink(missing_ok=True)
