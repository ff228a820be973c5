"""Authentication: an ``x-api-key`` header, or a Bearer token fetched from getToken.

Secrets live only here, in fields excluded from ``repr``; nothing in this module logs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import attrs

from ._errors import AuthenticationError

#: What headers look like in logs and reprs.
REDACTED = "[secure]"

TokenFetcher = Callable[[str, str], Awaitable[str]]


class Auth:
    """How requests are authenticated. Subclasses supply the headers."""

    async def headers(self) -> dict[str, str]:
        """The headers to send with an authenticated request."""
        raise NotImplementedError

    async def refresh(self, rejected: dict[str, str]) -> bool:
        """Called when AKOOL answered 1101 to a request sent with ``rejected`` headers.

        Returns True when new credentials were obtained and the request may be repeated once.
        """
        return False


@attrs.define(repr=False)
class ApiKeyAuth(Auth):
    """Send the console API key as ``x-api-key`` (AKOOL's preferred scheme)."""

    api_key: str

    async def headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def __repr__(self) -> str:
        return f"ApiKeyAuth(api_key={REDACTED!r})"


@attrs.define(repr=False)
class TokenAuth(Auth):
    """Fetch a token from getToken once, send it as Bearer, fetch a new one after code 1101."""

    client_id: str
    client_secret: str
    fetch: TokenFetcher
    _token: str | None = None
    # One fetch at a time: a burst of requests on a cold client must not fetch N tokens.
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    async def headers(self) -> dict[str, str]:
        token = self._token
        if token is None:
            async with self._lock:
                if self._token is None:
                    self._token = await self.fetch(self.client_id, self.client_secret)
                token = self._token
        return {"Authorization": f"Bearer {token}"}

    async def refresh(self, rejected: dict[str, str]) -> bool:
        async with self._lock:
            current = f"Bearer {self._token}" if self._token is not None else None
            # Another request may have refreshed while we waited for the lock: reuse its token.
            if current is None or rejected.get("Authorization") == current:
                try:
                    self._token = await self.fetch(self.client_id, self.client_secret)
                except AuthenticationError:
                    self._token = None
                    raise
        return True

    def __repr__(self) -> str:
        return f"TokenAuth(client_id={self.client_id!r}, client_secret={REDACTED!r})"
