"""Bearer tokens with scopes; Basic auth (token as password) and PagerDuty routing keys map to tokens.

Tokens are created with ``opsloop token create --scope ...`` and stored hashed. ``admin``
implies every scope. Health, ``/metrics`` and the public status page need no token.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from core.errors import AuthError, ForbiddenError
from core.store import Store


class TokenCache:
    """Remembers token -> scopes briefly, so a hot client costs one dict lookup per request."""

    def __init__(self, store: Store, ttl_s: float = 30.0) -> None:
        self._store = store
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, frozenset[str] | None]] = {}

    def scopes(self, token: str) -> frozenset[str] | None:
        """Return a token's scopes, or None if it is unknown or revoked."""
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        scopes = self._store.token_scopes(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now, scopes)
        return scopes

    def clear(self) -> None:
        """Forget every cached answer (after a revocation)."""
        self._cache.clear()


def credentials(request: Request) -> str | None:
    """Extract the token from ``Authorization: Bearer`` or ``Basic`` (password part)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            _, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return password or None
    return None


def check_scope(request: Request, token: str | None, scope: str) -> None:
    """Raise ``AuthError``/``ForbiddenError`` unless ``token`` grants ``scope``."""
    if not request.app.state.settings.auth:
        return
    if not token:
        raise AuthError("missing credentials: send 'Authorization: Bearer <token>'")
    scopes = request.app.state.tokens.scopes(token)
    if scopes is None:
        raise AuthError("unknown or revoked token")
    if scope not in scopes and "admin" not in scopes:
        raise ForbiddenError(f"token lacks the {scope!r} scope")


#: Declared for the OpenAPI (so ``/docs`` can authorize); :func:`credentials` reads the header itself.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearerAuth", description="an opsloop token")
BASIC = HTTPBasic(
    auto_error=False, scheme_name="basicAuth", description="any user name, the token as password"
)


def require(scope: str) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """FastAPI dependency: the request must carry a token with ``scope``."""

    async def dependency(
        request: Request,
        _bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
        _basic: HTTPBasicCredentials | None = Security(BASIC),
    ) -> None:
        check_scope(request, credentials(request), scope)

    return dependency
