"""What every ingest endpoint does: authenticate, read a bounded body, decode, commit, answer.

A format router supplies only its decoder; this module owns the limits (413), the
backpressure answer (429 + Retry-After), and the rule that a 2xx is sent only after the
store committed the batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

from fastapi import Request

from core.batch import WriteBatch
from core.errors import DecodeError, PayloadTooLargeError, UnsupportedMediaError
from core.store import WriteResult
from core.telemetry import INGEST_REQUESTS


def mark_format(request: Request, fmt: str) -> None:
    """Tag the request so the error handler counts rejections under this wire format."""
    request.scope["opsloop_format"] = fmt


async def read_body(request: Request, *, decode_http_encoding: bool = True) -> bytes:
    """Read the body, refusing more than ``max_body_bytes`` before and after decompression."""
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower().strip()
    if not decode_http_encoding or encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "deflate"):
        return inflate(body, limit, gzip=encoding == "gzip")
    raise UnsupportedMediaError(f"Content-Encoding {encoding!r} is not supported (use gzip or none)")


def inflate(body: bytes, limit: int, *, gzip: bool = True) -> bytes:
    """Decompress gzip/deflate, stopping with 413 as soon as the output passes ``limit``."""
    inflater = zlib.decompressobj(wbits=47 if gzip else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise DecodeError("body", f"bad {'gzip' if gzip else 'deflate'} data: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(len(out) + len(inflater.unconsumed_tail), limit)
    return out


async def commit(request: Request, batch: WriteBatch | Sequence[WriteBatch]) -> list[WriteResult]:
    """Queue batches for the single writer and wait until they are durable."""
    queue = request.app.state.queue
    batches = [batch] if isinstance(batch, WriteBatch) else list(batch)
    return [await queue.submit(b) for b in batches]


def count_ok(fmt: str, code: int) -> None:
    """Count an answered ingest request."""
    INGEST_REQUESTS.labels(fmt, str(code)).inc()


Decoder = Callable[[bytes], WriteBatch]
