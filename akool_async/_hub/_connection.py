"""One hub's Redis client, key names, error mapping and password redaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import redis.asyncio as aioredis
import redis.exceptions

from .._errors import ClientClosedError, HubUnavailableError

logger = logging.getLogger("akool_async.redis")

_REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or the query) replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal needs its brackets back
            host = f"[{host}]"
        netloc = f"{user}:{_REDACTED}@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        redacted = [(n, _REDACTED if n == "password" else v) for n, v in query]
        parts = parts._replace(query=urllib.parse.urlencode(redacted, safe="*"))
    return urllib.parse.urlunsplit(parts)


def url_password(url: str) -> str | None:
    """The password a URL carries (user part or ``?password=``), decoded."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        return urllib.parse.unquote(parts.password)
    for name, value in urllib.parse.parse_qsl(parts.query):
        if name == "password" and value:
            return value
    return None


def password_of(client: aioredis.Redis) -> str | None:
    """The password a caller-owned client authenticates with, to keep it out of messages."""
    kwargs: dict[str, Any] = client.connection_pool.connection_kwargs
    password = kwargs.get("password")
    return password if isinstance(password, str) and password else None


def text(value: bytes | str) -> str:
    """A reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


@attrs.define
class Counters:
    """What the hub has done, for ``statistics()``."""

    events_published: int = 0
    events_received: int = 0
    stream_lag: float | None = None
    fallbacks: int = 0
    leader_changes: int = 0


class HubConnection:
    """The Redis client of one hub, shared by its primitives.

    Every command goes through ``guard()``, which maps any Redis failure to
    ``HubUnavailableError`` (password redacted) and tracks whether Redis is reachable.
    """

    def __init__(self, namespace: str, *, where: str, password: str | None) -> None:
        self.namespace = namespace
        self.where = where
        self.password = password
        self.client: aioredis.Redis | None = None
        self.closed = False
        self.available: bool | None = None  # None: no command answered or failed yet
        self.counters = Counters()
        self.listeners: list[Callable[[bool], None]] = []

    def key(self, *parts: str) -> str:
        """A key of this namespace: ``{namespace}:part:part``."""
        return ":".join((self.namespace, *parts))

    def redact(self, message: str) -> str:
        """``message`` with the password (if any) replaced by ``***``."""
        if self.password:
            message = message.replace(self.password, _REDACTED)
        return message

    @contextlib.contextmanager
    def guard(self, operation: str) -> Iterator[aioredis.Redis]:
        """Yield the client for one operation; map Redis failures to ``HubUnavailableError``."""
        if self.closed:
            raise ClientClosedError("the Redis hub is closed")
        if self.client is None:
            raise ClientClosedError("the Redis hub is not open: call `await hub.open()` first")
        try:
            yield self.client
        except (redis.exceptions.RedisError, OSError) as exc:
            if self.closed:
                raise ClientClosedError("the Redis hub was closed") from None
            detail = self.redact(f"{type(exc).__name__}: {exc}")
            self.set_available(False, detail)
            error = HubUnavailableError(f"Redis hub {self.where}: {operation} failed: {detail}")
            # The cause is kept for debugging unless its text carries the password.
            if self.password and self.password in repr(exc.args):
                raise error from None
            raise error from exc
        self.set_available(True, "")
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # redis-py can finish a command its task was cancelled during (its issues 2028,
            # 2551): honour the cancel here, or a cancelled create would still be sent.
            raise asyncio.CancelledError

    def set_available(self, available: bool, detail: str) -> None:
        """Record reachability; log and tell listeners when it changes."""
        if available == self.available:
            return
        was, self.available = self.available, available
        if available:
            if was is False:
                logger.info("Redis hub %s reachable again", self.where)
        else:
            self.counters.fallbacks += 1
            logger.warning("Redis hub %s unreachable (%s)", self.where, detail)
        for listener in list(self.listeners):
            listener(available)
