"""A local HTTP peer on 127.0.0.1 that answers as Slack (``response_url``, ``chat.postMessage``) and records what it got."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Peer:
    """Where the peer listens and every request it received: (path, decoded body)."""

    url: str
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def wait(self, path: str, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The bodies posted to ``path`` once there are ``n`` of them (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [b for p, b in list(self.received) if p == path]
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path}: expected {n} requests, got {self.received}")


@contextmanager
def slack_peer() -> Iterator[Peer]:
    """Serve the peer in a thread for the duration of the block."""
    peer = Peer("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            if self.headers.get("content-type", "").startswith("application/json"):
                body = json.loads(raw or "{}")
            else:
                body = {k: v[0] for k, v in parse_qs(raw).items()}
            peer.received.append((self.path, body))
            out = json.dumps(
                {"ok": True, "ts": "1700000000.000100", "channel": body.get("channel", "")}
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
