"""``import opsloop``: the analysts' entry point, ``opsloop.connect(url, token)`` (see ``api.client``).

A thin top-level shim so notebooks write ``opsloop.connect`` while the client lives with the
API it talks to; it imports nothing but ``api.client``.
"""

from api.client import Client, RemoteError, TruncatedResultWarning, connect

__all__ = ["Client", "RemoteError", "TruncatedResultWarning", "connect"]
